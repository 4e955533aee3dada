"""The storage protocol every agnt5 backend implements, and the records it exchanges.

Backends store five things: entity key/values, session headers, messages (append-only, with
tombstones once pruned), scoped state (one row per key) and the audit log of events; plus
long-term memories (agnt5.memory), namespaced by app and user.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from agnt5.messages import Message

SCOPES = ("session", "user", "app", "temp")
PERSISTED_SCOPES = ("session", "user", "app")


def user_owner(app_name: str | None, user_id: str) -> str:
    """The owner of a user's 'user' state: app and user as one unambiguous string, a JSON pair
    (as Memory's namespace), so no two (app, user) pairs can share state whatever characters
    they hold. No app (None) is the app "" here, as for the 'app' scope. Schema version 5 moved
    state written under the older `f"{app}\\x1f{user}"`, which could collide."""
    return json.dumps([app_name or "", user_id], separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class SessionHeader:
    """What a store keeps about a session besides its messages, state and events."""

    id: str
    app_name: str | None = None
    user_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    retention: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    updated_at: float = 0.0
    expires_at: float | None = None
    message_count: int = 0


@dataclass(slots=True)
class NewMessage:
    """A validated message ready to append; the store assigns its sequence number and timestamp."""

    id: str
    body: dict[str, Any]
    metadata: dict[str, Any]
    tokens: int


@dataclass(frozen=True, slots=True)
class Event:
    """One entry of a session's append-only audit trail."""

    id: int
    session_id: str
    type: str
    timestamp: datetime
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to append; the store assigns its id (per session, increasing) and timestamp."""

    type: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class StateWrite:
    """Set (or, with `delete=True`, remove) one key of one scope's state."""

    scope: str
    owner: str
    key: str
    value: Any = None
    delete: bool = False


@dataclass(frozen=True, slots=True)
class SessionPage:
    """A page of `Store.list_sessions`, newest update first; pass `next_cursor` back for the next page."""

    sessions: list[SessionHeader]
    next_cursor: str | None

    def __iter__(self) -> Iterator[SessionHeader]:
        return iter(self.sessions)

    def __len__(self) -> int:
        return len(self.sessions)


# --- long-term memory records (agnt5.memory) -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class MemoryRow:
    """A stored memory without its vector. `model` is the embedding model of its vector (None: no vector)."""

    key: str
    content: str
    metadata: dict[str, Any]
    content_hash: str
    model: str | None
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class MemoryWrite:
    """Upsert one memory.

    With `only_if_hash`, the write applies only while the stored row's content hash still equals
    it (guards against a concurrent writer); `vector=None` with `only_if_hash` keeps the stored
    vector, so unchanged content is never re-embedded.
    """

    key: str
    content: str
    metadata: dict[str, Any]
    content_hash: str
    model: str | None = None
    vector: bytes | None = None
    dim: int | None = None
    only_if_hash: str | None = None


@dataclass(frozen=True, slots=True)
class MemoryWriteResult:
    """Outcome of `Store.memory_put`: the namespace's new version, or the guarded keys that failed.

    When `conflicts` is non-empty nothing was written (the batch is all or nothing) and
    `version` is the unchanged current version.
    """

    version: int
    conflicts: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class MemoryVectors:
    """Every vector of a namespace at one version: parallel lists, `vectors[i]` float32 bytes or None."""

    version: int
    keys: list[str]
    models: list[str | None]
    dims: list[int | None]
    vectors: list[bytes | None]


@dataclass(frozen=True, slots=True)
class HistoryStats:
    """Counts and token sums of a session's active history (summaries count as system messages)."""

    messages: int = 0
    tokens: int = 0
    system_messages: int = 0
    system_tokens: int = 0

    @property
    def conversation_messages(self) -> int:
        """Active messages that are not system messages."""
        return self.messages - self.system_messages


@dataclass(frozen=True, slots=True)
class CutPoint:
    """A user message from which the rest of the non-system history would be kept."""

    pos: float
    seq: int
    kept_messages: int
    kept_tokens: int


@dataclass(frozen=True, slots=True)
class WindowCut:
    """Where to cut for a window: `cut` is the oldest user message whose suffix (non-system
    messages from it on) fits both limits, None when none does; `last_user` is the newest user
    message, None when there is none."""

    stats: HistoryStats
    cut: CutPoint | None
    last_user: CutPoint | None


@dataclass(frozen=True, slots=True)
class PruneWrite:
    """One prune to apply atomically: move `remove_seqs` to the tombstones, insert `summary`
    (placed right after the last removed message), store `scores`, append `event`."""

    prune_id: str
    remove_seqs: Sequence[int]
    summary: NewMessage | None
    event: NewEvent
    scores: Mapping[int, float] = field(default_factory=dict)
    score_model: str = ""


@dataclass(frozen=True, slots=True)
class Removal:
    """Remove the active messages from seq `first_seq` to the newest (Session.pop / rewind),
    provided the newest active message is still seq `newest_seq`; `event` is recorded with the
    ids and seqs removed. The removed messages vanish (no tombstone) and their seqs are free again."""

    first_seq: int
    newest_seq: int
    event: NewEvent


@dataclass(frozen=True, slots=True)
class AppliedPrune:
    """What a prune changed, measured inside its transaction."""

    removed: int
    before: HistoryStats
    after: HistoryStats
    summary_seq: int | None = None


@runtime_checkable
class Store(Protocol):
    """An agnt5 storage backend.

    Every method is atomic: it applies whole or not at all. `supports_sync` says whether the
    `*_sync` methods exist (an embedded store can answer synchronously; a network store cannot).
    """

    url: str
    supports_sync: bool

    async def close(self) -> None: ...

    # entity key/values ------------------------------------------------------------------------
    async def kv_get(self, namespace: str, key: str) -> tuple[Any, int] | None:
        """(value, version) of a key, or None when absent."""
        ...

    async def kv_set(self, namespace: str, key: str, value: Any) -> None: ...

    async def kv_compare_and_set(self, namespace: str, key: str, value: Any, expected_version: int) -> bool:
        """Write only if the key's version is still `expected_version` (0 = absent)."""
        ...

    async def kv_delete(self, namespace: str, key: str) -> bool: ...

    async def kv_keys(self, namespace: str) -> list[str]: ...

    # sessions ---------------------------------------------------------------------------------
    async def get_session(self, session_id: str) -> SessionHeader | None: ...

    async def save_session(self, header: SessionHeader) -> SessionHeader:
        """Create the session, or update its metadata and retention; returns the stored header."""
        ...

    async def list_sessions(
        self, app_name: str | None, user_id: str | None, limit: int, cursor: str | None
    ) -> SessionPage: ...

    async def delete_session(self, session_id: str) -> bool: ...

    async def purge_expired(self, now: float) -> list[str]:
        """Delete every expired, non-immutable session whole; return their ids."""
        ...

    # messages ---------------------------------------------------------------------------------
    async def append_messages(
        self, header: SessionHeader, messages: Sequence[NewMessage], events: Sequence[NewEvent]
    ) -> list[Message]:
        """Append messages in one transaction, each with a `message_appended` event, plus `events`;
        returns the stored entries (numbered and stamped, as history will give them back).

        Creates the session from `header` if it does not exist yet. Once called, the append
        completes even if the awaiting task is cancelled (it is stored whole or, on error, not at all).
        """
        ...

    async def read_messages(self, session_id: str, limit: int | None, include_pruned: bool) -> list[Message]:
        """Oldest to newest; with `limit`, only the newest `limit` (cost independent of session length)."""
        ...

    async def clear_messages(self, session_id: str, event: NewEvent) -> int: ...

    async def remove_messages(self, session_id: str, removal: Removal) -> list[Message]:
        """Remove the newest active messages in one transaction; returns them, oldest first.

        The next append takes the seq after the newest remaining message (pruned ones included).
        Their `message_appended` events stay in the audit trail. Raises UpdateConflictError
        when the history changed since the caller read it (nothing removed; read and retry),
        ImmutableSessionError on an immutable session."""
        ...

    # state ------------------------------------------------------------------------------------
    async def get_state(self, scope: str, owner: str) -> dict[str, Any]: ...

    async def write_state(
        self, header: SessionHeader, writes: Sequence[StateWrite], events: Sequence[NewEvent]
    ) -> None:
        """Apply per-key upserts/deletes inside the database (never a read-modify-write of a whole scope)."""
        ...

    # events -----------------------------------------------------------------------------------
    async def append_events(self, header: SessionHeader, events: Sequence[NewEvent]) -> None: ...

    async def read_events(self, session_id: str, since: float | None, limit: int | None) -> list[Event]: ...

    # pruning (agnt5.pruning) -------------------------------------------------------------------
    async def history_stats(self, session_id: str) -> HistoryStats:
        """Counts and token sums of the active history, from the stored per-message counts."""
        ...

    async def window_cut(
        self, session_id: str, max_messages: int | None, max_tokens: int | None
    ) -> WindowCut:
        """Choose a window's cut in the database: `max_messages` bounds the kept non-system
        messages, `max_tokens` the kept history including system messages."""
        ...

    async def seqs_before(self, session_id: str, pos: float) -> list[int]:
        """Seqs of the active non-system messages before position `pos` (what a window removes)."""
        ...

    async def read_scores(self, session_id: str, seqs: Sequence[int]) -> dict[int, float]:
        """Stored importance scores of those messages that have one."""
        ...

    async def save_scores(self, session_id: str, scores: Mapping[int, float], model: str) -> None: ...

    async def apply_prune(self, session_id: str, prune: PruneWrite) -> AppliedPrune:
        """Apply a prune in one transaction, or nothing: raises PruneConflictError when one of
        `remove_seqs` is no longer active, ImmutableSessionError when the session is immutable."""
        ...

    # long-term memory (agnt5.memory) ---------------------------------------------------------
    # A namespace is an opaque string (agnt5.memory encodes app and user into it). Its version
    # is 0 until the first write and increases with every write or delete that changes it.
    async def memory_version(self, namespace: str) -> int: ...

    async def memory_get(self, namespace: str, keys: Sequence[str]) -> list[MemoryRow]:
        """The rows of `keys` that exist, in no particular order."""
        ...

    async def memory_list(self, namespace: str) -> list[MemoryRow]:
        """Every memory of the namespace, ordered by key."""
        ...

    async def memory_put(self, namespace: str, writes: Sequence[MemoryWrite]) -> MemoryWriteResult:
        """Apply all `writes` in one transaction (or none, when a guarded write conflicts)."""
        ...

    async def memory_delete(self, namespace: str, keys: Sequence[str] | None) -> tuple[int, list[str]]:
        """Delete `keys` (every memory of the namespace when None); (new version, keys deleted)."""
        ...

    async def memory_vectors(self, namespace: str) -> MemoryVectors:
        """Every key's vector with the version it was read at (one consistent snapshot)."""
        ...


class SyncStore(Store, Protocol):
    """A store that can also answer state calls synchronously (the embedded SQLite store)."""

    def get_state_value_sync(self, scope: str, owner: str, key: str) -> tuple[bool, Any]: ...

    def get_state_sync(self, scope: str, owner: str) -> dict[str, Any]: ...

    def write_state_sync(
        self, header: SessionHeader, writes: Sequence[StateWrite], events: Sequence[NewEvent]
    ) -> None: ...

    def get_session_sync(self, session_id: str) -> SessionHeader | None: ...

    def save_session_sync(self, header: SessionHeader) -> None: ...

    def read_messages_sync(
        self, session_id: str, limit: int | None, include_pruned: bool
    ) -> list[Message]: ...


@runtime_checkable
class PagedMessages(Protocol):
    """A store that pages through a long history around a message (agnt5 inspect's timeline).

    Separate from Store, so a store of one's own need not implement it (inspect then reads the
    whole history)."""

    async def read_messages_page(
        self,
        session_id: str,
        *,
        before_seq: int | None,
        after_seq: int | None,
        limit: int,
        include_pruned: bool,
    ) -> list[Message]:
        """Up to `limit` messages, oldest first: the newest ones placed before message
        `before_seq`, else the oldest ones after message `after_seq` (0: from the start), else
        the newest ones; [] when the anchor message does not exist."""
        ...


UpdateFn = Callable[[Any], Any] | Callable[[Any], Awaitable[Any]]
