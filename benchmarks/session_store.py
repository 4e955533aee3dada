"""Session store benchmark: agnt5's embedded store beside a raw aiosqlite baseline, in one run.

Run: python benchmarks/session_store.py [--quick]
Prints a Markdown table; ratios are agnt5 throughput / baseline throughput (higher is better),
so machine noise cancels out. Targets (issue 2): append >= 1.0x, state updates >= 0.8x,
read-last-50 >= 1.0x and flat from 10k to 100k (within 1.5x), concurrent appends 0 lost, 0 errors.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiosqlite

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agnt5 import Session  # noqa: E402
from agnt5.store.sqlite import SqliteStore  # noqa: E402

READ_REPEATS = 300


async def best_of(rounds: int, fn: Callable[[], Awaitable[float]]) -> float:
    """Median of several rounds of a timed function (each returns seconds)."""
    return statistics.median([await fn() for _ in range(rounds)])


# --- raw aiosqlite baseline -------------------------------------------------------------------------


BASELINE_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    session_id TEXT NOT NULL, seq INTEGER NOT NULL, created_at REAL NOT NULL,
    role TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (session_id, seq));
CREATE TABLE IF NOT EXISTS state (
    owner TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (owner, key));
"""


async def baseline_connect(path: str) -> aiosqlite.Connection:
    db = await aiosqlite.connect(path)
    await db.execute("PRAGMA journal_mode = WAL")
    await db.execute("PRAGMA synchronous = NORMAL")  # same durability setting as agnt5's store
    await db.executescript(BASELINE_SCHEMA)
    await db.commit()
    return db


def body(i: int) -> str:
    return json.dumps({"role": "user", "content": f"message number {i}: hello there, how are you today?"})


async def baseline_append(db: aiosqlite.Connection, session_id: str, n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        await db.execute(
            "INSERT INTO messages (session_id, seq, created_at, role, body) VALUES (?, ?, ?, ?, ?)",
            (session_id, i + 1, time.time(), "user", body(i)),
        )
        await db.commit()
    return time.perf_counter() - start


async def baseline_fill(db: aiosqlite.Connection, session_id: str, n: int) -> None:
    await db.executemany(
        "INSERT INTO messages (session_id, seq, created_at, role, body) VALUES (?, ?, ?, ?, ?)",
        [(session_id, i + 1, time.time(), "user", body(i)) for i in range(n)],
    )
    await db.commit()


async def baseline_read_last(db: aiosqlite.Connection, session_id: str, repeats: int) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        cur = await db.execute(
            "SELECT seq, created_at, role, body FROM messages WHERE session_id = ? ORDER BY seq DESC LIMIT 50",
            (session_id,),
        )
        rows = await cur.fetchall()
        rows = list(reversed(rows))
        [json.loads(r[3]) for r in rows]
    return time.perf_counter() - start


async def baseline_state(db: aiosqlite.Connection, n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        await db.execute(
            "INSERT INTO state (owner, key, value) VALUES (?, ?, ?) "
            "ON CONFLICT (owner, key) DO UPDATE SET value = excluded.value",
            ("s1", f"k{i % 50}", json.dumps(i)),
        )
        await db.commit()
    return time.perf_counter() - start


async def baseline_concurrent(db: aiosqlite.Connection, tasks: int, per_task: int) -> float:
    lock = asyncio.Lock()  # one connection: transactions must not interleave
    counter = {"seq": 0}

    async def worker(w: int) -> None:
        for i in range(per_task):
            async with lock:
                counter["seq"] += 1
                await db.execute(
                    "INSERT INTO messages (session_id, seq, created_at, role, body) VALUES (?, ?, ?, ?, ?)",
                    ("conc", counter["seq"], time.time(), "user", body(i)),
                )
                await db.commit()

    start = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(tasks)))
    return time.perf_counter() - start


# --- agnt5 --------------------------------------------------------------------------------------------


def message(i: int) -> dict[str, str]:
    return {"role": "user", "content": f"message number {i}: hello there, how are you today?"}


async def agnt5_append(store: SqliteStore, n: int) -> float:
    session = Session(f"append-{uuid.uuid4().hex}", store=store)
    start = time.perf_counter()
    for i in range(n):
        await session.send_message(message(i))
    return time.perf_counter() - start


