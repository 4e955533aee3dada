"""InMemoryMemoryService: memories in a dict, ranked by keyword overlap. No model, no database.

For tests, demos and small single-process apps. Nothing is persisted: the memories live as long
as the service object, shared by every `Memory` built on it.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from agnt5.memory import (
    Keys,
    MemoryItem,
    MemoryNamespace,
    MemoryRecord,
    MemoryResult,
    Records,
    Results,
    memory_record,
)

_WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    """Lower-cased word tokens of `text` (Unicode letters, digits and underscores)."""
    return _WORD.findall(text.lower())


@dataclass(frozen=True, slots=True)
class _Entry:
    item: MemoryItem
    words: frozenset[str]
    created_at: float
    updated_at: float


class InMemoryMemoryService:
    """Keyword search over process-local memories.

    Score: the fraction of the query's distinct words found in the memory's key or content (0..1);
    memories matching none are not returned. Ties go to the memory with more occurrences of the
    query words, then to the most recently updated.
    """

    def __init__(self) -> None:
        self._data: dict[str, dict[str, _Entry]] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return "InMemoryMemoryService()"

    async def put(self, namespace: MemoryNamespace, items: Sequence[MemoryItem]) -> None:
        now = time.time()
        with self._lock:
            space = self._data.setdefault(namespace.key, {})
            for item in items:
                old = space.get(item.key)
                indexed = frozenset(words(item.key.replace("_", " ")) + words(item.content))
                space[item.key] = _Entry(item, indexed, now if old is None else old.created_at, now)

    async def get(self, namespace: MemoryNamespace, key: str) -> MemoryRecord | None:
        entry = self._data.get(namespace.key, {}).get(key)
        return None if entry is None else _to_record(entry)

    async def delete(self, namespace: MemoryNamespace, keys: Sequence[str] | None) -> Keys:
        with self._lock:
            space = self._data.get(namespace.key, {})
            targets = sorted(space) if keys is None else [k for k in dict.fromkeys(keys) if k in space]
            for key in targets:
                del space[key]
        return sorted(targets)

    async def list(self, namespace: MemoryNamespace) -> Records:
        space = self._data.get(namespace.key, {})
        return [_to_record(space[k]) for k in sorted(space)]

    async def search(self, namespace: MemoryNamespace, query: str, limit: int) -> Results:
        terms = set(words(query))
        if not terms:
            return []
        ranked: list[tuple[float, int, float, _Entry]] = []
        for entry in list(self._data.get(namespace.key, {}).values()):
            matched = terms & entry.words
            if not matched:
                continue
            text = words(entry.item.content)
            hits = sum(1 for w in text if w in matched)
            ranked.append((len(matched) / len(terms), hits, entry.updated_at, entry))
        ranked.sort(key=lambda r: (r[0], r[1], r[2]), reverse=True)
        return [
            MemoryResult(e.item.key, e.item.content, score, dict(e.item.metadata))
            for score, _, _, e in ranked[:limit]
        ]


def _to_record(entry: _Entry) -> MemoryRecord:
    item = entry.item
    return memory_record(item.key, item.content, dict(item.metadata), entry.created_at, entry.updated_at)


__all__ = ["InMemoryMemoryService"]
