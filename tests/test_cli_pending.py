"""`agnt5 sessions show` marks tool calls waiting for approval and `agnt5 sessions pending` lists
the sessions that wait, on SQLite and PostgreSQL; the pending calls come from real agent runs."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import StoreEnv

from agnt5 import Agent, Session, tool
from agnt5 import journal as journal_module
from agnt5.cli import EXIT_NOT_FOUND, EXIT_OK, main
from agnt5.testing.function_model import AgentInfo, FunctionModel

WEEK_AGO = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC
RAN: list[str] = []


@tool
async def lookup(order_id: str) -> str:
    """Find an order."""
    RAN.append(f"lookup {order_id}")
    return f"order {order_id}: paid"


@tool(requires_approval=lambda ctx, args: float(args.get("amount", 0)) > 100)
async def refund(order_id: str, amount: float) -> str:
    """Refund an order (above 100 needs a person's approval)."""
    RAN.append(f"refund {order_id} {amount}")
    return f"refunded {amount} on {order_id}"


def reply(messages: list[dict[str, Any]], info: AgentInfo) -> Any:
    """Look the order up and refund it in one turn; then report what the tools said."""
    if messages[-1]["role"] == "tool":
        return "Done: " + "; ".join(m["content"] for m in messages if m["role"] == "tool")
    order, amount = str(messages[-1]["content"]).split()[1:3]
    return [
        FunctionModel.tool_call("lookup", {"order_id": order}, id=f"call_lookup_{order}"),
        FunctionModel.tool_call("refund", {"order_id": order, "amount": float(amount)}, id=f"call_{order}"),
    ]


def agent() -> Agent:
    return Agent("support", model=FunctionModel(reply), tools=[lookup, refund])


async def _request(env: StoreEnv, session_id: str, text: str, app: str, user: str | None) -> bool:
    """Run the agent on a new session; whether it paused."""
    store = env.open()
    try:
        session = Session(session_id, app_name=app, user_id=user, store=store)
        return (await agent().run(text, session=session)).paused
    finally:
        await store.close()


async def _decide(env: StoreEnv, session_id: str, call_id: str) -> str:
    """Approve `call_id` from a fresh store and Session, as another process would."""
    store = env.open()
    try:
        session = await Session.get(session_id, store=store)
        result = await agent().run(None, session=session, approvals={call_id: True}, approved_by="alice")
        return str(result.output)
    finally:
        await store.close()


def run(capsys: pytest.CaptureFixture[str], env: StoreEnv, *argv: str) -> tuple[int, str, str]:
    code = main([*argv, "--database-url", env.url])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def waiting(store_env: StoreEnv, monkeypatch: pytest.MonkeyPatch) -> StoreEnv:
    """Sessions: r-old (shop/u1, waiting a week), r-new (shop/u2, waiting), r-small (under the
    limit: no wait), r-done (approved since) and plain (no tool step ever)."""
    RAN.clear()
    with monkeypatch.context() as clock:
        clock.setattr(journal_module, "now", lambda: WEEK_AGO)
        assert asyncio.run(_request(store_env, "r-old", "refund A1 250", "shop", "u1"))
    assert asyncio.run(_request(store_env, "r-new", "refund B2 120", "shop", "u2"))
    assert not asyncio.run(_request(store_env, "r-small", "refund C3 20", "shop", "u1"))
    assert asyncio.run(_request(store_env, "r-done", "refund D4 500", "billing", "u1"))
    assert asyncio.run(_decide(store_env, "r-done", "call_D4")).startswith("Done:")

    async def plain() -> None:
        store = store_env.open()
        try:
            await Session("plain", app_name="shop", store=store).send_message(
                {"role": "user", "content": "hi"}
            )
        finally:
            await store.close()

    asyncio.run(plain())
    assert "refund A1 250.0" not in RAN and "refund D4 500.0" in RAN
    return store_env


def test_show_lists_the_waiting_calls_until_they_are_decided(
    capsys: pytest.CaptureFixture[str], waiting: StoreEnv
) -> None:
    code, out, err = run(capsys, waiting, "sessions", "show", "r-old")
    assert code == EXIT_OK, err
    section = out.split("Waiting for approval (1):\n", 1)[1]
    assert section == (
        '  [call_A1] support → refund({"order_id": "A1", "amount": 250.0}), '
        "requested 2023-11-14 22:13:20 UTC\n"
    )
    assert "[call_lookup_A1]" not in section  # ran without approval: not waiting
    for plain in ("r-small", "r-done", "plain"):
        code, out, err = run(capsys, waiting, "sessions", "show", plain)
        assert code == EXIT_OK, err
        assert "Waiting for approval" not in out, plain
    assert asyncio.run(_decide(waiting, "r-old", "call_A1")) == ("Done: order A1: paid; refunded 250.0 on A1")
    code, out, _ = run(capsys, waiting, "sessions", "show", "r-old")
    assert "Waiting for approval" not in out
    assert "tool [call_A1]: refunded 250.0 on A1" in out


def test_pending_lists_waiting_sessions_oldest_request_first(
    capsys: pytest.CaptureFixture[str], waiting: StoreEnv
) -> None:
    code, out, err = run(capsys, waiting, "sessions", "pending")
    assert code == EXIT_OK, err
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "APP", "USER", "WAITING", "OLDEST", "REQUEST", "(UTC)"]
    assert lines[1].split() == ["r-old", "shop", "u1", "call_A1", "refund", "2023-11-14", "22:13:20"]
    assert lines[2].split()[:5] == ["r-new", "shop", "u2", "call_B2", "refund"]
    assert len(lines) == 4 and lines[3].startswith("details: agnt5 sessions show")

    code, out, _ = run(capsys, waiting, "sessions", "pending", "--user", "u2")
    assert [line.split()[0] for line in out.splitlines()[1:-1]] == ["r-new"]
    code, out, _ = run(capsys, waiting, "sessions", "pending", "--app", "shop", "--user", "u1")
    assert [line.split()[0] for line in out.splitlines()[1:-1]] == ["r-old"]
    code, out, _ = run(capsys, waiting, "sessions", "pending", "--app", "billing")
    assert code == EXIT_OK
    assert out.startswith("no session waits for approval in ")


