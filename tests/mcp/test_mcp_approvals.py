"""MCP tools that wait for approval (`requires_approval=` of a server) and MCP tool annotations
as `idempotent`, with a real MCP server over stdio (`approval_server.py`, which writes every call
it runs to a ledger file) and sessions in SQLite files."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from mcp_fixtures import HERE

from agnt5 import Agent, Denial, RunContext, Session
from agnt5.approvals import DENIED_TEXT
from agnt5.errors import ApprovalNotPendingError, InvalidInputError, InvalidTypeError
from agnt5.journal import pending_calls
from agnt5.mcp import MCPServerHTTP, MCPServerStdio, MCPTool
from agnt5.store.sqlite import SqliteStore
from agnt5.testing.function_model import FunctionModel

SERVER = str(HERE / "approval_server.py")
call = FunctionModel.tool_call


def bank(ledger: Path, **options: Any) -> MCPServerStdio:
    """The approval test server, its calls recorded in `ledger`."""
    return MCPServerStdio(sys.executable, [SERVER], env={"LEDGER": str(ledger)}, timeout=10.0, **options)


def ran(ledger: Path) -> list[str]:
    """The calls the server ran, in order."""
    return ledger.read_text().splitlines() if ledger.exists() else []


def calls_then_answer(*calls: tuple[str, dict[str, Any]]) -> FunctionModel:
    """Calls the tools in one turn after the user's message, then answers with their results."""

    def fn(messages: list[dict[str, Any]], info: Any) -> Any:
        if messages[-1]["role"] == "user":
            return [call(name, args) for name, args in calls]
        return "answer: " + " / ".join(str(m["content"]) for m in messages if m["role"] == "tool")

    return FunctionModel(fn)


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    return tmp_path / "ledger.txt"


@pytest_asyncio.fixture
async def db(tmp_path: Path) -> AsyncIterator[Path]:
    yield tmp_path / "sessions.db"


async def listed(server: MCPServerStdio) -> dict[str, MCPTool]:
    async with server:
        tools = await server.list_tools()
    assert all(isinstance(t, MCPTool) for t in tools)
    return {t.name: t for t in tools if isinstance(t, MCPTool)}


async def run_in_fresh_process(
    db: Path, ledger: Path, session_id: str, prompt: str | None, **run: Any
) -> tuple[Any, list[Any]]:
    """A run as a new process would do it: a new store on the file, a new server, a new agent."""
    store = SqliteStore(str(db))
    try:
        agent = Agent(
            "teller",
            model=calls_then_answer(("transfer", {"to": "bob", "amount": 250})),
            tools=[bank(ledger, requires_approval=["transfer"])],
        )
        session = Session(session_id, store=store)
        result = await agent.run(prompt, session=session, **run)
        return result, await session.history()
    finally:
        await store.close()


# -- the attributes of listed tools --


async def test_named_tools_require_approval_and_annotations_make_tools_idempotent(ledger: Path) -> None:
    tools = await listed(bank(ledger, requires_approval=["transfer", "close_account"]))
    assert {n: t.requires_approval for n, t in tools.items()} == {
        "transfer": True,
        "balance": False,
        "set_limit": False,
        "close_account": True,
    }
    # readOnlyHint or idempotentHint true: idempotent; no annotations or both false: not.
    assert {n: t.idempotent for n, t in tools.items()} == {
        "transfer": False,
        "balance": True,
        "set_limit": True,
        "close_account": False,
    }
    assert ran(ledger) == []


async def test_names_are_server_names_before_the_prefix(ledger: Path) -> None:
    tools = await listed(bank(ledger, tool_prefix="acme", requires_approval=["transfer"]))
    assert tools["acme_transfer"].requires_approval is True
    assert tools["acme_balance"].requires_approval is False
    assert tools["acme_balance"].idempotent is True


async def test_true_and_false_apply_to_every_tool(ledger: Path) -> None:
    assert {t.requires_approval for t in (await listed(bank(ledger, requires_approval=True))).values()} == {
        True
    }
    assert {t.requires_approval for t in (await listed(bank(ledger))).values()} == {False}


