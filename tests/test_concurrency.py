"""Concurrent writers: many tasks on one session, and several OS processes on one database.

Every test runs on both stores (the `store` fixture): one SQLite file shared by processes, and
one PostgreSQL database shared by processes (as workers on several hosts would share it).
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections import Counter
from collections.abc import Sequence
from typing import Any

import _workers
import pytest
from conftest import StoreEnv

from agnt5 import Entity, Session
from agnt5.store import Store

TASKS = 20
PER_TASK = 100


async def assert_gap_free(session: Session, expected: Counter[str]) -> None:
    history = await session.history()
    assert [m.seq for m in history] == list(range(1, sum(expected.values()) + 1))
    assert Counter(m["content"] for m in history) == expected
    assert len({m["id"] for m in history}) == len(history)
    appended = [e for e in await session.events() if e.type == "message_appended"]
    assert sorted(e.data["seq"] for e in appended) == [m.seq for m in history]


def each_writer_in_order(history: list[Any], writers: int, per_writer: int, prefix: str) -> None:
    """Every writer's own messages keep the order it sent them in."""
    for w in range(writers):
        mine = [m["content"] for m in history if m["content"].startswith(f"{prefix}{w}-")]
        assert mine == [f"{prefix}{w}-{i}" for i in range(per_writer)]


@pytest.mark.parametrize("shared_object", [False, True], ids=["separate-objects", "one-object"])
async def test_twenty_tasks_append_two_thousand_messages(store: Store, shared_object: bool) -> None:
    shared = Session("busy", app_name="app", user_id="u", store=store)
    objects = [
        shared if shared_object else Session("busy", app_name="app", user_id="u", store=store)
        for _ in range(TASKS)
    ]

    async def writer(w: int, session: Session) -> None:
        for i in range(PER_TASK):
            await session.send_message({"role": "user", "content": f"w{w}-{i}"})

    await asyncio.gather(*(writer(w, s) for w, s in enumerate(objects)))
    expected = Counter(f"w{w}-{i}" for w in range(TASKS) for i in range(PER_TASK))
    await assert_gap_free(shared, expected)
    each_writer_in_order(await shared.history(), TASKS, PER_TASK, "w")
    [header] = (await Session.list(store=store)).sessions
    assert header.message_count == TASKS * PER_TASK
    # A later writer carries on from 2,001.
    assert (await Session("busy", store=store).send_message({"role": "user", "content": "next"})).seq == 2001


async def test_concurrent_appends_to_several_sessions_stay_separate(store: Store) -> None:
    async def writer(session_id: str, w: int) -> None:
        s = Session(session_id, store=store)
        for i in range(50):
            await s.send_message({"role": "user", "content": f"{session_id}:{w}-{i}"})

    await asyncio.gather(*(writer(f"s{k}", w) for k in range(4) for w in range(5)))
    for k in range(4):
        expected = Counter(f"s{k}:{w}-{i}" for w in range(5) for i in range(50))
        await assert_gap_free(Session(f"s{k}", store=store), expected)


async def test_concurrent_appends_with_state_writes_and_reads(store: Store) -> None:
    s = Session("mixed", user_id="u", store=store)

    async def appender(w: int) -> None:
        for i in range(50):
            await s.send_message({"role": "user", "content": f"a{w}-{i}"})

    async def stater(w: int) -> None:
        for i in range(50):
            s.set_state(f"key{w}", i)
            await asyncio.sleep(0)

    async def reader() -> None:
        for _ in range(50):
            seqs = [m.seq for m in await s.history(limit=20)]
            assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)

    await asyncio.gather(*(appender(w) for w in range(5)), *(stater(w) for w in range(3)), reader())
    await assert_gap_free(s, Counter(f"a{w}-{i}" for w in range(5) for i in range(50)))
    assert s.state() == {f"key{w}": 49 for w in range(3)}


def each_writer_interleaved(writers: Sequence[Any]) -> None:
    """The writers overlapped: their items interleave, not one writer's block, then the next one's.

    Not every writer need be split: on SQLite the writers waiting for the file lock back off
    (sleeps of up to 100 ms) while the holder may finish all its appends, so one writer's items
    can land in one block although every writer was running."""
    counts = _workers.runs(writers)
    assert len(counts) > 1 and sum(counts.values()) > len(counts), (
        f"writers did not interleave: runs {counts}"
    )


def writer_of(history: list[Any]) -> list[str]:
    return [m["content"].split("-")[0] for m in history]


def increments_interleaved(written: list[list[int]], total: int) -> None:
    """Every increment wrote a different value, 1 to `total` (none lost, none repeated), and the
    writers took turns (each one's values are not one contiguous range)."""
    owner = {v: w for w, values in enumerate(written) for v in values}
    assert sorted(v for values in written for v in values) == list(range(1, total + 1))
    each_writer_interleaved([owner[v] for v in range(1, total + 1)])


async def test_two_processes_append_to_one_database_file(store_env: StoreEnv, store: Store) -> None:
    await Session("shared", app_name="app", user_id="u", store=store).save()
    await asyncio.to_thread(
        _workers.race, _workers.append_messages, [(store_env.url, "shared", w, 500) for w in range(2)]
    )
    s = Session("shared", store=store)
    expected = Counter(f"w{w}-{i}" for w in range(2) for i in range(500))
    await assert_gap_free(s, expected)
    history = await s.history()
    each_writer_in_order(history, 2, 500, "w")
    each_writer_interleaved(writer_of(history))


async def test_two_processes_update_one_entity_key(store_env: StoreEnv, store: Store) -> None:
    written = await asyncio.to_thread(
        _workers.race, _workers.entity_increments, [(store_env.url, "counter", "n", 1000) for _ in range(2)]
    )
    assert await Entity("counter", store=store).get("n") == 2000
    increments_interleaved(written, 2000)


async def test_four_processes_append_250_each_to_one_session(store_env: StoreEnv, store: Store) -> None:
    # The session is created by the racing writers themselves (no save() first).
    await asyncio.to_thread(
        _workers.race, _workers.append_messages, [(store_env.url, "four", w, 250) for w in range(4)]
    )
    s = Session("four", store=store)
    await assert_gap_free(s, Counter(f"w{w}-{i}" for w in range(4) for i in range(250)))
    history = await s.history()
    each_writer_in_order(history, 4, 250, "w")
    each_writer_interleaved(writer_of(history))
    header = await store.get_session("four")
    assert header is not None and header.message_count == 1000


async def test_four_processes_update_one_entity_key_500_times_each(store_env: StoreEnv, store: Store) -> None:
    written = await asyncio.to_thread(
        _workers.race, _workers.entity_increments, [(store_env.url, "counter", "n", 500) for _ in range(4)]
    )
    assert await Entity("counter", store=store).get("n") == 2000
    increments_interleaved(written, 2000)


async def test_processes_and_tasks_update_one_entity_key_together(store_env: StoreEnv, store: Store) -> None:
    entity = Entity("counter", store=store)
    await entity.get("n")
    go = multiprocessing.get_context("spawn").Event()  # releases the process and the tasks together

    async def local() -> list[int]:
        await asyncio.to_thread(go.wait, 60)
        return [await entity.update("n", lambda v: (v or 0) + 1) for _ in range(300)]

    processes = asyncio.to_thread(
        _workers.race, _workers.entity_increments, [(store_env.url, "counter", "n", 300)], go
    )
    [remote], *tasks = await asyncio.gather(processes, local(), local())
    assert await entity.get("n") == 900
    increments_interleaved([remote, *tasks], 900)
