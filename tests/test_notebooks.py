"""The notebooks run offline: each executes top to bottom ("Run all") in a fresh kernel.

The kernel gets no provider API key and no AGNT5_* variable (AGNT5_CASSETTE included), exactly what
a user opening the notebook in Jupyter has: the notebook's own first cell must find its cassette
(next to it, in cassettes/) and replay it. AGNT5_DISABLE_NETWORK=1 proves nothing reaches the
network. The notebooks run concurrently (kernel start and the litellm import dominate), and a last
cell added to each checks that the kernel is this interpreter and that the notebook used every
recorded response.

Locally, a missing nbformat/nbclient/ipykernel skips these tests; in CI (AGNT5_REQUIRE_POSTGRES=1,
as .ci/run sets, or CI / AGNT5_REQUIRE_NOTEBOOKS set) it fails them.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REQUIRED_BY = [
    name
    for name in ("AGNT5_REQUIRE_NOTEBOOKS", "AGNT5_REQUIRE_POSTGRES", "CI")
    if os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")
]


def _require(module: str) -> ModuleType:
    """Import `module`; a missing one skips these tests locally and fails them in CI."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if REQUIRED_BY:
            raise ImportError(
                f"the notebook tests need {module} ({', '.join(REQUIRED_BY)} is set, so they may "
                "not be skipped): pip install -e '.[dev]'"
            ) from exc
        pytest.skip(f"{module} is not installed (pip install -e '.[dev]')", allow_module_level=True)


nbformat: Any = _require("nbformat")
nbclient: Any = _require("nbclient")
_require("ipykernel")

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
    assert NOTEBOOKS == [
        "agents_in_an_app",
        "approvals",
        "mcp",
        "memory",
        "multi_agent",
        "pruning",
        "quickstart",
    ]
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


def _kernel_env() -> dict[str, str]:
    """A user's environment without a key: no API key, no AGNT5_CASSETTE (nor any AGNT5_*)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.endswith("_API_KEY") and not k.startswith(("AGNT5_", "PYTEST_"))
    }
    env.update(AGNT5_DISABLE_NETWORK="1", MPLBACKEND="Agg", LITELLM_LOCAL_MODEL_COST_MAP="True")
    return env


def _offline_cell(name: str) -> Any:
    notebook = nbformat.read(NOTEBOOKS_DIR / f"{name}.ipynb", as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    return code[0]


async def _execute(name: str, workdir: Path) -> tuple[BaseException | None, Any]:
    """Run the notebook in `workdir`, which holds a copy of its cassettes/ folder (as a user's
    checkout would, next to the notebook); (the error it raised or None, the executed notebook)."""
    shutil.copytree(NOTEBOOKS_DIR / "cassettes", workdir / "cassettes")
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
        await client.async_execute(env=_kernel_env())
    except Exception as exc:  # reported per notebook below
        return exc, notebook
    return None, notebook


Executed = dict[str, tuple[BaseException | None, Any]]


def _printed(notebook: Any) -> str:
    """Everything the notebook's code cells printed, in order."""
    return "".join(
        o.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for o in cell.outputs
        if o.get("output_type") == "stream"
    )


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> Executed:
    """Run every notebook once, concurrently: the error each raised (None when it ran clean) and
    the executed notebook."""

    async def run_all() -> list[tuple[BaseException | None, Any]]:
        dirs = [tmp_path_factory.mktemp(name) for name in NOTEBOOKS]
        return await asyncio.gather(*(_execute(name, d) for name, d in zip(NOTEBOOKS, dirs, strict=True)))

    return dict(zip(NOTEBOOKS, asyncio.run(run_all()), strict=True))


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_offline_from_its_cassette(name: str, executed: Executed) -> None:
    error, notebook = executed[name]
    if error is not None:
        pytest.fail(f"{name}.ipynb failed:\n{error}", pytrace=False)
    first = next(cell for cell in notebook.cells if cell.cell_type == "code")
    printed = "".join(o.get("text", "") for o in first.outputs if o.get("output_type") == "stream")
    assert printed.startswith("offline: model calls are replayed from "), printed
    assert printed.rstrip().endswith(f"cassettes/{name}.json"), printed


def test_agents_in_an_app_shows_state_in_instructions_and_guardrails_tripping(executed: Executed) -> None:
    """What that notebook is for, in what it printed offline: state rendered into the system
    message (and re-rendered after a change), a missing key refused, both guardrails tripping
    with nothing stored for the input one, and concurrent runs kept apart."""
    error, notebook = executed["agents_in_an_app"]
    assert error is None, error
    printed = _printed(notebook)
    for expected in (
        "The topic of this project is quantum error correction.\n\nAlways answer in Portuguese",
        "The topic of this project is neutral-atom quantum computers.\n\nAlways answer in English",
        "You are talking to Ana; cite only Nature, PRX Quantum.",
        "InstructionsError (key='research_topic', scope='session')",
        "input guardrail 'no_card_numbers' tripped: the message contains a card number "
        "(info: {'last4': '1111'})\nmessages stored: 0\n",
        "output guardrail 'no_internal_links' tripped: the answer links to an internal page",
        "messages stored:\n  [1]      user: Where can I see why a payment was declined?\naudit events",
        "  agent_run_failed: {'agent': 'support', 'error': 'GuardrailTripped'}",
        "ana: Your order A-1001",
        "ben: You have two orders: B-2001",
        "cara: (not sent: the message contains a card number)",
        "chat-cara:\n  (no messages)",
    ):
        assert expected in printed, f"{expected!r} not in:\n{printed}"
    assert "B-2001" not in printed.split("chat-ben:")[0].split("chat-ana:")[1]


