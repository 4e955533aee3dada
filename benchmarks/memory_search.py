"""Memory search benchmark: VectorMemoryService beside a brute-force pure-Python cosine, in one run.

Run: python benchmarks/memory_search.py [--quick]
Stores 10,000 and 100,000 memories with random 256-dimension vectors (text-embedding-3-small with
dimensions=256) in a SQLite file, then times top-5 searches:

- baseline: pure Python over lists of floats, norms precomputed (its best case): one dot product
  per memory (`sum(map(mul, q, v))`), then `heapq.nlargest`.
- agnt5: `await Memory.search(query, limit=5)` end to end (version check, cosine over the cached
  numpy index, top-k, fetching the hits' rows), with the query's embedding already cached (the
  embedding endpoint is mocked with respx; its latency is the provider's, not agnt5's).
- first search: the same call on a fresh service, which loads the index from the database.

Prints a Markdown table; "ratio" is agnt5 time / baseline time (target: under 0.1 at 100,000).
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import math
import statistics
import sys
import tempfile
import time
from operator import mul
from pathlib import Path

import httpx
import numpy as np
import respx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agnt5 import Memory, VectorMemoryService
from agnt5.memory_vector import content_hash
from agnt5.store.base import MemoryWrite
from agnt5.store.sqlite import SqliteStore

DIM = 256
LIMIT = 5
QUERIES = 5
EMBEDDINGS_URL = "https://api.openai.com/v1/embeddings"
MODEL = "text-embedding-3-small"
FAKE_KEY = "sk-benchmark-not-a-real-key"  # the endpoint is mocked


def baseline_search(
    vectors: list[list[float]], norms: list[float], query: list[float], limit: int
) -> list[int]:
    """Brute-force cosine in pure Python: the reference the issue measures against."""
    qn = math.sqrt(sum(x * x for x in query)) or 1.0
    scores = [sum(map(mul, query, v)) / (n * qn) for v, n in zip(vectors, norms, strict=True)]
    return heapq.nlargest(limit, range(len(scores)), key=scores.__getitem__)


async def populate(store: SqliteStore, namespace: str, tag: str, matrix: np.ndarray) -> None:
    """Write the memories straight through the store (embedding 100,000 texts is not the point here)."""
    for start in range(0, len(matrix), 5_000):
        writes = [
            MemoryWrite(
                f"m{i}",
                f"memory {i}",
                {},
                content_hash(f"memory {i}"),
                tag,
                matrix[i].astype("<f4").tobytes(),
                DIM,
            )
            for i in range(start, min(start + 5_000, len(matrix)))
        ]
        await store.memory_put(namespace, writes)


async def bench(n: int, rounds: int, tmp: Path) -> dict[str, float]:
    rng = np.random.default_rng(n)
    matrix = rng.standard_normal((n, DIM), dtype=np.float32)
    queries = rng.standard_normal((QUERIES, DIM), dtype=np.float32)
    store = SqliteStore(str(tmp / f"memory-{n}.db"))
    service = VectorMemoryService(MODEL, store=store, dimensions=DIM, api_key=FAKE_KEY)
    memory = Memory(service, user_id="bench-user", app_name="bench")
    await populate(store, memory.namespace.key, service.model_tag, matrix)

    def embed(request: httpx.Request) -> httpx.Response:
        text = request.read().decode()
        q = queries[int(text.split("query ")[1].split('"')[0])]
        data = [{"object": "embedding", "index": 0, "embedding": q.tolist()}]
        usage = {"prompt_tokens": 2, "total_tokens": 2}
        return httpx.Response(200, json={"object": "list", "data": data, "model": "m", "usage": usage})

    with respx.mock:
        respx.post(EMBEDDINGS_URL).mock(side_effect=embed)
        for j in range(QUERIES):  # embed the queries once (cached from now on)
            await memory.search(f"query {j}", limit=LIMIT)
        fresh = VectorMemoryService(MODEL, store=store, dimensions=DIM, api_key=FAKE_KEY)
        fresh._queries.update(service._queries)  # same query vectors: only the index load is timed
        t = time.perf_counter()
        await Memory(fresh, user_id="bench-user", app_name="bench").search("query 0", limit=LIMIT)
        first_search = time.perf_counter() - t

        agnt5_times = []
        for _ in range(rounds):
            for j in range(QUERIES):
                t = time.perf_counter()
                hits = await memory.search(f"query {j}", limit=LIMIT)
                agnt5_times.append(time.perf_counter() - t)
                assert len(hits) == LIMIT

    vectors = matrix.astype(np.float64).tolist()
    norms = [math.sqrt(sum(x * x for x in v)) for v in vectors]
    base_times = []
    agree = 0
    for j in range(QUERIES):
        q = queries[j].astype(np.float64).tolist()
        t = time.perf_counter()
        top = baseline_search(vectors, norms, q, LIMIT)
        base_times.append(time.perf_counter() - t)
        ours = [int(h.key[1:]) for h in await memory.search(f"query {j}", limit=LIMIT)]
        agree += ours == top
    await store.close()
    return {
        "n": n,
        "baseline": statistics.median(base_times),
        "agnt5": statistics.median(agnt5_times),
        "first": first_search,
        "agree": agree,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1,000 and 10,000 memories, fewer rounds")
    args = parser.parse_args()
    sizes = (1_000, 10_000) if args.quick else (10_000, 100_000)
    rounds = 3 if args.quick else 20
    with tempfile.TemporaryDirectory() as tmp:
        rows = [await bench(n, rounds, Path(tmp)) for n in sizes]
    print(f"Top-{LIMIT} search, {DIM}-dimension float32 vectors, median of {QUERIES} queries")
    print()
    print(
        "| memories | pure-Python baseline | agnt5 search | ratio (agnt5 / baseline) | first search (loads index) |"
    )
    print("| ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(
            f"| {int(r['n']):,} | {r['baseline'] * 1000:.1f} ms | {r['agnt5'] * 1000:.2f} ms | "
            f"{r['agnt5'] / r['baseline']:.4f}x | {r['first'] * 1000:.0f} ms |"
        )
    print()
    print(
        f"Top-{LIMIT} results identical to the baseline: "
        + ", ".join(f"{int(r['agree'])}/{QUERIES}" for r in rows)
    )


if __name__ == "__main__":
    asyncio.run(main())
