"""RunStore: the in-process store behind the session of a run that was given none.

One RunStore holds one run-local session and lives as long as the run's objects (nothing to
delete, no database, no thread): messages, audit events and state in plain Python structures,
returned as copies like a database would. History, state, events, export, clear, pop and rewind
work as on the durable stores; pruning, Entity and Memory need a real store and say so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, NoReturn

from agnt5.errors import StoreError, UpdateConflictError
from agnt5.messages import Message
from agnt5.store._rows import appended_event_data, new_entries, now, removal_event_data, tombstone
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


class RunStore:
    """A store for one run-local session (see the module docstring)."""

    supports_sync = True
    url = "memory://run-local"

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._header: SessionHeader | None = None
        self._messages: list[Message] = []
        self._pruned: list[Message] = []
        self._events: list[tuple[int, str, float, dict[str, Any]]] = []  # (id, type, time, data)
        self._event_id = 0
        self._state: dict[tuple[str, str], dict[str, Any]] = {}
        self._kv: dict[tuple[str, str], tuple[Any, int]] = {}

    def __repr__(self) -> str:
        return f"RunStore({len(self._messages)} messages)"

    async def close(self) -> None:
        return None

    # sessions ---------------------------------------------------------------------------------

    def _touch(self, header: SessionHeader) -> SessionHeader:
        if self._header is None:
            t = now()
            self._header = SessionHeader(
                header.id,
                header.app_name,
                header.user_id,
                dict(header.metadata),
                dict(header.retention),
                t,
                t,
            )
        return self._header

    def get_session_sync(self, session_id: str) -> SessionHeader | None:
        return self._header if self._header is not None and self._header.id == session_id else None

    def save_session_sync(self, header: SessionHeader) -> None:
        self._touch(header)

    async def get_session(self, session_id: str) -> SessionHeader | None:
        return self.get_session_sync(session_id)

    async def save_session(self, header: SessionHeader) -> SessionHeader:
        return self._touch(header)

    async def list_sessions(
        self, app_name: str | None, user_id: str | None, limit: int, cursor: str | None
    ) -> SessionPage:
        header = self._header
        keep = (
            header is not None and app_name in (None, header.app_name) and user_id in (None, header.user_id)
        )
        return SessionPage([header] if keep and header is not None and cursor is None else [], None)

    async def delete_session(self, session_id: str) -> bool:
        if self.get_session_sync(session_id) is None:
            return False
        self._reset()
        return True

    async def purge_expired(self, now: float) -> list[str]:
        return []  # a run-local session never outlives its run

    # messages ---------------------------------------------------------------------------------

    def _event(self, type: str, data: Mapping[str, Any]) -> int:
        self._event_id += 1
        self._events.append((self._event_id, type, now(), _clone(dict(data))))
        return self._event_id

    async def append_messages(
        self, header: SessionHeader, messages: Sequence[NewMessage], events: Sequence[NewEvent]
    ) -> list[Message]:
        self._touch(header)
        entries = new_entries(messages, now())
        seq = max((m.seq for m in self._messages[-1:] + self._pruned[-1:]), default=-1) + 1
        for offset, entry in enumerate(entries):
            entry.seq = seq + offset
            self._messages.append(_copy_message(entry))
            self._event("message_appended", appended_event_data(entry))
        for event in events:
            self._event(event.type, event.data)
        return entries

    def read_messages_sync(self, session_id: str, limit: int | None, include_pruned: bool) -> list[Message]:
        if self.get_session_sync(session_id) is None:
            return []
        merged = (
            sorted(self._messages + self._pruned, key=lambda m: m.seq) if include_pruned else self._messages
        )
        chosen = merged if limit is None else merged[-limit:] if limit else []
        return [_copy_message(m) for m in chosen]

    async def read_messages(self, session_id: str, limit: int | None, include_pruned: bool) -> list[Message]:
        return self.read_messages_sync(session_id, limit, include_pruned)

    async def clear_messages(self, session_id: str, event: NewEvent) -> int:
        cleared, self._messages = self._messages, []
        self._pruned += [tombstone(_without_content(m), m.seq, m.tokens, "clear") for m in cleared]
        self._event(event.type, event.data)
        return len(cleared)

    async def remove_messages(self, session_id: str, removal: Removal) -> list[Message]:
        if not self._messages or self._messages[-1].seq != removal.newest_seq:
            raise UpdateConflictError("the history changed since it was read; read it again and retry")
        removed = [m for m in self._messages if m.seq >= removal.first_seq]
        self._messages = [m for m in self._messages if m.seq < removal.first_seq]
        self._event(removal.event.type, removal_event_data(removal, removed))
        return removed

    # state ------------------------------------------------------------------------------------

    def get_state_value_sync(self, scope: str, owner: str, key: str) -> tuple[bool, Any]:
        values = self._state.get((scope, owner), {})
        return (True, _clone(values[key])) if key in values else (False, None)

    def get_state_sync(self, scope: str, owner: str) -> dict[str, Any]:
        return {key: _clone(value) for key, value in self._state.get((scope, owner), {}).items()}

    def write_state_sync(
        self, header: SessionHeader, writes: Sequence[StateWrite], events: Sequence[NewEvent]
    ) -> None:
        self._touch(header)
        for write in writes:
            values = self._state.setdefault((write.scope, write.owner), {})
            if write.delete:
                values.pop(write.key, None)
            else:
                values[write.key] = _clone(write.value)
        for event in events:
            self._event(event.type, event.data)

    async def get_state(self, scope: str, owner: str) -> dict[str, Any]:
        return self.get_state_sync(scope, owner)

    async def write_state(
        self, header: SessionHeader, writes: Sequence[StateWrite], events: Sequence[NewEvent]
    ) -> None:
        self.write_state_sync(header, writes, events)

    # events -----------------------------------------------------------------------------------

    async def append_events(self, header: SessionHeader, events: Sequence[NewEvent]) -> None:
        self._touch(header)
        for event in events:
            self._event(event.type, event.data)

    async def read_events(self, session_id: str, since: float | None, limit: int | None) -> list[Event]:
        chosen = [e for e in self._events if since is None or e[2] >= since]
        if limit is not None:
            chosen = chosen[:limit]
        return [
            Event(i, session_id, type, datetime.fromtimestamp(t, UTC), _clone(data))
            for i, type, t, data in chosen
        ]

    # what needs a real store ------------------------------------------------------------------

    def _unavailable(self, what: str) -> NoReturn:
        raise StoreError(
            f"{what} is not available on a run-local session (a run given no session keeps its "
            "conversation in memory); pass session=Session(...) to run() for a stored one"
        )

    async def history_stats(self, session_id: str) -> HistoryStats:
        self._unavailable("pruning")

    async def window_cut(
        self, session_id: str, max_messages: int | None, max_tokens: int | None
    ) -> WindowCut:
        self._unavailable("pruning")

    async def seqs_before(self, session_id: str, pos: float) -> list[int]:
        self._unavailable("pruning")

    async def read_scores(self, session_id: str, seqs: Sequence[int]) -> dict[int, float]:
        self._unavailable("pruning")

    async def save_scores(self, session_id: str, scores: Mapping[int, float], model: str) -> None:
        self._unavailable("pruning")

    async def apply_prune(self, session_id: str, prune: PruneWrite) -> AppliedPrune:
        self._unavailable("pruning")

    # Key/values: a run-local session's journal of tool steps (a paused run resumes from it).
    async def kv_get(self, namespace: str, key: str) -> tuple[Any, int] | None:
        return self._kv.get((namespace, key))

    async def kv_set(self, namespace: str, key: str, value: Any) -> None:
        found = self._kv.get((namespace, key))
        self._kv[(namespace, key)] = (value, 1 if found is None else found[1] + 1)

    async def kv_compare_and_set(self, namespace: str, key: str, value: Any, expected_version: int) -> bool:
        found = self._kv.get((namespace, key))
        if (0 if found is None else found[1]) != expected_version:
            return False
        self._kv[(namespace, key)] = (value, expected_version + 1)
        return True

    async def kv_delete(self, namespace: str, key: str) -> bool:
        return self._kv.pop((namespace, key), None) is not None

    async def kv_keys(self, namespace: str) -> list[str]:
        return sorted(k for ns, k in self._kv if ns == namespace)

    async def memory_version(self, namespace: str) -> int:
        self._unavailable("Memory")

    async def memory_get(self, namespace: str, keys: Sequence[str]) -> list[MemoryRow]:
        self._unavailable("Memory")

    async def memory_list(self, namespace: str) -> list[MemoryRow]:
        self._unavailable("Memory")

    async def memory_put(self, namespace: str, writes: Sequence[MemoryWrite]) -> MemoryWriteResult:
        self._unavailable("Memory")

    async def memory_delete(self, namespace: str, keys: Sequence[str] | None) -> tuple[int, list[str]]:
        self._unavailable("Memory")

    async def memory_vectors(self, namespace: str) -> MemoryVectors:
        self._unavailable("Memory")

    async def read_messages_page(
        self,
        session_id: str,
        *,
        before_seq: int | None,
        after_seq: int | None,
        limit: int,
        include_pruned: bool,
    ) -> list[Message]:
        """As SqliteStore.read_messages_page (history in seq order)."""
        merged = self.read_messages_sync(session_id, None, include_pruned)
        if before_seq is not None:
            chosen = [m for m in merged if m.seq < before_seq][-limit:] if limit > 0 else []
        elif after_seq is not None:
            chosen = [m for m in merged if m.seq > after_seq][:limit]
        else:
            chosen = merged[-limit:] if limit > 0 else []
        return chosen


def _clone(value: Any) -> Any:
    """A copy of JSON data (dicts, lists, scalars), as reading it back from a database gives."""
    if isinstance(value, dict):
        return {k: _clone(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clone(v) for v in value]
    return value


def _copy_message(message: Message) -> Message:
    return Message(_clone(dict(message)), seq=message.seq, tokens=message.tokens, pruned=message.pruned)


def _without_content(message: Message) -> dict[str, Any]:
    return {k: v for k, v in message.items() if k not in ("content", "tool_calls")}


__all__ = ["RunStore"]