def test_mcp_notebook_starts_a_server_and_an_agent_uses_its_tools(executed: Executed) -> None:
    """mcp.ipynb, offline: the server's tools listed, the agent's calls answered by the real
    server process (the second run sees what the first ordered), a bad command a typed error."""
    error, notebook = executed["mcp"]
    assert error is None, error
    printed = _printed(notebook)
    for expected in (
        "stock: How many of an item the shop has in stock.",
        'call   stock {"item": "pears"}\nresult 0\n',
        "result ordered 30 pears; 30 in stock after delivery",
        "server still connected: False",
        "We have 60 plums.",
        "MCPStartError - MCP server 'no-such-mcp-server-here' cannot start",
    ):
        assert expected in printed, f"{expected!r} not in:\n{printed}"


def test_approvals_notebook_pauses_approves_and_denies(executed: Executed) -> None:
    """approvals.ipynb, offline: the refund above the limit waits (the lookup of the same turn
    ran), a fresh Session on another connection and the CLI list it, new input is refused, the
    approval runs it once, the denial reaches the model as the tool's result, the audit trail."""
    error, notebook = executed["approvals"]
    assert error is None, error
    printed = _printed(notebook)
    for expected in (
        "paused: True | output: None\nwaiting: [call_approvals_002] support -> refund("
        "{'order_id': 'A-1001', 'amount_eur': 120})\nrefunds that ran: []\n",
        "[call_approvals_002] refund {'order_id': 'A-1001', 'amount_eur': 120} asked by support at ",
        "ticket-1  shop  u-42  call_approvals_002 refund  ",
        "PendingApprovalError: the session has tool calls waiting for approval (call_approvals_002)",
        "I've refunded €120.00 for order A-1001",
        "refunds that ran: [('A-1001', 120.0)]\n\n[1]      user: My espresso machine",
        '[3]      tool: {"item":"espresso machine"',
        "[4]      tool: Refunded €120.00 for A-1001",
        "the tool result the model got: Denied: a person declined this tool call (outside the 30-day "
        "return window). Do not retry it; tell the user.",
        "ticket-1: approval_decided    {'name': 'refund', 'decision': 'approved', 'reason': None, "
        "'approved_by': 'alice'}",
        "ticket-2: approval_decided    {'name': 'refund', 'decision': 'denied', 'reason': "
        "'outside the 30-day return window', 'approved_by': 'bob'}",
        "ApprovalNotPendingError: cannot apply approvals: 'call_approvals_002' already decided",
    ):
        assert expected in printed, f"{expected!r} not in:\n{printed}"
    assert printed.count("refunds that ran: [('A-1001', 120.0)]") == 2  # the denied refund never ran


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_first_cell_goes_live_when_a_key_is_set(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """With OPENAI_API_KEY (and no AGNT5_CASSETTE) the first cell leaves the provider alone."""
    cassette_module = importlib.import_module("agnt5.testing.cassette")
    monkeypatch.delenv("AGNT5_CASSETTE", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-live-key")
    monkeypatch.setattr(cassette_module, "_ambient", None)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(_offline_cell(name).source, {})  # the notebook's own cell
    assert printed.getvalue() == "OPENAI_API_KEY is set: model calls go to OpenAI (live)\n"
    assert "AGNT5_CASSETTE" not in os.environ and cassette_module._ambient is None


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_first_cell_without_a_key_and_without_the_cassette_says_what_to_do(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AGNT5_CASSETTE", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(FileNotFoundError, match="open this notebook from agnt5's notebooks/ folder"):
        exec(_offline_cell(name).source, {})  # cwd: the test's empty directory
    assert "AGNT5_CASSETTE" not in os.environ


def test_a_missing_notebook_dependency_fails_in_ci_and_skips_locally(tmp_path: Path) -> None:
    """The import guard: with nbclient unimportable, CI=1 fails the run; without it, a skip."""
    script = (
        "import sys, pytest\n"
        "sys.modules['nbclient'] = None  # as if it were not installed\n"
        f"sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', {str(Path(__file__))!r}, '-k', 'expected']))\n"
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("CI", "AGNT5_REQUIRE_POSTGRES", "AGNT5_REQUIRE_NOTEBOOKS")
    }
    env.pop("AGNT5_TEST_POSTGRES_URL", None)
    local = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert local.returncode in (0, 5) and "1 skipped" in local.stdout, local.stdout + local.stderr
    ci = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env={**env, "CI": "1"}, capture_output=True, text=True
    )
    assert ci.returncode not in (0, 5), ci.stdout
    assert "the notebook tests need nbclient (CI is set" in ci.stdout
