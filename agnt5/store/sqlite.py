"""The embedded store: one SQLite file (or memory) through aiosqlite, WAL, writes serialised.

All work for one store runs on aiosqlite's single connection thread, each operation as one
function in one trip (statements and commit together). Concurrent appends are group-committed:
whatever queued while the thread was busy goes into the next transaction. A private in-memory
database (no file, no other connection, nothing to wait for) runs an operation on the caller's
thread instead when its thread is idle: the trip would cost more than the SQL. Several processes can
share a file: transactions start with BEGIN IMMEDIATE and wait up to `busy_timeout` for the lock.
State calls also have a synchronous form, which runs on the same thread and waits for it.
"""

from __future__ import annotations

import asyncio
import asyncio.events as asyncio_events
import collections
import concurrent.futures
import functools
import json
import os
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from agnt5.errors import (
    Agnt5Error,
    DatabaseNotFoundError,
    ReadOnlyStoreError,
    SchemaVersionError,
    StoreError,
)
from agnt5.messages import Message, stored_message
from agnt5.store import _prune_sql, _undo_sql
from agnt5.store import _sqlite_counters as counters
from agnt5.store._page_sql import page_query
from agnt5.store._rows import (
    MAX_INT,
    check_header,
    check_text,
    clamp,
    decode_cursor,
    dumps,
    encode,
    encode_cursor,
    encode_events,
    encode_memory,
    event_from_row,
    header_from_row,
    loads,
    new_entries,
    timestamp,
    tombstone,
    value_error,
)
from agnt5.store._rows import (
    now as _now,
)
from agnt5.store._sqlite_counters import SESSION_COLUMNS_SQL
from agnt5.store.base import (
    AppliedPrune,
    Event,
    HistoryStats,
    MemoryRow,
    MemoryVectors,
    MemoryWrite,
    MemoryWriteResult,
    NewEvent,
    NewMessage,
    PruneWrite,
    Removal,
    SessionHeader,
    SessionPage,
    StateWrite,
    WindowCut,
)
from agnt5.store.migrations import LATEST_VERSION, MIGRATIONS, USER_OWNER_VERSION, user_owner_moves

T = TypeVar("T")

BUSY_TIMEOUT_MS = 30_000


