"""Code that runs in other OS processes for the multi-process tests.

Functions here are importable (multiprocessing with the spawn start method imports this module
by name in the child) and runnable as a script: `python tests/_workers.py NAME ARG...` prints the
function's JSON result on stdout. `db` is a database URL (sqlite:///..., postgresql://...) or a
SQLite file path.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from agnt5.entity import Entity
from agnt5.session import Session
from agnt5.store.base import Store
from agnt5.store.sqlite import SqliteStore
from agnt5.store.url import open_store


class Gate(NamedTuple):
    """A starting gate for racing processes: each worker sets its own `ready` event once set up,
    then waits for `go`, which the parent sets only when every worker is ready."""

    ready: Any  # a multiprocessing Event, one per worker
    go: Any  # a multiprocessing Event shared by all workers


def _open(db: str) -> Store:
    return open_store(db) if "://" in db else SqliteStore(db)


def _wait(gate: Gate | None) -> None:
    if gate is None:
        return
    gate.ready.set()
    if not gate.go.wait(60):
        raise TimeoutError("the start signal never came")


def append_messages(db: str, session_id: str, worker: int, n: int, gate: Gate | None = None) -> None:
    """Append `n` messages `w<worker>-<i>` to one session, one awaited call each."""

    async def run() -> None:
        store = _open(db)
        session = Session(session_id, app_name="app", user_id="u", store=store)
        await store.get_session(session_id)  # connected and set up before the race starts
        _wait(gate)
        for i in range(n):
            await session.send_message({"role": "user", "content": f"w{worker}-{i}"})
        await store.close()

    asyncio.run(run())


def entity_increments(db: str, name: str, key: str, n: int, gate: Gate | None = None) -> list[int]:
    """Increment one Entity key `n` times with `update`; return the values this worker wrote."""

    async def run() -> list[int]:
        store = _open(db)
        entity = Entity(name, store=store)
        await entity.get(key)  # connected and set up before the race starts
        _wait(gate)
        written = [await entity.update(key, lambda v: (v or 0) + 1) for _ in range(n)]
        await store.close()
        return written

    return asyncio.run(run())


def set_state_keys(
    db: str, session_id: str, user_id: str, prefix: str, n: int, gate: Gate | None = None
) -> None:
    """Set `n` different keys in session scope and in user scope (synchronous set_state; on a
    store without synchronous access each pair is flushed, i.e. written by an awaited call)."""
    store = _open(db)

    async def run() -> None:
        session = Session(session_id, app_name="app", user_id=user_id, store=store)
        await session.load()
        _wait(gate)
        for i in range(n):
            session.set_state(f"{prefix}{i}", i)
            session.set_state(f"{prefix}{i}", i, scope="user")
            await session.flush()
        await store.close()

    if store.supports_sync:
        session = Session(session_id, app_name="app", user_id=user_id, store=store)
        session.get_state(f"{prefix}0")  # the database is open before the race starts
        _wait(gate)
        for i in range(n):
            session.set_state(f"{prefix}{i}", i)
            session.set_state(f"{prefix}{i}", i, scope="user")
        asyncio.run(store.close())
    else:
        asyncio.run(run())


def write_session(db: str, session_id: str) -> dict[str, Any]:
    """Write a small conversation and state in every persisted scope."""

    async def run() -> dict[str, Any]:
        store = _open(db)
        session = Session(session_id, app_name="app", user_id="u1", metadata={"from": "child"}, store=store)
        await session.send_message({"role": "user", "content": "hello from a child"})
        await session.send_message({"role": "assistant", "content": "hi child"}, metadata={"agent": "a"})
        session.set_state("step", 2)
        session.set_state("lang", "fr", scope="user")
        session.set_state("flag", True, scope="app")
        session.set_state("scratch", "gone", scope="temp")
        await session.flush()  # a no-op on the embedded store, where set_state is already durable
        await store.close()
        return {"ok": True}

    return asyncio.run(run())


def read_session(db: str, session_id: str) -> dict[str, Any]:
    """Read state with no await first (the spec's usage; after `load()` on a store without
    synchronous access), then the history."""
    store = _open(db)
    session = Session(session_id, store=store)
    if not store.supports_sync:
        asyncio.run(session.load())
    state = {
        "step": session.get_state("step"),
        "lang": session.get_state("lang", scope="user"),
        "flag": session.get_state("flag", scope="app"),
        "scratch": session.get_state("scratch", scope="temp"),
        "metadata": session.metadata,
        "user_id": session.user_id,
    }

    async def run() -> list[dict[str, Any]]:
        history = await session.history()  # a new event loop: the store reconnects if it must
        await store.close()
        return [
            {"role": m["role"], "content": m["content"], "seq": m.seq, "meta": m["metadata"]} for m in history
        ]

    state["history"] = asyncio.run(run())
    return state


def run_in_process(
    fn: Callable[..., Any], args: tuple[Any, ...], gate: Gate, results: Any, index: int
) -> None:
    """A racing process's body: run `fn(*args, gate)` and report its result as (index, result)."""
    results.put((index, fn(*args, gate)))


def race(
    fn: Callable[..., Any], args: list[tuple[Any, ...]], go: Any | None = None, timeout: float = 120
) -> list[Any]:
    """Run `fn(*a, gate)` in one spawned process per argument tuple, release them together once
    every one is set up (connected, session object made), and return their results in order.

    `go` (an Event of the spawn context) lets the caller release its own writers at the same time."""
    ctx = multiprocessing.get_context("spawn")
    go = ctx.Event() if go is None else go
    gates = [Gate(ctx.Event(), go) for _ in args]
    results = ctx.Queue()
    procs = [
        ctx.Process(target=run_in_process, args=(fn, a, gate, results, i))
        for i, (a, gate) in enumerate(zip(args, gates, strict=True))
    ]
    for p in procs:
        p.start()
    try:
        deadline = time.monotonic() + 60
        for gate, p in zip(gates, procs, strict=True):
            while not gate.ready.wait(0.1):
                if not p.is_alive() or time.monotonic() > deadline:
                    raise AssertionError(f"a worker never got ready (exit code {p.exitcode})")
        go.set()
        out: dict[int, Any] = {}
        while len(out) < len(procs):  # read before joining: a child with queued data waits for it
            out.update([results.get(timeout=timeout)])
        for p in procs:
            p.join(timeout=timeout)
        assert [p.exitcode for p in procs] == [0] * len(procs)
        return [out[i] for i in range(len(procs))]
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()


def runs(sequence: Sequence[Any]) -> dict[Any, int]:
    """How many separate runs of consecutive equal items each item value forms: 1 means all of
    that value came in one block, with nothing of another value in between. Writers whose items
    came one block after another have 1 run each: a total above the number of writers means
    some writer's items were split by another's, so they overlapped."""
    counts: dict[Any, int] = {}
    for i, item in enumerate(sequence):
        if i == 0 or sequence[i - 1] != item:
            counts[item] = counts.get(item, 0) + 1
    return counts


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
