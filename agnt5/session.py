"""Session: a durable conversation — message history, state in four scopes, an audit trail.

Built on the store that also backs Entity. Every awaited write is durable when it returns and
shielded from cancellation (a cancelled `send_message` stored its message whole or not at all).
"""

from __future__ import annotations

import asyncio
import builtins
import html
import json
import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, Literal

from agnt5 import tracing
from agnt5.config import default_model, default_store
from agnt5.errors import (
    ImmutableSessionError,
    InvalidInputError,
    InvalidTypeError,
    SessionConflictError,
    SessionNotFoundError,
    StateScopeError,
)
from agnt5.messages import Message, ensure_metadata, validate_message
from agnt5.retention import RetentionPolicy
from agnt5.store.base import (
    SCOPES,
    Event,
    NewEvent,
    NewMessage,
    SessionHeader,
    SessionPage,
    StateWrite,
    Store,
    SyncStore,
)
from agnt5.tokens import counter_for
from agnt5.values import check_count, check_name, check_store, ensure_json

if TYPE_CHECKING:
    from agnt5.models import LanguageModel
    from agnt5.pruning import PruneResult
    from agnt5.strategies.base import PruneStrategy

Scope = Literal["session", "user", "app", "temp"]
EXPORT_FORMATS = ("jsonl", "json")


_in_flight: set[asyncio.Future[None]] = set()
"""State writes still running after the task that started them was cancelled."""


_REPR_MESSAGES = 10  # newest messages a notebook shows


def _now() -> float:
    return datetime.now(UTC).timestamp()