async def test_idempotent_tools_overrides_the_annotations(ledger: Path) -> None:
    tools = await listed(bank(ledger, idempotent_tools=["transfer"]))
    assert {n for n, t in tools.items() if t.idempotent} == {"transfer"}
    tools = await listed(bank(ledger, idempotent_tools=()))  # trust no annotation
    assert not any(t.idempotent for t in tools.values())


async def test_a_name_the_server_does_not_list_fails_at_listing(ledger: Path, db: Path) -> None:
    with pytest.raises(InvalidInputError, match="does not list: trasnfer") as caught:
        await listed(bank(ledger, requires_approval=["trasnfer"]))
    assert caught.value.field == "requires_approval"
    # In a run: the run stops before the model is asked, so no misspelt gate lets a call through.
    model = calls_then_answer(("transfer", {"to": "bob", "amount": 5}))
    store = SqliteStore(str(db))
    try:
        agent = Agent("teller", model=model, tools=[bank(ledger, requires_approval=["trasnfer"])])
        with pytest.raises(InvalidInputError, match="trasnfer"):
            await agent.run("send bob 5", session=Session("typo", store=store))
    finally:
        await store.close()
    assert model.requests == [] and ran(ledger) == []


# -- pausing and resuming --


async def test_a_call_that_needs_approval_pauses_and_runs_once_when_approved(ledger: Path, db: Path) -> None:
    result, _ = await run_in_fresh_process(db, ledger, "t-1", "send bob 250")
    assert result.paused and result.output is None
    assert [(p.tool, p.arguments) for p in result.pending] == [("transfer", {"to": "bob", "amount": 250})]
    assert ran(ledger) == []  # the server never saw the call
    call_id = result.pending[0].call_id

    store = SqliteStore(str(db))
    try:
        waiting = await pending_calls(Session("t-1", store=store))
    finally:
        await store.close()
    assert [p.call_id for p in waiting] == [call_id]

    result, history = await run_in_fresh_process(db, ledger, "t-1", None, approvals={call_id: True})
    assert not result.paused
    assert result.output == "answer: sent 250 to bob"
    assert ran(ledger) == ["transfer bob 250"]
    assert [m["content"] for m in history if m["role"] == "tool"] == ["sent 250 to bob"]

    # Approving it again is refused: the call is no longer waiting, and it does not run twice.
    with pytest.raises(ApprovalNotPendingError, match=call_id):
        await run_in_fresh_process(db, ledger, "t-1", None, approvals={call_id: True})
    assert ran(ledger) == ["transfer bob 250"]


async def test_a_denied_call_never_reaches_the_server(ledger: Path, db: Path) -> None:
    result, _ = await run_in_fresh_process(db, ledger, "t-2", "send bob 250")
    call_id = result.pending[0].call_id
    result, history = await run_in_fresh_process(
        db, ledger, "t-2", None, approvals={call_id: Denial("over the limit")}
    )
    denied = DENIED_TEXT.format(reason=" (over the limit)")
    assert result.output == f"answer: {denied}"
    assert [m["content"] for m in history if m["role"] == "tool"] == [denied]
    assert ran(ledger) == []


async def test_calls_of_other_tools_in_the_same_turn_run(ledger: Path, db: Path) -> None:
    model = calls_then_answer(
        ("transfer", {"to": "amy", "amount": 9}), ("close_account", {}), ("balance", {})
    )
    store = SqliteStore(str(db))
    try:
        session = Session("t-3", store=store)
        agent = Agent("teller", model=model, tools=[bank(ledger, requires_approval=["transfer"])])
        result = await agent.run("pay amy, close, then the balance", session=session)
        assert [p.tool for p in result.pending] == ["transfer"]
        assert sorted(ran(ledger)) == ["balance", "close_account"]
        result = await agent.run(None, session=session, approvals={result.pending[0].call_id: False})
        assert result.output is not None
        assert result.output.startswith("answer: Denied") and "closed / balance 1000" in result.output
        # close_account (not idempotent) ran once, its result journalled; balance is read-only by
        # its annotations, so its result is not journalled and the resume may run it again.
        assert ran(ledger).count("close_account") == 1
        assert not any(line.startswith("transfer") for line in ran(ledger))
    finally:
        await store.close()


