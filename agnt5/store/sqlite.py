"""The embedded store: one SQLite file (or memory) through aiosqlite, WAL, writes serialised.

All work for one store runs on aiosqlite's single connection thread, each operation as one
function in one trip (statements and commit together). Concurrent appends are group-committed:
whatever queued while the thread was busy goes into the next transaction. Several processes can
share a file: transactions start with BEGIN IMMEDIATE and wait up to `busy_timeout` for the lock.
State calls also have a synchronous form, which runs on the same thread and waits for it.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import concurrent.futures
import json
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from agnt5.errors import SchemaVersionError, StoreError
from agnt5.store.base import (
    Event,
    NewEvent,
    NewMessage,
    SessionHeader,
    SessionPage,
    StateWrite,
    StoredMessage,
)
from agnt5.store.migrations import LATEST_VERSION, MIGRATIONS

T = TypeVar("T")

BUSY_TIMEOUT_MS = 30_000


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class _Connection(aiosqlite.Connection):
    """aiosqlite's connection, plus running whole functions on its thread, awaited or synchronously."""

    def __init__(self, connector: Callable[[], sqlite3.Connection]) -> None:
        super().__init__(connector, iter_chunk_size=64)
        # A store left open must not keep the interpreter alive at exit; every write is
        # committed before its call returns, so stopping the thread loses nothing.
        self._thread.daemon = True

    def open_sync(self) -> None:
        self._thread.start()
        self._connection = self._submit(lambda: self._connector())

    def _submit(self, fn: Callable[[], T]) -> T:
        if threading.current_thread() is self._thread:
            return fn()
        done: concurrent.futures.Future[T] = concurrent.futures.Future()

        def job() -> None:
            try:
                done.set_result(fn())
            except BaseException as exc:  # handed to the waiting caller
                done.set_exception(exc)

        self._tx.put_nowait((None, job))
        return done.result()

    def call_sync(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._conn
        return self._submit(lambda: fn(conn))

    async def call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        result: T = await self._execute(fn, self._conn)
        return result


@dataclass
class _AppendJob:
    header: SessionHeader
    messages: Sequence[NewMessage]
    events: Sequence[NewEvent]
    future: asyncio.Future[list[int]]
    result: list[int] = field(default_factory=list)


def _resolve(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    def apply() -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    future.get_loop().call_soon_threadsafe(apply)


def _path_of(url_or_path: str) -> str:
    if url_or_path.startswith("sqlite://"):
        from agnt5.store.url import sqlite_path

        return sqlite_path(url_or_path)
    return url_or_path


class SqliteStore:
    """The embedded agnt5 store on one SQLite database (`":memory:"` for a private in-memory one)."""

    supports_sync = True

    def __init__(self, path: str | Path = ":memory:", *, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> None:
        self.path = _path_of(str(path))
        self.url = "sqlite:///" + self.path
        self._busy_timeout_ms = busy_timeout_ms
        self._db: _Connection | None = None
        self._open_lock = threading.Lock()
        self._appends: collections.deque[_AppendJob] = collections.deque()
        self._closed = False

    def __repr__(self) -> str:
        return f"SqliteStore({self.path!r})"

    # connection -------------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
        if self.path != ":memory:":
            conn.execute("PRAGMA journal_mode = WAL")
        # WAL + NORMAL: a committed write survives the process crashing; only a power loss can
        # drop the last transactions. `synchronous=FULL` is one PRAGMA away for stricter needs.
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        _migrate(conn)
        return conn

    def _database(self) -> _Connection:
        db = self._db
        if db is not None:
            return db
        with self._open_lock:
            if self._db is None:
                if self._closed:
                    raise StoreError(f"{self!r} is closed; create a new store")
                db = _Connection(self._connect)
                try:
                    db.open_sync()
                except sqlite3.Error as exc:
                    db.stop()
                    raise StoreError(f"cannot open SQLite database {self.path!r}: {exc}") from exc
                self._db = db
            return self._db

    async def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return await self._database().call(fn)
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite error on {self.path!r}: {exc}") from exc

    def _call_sync(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return self._database().call_sync(fn)
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite error on {self.path!r}: {exc}") from exc

    async def close(self) -> None:
        """Finish queued work and close the database. The store cannot be used afterwards."""
        self._closed = True
        db, self._db = self._db, None
        if db is not None:
            await db.close()

    # entity key/values ------------------------------------------------------------------------

    async def kv_get(self, namespace: str, key: str) -> tuple[Any, int] | None:
        def run(conn: sqlite3.Connection) -> tuple[Any, int] | None:
            row = conn.execute(
                "SELECT value, version FROM kv WHERE namespace = ? AND key = ?", (namespace, key)
            ).fetchone()
            return None if row is None else (json.loads(row[0]), row[1])

        return await self._call(run)

    async def kv_set(self, namespace: str, key: str, value: Any) -> None:
        encoded = dumps(value)

        def run(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO kv (namespace, key, value, version, updated_at) VALUES (?, ?, ?, 1, ?) "
                "ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, "
                "version = kv.version + 1, updated_at = excluded.updated_at",
                (namespace, key, encoded, _now()),
            )

        await self._call(run)

    async def kv_compare_and_set(self, namespace: str, key: str, value: Any, expected_version: int) -> bool:
        encoded = dumps(value)

        def run(conn: sqlite3.Connection) -> bool:
            if expected_version == 0:
                cur = conn.execute(
                    "INSERT INTO kv (namespace, key, value, version, updated_at) VALUES (?, ?, ?, 1, ?) "
                    "ON CONFLICT (namespace, key) DO NOTHING",
                    (namespace, key, encoded, _now()),
                )
            else:
                cur = conn.execute(
                    "UPDATE kv SET value = ?, version = version + 1, updated_at = ? "
                    "WHERE namespace = ? AND key = ? AND version = ?",
                    (encoded, _now(), namespace, key, expected_version),
                )
            return cur.rowcount == 1

        return await self._call(run)

    async def kv_delete(self, namespace: str, key: str) -> bool:
        def run(conn: sqlite3.Connection) -> bool:
            cur = conn.execute("DELETE FROM kv WHERE namespace = ? AND key = ?", (namespace, key))
            return cur.rowcount > 0

        return await self._call(run)

    async def kv_keys(self, namespace: str) -> list[str]:
        def run(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute("SELECT key FROM kv WHERE namespace = ? ORDER BY key", (namespace,))
            return [r[0] for r in rows]

        return await self._call(run)

    # sessions ---------------------------------------------------------------------------------

    async def get_session(self, session_id: str) -> SessionHeader | None:
        return await self._call(lambda conn: _get_session(conn, session_id))

    def get_session_sync(self, session_id: str) -> SessionHeader | None:
        return self._call_sync(lambda conn: _get_session(conn, session_id))

    async def save_session(self, header: SessionHeader) -> SessionHeader:
        def run(conn: sqlite3.Connection) -> SessionHeader:
            with _transaction(conn):
                _upsert_session(conn, header, _now(), 0)
                stored = _get_session(conn, header.id)
            assert stored is not None
            return stored

        return await self._call(run)

    async def list_sessions(
        self, app_name: str | None, user_id: str | None, limit: int, cursor: str | None
    ) -> SessionPage:
        where: list[str] = []
        params: list[Any] = []
        if app_name is not None:
            where.append("app_name = ?")
            params.append(app_name)
        if user_id is not None:
            where.append("user_id = ?")
            params.append(user_id)
        if cursor is not None:
            updated_at, last_id = _decode_cursor(cursor)
            where.append("(updated_at < ? OR (updated_at = ? AND id < ?))")
            params += [updated_at, updated_at, last_id]
        sql = f"SELECT {_SESSION_COLUMNS} FROM sessions"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY updated_at DESC, id DESC LIMIT ?"
        params.append(limit + 1)

        def run(conn: sqlite3.Connection) -> SessionPage:
            headers = [_header_from_row(r) for r in conn.execute(sql, params)]
            more = len(headers) > limit
            headers = headers[:limit]
            next_cursor = _encode_cursor(headers[-1].updated_at, headers[-1].id) if more else None
            return SessionPage(headers, next_cursor)

        return await self._call(run)

    async def delete_session(self, session_id: str) -> bool:
        def run(conn: sqlite3.Connection) -> bool:
            with _transaction(conn):
                return _delete_session(conn, session_id)

        return await self._call(run)

    async def purge_expired(self, now: float) -> list[str]:
        def run(conn: sqlite3.Connection) -> list[str]:
            with _transaction(conn):
                ids = [
                    r[0]
                    for r in conn.execute(
                        "SELECT id FROM sessions WHERE expires_at IS NOT NULL AND expires_at <= ? "
                        "AND immutable = 0 ORDER BY id",
                        (now,),
                    )
                ]
                for session_id in ids:
                    _delete_session(conn, session_id)
            return ids

        return await self._call(run)

    # messages ---------------------------------------------------------------------------------

    async def append_messages(
        self, header: SessionHeader, messages: Sequence[NewMessage], events: Sequence[NewEvent]
    ) -> list[int]:
        db = self._database()
        job = _AppendJob(header, messages, events, asyncio.get_running_loop().create_future())
        self._appends.append(job)
        try:
            await db.call(self._drain_appends)
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite error on {self.path!r}: {exc}") from exc
        return await job.future

    def _drain_appends(self, conn: sqlite3.Connection) -> None:
        """Commit every queued append in one transaction; on failure, retry each on its own."""
        jobs: list[_AppendJob] = []
        while self._appends:
            jobs.append(self._appends.popleft())
        if not jobs:
            return
        try:
            with _transaction(conn):
                for job in jobs:
                    job.result = _append(conn, job)
        except sqlite3.Error as exc:
            if len(jobs) == 1:
                _resolve(jobs[0].future, None, StoreError(f"SQLite error on {self.path!r}: {exc}"))
                return
            for job in jobs:
                try:
                    with _transaction(conn):
                        job.result = _append(conn, job)
                except sqlite3.Error as one_exc:
                    _resolve(job.future, None, StoreError(f"SQLite error on {self.path!r}: {one_exc}"))
                else:
                    _resolve(job.future, job.result, None)
            return
        for job in jobs:
            _resolve(job.future, job.result, None)

    async def read_messages(
        self, session_id: str, limit: int | None, include_pruned: bool
    ) -> list[StoredMessage]:
        return await self._call(lambda conn: _read_messages(conn, session_id, limit, include_pruned))

    def read_messages_sync(
        self, session_id: str, limit: int | None, include_pruned: bool
    ) -> list[StoredMessage]:
        return self._call_sync(lambda conn: _read_messages(conn, session_id, limit, include_pruned))

    async def clear_messages(self, session_id: str, event: NewEvent) -> int:
        def run(conn: sqlite3.Connection) -> int:
            with _transaction(conn):
                cur = conn.execute("DELETE FROM messages WHERE session_id = ?", (session_id,))
                conn.execute("UPDATE sessions SET active_count = 0 WHERE id = ?", (session_id,))
                _insert_events(conn, session_id, [event])
            return cur.rowcount

        return await self._call(run)

    # state ------------------------------------------------------------------------------------

    async def get_state(self, scope: str, owner: str) -> dict[str, Any]:
        return await self._call(lambda conn: _get_state(conn, scope, owner))

    def get_state_sync(self, scope: str, owner: str) -> dict[str, Any]:
        return self._call_sync(lambda conn: _get_state(conn, scope, owner))

    def get_state_value_sync(self, scope: str, owner: str, key: str) -> tuple[bool, Any]:
        def run(conn: sqlite3.Connection) -> tuple[bool, Any]:
            row = conn.execute(
                "SELECT value FROM state WHERE scope = ? AND owner = ? AND key = ?", (scope, owner, key)
            ).fetchone()
            return (False, None) if row is None else (True, json.loads(row[0]))

        return self._call_sync(run)

    async def write_state(
        self, header: SessionHeader, writes: Sequence[StateWrite], events: Sequence[NewEvent]
    ) -> None:
        encoded = _encode_writes(writes)
        await self._call(lambda conn: _write_state(conn, header, encoded, events))

    def write_state_sync(
        self, header: SessionHeader, writes: Sequence[StateWrite], events: Sequence[NewEvent]
    ) -> None:
        encoded = _encode_writes(writes)
        self._call_sync(lambda conn: _write_state(conn, header, encoded, events))

    # events -----------------------------------------------------------------------------------

    async def append_events(self, header: SessionHeader, events: Sequence[NewEvent]) -> None:
        def run(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                _upsert_session(conn, header, _now(), 0)
                _insert_events(conn, header.id, events)

        await self._call(run)

    async def read_events(self, session_id: str, since: float | None, limit: int | None) -> list[Event]:
        sql = "SELECT id, created_at, type, data FROM events WHERE session_id = ?"
        params: list[Any] = [session_id]
        if since is not None:
            sql += " AND created_at >= ?"
            params.append(since)
        sql += " ORDER BY created_at, id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)

        def run(conn: sqlite3.Connection) -> list[Event]:
            return [
                Event(r[0], session_id, r[2], datetime.fromtimestamp(r[1], UTC), json.loads(r[3]))
                for r in conn.execute(sql, params)
            ]

        return await self._call(run)


# --- SQL helpers, run on the connection thread ----------------------------------------------------


class _transaction:
    """BEGIN IMMEDIATE … COMMIT (ROLLBACK on error): takes the write lock up front, so two
    processes never deadlock upgrading read locks, and waits up to busy_timeout for it."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.conn.execute("COMMIT")
        else:
            self.conn.execute("ROLLBACK")


def _now() -> float:
    return datetime.now(UTC).timestamp()


def _migrate(conn: sqlite3.Connection, migrations: Sequence[tuple[int, str]] | None = None) -> None:
    steps = MIGRATIONS if migrations is None else migrations
    latest = steps[-1][0] if steps else LATEST_VERSION
    conn.execute("CREATE TABLE IF NOT EXISTS agnt5_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    row = conn.execute("SELECT value FROM agnt5_meta WHERE key = 'schema_version'").fetchone()
    if row is not None and int(row[0]) >= latest:
        if int(row[0]) > latest:
            raise SchemaVersionError(
                f"the database has schema version {row[0]}, newer than this agnt5 knows ({latest}); "
                "upgrade agnt5 to open it"
            )
        return
    with _transaction(conn):
        row = conn.execute("SELECT value FROM agnt5_meta WHERE key = 'schema_version'").fetchone()
        current = int(row[0]) if row else 0
        for version, script in steps:
            if version > current:
                for statement in script.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                current = version
        conn.execute(
            "INSERT INTO agnt5_meta (key, value) VALUES ('schema_version', ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (str(current),),
        )


def schema_version(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT value FROM agnt5_meta WHERE key = 'schema_version'").fetchone()
    return int(row[0]) if row else 0


_SESSION_COLUMNS = (
    "id, app_name, user_id, metadata, retention, created_at, updated_at, expires_at, active_count"
)
_MESSAGE_COLUMNS = "seq, id, created_at, role, body, metadata, tokens, pruned_by"


def _header_from_row(r: Sequence[Any]) -> SessionHeader:
    return SessionHeader(
        id=r[0],
        app_name=r[1],
        user_id=r[2],
        metadata=json.loads(r[3]),
        retention=json.loads(r[4]),
        created_at=r[5],
        updated_at=r[6],
        expires_at=r[7],
        message_count=r[8],
    )


def _message_from_row(r: Sequence[Any]) -> StoredMessage:
    return StoredMessage(
        seq=r[0],
        id=r[1],
        created_at=r[2],
        role=r[3],
        body=json.loads(r[4]) if r[4] is not None else {},
        metadata=json.loads(r[5]),
        tokens=r[6],
        pruned_by=r[7],
    )


def _read_messages(
    conn: sqlite3.Connection, session_id: str, limit: int | None, include_pruned: bool
) -> list[StoredMessage]:
    active = "" if include_pruned else " AND pruned_by IS NULL"
    sql = f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE session_id = ?{active}"
    if limit is None:
        rows = conn.execute(sql + " ORDER BY pos", (session_id,)).fetchall()
    else:
        rows = conn.execute(sql + " ORDER BY pos DESC LIMIT ?", (session_id, limit)).fetchall()
        rows.reverse()
    return [_message_from_row(r) for r in rows]


def _get_session(conn: sqlite3.Connection, session_id: str) -> SessionHeader | None:
    row = conn.execute(f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE id = ?", (session_id,)).fetchone()
    return None if row is None else _header_from_row(row)


_UPSERT_SESSION = """
INSERT INTO sessions (id, app_name, user_id, metadata, retention, ttl_days, immutable,
                      created_at, updated_at, expires_at, next_seq, active_count)
VALUES (:id, :app_name, :user_id, :metadata, :retention, :ttl_days, :immutable,
        :now, :now, :now + :ttl_days * 86400.0, 1 + :n, :n)
ON CONFLICT (id) DO UPDATE SET
    metadata = excluded.metadata,
    retention = excluded.retention,
    ttl_days = excluded.ttl_days,
    immutable = MAX(sessions.immutable, excluded.immutable),
    updated_at = excluded.updated_at,
    expires_at = excluded.expires_at,
    next_seq = sessions.next_seq + :n,
    active_count = sessions.active_count + :n
RETURNING next_seq
"""


def _upsert_session(conn: sqlite3.Connection, header: SessionHeader, now: float, n: int) -> int:
    """Create or touch the session row, reserving `n` sequence numbers; returns the first of them."""
    ttl = header.retention.get("ttl_days")
    row = conn.execute(
        _UPSERT_SESSION,
        {
            "id": header.id,
            "app_name": header.app_name,
            "user_id": header.user_id,
            "metadata": dumps(header.metadata),
            "retention": dumps(header.retention),
            "ttl_days": ttl,
            "immutable": 1 if header.retention.get("immutable") else 0,
            "now": now,
            "n": n,
        },
    ).fetchone()
    return int(row[0]) - n


def _append(conn: sqlite3.Connection, job: _AppendJob) -> list[int]:
    now = _now()
    first = _upsert_session(conn, job.header, now, len(job.messages))
    seqs = list(range(first, first + len(job.messages)))
    conn.executemany(
        "INSERT INTO messages (session_id, seq, pos, id, created_at, role, body, metadata, tokens) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (job.header.id, seq, seq, m.id, m.created_at, m.role, dumps(m.body), dumps(m.metadata), m.tokens)
            for seq, m in zip(seqs, job.messages, strict=True)
        ],
    )
    # Every append is audited in the same transaction as the message itself.
    audit = [
        NewEvent(
            "message_appended", {"message_id": m.id, "seq": seq, "role": m.role, "tokens": m.tokens}, now
        )
        for seq, m in zip(seqs, job.messages, strict=True)
    ]
    _insert_events(conn, job.header.id, [*audit, *job.events])
    return seqs


def _insert_events(conn: sqlite3.Connection, session_id: str, events: Sequence[NewEvent]) -> None:
    if events:
        conn.executemany(
            "INSERT INTO events (session_id, created_at, type, data) VALUES (?, ?, ?, ?)",
            [(session_id, e.created_at, e.type, dumps(e.data)) for e in events],
        )


def _delete_session(conn: sqlite3.Connection, session_id: str) -> bool:
    conn.execute("DELETE FROM messages WHERE session_id = ?", (session_id,))
    conn.execute("DELETE FROM events WHERE session_id = ?", (session_id,))
    conn.execute("DELETE FROM state WHERE scope = 'session' AND owner = ?", (session_id,))
    cur = conn.execute("DELETE FROM sessions WHERE id = ?", (session_id,))
    return cur.rowcount > 0


def _get_state(conn: sqlite3.Connection, scope: str, owner: str) -> dict[str, Any]:
    rows = conn.execute("SELECT key, value FROM state WHERE scope = ? AND owner = ?", (scope, owner))
    return {k: json.loads(v) for k, v in rows}


_EncodedWrite = tuple[str, str, str, str | None]


def _encode_writes(writes: Sequence[StateWrite]) -> list[_EncodedWrite]:
    return [(w.scope, w.owner, w.key, None if w.delete else dumps(w.value)) for w in writes]


def _write_state(
    conn: sqlite3.Connection, header: SessionHeader, writes: list[_EncodedWrite], events: Sequence[NewEvent]
) -> None:
    now = _now()
    with _transaction(conn):
        _upsert_session(conn, header, now, 0)
        for scope, owner, key, value in writes:
            if value is None:
                conn.execute(
                    "DELETE FROM state WHERE scope = ? AND owner = ? AND key = ?", (scope, owner, key)
                )
            else:
                conn.execute(
                    "INSERT INTO state (scope, owner, key, value, updated_at) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (scope, owner, key) DO UPDATE SET value = excluded.value, "
                    "updated_at = excluded.updated_at",
                    (scope, owner, key, value, now),
                )
        _insert_events(conn, header.id, events)


def _encode_cursor(updated_at: float, session_id: str) -> str:
    raw = dumps([updated_at, session_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        updated_at, session_id = json.loads(base64.urlsafe_b64decode(padded))
        return float(updated_at), str(session_id)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"invalid cursor {cursor!r}: pass back the next_cursor of a previous page") from exc
