"""Code that runs in other OS processes for the multi-process tests.

Functions here are importable (multiprocessing with the spawn start method imports this module
by name in the child) and runnable as a script: `python tests/_workers.py NAME ARG...` prints the
function's JSON result on stdout.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from agnt5.entity import Entity
from agnt5.session import Session
from agnt5.store.sqlite import SqliteStore

Waitable = Any  # a multiprocessing Event (or None): the start signal


def _wait(start: Waitable | None) -> None:
    if start is not None and not start.wait(60):
        raise TimeoutError("the start signal never came")


def append_messages(db: str, session_id: str, worker: int, n: int, start: Waitable | None = None) -> None:
    """Append `n` messages `w<worker>-<i>` to one session, one awaited call each."""

    async def run() -> None:
        store = SqliteStore(db)
        session = Session(session_id, app_name="app", user_id="u", store=store)
        _wait(start)
        for i in range(n):
            await session.send_message({"role": "user", "content": f"w{worker}-{i}"})
        await store.close()

    asyncio.run(run())


def entity_increments(db: str, name: str, key: str, n: int, start: Waitable | None = None) -> None:
    """Increment one Entity key `n` times with `update`."""

    async def run() -> None:
        store = SqliteStore(db)
        entity = Entity(name, store=store)
        _wait(start)
        for _ in range(n):
            await entity.update(key, lambda v: (v or 0) + 1)
        await store.close()

    asyncio.run(run())


def set_state_keys(
    db: str, session_id: str, user_id: str, prefix: str, n: int, start: Waitable | None = None
) -> None:
    """Set `n` different keys in session scope and in user scope (synchronous set_state)."""
    store = SqliteStore(db)
    session = Session(session_id, app_name="app", user_id=user_id, store=store)
    _wait(start)
    for i in range(n):
        session.set_state(f"{prefix}{i}", i)
        session.set_state(f"{prefix}{i}", i, scope="user")
    asyncio.run(store.close())


def write_session(db: str, session_id: str) -> dict[str, Any]:
    """Write a small conversation and state in every persisted scope."""

    async def run() -> dict[str, Any]:
        store = SqliteStore(db)
        session = Session(session_id, app_name="app", user_id="u1", metadata={"from": "child"}, store=store)
        await session.send_message({"role": "user", "content": "hello from a child"})
        await session.send_message({"role": "assistant", "content": "hi child"}, metadata={"agent": "a"})
        session.set_state("step", 2)
        session.set_state("lang", "fr", scope="user")
        session.set_state("flag", True, scope="app")
        session.set_state("scratch", "gone", scope="temp")
        await store.close()
        return {"ok": True}

    return asyncio.run(run())


def read_session(db: str, session_id: str) -> dict[str, Any]:
    """Read state with no await first (the spec's usage), then the history."""
    store = SqliteStore(db)
    session = Session(session_id, store=store)
    state = {
        "step": session.get_state("step"),
        "lang": session.get_state("lang", scope="user"),
        "flag": session.get_state("flag", scope="app"),
        "scratch": session.get_state("scratch", scope="temp"),
        "metadata": session.metadata,
        "user_id": session.user_id,
    }

    async def run() -> list[dict[str, Any]]:
        history = await session.history()
        await store.close()
        return [
            {"role": m["role"], "content": m["content"], "seq": m.seq, "meta": m["metadata"]} for m in history
        ]

    state["history"] = asyncio.run(run())
    return state


FUNCTIONS = {
    f.__name__: f for f in (append_messages, entity_increments, set_state_keys, write_session, read_session)
}


def main(argv: list[str]) -> None:
    name, *args = argv
    converted: list[Any] = [int(a) if a.isdigit() else a for a in args]
    result = FUNCTIONS[name](*converted)
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