class Session:
    """A conversation container with history, scoped state and an audit trail.

    `Session(id)` opens the stored session of that id, or starts a new one that is saved on its
    first write. Arguments given override what is stored (metadata replaces the stored metadata;
    retention replaces the stored policy, except that an immutable session stays immutable);
    arguments left as None keep the stored values. A different `app_name` or `user_id` than the
    stored one raises SessionConflictError.

    State scopes: `session` (this conversation), `user` (every session of app_name + user_id),
    `app` (every session of app_name), `temp` (this object only, never stored; cleared by
    `clear_temp()` and at the end of every agent run). `set_state`/`get_state` are synchronous:
    on the embedded store they read and write the database directly (a write is durable when it
    returns); on a store without synchronous access they use a cache filled by `await load()`,
    and writes become durable at the next awaited call on this session or `await flush()`.
    """

    def __init__(
        self,
        id: str | None = None,
        app_name: str | None = None,
        user_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        retention: Mapping[str, Any] | RetentionPolicy | None = None,
        *,
        store: Store | None = None,
        model: str | None = None,
    ) -> None:
        if id is None:
            id = f"session-{uuid.uuid4().hex}"
        for arg, value in (("id", id), ("app_name", app_name), ("user_id", user_id)):
            if value is not None:
                check_name(value, f"Session {arg}")
        check_store(store, "Session")
        self.id: str = id
        self._app_name = app_name
        self._user_id = user_id
        self._metadata = ensure_metadata(metadata, "Session metadata") if metadata is not None else None
        self._retention_given = retention is not None
        self._retention = RetentionPolicy.parse(retention)
        self._store = store
        self.model = model or default_model()
        self._header: SessionHeader | None = None
        self._temp: dict[str, Any] = {}
        self._cache: dict[str, dict[str, Any]] = {}
        self._pending: list[tuple[StateWrite, NewEvent]] = []
        # The newest messages this object has seen, for _repr_html_ on stores without sync reads.
        self._tail: list[Message] = []
        # (seq, active count) at some moment, for auto_prune's bound on the count (agnt5.pruning).
        self._active_mark: tuple[int, int] | None = None

    # identity and header ----------------------------------------------------------------------

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = default_store()
        return self._store

    @property
    def app_name(self) -> str | None:
        return self._resolved().app_name

    @property
    def user_id(self) -> str | None:
        return self._resolved().user_id

    @property
    def metadata(self) -> dict[str, Any]:
        return dict(self._resolved().metadata)

    @property
    def retention(self) -> RetentionPolicy:
        return RetentionPolicy.parse(self._resolved().retention)

    @property
    def immutable(self) -> bool:
        return bool(self._resolved().retention.get("immutable"))

    def __repr__(self) -> str:
        return f"Session(id={self.id!r}, app_name={self._app_name!r}, user_id={self._user_id!r})"

    def _merge(self, stored: SessionHeader | None) -> SessionHeader:
        if stored is None:
            return SessionHeader(
                id=self.id,
                app_name=self._app_name,
                user_id=self._user_id,
                metadata=self._metadata or {},
                retention=self._retention.to_dict(),
            )
        for field, given, kept in (
            ("app_name", self._app_name, stored.app_name),
            ("user_id", self._user_id, stored.user_id),
        ):
            if given is not None and kept is not None and given != kept:
                raise SessionConflictError(
                    f"session {self.id!r} is stored with {field}={kept!r}, not {given!r}; "
                    "use another session id or the stored value"
                )
        retention = stored.retention
        if self._retention_given:
            if stored.retention.get("immutable") and "immutable" in self._retention.model_fields_set:
                if not self._retention.immutable:
                    raise ImmutableSessionError(
                        f"session {self.id!r} is immutable; its retention cannot be made mutable"
                    )
            retention = self._retention.to_dict()
            if stored.retention.get("immutable"):
                retention["immutable"] = True
        return SessionHeader(
            id=self.id,
            app_name=self._app_name or stored.app_name,
            user_id=self._user_id or stored.user_id,
            metadata=self._metadata if self._metadata is not None else stored.metadata,
            retention=retention,
            created_at=stored.created_at,
            updated_at=stored.updated_at,
            expires_at=stored.expires_at,
            message_count=stored.message_count,
        )

    def _sync_store(self) -> SyncStore | None:
        store = self.store
        return store if getattr(store, "supports_sync", False) else None  # type: ignore[return-value]

    def _resolved(self) -> SessionHeader:
        """The header, loading it synchronously on the embedded store; else what is known so far."""
        if self._header is None:
            sync = self._sync_store()
            if sync is None:
                return self._merge(None)
            stored = sync.get_session_sync(self.id)
            self._header = self._merge(stored)
            if self._header_changed(stored):
                sync.save_session_sync(self._header)
        return self._header

    def _header_changed(self, stored: SessionHeader | None, header: SessionHeader | None = None) -> bool:
        """Whether `header` (default: this object's) changes the stored metadata or retention."""
        header = header if header is not None else self._header
        assert header is not None
        return stored is not None and (
            header.metadata != stored.metadata or header.retention != stored.retention
        )

    async def _ensure(self) -> SessionHeader:
        header = self._header
        if header is None:
            header = await self._adopt(await self.store.get_session(self.id))
        if self._pending:
            await self.flush()
        return header

    async def _adopt(self, stored: SessionHeader | None) -> SessionHeader:
        """Take the stored header (merged with the arguments given), writing it back if they change it."""
        header = self._header = self._merge(stored)
        if self._header_changed(stored):
            await asyncio.shield(self.store.save_session(header))
        return header

    async def load(self) -> Session:
        """Re-read the stored header and state (needed on stores without synchronous access)."""
        if self._pending:
            await self.flush()
        self._header = self._merge(await self.store.get_session(self.id))
        self._cache = {}
        for scope in ("session", "user", "app"):
            owner = self._owner(scope, required=False)
            if owner is not None:
                self._cache[scope] = await self.store.get_state(scope, owner)
        if self._sync_store() is None:
            self._tail = await self.store.read_messages(self.id, _REPR_MESSAGES, False)
        return self

    async def flush(self) -> None:
        """Write pending state changes (stores without synchronous access); a no-op otherwise."""
        if not self._pending:
            return
        if self._header is None:
            self._header = self._merge(await self.store.get_session(self.id))
        header = self._header
        pending, self._pending = self._pending, []

        def requeue_if_failed(task: asyncio.Future[None]) -> None:
            # A cancelled caller does not stop the write; only a failed write is pending again.
            if task.cancelled() or task.exception() is not None:
                self._pending = pending + self._pending

        write = asyncio.ensure_future(  # noqa: RUF006 (referenced from _in_flight)
            self.store.write_state(header, [w for w, _ in pending], [e for _, e in pending])
        )
        _in_flight.add(write)  # keeps the write alive even if every caller is gone
        write.add_done_callback(_in_flight.discard)
        write.add_done_callback(requeue_if_failed)
        await asyncio.shield(write)

    async def exists(self) -> bool:
        """Whether the session has been stored (it is saved on its first write)."""
        return await self.store.get_session(self.id) is not None

    async def save(self) -> None:
        """Store the session now (header, metadata, retention), even before any message or state."""
        header = await self._ensure()
        self._header = self._merge(await asyncio.shield(self.store.save_session(header)))

    @classmethod
    async def get(cls, id: str, *, store: Store | None = None) -> Session:
        """Open a stored session; raise SessionNotFoundError when there is none with that id."""
        session = cls(id, store=store)
        stored = await session.store.get_session(id)
        if stored is None:
            raise SessionNotFoundError(f"no session with id {id!r} in {session.store.url}")
        session._header = session._merge(stored)
        return session

    @classmethod
    async def list(
        cls,
        app_name: str | None = None,
        user_id: str | None = None,
        *,
        limit: int = 100,
        cursor: str | None = None,
        store: Store | None = None,
    ) -> SessionPage:
        """Stored sessions, most recently updated first, `limit` per page; pass `page.next_cursor` on."""
        check_count(limit, "limit", minimum=1)
        return await (store or default_store()).list_sessions(app_name, user_id, limit, cursor)

    async def delete(self) -> None:
        """Delete the session whole: messages, session-scope state and events (not user/app state)."""
        header = await self._ensure()
        if header.retention.get("immutable"):
            raise ImmutableSessionError(f"session {self.id!r} is immutable and cannot be deleted")
        from agnt5.journal import NAMESPACE

        # Its journal of tool steps first: a session made again under this id starts with none.
        await asyncio.shield(self.store.kv_delete(NAMESPACE, self.id))
        await asyncio.shield(self.store.delete_session(self.id))
        self._header = None
        self._cache = {}

    # messages ---------------------------------------------------------------------------------

    async def send_message(
        self, message: Mapping[str, Any], metadata: Mapping[str, Any] | None = None
    ) -> Message:
        """Validate and append one message; returns the stored entry (with id, seq, timestamp, tokens).

        Invalid input raises MessageValidationError (a ValueError) naming the field; nothing is stored.
        """
        return (await self._append([(message, ensure_metadata(metadata))], ()))[0]

    async def send_messages(
        self, messages: Sequence[Mapping[str, Any]], metadata: Mapping[str, Any] | None = None
    ) -> builtins.list[Message]:
        """Append several messages in one transaction: all are stored, or none (on any invalid one)."""
        if isinstance(messages, Mapping) or isinstance(messages, str) or not isinstance(messages, Sequence):
            raise InvalidTypeError(
                f"send_messages takes a list of message dicts, got {type(messages).__name__}; "
                "use send_message for one"
            )
        meta = ensure_metadata(metadata)
        return await self._append([(m, meta) for m in messages], ())

    @tracing.traced_session("append")
    async def _append(
        self,
        items: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]],
        events: Sequence[NewEvent],
        *,
        validated: bool = False,
    ) -> builtins.list[Message]:
        """Validate (unless the caller did: `validated`) and append (message, metadata) pairs plus
        audit events, in one transaction."""
        return (await self._store_new(await self._new_messages(items, validated), events, None))[0]

    @tracing.traced_session("append")
    async def _append_and_set(
        self,
        items: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]],
        events: Sequence[NewEvent],
        kv: tuple[str, str, Any, int],
    ) -> tuple[builtins.list[Message], bool]:
        """`_append` of validated messages, and on a store that can, `kv` (namespace, key, value,
        expected version) set in the same transaction; returns the messages and whether it was
        set (False: the caller sets it on its own)."""
        return await self._store_new(await self._new_messages(items, True), events, kv)

    async def _store_new(
        self,
        new: builtins.list[NewMessage],
        events: Sequence[NewEvent],
        kv: tuple[str, str, Any, int] | None,
    ) -> tuple[builtins.list[Message], bool]:
        if not new and not events:
            return [], False
        header = self._header if self._header is not None and not self._pending else await self._ensure()
        if not new:
            await asyncio.shield(self.store.append_events(header, list(events)))
            return [], False
        # The store commits a queued append even if this task is cancelled while waiting.
        combined = getattr(self.store, "append_messages_and_set", None) if kv is not None else None
        if combined is not None:
            out, written = await combined(header, new, events, kv)
        else:
            out, written = await self.store.append_messages(header, new, events), False
        await self._appended(header, out)
        return out, written

    async def _new_messages(
        self, items: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]], validated: bool = False
    ) -> builtins.list[NewMessage]:
        """(message, metadata) pairs validated (unless they were) and counted, as the store takes them."""
        count = counter_for(self.model)
        new: builtins.list[NewMessage] = []
        for raw, meta in items:
            body = dict(raw) if validated else validate_message(raw)
            if _long(body):  # counting megabytes takes a while: keep the event loop free meanwhile
                tokens = await asyncio.to_thread(count.message, body)
            else:
                tokens = count.message(body)
            new.append(NewMessage(f"msg_{os.urandom(16).hex()}", body, dict(meta), tokens))
        return new

    async def _appended(self, header: SessionHeader, out: builtins.list[Message]) -> None:
        """What follows an append: the notebook tail, and auto-pruning if the retention asks for it."""
        if self._sync_store() is None:
            self._tail = (self._tail + out)[-_REPR_MESSAGES:]
        if header.retention.get("auto_prune"):
            from agnt5.pruning import auto_prune

            await auto_prune(self, out[-1].seq)  # never raises: failures are logged and recorded

    @tracing.traced_session("append")
    async def _read_and_append(
        self,
        items: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]],
        events: Sequence[NewEvent],
        accept: Callable[[builtins.list[Message], tuple[Any, int] | None], bool],
        kv: tuple[str, str] | None = None,
    ) -> tuple[builtins.list[Message], builtins.list[Message] | None, tuple[Any, int] | None]:
        """The history, and `items` and `events` appended after it — unless `accept(history,
        found)` is false: then nothing is appended and None comes back in their place. `found` is
        the (value, version) of the key/value `kv` names (namespace, key), read with the history.

        An agent run starts this way. On a store with `read_and_append` (SQLite) it is one call,
        one transaction, where a read and then an append take two trips to the database thread;
        `accept` then runs on that thread, and must only look at its arguments.
        """
        combined = getattr(self.store, "read_and_append", None)
        if combined is None or self._pending or not items:
            # The key/value first, then the history: a tool step leaves the journal only once its
            # messages are in the history, so read in this order the two never miss a step between
            # them (read together, a step finished meanwhile could be in neither).
            found = None if kv is None else await self.store.kv_get(*kv)
            history = await self.history()
            if not accept(history, found):
                return history, None, found
            return history, await self._append(items, events), found
        new = await self._new_messages(items)
        known = self._header
        seen: builtins.list[tuple[Any, int] | None] = [None]

        def plan(
            stored: SessionHeader | None, history: builtins.list[Message], found: tuple[Any, int] | None
        ) -> tuple[SessionHeader, bool, bool]:
            """On the database thread: the header to append under (conflicts raise here), whether
            the arguments given change the stored one, and whether to append."""
            seen[0] = found
            if known is not None:
                return known, False, accept(history, found)
            header = self._merge(stored)
            return header, self._header_changed(stored, header), accept(history, found)

        header, history, out = await combined(self.id, plan, new, events, kv=kv)
        self._header = header
        if out is not None:
            await self._appended(header, out)
        return history, out, seen[0]

    @tracing.traced_session("history")
    async def history(
        self, limit: int | None = None, *, include_pruned: bool = False
    ) -> builtins.list[Message]:
        """Messages oldest to newest; with `limit`, the newest `limit` of them (`limit=0` gives []).

        Reading the newest N costs the same whatever the session's length. `include_pruned=True`
        adds the tombstones of pruned messages (their metadata, without content).
        """
        if limit is not None:
            check_count(limit, "limit")
        if limit == 0:
            return []
        messages: builtins.list[Message]
        read_session = getattr(self.store, "read_session", None)
        if self._header is None and not self._pending and read_session is not None:
            # The header and the messages in one store call (a run's first read of its session).
            stored, messages = await read_session(self.id, limit, include_pruned)
            await self._adopt(stored)
        else:
            await self._ensure()
            messages = await self.store.read_messages(self.id, limit, include_pruned)
        if not include_pruned and self._sync_store() is None:
            self._tail = messages[-_REPR_MESSAGES:]
        return messages

    async def clear(self) -> int:
        """Delete every message (state and events stay); refused on an immutable session."""
        header = await self._ensure()
        if header.retention.get("immutable"):
            raise ImmutableSessionError(f"session {self.id!r} is immutable; its history cannot be cleared")
        event = NewEvent("history_cleared", {})
        return await asyncio.shield(self.store.clear_messages(self.id, event))

    async def pop(self) -> builtins.list[Message]:
        """Remove the newest block and return it, oldest first ([] when the history is empty).

        A block is one message, or an assistant tool-call message with every result answering it
        (never half a pair). The messages vanish (no tombstone) and the next append takes the
        seq after the newest one left; a `message_popped` event records the ids and seqs.
        Raises ImmutableSessionError on an immutable session.
        """
        from agnt5.undo import pop

        return await pop(self)

    async def rewind(self, to: str) -> builtins.list[Message]:
        """Remove every message after the message with id `to` and return them, oldest first
        (ADK's rewind). If `to` is in a tool-call block, the whole block stays. Recorded as a
        `history_rewound` event. Raises MessageNotFoundError (a KeyError) when `to` is not an
        active message, ImmutableSessionError on an immutable session.
        """
        from agnt5.undo import rewind

        return await rewind(self, to)

    async def prune(
        self,
        strategy: str | PruneStrategy | None = None,
        *,
        max_tokens: int | None = None,
        model: LanguageModel | str | None = None,
        **params: Any,
    ) -> PruneResult:
        """Prune the history with a strategy; applies whole or not at all (see agnt5.pruning).

        `strategy`: "keep_last_<N>", "sliding_window" (window_size=), "keep_important"
        (max_messages=, keep_recent=), "summarize_old" (threshold=, keep_recent=,
        summary_max_tokens=) or a strategy object; default the retention's prune_strategy, else
        sliding_window. `max_tokens` bounds the tokens that remain; `model` (LanguageModel or
        model string, default this session's model) serves the LLM strategies. Pruned messages
        stay as tombstones (`history(include_pruned=True)`); each prune is a `prune` event.
        A history within its limits is left alone (no model call; `result.changed` is False).
        Raises ImmutableSessionError, StrategyError, TokenBudgetError or PruneModelError.
        """
        from agnt5.pruning import prune

        return await prune(self, strategy, max_tokens=max_tokens, model=model, **params)

    # state ------------------------------------------------------------------------------------

    def _owner(self, scope: str, *, required: bool = True) -> str | None:
        if scope == "session":
            return self.id
        header = self._resolved()
        if scope == "user":
            if header.user_id is None:
                if not required:
                    return None
                raise StateScopeError(
                    f"session {self.id!r} has no user_id, so it has no 'user' scope; "
                    "create the Session with user_id=... or use scope='session'"
                )
            from agnt5.store.base import user_owner  # one encoding for every store and migration

            return user_owner(header.app_name, header.user_id)
        if scope == "app":
            return header.app_name or ""
        raise StateScopeError(f"unknown state scope {scope!r}; use one of {', '.join(SCOPES)}")

    def set_state(self, key: str, value: Any, scope: Scope = "session") -> None:
        """Set one key of one scope's state (synchronous). Values must be JSON serialisable.

        Only that key is written (an upsert inside the database), so writers of other keys —
        another session of the same user, another process — are never overwritten.
        """
        self._write_state(key, scope, value, delete=False)

    def delete_state(self, key: str, scope: Scope = "session") -> None:
        """Remove one key of one scope's state (no error if it is not set)."""
        self._write_state(key, scope, None, delete=True)

    @tracing.traced_session("set_state")
    def _write_state(self, key: str, scope: str, value: Any, *, delete: bool) -> None:
        check_name(key, "state key")
        if not delete:
            ensure_json(value, f"state key {key!r}")
        if scope == "temp":
            if delete:
                self._temp.pop(key, None)
            else:
                self._temp[key] = value
            return
        owner = self._owner(scope)
        assert owner is not None
        write = StateWrite(scope, owner, key, value, delete)
        action = "delete" if delete else "set"
        event = NewEvent("state_changed", {"scope": scope, "key": key, "action": action})
        sync = self._sync_store()
        if sync is not None:
            sync.write_state_sync(self._resolved(), [write], [event])
        else:
            self._pending.append((write, event))
        cached = self._cache.setdefault(scope, {})
        if delete:
            cached.pop(key, None)
        else:
            cached[key] = value

    def get_state(self, key: str, default: Any = None, scope: Scope = "session") -> Any:
        """The value of one key of one scope's state, or `default` (synchronous)."""
        if not isinstance(key, str):
            check_name(key, "state key")
        if scope == "temp":
            return self._temp.get(key, default)
        owner = self._owner(scope)
        assert owner is not None
        sync = self._sync_store()
        if sync is None:
            return self._cache.get(scope, {}).get(key, default)
        found, value = sync.get_state_value_sync(scope, owner, key)
        return value if found else default

    def state(self, scope: Scope = "session") -> dict[str, Any]:
        """A snapshot of one scope's whole state (synchronous)."""
        if scope == "temp":
            return dict(self._temp)
        owner = self._owner(scope)
        assert owner is not None
        sync = self._sync_store()
        if sync is None:
            return dict(self._cache.get(scope, {}))
        return sync.get_state_sync(scope, owner)

    def clear_temp(self) -> None:
        """Forget all temp-scope state (agents do this at the end of every run)."""
        self._temp.clear()

    # audit ------------------------------------------------------------------------------------

    async def record_event(self, type: str, data: Mapping[str, Any] | None = None) -> None:
        """Append an event of your own to the session's audit trail."""
        check_name(type, "event type")
        payload = dict(data or {})
        ensure_json(payload, f"event {type!r} data")
        header = await self._ensure()
        await asyncio.shield(self.store.append_events(header, [NewEvent(type, payload)]))

    async def events(
        self, since: str | date | datetime | None = None, limit: int | None = None
    ) -> builtins.list[Event]:
        """Audit events, oldest first, from `since` (ISO date/datetime string, date or datetime;
        naive values are UTC), at most `limit` of them.

        Events: message_appended, state_changed (scope, key), history_cleared, prune, and agent
        runs, tool calls and handoffs; they survive pruning.
        """
        if limit is not None:
            check_count(limit, "limit")
        await self._ensure()
        return await self.store.read_events(self.id, _timestamp(since), limit)

    async def export(self, format: str = "jsonl", *, include_pruned: bool = True) -> str:
        """The session as text for review: `jsonl` (one message per line: id, seq, timestamp, role,
        message, metadata, tool_calls, ...) or `json` (one document with the session and messages).

        Pruned messages appear with `"pruned": true` and no content unless `include_pruned=False`.
        """
        if not isinstance(format, str) or format not in EXPORT_FORMATS:
            raise InvalidInputError(
                f"unknown export format {format!r}; use one of {', '.join(EXPORT_FORMATS)}"
            )
        header = await self._ensure()
        rows = await self.store.read_messages(self.id, None, include_pruned)
        lines = [_export_record(r) for r in rows]
        if format == "jsonl":
            return "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
        document = {
            "session": {
                "id": self.id,
                "app_name": header.app_name,
                "user_id": header.user_id,
                "metadata": header.metadata,
                "retention": header.retention,
            },
            "messages": lines,
        }
        return json.dumps(document, ensure_ascii=False, indent=2)

    # Jupyter ------------------------------------------------------------------------------------

    def _repr_html_(self) -> str:
        header = self._resolved()
        rows = self._tail
        count = header.message_count
        sync = self._sync_store()
        if sync is not None:
            rows = sync.read_messages_sync(self.id, _REPR_MESSAGES, False)
            stored = sync.get_session_sync(self.id)  # the cached header counts as of when it loaded
            count = stored.message_count if stored is not None else 0
        esc = html.escape
        state = {
            s: self.state(s) for s in ("session", "user", "app", "temp") if s != "user" or header.user_id
        }
        parts = [
            f"<div><b>Session</b> <code>{esc(self.id)}</code> · app {esc(str(header.app_name))}"
            f" · user {esc(str(header.user_id))} · {count} messages</div>",
            f"<div>metadata: <code>{esc(json.dumps(header.metadata))}</code></div>",
            *(_state_html(scope, values) for scope, values in state.items()),
            "<table><tr><th>#</th><th>role</th><th>content</th></tr>",
        ]
        for r in rows:
            content = r.get("content")
            text = content if isinstance(content, str) else json.dumps(content)
            if r.get("tool_calls"):
                text = (text or "") + " → " + ", ".join(c["function"]["name"] for c in r["tool_calls"])
            text = text if len(text) <= 200 else text[:197] + "..."
            parts.append(f"<tr><td>{r.seq}</td><td>{esc(r.role)}</td><td>{esc(text)}</td></tr>")
        parts.append("</table>")
        if sync is None:
            parts.append("<div><i>newest messages as of this object's last load or append</i></div>")
        return "\n".join(parts)


