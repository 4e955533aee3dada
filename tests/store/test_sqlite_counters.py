"""Numbering on the embedded store (agnt5/store/_sqlite_counters.py): appends write only their
message row, so seqs, event ids and message counts are derived from a settled floor plus the
newest rows. These tests interleave every kind of write, from two stores on one file (two
processes, each with its own connection and its own next-seq hints), and check that numbers
stay unique and gap-free and counts stay exact."""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from agnt5 import Session
from agnt5.store.base import NewEvent, NewMessage, PruneWrite
from agnt5.store.migrations import LATEST_VERSION
from agnt5.store.sqlite import SqliteStore

SID = "numbered"


async def check_numbers(path: str, expected_messages: int, expected_events: int) -> None:
    """What a third process sees: gap-free seqs and event ids, and the exact active count."""
    store = SqliteStore(path)
    try:
        session = Session(SID, store=store)
        everything = await session.history(include_pruned=True)
        assert sorted(m.seq for m in everything) == list(range(1, expected_messages + 1))
        active = await session.history()
        header = await store.get_session(SID)
        if header is None:  # nothing was ever written
            assert expected_messages == expected_events == 0
            return
        assert header.message_count == len(active)
        page = await Session.list(store=store)
        assert [h.message_count for h in page] == [len(active)]
        events = await session.events()
        assert [e.id for e in events] == list(range(1, expected_events + 1))
    finally:
        await store.close()


def summary(n: int) -> NewMessage:
    return NewMessage(f"msg_summary_{n}", {"role": "system", "content": f"summary {n}"}, {}, 5)


async def prune_some(store: SqliteStore, pick: int, with_summary: bool, n: int) -> bool:
    """Prune one active message chosen by `pick` (maybe the newest), optionally adding a summary."""
    active = await store.read_messages(SID, None, False)
    if not active:
        return False
    victim = active[pick % len(active)].seq
    write = PruneWrite(
        f"prune_{n}", [victim], summary(n) if with_summary else None, NewEvent("prune", {"strategy": "test"})
    )
    await store.apply_prune(SID, write)
    return True


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(0, 1), st.integers(1, 3)),
        st.tuples(st.just("state"), st.integers(0, 1), st.just(0)),
        st.tuples(st.just("event"), st.integers(0, 1), st.just(0)),
        st.tuples(st.just("prune"), st.integers(0, 1), st.integers(0, 7)),
        st.tuples(st.just("clear"), st.integers(0, 1), st.just(0)),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=OPS)
# A summary put where a pruned message had been, then pruned itself (its tombstone collided).
@example(ops=[("append", 0, 1), ("append", 0, 3), ("prune", 0, 2), ("prune", 0, 1), ("prune", 0, 1)])
def test_numbers_stay_unique_and_gap_free_under_every_kind_of_write(ops: list[tuple[str, int, int]]) -> None:
    async def scenario(path: str) -> None:
        stores = [SqliteStore(path), SqliteStore(path)]
        messages = events = 0
        try:
            for i, (op, which, arg) in enumerate(ops):
                session = Session(SID, store=stores[which])
                if op == "append":
                    batch = [{"role": "user", "content": f"m{i}.{j}"} for j in range(arg)]
                    stored = await session.send_messages(batch)
                    assert [m.seq for m in stored] == list(range(stored[0].seq, stored[0].seq + arg))
                    messages += arg
                    events += arg
                elif op == "state":
                    session.set_state(f"k{i}", i)
                    events += 1
                elif op == "event":
                    await session.record_event("custom", {"i": i})
                    events += 1
                elif op == "prune":
                    if await prune_some(stores[which], arg, with_summary=arg % 2 == 1, n=i):
                        added = arg % 2
                        messages += added
                        events += 1 + added
                elif op == "clear" and await session.exists():
                    await session.clear()
                    events += 1
            await check_numbers(path, messages, events)
        finally:
            for store in stores:
                await store.close()

    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(scenario(str(Path(tmp) / "numbers.db")))


async def test_an_append_after_the_newest_message_is_pruned_takes_a_new_seq(db_path: Path) -> None:
    store = SqliteStore(str(db_path))
    try:
        session = Session(SID, store=store)
        await session.send_messages([{"role": "user", "content": str(i)} for i in range(3)])
        await prune_some(store, -1, with_summary=False, n=0)  # removes seq 3, the newest
        assert (await session.send_message({"role": "user", "content": "after"})).seq == 4
        await session.clear()
        assert (await session.send_message({"role": "user", "content": "after clear"})).seq == 5
    finally:
        await store.close()
    await check_numbers(str(db_path), 5, 5 + 1 + 1)


async def test_a_version_3_database_is_migrated_and_keeps_numbering(db_path: Path) -> None:
    """A file left by a version that kept exact counters in the session row (schema 3) opens at
    version 4, and numbering continues after what it holds."""
    store = SqliteStore(str(db_path))
    session = Session(SID, store=store)
    await session.send_messages([{"role": "user", "content": str(i)} for i in range(3)])
    session.set_state("k", 1)
    await store.close()
    conn = sqlite3.connect(db_path)
    with conn:  # what schema 3 wrote: exact counters, no numbering record
        conn.execute("UPDATE sessions SET next_seq = 4, next_event = 5, active_count = 3")
        conn.execute("DELETE FROM agnt5_meta WHERE key = 'session_counters'")
        conn.execute("UPDATE agnt5_meta SET value = '3' WHERE key = 'schema_version'")
    conn.close()

    store = SqliteStore(str(db_path))
    try:
        stored = await Session(SID, store=store).send_message({"role": "user", "content": "new"})
        assert stored.seq == 4
    finally:
        await store.close()
    conn = sqlite3.connect(db_path)
    meta: dict[str, Any] = dict(conn.execute("SELECT key, value FROM agnt5_meta").fetchall())
    conn.close()
    assert meta == {
        "schema_version": str(LATEST_VERSION),
        "session_counters": "floor_and_newest_rows",
        "user_state_owner": "json_pair",
    }
    await check_numbers(str(db_path), 4, 5)


async def test_a_lone_append_with_a_stale_hint_is_numbered_by_the_database(db_path: Path) -> None:
    """Each store remembers the seq its next append should take; another writer makes that hint
    stale, and the append then takes the database's number instead."""
    a, b = SqliteStore(str(db_path)), SqliteStore(str(db_path))
    try:
        seqs = []
        for i in range(10):
            store = a if i % 3 else b
            seqs.append(
                (await Session(SID, store=store).send_message({"role": "user", "content": str(i)})).seq
            )
        assert seqs == list(range(1, 11))
    finally:
        await a.close()
        await b.close()
    await check_numbers(str(db_path), 10, 10)


async def test_appends_leave_the_session_row_alone_and_settling_makes_it_exact(db_path: Path) -> None:
    store = SqliteStore(str(db_path))
    try:
        session = Session(SID, store=store)
        await session.send_message({"role": "user", "content": "first"})
        before = row(db_path)
        for i in range(5):
            await session.send_message({"role": "user", "content": str(i)})
        assert row(db_path) == before  # the floor stays where the first append found it
        await session.clear()  # settles, then removes every message
        assert row(db_path) == (7, 7, 0)  # the clear event itself is numbered past the floor
    finally:
        await store.close()


def row(db_path: Path) -> tuple[Any, ...]:
    conn = sqlite3.connect(db_path)
    try:
        return tuple(
            conn.execute(
                "SELECT next_seq, next_event, active_count FROM sessions WHERE id = ?", (SID,)
            ).fetchone()
        )
    finally:
        conn.close()
