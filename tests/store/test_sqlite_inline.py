"""A private in-memory SqliteStore answers a call on the caller's thread when its database thread
is idle (a hand-off costs more than a small query), without reordering work queued on that
thread, without two threads on the connection at once, and still yielding to other tasks."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agnt5.errors import StoreError
from agnt5.store.base import NewEvent, NewMessage, SessionHeader, StateWrite
from agnt5.store.sqlite import SqliteStore

BOUND = 10.0  # seconds: every call answers well within this


def msg(i: int | str) -> NewMessage:
    return NewMessage(f"m{i}", {"role": "user", "content": f"text {i}"}, {}, 2)


@pytest.fixture
async def memory_store() -> AsyncIterator[SqliteStore]:
    store = SqliteStore(":memory:")
    yield store
    await store.close()


async def thread_of(store: SqliteStore) -> int:
    return await store._call(lambda conn: threading.get_ident())


async def test_an_idle_in_memory_store_answers_on_the_callers_thread(memory_store: SqliteStore) -> None:
    await memory_store.kv_set("ns", "k", 1)
    assert await thread_of(memory_store) == threading.get_ident()
    appended = await memory_store.append_messages(SessionHeader("s"), [msg(1), msg(2)], [])
    assert [m.seq for m in appended] == [1, 2]
    assert await memory_store.kv_get("ns", "k") == (1, 1)


async def test_a_file_store_keeps_its_database_thread(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    try:
        await store.kv_set("ns", "k", 1)
        assert await thread_of(store) != threading.get_ident()
    finally:
        await store.close()


async def test_work_queued_on_the_busy_thread_is_not_overtaken(memory_store: SqliteStore) -> None:
    """While the thread is busy, calls queue behind it (appends group-commit there), and a call
    made after an append was queued sees it."""
    await memory_store.append_messages(SessionHeader("s"), [msg(0)], [])
    release = threading.Event()
    memory_store._database().enqueue(lambda conn: release.wait(BOUND))  # hold the thread
    appends = [
        asyncio.ensure_future(memory_store.append_messages(SessionHeader("s"), [msg(i)], []))
        for i in range(1, 6)
    ]
    await asyncio.sleep(0.02)
    assert len(memory_store._appends) == 5  # queued, not written inline ahead of the held job
    read = asyncio.ensure_future(memory_store.read_messages("s", None, False))
    owner = asyncio.ensure_future(thread_of(memory_store))
    await asyncio.sleep(0.02)
    assert not read.done() and not owner.done()
    release.set()
    firsts = await asyncio.wait_for(asyncio.gather(*appends), BOUND)
    assert [a[0].seq for a in firsts] == [2, 3, 4, 5, 6]
    assert [m.seq for m in await asyncio.wait_for(read, BOUND)] == [1, 2, 3, 4, 5, 6]
    assert await asyncio.wait_for(owner, BOUND) != threading.get_ident()
    assert await thread_of(memory_store) == threading.get_ident()  # idle again: inline


async def test_inline_calls_still_let_other_tasks_run(memory_store: SqliteStore) -> None:
    """A task polling the store does not starve the task that would end its wait."""
    await memory_store.kv_set("flag", "k", False)

    async def poll() -> int:
        polls = 0
        while not (await memory_store.kv_get("flag", "k") or (False, 0))[0]:
            polls += 1
        return polls

    async def setter() -> None:
        await memory_store.kv_set("flag", "k", True)

    polling = asyncio.ensure_future(poll())
    setting = asyncio.ensure_future(setter())
    assert await asyncio.wait_for(polling, BOUND) >= 0
    await setting

    async def append_forever() -> None:
        i = 0
        while True:
            i += 1
            await memory_store.append_messages(SessionHeader("busy"), [msg(i)], [])

    appending = asyncio.ensure_future(append_forever())
    await asyncio.wait_for(asyncio.sleep(0.01), BOUND)  # runs although the appender never waits
    appending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await appending


async def test_a_sync_call_inside_an_inline_call_runs_directly(memory_store: SqliteStore) -> None:
    await memory_store.kv_set("ns", "k", 1)

    def nested(conn: sqlite3.Connection) -> dict[str, Any]:
        return memory_store.get_state_sync("session", "s")  # would wait for the thread forever

    done = threading.Event()
    threading.Timer(BOUND, lambda: None if done.is_set() else memory_store.close_sync()).start()
    assert await memory_store._call(nested) == {}
    done.set()


async def test_threads_and_the_loop_never_share_the_connection_at_once(memory_store: SqliteStore) -> None:
    """Synchronous state writes from other threads interleave with inline appends and reads on
    the loop: every write lands, numbering stays gap-free, nothing fails."""
    header = SessionHeader("shared")
    await memory_store.append_messages(header, [msg(0)], [])
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(100):
                memory_store.write_state_sync(header, [StateWrite("session", "shared", f"t{n}-{i}", i)], [])
                memory_store.get_state_sync("session", "shared")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for i in range(1, 401):
        await memory_store.append_messages(header, [msg(i)], [NewEvent("tick", {"i": i})])
        await memory_store.read_session("shared", 1, False)
    for t in threads:
        await asyncio.to_thread(t.join, BOUND)
    assert errors == []
    assert [m.seq for m in await memory_store.read_messages("shared", None, False)] == list(range(1, 402))
    assert len(await memory_store.get_state("session", "shared")) == 300


@pytest.mark.parametrize("where", ["memory", "file"])
async def test_read_and_append_numbers_after_what_is_stored(where: str, tmp_path: Path) -> None:
    """The combined read numbers a new session from the start and an existing one after its
    messages and events, also when the header is rewritten in the same transaction."""
    store = SqliteStore(":memory:" if where == "memory" else tmp_path / "s.db")

    def plan(write: bool) -> Any:
        def decide(
            stored: SessionHeader | None, history: list[Any], kv: Any
        ) -> tuple[SessionHeader, bool, bool]:
            return SessionHeader("s", metadata={"n": len(history)}), write, True

        return decide

    try:
        tick = [NewEvent("tick", {})]
        _, history, first = await store.read_and_append("s", plan(False), [msg(1)], tick)
        assert history == [] and first is not None and [m.seq for m in first] == [1]
        await store.append_events(SessionHeader("s"), tick)
        _, history, second = await store.read_and_append("s", plan(True), [msg(2), msg(3)], tick)
        assert [m.seq for m in history] == [1]
        assert second is not None and [m.seq for m in second] == [2, 3]
        assert (await store.get_session("s")).metadata == {"n": 1}  # type: ignore[union-attr]
        await store.append_messages(SessionHeader("s", metadata={"n": 1}), [msg(4)], tick)
        events = await store.read_events("s", None, None)
        assert [e.id for e in events] == list(range(1, len(events) + 1))
        assert [e.type for e in events].count("tick") == 4
        assert [m.seq for m in await store.read_messages("s", None, False)] == [1, 2, 3, 4]
    finally:
        await store.close()


async def test_a_call_after_the_thread_was_stopped_fails_instead_of_waiting(
    memory_store: SqliteStore,
) -> None:
    """A stop from another thread (close_sync) while a call is on its way: the call is refused
    (typed), never queued behind the stop where nothing would answer it."""
    await memory_store.kv_set("ns", "k", 1)
    db = memory_store._database()
    release = threading.Event()
    db.enqueue(lambda conn: release.wait(BOUND))  # the thread is busy: no inline call
    stopping = asyncio.get_running_loop().run_in_executor(None, db.stop_and_join)
    await asyncio.sleep(0.05)
    with pytest.raises(StoreError, match="closed"):
        await asyncio.wait_for(memory_store.kv_get("ns", "k"), BOUND)
    release.set()
    await stopping