async def agnt5_fill(store: SqliteStore, session_id: str, n: int) -> Session:
    session = Session(session_id, store=store)
    for start in range(0, n, 5000):
        await session.send_messages([message(i) for i in range(start, min(n, start + 5000))])
    return session


async def agnt5_read_last(session: Session, repeats: int) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        await session.history(limit=50)
    return time.perf_counter() - start


async def agnt5_state(store: SqliteStore, n: int) -> float:
    session = Session(f"state-{uuid.uuid4().hex}", store=store)
    session.set_state("warm", 0)
    start = time.perf_counter()
    for i in range(n):
        session.set_state(f"k{i % 50}", i)
    return time.perf_counter() - start


async def agnt5_concurrent(store: SqliteStore, tasks: int, per_task: int) -> tuple[float, int, int, bool]:
    session_id = f"conc-{uuid.uuid4().hex}"
    errors = 0

    async def worker(w: int) -> None:
        nonlocal errors
        session = Session(session_id, store=store)  # a separate object per task
        for i in range(per_task):
            try:
                await session.send_message(message(w * per_task + i))
            except Exception:
                errors += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(tasks)))
    elapsed = time.perf_counter() - start
    stored = await Session(session_id, store=store).history()
    seqs = [m.seq for m in stored]
    gap_free = seqs == list(range(1, len(seqs) + 1))
    return elapsed, tasks * per_task - len(stored), errors, gap_free


# --- run ----------------------------------------------------------------------------------------------


async def run(quick: bool) -> list[tuple[str, str, str, str, str]]:
    appends = 500 if quick else 2000
    big = 20_000 if quick else 100_000
    rounds = 1 if quick else 3
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        base = await baseline_connect(os.path.join(tmp, "baseline.db"))
        store = SqliteStore(os.path.join(tmp, "agnt5.db"))
        await Session("warmup", store=store).send_message(message(0))

        # appends, interleaved rounds so both see the same machine state
        b_times, a_times = [], []
        for r in range(rounds):
            b_times.append(await baseline_append(base, f"append-{r}", appends))
            a_times.append(await agnt5_append(store, appends))
        b, a = statistics.median(b_times), statistics.median(a_times)
        rows.append((f"append {appends:,} messages (1 awaited call each)", f"{appends / b:,.0f}/s",
                     f"{appends / a:,.0f}/s", f"{b / a:.2f}x", ">= 1.0x"))

        # read last 50
        read = {}
        for n in (10_000, big):
            await baseline_fill(base, f"read-{n}", n)
            session = await agnt5_fill(store, f"read-{n}", n)
            await session.history(limit=50)
            b = await best_of(rounds, lambda n=n: baseline_read_last(base, f"read-{n}", READ_REPEATS))
            a = await best_of(rounds, lambda session=session: agnt5_read_last(session, READ_REPEATS))
            read[n] = a
            rows.append((f"read last 50 of {n:,}", f"{READ_REPEATS / b:,.0f}/s", f"{READ_REPEATS / a:,.0f}/s",
                         f"{b / a:.2f}x", ">= 1.0x"))
        rows.append((f"read-last-50 cost, {big:,} vs 10,000", "", f"{read[big] / read[10_000]:.2f}x", "",
                     "<= 1.5x"))

        # state updates
        b_times, a_times = [], []
        for _ in range(rounds):
            b_times.append(await baseline_state(base, appends))
            a_times.append(await agnt5_state(store, appends))
        b, a = statistics.median(b_times), statistics.median(a_times)
        rows.append((f"{appends:,} state updates (set_state, durable)", f"{appends / b:,.0f}/s",
                     f"{appends / a:,.0f}/s", f"{b / a:.2f}x", ">= 0.8x"))

        # concurrent appends through separate Session objects
        b = await baseline_concurrent(base, 20, 100)
        a, lost, errors, gap_free = await agnt5_concurrent(store, 20, 100)
        rows.append(("20 tasks x 100 appends, 20 Session objects", f"{2000 / b:,.0f}/s", f"{2000 / a:,.0f}/s",
                     f"{b / a:.2f}x", "0 lost, 0 errors"))
        rows.append(("  lost / errors / seq gap-free", "", f"{lost} / {errors} / {gap_free}", "", ""))

        await base.close()
        await store.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    args = parser.parse_args()
    rows = asyncio.run(run(args.quick))
    header = ("operation", "raw aiosqlite", "agnt5", "agnt5 / raw", "target")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
