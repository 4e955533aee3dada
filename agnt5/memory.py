"""Long-term memory: knowledge that outlives sessions, stored by key and found again by search.

`Memory` is the facade an application (or an agent, through `memory_tools`) talks to. It
validates input and scopes every call to one namespace, `(app_name, user_id)`; the service
behind it does the storing and the ranking:

- `InMemoryMemoryService` (agnt5.memory_keyword): keyword overlap, no model, process-local.
- `VectorMemoryService` (agnt5.memory_vector): litellm embeddings and cosine similarity,
  persisted in the agnt5 store so every process sharing the database sees the same memories.

Namespaces are exact: `Memory(user_id="u1")` never sees the memories of `user_id="u2"`, nor those
stored with `user_id=None` (the app-wide namespace), and each `app_name` is separate likewise.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Protocol, runtime_checkable

from pydantic import Field

from agnt5.errors import (
    InputTooLargeError,
    InvalidInputError,
    InvalidTypeError,
    MemoryTypeError,
    MemoryValidationError,
)
from agnt5.tools import Tool
from agnt5.values import MAX_COUNT, check_name, ensure_json, max_state_bytes, raise_too_large, text_bytes

DEFAULT_SEARCH_LIMIT = 5
MAX_RECALL_LIMIT = 50
"""Upper bound of `limit` in the `recall` tool, so a model cannot pull a whole namespace into its context."""


# --- records -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MemoryNamespace:
    """Whose memories: one app (or None) and one user (or None, the app-wide namespace)."""

    app_name: str | None = None
    user_id: str | None = None

    @property
    def key(self) -> str:
        """The namespace as one unambiguous string (a JSON pair), as stores keep it."""
        return json.dumps([self.app_name, self.user_id], separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class MemoryItem:
    """A validated memory to store."""

    key: str
    content: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MemoryRecord:
    """A stored memory, as `Memory.get` and `Memory.list` return it (timestamps in UTC)."""

    key: str
    content: str
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class MemoryResult:
    """One search hit: the memory and its relevance `score` (higher is better; cosine in [-1, 1]
    for `VectorMemoryService`, the fraction of query words matched in [0, 1] for keywords)."""

    key: str
    content: str
    score: float
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the `recall` tool's output format)."""
        return {
            "key": self.key,
            "content": self.content,
            "score": round(self.score, 4),
            "metadata": self.metadata,
        }


# Aliases: inside classes with a `list` method, `list[...]` would name the method, not the builtin.
Records = list[MemoryRecord]
Results = list[MemoryResult]
Keys = list[str]


@runtime_checkable
class MemoryService(Protocol):
    """Where memories live and how they are ranked. Input arrives validated by `Memory`."""

    async def put(self, namespace: MemoryNamespace, items: Sequence[MemoryItem]) -> None:
        """Store `items` (distinct keys) all or nothing; an existing key is replaced."""
        ...

    async def get(self, namespace: MemoryNamespace, key: str) -> MemoryRecord | None: ...

    async def delete(self, namespace: MemoryNamespace, keys: Sequence[str] | None) -> Keys:
        """Delete `keys` (all of the namespace when None); the keys that existed."""
        ...

    async def list(self, namespace: MemoryNamespace) -> Records:
        """Every memory of the namespace, ordered by key."""
        ...

    async def search(self, namespace: MemoryNamespace, query: str, limit: int) -> Results:
        """The `limit` memories most relevant to `query`, best first."""
        ...


# --- validation ----------------------------------------------------------------------------------


