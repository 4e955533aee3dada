"""pytest plugin (loaded automatically when agnt5 is installed): the `agnt5_cassette` fixture.

    async def test_support_flow(agnt5_cassette):
        result = await Agent("a").run("hi")     # served from cassettes/<module>/<test>.json

Record with `pytest --agnt5-record` (or AGNT5_RECORD=1) against the real provider, replay offline
otherwise. `@pytest.mark.agnt5_cassette("path.json")` names the file explicitly.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from agnt5.testing.cassette import RECORD_ENV, Cassette


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--agnt5-record",
        action="store_true",
        default=False,
        help="agnt5: record provider responses to cassettes instead of replaying them",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "agnt5_cassette(path): the cassette file the agnt5_cassette fixture uses"
    )


def cassette_path(request: pytest.FixtureRequest) -> Path:
    """cassettes/<test module>/<test name>.json next to the test file, unless the marker names one."""
    marker = request.node.get_closest_marker("agnt5_cassette")
    if marker is not None and marker.args:
        path = Path(marker.args[0])
        return path if path.is_absolute() else Path(request.path).parent / path
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    return Path(request.path).parent / "cassettes" / Path(request.path).stem / f"{name}.json"


@pytest.fixture
def agnt5_cassette(request: pytest.FixtureRequest) -> Iterator[Cassette]:
    """Replay (or with --agnt5-record, record) this test's provider responses."""
    recording = request.config.getoption("--agnt5-record") or os.environ.get(RECORD_ENV, "") in ("1", "true")
    with Cassette(cassette_path(request), mode="record" if recording else "replay") as active:
        yield active