@pytest.mark.parametrize("is_async", [False, True])
async def test_a_function_decides_per_call(ledger: Path, db: Path, is_async: bool) -> None:
    asked: list[tuple[str, dict[str, Any]]] = []

    def decide(ctx: RunContext[Any], tool_name: str, args: dict[str, Any]) -> bool:
        assert isinstance(ctx, RunContext)
        asked.append((tool_name, args))
        return tool_name == "transfer" and args.get("amount", 0) > 100

    async def decide_async(ctx: RunContext[Any], tool_name: str, args: dict[str, Any]) -> bool:
        return decide(ctx, tool_name, args)

    rule: Callable[..., Any] = decide_async if is_async else decide
    model = calls_then_answer(
        ("acme_transfer", {"to": "amy", "amount": 20}),
        ("acme_transfer", {"to": "bob", "amount": 500}),
        ("acme_balance", {}),
    )
    store = SqliteStore(str(db))
    try:
        session = Session("t-4", store=store)
        # Named with a prefix, the function still gets the server's name for the tool.
        agent = Agent("teller", model=model, tools=[bank(ledger, requires_approval=rule, tool_prefix="acme")])
        result = await agent.run("pay both", session=session)
        assert [(p.tool, p.arguments["amount"]) for p in result.pending] == [("acme_transfer", 500)]
        assert sorted(ran(ledger)) == ["balance", "transfer amy 20"]
        assert sorted(name for name, _ in asked) == ["balance", "transfer", "transfer"]
        result = await agent.run(None, session=session, approvals={result.pending[0].call_id: True})
        assert result.output == "answer: sent 20 to amy / sent 500 to bob / balance 1000"
        transfers = [line for line in ran(ledger) if line.startswith("transfer")]
        assert transfers == ["transfer amy 20", "transfer bob 500"]  # each once, bob's after approval
    finally:
        await store.close()


# -- bad values --


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("transfer", "got the string 'transfer'"),
        (None, "got NoneType"),
        (3, "got int"),
        ({"transfer": True}, "got dict"),
        (["transfer", 3], "tool names"),
        (lambda ctx, args: True, "must take \\(ctx, tool_name, args\\)"),
    ],
)
def test_bad_requires_approval_values_raise_typed_errors(value: Any, message: str) -> None:
    for make in (
        lambda: MCPServerStdio(sys.executable, [SERVER], requires_approval=value),
        lambda: MCPServerHTTP("http://127.0.0.1:1/mcp", requires_approval=value),
    ):
        with pytest.raises(InvalidTypeError, match=message) as caught:
            make()
        assert caught.value.field == "requires_approval"
        assert isinstance(caught.value, InvalidInputError)


@pytest.mark.parametrize("value", ["transfer", 3, [None], {"transfer": True}])
def test_bad_idempotent_tools_values_raise_typed_errors(value: Any) -> None:
    with pytest.raises(InvalidTypeError) as caught:
        MCPServerStdio(sys.executable, [SERVER], idempotent_tools=value)
    assert caught.value.field == "idempotent_tools"


def test_good_values_are_kept() -> None:
    def rule(ctx: Any, tool_name: str, args: dict[str, Any]) -> bool:
        return True

    assert MCPServerStdio("x").requires_approval is False
    assert MCPServerStdio("x", requires_approval=True).requires_approval is True
    assert MCPServerStdio("x", requires_approval=("a", "b")).requires_approval == frozenset({"a", "b"})
    assert MCPServerStdio("x", requires_approval=rule).requires_approval is rule
    assert MCPServerHTTP("http://h/mcp", idempotent_tools=["a"]).idempotent_tools == frozenset({"a"})
