"""The PostgreSQL store: one shared, durable store for many worker processes on many hosts.

Selected by `AGNT5_DATABASE_URL=postgresql://user:pass@host:port/db` (or `postgres://`), by
`agnt5.configure(database_url=...)`, or explicitly with `store=PostgresStore(url)`. Needs the
extra `agnt5[postgres]` (asyncpg). A `schema=NAME` query parameter puts agnt5's tables in that
schema (created if missing), so several apps or test runs can share one database.

It mirrors SqliteStore method for method (same records, same numbering, same events, same
errors); only the storage differs. What is specific to a network store:

- **Asynchronous only** (`supports_sync = False`): Session keeps `set_state` synchronous by
  caching and writing on the next awaited call (`await session.flush()`), and a fresh Session
  object reads stored state after `await session.load()`.
- **A connection pool** (asyncpg), opened on first use in the running event loop (a store used
  from a new loop, e.g. a second `asyncio.run`, opens a new pool). One connection is kept out of
  the pool between calls: a call that finds it free skips the pool's acquire/release trips. The schema is created and
  migrated then, with the same version numbers as SQLite (agnt5/store/migrations_postgres.py).
- **Durability:** every awaited write is committed when it returns; writes run in their own task,
  so a cancelled caller still gets its write committed whole (as on SQLite).

Locking — row locks, not advisory locks. Every write to a session goes through its row in
`sessions`, which carries the counters:

- an append is ONE statement (`UPDATE sessions ... RETURNING` the reserved seq and event numbers,
  with the message and event INSERTs in data-modifying CTEs). The UPDATE row-locks the session
  until commit, so concurrent appenders in any process queue on that row and each reserves the
  next numbers only after the previous one committed: sequence numbers are gap-free, and a failed
  append rolls its reservation back with it.
- state writes (per-key `INSERT ... ON CONFLICT DO UPDATE`, merged inside the database) and their
  events are one statement the same way; keys are written in sorted order, so two writers of
  several shared user/app keys cannot deadlock.
- prune, clear, delete and purge take the row first (`SELECT ... FOR UPDATE`): an append waits
  for the prune and then lands after it, or the prune waits for the append and then sees it.
  A prune moves exactly its planned seqs and fails whole (PruneConflictError) if any is gone, so
  a prune racing with appends loses nothing.
- `Entity.update` is optimistic: `UPDATE kv ... WHERE version = $expected` (under READ COMMITTED
  a writer that waited re-checks the version and fails), and the caller retries.

Row locks belong to the data: released at commit or rollback, covered by deadlock detection, no
lock-key hashing, and safe behind a transaction-pooling proxy. Advisory locks are used only where
there is no row yet: a transaction-scoped `pg_advisory_xact_lock` (keyed by the schema) serialises
creating and migrating the schema when several processes open a new database at once. A deadlock
or serialization failure (which Postgres resolves by aborting one transaction) is retried.

Errors: an unreachable server raises StoreConnectionError, refused credentials
StoreAuthenticationError, a connection dropped mid-operation StoreConnectionLostError (the
operation was a transaction: nothing is half written); all name the URL with the password masked.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from agnt5.errors import (
    Agnt5Error,
    ConfigurationError,
    DatabaseNotFoundError,
    ImmutableSessionError,
    InvalidInputError,
    PruneConflictError,
    ReadOnlyStoreError,
    SchemaVersionError,
    StoreAuthenticationError,
    StoreConnectionError,
    StoreConnectionLostError,
    StoreError,
    UpdateConflictError,
)
from agnt5.messages import Message, stored_message
from agnt5.store._page_sql import page_query
from agnt5.store._rows import (
    MAX_INT,
    SESSION_COLUMNS,
    appended_event_data,
    check_events,
    check_header,
    check_text,
    clamp,
    decode_cursor,
    dumps,
    encode,
    encode_cursor,
    encode_memory,
    event_from_row,
    header_from_row,
    loads,
    new_entries,
    prune_event_data,
    removal_event_data,
    timestamp,
    tombstone,
    tombstone_entry,
    value_error,
)
from agnt5.store._rows import (
    now as _now,
)
from agnt5.store.base import (
    AppliedPrune,
    CutPoint,
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
from agnt5.store.migrations import USER_OWNER_VERSION, user_owner_moves
from agnt5.store.migrations_postgres import POSTGRES_LATEST_VERSION, POSTGRES_MIGRATIONS
from agnt5.store.url import mask_password

if TYPE_CHECKING:
    import asyncpg

T = TypeVar("T")

SCHEMES = ("postgresql", "postgres")
DEFAULT_MAX_SIZE = 10
CONNECT_TIMEOUT = 10.0
_RETRIES = 20  # deadlock / serialization failures: the aborted transaction is simply run again
_TOUCH_INTERVAL = 1.0  # as SqliteStore: updated_at/expires_at (indexed) move at most once a second
_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_SYSTEM = "('system', 'developer')"


def _import_asyncpg() -> Any:
    try:
        import asyncpg
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ConfigurationError("the PostgreSQL store needs asyncpg: pip install 'agnt5[postgres]'") from exc
    return asyncpg


def split_url(url: str) -> tuple[str, str | None]:
    """(DSN for asyncpg, schema) of a `postgresql://` URL; `schema=` is agnt5's own parameter."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in SCHEMES or (not parts.netloc and not parts.path.strip("/")):
        raise ConfigurationError(
            f"invalid PostgreSQL URL {mask_password(url)!r}: use postgresql://user:password@host:port/database"
        )
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = None
    kept = []
    for key, value in query:
        if key == "schema":
            schema = value
        else:
            kept.append((key, value))
    if schema is not None and not _SCHEMA_NAME.match(schema):
        raise ConfigurationError(
            f"invalid schema {schema!r} in {mask_password(url)!r}: use letters, digits and _ "
            "(at most 63, not starting with a digit)"
        )
    dsn = urlunsplit(("postgresql", parts.netloc, parts.path, urlencode(kept), parts.fragment))
    return dsn, schema


def _redact(exc: BaseException, dsn: str) -> str:
    """The driver's error text with credentials masked, and the DSN's password nowhere in it."""
    text = mask_password(str(exc))
    password = urlsplit(dsn).password or ""
    for secret in {password, unquote(password)}:
        if len(secret) >= 4:  # a shorter one would mask unrelated text
            text = text.replace(secret, "***")
    return text


