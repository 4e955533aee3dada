"""A PostgreSQL store opened read-only (what `agnt5 sessions list/show/export/pending` and
`agnt5 inspect` use): reads work, every write is refused typed, and a database without agnt5's
tables is reported, never created."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import StoreEnv, _run_async

from agnt5 import Session
from agnt5.cli import EXIT_NOT_FOUND, EXIT_OK, main
from agnt5.errors import DatabaseNotFoundError, ReadOnlyStoreError, SchemaVersionError
from agnt5.store.migrations_postgres import POSTGRES_LATEST_VERSION
from agnt5.store.url import open_store

pytestmark = pytest.mark.parametrize("store_env", ["postgres"], indirect=True)


def _tables(env: StoreEnv) -> list[Any]:
    return env.rows("SELECT table_name FROM information_schema.tables WHERE table_schema = ?", env.schema)


async def test_reads_work_and_writes_are_refused(store_env: StoreEnv) -> None:
    writer = store_env.open()
    await Session("s", store=writer).send_message({"role": "user", "content": "hello"})
    await writer.close()
    reader = open_store(store_env.url, read_only=True)
    try:
        session = await Session.get("s", store=reader)
        assert [m["content"] for m in await session.history()] == ["hello"]
        with pytest.raises(ReadOnlyStoreError, match="opened read-only: the write was refused"):
            await session.send_message({"role": "user", "content": "more"})
        with pytest.raises(ReadOnlyStoreError):
            await reader.kv_set("ns", "k", 1)
    finally:
        await reader.close()
    check = store_env.open()
    try:
        assert [m["content"] for m in await Session("s", store=check).history()] == ["hello"]
    finally:
        await check.close()


async def _list_read_only(env: StoreEnv) -> None:
    reader = open_store(env.url, read_only=True)
    try:
        await Session.list(store=reader)
    finally:
        await reader.close()


async def _write_one(env: StoreEnv) -> int:
    writer = env.open()
    try:
        await Session("s", store=writer).send_message({"role": "user", "content": "hello"})
        return len(await Session.list(store=writer))
    finally:
        await writer.close()


def test_a_database_without_agnt5_tables_is_reported_and_left_alone(
    store_env: StoreEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(DatabaseNotFoundError, match=r"no agnt5 database at PostgreSQL.*creates nothing"):
        _run_async(_list_read_only(store_env))
    assert _tables(store_env) == []
    assert main(["sessions", "list", "--database-url", store_env.url]) == EXIT_NOT_FOUND
    assert "no agnt5 database" in capsys.readouterr().err
    assert _tables(store_env) == []  # the read-only command created nothing


def test_an_older_schema_is_not_migrated_by_a_reader(
    store_env: StoreEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    _run_async(_write_one(store_env))
    older = str(POSTGRES_LATEST_VERSION - 1)
    store_env.rows("UPDATE agnt5_meta SET value = ? WHERE key = 'schema_version' RETURNING value", older)
    with pytest.raises(SchemaVersionError, match="older than this agnt5's"):
        _run_async(_list_read_only(store_env))
    assert store_env.rows("SELECT value FROM agnt5_meta WHERE key = 'schema_version'") == [(older,)]
    assert main(["sessions", "list", "--database-url", store_env.url]) != EXIT_OK  # a reader never migrates
    capsys.readouterr()
    assert _run_async(_write_one(store_env)) == 1  # a writing store migrates it
    assert main(["sessions", "list", "--database-url", store_env.url]) == EXIT_OK
    capsys.readouterr()
