"""The PostgreSQL store itself: URL selection, schema versions and migrations (advisory lock),
index use, typed connection errors with nothing half written, pools across event loops.

What every store must do (sessions, entities, pruning, memory, concurrency) is tested on both
stores by the parametrized `store` fixture; this module covers what is specific to PostgreSQL.
Tests that need the server take `pg_env` or `postgres_url` (skipped without
AGNT5_TEST_POSTGRES_URL locally; a failure when AGNT5_REQUIRE_POSTGRES=1, as in CI).
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from conftest import StoreEnv

import agnt5
from agnt5 import Entity, Session, config
from agnt5.errors import (
    ConfigurationError,
    SchemaVersionError,
    StoreAuthenticationError,
    StoreConnectionError,
    StoreConnectionLostError,
    StoreError,
)
from agnt5.store import Store, open_store
from agnt5.store import postgres as postgres_module
from agnt5.store.base import NewEvent
from agnt5.store.migrations import MIGRATIONS
from agnt5.store.migrations_postgres import POSTGRES_LATEST_VERSION, POSTGRES_MIGRATIONS
from agnt5.store.postgres import PostgresStore

# --- no server needed ------------------------------------------------------------------------------


def test_both_stores_have_the_same_migration_versions() -> None:
    """A schema version means the same tables on either store: every step exists on both."""
    assert [v for v, _ in POSTGRES_MIGRATIONS] == [v for v, _ in MIGRATIONS]
    assert POSTGRES_LATEST_VERSION == MIGRATIONS[-1][0]


def test_implements_the_store_protocol_without_sync_access() -> None:
    store = PostgresStore("postgresql://u:secret@localhost:5432/db")
    assert isinstance(store, Store)
    assert store.supports_sync is False
    assert not hasattr(store, "get_state_sync")
    assert "secret" not in repr(store) and "u:***@localhost" in repr(store)


@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "POSTGRESQL"])
def test_database_urls_select_the_postgres_store(scheme: str) -> None:
    store = open_store(f"{scheme}://user:pw@db.example:6543/agnt5?sslmode=disable&schema=tenant_1")
    assert isinstance(store, PostgresStore)
    assert store.schema == "tenant_1"
    assert "pw" not in store.url  # the public URL is masked; the password lives only in the DSN
    dsn, schema = store._dsn, store.schema
    assert schema == "tenant_1" and "schema=" not in dsn and "sslmode=disable" in dsn
    assert dsn.startswith("postgresql://user:pw@db.example:6543/agnt5")


def test_configure_and_environment_select_the_postgres_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGNT5_DATABASE_URL", "postgres://u:pw@h/db")
    assert isinstance(config.default_store(), PostgresStore)
    config.reset()
    agnt5.configure(database_url="postgresql://u:pw@h/other")
    assert isinstance(Session("s").store, PostgresStore) and isinstance(Entity("e").store, PostgresStore)


@pytest.mark.parametrize(
    "url",
    ["postgresql://u:hunter2@h/db?schema=1bad", "postgresql://u:hunter2@h/db?schema=a-b", "postgresql://"],
)
def test_bad_postgres_urls_raise_configuration_error(url: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        open_store(url)
    assert "hunter2" not in str(info.value)


# --- schema versions and migrations ------------------------------------------------------------------


async def tables(env: StoreEnv) -> set[str]:
    rows = await asyncio.to_thread(
        env.rows, "SELECT table_name FROM information_schema.tables WHERE table_schema = ?", env.schema
    )
    return {r[0] for r in rows}


async def version(env: StoreEnv) -> int:
    [(value,)] = await asyncio.to_thread(
        env.rows, "SELECT value FROM agnt5_meta WHERE key = 'schema_version'"
    )
    return int(value)


async def test_a_new_database_is_created_at_the_latest_version(pg_env: StoreEnv) -> None:
    store = pg_env.open()
    try:
        await Entity("e", store=store).set("k", 1)
    finally:
        await store.close()
    assert await version(pg_env) == POSTGRES_LATEST_VERSION
    expected = {"kv", "sessions", "messages", "pruned_messages", "state", "events", "agnt5_meta"}
    assert expected | {"memories", "memory_namespaces", "message_scores"} <= await tables(pg_env)


async def test_many_processes_opening_a_new_database_at_once_migrate_it_once(pg_env: StoreEnv) -> None:
    """The advisory lock: eight pools (eight server sessions) race to create the schema."""
    stores = [pg_env.open() for _ in range(8)]
    try:
        await asyncio.gather(*(Entity("e", store=s).update("n", lambda v: (v or 0) + 1) for s in stores))
        assert await Entity("e", store=stores[0]).get("n") == 8
    finally:
        await asyncio.gather(*(s.close() for s in stores))
    assert await version(pg_env) == POSTGRES_LATEST_VERSION


async def test_a_database_from_a_newer_version_is_refused(pg_env: StoreEnv) -> None:
    store = pg_env.open()
    await Entity("e", store=store).set("k", 1)
    await store.close()
    await asyncio.to_thread(
        pg_env.rows,
        "UPDATE agnt5_meta SET value = ? WHERE key = 'schema_version' RETURNING value",
        str(POSTGRES_LATEST_VERSION + 1),
    )
    newer = pg_env.open()
    with pytest.raises(SchemaVersionError, match=str(POSTGRES_LATEST_VERSION + 1)):
        await Entity("e", store=newer).get("k")
    with pytest.raises(SchemaVersionError):  # and again: a failed open is retried, and refused
        await Session("s", store=newer).history()
    await newer.close()
    assert await version(pg_env) == POSTGRES_LATEST_VERSION + 1


NEXT = (
    POSTGRES_LATEST_VERSION + 1,
    """
    ALTER TABLE sessions ADD COLUMN tags_for_test TEXT NOT NULL DEFAULT '[]';
    CREATE TABLE table_for_test (id BIGSERIAL PRIMARY KEY, text TEXT NOT NULL);
    INSERT INTO table_for_test (text) SELECT id FROM sessions;
    """,
)


def use_migrations(monkeypatch: pytest.MonkeyPatch, steps: list[tuple[int, str]]) -> None:
    monkeypatch.setattr(postgres_module, "POSTGRES_MIGRATIONS", steps)
    monkeypatch.setattr(postgres_module, "POSTGRES_LATEST_VERSION", steps[-1][0])


async def write_some(store: Store, session_id: str) -> None:
    s = Session(session_id, app_name="app", user_id="u", metadata={"m": 1}, store=store)
    await s.send_message({"role": "user", "content": "written before"})
    s.set_state("lang", "en", scope="user")
    await s.flush()
    await Entity("e", store=store).set("k", [1, 2])


async def test_an_existing_database_is_migrated_to_a_next_version_keeping_its_data(
    pg_env: StoreEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = pg_env.open()
    await write_some(old, "kept")
    await old.close()

    use_migrations(monkeypatch, [*POSTGRES_MIGRATIONS, NEXT])
    new = pg_env.open()
    try:
        fresh = await Session("kept", store=new).load()
        assert fresh.get_state("lang", scope="user") == "en" and fresh.metadata == {"m": 1}
        assert [m["content"] for m in await fresh.history()] == ["written before"]
        assert await Entity("e", store=new).get("k") == [1, 2]
        assert (await fresh.send_message({"role": "assistant", "content": "after"})).seq == 2
    finally:
        await new.close()
    assert await version(pg_env) == POSTGRES_LATEST_VERSION + 1
    assert await asyncio.to_thread(pg_env.rows, "SELECT text FROM table_for_test") == [("kept",)]

    monkeypatch.undo()  # the previous version refuses the newer database rather than misreading it
    older = pg_env.open()
    with pytest.raises(SchemaVersionError):
        await Session("kept", store=older).history()
    await older.close()


async def test_a_version_1_database_is_migrated_to_the_latest_keeping_its_data(
    pg_env: StoreEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_migrations(monkeypatch, POSTGRES_MIGRATIONS[:1])
    old = pg_env.open()
    await write_some(old, "v1")
    await old.close()
    assert await version(pg_env) == 1
    assert "memories" not in await tables(pg_env)

    monkeypatch.undo()
    new = pg_env.open()
    try:
        fresh = await Session("v1", store=new).load()
        assert fresh.get_state("lang", scope="user") == "en"
        assert (await fresh.send_message({"role": "user", "content": "after"})).seq == 2
        assert await new.memory_version('["app","u"]') == 0
    finally:
        await new.close()
    assert await version(pg_env) == POSTGRES_LATEST_VERSION


async def test_a_failing_migration_is_rolled_back_whole(
    pg_env: StoreEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = pg_env.open()
    await Entity("e", store=old).set("k", "old data")
    await old.close()

    broken = (
        POSTGRES_LATEST_VERSION + 1,
        "CREATE TABLE half_done (a int); INSERT INTO no_such_table VALUES (1);",
    )
    use_migrations(monkeypatch, [*POSTGRES_MIGRATIONS, broken])
    store = pg_env.open()
    with pytest.raises(StoreError, match="no_such_table"):
        await Entity("e", store=store).get("k")
    await store.close()
    assert await version(pg_env) == POSTGRES_LATEST_VERSION
    assert "half_done" not in await tables(pg_env)

    use_migrations(monkeypatch, [*POSTGRES_MIGRATIONS, NEXT])
    store = pg_env.open()
    try:
        assert await Entity("e", store=store).get("k") == "old data"
    finally:
        await store.close()
    assert await version(pg_env) == POSTGRES_LATEST_VERSION + 1


# --- reading the newest messages costs the same at any length ------------------------------------------


async def fill(store: Store, session_id: str, n: int) -> Session:
    s = Session(session_id, store=store)
    for start in range(0, n, 1000):
        await s.send_messages(
            [{"role": "user", "content": f"m{i}"} for i in range(start, min(n, start + 1000))]
        )
    return s


async def test_history_limit_reads_the_index_backwards_at_a_flat_cost(pg_env: StoreEnv) -> None:
    store = pg_env.open()
    try:
        await fill(store, "short", 100)
        long = await fill(store, "long", 10_000)
        assert [m["content"] for m in await long.history(limit=50)] == [f"m{i}" for i in range(9950, 10_000)]
    finally:
        await store.close()
    await asyncio.to_thread(pg_env.rows, "ANALYZE")
    sql = "SELECT pos, seq, tokens, entry FROM messages WHERE session_id = ? ORDER BY pos DESC LIMIT 50"

    def plan(session_id: str) -> tuple[str, int]:
        rows = pg_env.rows("EXPLAIN (ANALYZE, BUFFERS, FORMAT TEXT) " + sql, session_id)
        text = "\n".join(r[0] for r in rows)
        buffers = sum(int(n) for part in text.split("Buffers: shared ")[1:2] for n in _numbers(part))
        return text, buffers

    short_plan, short_buffers = await asyncio.to_thread(plan, "short")
    long_plan, long_buffers = await asyncio.to_thread(plan, "long")
    for text in (short_plan, long_plan):
        assert "Index Scan Backward" in text and "Sort" not in text, text
    assert long_buffers <= short_buffers * 1.5 + 4, (short_plan, long_plan)


def _numbers(part: str) -> list[str]:
    """The counts in `hit=12 read=3` (up to the end of that line)."""
    line = part.splitlines()[0]
    return [kv.split("=")[1] for kv in line.split() if "=" in kv]


# --- errors: typed, URL with the password masked, nothing half written ---------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def with_netloc(url: str, **change: Any) -> str:
    parts = urlsplit(url)
    user = change.get("user", parts.username)
    password = change.get("password", parts.password)
    host = change.get("host", parts.hostname)
    port = change.get("port", parts.port)
    netloc = f"{user}:{password}@{host}:{port}"
    return urlunsplit((parts.scheme, netloc, change.get("path", parts.path), parts.query, parts.fragment))


async def test_connection_refused_is_a_typed_error_with_the_url_masked() -> None:
    url = f"postgresql://agnt5:s3cret-pw@127.0.0.1:{free_port()}/agnt5"
    store = PostgresStore(url, connect_timeout=5)
    with pytest.raises(StoreConnectionError) as info:
        await Session("s", store=store).send_message({"role": "user", "content": "x"})
    error = info.value
    assert isinstance(error, StoreError) and not isinstance(error, StoreConnectionLostError)
    assert (
        "s3cret-pw" not in str(error)
        and error.url == f"postgresql://agnt5:***@127.0.0.1:{url.rsplit(':', 1)[1]}"
    )
    assert error.url in str(error)
    with pytest.raises(StoreConnectionError):  # the next call tries again (and fails again)
        await Entity("e", store=store).get("k")
    await store.close()


async def test_authentication_failure_is_a_typed_error_with_the_url_masked(postgres_url: str) -> None:
    url = with_netloc(postgres_url, password="wrong-password-123")
    store = PostgresStore(url)
    with pytest.raises(StoreAuthenticationError) as info:
        await Entity("e", store=store).set("k", 1)
    assert isinstance(info.value, StoreConnectionError)
    assert "wrong-password-123" not in str(info.value) and ":***@" in str(info.value)
    await store.close()


async def test_an_unknown_database_is_a_connection_error(postgres_url: str) -> None:
    store = PostgresStore(with_netloc(postgres_url, path="/no_such_database_here"))
    with pytest.raises(StoreConnectionError, match="no_such_database_here") as info:
        await Entity("e", store=store).get("k")
    password = urlsplit(postgres_url).password
    assert password is None or password not in str(info.value)
    await store.close()


async def _kill_when_waiting(env: StoreEnv, needle: str) -> int:
    """Terminate the server session whose statement containing `needle` waits for a lock."""
    assert env.schema is not None
    admin = await asyncpg.connect(env.url.split("?")[0])
    try:
        for _ in range(500):
            pid = await admin.fetchval(
                "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE $1 "
                "AND pid <> pg_backend_pid()",
                f"%{needle}%",
            )
            if pid is not None:
                assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
                return int(pid)
            await asyncio.sleep(0.01)
    finally:
        await admin.close()
    raise AssertionError(f"no statement with {needle!r} ever waited")


async def _blocker(env: StoreEnv) -> asyncpg.Connection:
    conn = await asyncpg.connect(env.url.split("?")[0], server_settings={"search_path": f'"{env.schema}"'})
    await conn.execute("BEGIN")
    return conn


async def test_a_connection_dropped_mid_append_stores_nothing(pg_env: StoreEnv) -> None:
    store = pg_env.open()
    try:
        s = Session("drop", app_name="app", store=store)
        await s.send_messages([{"role": "user", "content": "one"}, {"role": "assistant", "content": "two"}])
        # The append writes its message and, in the same statement, an event whose id another
        # transaction holds (uncommitted): the statement waits there, and its connection is killed.
        blocker = await _blocker(pg_env)
        try:
            await blocker.execute(
                "INSERT INTO events (session_id, id, created_at, type, data) VALUES ('drop', 4, 0, 'x', '{}')"
            )
            append = asyncio.ensure_future(
                s._append([({"role": "user", "content": "three"}, {})], [NewEvent("custom", {"n": 3})])
            )
            await _kill_when_waiting(pg_env, "INSERT INTO events")
            with pytest.raises(StoreConnectionLostError) as info:
                await append
        finally:
            await blocker.close()  # its transaction rolls back
        assert ":***@" in str(info.value) and "nothing was half written" in str(info.value)
        # Nothing of it was stored: no message, no event, no seq used; the store goes on working.
        assert [m["content"] for m in await s.history()] == ["one", "two"]
        assert [e.type for e in await s.events()] == ["message_appended"] * 2
        assert (await s.send_message({"role": "user", "content": "three"})).seq == 3
        header = await store.get_session("drop")
        assert header is not None and header.message_count == 3
    finally:
        await store.close()


async def test_a_connection_dropped_mid_transaction_rolls_it_back(pg_env: StoreEnv) -> None:
    """clear() is several statements (tombstones, delete, counter, event); killed at the last."""
    store = pg_env.open()
    try:
        s = Session("clear", store=store)
        await s.send_messages([{"role": "user", "content": f"m{i}"} for i in range(5)])
        before_events = await s.events()
        blocker = await _blocker(pg_env)
        try:
            await blocker.execute(
                "INSERT INTO events (session_id, id, created_at, type, data) VALUES ('clear', 6, 0, 'x', '{}')"
            )
            clearing = asyncio.ensure_future(s.clear())
            await _kill_when_waiting(pg_env, "INSERT INTO events")
            with pytest.raises(StoreConnectionLostError):
                await clearing
        finally:
            await blocker.close()
        everything = await s.history(include_pruned=True)
        assert [(m["content"], m.pruned) for m in everything] == [(f"m{i}", False) for i in range(5)]
        assert await s.events() == before_events
        assert await s.clear() == 5  # and it works on a new connection
    finally:
        await store.close()


async def test_a_dropped_idle_connection_is_replaced(pg_env: StoreEnv) -> None:
    store = pg_env.open()
    try:
        await Entity("e", store=store).set("k", 1)
        admin = await asyncpg.connect(pg_env.url.split("?")[0])
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'agnt5' AND pid <> pg_backend_pid()"
        )
        await admin.close()
        for _ in range(3):  # a call may meet the dead connection once; then the pool reconnects
            try:
                assert await Entity("e", store=store).get("k") == 1
                break
            except StoreConnectionLostError:
                continue
        else:
            raise AssertionError("the store never reconnected")
        await Entity("e", store=store).set("k", 2)
        assert await Entity("e", store=store).get("k") == 2
    finally:
        await store.close()


# --- event loops ---------------------------------------------------------------------------------------


def test_one_store_works_across_event_loops(pg_env: StoreEnv) -> None:
    """A process-wide default store outlives an `asyncio.run`: the next loop gets its own pool."""
    store = pg_env.open()

    async def write(i: int) -> int:
        await Entity("e", store=store).set(f"k{i}", i)
        return len(await Entity("e", store=store).keys())

    assert [asyncio.run(write(i)) for i in range(3)] == [1, 2, 3]
    asyncio.run(store.close())


async def test_a_pool_of_one_connection_serves_concurrent_calls(pg_env: StoreEnv) -> None:
    store = PostgresStore(pg_env.url, max_size=1)
    try:
        entity = Entity("one", store=store)
        await asyncio.gather(*(entity.update("n", lambda v: (v or 0) + 1) for _ in range(30)))
        assert await entity.get("n") == 30
    finally:
        await store.close()