_REPR_STATE_KEYS = 20  # keys a notebook shows per state scope
_REPR_VALUE_CHARS = 60  # characters of each state value shown


def _state_html(scope: str, values: Mapping[str, Any]) -> str:
    """One state scope for the notebook view: its key count, then keys with short (escaped,
    cut) values."""
    count = f"{scope}: {len(values)} key{'s' if len(values) != 1 else ''}"
    shown = []
    for key, value in builtins.list(values.items())[:_REPR_STATE_KEYS]:
        text = json.dumps(value, ensure_ascii=False, default=repr)
        if len(text) > _REPR_VALUE_CHARS:
            text = text[: _REPR_VALUE_CHARS - 1] + "…"
        shown.append(f"<code>{html.escape(key)}</code>=<code>{html.escape(text)}</code>")
    more = len(values) - len(shown)
    rest = f", … {more} more" if more > 0 else ""
    return f"<div>state · {count}{' · ' if shown else ''}{', '.join(shown)}{rest}</div>"


async def purge_expired(*, store: Store | None = None, now: datetime | None = None) -> list[str]:
    """Delete every session whose `ttl_days` has passed since its last update (never immutable
    ones); return the ids deleted. `now` (default: the current time) is a datetime; a naive one is
    UTC, as in `Session.events(since=...)`."""
    if now is None:
        now = datetime.now(UTC)
    elif not isinstance(now, datetime):
        raise InvalidTypeError(
            f"now must be a datetime (e.g. datetime.now(UTC)), got {type(now).__name__}", field="now"
        )
    elif now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    moment = now.timestamp()
    store = store or default_store()
    deleted = await store.purge_expired(moment)
    if deleted:
        from agnt5.journal import NAMESPACE

        await asyncio.gather(*(store.kv_delete(NAMESPACE, sid) for sid in deleted))
    return deleted


