"""Memory search benchmark: VectorMemoryService beside two brute-force baselines, in one run.

Run: python benchmarks/memory_search.py [--quick] [--rounds N]
Stores 10,000 and 100,000 memories with random 256-dimension vectors (text-embedding-3-small with
dimensions=256) in a SQLite file, then times top-5 searches:

- numpy baseline: the matrix already in memory as float32 with norms precomputed (its best case):
  one matrix-vector product, divided by the norms, then `argpartition` and a sort of the top 5.
  This is what a user would write by hand with numpy; agnt5 does the same arithmetic plus a
  version check against the store and fetching the hits' rows.
- pure-Python baseline: lists of floats, norms precomputed: one dot product per memory
  (`sum(map(mul, q, v))`), then `heapq.nlargest` (the issue's reference).
- agnt5: `await Memory.search(query, limit=5)` end to end (version check, cosine over the cached
  numpy index, top-k, fetching the hits' rows), with the query's embedding already cached (the
  embedding endpoint is mocked with respx; its latency is the provider's, not agnt5's).
- first search: the same call on a fresh service, which loads the index from the database.

All three are sampled alike: an untimed warm-up search of each per query, then `rounds` rounds
of every query, the three back to back for each (the order rotating); times are medians of the
samples and each ratio is the median of the per-sample ratios (agnt5 time / baseline time of the
same query in the same round). Target (issue 6): under 0.1x the pure-Python baseline at 100,000.
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


def numpy_search(matrix: np.ndarray, norms: np.ndarray, query: np.ndarray, limit: int) -> list[int]:
    """Brute-force cosine with plain numpy: one matrix-vector product, then a partial sort."""
    scores = (matrix @ query) / (norms * (float(np.linalg.norm(query)) or 1.0))
    top = np.argpartition(-scores, limit)[:limit]
    return [int(i) for i in top[np.argsort(-scores[top], kind="stable")]]


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

        vectors = matrix.astype(np.float64).tolist()
        py_norms = [math.sqrt(sum(x * x for x in v)) for v in vectors]
        np_norms = np.linalg.norm(matrix, axis=1)
        query_lists = [q.astype(np.float64).tolist() for q in queries]

        async def agnt5_one(j: int) -> list[int]:
            hits = await memory.search(f"query {j}", limit=LIMIT)
            return [int(h.key[1:]) for h in hits]

        async def numpy_one(j: int) -> list[int]:
            return numpy_search(matrix, np_norms, queries[j], LIMIT)

        async def python_one(j: int) -> list[int]:
            return baseline_search(vectors, py_norms, query_lists[j], LIMIT)

        sides = {"agnt5": agnt5_one, "numpy": numpy_one, "python": python_one}
        times: dict[str, list[float]] = {name: [] for name in sides}
        agree = {"numpy": 0, "python": 0}
        for j in range(QUERIES):  # warm-up, untimed; and do the three agree on the top 5?
            ours = await agnt5_one(j)
            for name in agree:
                agree[name] += ours == await sides[name](j)
        names = list(sides)
        for r in range(rounds):
            for j in range(QUERIES):
                k = (r * QUERIES + j) % len(names)
                for name in names[k:] + names[:k]:
                    t = time.perf_counter()
                    top = await sides[name](j)
                    times[name].append(time.perf_counter() - t)
                    assert len(top) == LIMIT

    await store.close()

    def ratio(baseline: str) -> float:
        return statistics.median(a / b for a, b in zip(times["agnt5"], times[baseline], strict=True))

    return {
        "n": n,
        "samples": len(times["agnt5"]),
        "numpy": statistics.median(times["numpy"]),
        "python": statistics.median(times["python"]),
        "agnt5": statistics.median(times["agnt5"]),
        "vs_numpy": ratio("numpy"),
        "vs_python": ratio("python"),
        "first": first_search,
        "agree_numpy": agree["numpy"],
        "agree_python": agree["python"],
    }


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="1,000 and 10,000 memories, 2 rounds")
    parser.add_argument("--rounds", type=int, help="rounds of every query (default 5; --quick: 2)")
    args = parser.parse_args()
    sizes = (1_000, 10_000) if args.quick else (10_000, 100_000)
    rounds = args.rounds or (2 if args.quick else 5)
    with tempfile.TemporaryDirectory() as tmp:
        rows = [await bench(n, rounds, Path(tmp)) for n in sizes]
    print(
        f"Top-{LIMIT} search, {DIM}-dimension float32 vectors; medians of {rows[0]['samples']} samples "
        f"per column ({QUERIES} queries x {rounds} rounds, after a warm-up); ratios are medians of "
        "per-sample ratios"
    )
    print()
    print(
        "| memories | numpy baseline | pure-Python baseline | agnt5 search | agnt5 / numpy "
        "| agnt5 / pure Python | first search (loads index) |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(
            f"| {int(r['n']):,} | {r['numpy'] * 1000:.2f} ms | {r['python'] * 1000:.1f} ms | "
            f"{r['agnt5'] * 1000:.2f} ms | {r['vs_numpy']:.2f}x | {r['vs_python']:.4f}x | "
            f"{r['first'] * 1000:.0f} ms |"
        )
    print()
    print(
        f"Top-{LIMIT} results identical to numpy / pure Python: "
        + ", ".join(f"{int(r['agree_numpy'])}/{QUERIES} / {int(r['agree_python'])}/{QUERIES}" for r in rows)
    )


if __name__ == "__main__":
    asyncio.run(main())
