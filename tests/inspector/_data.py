"""Databases for the inspector's tests: the demo's long session (written by the demo's own code,
then pruned), a session with hostile content, many sessions, and a 100,000-message session."""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import sqlite3
import time
from typing import Any

from agnt5.demo import backlog
from agnt5.demo.context import Demo
from agnt5.session import Session
from agnt5.store.base import NewMessage, SessionHeader, Store

INJECTED = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'
BACKLOG_ID = "demo-t-backlog"
EVIL_ID = "evil<script>window.__pwned=3</script>"


async def write_demo_backlog(store: Store) -> Session:
    """The demo's 240-message backlog (agnt5/demo/backlog.py), then a sliding_window prune
    (no model call: the demo's own prunes need its recorded responses)."""
    demo = Demo(store, "t", io.StringIO(), io.StringIO(), True)
    session = await backlog.write_backlog(demo)
    await session.prune("sliding_window", window_size=60)
    return session


async def write_injected(store: Store) -> None:
    """Untrusted content everywhere the page shows text."""
    session = Session(
        EVIL_ID,
        app_name="evil_app",
        user_id="<b>mallory</b>",
        metadata={"note": INJECTED},
        store=store,
    )
    await session.send_message({"role": "user", "content": INJECTED}, metadata={"agent": INJECTED})
    await session.send_message(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_evil",
                    "type": "function",
                    "function": {
                        "name": "<img src=x onerror=window.__pwned=4>",
                        "arguments": '{"q": "</pre><script>window.__pwned=5</script>"}',
                    },
                }
            ],
        }
    )
    await session.send_message({"role": "tool", "tool_call_id": "call_evil", "content": INJECTED})
    await session.send_message({"role": "assistant", "content": [{"type": "text", "text": INJECTED}]})
    session.set_state("html", INJECTED)
    await session.record_event("note", {"html": INJECTED})
    await session.flush()


async def write_filler(store: Store) -> None:
    """A few small sessions of other apps and users, for the list's filters."""
    for i, (app, user) in enumerate([("billing", "alice"), ("billing", "bob"), ("search", "alice")]):
        session = Session(
            f"filler-{i}-{app}-{user}", app_name=app, user_id=user, metadata={"tag": f"t{i}"}, store=store
        )
        await session.send_message({"role": "user", "content": f"hello from {user}"})


async def write_many_sessions(store: Store, path: str, count: int) -> None:
    """`count` empty sessions (app `many`): one stored through the store, copied in SQL."""
    await store.save_session(SessionHeader("many-template", "many", "user-0"))
    await store.close()
    conn = sqlite3.connect(path)
    columns = [r[1] for r in conn.execute("PRAGMA table_info(sessions)")]
    chosen = {
        "id": "printf('many-%05d', n)",
        "user_id": "'user-' || (n % 7)",
        "metadata": "json_object('i', n)",
        "updated_at": "updated_at + n * 0.001",
    }
    select = ", ".join(chosen.get(c, c) for c in columns)
    with conn:
        conn.execute(
            f"WITH RECURSIVE k(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM k WHERE n + 1 < ?) "
            f"INSERT INTO sessions ({', '.join(columns)}) SELECT {select} FROM sessions, k WHERE id = 'many-template'",
            (count,),
        )
        conn.execute("DELETE FROM sessions WHERE id = 'many-template'")
    conn.close()


async def write_long_session(store: Store, session_id: str, count: int) -> None:
    """One session of `count` messages in one append (5 tokens each)."""
    header = SessionHeader(session_id, "long", "u")
    roles = ("user", "assistant")
    messages = [
        NewMessage(
            f"m{i}",
            {"role": roles[i % 2], "content": f"message number {i + 1}"},
            {"agent": "bot"} if i % 2 else {},
            5,
        )
        for i in range(count)
    ]
    await store.append_messages(header, messages, [])


def run(coro: Any) -> Any:
    """Run a coroutine from sync code on a fresh loop in a thread (Playwright's sync API keeps a
    loop running in the test's own thread)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def wait_until(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


PAUSED_ID = "paused-refund"


def refund_agent(ran: list[str]) -> Any:
    """An agent whose refund above 100 waits for approval (agnt5.approvals)."""
    from agnt5 import Agent, tool
    from agnt5.testing.function_model import FunctionModel

    @tool(requires_approval=lambda ctx, args: args["amount"] > 100)
    def refund(order: str, amount: int) -> str:
        """Refund an order."""
        ran.append(order)
        return f"refunded {amount} on {order}"

    def script(messages: list[dict[str, Any]], info: Any) -> Any:
        if messages[-1]["role"] == "user":
            return FunctionModel.tool_call("refund", {"order": "o-<b>1</b>", "amount": 250})
        return f"Done: {messages[-1]['content']}"

    return Agent("billing", model=FunctionModel(script), tools=[refund])


async def write_paused(store: Store) -> str:
    """A session whose refund waits for approval; returns the waiting call's id."""
    result = await refund_agent([]).run("Refund o-1", session=Session(PAUSED_ID, store=store))
    return str(result.pending[0].call_id)
