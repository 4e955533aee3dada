"""The notebooks run offline: each executes top to bottom in a fresh kernel, replaying its cassette.

The kernel gets AGNT5_CASSETTE and AGNT5_DISABLE_NETWORK=1 and no provider API key, exactly what a
user without a key would have. The notebooks run concurrently (kernel start and the litellm import
dominate), and a last cell added to each checks that the kernel is this interpreter and that the
notebook used every recorded response.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOKS_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(p.stem for p in NOTEBOOKS_DIR.glob("*.ipynb"))
CELL_TIMEOUT = 120
STARTUP_TIMEOUT = 120

CHECK_CELL = """
import sys
from agnt5.testing.cassette import activate_from_environment

cassette = activate_from_environment()
assert sys.prefix == {prefix!r}, f"the kernel runs {{sys.executable}}, not the test's interpreter"
assert cassette is not None and cassette.mode == "replay", cassette
assert not cassette.unused, f"{{len(cassette.unused)}} recorded responses were never requested"
"""


def test_the_expected_notebooks_exist() -> None:
    assert NOTEBOOKS == ["memory", "multi_agent", "pruning", "quickstart"]
    for name in NOTEBOOKS:
        assert (NOTEBOOKS_DIR / "cassettes" / f"{name}.json").is_file(), name


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_stored_without_outputs(name: str) -> None:
    notebook = nbformat.read(NOTEBOOKS_DIR / f"{name}.ipynb", as_version=4)
    nbformat.validate(notebook)
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{name}.ipynb cell {index} has outputs; clear them before committing"
            assert cell.execution_count is None, f"{name}.ipynb cell {index} has an execution count"
    assert notebook.metadata.get("kernelspec", {}).get("name") == "python3"


def _kernel_env(name: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.endswith("_API_KEY") and not k.startswith(("AGNT5_", "PYTEST_"))
    }
    env.update(
        AGNT5_CASSETTE=str(NOTEBOOKS_DIR / "cassettes" / f"{name}.json"),
        AGNT5_DISABLE_NETWORK="1",
        MPLBACKEND="Agg",
        LITELLM_LOCAL_MODEL_COST_MAP="True",
    )
    return env


async def _execute(name: str, workdir: Path) -> BaseException | None:
    notebook = nbformat.read(NOTEBOOKS_DIR / f"{name}.ipynb", as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell(CHECK_CELL.format(prefix=sys.prefix)))
    client = nbclient.NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT,
        startup_timeout=STARTUP_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(workdir)}},
    )
    try:
        await client.async_execute(env=_kernel_env(name))
    except Exception as exc:  # reported per notebook below
        return exc
    return None


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, BaseException | None]:
    """Run every notebook once, concurrently; the error each raised (None when it ran clean)."""

    async def run_all() -> list[BaseException | None]:
        dirs = [tmp_path_factory.mktemp(name) for name in NOTEBOOKS]
        return await asyncio.gather(*(_execute(name, d) for name, d in zip(NOTEBOOKS, dirs, strict=True)))

    return dict(zip(NOTEBOOKS, asyncio.run(run_all()), strict=True))


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_offline_from_its_cassette(
    name: str, executed: dict[str, BaseException | None]
) -> None:
    error = executed[name]
    if error is not None:
        pytest.fail(f"{name}.ipynb failed:\n{error}", pytrace=False)