def _lock_key(schema: str | None) -> int:
    digest = hashlib.sha256(f"agnt5.migrate:{schema or ''}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class PostgresStore:
    """The agnt5 store on a PostgreSQL server (asyncpg pool; see the module docstring)."""

    supports_sync = False

    def __init__(
        self,
        url: str,
        *,
        schema: str | None = None,
        min_size: int = 1,
        max_size: int = DEFAULT_MAX_SIZE,
        connect_timeout: float = CONNECT_TIMEOUT,
        read_only: bool = False,
    ) -> None:
        dsn, url_schema = split_url(url)
        if schema is not None and not _SCHEMA_NAME.match(schema):
            raise ConfigurationError(f"invalid schema {schema!r}: use letters, digits and _")
        self.url = mask_password(url)
        """The URL with its password masked (safe to print); the secret stays in `_dsn`."""
        self.schema = schema or url_schema
        self._dsn = dsn  # private: the only place the password is kept, used to connect
        self._masked = self.url
        self._min_size = min_size
        self._max_size = max_size
        self._connect_timeout = connect_timeout
        # Read-only: every transaction is read-only on the server, and the schema is checked,
        # never created or migrated (a reader must not change a database, even an empty one).
        self.read_only = read_only
        self._pool: asyncpg.Pool | None = None
        self._pool_loop: asyncio.AbstractEventLoop | None = None
        self._opening: asyncio.Task[asyncpg.Pool] | None = None
        self._writes: set[asyncio.Task[Any]] = set()
        self._closed = False
        # One connection kept out of the pool between calls: a call that finds it free uses it
        # without the pool's acquire/release (each a few event-loop trips); concurrent calls
        # take pooled connections as usual.
        self._hot: asyncpg.Connection | None = None
        self._hot_busy = False

    def __repr__(self) -> str:
        return f"PostgresStore({self._masked!r})"

    # connection -------------------------------------------------------------------------------

    def _error(self, exc: BaseException, doing: str) -> StoreError:
        """The typed agnt5 error for an asyncpg/OS failure while `doing` something."""
        asyncpg = _import_asyncpg()
        where = f"PostgreSQL at {self._masked}"
        detail = _redact(exc, self._dsn)
        if isinstance(exc, asyncpg.ReadOnlySQLTransactionError):
            return ReadOnlyStoreError(
                f"{where} was opened read-only: the write was refused while {doing}; "
                "open it without read_only to change it"
            )
        if isinstance(exc, asyncpg.InvalidAuthorizationSpecificationError | asyncpg.InvalidPasswordError):
            return StoreAuthenticationError(
                f"{where} refused the credentials while {doing}: {detail}", url=self._masked
            )
        lost = (
            asyncpg.PostgresConnectionError,  # ConnectionDoesNotExistError: closed mid-operation
            asyncpg.AdminShutdownError,  # pg_terminate_backend, server shut down
            asyncpg.CrashShutdownError,
            asyncpg.CannotConnectNowError,
            # agnt5 runs one operation at a time per connection, so the client-side state errors
            # ("another operation is in progress", "the underlying connection is closed") mean
            # the server closed the connection under it.
            asyncpg.InterfaceError,
            asyncpg.InternalClientError,  # "cannot switch to state": closed while idle
            ConnectionError,
            TimeoutError,
        )
        if doing != "connecting" and (isinstance(exc, lost) or _closed_connection(exc, lost)):
            return StoreConnectionLostError(
                f"the connection to {where} was lost while {doing} (nothing was half written; "
                f"the operation applied whole or not at all): {detail}",
                url=self._masked,
            )
        cannot_connect = (
            OSError,  # refused, unreachable, unknown host
            TimeoutError,
            asyncpg.PostgresConnectionError,
            asyncpg.CannotConnectNowError,  # the server is starting or shutting down
            asyncpg.InvalidCatalogNameError,  # no such database
            asyncpg.TooManyConnectionsError,
        )
        if doing == "connecting" and isinstance(exc, cannot_connect):
            return StoreConnectionError(f"cannot connect to {where}: {detail}", url=self._masked)
        return StoreError(f"PostgreSQL error on {self._masked} while {doing}: {detail}")

    async def _get_pool(self) -> asyncpg.Pool:
        if self._closed:
            raise StoreError(f"{self!r} is closed; create a new store")
        loop = asyncio.get_running_loop()
        if self._pool is not None and self._pool_loop is loop:
            return self._pool
        if self._opening is None or self._opening.get_loop() is not loop:
            if self._pool is not None:  # opened in an event loop that is gone or another one
                _abandon(self._pool)
                self._pool, self._hot, self._hot_busy = None, None, False
            self._opening = loop.create_task(self._open())
        opening = self._opening
        try:
            pool = await asyncio.shield(opening)
        except BaseException:
            if opening.done() and self._opening is opening:
                self._opening = None  # a failed open is retried by the next call
            raise
        return pool

    async def _open(self) -> asyncpg.Pool:
        asyncpg = _import_asyncpg()
        settings = {"application_name": "agnt5"}
        if self.schema is not None:
            settings["search_path"] = f'"{self.schema}"'
        if self.read_only:
            settings["default_transaction_read_only"] = "on"
        try:
            pool = await asyncpg.create_pool(
                self._dsn,
                min_size=min(self._min_size, self._max_size),
                max_size=self._max_size,
                timeout=self._connect_timeout,
                server_settings=settings,
                reset=_keep_session,
            )
        except Exception as exc:
            raise self._error(exc, "connecting") from exc
        try:
            async with pool.acquire() as conn:
                if self.read_only:
                    await _check_schema(conn, self._masked, self.schema)
                else:
                    await _migrate(conn, self.schema)
        except BaseException as exc:
            pool.terminate()
            if isinstance(exc, Exception) and not isinstance(exc, StoreError):
                raise self._error(exc, "creating the schema") from exc
            raise
        self._pool, self._pool_loop = pool, asyncio.get_running_loop()
        return pool

    async def _on_connection(self, pool: asyncpg.Pool, fn: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """Run `fn` on the kept connection when it is free, else on one from the pool."""
        hot = self._hot
        if hot is not None and not self._hot_busy and _usable(hot):
            self._hot_busy = True
            try:
                result = await fn(hot)
            except BaseException:
                # Possibly broken or mid-cancel: the pool resets it, or closes and replaces it.
                if self._hot is hot:
                    self._hot, self._hot_busy = None, False
                await pool.release(hot)
                raise
            if self._hot is hot:
                self._hot_busy = False
            else:  # dropped meanwhile (close, or a new event loop)
                await pool.release(hot)
            return result
        if hot is not None and not self._hot_busy:  # closed under us
            self._hot = None
            await pool.release(hot)
        conn = await pool.acquire()
        try:
            result = await fn(conn)
        except BaseException:
            await pool.release(conn)
            raise
        # Kept only with room for others: a pool of one must give its connection back each time.
        if self._hot is None and self._max_size > 1 and pool is self._pool and _usable(conn):
            self._hot = conn
        else:
            await pool.release(conn)
        return result

    async def _read(self, fn: Callable[[asyncpg.Connection], Awaitable[T]], doing: str) -> T:
        """Run a read; one whose connection turns out dead (e.g. the server closed it while it was
        idle) is run once more on another (reads change nothing, so repeating one is safe)."""
        pool = await self._get_pool()
        for attempt in range(2):
            try:
                return await self._on_connection(pool, fn)
            except Agnt5Error:
                raise
            except Exception as exc:
                error = _input_error(exc) or self._error(exc, doing)
                if attempt == 0 and isinstance(error, StoreConnectionLostError):
                    continue
                raise error from exc
        raise AssertionError("unreachable")

    async def _write(
        self, fn: Callable[[asyncpg.Connection], Awaitable[T]], doing: str, *, shield: bool = True
    ) -> T:
        """Run a write in its own task (a cancelled caller does not stop it), retrying deadlocks.

        `shield=False` for callers that already run it in a task of their own (Session.flush):
        a cancelled write is then still whole or nothing (one statement, one transaction)."""
        if not shield:
            return await self._run_write(fn, doing)
        task = asyncio.ensure_future(self._run_write(fn, doing))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)
        return await asyncio.shield(task)

    async def _run_write(self, fn: Callable[[asyncpg.Connection], Awaitable[T]], doing: str) -> T:
        asyncpg = _import_asyncpg()
        pool = await self._get_pool()
        for attempt in range(_RETRIES):
            try:
                return await self._on_connection(pool, fn)
            except asyncpg.TransactionRollbackError as exc:  # deadlock or serialization failure
                if attempt == _RETRIES - 1:
                    raise self._error(exc, doing) from exc
                await asyncio.sleep(random.uniform(0, 0.002 * (attempt + 1)))
            except Agnt5Error:
                raise
            except Exception as exc:
                raise (_input_error(exc) or self._error(exc, doing)) from exc
        raise AssertionError("unreachable")

    async def close(self) -> None:
        """Wait for writes in flight, then close the pool. The store cannot be used afterwards."""
        self._closed = True
        if self._writes:
            await asyncio.gather(*list(self._writes), return_exceptions=True)
        pool, self._pool = self._pool, None
        hot, self._hot, self._hot_busy = self._hot, None, False
        opening, self._opening = self._opening, None
        if pool is None and opening is not None and opening.done() and not opening.cancelled():
            if opening.exception() is None:
                pool = opening.result()
        if pool is None:
            return
        try:
            same_loop = self._pool_loop is asyncio.get_running_loop()
        except RuntimeError:
            same_loop = False
        if same_loop:
            if hot is not None:
                await pool.release(hot)
            try:
                await asyncio.wait_for(pool.close(), 10)
            except (TimeoutError, Exception):
                pool.terminate()
        else:
            _abandon(pool)

    # entity key/values ------------------------------------------------------------------------

    async def kv_get(self, namespace: str, key: str) -> tuple[Any, int] | None:
        async def run(conn: asyncpg.Connection) -> tuple[Any, int] | None:
            row = await conn.fetchrow(
                "SELECT value, version FROM kv WHERE namespace = $1 AND key = $2", namespace, key
            )
            return None if row is None else (json.loads(row[0]), int(row[1]))

        return await self._read(run, "reading an entity")

    async def kv_set(self, namespace: str, key: str, value: Any) -> None:
        encoded = _encode_kv(namespace, key, value)

        async def run(conn: asyncpg.Connection) -> None:
            await conn.execute(
                "INSERT INTO kv (namespace, key, value, version, updated_at) VALUES ($1, $2, $3, 1, $4) "
                "ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, "
                "version = kv.version + 1, updated_at = excluded.updated_at",
                namespace,
                key,
                encoded,
                _now(),
            )

        await self._write(run, "writing an entity")

    async def kv_compare_and_set(self, namespace: str, key: str, value: Any, expected_version: int) -> bool:
        encoded = _encode_kv(namespace, key, value)
        if not 0 <= expected_version <= MAX_INT:
            return False  # no stored version is that

        async def run(conn: asyncpg.Connection) -> bool:
            if expected_version == 0:
                status = await conn.execute(
                    "INSERT INTO kv (namespace, key, value, version, updated_at) VALUES ($1, $2, $3, 1, $4) "
                    "ON CONFLICT (namespace, key) DO NOTHING",
                    namespace,
                    key,
                    encoded,
                    _now(),
                )
            else:
                status = await conn.execute(
                    "UPDATE kv SET value = $1, version = version + 1, updated_at = $2 "
                    "WHERE namespace = $3 AND key = $4 AND version = $5",
                    encoded,
                    _now(),
                    namespace,
                    key,
                    expected_version,
                )
            return _rowcount(status) == 1

        return await self._write(run, "updating an entity")

    async def kv_delete(self, namespace: str, key: str) -> bool:
        async def run(conn: asyncpg.Connection) -> bool:
            status = await conn.execute("DELETE FROM kv WHERE namespace = $1 AND key = $2", namespace, key)
            return _rowcount(status) > 0

        return await self._write(run, "deleting an entity key")

    async def kv_keys(self, namespace: str) -> list[str]:
        async def run(conn: asyncpg.Connection) -> list[str]:
            rows = await conn.fetch("SELECT key FROM kv WHERE namespace = $1 ORDER BY key", namespace)
            return [r[0] for r in rows]

        return await self._read(run, "listing entity keys")

    # sessions ---------------------------------------------------------------------------------

    async def get_session(self, session_id: str) -> SessionHeader | None:
        async def run(conn: asyncpg.Connection) -> SessionHeader | None:
            return await _get_session(conn, session_id)

        return await self._read(run, "reading a session")

    async def save_session(self, header: SessionHeader) -> SessionHeader:
        async def run(conn: asyncpg.Connection) -> SessionHeader:
            async with conn.transaction():
                await _touch_session(conn, header, _now())
                stored = await _get_session(conn, header.id)
            assert stored is not None
            return stored

        return await self._write(run, "saving a session")

    async def list_sessions(
        self, app_name: str | None, user_id: str | None, limit: int, cursor: str | None
    ) -> SessionPage:

        where: list[str] = []
        params: list[Any] = []
        if app_name is not None:
            params.append(app_name)
            where.append(f"app_name = ${len(params)}")
        if user_id is not None:
            params.append(user_id)
            where.append(f"user_id = ${len(params)}")
        if cursor is not None:
            updated_at, last_id = decode_cursor(cursor)
            params += [updated_at, last_id]
            u, i = len(params) - 1, len(params)
            where.append(f"(updated_at < ${u} OR (updated_at = ${u} AND id < ${i}))")
        sql = f"SELECT {SESSION_COLUMNS} FROM sessions"
        if where:
            sql += " WHERE " + " AND ".join(where)
        limit = min(clamp(limit), MAX_INT - 1)
        params.append(limit + 1)
        sql += f" ORDER BY updated_at DESC, id DESC LIMIT ${len(params)}"

        async def run(conn: asyncpg.Connection) -> SessionPage:
            headers = [header_from_row(r) for r in await conn.fetch(sql, *params)]
            more = len(headers) > limit
            headers = headers[:limit]
            next_cursor = encode_cursor(headers[-1].updated_at, headers[-1].id) if more else None
            return SessionPage(headers, next_cursor)

        return await self._read(run, "listing sessions")

    async def delete_session(self, session_id: str) -> bool:
        async def run(conn: asyncpg.Connection) -> bool:
            async with conn.transaction():
                return bool(await _delete_sessions(conn, [session_id]))

        return await self._write(run, "deleting a session")

    async def purge_expired(self, now: float) -> list[str]:
        now = timestamp(now, "now")

        async def run(conn: asyncpg.Connection) -> list[str]:
            async with conn.transaction():
                rows = await conn.fetch(
                    "SELECT id FROM sessions WHERE expires_at IS NOT NULL AND expires_at <= $1 "
                    "AND immutable = 0 ORDER BY id FOR UPDATE",
                    now,
                )
                ids = [r[0] for r in rows]
                if ids:
                    await _delete_sessions(conn, ids)
            return ids

        return await self._write(run, "purging expired sessions")

    # messages ---------------------------------------------------------------------------------

    async def append_messages(
        self, header: SessionHeader, messages: Sequence[NewMessage], events: Sequence[NewEvent]
    ) -> list[Message]:
        now = _now()
        stored = new_entries(messages, now)
        n = len(messages)
        tokens = [m.tokens for m in messages]
        roles = [check_text(str(m.body["role"]), "message role") for m in messages]
        entries = [encode(m, "message") for m in stored]
        check_header(header)
        event_types = [check_text(e.type, "event type") for e in events]
        event_data = [encode(e.data, f"{e.type} event data") for e in events]
        args = (header.id, n, n + len(events), now, tokens, roles, entries, event_types, event_data)

        async def run(conn: asyncpg.Connection) -> list[Message]:
            row = await conn.fetchrow(_APPEND, *args)
            if row is None:  # a new session: create it, then append, in one transaction
                async with conn.transaction():
                    await _touch_session(conn, header, now)
                    row = await conn.fetchrow(_APPEND, *args)
            assert row is not None
            first = int(row[0])
            for i, entry in enumerate(stored):
                entry.seq = first + i
            return stored

        return await self._write(run, "appending messages")

    async def read_messages(self, session_id: str, limit: int | None, include_pruned: bool) -> list[Message]:
        if include_pruned:
            sql = (
                "SELECT pos, seq, tokens, entry, NULL AS pruned_by FROM messages WHERE session_id = $1 "
                "UNION ALL SELECT pos, seq, tokens, entry, pruned_by FROM pruned_messages WHERE session_id = $1"
            )
        else:
            sql = "SELECT pos, seq, tokens, entry, NULL AS pruned_by FROM messages WHERE session_id = $1"
        limit = None if limit is None else clamp(limit)

        async def run(conn: asyncpg.Connection) -> list[Message]:
            if limit is None:
                rows = list(await conn.fetch(sql + " ORDER BY pos", session_id))
            else:
                rows = list(await conn.fetch(sql + " ORDER BY pos DESC LIMIT $2", session_id, limit))
                rows.reverse()
            return [_message(r[3], r[1], r[2], r[4]) for r in rows]

        return await self._read(run, "reading messages")

    async def clear_messages(self, session_id: str, event: NewEvent) -> int:
        async def run(conn: asyncpg.Connection) -> int:
            now = _now()
            async with conn.transaction():
                if not await _lock_session(conn, session_id):
                    return 0
                # Cleared messages become tombstones (content gone), so their audit events remain.
                with_nul = await conn.fetch(
                    f"SELECT pos, entry FROM messages WHERE session_id = $1 AND {_HAS_NUL}", session_id
                )
                await conn.execute(
                    "INSERT INTO pruned_messages (session_id, pos, seq, event_id, created_at, tokens, role, "
                    f"entry, pruned_by, pruned_at) SELECT session_id, pos, seq, event_id, created_at, tokens, "
                    f"role, {_TOMBSTONE}, 'clear', $2 FROM messages WHERE session_id = $1",
                    session_id,
                    now,
                )
                await _tombstone_in_python(conn, session_id, with_nul)
                status = await conn.execute("DELETE FROM messages WHERE session_id = $1", session_id)
                await conn.execute("UPDATE sessions SET active_count = 0 WHERE id = $1", session_id)
                await _insert_events(conn, session_id, [event], now)
            return _rowcount(status)

        return await self._write(run, "clearing a history")

    async def remove_messages(self, session_id: str, removal: Removal) -> list[Message]:
        check_events([removal.event])

        async def run(conn: asyncpg.Connection) -> list[Message]:
            async with conn.transaction():
                return await _remove_messages(conn, session_id, removal, _now())

        return await self._write(run, "removing messages")

    # state ------------------------------------------------------------------------------------

    async def get_state(self, scope: str, owner: str) -> dict[str, Any]:
        async def run(conn: asyncpg.Connection) -> dict[str, Any]:
            rows = await conn.fetch(
                "SELECT key, value FROM state WHERE scope = $1 AND owner = $2", scope, owner
            )
            return {r[0]: json.loads(r[1]) for r in rows}

        return await self._read(run, "reading state")

    async def write_state(
        self, header: SessionHeader, writes: Sequence[StateWrite], events: Sequence[NewEvent]
    ) -> None:
        # The last write of a key wins (as applying them in order would); one row per key, in
        # sorted order, so concurrent writers of several shared keys lock them in one order.
        last: dict[tuple[str, str, str], StateWrite] = {}
        for w in writes:
            last[(w.scope, w.owner, w.key)] = w
        sets = [w for k, w in sorted(last.items()) if not w.delete]
        deletes = [w for k, w in sorted(last.items()) if w.delete]
        for w in last.values():
            check_text(w.owner, "state owner")
            check_text(w.key, "state key")
        check_header(header)
        now = _now()
        args = (
            header.id,
            len(events),
            now,
            [w.scope for w in sets],
            [w.owner for w in sets],
            [w.key for w in sets],
            [encode(w.value, f"state value {w.key!r}") for w in sets],
            [w.scope for w in deletes],
            [w.owner for w in deletes],
            [w.key for w in deletes],
            [check_text(e.type, "event type") for e in events],
            [encode(e.data, f"{e.type} event data") for e in events],
        )

        async def run(conn: asyncpg.Connection) -> None:
            row = await conn.fetchrow(_WRITE_STATE, *args)
            if row is None:  # a new session: create it, then write, in one transaction
                async with conn.transaction():
                    await _touch_session(conn, header, now)
                    await conn.fetchrow(_WRITE_STATE, *args)

        # Session.flush already runs this in a task that its caller's cancellation cannot stop.
        await self._write(run, "writing state", shield=False)

    # events -----------------------------------------------------------------------------------

    async def append_events(self, header: SessionHeader, events: Sequence[NewEvent]) -> None:
        check_header(header)
        check_events(events)

        async def run(conn: asyncpg.Connection) -> None:
            async with conn.transaction():
                now = _now()
                await _touch_session(conn, header, now)
                await _insert_events(conn, header.id, events, now)

        await self._write(run, "appending events")

    async def read_events(self, session_id: str, since: float | None, limit: int | None) -> list[Event]:
        after = "" if since is None else " AND created_at >= $2"
        # The message id comes from SQL, or from the entry in Python when SQL cannot read it.
        message_events = (
            "SELECT event_id, created_at, 'message_appended', NULL, seq, tokens, "
            f"CASE WHEN {_HAS_NUL} THEN NULL ELSE entry::json ->> 'id' END, role, "
            f"CASE WHEN {_HAS_NUL} THEN entry END FROM {{table}} WHERE session_id = $1" + after
        )
        sql = (
            "SELECT id, created_at, type, data, NULL::bigint, NULL::integer, NULL::text, NULL::text, "
            "NULL::text FROM events WHERE session_id = $1"
            + after
            + " UNION ALL "
            + message_events.format(table="messages")
            + " UNION ALL "
            + message_events.format(table="pruned_messages")
            + " ORDER BY 1"
        )
        params: list[Any] = [session_id]
        if since is not None:
            params.append(timestamp(since, "since"))
        if limit is not None:
            params.append(clamp(limit))
            sql += f" LIMIT ${len(params)}"

        async def run(conn: asyncpg.Connection) -> list[Event]:
            rows = await conn.fetch(sql, *params)
            return [
                event_from_row(r if r[8] is None else (*r[:6], loads(r[8])["id"], r[7]), session_id)
                for r in rows
            ]

        return await self._read(run, "reading events")

    # long-term memory (agnt5.memory) ---------------------------------------------------------

    async def memory_version(self, namespace: str) -> int:
        async def run(conn: asyncpg.Connection) -> int:
            return await _memory_version(conn, namespace)

        return await self._read(run, "reading a memory version")

    async def memory_get(self, namespace: str, keys: Sequence[str]) -> list[MemoryRow]:
        wanted = list(dict.fromkeys(keys))

        async def run(conn: asyncpg.Connection) -> list[MemoryRow]:
            rows = await conn.fetch(
                f"SELECT {_MEMORY_COLUMNS} FROM memories WHERE namespace = $1 AND key = ANY($2::text[])",
                namespace,
                wanted,
            )
            return [_memory_row(r) for r in rows]

        return await self._read(run, "reading memories")

    async def memory_list(self, namespace: str) -> list[MemoryRow]:
        async def run(conn: asyncpg.Connection) -> list[MemoryRow]:
            rows = await conn.fetch(
                f"SELECT {_MEMORY_COLUMNS} FROM memories WHERE namespace = $1 ORDER BY key", namespace
            )
            return [_memory_row(r) for r in rows]

        return await self._read(run, "listing memories")

    async def memory_put(self, namespace: str, writes: Sequence[MemoryWrite]) -> MemoryWriteResult:
        encoded = [(w, encode_memory(w)) for w in writes]
        contents = [dumps(w.content) for w in writes]  # a JSON string: TEXT cannot hold NUL

        async def run(conn: asyncpg.Connection) -> MemoryWriteResult:
            now = _now()
            conflicts: list[str] = []
            try:
                async with conn.transaction():
                    for (w, metadata), content in zip(encoded, contents, strict=True):
                        if w.only_if_hash is None:
                            await conn.execute(
                                _MEMORY_UPSERT,
                                namespace,
                                w.key,
                                content,
                                metadata,
                                w.content_hash,
                                w.model,
                                w.dim,
                                w.vector,
                                now,
                            )
                            continue
                        if w.vector is None:
                            status = await conn.execute(
                                _MEMORY_KEEP_VECTOR,
                                namespace,
                                w.key,
                                content,
                                metadata,
                                now,
                                w.only_if_hash,
                                w.model,
                            )
                        else:
                            status = await conn.execute(
                                _MEMORY_GUARDED_UPDATE,
                                namespace,
                                w.key,
                                content,
                                metadata,
                                now,
                                w.only_if_hash,
                                w.content_hash,
                                w.model,
                                w.dim,
                                w.vector,
                            )
                        if _rowcount(status) == 0:
                            conflicts.append(w.key)
                    if conflicts:
                        raise _MemoryConflict
                    version = await _memory_bump(conn, namespace)
            except _MemoryConflict:
                return MemoryWriteResult(await _memory_version(conn, namespace), conflicts)
            return MemoryWriteResult(version)

        return await self._write(run, "writing memories")

    async def memory_delete(self, namespace: str, keys: Sequence[str] | None) -> tuple[int, list[str]]:
        wanted = None if keys is None else list(dict.fromkeys(keys))

        async def run(conn: asyncpg.Connection) -> tuple[int, list[str]]:
            async with conn.transaction():
                if wanted is None:
                    rows = await conn.fetch(
                        "DELETE FROM memories WHERE namespace = $1 RETURNING key", namespace
                    )
                else:
                    rows = await conn.fetch(
                        "DELETE FROM memories WHERE namespace = $1 AND key = ANY($2::text[]) RETURNING key",
                        namespace,
                        wanted,
                    )
                deleted = [r[0] for r in rows]
                if deleted:
                    version = await _memory_bump(conn, namespace)
                else:
                    version = await _memory_version(conn, namespace)
            return version, sorted(deleted)

        return await self._write(run, "deleting memories")

    async def memory_vectors(self, namespace: str) -> MemoryVectors:
        async def run(conn: asyncpg.Connection) -> MemoryVectors:
            # One snapshot for the version and the rows.
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                version = await _memory_version(conn, namespace)
                rows = await conn.fetch(
                    "SELECT key, model, dim, vector FROM memories WHERE namespace = $1 ORDER BY key",
                    namespace,
                )
            return MemoryVectors(
                version,
                [r[0] for r in rows],
                [r[1] for r in rows],
                [r[2] for r in rows],
                [None if r[3] is None else bytes(r[3]) for r in rows],
            )

        return await self._read(run, "reading memory vectors")

    # pruning (agnt5.pruning) -------------------------------------------------------------------

    async def history_stats(self, session_id: str) -> HistoryStats:
        async def run(conn: asyncpg.Connection) -> HistoryStats:
            return await _history_stats(conn, session_id)

        return await self._read(run, "reading history statistics")

    async def window_cut(
        self, session_id: str, max_messages: int | None, max_tokens: int | None
    ) -> WindowCut:
        max_messages = None if max_messages is None else clamp(max_messages)
        max_tokens = None if max_tokens is None else clamp(max_tokens)

        async def run(conn: asyncpg.Connection) -> WindowCut:
            async with conn.transaction(isolation="repeatable_read", readonly=True):  # one snapshot
                stats = await _history_stats(conn, session_id)
                room = None if max_tokens is None else max_tokens - stats.system_tokens
                cut = _cut(await conn.fetchrow(_OLDEST_FITTING_USER, session_id, max_messages, room))
                last = _cut(await conn.fetchrow(_NEWEST_USER, session_id))
            return WindowCut(stats, cut, last)

        return await self._read(run, "choosing a window")

    async def seqs_before(self, session_id: str, pos: float) -> list[int]:
        async def run(conn: asyncpg.Connection) -> list[int]:
            rows = await conn.fetch(
                f"SELECT seq FROM messages WHERE session_id = $1 AND pos < $2 AND role NOT IN {_SYSTEM} "
                "ORDER BY pos",
                session_id,
                pos,
            )
            return [int(r[0]) for r in rows]

        return await self._read(run, "reading messages to prune")

    async def read_scores(self, session_id: str, seqs: Sequence[int]) -> dict[int, float]:
        wanted = [int(s) for s in seqs if 0 <= s <= MAX_INT]  # no message has another seq

        async def run(conn: asyncpg.Connection) -> dict[int, float]:
            rows = await conn.fetch(
                "SELECT seq, score FROM message_scores WHERE session_id = $1 AND seq = ANY($2::bigint[])",
                session_id,
                wanted,
            )
            return {int(r[0]): float(r[1]) for r in rows}

        return await self._read(run, "reading importance scores")

    async def save_scores(self, session_id: str, scores: Mapping[int, float], model: str) -> None:
        async def run(conn: asyncpg.Connection) -> None:
            await _save_scores(conn, session_id, scores, model)

        await self._write(run, "saving importance scores")

    async def apply_prune(self, session_id: str, prune: PruneWrite) -> AppliedPrune:
        async def run(conn: asyncpg.Connection) -> AppliedPrune:
            async with conn.transaction():
                return await _apply_prune(conn, session_id, prune)

        return await self._write(run, "applying a prune")

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
        q = page_query(before_seq, after_seq, include_pruned, session="$1", seq="$2", pos="$2", limit="$3")

        async def run(conn: asyncpg.Connection) -> list[Message]:
            pos = q.start
            if q.anchor is not None:
                found = await conn.fetchval(q.anchor_sql, session_id, q.anchor)
                if found is None:
                    return []
                pos = float(found)
            rows = list(await conn.fetch(q.sql, session_id, pos, limit))
            if not q.newer:
                rows.reverse()
            return [_message(r[3], r[1], r[2], r[4]) for r in rows]

        return await self._read(run, "reading messages")


# --- SQL -----------------------------------------------------------------------------------------


def _message(entry_text: str, seq: int, tokens: int, pruned_by: str | None) -> Message:
    """A history entry; a pruned one (a tombstone) has no content and names its prune in metadata."""
    entry = loads(entry_text)
    if pruned_by is None:
        return stored_message(entry, int(seq), int(tokens))
    return tombstone(entry, int(seq), int(tokens), pruned_by)


def _encode_kv(namespace: str, key: str, value: Any) -> str:
    check_text(namespace, "entity name")
    check_text(key, "entity key")
    return encode(value, f"entity value {key!r}")


def _input_error(exc: BaseException) -> InvalidInputError | None:
    """The input error for a value PostgreSQL cannot hold, None for anything else: asyncpg's
    DataError (an argument it cannot encode, e.g. invalid text) is also an InterfaceError, which
    must not read as a lost connection; SQLSTATE class 22 is the server's "data exception"."""
    found = value_error(exc)
    if found is not None:
        return found
    asyncpg = _import_asyncpg()
    sqlstate = str(getattr(exc, "sqlstate", "") or "")
    if isinstance(exc, asyncpg.DataError) or (
        isinstance(exc, asyncpg.PostgresError) and sqlstate.startswith("22")
    ):
        detail = str(exc)
        if len(detail) > 300:
            detail = detail[:300] + "..."
        return InvalidInputError(f"a value cannot be stored in PostgreSQL: {detail}; nothing was written")
    return None


def _closed_connection(exc: BaseException, lost: tuple[type[BaseException], ...]) -> bool:
    """Whether `exc` reports a connection that closed under it: asyncpg raises InterfaceError
    ("the underlying connection is closed") when a transaction block ends on a dropped
    connection, with the original error as its context."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return False
        if isinstance(seen, lost) or "connection is closed" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


async def _keep_session(conn: asyncpg.Connection) -> None:
    """The pool's reset between uses: nothing beyond asyncpg's own (which ends any open
    transaction). agnt5 keeps no session state (no SET, LISTEN, cursors or session-level advisory
    locks; search_path is a startup setting), so the default `RESET ALL; ...` round trip on every
    release would only add latency to each call."""


def _usable(conn: asyncpg.Connection) -> bool:
    """Open, idle (no transaction) and still ours: asyncpg hands a connection that the server
    closed back to the pool by itself, after which its proxy refuses every call."""
    try:
        return not conn.is_closed() and not conn.is_in_transaction()
    except Exception:  # InterfaceError: released back to the pool
        return False


def _abandon(pool: asyncpg.Pool) -> None:
    """Drop a pool of another (possibly closed) event loop: its connections cannot be closed
    politely from here; terminating them may fail once their loop is closed, and then the
    sockets close when the objects are collected."""
    try:
        pool.terminate()
    except RuntimeError:  # "Event loop is closed"
        pass


def _rowcount(status: str) -> int:
    """The row count of a command status such as `UPDATE 1` or `INSERT 0 1`."""
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0


async def _migrate(
    conn: asyncpg.Connection, schema: str | None, migrations: Sequence[tuple[int, str]] | None = None
) -> None:
    """Create or migrate the schema in one transaction, under an advisory lock (several
    processes may open a new database at once; the second waits, then finds it up to date)."""
    steps = POSTGRES_MIGRATIONS if migrations is None else migrations
    latest = steps[-1][0] if steps else POSTGRES_LATEST_VERSION
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _lock_key(schema))
        if schema is not None:
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS agnt5_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
        )
        value = await conn.fetchval("SELECT value FROM agnt5_meta WHERE key = 'schema_version'")
        current = 0 if value is None else int(value)
        if current > latest:
            raise SchemaVersionError(
                f"the database has schema version {current}, newer than this agnt5 knows ({latest}); "
                "upgrade agnt5 to open it"
            )
        if current == latest:
            return
        for version, script in steps:
            if version > current:
                await conn.execute(script)  # several statements: the simple query protocol
                if version == USER_OWNER_VERSION:
                    await _rekey_user_state(conn)
                current = version
        await conn.execute(
            "INSERT INTO agnt5_meta (key, value) VALUES ('schema_version', $1) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            str(current),
        )


async def _check_schema(conn: asyncpg.Connection, where: str, schema: str | None) -> None:
    """For a read-only store: the agnt5 tables exist at this agnt5's version (nothing is created)."""
    found = await conn.fetchval("SELECT to_regclass('agnt5_meta') IS NOT NULL")
    place = f"PostgreSQL at {where}" + (f" (schema {schema!r})" if schema else "")
    if not found:
        raise DatabaseNotFoundError(
            f"no agnt5 database at {place}: it has no agnt5 tables (a read-only command creates "
            "nothing; check the URL, or write to it first)"
        )
    current = await schema_version(conn)
    if current != POSTGRES_LATEST_VERSION:
        newer = current > POSTGRES_LATEST_VERSION
        raise SchemaVersionError(
            f"{place} has schema version {current}, "
            + (
                f"newer than this agnt5 knows ({POSTGRES_LATEST_VERSION}); upgrade agnt5 to read it"
                if newer
                else f"older than this agnt5's ({POSTGRES_LATEST_VERSION}); open it once with a "
                "writing command (or without read_only) to migrate it, then read it"
            )
        )


async def _rekey_user_state(conn: asyncpg.Connection) -> None:
    """Schema step 5's data: move 'user' state to owners that cannot collide (user_owner_moves)."""
    owners = [r[0] for r in await conn.fetch("SELECT DISTINCT owner FROM state WHERE scope = 'user'")]
    users = await conn.fetch("SELECT DISTINCT app_name, user_id FROM sessions WHERE user_id IS NOT NULL")
    for old, new_owners in user_owner_moves(owners, [(r[0], r[1]) for r in users]).items():
        for new in new_owners:
            await conn.execute(
                "INSERT INTO state (scope, owner, key, value, updated_at) "
                "SELECT 'user', $1, key, value, updated_at FROM state WHERE scope = 'user' AND owner = $2 "
                "ON CONFLICT (scope, owner, key) DO UPDATE SET value = excluded.value, "
                "updated_at = excluded.updated_at WHERE excluded.updated_at > state.updated_at",
                new,
                old,
            )
        await conn.execute("DELETE FROM state WHERE scope = 'user' AND owner = $1", old)


async def schema_version(conn: asyncpg.Connection) -> int:
    """The schema version recorded in the database (0 before the first migration)."""
    value = await conn.fetchval("SELECT value FROM agnt5_meta WHERE key = 'schema_version'")
    return 0 if value is None else int(value)


async def _get_session(conn: asyncpg.Connection, session_id: str) -> SessionHeader | None:
    row = await conn.fetchrow(f"SELECT {SESSION_COLUMNS} FROM sessions WHERE id = $1", session_id)
    return None if row is None else header_from_row(row)


async def _lock_session(conn: asyncpg.Connection, session_id: str) -> bool:
    """Row-lock the session until the transaction ends (False if it does not exist)."""
    return await conn.fetchval("SELECT 1 FROM sessions WHERE id = $1 FOR UPDATE", session_id) is not None


_INSERT_SESSION = """
INSERT INTO sessions (id, app_name, user_id, metadata, retention, ttl_days, immutable,
                      created_at, updated_at, expires_at)
VALUES ($1, $2, $3, $4, $5, $6::double precision, $7, $8, $8, $8 + $6::double precision * 86400.0)
ON CONFLICT (id) DO UPDATE SET
    metadata = excluded.metadata,
    retention = excluded.retention,
    ttl_days = excluded.ttl_days,
    immutable = GREATEST(sessions.immutable, excluded.immutable),
    updated_at = excluded.updated_at,
    expires_at = excluded.expires_at
"""


async def _touch_session(conn: asyncpg.Connection, header: SessionHeader, now: float) -> None:
    """Create the session or write its header (metadata, retention) and update time."""
    ttl = header.retention.get("ttl_days")
    await conn.execute(
        _INSERT_SESSION,
        header.id,
        header.app_name,
        header.user_id,
        dumps(header.metadata),
        dumps(header.retention),
        None if ttl is None else float(ttl),
        1 if header.retention.get("immutable") else 0,
        now,
    )


# The touch of updated_at/expires_at, as SqliteStore's _reserve: at most once a second.
_TOUCH = f"""
    updated_at = CASE WHEN $4 - updated_at >= {_TOUCH_INTERVAL} THEN $4 ELSE updated_at END,
    expires_at = CASE WHEN $4 - updated_at >= {_TOUCH_INTERVAL} THEN $4 + ttl_days * 86400.0
                      ELSE expires_at END
"""

# One statement: reserve numbers (row-locking the session), insert messages and events. No row
# comes back when the session does not exist yet (and then nothing was written).
_APPEND = f"""
WITH r AS (
    UPDATE sessions SET next_seq = next_seq + $2, next_event = next_event + $3,
        active_count = active_count + $2, {_TOUCH}
    WHERE id = $1
    RETURNING next_seq - $2 AS first_seq, next_event - $3 AS first_event
), m AS (
    INSERT INTO messages (session_id, pos, seq, event_id, created_at, tokens, role, entry)
    SELECT $1, r.first_seq + x.i - 1, r.first_seq + x.i - 1, r.first_event + x.i - 1, $4,
           x.tokens, x.role, x.entry
    FROM r, unnest($5::integer[], $6::text[], $7::text[]) WITH ORDINALITY AS x(tokens, role, entry, i)
), e AS (
    INSERT INTO events (session_id, id, created_at, type, data)
    SELECT $1, r.first_event + $2 + y.i - 1, $4, y.type, y.data
    FROM r, unnest($8::text[], $9::text[]) WITH ORDINALITY AS y(type, data, i)
)
SELECT first_seq, first_event FROM r
"""

# One statement: per-key upserts and deletes merged in the database, plus their events.
_WRITE_STATE = f"""
WITH r AS (
    UPDATE sessions SET next_event = next_event + $2, {_TOUCH.replace("$4", "$3")}
    WHERE id = $1
    RETURNING next_event - $2 AS first_event
), d AS (
    DELETE FROM state USING r, unnest($8::text[], $9::text[], $10::text[]) AS x(scope, owner, key)
    WHERE state.scope = x.scope AND state.owner = x.owner AND state.key = x.key
), u AS (
    INSERT INTO state (scope, owner, key, value, updated_at)
    SELECT x.scope, x.owner, x.key, x.value, $3
    FROM r, unnest($4::text[], $5::text[], $6::text[], $7::text[]) AS x(scope, owner, key, value)
    ORDER BY 1, 2, 3
    ON CONFLICT (scope, owner, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at
), e AS (
    INSERT INTO events (session_id, id, created_at, type, data)
    SELECT $1, r.first_event + y.i - 1, $3, y.type, y.data
    FROM r, unnest($11::text[], $12::text[]) WITH ORDINALITY AS y(type, data, i)
)
SELECT first_event FROM r
"""

# Whether an entry holds an escaped NUL (`\u0000`): PostgreSQL's JSON functions refuse to read
# such text ("\u0000 cannot be converted to text"), so those entries are handled in Python.
_HAS_NUL = "strpos(entry, '\\u0000') > 0"

# A message's tombstone entry: the entry without content and tool_calls, keys kept in order
# (json, not jsonb: no reordering). An entry holding `\u0000` is moved as is, then tombstoned by
# _tombstone_in_python in the same transaction.
_TOMBSTONE = (
    f"CASE WHEN {_HAS_NUL} THEN entry ELSE (SELECT COALESCE(json_object_agg(j.k, j.v), '{{}}'::json)::text "
    "FROM json_each(entry::json) AS j(k, v) WHERE j.k NOT IN ('content', 'tool_calls')) END"
)


async def _tombstone_in_python(conn: asyncpg.Connection, session_id: str, rows: Sequence[Any]) -> None:
    """Tombstone the moved entries `rows` (pos, entry) that SQL could not read (see _HAS_NUL)."""
    if not rows:
        return
    await conn.execute(
        "UPDATE pruned_messages AS p SET entry = x.entry "
        "FROM unnest($2::double precision[], $3::text[]) AS x(pos, entry) "
        "WHERE p.session_id = $1 AND p.pos = x.pos",
        session_id,
        [r[0] for r in rows],
        [tombstone_entry(r[1]) for r in rows],
    )


async def _remove_messages(
    conn: asyncpg.Connection, session_id: str, removal: Removal, now: float
) -> list[Message]:
    """Session.pop / rewind, inside the caller's transaction holding the session's row lock: as
    SqliteStore's (agnt5/store/_undo_sql.py) — removed messages vanish, their seqs are free again,
    their `message_appended` events move to `events`, their scores are dropped."""
    immutable = await conn.fetchval("SELECT immutable FROM sessions WHERE id = $1 FOR UPDATE", session_id)
    if immutable is None:
        raise UpdateConflictError(f"session {session_id!r} no longer exists; nothing was removed")
    if immutable:
        raise ImmutableSessionError(f"session {session_id!r} is immutable; its messages cannot be removed")
    newest = await conn.fetchval(
        "SELECT seq FROM messages WHERE session_id = $1 ORDER BY pos DESC LIMIT 1", session_id
    )
    first = await conn.fetchval(
        "SELECT pos FROM messages WHERE session_id = $1 AND seq = $2", session_id, removal.first_seq
    )
    if newest is None or newest != removal.newest_seq or first is None:
        raise UpdateConflictError(
            f"the history of session {session_id!r} changed meanwhile; nothing was removed (read it again)"
        )
    rows = await conn.fetch(
        "DELETE FROM messages WHERE session_id = $1 AND pos >= $2 "
        "RETURNING pos, seq, event_id, created_at, tokens, entry",
        session_id,
        first,
    )
    rows = sorted(rows, key=lambda r: r[0])
    removed = [stored_message(loads(r[5]), int(r[1]), int(r[4])) for r in rows]
    seqs = [m.seq for m in removed]
    await conn.execute(
        "DELETE FROM message_scores WHERE session_id = $1 AND seq = ANY($2::bigint[])", session_id, seqs
    )
    await conn.executemany(
        "INSERT INTO events (session_id, id, created_at, type, data) VALUES ($1, $2, $3, 'message_appended', $4)",
        [(session_id, r[2], r[3], dumps(appended_event_data(m))) for r, m in zip(rows, removed, strict=True)],
    )
    await conn.execute(
        "UPDATE sessions SET next_seq = 1 + COALESCE((SELECT max(seq) FROM (SELECT seq FROM messages "
        "WHERE session_id = $1 UNION ALL SELECT seq FROM pruned_messages WHERE session_id = $1) AS s), 0), "
        "active_count = active_count - $2, updated_at = $3, expires_at = $3 + ttl_days * 86400.0 "
        "WHERE id = $1",
        session_id,
        len(removed),
        now,
    )
    await _insert_events(
        conn, session_id, [NewEvent(removal.event.type, removal_event_data(removal, removed))], now
    )
    return removed


async def _insert_events(
    conn: asyncpg.Connection, session_id: str, events: Sequence[NewEvent], now: float
) -> None:
    if not events:
        return
    first = await conn.fetchval(
        "UPDATE sessions SET next_event = next_event + $1 WHERE id = $2 RETURNING next_event - $1",
        len(events),
        session_id,
    )
    if first is None:
        return
    await conn.executemany(
        "INSERT INTO events (session_id, id, created_at, type, data) VALUES ($1, $2, $3, $4, $5)",
        [(session_id, first + i, now, e.type, dumps(e.data)) for i, e in enumerate(events)],
    )


async def _delete_sessions(conn: asyncpg.Connection, session_ids: list[str]) -> int:
    """Delete sessions whole (inside the caller's transaction); the number of sessions deleted."""
    locked = await conn.fetch(
        "SELECT id FROM sessions WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE", session_ids
    )
    if not locked:
        return 0
    ids = [r[0] for r in locked]
    for table in ("messages", "pruned_messages", "message_scores", "events"):
        await conn.execute(f"DELETE FROM {table} WHERE session_id = ANY($1::text[])", ids)
    await conn.execute("DELETE FROM state WHERE scope = 'session' AND owner = ANY($1::text[])", ids)
    return _rowcount(await conn.execute("DELETE FROM sessions WHERE id = ANY($1::text[])", ids))


# --- memory ----------------------------------------------------------------------------------------

_MEMORY_COLUMNS = "key, content, metadata, content_hash, model, created_at, updated_at"


def _memory_row(r: Sequence[Any]) -> MemoryRow:
    # content is a JSON string (schema version 5): TEXT cannot hold NUL
    return MemoryRow(r[0], loads(r[1]), json.loads(r[2]), r[3], r[4], r[5], r[6])


async def _memory_version(conn: asyncpg.Connection, namespace: str) -> int:
    value = await conn.fetchval("SELECT version FROM memory_namespaces WHERE namespace = $1", namespace)
    return 0 if value is None else int(value)


async def _memory_bump(conn: asyncpg.Connection, namespace: str) -> int:
    value = await conn.fetchval(
        "INSERT INTO memory_namespaces (namespace, version) VALUES ($1, 1) "
        "ON CONFLICT (namespace) DO UPDATE SET version = memory_namespaces.version + 1 RETURNING version",
        namespace,
    )
    return int(value)


class _MemoryConflict(Exception):
    """Rolls back a memory batch whose guarded writes found the stored content changed."""


_MEMORY_UPSERT = """
INSERT INTO memories (namespace, key, content, metadata, content_hash, model, dim, vector, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)
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
UPDATE memories SET content = $3, metadata = $4, updated_at = $5
WHERE namespace = $1 AND key = $2 AND content_hash = $6 AND model IS NOT DISTINCT FROM $7::text
"""
# Re-embedded content (a model change): write only if nobody changed the content meanwhile.
_MEMORY_GUARDED_UPDATE = """
UPDATE memories SET content = $3, metadata = $4, updated_at = $5, content_hash = $7, model = $8,
    dim = $9, vector = $10
WHERE namespace = $1 AND key = $2 AND content_hash = $6
"""


# --- pruning ---------------------------------------------------------------------------------------

_STATS = f"""
SELECT COUNT(*), COALESCE(SUM(tokens), 0),
       COUNT(*) FILTER (WHERE role IN {_SYSTEM}),
       COALESCE(SUM(tokens) FILTER (WHERE role IN {_SYSTEM}), 0)
FROM messages WHERE session_id = $1
"""
_OLDEST_FITTING_USER = f"""
WITH sized AS (
    SELECT pos, seq, role,
           COUNT(*) OVER newest AS kept_messages,
           SUM(tokens) OVER newest AS kept_tokens
    FROM messages WHERE session_id = $1 AND role NOT IN {_SYSTEM}
    WINDOW newest AS (ORDER BY pos DESC ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
)
SELECT pos, seq, kept_messages, kept_tokens FROM sized
WHERE role = 'user' AND ($2::bigint IS NULL OR kept_messages <= $2::bigint)
      AND ($3::bigint IS NULL OR kept_tokens <= $3::bigint)
ORDER BY pos LIMIT 1
"""
_NEWEST_USER = f"""
SELECT m.pos, m.seq,
       (SELECT COUNT(*) FROM messages k WHERE k.session_id = $1 AND k.pos >= m.pos
            AND k.role NOT IN {_SYSTEM}),
       (SELECT COALESCE(SUM(k.tokens), 0) FROM messages k WHERE k.session_id = $1 AND k.pos >= m.pos
            AND k.role NOT IN {_SYSTEM})
FROM messages m WHERE m.session_id = $1 AND m.role = 'user'
ORDER BY m.pos DESC LIMIT 1
"""


async def _history_stats(conn: asyncpg.Connection, session_id: str) -> HistoryStats:
    row = await conn.fetchrow(_STATS, session_id)
    return HistoryStats(int(row[0]), int(row[1]), int(row[2]), int(row[3]))


def _cut(row: Sequence[Any] | None) -> CutPoint | None:
    return None if row is None else CutPoint(float(row[0]), int(row[1]), int(row[2]), int(row[3]))


async def _save_scores(
    conn: asyncpg.Connection, session_id: str, scores: Mapping[int, float], model: str
) -> None:
    if not scores:
        return
    items = sorted(scores.items())
    await conn.execute(
        "INSERT INTO message_scores (session_id, seq, score, model, scored_at) "
        "SELECT $1, s.seq, s.score, $4, $5 FROM unnest($2::bigint[], $3::double precision[]) AS s(seq, score) "
        "ON CONFLICT (session_id, seq) DO UPDATE SET score = excluded.score, model = excluded.model, "
        "scored_at = excluded.scored_at",
        session_id,
        [int(seq) for seq, _ in items],
        [float(score) for _, score in items],
        model,
        time.time(),
    )


async def _apply_prune(conn: asyncpg.Connection, session_id: str, prune: PruneWrite) -> AppliedPrune:
    """Runs inside the caller's transaction, holding the session's row lock; raising rolls back."""
    immutable = await conn.fetchval("SELECT immutable FROM sessions WHERE id = $1 FOR UPDATE", session_id)
    if immutable is None:
        raise PruneConflictError(f"session {session_id!r} no longer exists; nothing was pruned")
    if immutable:
        raise ImmutableSessionError(f"session {session_id!r} is immutable and cannot be pruned")
    now = time.time()
    before = await _history_stats(conn, session_id)
    seqs = sorted({int(s) for s in prune.remove_seqs})
    chosen = "session_id = $1 AND seq = ANY($2::bigint[])"
    row = await conn.fetchrow(f"SELECT COUNT(*), MAX(pos) FROM messages WHERE {chosen}", session_id, seqs)
    found, last_pos = int(row[0]), row[1]
    wanted = len(seqs)
    if found != wanted:
        raise PruneConflictError(
            f"{wanted - found} of the {wanted} messages this prune planned to remove from session "
            f"{session_id!r} are no longer active (another prune ran meanwhile); nothing was "
            "changed — run the prune again"
        )
    with_nul = await conn.fetch(
        f"SELECT pos, entry FROM messages WHERE {chosen} AND {_HAS_NUL}", session_id, seqs
    )
    await conn.execute(
        "INSERT INTO pruned_messages (session_id, pos, seq, event_id, created_at, tokens, role, entry, "
        f"pruned_by, pruned_at) SELECT session_id, pos, seq, event_id, created_at, tokens, role, {_TOMBSTONE}, "
        f"$3, $4 FROM messages WHERE {chosen}",
        session_id,
        seqs,
        prune.prune_id,
        now,
    )
    await _tombstone_in_python(conn, session_id, with_nul)
    await conn.execute(f"DELETE FROM messages WHERE {chosen}", session_id, seqs)
    summary_seq = None
    if prune.summary is not None:
        summary_seq = await _insert_summary(conn, session_id, prune, last_pos, now)
    added = 0 if summary_seq is None else 1
    await conn.execute(
        "UPDATE sessions SET active_count = active_count - $1 + $2, updated_at = $3, "
        "expires_at = $3 + ttl_days * 86400.0 WHERE id = $4",
        found,
        added,
        now,
        session_id,
    )
    if prune.scores:
        await _save_scores(conn, session_id, prune.scores, prune.score_model)
    applied = AppliedPrune(found, before, await _history_stats(conn, session_id), summary_seq)
    event_id = await conn.fetchval(
        "UPDATE sessions SET next_event = next_event + 1 WHERE id = $1 RETURNING next_event - 1", session_id
    )
    await conn.execute(
        "INSERT INTO events (session_id, id, created_at, type, data) VALUES ($1, $2, $3, $4, $5)",
        session_id,
        event_id,
        now,
        prune.event.type,
        dumps(prune_event_data(prune, applied)),
    )
    return applied


async def _insert_summary(
    conn: asyncpg.Connection, session_id: str, prune: PruneWrite, last_pos: float | None, now: float
) -> int:
    """Insert the summary right after the last message it replaces (before everything kept)."""
    summary = prune.summary
    assert summary is not None
    # Tombstones keep their positions: the summary's must differ from theirs too, or pruning the
    # summary later would collide with one (a position between the neighbours of both kinds).
    if last_pos is None:
        first = await conn.fetchval("SELECT MIN(pos) FROM messages WHERE session_id = $1", session_id) or 1.0
        below = await conn.fetchval(
            "SELECT MAX(pos) FROM pruned_messages WHERE session_id = $1 AND pos < $2", session_id, first
        )
        pos = first - 0.5 if below is None else (below + first) / 2
    else:
        nxt = await conn.fetchval(
            "SELECT LEAST((SELECT MIN(pos) FROM messages WHERE session_id = $1 AND pos > $2), "
            "(SELECT MIN(pos) FROM pruned_messages WHERE session_id = $1 AND pos > $2))",
            session_id,
            last_pos,
        )
        pos = last_pos + 0.5 if nxt is None else (last_pos + nxt) / 2
    row = await conn.fetchrow(
        "UPDATE sessions SET next_seq = next_seq + 1, next_event = next_event + 1 WHERE id = $1 "
        "RETURNING next_seq - 1, next_event - 1",
        session_id,
    )
    seq, event_id = int(row[0]), int(row[1])
    await conn.execute(
        "INSERT INTO messages (session_id, pos, seq, event_id, created_at, tokens, role, entry) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        session_id,
        pos,
        seq,
        event_id,
        now,
        summary.tokens,
        str(summary.body["role"]),
        dumps(new_entries([summary], now)[0]),
    )
    return seq