class _Connection(aiosqlite.Connection):
    """aiosqlite's connection, plus running whole functions on its thread, awaited or synchronously.

    With `inline`, a function handed over while the thread has nothing queued or running runs
    on the calling thread instead: a hand-off to the thread and back costs more than a small
    query (and under a busy GIL, several times more). `_use` keeps the connection to one thread
    at a time, and `_queued` (the jobs handed to the thread and not yet finished) keeps order:
    nothing runs inline ahead of work queued before it.
    """

    def __init__(self, connector: Callable[[], sqlite3.Connection], *, inline: bool = False) -> None:
        super().__init__(connector, iter_chunk_size=64)
        # A store left open must not keep the interpreter alive at exit; every write is
        # committed before its call returns, so stopping the thread loses nothing.
        self._thread.daemon = True
        self._inline = inline
        self._use = threading.RLock()  # held by whichever thread runs statements
        self._count = threading.Lock()
        self._queued = 0

    def _hand_over(self, future: asyncio.Future[Any] | None, fn: Callable[[], Any]) -> None:
        """Queue `fn` on the connection thread (every job goes through here, so it is counted)."""

        def job() -> Any:
            try:
                with self._use:
                    return fn()
            finally:
                with self._count:
                    self._queued -= 1

        with self._count:
            self._queued += 1
        self._tx.put_nowait((future, job))

    def _take_idle(self) -> bool:
        """Take the connection for the calling thread if inline work is allowed and the
        connection thread has nothing queued or running (then release `_use`)."""
        if not self._inline or self._queued or not self._running or self._connection is None:
            return False
        return self._use.acquire(blocking=False)

    def _holds(self) -> bool:
        """Whether the calling thread holds the connection (a nested call then runs directly)."""
        return bool(self._use._is_owned())  # type: ignore[attr-defined]

    def open_sync(self) -> None:
        self._thread.start()
        self._connection = self._submit(lambda: self._connector())

    def _submit(self, fn: Callable[[], T]) -> T:
        if threading.current_thread() is self._thread or (self._inline and self._holds()):
            return fn()
        done: concurrent.futures.Future[T] = concurrent.futures.Future()

        def job() -> None:
            try:
                done.set_result(fn())
            except BaseException as exc:  # handed to the waiting caller
                done.set_exception(exc)

        self._hand_over(None, job)
        return done.result()

    def stop_and_join(self) -> None:
        """Close the connection after the queued work, stop the thread and wait for it; needs no
        event loop (aiosqlite's own `stop` reports to one, which may be closed by then)."""
        self._running = False

        def close_and_stop() -> object:
            if self._connection is not None:
                self._connection.close()
                self._connection = None
            return aiosqlite.core._STOP_RUNNING_SENTINEL

        self._hand_over(None, close_and_stop)
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join()

    def enqueue(self, fn: Callable[[sqlite3.Connection], None], *, inline: bool = False) -> None:
        """Run `fn` without waiting for it (it reports its own results): queued on the thread,
        or with `inline` at once on this one if the thread is idle."""
        conn = self._conn
        if inline and self._take_idle():
            try:
                fn(conn)
            finally:
                self._use.release()
            return
        self._hand_over(None, lambda: fn(conn))

    def call_sync(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._conn
        return self._submit(lambda: fn(conn))

    async def call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._conn
        if self._take_idle():
            try:
                answer = fn(conn)
            finally:
                self._use.release()
            await asyncio.sleep(0)  # still a point where other tasks run, as a trip would be
            return answer
        result: T = await self._execute(fn, conn)  # refused once the thread is stopping
        return result

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """aiosqlite's own work (its close) is counted and serialised like ours."""
        if not self._running or not self._connection:
            raise ValueError("Connection closed")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._hand_over(future, functools.partial(fn, *args, **kwargs))
        return await future


@dataclass(slots=True)
class _AppendJob:
    header: SessionHeader
    now: float
    rows: list[tuple[int, str]]  # (tokens, entry JSON) per message
    events: list[tuple[str, str]]  # (type, data JSON) per event
    future: asyncio.Future[int]
    first_seq: int = 0
    updated_at: float = 0.0  # the session's update time as of this append
    settled: bool = False
    kv: tuple[str, str, str, int] | None = None  # (namespace, key, value JSON, expected version)
    kv_written: bool = False

    def settle(self, first_seq: int | None, error: BaseException | None) -> None:
        """Answer the waiting caller (once; from the database thread)."""
        if self.settled:
            return
        self.settled = True
        loop = self.future.get_loop()
        if asyncio_events._get_running_loop() is loop:  # appended inline, on the caller's loop
            _settle_future(self.future, first_seq, error)
            return
        try:
            loop.call_soon_threadsafe(_settle_future, self.future, first_seq, error)
        except RuntimeError:  # its event loop is closed: nobody is waiting any more
            pass


def _settle_future(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # cancelled meanwhile
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def _enable_wal(conn: sqlite3.Connection, busy_timeout_ms: int) -> None:
    """Switch to WAL, waiting out other processes that open or migrate the same new file.

    Changing the journal mode needs an exclusive lock, and SQLite answers "database is locked"
    at once (without the busy handler) when waiting could deadlock, e.g. while another process
    migrates the file it has just created: retry until the busy timeout.
    """
    deadline = time.monotonic() + busy_timeout_ms / 1000
    delay = 0.005
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.1)


def _path_of(url_or_path: str) -> str:
    if url_or_path.startswith("sqlite://"):
        from agnt5.store.url import sqlite_path

        return sqlite_path(url_or_path)
    return url_or_path


class SqliteStore:
    """The embedded agnt5 store on one SQLite database (`":memory:"` for a private in-memory one).

    `create=False` opens only an existing file (DatabaseNotFoundError, "no database at PATH",
    otherwise; nothing is created). `read_only=True` opens it read-only without creating or
    migrating anything (immutable when the filesystem is read-only); writes raise
    ReadOnlyStoreError. A file that cannot be opened for writing (read-only file or filesystem)
    is opened read-only by itself, and `read_only` then becomes True.
    """

    supports_sync = True

    def __init__(
        self,
        path: str | Path = ":memory:",
        *,
        busy_timeout_ms: int = BUSY_TIMEOUT_MS,
        create: bool = True,
        read_only: bool = False,
    ) -> None:
        self.path = _path_of(str(path))
        self.url = "sqlite:///" + self.path
        self.read_only = read_only
        self._asked_read_only = read_only
        self._create = create and not read_only
        if not self._create and self.path != ":memory:" and not Path(self.path).is_file():
            raise DatabaseNotFoundError(f"no database at {self.path}: check the path (nothing was created)")
        self._busy_timeout_ms = busy_timeout_ms
        self._db: _Connection | None = None
        self._open_lock = threading.Lock()
        self._appends: collections.deque[_AppendJob] = collections.deque()
        # Per session appended to from here (whoever holds the connection): the seq its next append should
        # take (a hint the database checks) and its update time as last seen.
        self._recent: dict[str, tuple[int, float]] = {}
        self._closed = False

    def __repr__(self) -> str:
        return f"SqliteStore({self.path!r})"

    # connection -------------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self.read_only:
            return self._connect_read_only()
        if self.path == ":memory:":
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        else:
            if self._create:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            conn = _open_file(self.path, "rwc" if self._create else "rw")
            try:
                conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
                _enable_wal(conn, self._busy_timeout_ms)
            except sqlite3.Error as exc:
                conn.close()
                if not _cannot_write(exc) or not Path(self.path).is_file():
                    raise
                # A read-only file or filesystem: still readable; writes say why they fail.
                self.read_only = True
                return self._connect_read_only()
        conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
        # WAL + NORMAL: a committed write survives the process crashing; only a power loss can
        # drop the last transactions. `synchronous=FULL` is one PRAGMA away for stricter needs.
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        try:
            _migrate(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _connect_read_only(self) -> sqlite3.Connection:
        """Open the existing file read-only: `mode=ro`, or `immutable=1` when even that cannot
        open it (a WAL database on a read-only filesystem, whose shared-memory file cannot be
        created). Nothing is created or migrated."""
        if self.path == ":memory:":
            raise DatabaseNotFoundError("a private in-memory database cannot be opened read-only")
        try:
            conn = _open_file(self.path, "ro")
        except sqlite3.Error:
            conn = _open_file(self.path, "ro", immutable=True)
        else:
            try:
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            except sqlite3.Error:
                conn.close()
                conn = _open_file(self.path, "ro", immutable=True)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
            _check_readable(conn, self.path)
        except BaseException:
            conn.close()
            raise
        return conn

    def _database(self) -> _Connection:
        db = self._db
        if db is not None:
            return db
        with self._open_lock:
            if self._db is None:
                if self._closed:
                    raise StoreError(f"{self!r} is closed; create a new store")
                db = _Connection(self._connect, inline=self.path == ":memory:")
                try:
                    db.open_sync()
                except sqlite3.Error as exc:
                    db.stop_and_join()
                    raise StoreError(f"cannot open SQLite database {self.path!r}: {exc}") from exc
                except BaseException:  # e.g. SchemaVersionError: leave no thread behind
                    db.stop_and_join()
                    raise
                self._db = db
            return self._db

    def _error(self, exc: Exception) -> Agnt5Error:
        """The typed agnt5 error for anything that failed on the database thread."""
        if isinstance(exc, Agnt5Error):
            return exc
        if isinstance(exc, sqlite3.Error) and _refused_write(exc):
            why = "opened read-only" if self._asked_read_only else "a read-only file or filesystem"
            return ReadOnlyStoreError(
                f"SQLite database {self.path!r} is read-only ({why}): the write was refused ({exc}); "
                "open a writable copy to change it"
            )
        if isinstance(exc, sqlite3.Error):
            return StoreError(f"SQLite error on {self.path!r}: {exc}")
        return value_error(exc) or StoreError(
            f"unexpected error on the database thread of {self.path!r}: {exc!r} (nothing was written)"
        )

    async def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return await self._database().call(fn)
        except Exception as exc:
            error = self._error(exc)
            if error is exc:
                raise
            raise error from exc

    def _call_sync(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return self._database().call_sync(fn)
        except Exception as exc:
            error = self._error(exc)
            if error is exc:
                raise
            raise error from exc

    def close_sync(self) -> None:
        """`close` for code without an event loop (configuration resets, interpreter exit)."""
        self._closed = True
        db, self._db = self._db, None
        if db is not None:
            db.stop_and_join()
        self._fail_queued_appends()

    async def close(self) -> None:
        """Finish queued work and close the database. The store cannot be used afterwards."""
        self._closed = True
        db, self._db = self._db, None
        if db is not None:
            await db.close()
        self._fail_queued_appends()

    def _fail_queued_appends(self) -> None:
        """Answer appends queued behind the close (their drain will never run): nothing was written."""
        while self._appends:
            self._appends.popleft().settle(None, StoreError(f"{self!r} was closed before the append ran"))

    # entity key/values ------------------------------------------------------------------------

    async def kv_get(self, namespace: str, key: str) -> tuple[Any, int] | None:
        return await self._call(lambda conn: _kv_get(conn, namespace, key))

    async def kv_set(self, namespace: str, key: str, value: Any) -> None:
        encoded = _encode_kv(namespace, key, value)

        def run(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO kv (namespace, key, value, version, updated_at) VALUES (?, ?, ?, 1, ?) "
                "ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, "
                "version = kv.version + 1, updated_at = excluded.updated_at",
                (namespace, key, encoded, _now()),
            )

        await self._call(run)

    async def kv_compare_and_set(self, namespace: str, key: str, value: Any, expected_version: int) -> bool:
        encoded = _encode_kv(namespace, key, value)
        if not 0 <= expected_version <= MAX_INT:
            return False  # no stored version is that

        def run(conn: sqlite3.Connection) -> bool:
            if expected_version == 0:
                cur = conn.execute(
                    "INSERT INTO kv (namespace, key, value, version, updated_at) VALUES (?, ?, ?, 1, ?) "
                    "ON CONFLICT (namespace, key) DO NOTHING",
                    (namespace, key, encoded, _now()),
                )
            else:
                cur = conn.execute(_UPDATE_KV, (encoded, _now(), namespace, key, expected_version))
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
                _touch_session(conn, header, _now())
                stored = _get_session(conn, header.id)
            assert stored is not None
            return stored

        return await self._call(run)

    def save_session_sync(self, header: SessionHeader) -> None:
        def run(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                _touch_session(conn, header, _now())

        self._call_sync(run)

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
            updated_at, last_id = decode_cursor(cursor)
            where.append("(updated_at < ? OR (updated_at = ? AND id < ?))")
            params += [updated_at, updated_at, last_id]
        sql = f"SELECT {SESSION_COLUMNS_SQL} FROM sessions"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY updated_at DESC, id DESC LIMIT ?"
        limit = min(clamp(limit), MAX_INT - 1)
        params.append(limit + 1)

        def run(conn: sqlite3.Connection) -> SessionPage:
            headers = [header_from_row(r) for r in conn.execute(sql, params)]
            more = len(headers) > limit
            headers = headers[:limit]
            next_cursor = encode_cursor(headers[-1].updated_at, headers[-1].id) if more else None
            return SessionPage(headers, next_cursor)

        return await self._call(run)

    async def delete_session(self, session_id: str) -> bool:
        def run(conn: sqlite3.Connection) -> bool:
            with _transaction(conn):
                return _delete_session(conn, session_id)

        return await self._call(run)

    async def purge_expired(self, now: float) -> list[str]:
        now = timestamp(now, "now")

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
    ) -> list[Message]:
        return (await self._queue_append(header, messages, events, None))[0]

    async def append_messages_and_set(
        self,
        header: SessionHeader,
        messages: Sequence[NewMessage],
        events: Sequence[NewEvent],
        kv: tuple[str, str, Any, int],
    ) -> tuple[list[Message], bool]:
        """`append_messages`, and in the same transaction `kv_compare_and_set(*kv)` (namespace,
        key, value, expected version); returns the appended messages and whether the value was
        set. A version that moved on sets nothing and still appends (the caller retries the set)."""
        namespace, key, value, expected = kv
        if not 1 <= expected <= MAX_INT:  # only an update: the row exists once a step was begun
            return await self.append_messages(header, messages, events), False
        encoded = (namespace, key, _encode_kv(namespace, key, value), expected)
        return await self._queue_append(header, messages, events, encoded)

    async def _queue_append(
        self,
        header: SessionHeader,
        messages: Sequence[NewMessage],
        events: Sequence[NewEvent],
        kv: tuple[str, str, str, int] | None,
    ) -> tuple[list[Message], bool]:
        db = self._database()
        now = _now()
        entries = new_entries(messages, now)
        # Encoded (and checked) here: the database thread only writes.
        rows = [(m.tokens, encode(m, "message")) for m in entries]
        check_header(header)
        encoded = encode_events(events)
        job = _AppendJob(header, now, rows, encoded, asyncio.get_running_loop().create_future(), kv=kv)
        # Queued before the first await: a cancelled caller still gets its append committed whole.
        self._appends.append(job)
        try:
            db.enqueue(self._drain_appends, inline=True)
        except Exception as exc:  # closed meanwhile
            self._appends.remove(job)
            raise self._error(exc) from exc
        if job.future.done():  # committed inline: still a point where other tasks run
            await asyncio.sleep(0)
        first = await job.future
        for i, entry in enumerate(entries):
            entry.seq = first + i
        return entries, job.kv_written

    def _drain_appends(self, conn: sqlite3.Connection) -> None:
        """Commit every queued append in one transaction; on failure, retry each on its own, so
        an error fails only the caller whose append caused it. Every caller is answered, whatever
        goes wrong here."""
        jobs: list[_AppendJob] = []
        while self._appends:
            jobs.append(self._appends.popleft())
        if not jobs:
            return
        try:
            self._commit_appends(conn, jobs)
        except BaseException as exc:
            error = (
                self._error(exc)
                if isinstance(exc, Exception)
                else StoreError(f"the append to {self.path!r} was interrupted ({exc!r}); nothing was written")
            )
            for job in jobs:
                job.settle(None, error)
            if not isinstance(exc, Exception):
                raise

    def _commit_appends(self, conn: sqlite3.Connection, jobs: list[_AppendJob]) -> None:
        try:
            _ = conn.in_transaction  # the connection is open
        except sqlite3.ProgrammingError as exc:
            for job in jobs:
                job.settle(None, StoreError(f"{self!r} is closed: {exc}"))
            return
        try:
            if len(jobs) == 1 and self._append_alone(conn, jobs[0]):
                jobs[0].settle(jobs[0].first_seq, None)
                return
            with _transaction(conn):
                for job in jobs:
                    job.first_seq = _append(conn, job)
        except Exception as exc:
            if len(jobs) == 1:
                jobs[0].settle(None, self._error(exc))
                return
            for job in jobs:
                try:
                    with _transaction(conn):
                        job.first_seq = _append(conn, job)
                except Exception as one_exc:
                    job.settle(None, self._error(one_exc))
                else:
                    job.settle(job.first_seq, None)
            return
        for job in jobs:
            self._remember(job.header.id, job.first_seq + len(job.rows), job.updated_at)
            job.settle(job.first_seq, None)

    def _append_alone(self, conn: sqlite3.Connection, job: _AppendJob) -> bool:
        """The common case, one message and no events, as one autocommitted statement (an INSERT
        takes the write lock before it reads, so numbering is still serialised). False when the
        caller's transaction must do it: a session new to this store or moved on by another
        writer since this store's last append to it, or one whose update time is due to move
        (that moves with the append, at most once a second)."""
        if len(job.rows) != 1 or job.events or job.kv is not None:
            return False
        sid, now = job.header.id, job.now
        seq, updated_at = self._recent.get(sid, (0, -_TOUCH_INTERVAL))
        if now - updated_at >= _TOUCH_INTERVAL:
            return False
        tokens, entry = job.rows[0]
        if conn.execute(counters.APPEND_ONE_AS, (sid, now, tokens, entry, seq)).rowcount != 1:
            return False  # another writer moved the session on (or removed it)
        job.first_seq = seq
        self._remember(sid, seq + 1, updated_at)
        return True

    async def read_and_append(
        self,
        session_id: str,
        plan: Callable[
            [SessionHeader | None, list[Message], tuple[Any, int] | None], tuple[SessionHeader, bool, bool]
        ],
        messages: Sequence[NewMessage],
        events: Sequence[NewEvent],
        kv: tuple[str, str] | None = None,
    ) -> tuple[SessionHeader, list[Message], list[Message] | None]:
        """Read the session's header and active messages, then — in the same transaction, one
        trip to the database thread — append `messages` and `events` after them if `plan`
        says so. `plan(stored header or None, history, kv)` — `kv` the (value, version) of the
        key/value `kv` names (namespace, key) read in the same transaction, or None — runs on the
        database thread and returns
        (header to append under, whether to write that header, whether to append); what it
        raises is raised here, nothing written. Returns (that header, the history, the
        appended messages or None)."""
        now = _now()
        entries = new_entries(messages, now)
        rows = [(m.tokens, encode(m, "message")) for m in entries]
        encoded = encode_events(events)

        def run(conn: sqlite3.Connection) -> tuple[SessionHeader, list[Message], int | None]:
            with _transaction(conn):  # the write lock first: nothing lands between read and append
                row = conn.execute(counters.HEADER_AND_COUNTERS, (session_id,)).fetchone()
                stored = None if row is None else header_from_row(row)
                history = [] if stored is None else _read_messages(conn, session_id, None, False)
                found = None if kv is None else _kv_get(conn, *kv)
                header, write_header, append = plan(stored, history, found)
                check_header(header)
                if write_header or (stored is None and append):
                    _touch_session(conn, header, now)
                if not append:
                    return header, history, None
                if stored is None:  # created just now: its numbers are known
                    next_ = counters.created(now)
                else:
                    next_ = counters.Counters(*row[counters.HEADER_COLUMNS :])
                    if write_header:
                        next_ = next_._replace(updated_at=now)
                seq, updated_at = _insert_append(conn, header, now, rows, encoded, next_)
            self._remember(session_id, seq + len(rows), updated_at)
            return header, history, seq

        header, history, first = await self._call(run)
        if first is None:
            return header, history, None
        for i, entry in enumerate(entries):
            entry.seq = first + i
        return header, history, entries

    def _remember(self, session_id: str, next_seq: int, touched: float) -> None:
        if len(self._recent) >= 10_000:
            self._recent.clear()
        self._recent[session_id] = (next_seq, touched)

    async def read_messages(self, session_id: str, limit: int | None, include_pruned: bool) -> list[Message]:
        limit = None if limit is None else clamp(limit)
        return await self._call(lambda conn: _read_messages(conn, session_id, limit, include_pruned))

    def read_messages_sync(self, session_id: str, limit: int | None, include_pruned: bool) -> list[Message]:
        limit = None if limit is None else clamp(limit)
        return self._call_sync(lambda conn: _read_messages(conn, session_id, limit, include_pruned))

    async def read_session(
        self, session_id: str, limit: int | None, include_pruned: bool
    ) -> tuple[SessionHeader | None, list[Message]]:
        """The session's header and its messages (as `read_messages`) in one trip and one read
        snapshot: a Session's first read needs both, and each trip to the database thread costs
        more than either query."""
        limit = None if limit is None else clamp(limit)
        return await self._call(lambda conn: _read_session(conn, session_id, limit, include_pruned))

    async def clear_messages(self, session_id: str, event: NewEvent) -> int:
        def run(conn: sqlite3.Connection) -> int:
            now = _now()
            with _transaction(conn):
                counters.settle(conn, session_id)
                # Cleared messages become tombstones (content gone), so their audit events remain.
                conn.execute(
                    "INSERT INTO pruned_messages (session_id, pos, seq, event_id, created_at, tokens, entry, "
                    "pruned_by, pruned_at) SELECT session_id, pos, seq, event_id, created_at, tokens, "
                    "json_remove(entry, '$.content', '$.tool_calls'), 'clear', ? FROM messages "
                    "WHERE session_id = ?",
                    (now, session_id),
                )
                cur = conn.execute("DELETE FROM messages WHERE session_id = ?", (session_id,))
                conn.execute("UPDATE sessions SET active_count = 0 WHERE id = ?", (session_id,))
                _insert_events(conn, session_id, [event], now)
            return cur.rowcount

        return await self._call(run)

    async def remove_messages(self, session_id: str, removal: Removal) -> list[Message]:
        encode_events([removal.event])

        def run(conn: sqlite3.Connection) -> list[Message]:
            with _transaction(conn):
                return _undo_sql.remove_messages(conn, session_id, removal, _now())

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
        check_header(header)
        encoded = _encode_writes(writes)  # (a bad event fails typed on the database thread)
        await self._call(lambda conn: _write_state(conn, header, encoded, events))

    def write_state_sync(
        self, header: SessionHeader, writes: Sequence[StateWrite], events: Sequence[NewEvent]
    ) -> None:
        check_header(header)
        encoded = _encode_writes(writes)  # (a bad event fails typed on the database thread)
        self._call_sync(lambda conn: _write_state(conn, header, encoded, events))

    # events -----------------------------------------------------------------------------------

    async def append_events(self, header: SessionHeader, events: Sequence[NewEvent]) -> None:
        check_header(header)
        encoded = encode_events(events)

        def run(conn: sqlite3.Connection) -> None:
            now = _now()
            with _transaction(conn):
                first_event = _counters(conn, header, now).next_event
                _insert_numbered_events(conn, header.id, first_event, encoded, now)

        await self._call(run)

    async def read_events(self, session_id: str, since: float | None, limit: int | None) -> list[Event]:
        after = "" if since is None else " AND created_at >= :since"
        message_events = (
            "SELECT event_id, created_at, 'message_appended', NULL, seq, tokens, "
            "json_extract(entry, '$.id'), json_extract(entry, '$.role') FROM {table} "
            "WHERE session_id = :id" + after
        )
        sql = (
            "SELECT id, created_at, type, data, NULL, NULL, NULL, NULL FROM events WHERE session_id = :id"
            + after
            + " UNION ALL "
            + message_events.format(table="messages")
            + " UNION ALL "
            + message_events.format(table="pruned_messages")
            + " ORDER BY 1"
            + ("" if limit is None else " LIMIT :limit")
        )
        params = {
            "id": session_id,
            "since": None if since is None else timestamp(since, "since"),
            "limit": None if limit is None else clamp(limit),
        }

        def run(conn: sqlite3.Connection) -> list[Event]:
            return [event_from_row(r, session_id) for r in conn.execute(sql, params)]

        return await self._call(run)

    # long-term memory (agnt5.memory) ---------------------------------------------------------

    async def memory_version(self, namespace: str) -> int:
        return await self._call(lambda conn: _memory_version(conn, namespace))

    async def memory_get(self, namespace: str, keys: Sequence[str]) -> list[MemoryRow]:
        wanted = list(dict.fromkeys(keys))

        def run(conn: sqlite3.Connection) -> list[MemoryRow]:
            rows: list[MemoryRow] = []
            for start in range(0, len(wanted), _MEMORY_IN_CHUNK):
                chunk = wanted[start : start + _MEMORY_IN_CHUNK]
                marks = ",".join("?" * len(chunk))
                sql = f"SELECT {_MEMORY_COLUMNS} FROM memories WHERE namespace = ? AND key IN ({marks})"
                rows += [_memory_row(r) for r in conn.execute(sql, [namespace, *chunk])]
            return rows

        return await self._call(run)

    async def memory_list(self, namespace: str) -> list[MemoryRow]:
        def run(conn: sqlite3.Connection) -> list[MemoryRow]:
            sql = f"SELECT {_MEMORY_COLUMNS} FROM memories WHERE namespace = ? ORDER BY key"
            return [_memory_row(r) for r in conn.execute(sql, (namespace,))]

        return await self._call(run)

    async def memory_put(self, namespace: str, writes: Sequence[MemoryWrite]) -> MemoryWriteResult:
        encoded = [(w, encode_memory(w)) for w in writes]
        return await self._call(lambda conn: _memory_put(conn, namespace, encoded))

    async def memory_delete(self, namespace: str, keys: Sequence[str] | None) -> tuple[int, list[str]]:
        wanted = None if keys is None else list(dict.fromkeys(keys))

        def run(conn: sqlite3.Connection) -> tuple[int, list[str]]:
            with _transaction(conn):
                if wanted is None:
                    sql = "DELETE FROM memories WHERE namespace = ? RETURNING key"
                    deleted = [r[0] for r in conn.execute(sql, (namespace,)).fetchall()]
                else:
                    deleted = []
                    sql = "DELETE FROM memories WHERE namespace = ? AND key = ?"
                    for key in wanted:
                        if conn.execute(sql, (namespace, key)).rowcount:
                            deleted.append(key)
                version = _memory_bump(conn, namespace) if deleted else _memory_version(conn, namespace)
            return version, sorted(deleted)

        return await self._call(run)

    async def memory_vectors(self, namespace: str) -> MemoryVectors:
        def run(conn: sqlite3.Connection) -> MemoryVectors:
            # One read transaction, so the version and the rows are one snapshot.
            conn.execute("BEGIN")
            try:
                version = _memory_version(conn, namespace)
                rows = conn.execute(
                    "SELECT key, model, dim, vector FROM memories WHERE namespace = ? ORDER BY key",
                    (namespace,),
                ).fetchall()
            finally:
                conn.execute("COMMIT")
            return MemoryVectors(
                version,
                [r[0] for r in rows],
                [r[1] for r in rows],
                [r[2] for r in rows],
                [r[3] for r in rows],
            )

        return await self._call(run)

    # pruning (SQL in agnt5/store/_prune_sql.py) ----------------------------------------------------

    async def history_stats(self, session_id: str) -> HistoryStats:
        return await self._call(lambda conn: _prune_sql.history_stats(conn, session_id))

    async def window_cut(
        self, session_id: str, max_messages: int | None, max_tokens: int | None
    ) -> WindowCut:
        messages = None if max_messages is None else clamp(max_messages)
        tokens = None if max_tokens is None else clamp(max_tokens)
        return await self._call(lambda conn: _prune_sql.window_cut(conn, session_id, messages, tokens))

    async def seqs_before(self, session_id: str, pos: float) -> list[int]:
        return await self._call(lambda conn: _prune_sql.seqs_before(conn, session_id, pos))

    async def read_scores(self, session_id: str, seqs: Sequence[int]) -> dict[int, float]:
        wanted = [s for s in seqs if 0 <= s <= MAX_INT]  # no message has another seq
        return await self._call(lambda conn: _prune_sql.read_scores(conn, session_id, wanted))

    async def save_scores(self, session_id: str, scores: Mapping[int, float], model: str) -> None:
        def run(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                _prune_sql.save_scores(conn, session_id, scores, model)

        await self._call(run)

    async def apply_prune(self, session_id: str, prune: PruneWrite) -> AppliedPrune:
        def run(conn: sqlite3.Connection) -> AppliedPrune:
            with _transaction(conn):
                return _prune_sql.apply_prune(conn, session_id, prune)

        return await self._call(run)

    # paging through a long history (agnt5 inspect) ----------------------------------------------

    async def read_messages_page(
        self,
        session_id: str,
        *,
        before_seq: int | None,
        after_seq: int | None,
        limit: int,
        include_pruned: bool,
    ) -> list[Message]:
        """Up to `limit` messages placed before (the newest such) or after (the oldest such) the
        message `before_seq` / `after_seq`, oldest first; `after_seq=0` starts at the beginning."""
        limit = clamp(limit)

        def run(conn: sqlite3.Connection) -> list[Message]:
            return _read_messages_page(conn, session_id, before_seq, after_seq, limit, include_pruned)

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
                if version == USER_OWNER_VERSION:
                    _rekey_user_state(conn)
                current = version
        conn.execute(
            "INSERT INTO agnt5_meta (key, value) VALUES ('schema_version', ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (str(current),),
        )


def _open_file(path: str, mode: str, *, immutable: bool = False) -> sqlite3.Connection:
    """Connect to a database file by URI: `mode` rwc (create), rw (must exist) or ro."""
    uri = "file:" + urllib.parse.quote(os.path.abspath(path)) + f"?mode={mode}"
    if immutable:
        uri += "&immutable=1"
    return sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)


def _cannot_write(exc: sqlite3.Error) -> bool:
    """Whether opening for writing failed because the file or its directory is read-only."""
    return getattr(exc, "sqlite_errorcode", 0) & 0xFF in (_SQLITE_PERM, _SQLITE_READONLY, _SQLITE_CANTOPEN)


def _refused_write(exc: sqlite3.Error) -> bool:
    """Whether SQLite refused a write because the database is read-only."""
    return getattr(exc, "sqlite_errorcode", 0) & 0xFF == _SQLITE_READONLY


_SQLITE_PERM, _SQLITE_READONLY, _SQLITE_CANTOPEN = 3, 8, 14


def _check_readable(conn: sqlite3.Connection, path: str) -> None:
    """A database opened read-only is not migrated: it must be an agnt5 database this version
    can read (an older schema reads the same tables; its next writable open migrates it)."""
    try:
        version = schema_version(conn)
    except sqlite3.OperationalError as exc:  # no agnt5_meta table
        raise StoreError(f"{path} is not an agnt5 database ({exc})") from exc
    if version > LATEST_VERSION:
        raise SchemaVersionError(
            f"the database has schema version {version}, newer than this agnt5 knows "
            f"({LATEST_VERSION}); upgrade agnt5 to open it"
        )


def _rekey_user_state(conn: sqlite3.Connection) -> None:
    """Schema step 5's data: move 'user' state to owners that cannot collide (user_owner_moves)."""
    owners = [r[0] for r in conn.execute("SELECT DISTINCT owner FROM state WHERE scope = 'user'")]
    users = conn.execute("SELECT DISTINCT app_name, user_id FROM sessions WHERE user_id IS NOT NULL")
    for old, new_owners in user_owner_moves(owners, users.fetchall()).items():
        for new in new_owners:
            conn.execute(
                "INSERT INTO state (scope, owner, key, value, updated_at) "
                "SELECT 'user', ?, key, value, updated_at FROM state WHERE scope = 'user' AND owner = ? "
                "ON CONFLICT (scope, owner, key) DO UPDATE SET value = excluded.value, "
                "updated_at = excluded.updated_at WHERE excluded.updated_at > state.updated_at",
                (new, old),
            )
        conn.execute("DELETE FROM state WHERE scope = 'user' AND owner = ?", (old,))


def schema_version(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT value FROM agnt5_meta WHERE key = 'schema_version'").fetchone()
    return int(row[0]) if row else 0


def _get_session(conn: sqlite3.Connection, session_id: str) -> SessionHeader | None:
    row = conn.execute(f"SELECT {SESSION_COLUMNS_SQL} FROM sessions WHERE id = ?", (session_id,)).fetchone()
    return None if row is None else header_from_row(row)


def _read_messages(
    conn: sqlite3.Connection, session_id: str, limit: int | None, include_pruned: bool
) -> list[Message]:
    if include_pruned:
        sql = (
            "SELECT pos, seq, tokens, entry, NULL FROM messages WHERE session_id = :id "
            "UNION ALL SELECT pos, seq, tokens, entry, pruned_by FROM pruned_messages WHERE session_id = :id"
        )
    else:
        sql = "SELECT pos, seq, tokens, entry, NULL FROM messages WHERE session_id = :id"
    if limit is None:
        rows = conn.execute(sql + " ORDER BY pos", {"id": session_id}).fetchall()
    else:
        rows = conn.execute(
            sql + " ORDER BY pos DESC LIMIT :limit", {"id": session_id, "limit": limit}
        ).fetchall()
        rows.reverse()
    if not include_pruned:
        return [stored_message(loads(r[3]), r[1], r[2]) for r in rows]
    return [
        tombstone(loads(r[3]), r[1], r[2], r[4]) if r[4] else stored_message(loads(r[3]), r[1], r[2])
        for r in rows
    ]


def _read_session(
    conn: sqlite3.Connection, session_id: str, limit: int | None, include_pruned: bool
) -> tuple[SessionHeader | None, list[Message]]:
    if _get_session(conn, session_id) is None:
        return None, []  # never stored, so no messages: every append stores the session first
    conn.execute("BEGIN")  # one snapshot: the header's count matches the messages
    try:
        header = _get_session(conn, session_id)
        messages = [] if header is None else _read_messages(conn, session_id, limit, include_pruned)
    finally:
        conn.execute("COMMIT")
    return header, messages


# Creates the session row on first use (or rewrites its header). Appends write no session columns
# (see _sqlite_counters); updated_at/expires_at (indexed, for listing and expiry) move at most once
# a second.
_INSERT_SESSION = """
INSERT INTO sessions (id, app_name, user_id, metadata, retention, ttl_days, immutable,
                      created_at, updated_at, expires_at)
VALUES (:id, :app_name, :user_id, :metadata, :retention, :ttl_days, :immutable,
        :now, :now, :now + :ttl_days * 86400.0)
ON CONFLICT (id) DO UPDATE SET
    metadata = excluded.metadata,
    retention = excluded.retention,
    ttl_days = excluded.ttl_days,
    immutable = MAX(sessions.immutable, excluded.immutable),
    updated_at = excluded.updated_at,
    expires_at = excluded.expires_at
"""
_TOUCH = "UPDATE sessions SET updated_at = ?1, expires_at = ?1 + ttl_days * 86400.0 WHERE id = ?2"
_TOUCH_INTERVAL = 1.0
# Rows are added by _insert_rows: these take the VALUES lists.
_INSERT_MESSAGES = "INSERT INTO messages (session_id, pos, seq, event_id, created_at, tokens, entry) VALUES "
_INSERT_EVENTS = "INSERT INTO events (session_id, id, created_at, type, data) VALUES "


def _header_params(header: SessionHeader, now: float) -> dict[str, Any]:
    ttl = header.retention.get("ttl_days")
    return {
        "id": header.id,
        "app_name": header.app_name,
        "user_id": header.user_id,
        "metadata": dumps(header.metadata),
        "retention": dumps(header.retention),
        "ttl_days": ttl,
        "immutable": 1 if header.retention.get("immutable") else 0,
        "now": now,
    }


def _touch_session(conn: sqlite3.Connection, header: SessionHeader, now: float) -> None:
    """Create the session or write its header (metadata, retention) and update time."""
    conn.execute(_INSERT_SESSION, _header_params(header, now))


def _counters(conn: sqlite3.Connection, header: SessionHeader, now: float) -> counters.Counters:
    """The session's next numbers, creating the session first if needed; moves its update time
    if that is a second or more behind `now`."""
    found = counters.read(conn, header.id)
    if found is None:
        _touch_session(conn, header, now)
        return counters.created(now)
    return _touched(conn, header.id, found, now)


def _touched(
    conn: sqlite3.Connection, session_id: str, found: counters.Counters, now: float
) -> counters.Counters:
    """`found`, after moving the session's update time if that is a second or more behind `now`."""
    if now - found.updated_at >= _TOUCH_INTERVAL:
        conn.execute(_TOUCH, (now, session_id))
        return found._replace(updated_at=now)
    return found


def _append(conn: sqlite3.Connection, job: _AppendJob) -> int:
    """Number and insert one queued append (and its events, and its conditional key/value
    write); returns its first seq."""
    seq, job.updated_at = _insert_append(conn, job.header, job.now, job.rows, job.events)
    if job.kv is not None:
        namespace, key, value, expected = job.kv
        job.kv_written = conn.execute(_UPDATE_KV, (value, job.now, namespace, key, expected)).rowcount == 1
    return seq


def _insert_append(
    conn: sqlite3.Connection,
    header: SessionHeader,
    now: float,
    rows: Sequence[tuple[int, str]],
    events: Sequence[tuple[str, str]],
    known: counters.Counters | None = None,
) -> tuple[int, float]:
    """Number and insert encoded messages and events (after `known` counters, as read in this
    transaction, else read here); returns the first seq and the session's update time."""
    sid = header.id
    next_ = _counters(conn, header, now) if known is None else _touched(conn, sid, known, now)
    seq, event_id = next_.next_seq, next_.next_event
    _insert_rows(
        conn,
        _INSERT_MESSAGES,
        [(sid, seq + i, seq + i, event_id + i, now, t, e) for i, (t, e) in enumerate(rows)],
    )
    _insert_numbered_events(conn, sid, event_id + len(rows), events, now)
    return seq, next_.updated_at


def _insert_events(conn: sqlite3.Connection, session_id: str, events: Sequence[NewEvent], now: float) -> None:
    """Number `events` after the session's last event and insert them (no-op without the session)."""
    found = counters.read(conn, session_id) if events else None
    if found is not None:
        encoded = [(e.type, dumps(e.data)) for e in events]
        _insert_numbered_events(conn, session_id, found.next_event, encoded, now)


def _insert_numbered_events(
    conn: sqlite3.Connection, session_id: str, first_id: int, events: Sequence[tuple[str, str]], now: float
) -> None:
    """Insert (type, data JSON) events numbered from `first_id`."""
    _insert_rows(
        conn, _INSERT_EVENTS, [(session_id, first_id + i, now, t, d) for i, (t, d) in enumerate(events)]
    )


_ROWS_PER_INSERT = 16


def _insert_rows(conn: sqlite3.Connection, insert: str, rows: Sequence[tuple[Any, ...]]) -> None:
    """Insert `rows` with one multi-row INSERT per 16 of them: each statement runs in one call
    into SQLite, where executemany makes one per row and retakes the GIL after each (a wait of
    up to the interpreter's switch interval when another thread is busy)."""
    for start in range(0, len(rows), _ROWS_PER_INSERT):
        chunk = rows[start : start + _ROWS_PER_INSERT]
        conn.execute(_values_sql(insert, len(chunk[0]), len(chunk)), [v for row in chunk for v in row])


@functools.cache
def _values_sql(insert: str, columns: int, rows: int) -> str:
    row = "(" + ", ".join("?" * columns) + ")"
    return insert + ", ".join([row] * rows)


def _delete_session(conn: sqlite3.Connection, session_id: str) -> bool:
    conn.execute("DELETE FROM messages WHERE session_id = ?", (session_id,))
    conn.execute("DELETE FROM pruned_messages WHERE session_id = ?", (session_id,))
    conn.execute("DELETE FROM message_scores WHERE session_id = ?", (session_id,))
    conn.execute("DELETE FROM events WHERE session_id = ?", (session_id,))
    conn.execute("DELETE FROM state WHERE scope = 'session' AND owner = ?", (session_id,))
    cur = conn.execute("DELETE FROM sessions WHERE id = ?", (session_id,))
    return cur.rowcount > 0


def _get_state(conn: sqlite3.Connection, scope: str, owner: str) -> dict[str, Any]:
    rows = conn.execute("SELECT key, value FROM state WHERE scope = ? AND owner = ?", (scope, owner))
    return {k: json.loads(v) for k, v in rows}


def _kv_get(conn: sqlite3.Connection, namespace: str, key: str) -> tuple[Any, int] | None:
    row = conn.execute(
        "SELECT value, version FROM kv WHERE namespace = ? AND key = ?", (namespace, key)
    ).fetchone()
    return None if row is None else (json.loads(row[0]), row[1])


def _encode_kv(namespace: str, key: str, value: Any) -> str:
    check_text(namespace, "entity name")
    check_text(key, "entity key")
    return encode(value, f"entity value {key!r}")


_UPDATE_KV = (
    "UPDATE kv SET value = ?, version = version + 1, updated_at = ? "
    "WHERE namespace = ? AND key = ? AND version = ?"
)

_EncodedWrite = tuple[str, str, str, str | None]


def _encode_writes(writes: Sequence[StateWrite]) -> list[_EncodedWrite]:
    return [
        (
            w.scope,
            check_text(w.owner, "state owner"),
            check_text(w.key, "state key"),
            None if w.delete else encode(w.value, f"state value {w.key!r}"),
        )
        for w in writes
    ]


def _write_state(
    conn: sqlite3.Connection, header: SessionHeader, writes: list[_EncodedWrite], events: Sequence[NewEvent]
) -> None:
    now = _now()
    with _transaction(conn):
        first_event = _counters(conn, header, now).next_event
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
        _insert_numbered_events(conn, header.id, first_event, [(e.type, dumps(e.data)) for e in events], now)


# --- long-term memory helpers (agnt5.memory), run on the connection thread ------------------------

_MEMORY_COLUMNS = "key, content, metadata, content_hash, model, created_at, updated_at"
_MEMORY_IN_CHUNK = 500  # keys per IN (...) list, well under SQLite's bound-parameter limit


def _memory_row(r: Sequence[Any]) -> MemoryRow:
    return MemoryRow(r[0], r[1], json.loads(r[2]), r[3], r[4], r[5], r[6])


def _memory_version(conn: sqlite3.Connection, namespace: str) -> int:
    row = conn.execute("SELECT version FROM memory_namespaces WHERE namespace = ?", (namespace,)).fetchone()
    return 0 if row is None else int(row[0])


def _memory_bump(conn: sqlite3.Connection, namespace: str) -> int:
    row = conn.execute(
        "INSERT INTO memory_namespaces (namespace, version) VALUES (?, 1) "
        "ON CONFLICT (namespace) DO UPDATE SET version = version + 1 RETURNING version",
        (namespace,),
    ).fetchone()
    return int(row[0])


class _MemoryConflict(Exception):
    """Rolls back a memory batch whose guarded writes found the stored content changed."""


_MEMORY_UPSERT = """
INSERT INTO memories (namespace, key, content, metadata, content_hash, model, dim, vector, created_at, updated_at)
VALUES (:ns, :key, :content, :metadata, :hash, :model, :dim, :vector, :now, :now)
ON CONFLICT (namespace, key) DO UPDATE SET
    content = excluded.content,
    metadata = excluded.metadata,
    content_hash = excluded.content_hash,
    model = excluded.model,
    dim = excluded.dim,
    vector = excluded.vector,
    updated_at = excluded.updated_at
"""
# Same content (hash and model unchanged): keep the stored vector, update content and metadata.
_MEMORY_KEEP_VECTOR = """
UPDATE memories SET content = :content, metadata = :metadata, updated_at = :now
WHERE namespace = :ns AND key = :key AND content_hash = :expected AND model IS :model
"""
# Re-embedded content (a model change): write only if nobody changed the content meanwhile.
_MEMORY_GUARDED_UPDATE = """
UPDATE memories SET content = :content, metadata = :metadata, content_hash = :hash, model = :model,
    dim = :dim, vector = :vector, updated_at = :now
WHERE namespace = :ns AND key = :key AND content_hash = :expected
"""


def _memory_put(
    conn: sqlite3.Connection, namespace: str, writes: Sequence[tuple[MemoryWrite, str]]
) -> MemoryWriteResult:
    now = _now()
    conflicts: list[str] = []
    try:
        with _transaction(conn):
            for w, metadata in writes:
                params = {
                    "ns": namespace,
                    "key": w.key,
                    "content": w.content,
                    "metadata": metadata,
                    "hash": w.content_hash,
                    "model": w.model,
                    "dim": w.dim,
                    "vector": w.vector,
                    "expected": w.only_if_hash,
                    "now": now,
                }
                if w.only_if_hash is None:
                    conn.execute(_MEMORY_UPSERT, params)
                    continue
                sql = _MEMORY_KEEP_VECTOR if w.vector is None else _MEMORY_GUARDED_UPDATE
                if conn.execute(sql, params).rowcount == 0:
                    conflicts.append(w.key)
            if conflicts:
                raise _MemoryConflict
            version = _memory_bump(conn, namespace)
    except _MemoryConflict:
        return MemoryWriteResult(_memory_version(conn, namespace), conflicts)
    return MemoryWriteResult(version)


def _read_messages_page(
    conn: sqlite3.Connection,
    session_id: str,
    before_seq: int | None,
    after_seq: int | None,
    limit: int,
    include_pruned: bool,
) -> list[Message]:
    q = page_query(
        before_seq, after_seq, include_pruned, session=":id", seq=":seq", pos=":pos", limit=":limit"
    )
    pos = q.start
    if q.anchor is not None:
        row = conn.execute(q.anchor_sql, {"id": session_id, "seq": q.anchor}).fetchone()
        if row is None:
            return []
        pos = float(row[0])
    rows = conn.execute(q.sql, {"id": session_id, "pos": pos, "limit": limit}).fetchall()
    if not q.newer:
        rows.reverse()
    return [
        tombstone(loads(r[3]), r[1], r[2], r[4]) if r[4] else stored_message(loads(r[3]), r[1], r[2])
        for r in rows
    ]
