"""The embedded SQLite store: pragmas, locking, schema versions and migrations, query plans."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agnt5 import Entity, Session
from agnt5.errors import SchemaVersionError, StoreError
from agnt5.store import Store
from agnt5.store import migrations as migrations_module
from agnt5.store import sqlite as sqlite_module
from agnt5.store.base import NewEvent
from agnt5.store.migrations import LATEST_VERSION, MIGRATIONS
from agnt5.store.sqlite import BUSY_TIMEOUT_MS, SqliteStore, schema_version


@pytest.fixture
def store(sqlite_store: SqliteStore) -> SqliteStore:
    """These tests are about SQLite itself (pragmas, locks, files, query plans): SQLite only."""
    return sqlite_store


def on_connection(store: SqliteStore, fn: Callable[[sqlite3.Connection], Any]) -> Any:
    """Run `fn` on the store's own connection (per-connection settings are only visible there)."""
    return store._call_sync(fn)


def file_version(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return schema_version(conn)
    finally:
        conn.close()


def tables(db: Path) -> set[str]:
    conn = sqlite3.connect(db)
    try:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        conn.close()


async def fill(store: SqliteStore, session_id: str, n: int) -> Session:
    s = Session(session_id, store=store)
    for start in range(0, n, 1000):
        await s.send_messages(
            [{"role": "user", "content": f"m{i}"} for i in range(start, min(n, start + 1000))]
        )
    return s


def test_implements_the_store_protocol() -> None:
    store = SqliteStore()
    assert isinstance(store, Store)
    assert store.supports_sync is True


# --- pragmas and locking -------------------------------------------------------------------------


async def test_wal_mode_and_busy_timeout(store: SqliteStore, db_path: Path) -> None:
    await Entity("e", store=store).set("k", 1)
    assert on_connection(store, lambda c: c.execute("PRAGMA journal_mode").fetchone()[0]) == "wal"
    assert on_connection(store, lambda c: c.execute("PRAGMA busy_timeout").fetchone()[0]) == BUSY_TIMEOUT_MS
    assert BUSY_TIMEOUT_MS >= 5000
    # WAL is a property of the file: every other connection sees it too.
    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


async def test_busy_timeout_is_configurable(db_path: Path) -> None:
    store = SqliteStore(str(db_path), busy_timeout_ms=1234)
    try:
        assert on_connection(store, lambda c: c.execute("PRAGMA busy_timeout").fetchone()[0]) == 1234
    finally:
        await store.close()


def _hold_write_lock(db: Path, seconds: float, locked: threading.Event) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    locked.set()
    time.sleep(seconds)
    conn.execute("COMMIT")
    conn.close()


async def test_writers_wait_for_another_connections_lock(store: SqliteStore, db_path: Path) -> None:
    s = Session("locked", store=store)
    await s.send_message({"role": "user", "content": "before"})
    locked = threading.Event()
    holder = threading.Thread(target=_hold_write_lock, args=(db_path, 0.4, locked))
    holder.start()
    locked.wait()
    started = time.monotonic()
    await s.send_message({"role": "user", "content": "after"})
    s.set_state("k", 1)
    await Entity("e", store=store).set("k", 1)
    assert time.monotonic() - started >= 0.2  # it waited instead of failing
    holder.join()
    assert [m["content"] for m in await s.history()] == ["before", "after"]


async def test_a_lock_held_beyond_the_timeout_is_a_store_error(db_path: Path) -> None:
    store = SqliteStore(str(db_path), busy_timeout_ms=50)
    try:
        s = Session("impatient", store=store)
        await s.send_message({"role": "user", "content": "first"})
        locked = threading.Event()
        holder = threading.Thread(target=_hold_write_lock, args=(db_path, 1.0, locked))
        holder.start()
        locked.wait()
        with pytest.raises(StoreError, match="locked"):
            await s.send_message({"role": "user", "content": "blocked"})
        with pytest.raises(StoreError):
            s.set_state("k", 1)
        holder.join()
        # Nothing half-written; the store still works once the lock is gone.
        assert [m["content"] for m in await s.history()] == ["first"]
        assert (await s.send_message({"role": "user", "content": "later"})).seq == 2
        assert s.get_state("k") is None
    finally:
        await store.close()


async def test_closed_store_refuses_work(db_path: Path) -> None:
    store = SqliteStore(str(db_path))
    await Entity("e", store=store).set("k", 1)
    await store.close()
    with pytest.raises(StoreError, match="closed"):
        await Entity("e", store=store).get("k")
    with pytest.raises(StoreError):
        await Session("s", store=store).send_message({"role": "user", "content": "x"})


async def test_memory_stores_are_private() -> None:
    a, b = SqliteStore(":memory:"), SqliteStore("sqlite:///:memory:")
    try:
        await Entity("e", store=a).set("k", 1)
        assert await Entity("e", store=a).get("k") == 1
        assert await Entity("e", store=b).get("k") is None
    finally:
        await a.close()
        await b.close()


# --- schema versions and migrations --------------------------------------------------------------


async def test_a_new_database_is_at_the_latest_version(store: SqliteStore, db_path: Path) -> None:
    await Entity("e", store=store).set("k", 1)
    assert LATEST_VERSION == MIGRATIONS[-1][0]
    assert [v for v, _ in MIGRATIONS] == list(range(1, LATEST_VERSION + 1))
    assert file_version(db_path) == LATEST_VERSION
    assert {"kv", "sessions", "messages", "state", "events", "agnt5_meta"} <= tables(db_path)


async def test_reopening_does_not_migrate_again(db_path: Path) -> None:
    for _ in range(3):
        store = SqliteStore(str(db_path))
        await Entity("e", store=store).update("n", lambda v: (v or 0) + 1)
        await store.close()
    store = SqliteStore(str(db_path))
    try:
        assert await Entity("e", store=store).get("n") == 3
    finally:
        await store.close()
    assert file_version(db_path) == LATEST_VERSION


async def test_a_database_from_a_newer_version_is_refused(db_path: Path) -> None:
    store = SqliteStore(str(db_path))
    await Entity("e", store=store).set("k", 1)
    await store.close()
    conn = sqlite3.connect(db_path)
    conn.execute("UPDATE agnt5_meta SET value = ? WHERE key = 'schema_version'", (str(LATEST_VERSION + 1),))
    conn.commit()
    conn.close()

    threads_before = threading.active_count()
    newer = SqliteStore(str(db_path))
    with pytest.raises(SchemaVersionError, match=str(LATEST_VERSION + 1)):
        await Entity("e", store=newer).get("k")
    with pytest.raises(SchemaVersionError):
        Session("s", store=newer).get_state("k")
    assert isinstance(SchemaVersionError("x"), StoreError)
    await newer.close()
    # A refused open leaves no connection thread behind.
    for _ in range(50):
        if threading.active_count() <= threads_before:
            break
        await asyncio.sleep(0.01)
    assert threading.active_count() <= threads_before
    assert file_version(db_path) == LATEST_VERSION + 1  # and nothing was changed


NEXT = (
    LATEST_VERSION + 1,
    """
    ALTER TABLE sessions ADD COLUMN tags_for_test TEXT NOT NULL DEFAULT '[]';
    CREATE TABLE table_for_test (id INTEGER PRIMARY KEY, text TEXT NOT NULL);
    CREATE INDEX table_for_test_by_text ON table_for_test (text);
    INSERT INTO table_for_test (text) SELECT id FROM sessions
    """,
)


def use_migrations(monkeypatch: pytest.MonkeyPatch, steps: list[tuple[int, str]]) -> None:
    monkeypatch.setattr(migrations_module, "MIGRATIONS", steps)
    monkeypatch.setattr(sqlite_module, "MIGRATIONS", steps)
    monkeypatch.setattr(migrations_module, "LATEST_VERSION", steps[-1][0])
    monkeypatch.setattr(sqlite_module, "LATEST_VERSION", steps[-1][0])


async def test_an_existing_database_is_migrated_to_a_next_version_keeping_its_data(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = SqliteStore(str(db_path))
    s = Session("kept", app_name="app", user_id="u", metadata={"m": 1}, store=old)
    await s.send_message({"role": "user", "content": "written before"})
    s.set_state("lang", "en", scope="user")
    await Entity("e", store=old).set("k", [1, 2])
    await old.close()
    assert file_version(db_path) == LATEST_VERSION

    use_migrations(monkeypatch, [*MIGRATIONS, NEXT])
    new = SqliteStore(str(db_path))
    try:
        fresh = Session("kept", store=new)
        assert fresh.get_state("lang", scope="user") == "en"
        assert [m["content"] for m in await fresh.history()] == ["written before"]
        assert fresh.metadata == {"m": 1}
        assert await Entity("e", store=new).get("k") == [1, 2]
        await fresh.send_message({"role": "assistant", "content": "written after"})
        assert [m.seq for m in await fresh.history()] == [1, 2]
        assert on_connection(new, lambda c: c.execute("SELECT tags_for_test FROM sessions").fetchall()) == [
            ("[]",)
        ]
        assert on_connection(new, lambda c: c.execute("SELECT text FROM table_for_test").fetchall()) == [
            ("kept",)
        ]
    finally:
        await new.close()
    assert file_version(db_path) == LATEST_VERSION + 1

    # The previous version refuses the newer database rather than misreading it.
    monkeypatch.undo()
    older = SqliteStore(str(db_path))
    with pytest.raises(SchemaVersionError):
        await Session("kept", store=older).history()
    await older.close()


async def test_a_version_1_database_is_migrated_to_the_latest_keeping_its_data(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_migrations(monkeypatch, MIGRATIONS[:1])
    old = SqliteStore(str(db_path))
    s = Session("v1", app_name="app", user_id="u", store=old)
    await s.send_message({"role": "user", "content": "from version 1"})
    s.set_state("k", {"nested": [1]})
    s.set_state("lang", "en", scope="user")
    await Entity("e", store=old).set("k", 1)
    await old.close()
    assert file_version(db_path) == 1
    before = tables(db_path)

    monkeypatch.undo()
    new = SqliteStore(str(db_path))
    try:
        fresh = Session("v1", store=new)
        assert fresh.get_state("k") == {"nested": [1]}
        assert fresh.get_state("lang", scope="user") == "en"
        assert [m["content"] for m in await fresh.history()] == ["from version 1"]
        assert await Entity("e", store=new).get("k") == 1
        assert (await fresh.send_message({"role": "user", "content": "after"})).seq == 2
    finally:
        await new.close()
    assert file_version(db_path) == LATEST_VERSION
    assert before <= tables(db_path)


async def test_a_failing_migration_is_rolled_back_whole(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = SqliteStore(str(db_path))
    await Entity("e", store=old).set("k", "v1 data")
    await old.close()

    broken = (LATEST_VERSION + 1, "CREATE TABLE half_done (a); INSERT INTO no_such_table VALUES (1)")
    use_migrations(monkeypatch, [*MIGRATIONS, broken])
    store = SqliteStore(str(db_path))
    with pytest.raises(StoreError, match="no_such_table"):
        await Entity("e", store=store).get("k")
    await store.close()
    assert file_version(db_path) == LATEST_VERSION
    assert "half_done" not in tables(db_path)

    use_migrations(monkeypatch, [*MIGRATIONS, NEXT])
    store = SqliteStore(str(db_path))
    try:
        assert await Entity("e", store=store).get("k") == "v1 data"
    finally:
        await store.close()
    assert file_version(db_path) == LATEST_VERSION + 1


# --- reading the newest messages costs the same at any length ------------------------------------


def capture_sql(store: SqliteStore) -> list[str]:
    statements: list[str] = []
    on_connection(store, lambda c: c.set_trace_callback(statements.append))
    return statements


def stop_capture(store: SqliteStore) -> None:
    on_connection(store, lambda c: c.set_trace_callback(None))


def plan(store: SqliteStore, sql: str) -> list[str]:
    return [r[3] for r in on_connection(store, lambda c: c.execute("EXPLAIN QUERY PLAN " + sql).fetchall())]


async def test_history_limit_uses_the_index_without_sorting(store: SqliteStore) -> None:
    s = await fill(store, "long", 300)
    await fill(store, "other", 50)
    on_connection(store, lambda c: c.execute("ANALYZE"))
    for limit in (50, None):
        statements = capture_sql(store)
        await s.history(limit=limit)
        stop_capture(store)
        reads = [q for q in statements if "FROM messages" in q and q.lstrip().upper().startswith("SELECT")]
        assert reads, statements
        for sql in reads:
            details = plan(store, sql)
            assert any(d.startswith("SEARCH") for d in details), details
            assert not any(d.startswith("SCAN") for d in details), details
            assert not any("TEMP B-TREE" in d for d in details), details


async def test_history_limit_work_does_not_grow_with_the_session(store: SqliteStore) -> None:
    short = await fill(store, "short", 100)
    long = await fill(store, "long", 10_000)

    async def vm_steps(session: Session) -> int:
        steps = [0]

        def tick() -> int:
            steps[0] += 1
            return 0

        on_connection(store, lambda c: c.set_progress_handler(tick, 10))
        try:
            result = await session.history(limit=50)
        finally:
            on_connection(store, lambda c: c.set_progress_handler(None, 10))
        assert len(result) == 50
        return steps[0]

    short_steps = await vm_steps(short)
    long_steps = await vm_steps(long)
    assert [m["content"] for m in await long.history(limit=50)] == [f"m{i}" for i in range(9950, 10_000)]
    assert long_steps <= short_steps * 1.5 + 10, (short_steps, long_steps)
    # The measure is sensitive: reading the whole long session costs far more.
    steps = [0]

    def tick() -> int:
        steps[0] += 1
        return 0

    on_connection(store, lambda c: c.set_progress_handler(tick, 10))
    await long.history()
    on_connection(store, lambda c: c.set_progress_handler(None, 10))
    assert steps[0] > long_steps * 20


async def test_an_append_writes_each_table_with_one_statement(store: SqliteStore) -> None:
    """A step (messages and events) reaches SQLite as one INSERT per table, 16 rows at most each:
    every statement is a call that releases and retakes the GIL, which costs a wait whenever
    another thread is busy. Seqs and event ids stay gap-free across the chunks."""
    s = Session("step", store=store)
    await s.send_message({"role": "user", "content": "first"})  # the session exists
    step = [
        ({"role": "assistant", "content": None, "tool_calls": [_call("c1"), _call("c2")]}, {"agent": "a"}),
        ({"role": "tool", "tool_call_id": "c1", "content": "r1"}, {"agent": "a"}),
        ({"role": "tool", "tool_call_id": "c2", "content": "r2"}, {"agent": "a"}),
    ]
    events = [NewEvent("tool_call", {"n": i}) for i in range(4)]
    statements = capture_sql(store)
    stored = await s._append(step, events)
    stop_capture(store)
    inserts = [q.split("(")[0].strip() for q in statements if q.lstrip().upper().startswith("INSERT")]
    assert inserts == ["INSERT INTO messages", "INSERT INTO events"], statements
    assert [m.seq for m in stored] == [2, 3, 4]

    many = [({"role": "user", "content": f"m{i}"}, {}) for i in range(40)]
    statements = capture_sql(store)
    stored = await s._append(many, [NewEvent("bulk", {"n": i}) for i in range(17)])
    stop_capture(store)
    inserts = [q.split("(")[0].strip() for q in statements if q.lstrip().upper().startswith("INSERT")]
    assert inserts == ["INSERT INTO messages"] * 3 + ["INSERT INTO events"] * 2, statements
    assert [m.seq for m in stored] == list(range(5, 45))
    history = await Session("step", store=store).history()
    assert [m.seq for m in history] == list(range(1, 45))
    assert [m["content"] for m in history[4:]] == [f"m{i}" for i in range(40)]
    trail = await s.events()
    custom = [e for e in trail if e.type in ("tool_call", "bulk")]
    assert [e.data["n"] for e in custom] == [*range(4), *range(17)]
    ids = [e.id for e in trail]
    assert ids == sorted(ids) and len(set(ids)) == len(ids) == 44 + 21


def _call(call_id: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": "f", "arguments": "{}"}}


async def test_list_sessions_by_app_and_user_uses_the_index(store: SqliteStore) -> None:
    for i in range(30):
        await Session(f"s{i}", app_name=f"app{i % 3}", user_id=f"u{i % 5}", store=store).save()
    statements = capture_sql(store)
    page = await Session.list(app_name="app1", user_id="u1", limit=5, store=store)
    stop_capture(store)
    assert {h.app_name for h in page} == {"app1"} and {h.user_id for h in page} == {"u1"}
    [sql] = [q for q in statements if "FROM sessions" in q]
    details = plan(store, sql)
    assert not any("TEMP B-TREE" in d for d in details), details
    assert not any(d.startswith("SCAN") for d in details), details


async def test_opening_a_new_file_another_process_is_creating_waits_for_it(tmp_path: Path) -> None:
    """Another connection holds a write transaction on a file it has just created (as a process
    migrating it does): SQLite refuses "PRAGMA journal_mode = WAL" at once, without the busy
    handler. Opening the store waits for that writer instead of failing "database is locked"."""
    path = tmp_path / "new.db"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    other.execute("CREATE TABLE elsewhere (x)")
    release = threading.Timer(0.5, lambda: other.execute("COMMIT"))
    release.start()
    store = SqliteStore(str(path))
    try:
        started = time.monotonic()
        assert await store.get_session("s") is None  # opens (creates, migrates) the file
        assert time.monotonic() - started >= 0.4  # it waited for the other writer
        await Session("s", store=store).send_message({"role": "user", "content": "hi"})
        assert [m["content"] for m in await Session("s", store=store).history()] == ["hi"]
    finally:
        release.join()
        other.close()
        await store.close()


async def test_append_messages_and_set_writes_both_in_one_transaction(store: SqliteStore) -> None:
    """A tool step's messages and its journal entry's removal: one transaction. A version that
    moved on sets nothing (the caller sets it again) yet the messages are appended; a failing
    append sets nothing either."""
    s = Session("both", store=store)
    await s.send_message({"role": "user", "content": "first"})
    assert await store.kv_compare_and_set("agnt5.steps", "both", {"steps": ["one"]}, 0)
    tool_msg = [({"role": "user", "content": "second"}, {"agent": "a"})]

    statements = capture_sql(store)
    stored, written = await s._append_and_set(
        tool_msg, [NewEvent("e", {})], ("agnt5.steps", "both", {"steps": []}, 1)
    )
    stop_capture(store)
    assert written and [m.seq for m in stored] == [2]
    assert await store.kv_get("agnt5.steps", "both") == ({"steps": []}, 2)
    writes = [q.split()[0].upper() for q in statements if q.split()[0].upper() in ("BEGIN", "COMMIT")]
    assert writes == ["BEGIN", "COMMIT"], statements

    stale = ("agnt5.steps", "both", {"steps": ["lost"]}, 1)
    stored, written = await s._append_and_set(tool_msg, [], stale)
    assert not written and [m.seq for m in stored] == [3]
    assert await store.kv_get("agnt5.steps", "both") == ({"steps": []}, 2)

    never = ("agnt5.steps", "both", {"steps": ["never"]}, 0)  # only an update is combined
    stored, written = await s._append_and_set(tool_msg, [], never)
    assert not written and [m.seq for m in stored] == [4]

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise sqlite3.OperationalError("disk I/O error")

    real = sqlite_module._insert_append
    sqlite_module._insert_append = broken  # type: ignore[assignment]
    try:
        with pytest.raises(StoreError, match="disk I/O error"):
            await s._append_and_set(tool_msg, [], ("agnt5.steps", "both", {"steps": ["x"]}, 2))
    finally:
        sqlite_module._insert_append = real  # type: ignore[assignment]
    assert await store.kv_get("agnt5.steps", "both") == ({"steps": []}, 2)
    assert [m.seq for m in await Session("both", store=store).history()] == [1, 2, 3, 4]
