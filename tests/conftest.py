"""Shared fixtures: every test runs offline, on a fresh database, with real model calls refused."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
# Any provider call a test forgets to mock fails loudly instead of reaching the network.
os.environ["AGNT5_DISABLE_NETWORK"] = "1"
for _var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY"):
    os.environ.setdefault(_var, "sk-test-not-a-real-key")

pytest_plugins = ["pytester"]  # tests of agnt5's own pytest plugin

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test gets its own working directory, so the default database is never shared."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AGNT5_DATABASE_URL", raising=False)
    monkeypatch.delenv("AGNT5_MODEL", raising=False)
    from agnt5 import config

    config.reset()
    yield
    config.reset()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "test.db"


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[object]:
    from agnt5.store.sqlite import SqliteStore

    s = SqliteStore(str(db_path))
    yield s
    await s.close()
