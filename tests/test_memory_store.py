"""The store side of long-term memory: schema migration 2 (SQLite; PostgreSQL's in
tests/store/test_postgres.py) and the memory_* methods, on both stores."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from conftest import StoreEnv

from agnt5.store.base import MemoryWrite, Store
from agnt5.store.migrations import MIGRATIONS
from agnt5.store.sqlite import _migrate, schema_version

NS = '["app","u1"]'


def write(key: str, content: str, digest: str, vector: bytes | None = b"\0" * 8, **kw: object) -> MemoryWrite:
    return MemoryWrite(key, content, {"k": key}, digest, "m", vector, None if vector is None else 2, **kw)  # type: ignore[arg-type]


def test_version_1_database_migrates_to_memory_schema(db_path: Path) -> None:
    conn = sqlite3.connect(db_path, isolation_level=None)
    _migrate(conn, [m for m in MIGRATIONS if m[0] == 1])
    conn.execute("INSERT INTO kv (namespace, key, value, version, updated_at) VALUES ('e', 'k', '1', 1, 0)")
    assert schema_version(conn) == 1
    conn.close()

    conn = sqlite3.connect(db_path, isolation_level=None)
    _migrate(conn)
    assert schema_version(conn) >= 2
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"memories", "memory_namespaces", "kv"} <= tables
    assert conn.execute("SELECT value FROM kv WHERE key = 'k'").fetchone() == ("1",)
    conn.close()


async def test_memory_methods_round_trip(store: Store) -> None:
    assert await store.memory_version(NS) == 0
    result = await store.memory_put(NS, [write("b", "bee", "h-b"), write("a", "ay", "h-a")])
    assert (result.version, result.conflicts) == (1, [])
    rows = {r.key: r for r in await store.memory_get(NS, ["a", "b", "missing", "a"])}
    assert set(rows) == {"a", "b"}
    assert (rows["a"].content, rows["a"].metadata, rows["a"].content_hash, rows["a"].model) == (
        "ay",
        {"k": "a"},
        "h-a",
        "m",
    )
    assert [r.key for r in await store.memory_list(NS)] == ["a", "b"]
    assert await store.memory_list('["app","u2"]') == []

    snap = await store.memory_vectors(NS)
    assert (snap.version, snap.keys, snap.dims, snap.vectors) == (1, ["a", "b"], [2, 2], [b"\0" * 8] * 2)

    assert await store.memory_delete(NS, ["a", "zzz"]) == (2, ["a"])
    assert await store.memory_delete(NS, ["zzz"]) == (2, [])  # nothing deleted: version unchanged
    assert await store.memory_delete(NS, None) == (3, ["b"])
    assert await store.memory_list(NS) == []


async def test_guarded_writes_are_all_or_nothing(store: Store) -> None:
    await store.memory_put(NS, [write("a", "ay", "h-a")])
    # Keep the vector only while the stored hash (and model) still match.
    kept = await store.memory_put(NS, [write("a", "ay", "h-a", None, only_if_hash="h-a")])
    assert kept.conflicts == [] and kept.version == 2
    row = (await store.memory_get(NS, ["a"]))[0]
    assert (await store.memory_vectors(NS)).vectors == [b"\0" * 8] and row.content_hash == "h-a"

    # A guarded write that finds other content rolls the whole batch back.
    result = await store.memory_put(
        NS, [write("new", "fresh", "h-new"), write("a", "ay", "h-a", None, only_if_hash="stale")]
    )
    assert result.conflicts == ["a"] and result.version == 2
    assert [r.key for r in await store.memory_list(NS)] == ["a"]
    # Guarded on a missing key: a conflict too.
    result = await store.memory_put(NS, [write("gone", "x", "h", None, only_if_hash="h")])
    assert result.conflicts == ["gone"]


async def test_memories_survive_reopening(store_env: StoreEnv) -> None:
    first = store_env.open()
    await first.memory_put(NS, [write("a", "ay", "h-a")])
    await first.close()
    second = store_env.open()
    try:
        assert [r.key for r in await second.memory_list(NS)] == ["a"]
        assert await second.memory_version(NS) == 1
    finally:
        await second.close()


async def test_vectors_round_trip_exactly_as_float32_bytes(store: Store) -> None:
    import numpy as np

    vector = np.arange(-3, 5, dtype="<f4") / np.float32(7)
    await store.memory_put(NS, [MemoryWrite("v", "vee", {}, "h-v", "m", vector.tobytes(), len(vector))])
    snap = await store.memory_vectors(NS)
    assert snap.dims == [8] and snap.vectors[0] == vector.tobytes()
    assert np.array_equal(np.frombuffer(snap.vectors[0], dtype="<f4"), vector)