_LONG_TEXT = 256 * 1024


def _long(body: Mapping[str, Any]) -> bool:
    content = body.get("content")
    if isinstance(content, str):
        return len(content) > _LONG_TEXT
    if not isinstance(content, list):
        return False
    # Only text is tokenised (images have a flat cost): no encoding of the parts just to measure.
    texts = (p.get("text") for p in content if isinstance(p, Mapping))
    return sum(len(t) for t in texts if isinstance(t, str)) > _LONG_TEXT


def _export_record(m: Message) -> dict[str, Any]:
    metadata = dict(m.metadata)
    pruned_by = metadata.pop("pruned_by", None) if m.pruned else None
    record: dict[str, Any] = {
        "id": m.id,
        "seq": m.seq,
        "timestamp": m["timestamp"],
        "role": m.role,
        "message": m.get("content"),
        "metadata": metadata,
        "tool_calls": m.get("tool_calls"),
        "tokens": m.tokens,
    }
    for key in ("name", "tool_call_id"):
        if key in m:
            record[key] = m[key]
    if m.pruned:
        record["pruned"] = True
        record["pruned_by"] = pruned_by
    return record


def _timestamp(since: str | date | datetime | None) -> float | None:
    if since is None:
        return None
    if isinstance(since, str):
        try:
            since = datetime.fromisoformat(since)
        except ValueError as exc:
            raise InvalidInputError(
                f"since={since!r} is not an ISO date or datetime (e.g. '2024-01-01' or '2024-01-01T12:00:00Z')"
            ) from exc
    if isinstance(since, datetime):
        moment = since if since.tzinfo is not None else since.replace(tzinfo=UTC)
        # Stored times are floats; an event's `timestamp` is rounded to the microsecond, so
        # `since=event.timestamp` must still include that event.
        return moment.timestamp() - 1e-6
    if isinstance(since, date):
        return datetime(since.year, since.month, since.day, tzinfo=UTC).timestamp()
    raise InvalidTypeError(f"since must be an ISO string, a date or a datetime, got {type(since).__name__}")