def test_pending_json_and_none_left_after_decisions(
    capsys: pytest.CaptureFixture[str], waiting: StoreEnv
) -> None:
    code, out, err = run(capsys, waiting, "sessions", "pending", "--json")
    assert code == EXIT_OK, err
    document = json.loads(out)
    assert [s["id"] for s in document["sessions"]] == ["r-old", "r-new"]
    old = document["sessions"][0]
    assert old["app_name"] == "shop" and old["user_id"] == "u1"
    assert old["oldest_requested_at"] == "2023-11-14T22:13:20+00:00"
    assert [(c["call_id"], c["tool"], c["arguments"], c["agent"]) for c in old["calls"]] == [
        ("call_A1", "refund", {"order_id": "A1", "amount": 250.0}, "support")
    ]
    assert old["calls"][0]["run_id"].startswith("run_")

    assert asyncio.run(_decide(waiting, "r-old", "call_A1")).startswith("Done:")
    assert asyncio.run(_decide(waiting, "r-new", "call_B2")).startswith("Done:")
    code, out, _ = run(capsys, waiting, "sessions", "pending")
    assert code == EXIT_OK
    assert out.startswith("no session waits for approval in ")
    assert json.loads(run(capsys, waiting, "sessions", "pending", "--json")[1]) == {"sessions": []}


def test_pending_on_a_missing_database_creates_nothing_and_exits_3(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    missing = tmp_path / "nope.db"
    code = main(["sessions", "pending", "--database-url", f"sqlite:///{missing}"])
    assert code == EXIT_NOT_FOUND, capsys.readouterr()
    assert not missing.exists()
