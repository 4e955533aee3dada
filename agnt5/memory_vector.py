"""VectorMemoryService: memories embedded through litellm, kept in the agnt5 store, found by cosine.

Storing embeds the content (in batches, `litellm.aembedding`) and writes content, metadata and the
float32 vector in one transaction, in the same database as sessions; so every process sharing the
database sees the memories. Content whose hash and model match the stored row is never embedded
again. An embedding failure raises `EmbeddingError` before anything is written.

Search keeps, per namespace, a normalised float32 matrix in memory (numpy): one matrix-vector
product and a partial sort rank 100,000 memories in milliseconds. The cache is checked against
the namespace's version in the store on every search (one indexed lookup), updated in place by
this service's own writes, and reloaded when another writer moved the version.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import hashlib
import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from agnt5 import _litellm, tracing
from agnt5.config import default_store
from agnt5.errors import EmbeddingError, InvalidInputError, InvalidTypeError, ModelError, StoreError
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
from agnt5.store.base import MemoryRow, MemoryWrite, Store

DEFAULT_EMBEDDING_MODEL = "text-embedding-3-small"
EMBEDDING_MODEL_ENV = "AGNT5_EMBEDDING_MODEL"
DEFAULT_BATCH_SIZE = 256
"""Texts per embedding request (OpenAI accepts up to 2,048)."""

Vector = npt.NDArray[np.float32]
Matrix = npt.NDArray[np.float32]


def default_embedding_model() -> str:
    """`AGNT5_EMBEDDING_MODEL`, else text-embedding-3-small."""
    return os.environ.get(EMBEDDING_MODEL_ENV) or DEFAULT_EMBEDDING_MODEL


def content_hash(content: str) -> str:
    """sha256 of the content: equal hashes (and model) mean the stored vector is still right."""
    return hashlib.sha256(content.encode("utf-8")).hexdigest()


def _normalise(matrix: Matrix) -> Matrix:
    """Rows scaled to unit length (zero rows stay zero, scoring 0 against anything)."""
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    norms[norms == 0] = 1.0
    result: Matrix = (matrix / norms).astype(np.float32, copy=False)
    return result


class _Index:
    """The normalised vectors of one namespace at one store version, with O(1) replace and delete."""

    def __init__(self, version: int, dim: int, keys: list[str], raw: Matrix) -> None:
        self.version = version
        self.dim = dim
        self.keys = keys
        self.pos = {k: i for i, k in enumerate(keys)}
        self.n = len(keys)
        self._m: Matrix = np.empty((max(self.n, 16), dim), dtype=np.float32)
        rows = self._m[: self.n]
        rows[:] = raw  # normalised in place: no second full-size copy
        norms = np.linalg.norm(rows, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        rows /= norms

    def upsert(self, key: str, unit: Vector) -> None:
        i = self.pos.get(key)
        if i is None:
            if self.n == len(self._m):
                grown: Matrix = np.empty((2 * len(self._m), self.dim), dtype=np.float32)
                grown[: self.n] = self._m[: self.n]
                self._m = grown
            i = self.n
            self.keys.append(key)
            self.pos[key] = i
            self.n += 1
        self._m[i] = unit

    def remove(self, key: str) -> None:
        i = self.pos.pop(key, None)
        if i is None:
            return
        last = self.n - 1
        if i != last:  # move the last row into the hole
            self._m[i] = self._m[last]
            self.keys[i] = self.keys[last]
            self.pos[self.keys[i]] = i
        self.keys.pop()
        self.n = last

    def top(self, query: Vector, limit: int) -> list[tuple[str, float]]:
        """The `limit` best (key, cosine) pairs, best first."""
        if self.n == 0 or limit <= 0:
            return []
        scores = self._m[: self.n] @ query
        k = min(limit, self.n)
        best = np.argpartition(-scores, k - 1)[:k] if k < self.n else np.arange(self.n)
        best = best[np.argsort(-scores[best], kind="stable")]
        return [(self.keys[i], float(scores[i])) for i in best]


class VectorMemoryService:
    """Semantic memory: litellm embeddings, persisted float32 vectors, cosine similarity search.

    `embedding_model`: any litellm embedding model (default `AGNT5_EMBEDDING_MODEL`, else
    text-embedding-3-small). `store`: where memories live (default: the store sessions use).
    `dimensions` asks the model for shorter vectors (text-embedding-3-*). Further keyword arguments
    (api_key, api_base, ...) go to every `litellm.aembedding` call.

    Vectors are tagged with the model (and dimensions) that made them; memories embedded by
    another model are re-embedded on the next search of their namespace, so changing models
    never mixes incomparable vectors. A provider vector of the wrong size raises EmbeddingError.
    """

    def __init__(
        self,
        embedding_model: str | None = None,
        store: Store | None = None,
        *,
        dimensions: int | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_concurrency: int = 4,
        num_retries: int = 2,
        cached_namespaces: int = 64,
        **litellm_kwargs: Any,
    ) -> None:
        model = embedding_model or default_embedding_model()
        if not isinstance(model, str) or not model.strip():
            raise InvalidInputError("embedding_model must be a non-empty litellm model name")
        if dimensions is not None and (
            isinstance(dimensions, bool) or not isinstance(dimensions, int) or dimensions < 1
        ):
            raise InvalidInputError(f"dimensions must be a positive int or None, got {dimensions!r}")
        for name, value in (("batch_size", batch_size), ("max_concurrency", max_concurrency)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInputError(f"{name} must be a positive int, got {value!r}")
        if isinstance(num_retries, bool) or not isinstance(num_retries, int) or num_retries < 0:
            raise InvalidInputError(
                f"num_retries must be an int >= 0, got {num_retries!r}", field="num_retries"
            )
        if (
            isinstance(cached_namespaces, bool)
            or not isinstance(cached_namespaces, int)
            or cached_namespaces < 1
        ):
            raise InvalidInputError(
                f"cached_namespaces must be a positive int, got {cached_namespaces!r}",
                field="cached_namespaces",
            )
        # The memory methods, looked up on the class (an isinstance check against the Store protocol
        # would read every attribute of the instance).
        if store is not None and not all(
            callable(getattr(type(store), m, None)) for m in ("memory_get", "memory_put", "memory_vectors")
        ):
            raise InvalidTypeError(
                f"store must be an agnt5 Store (e.g. agnt5.store.open_store(url)) or None, got {type(store).__name__}",
                field="store",
            )
        self.embedding_model = model
        self.dimensions = dimensions
        self.batch_size = batch_size
        self.max_concurrency = max_concurrency
        self.num_retries = num_retries
        self.cached_namespaces = cached_namespaces
        self.litellm_kwargs: dict[str, Any] = dict(litellm_kwargs)
        self._store = store
        self._dim: int | None = dimensions
        self._dim_looked_up = dimensions is not None
        self._cache: collections.OrderedDict[str, _Index] = collections.OrderedDict()
        self._queries: collections.OrderedDict[str, Vector] = collections.OrderedDict()
        self._lock = threading.Lock()

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = default_store()
        return self._store

    @property
    def model_tag(self) -> str:
        """What stored vectors are tagged with: the model, plus `@dimensions` when set."""
        return (
            self.embedding_model if self.dimensions is None else f"{self.embedding_model}@{self.dimensions}"
        )

    def __repr__(self) -> str:
        return f"VectorMemoryService(embedding_model={self.embedding_model!r}, store={self._store!r})"

    # --- MemoryService -------------------------------------------------------------------------

    async def put(self, namespace: MemoryNamespace, items: Sequence[MemoryItem]) -> None:
        if not items:
            return
        ns = namespace.key
        tag = self.model_tag
        keys = [item.key for item in items]
        force: set[str] = set()
        for _ in range(3):
            existing = {row.key: row for row in await self.store.memory_get(ns, keys)}
            plan: list[tuple[MemoryItem, str, bool]] = []  # (item, content hash, needs an embedding)
            for item in items:
                digest = content_hash(item.content)
                fresh = item.key in force or not _reusable(existing.get(item.key), digest, tag)
                plan.append((item, digest, fresh))
            vectors = await self._embed(list(dict.fromkeys(item.content for item, _, fresh in plan if fresh)))
            writes: list[MemoryWrite] = []
            changed: dict[str, Vector] = {}
            for item, digest, fresh in plan:
                if not fresh:  # same content, same model: keep the stored vector
                    writes.append(
                        MemoryWrite(item.key, item.content, item.metadata, digest, tag, only_if_hash=digest)
                    )
                    continue
                vector = vectors[item.content]
                changed[item.key] = vector
                writes.append(
                    MemoryWrite(
                        item.key, item.content, item.metadata, digest, tag, _blob(vector), len(vector)
                    )
                )
            result = await self.store.memory_put(ns, writes)
            if not result.conflicts:
                self._apply(ns, result.version, changed, ())
                return
            force.update(result.conflicts)  # changed by another writer meanwhile: embed them anew
        raise StoreError(f"memories {keys!r} kept changing under concurrent writers; retry the store")

    async def get(self, namespace: MemoryNamespace, key: str) -> MemoryRecord | None:
        rows = await self.store.memory_get(namespace.key, [key])
        return _to_record(rows[0]) if rows else None

    async def delete(self, namespace: MemoryNamespace, keys: Sequence[str] | None) -> Keys:
        version, deleted = await self.store.memory_delete(namespace.key, keys)
        self._apply(namespace.key, version, {}, deleted)
        return deleted

    async def list(self, namespace: MemoryNamespace) -> Records:
        return [_to_record(row) for row in await self.store.memory_list(namespace.key)]

    async def search(self, namespace: MemoryNamespace, query: str, limit: int) -> Results:
        index = await self._index(namespace.key)
        if index.n == 0:
            return []  # nothing to rank: no embedding call
        unit = await self._query_vector(query)
        if unit.shape[0] != index.dim:
            raise EmbeddingError(
                f"the query embedding from {self.embedding_model} has {unit.shape[0]} dimensions but the "
                f"stored memories have {index.dim}; check the model and dimensions settings",
                model=self.embedding_model,
            )
        with self._lock:
            top = index.top(unit, limit)
        rows = {row.key: row for row in await self.store.memory_get(namespace.key, [k for k, _ in top])}
        return [
            MemoryResult(key, rows[key].content, score, rows[key].metadata)
            for key, score in top
            if key in rows
        ]

    # --- embeddings ----------------------------------------------------------------------------

    async def _embed(self, texts: Sequence[str]) -> dict[str, Vector]:
        """Distinct `texts` → raw float32 vectors, in batches of `batch_size`, a few at a time."""
        if not texts:
            return {}
        expected = self._expected_dim()
        gate = asyncio.Semaphore(self.max_concurrency)

        async def one(batch: Sequence[str]) -> Matrix:
            async with gate:
                return await self._embed_batch(batch, expected)

        batches = [texts[i : i + self.batch_size] for i in range(0, len(texts), self.batch_size)]
        matrices = await asyncio.gather(*(one(b) for b in batches))
        out: dict[str, Vector] = {}
        dim: int | None = None
        for batch, matrix in zip(batches, matrices, strict=True):
            if dim is not None and matrix.shape[1] != dim:
                raise self._shape_error(f"returned vectors of {dim} and of {matrix.shape[1]} dimensions")
            dim = matrix.shape[1]
            for text, row in zip(batch, matrix, strict=True):
                out[text] = row
        if self._dim is None:
            self._dim = dim
        return out

    async def _embed_batch(self, batch: Sequence[str], expected: int | None) -> Matrix:
        kwargs = dict(self.litellm_kwargs)
        if self.dimensions is not None:
            kwargs["dimensions"] = self.dimensions
        try:
            with tracing.embeddings_call(self.embedding_model, len(batch), self.dimensions, kwargs) as call:
                response = await _litellm.aembedding(
                    model=self.embedding_model, input=list(batch), num_retries=self.num_retries, **kwargs
                )
                call.embedded(response)
        except ModelError as exc:
            raise EmbeddingError(
                f"embedding {len(batch)} text(s) with {self.embedding_model} failed: {exc} "
                "Nothing was written; stored memories are unchanged.",
                model=self.embedding_model,
                cause=exc,
            ) from exc
        return self._parse(response, len(batch), expected)

    def _parse(self, response: Any, count: int, expected: int | None) -> Matrix:
        """The response's vectors in input order, checked: one per input, equal and expected size, finite."""
        data = response.get("data") if isinstance(response, Mapping) else getattr(response, "data", None)
        if not isinstance(data, list) or len(data) != count:
            got = len(data) if isinstance(data, list) else "no"
            raise self._shape_error(f"returned {got} vectors for {count} inputs")
        rows: list[Any] = [None] * count
        for position, entry in enumerate(data):
            index = _field(entry, "index", position)
            if not isinstance(index, int) or not 0 <= index < count or rows[index] is not None:
                raise self._shape_error(f"returned a vector with an invalid or repeated index {index!r}")
            rows[index] = _decode(_field(entry, "embedding", None))
        sizes = {len(r) if isinstance(r, list | np.ndarray) else -1 for r in rows}
        if -1 in sizes:
            raise self._shape_error("returned an embedding that is not a list of numbers")
        if len(sizes) != 1:
            raise self._shape_error(f"returned vectors of different sizes {sorted(sizes)}")
        size = sizes.pop()
        if size == 0 or (expected is not None and size != expected):
            raise self._shape_error(f"returned vectors of {size} dimensions, expected {expected}")
        try:
            with np.errstate(over="ignore"):  # too large for float32 becomes inf, refused below
                matrix: Matrix = np.asarray(rows, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise self._shape_error(f"returned an embedding that is not a list of numbers ({exc})") from exc
        if not np.isfinite(matrix).all():
            raise self._shape_error("returned a vector containing NaN or infinity")
        return matrix

    def _shape_error(self, problem: str) -> EmbeddingError:
        return EmbeddingError(
            f"the embedding model {self.embedding_model} {problem}. Nothing was written; stored memories are "
            "unchanged. Check the embedding_model and dimensions settings of VectorMemoryService.",
            model=self.embedding_model,
        )

    def _expected_dim(self) -> int | None:
        """The vector size to insist on: `dimensions`, else what the model made before, else litellm's model info."""
        if self._dim is None and not self._dim_looked_up:
            self._dim_looked_up = True
            try:
                info = _litellm.get_litellm().get_model_info(self.embedding_model)
                size = info.get("output_vector_size")
                self._dim = size if isinstance(size, int) and size > 0 else None
            except Exception:  # unmapped model: learn the size from its first response
                self._dim = None
        return self._dim

    async def _query_vector(self, query: str) -> Vector:
        with self._lock:
            cached = self._queries.get(query)
            if cached is not None:
                self._queries.move_to_end(query)
                return cached
        raw = (await self._embed([query]))[query]
        unit: Vector = _normalise(raw.reshape(1, -1))[0]
        with self._lock:
            self._queries[query] = unit
            while len(self._queries) > 256:
                self._queries.popitem(last=False)
        return unit

    # --- the per-namespace index -----------------------------------------------------------------

    async def _index(self, ns: str) -> _Index:
        """The namespace's index at the store's current version (cached, reloaded when stale)."""
        version = await self.store.memory_version(ns)
        with self._lock:
            cached = self._cache.get(ns)
            if cached is not None and cached.version == version:
                self._cache.move_to_end(ns)
                return cached
        return await self._load(ns)

    async def _load(self, ns: str) -> _Index:
        tag = self.model_tag
        for _ in range(3):
            snap = await self.store.memory_vectors(ns)
            expected = self._expected_dim() if snap.keys else self._dim
            if expected is None:  # unknown model size: the most common stored size of this model
                sizes = collections.Counter(
                    d for m, d in zip(snap.models, snap.dims, strict=True) if m == tag
                )
                expected = sizes.most_common(1)[0][0] if sizes else None
            keep: list[int] = []
            stale: list[str] = []
            for i, (model, dim, blob) in enumerate(zip(snap.models, snap.dims, snap.vectors, strict=True)):
                if (
                    model == tag
                    and blob is not None
                    and dim is not None
                    and dim == expected
                    and len(blob) == 4 * dim
                ):
                    keep.append(i)
                else:
                    stale.append(snap.keys[i])
            if stale:
                await self._reembed(ns, stale)
                continue
            dim = expected or self.dimensions or 1
            raw = np.frombuffer(b"".join(snap.vectors[i] or b"" for i in keep), dtype="<f4").reshape(-1, dim)
            index = _Index(snap.version, dim, [snap.keys[i] for i in keep], raw)
            with self._lock:
                current = self._cache.get(ns)
                if current is None or current.version <= index.version:
                    self._cache[ns] = index
                    self._cache.move_to_end(ns)
                    while len(self._cache) > self.cached_namespaces:
                        self._cache.popitem(last=False)
            return index
        raise StoreError(f"memories of namespace {ns} kept changing while re-embedding; retry the search")

    async def _reembed(self, ns: str, keys: Sequence[str]) -> None:
        """Embed again the memories made by another model (or of the wrong size), guarded by their hash."""
        tag = self.model_tag
        rows = await self.store.memory_get(ns, keys)
        vectors = await self._embed(list(dict.fromkeys(row.content for row in rows)))
        writes = [
            MemoryWrite(
                row.key,
                row.content,
                row.metadata,
                content_hash(row.content),
                tag,
                _blob(vectors[row.content]),
                len(vectors[row.content]),
                only_if_hash=row.content_hash,
            )
            for row in rows
        ]
        await self.store.memory_put(ns, writes)  # a conflict means another writer re-did it: reload anyway

    def _apply(self, ns: str, version: int, changed: Mapping[str, Vector], removed: Sequence[str]) -> None:
        """Bring a cached index along with this service's own write, or drop it if others wrote too."""
        with self._lock:
            index = self._cache.get(ns)
            if index is None or index.version == version:
                return
            if index.version != version - 1 or any(len(v) != index.dim for v in changed.values()):
                del self._cache[ns]
                return
            if changed:
                units = _normalise(np.stack(list(changed.values())))
                for key, unit in zip(changed, units, strict=True):
                    index.upsert(key, unit)
            for key in removed:
                index.remove(key)
            index.version = version


def _reusable(row: MemoryRow | None, digest: str, tag: str) -> bool:
    return row is not None and row.content_hash == digest and row.model == tag


def _blob(vector: Vector) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


def _field(entry: Any, name: str, default: Any) -> Any:
    if isinstance(entry, Mapping):
        return entry.get(name, default)
    return getattr(entry, name, default)


def _decode(embedding: Any) -> Any:
    """A list of floats as given, or a base64 float32 string (encoding_format="base64") decoded."""
    if isinstance(embedding, str):
        try:
            return np.frombuffer(base64.b64decode(embedding), dtype="<f4")
        except ValueError:
            return None
    return embedding if isinstance(embedding, list) else None  # non-numbers: np.asarray reports them


def _to_record(row: MemoryRow) -> MemoryRecord:
    return memory_record(row.key, row.content, row.metadata, row.created_at, row.updated_at)


__all__ = ["DEFAULT_EMBEDDING_MODEL", "EMBEDDING_MODEL_ENV", "VectorMemoryService", "content_hash"]
