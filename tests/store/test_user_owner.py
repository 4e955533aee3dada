"""User state belongs to one (app, user) pair: owners that cannot collide, and schema version 5
moving state written under the old `f"{app}\\x1f{user}"` owners (issue 11, defect 2)."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from conftest import FIXTURES, StoreEnv

from agnt5 import Entity, Session
from agnt5.store import base as base_module
from agnt5.store import postgres as postgres_module
from agnt5.store.base import MemoryWrite, Store, user_owner
from agnt5.store.migrations import LATEST_VERSION, user_owner_moves
from agnt5.store.migrations_postgres import POSTGRES_MIGRATIONS
from agnt5.store.sqlite import SqliteStore, schema_version

V4_DATABASE = FIXTURES / "store" / "agnt5_schema_v4.db"  # written by agnt5 at schema version 4


def legacy_owner(app_name: str | None, user_id: str) -> str:
    return f"{app_name or ''}\x1f{user_id}"


def test_user_owners_cannot_collide() -> None:
    pairs = [("x", "y\x1fz"), ("x\x1fy", "z"), (None, "u"), ("", "u\x1f"), ("a,b", "c"), ("a", 'b","c')]
    owners = {user_owner(a, u) for a, u in pairs}
    assert len(owners) == len(pairs)
    assert user_owner("x", "y\x1fz") != user_owner("x\x1fy", "z")
    assert user_owner("a", 'b","c') != user_owner('a","b', "c")
    assert user_owner(None, "u") == user_owner("", "u")  # no app is the app "", as for the app scope
    assert all("\x1f" not in o for o in owners)


def test_old_owners_move_to_each_user_that_shared_them() -> None:
    moves = user_owner_moves(
        ["x\x1fy\x1fz", "shop\x1fu2", "old\x1fg", '["already","new"]'],
        [("x", "y\x1fz"), ("x\x1fy", "z"), ("shop", "u2")],
    )
    assert moves == {
        "x\x1fy\x1fz": sorted([user_owner("x", "y\x1fz"), user_owner("x\x1fy", "z")]),
        "shop\x1fu2": [user_owner("shop", "u2")],
        "old\x1fg": [user_owner("old", "g")],  # no session left: split at the first \x1f
    }


async def test_the_sessions_of_the_issue_no_longer_share_user_state(store: Store) -> None:
    a = Session("a", app_name="x", user_id="y\x1fz", store=store)
    b = Session("b", app_name="x\x1fy", user_id="z", store=store)
    a.set_state("secret", "only a", scope="user")
    await a.flush()
    assert b.get_state("secret", scope="user") is None
    other = await Session("b2", app_name="x\x1fy", user_id="z", store=store).load()
    assert other.get_state("secret", scope="user") is None
    b.set_state("secret", "only b", scope="user")
    await b.flush()
    fresh_a = await Session("a", store=store).load()
    assert fresh_a.get_state("secret", scope="user") == "only a"
    # the same user in another session of the same app still shares it
    same_user = await Session("a2", app_name="x", user_id="y\x1fz", store=store).load()
    assert same_user.get_state("secret", scope="user") == "only a"


def _owners(db: Path) -> list[str]:
    conn = sqlite3.connect(db)
    try:
        return [r[0] for r in conn.execute("SELECT owner FROM state WHERE scope = 'user' ORDER BY owner")]
    finally:
        conn.close()


async def check_migrated(store: Store) -> None:
    """What the version-4 database holds, read through the current version."""
    a = await Session("a", store=store).load()
    b = await Session("b", store=store).load()
    seen = {"secret": "a's secret", "theme": "dark"}  # what both saw through the shared owner
    assert a.state("user") == seen and b.state("user") == seen
    a.set_state("secret", "a's new secret", scope="user")
    await a.flush()
    assert (await Session("b", store=store).load()).get_state("secret", scope="user") == "a's secret"
    assert (await Session("c", store=store).load()).get_state("lang", scope="user") == "en"
    d = await Session("d", store=store).load()
    assert d.get_state("plan", scope="user") == {"tier": "gold"}
    assert d.get_state("currency", scope="app") == "EUR" and d.get_state("cart") == [1, 2]
    # state of a deleted session's user is found by that user's next session
    back = await Session("g2", app_name="old", user_id="g", store=store).load()
    assert back.get_state("left", scope="user") is True
    assert [m["content"] for m in await a.history()] == ["hello from a"]
    assert await Entity("prefs", store=store).get("k") == "v"


async def test_a_database_written_by_schema_version_4_is_migrated(tmp_path: Path) -> None:
    db = tmp_path / "agnt5.db"
    shutil.copy(V4_DATABASE, db)
    assert any("\x1f" in o for o in _owners(db))
    store = SqliteStore(db)
    try:
        await check_migrated(store)
    finally:
        await store.close()
    conn = sqlite3.connect(db)
    assert schema_version(conn) == LATEST_VERSION == 5
    conn.close()
    assert not any("\x1f" in o for o in _owners(db))
    assert user_owner("x", "y\x1fz") in _owners(db) and user_owner("x\x1fy", "z") in _owners(db)


async def test_a_read_only_open_does_not_migrate(tmp_path: Path) -> None:
    db = tmp_path / "agnt5.db"
    shutil.copy(V4_DATABASE, db)
    store = SqliteStore(db, read_only=True)
    try:
        assert [m["content"] for m in await store.read_messages("a", None, False)] == ["hello from a"]
    finally:
        await store.close()
    conn = sqlite3.connect(db)
    assert schema_version(conn) == 4
    conn.close()


async def test_a_postgres_database_written_by_schema_version_4_is_migrated(
    pg_env: StoreEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Schema version 4 as that version wrote it: its migrations, its owners, plain memory content.
    monkeypatch.setattr(postgres_module, "POSTGRES_MIGRATIONS", POSTGRES_MIGRATIONS[:4])
    monkeypatch.setattr(postgres_module, "POSTGRES_LATEST_VERSION", 4)
    monkeypatch.setattr(base_module, "user_owner", legacy_owner)
    old = pg_env.open()
    a = Session("a", app_name="x", user_id="y\x1fz", store=old)
    await a.send_message({"role": "user", "content": "hello from a"})
    a.set_state("secret", "a's secret", scope="user")
    await a.flush()
    b = Session("b", app_name="x\x1fy", user_id="z", store=old)
    b.set_state("theme", "dark", scope="user")
    await b.flush()
    c = Session("c", user_id="u1", store=old)
    c.set_state("lang", "en", scope="user")
    await c.flush()
    d = Session("d", app_name="shop", user_id="u2", store=old)
    d.set_state("plan", {"tier": "gold"}, scope="user")
    d.set_state("currency", "EUR", scope="app")
    d.set_state("cart", [1, 2], scope="session")
    await d.flush()
    gone = Session("gone", app_name="old", user_id="g", store=old)
    gone.set_state("left", True, scope="user")
    await gone.flush()
    await gone.delete()
    await Entity("prefs", store=old).set("k", "v")
    await old.close()
    await _raw(
        pg_env,
        "INSERT INTO memories (namespace, key, content, metadata, content_hash, created_at, "
        "updated_at) VALUES ('[\"x\",null]', 'k', 'plain \"quoted\" \\ text é', '{}', 'h', 0, 0)",
    )
    monkeypatch.undo()

    new = pg_env.open()
    try:
        await check_migrated(new)
        [row] = await new.memory_list('["x",null]')
        assert row.content == 'plain "quoted" \\ text é'
        await new.memory_put('["x",null]', [MemoryWrite("nul", "a\x00b", {}, "h2")])
        assert [r.content for r in await new.memory_get('["x",null]', ["nul"])] == ["a\x00b"]
    finally:
        await new.close()
    owners = [r[0] for r in await _raw(pg_env, "SELECT owner FROM state WHERE scope = 'user'")]
    assert owners and not any("\x1f" in o for o in owners)
    assert (await _raw(pg_env, "SELECT value FROM agnt5_meta WHERE key = 'schema_version'"))[0][0] == "5"


async def _raw(env: StoreEnv, sql: str) -> list[Any]:
    from conftest import POSTGRES_URL

    assert POSTGRES_URL is not None
    conn = await asyncpg.connect(POSTGRES_URL, server_settings={"search_path": f'"{env.schema}"'})
    try:
        return list(await conn.fetch(sql))
    finally:
        await conn.close()