def _check_text(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise MemoryTypeError(name, f"must be a string, got {type(value).__name__}")
    if not value.strip():
        raise MemoryValidationError(name, "must not be empty or only whitespace")
    try:
        size = text_bytes(value, name)
    except InvalidInputError as exc:
        raise MemoryValidationError(name, str(exc).split(": ", 1)[-1]) from None
    if name == "key" and "\x00" in value:
        raise MemoryValidationError(name, "must not contain NUL (\\x00)")
    limit = max_state_bytes()
    if size > limit:
        raise_too_large(f"memory {name}", size, limit, "max_state_bytes", "AGNT5_MAX_STATE_BYTES")
    return value


def _check_metadata(metadata: object, key: str) -> dict[str, Any]:
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise MemoryTypeError("metadata", f"must be a dict or None, got {type(metadata).__name__}")
    try:
        ensure_json(metadata, f"metadata of memory {key!r}")
    except InputTooLargeError:
        raise
    except InvalidTypeError as exc:
        raise MemoryTypeError("metadata", str(exc)) from exc
    except InvalidInputError as exc:
        raise MemoryValidationError("metadata", str(exc)) from exc
    return dict(metadata)


def _check_limit(limit: object) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise MemoryTypeError("limit", f"must be an int, got {type(limit).__name__}")
    if limit < 0 or limit > MAX_COUNT:
        raise MemoryValidationError("limit", f"must be from 0 to 2**63-1, got {limit}")
    return limit


def _check_owner(value: object, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise MemoryTypeError(name, f"must be a string or None, got {type(value).__name__}")
    if not value:
        raise MemoryValidationError(name, "must not be empty; pass None for no " + name)
    try:
        check_name(value, name)
    except InvalidInputError as exc:
        raise MemoryValidationError(name, str(exc)) from None
    return value


def _item(key: object, content: object, metadata: object) -> MemoryItem:
    k = _check_text(key, "key")
    return MemoryItem(k, _check_text(content, "content"), _check_metadata(metadata, k))


# --- facade --------------------------------------------------------------------------------------


class Memory:
    """Long-term memory of one user of one app: `store`, `get`, `delete`, `list` and `search`.

    `service` defaults to a `VectorMemoryService` on the default store. `user_id` and `app_name`
    pick the namespace (None is a namespace of its own, not a wildcard). Storing under an existing
    key replaces that memory. Bad input raises `MemoryValidationError` (a ValueError; wrong types
    also a TypeError) and stores nothing.
    """

    def __init__(
        self,
        service: MemoryService | None = None,
        user_id: str | None = None,
        app_name: str | None = None,
    ) -> None:
        if service is None:
            from agnt5.memory_vector import VectorMemoryService

            service = VectorMemoryService()
        elif not isinstance(service, MemoryService):
            raise MemoryTypeError(
                "service",
                f"{type(service).__name__} is not a memory service; pass InMemoryMemoryService() or "
                "VectorMemoryService()",
            )
        self.service = service
        self.namespace = MemoryNamespace(_check_owner(app_name, "app_name"), _check_owner(user_id, "user_id"))

    @property
    def user_id(self) -> str | None:
        return self.namespace.user_id

    @property
    def app_name(self) -> str | None:
        return self.namespace.app_name

    def __repr__(self) -> str:
        return f"Memory(service={type(self.service).__name__}, user_id={self.user_id!r}, app_name={self.app_name!r})"

    def for_user(self, user_id: str | None) -> Memory:
        """The same service and app, scoped to another user (e.g. the user of the current session)."""
        return Memory(self.service, user_id=user_id, app_name=self.app_name)

    async def store(self, key: str, content: str, metadata: dict[str, Any] | None = None) -> None:
        """Remember `content` under `key` (replacing what was there), with optional JSON `metadata`."""
        await self.service.put(self.namespace, [_item(key, content, metadata)])

    async def store_many(
        self,
        items: Mapping[str, str] | Iterable[tuple[str, str] | tuple[str, str, dict[str, Any] | None]],
    ) -> None:
        """Store several memories in one go: `{key: content}` or `(key, content[, metadata])` tuples.

        All are validated before anything is stored, embedded in batches, and written in one
        transaction. A key given twice keeps its last value.
        """
        if not isinstance(items, Mapping) and (
            isinstance(items, str | bytes) or not isinstance(items, Iterable)
        ):
            raise MemoryTypeError("items", f"must be a dict or a list of tuples, got {type(items).__name__}")
        pairs: Iterable[Any] = items.items() if isinstance(items, Mapping) else items
        batch: dict[str, MemoryItem] = {}
        for i, entry in enumerate(pairs):
            if not isinstance(entry, tuple) or len(entry) not in (2, 3):
                raise MemoryTypeError(
                    f"items[{i}]", "must be a (key, content) or (key, content, metadata) tuple"
                )
            item = _item(entry[0], entry[1], entry[2] if len(entry) == 3 else None)
            batch.pop(item.key, None)
            batch[item.key] = item
        if batch:
            await self.service.put(self.namespace, list(batch.values()))

    async def get(self, key: str) -> MemoryRecord | None:
        """The memory stored under `key`, or None."""
        return await self.service.get(self.namespace, _check_text(key, "key"))

    async def delete(self, key: str) -> bool:
        """Forget `key`; True if it existed."""
        return bool(await self.service.delete(self.namespace, [_check_text(key, "key")]))

    async def clear(self) -> int:
        """Forget every memory of this namespace; how many there were."""
        return len(await self.service.delete(self.namespace, None))

    async def list(self) -> Records:
        """Every memory of this namespace, ordered by key."""
        return await self.service.list(self.namespace)

    async def search(self, query: str, limit: int = DEFAULT_SEARCH_LIMIT) -> Results:
        """The memories most relevant to `query`, best first (at most `limit`; 0 gives [])."""
        text = _check_text(query, "query")
        n = _check_limit(limit)
        if n == 0:
            return []
        results = await self.service.search(self.namespace, text, n)
        return [r for r in results if math.isfinite(r.score)][:n]


# --- agent tools ---------------------------------------------------------------------------------


def memory_tools(memory: Memory) -> list[Tool]:
    """The `remember(key, content)` and `recall(query, limit)` tools over `memory`, for an agent.

    The model decides what to keep and when to look it up. `recall` returns a JSON list of
    {key, content, score, metadata}; bad arguments come back to the model as tool errors.
    """

    async def remember(key: str, content: str) -> str:
        """Save a fact to long-term memory so it can be recalled in later conversations.

        Args:
            key: A short, stable name for the fact (e.g. "favourite_language"); reusing a key replaces the fact.
            content: The fact itself, in a full sentence.
        """
        await memory.store(key, content)
        return f"Remembered {key!r}."

    async def recall(
        query: str,
        limit: Annotated[int, Field(ge=1, le=MAX_RECALL_LIMIT)] = DEFAULT_SEARCH_LIMIT,
    ) -> list[dict[str, Any]]:
        """Search long-term memory for facts relevant to a question; best matches first.

        Args:
            query: What to look for, in natural language.
            limit: How many memories to return at most.
        """
        return [r.to_dict() for r in await memory.search(query, limit)]

    return [Tool.from_function(remember), Tool.from_function(recall)]


def memory_record(
    key: str, content: str, metadata: dict[str, Any], created: float, updated: float
) -> MemoryRecord:
    """A MemoryRecord from store timestamps (seconds since the epoch)."""
    return MemoryRecord(
        key, content, metadata, datetime.fromtimestamp(created, UTC), datetime.fromtimestamp(updated, UTC)
    )


__all__ = [
    "Memory",
    "MemoryItem",
    "MemoryNamespace",
    "MemoryRecord",
    "MemoryResult",
    "MemoryService",
    "memory_tools",
]
