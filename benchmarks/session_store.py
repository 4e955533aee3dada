"""Session store benchmark: agnt5's embedded store beside a raw aiosqlite baseline, in one run;
and, given a PostgreSQL server, agnt5's PostgresStore beside a raw asyncpg baseline.

Run: python benchmarks/session_store.py [--quick] [--postgres URL | --only postgres]
     scripts/with_postgres.sh .venv/bin/python benchmarks/session_store.py   # with a throw-away server
Prints Markdown tables; ratios are agnt5 throughput / baseline throughput (higher is better),
so machine noise cancels out. Targets (issue 2): append >= 1.0x, state updates >= 0.8x,
read-last-50 >= 1.0x and flat from 10k to 100k (within 1.5x), concurrent appends 0 lost, 0 errors.
PostgreSQL (issue 7; the URL from --postgres or AGNT5_TEST_POSTGRES_URL): every operation >= 0.5x
the raw asyncpg baseline, 4 processes appending to one session lose nothing.
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
from typing import Any

import aiosqlite

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agnt5 import Session
from agnt5.store.sqlite import SqliteStore

READ_REPEATS = 300


def throughput_row(
    label: str, operations: int, base_s: float, agnt5_s: float, target: str
) -> tuple[str, str, str, str, str]:
    """A table row: operations per second of the baseline and of agnt5, and their ratio."""
    return (
        label,
        f"{operations / base_s:,.0f}/s",
        f"{operations / agnt5_s:,.0f}/s",
        f"{base_s / agnt5_s:.2f}x",
        target,
    )


async def paired(
    rounds: int, baseline: Callable[[], Awaitable[float]], agnt5: Callable[[], Awaitable[float]]
) -> tuple[float, float]:
    """Medians of `rounds` alternating rounds of two timed functions (each returns seconds), so
    both see the same machine state."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(rounds):
        times[0].append(await baseline())
        times[1].append(await agnt5())
    return statistics.median(times[0]), statistics.median(times[1])


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


async def agnt5_append(store: SqliteStore, session_id: str, n: int) -> float:
    session = Session(session_id, store=store)
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

        # appends, interleaved rounds so both see the same machine state; session ids alike
        base_ids, agnt5_ids = iter(range(rounds)), iter(range(rounds))
        b, a = await paired(
            rounds,
            lambda: baseline_append(base, f"append-{next(base_ids)}", appends),
            lambda: agnt5_append(store, f"append-{next(agnt5_ids)}", appends),
        )
        rows.append(
            throughput_row(f"append {appends:,} messages (1 awaited call each)", appends, b, a, ">= 1.0x")
        )

        # read last 50
        read = {}
        for n in (10_000, big):
            await baseline_fill(base, f"read-{n}", n)
            session = await agnt5_fill(store, f"read-{n}", n)
            await session.history(limit=50)
            b, a = await paired(
                rounds,
                lambda n=n: baseline_read_last(base, f"read-{n}", READ_REPEATS),
                lambda session=session: agnt5_read_last(session, READ_REPEATS),
            )
            read[n] = a
            rows.append(throughput_row(f"read last 50 of {n:,}", READ_REPEATS, b, a, ">= 1.0x"))
        rows.append(
            (f"read-last-50 cost, {big:,} vs 10,000", "", f"{read[big] / read[10_000]:.2f}x", "", "<= 1.5x")
        )

        # state updates
        b, a = await paired(
            rounds, lambda: baseline_state(base, appends), lambda: agnt5_state(store, appends)
        )
        rows.append(
            throughput_row(f"{appends:,} state updates (set_state, durable)", appends, b, a, ">= 0.8x")
        )

        # concurrent appends through separate Session objects
        b = await baseline_concurrent(base, 20, 100)
        a, lost, errors, gap_free = await agnt5_concurrent(store, 20, 100)
        rows.append(
            throughput_row("20 tasks x 100 appends, 20 Session objects", 2000, b, a, "0 lost, 0 errors")
        )
        rows.append(("  lost / errors / seq gap-free", "", f"{lost} / {errors} / {gap_free}", "", ""))

        await base.close()
        await store.close()
    return rows


# --- PostgreSQL: raw asyncpg baseline and agnt5's PostgresStore ------------------------------------
# Run through scripts/with_postgres.sh (or with AGNT5_TEST_POSTGRES_URL / --postgres URL set); each
# run works in a schema of its own and drops it. Target (issue 7): agnt5 >= 0.5x raw asyncpg.

PG_SCHEMA_SQL = """
CREATE TABLE messages (
    session_id TEXT NOT NULL, seq BIGINT NOT NULL, created_at DOUBLE PRECISION NOT NULL,
    role TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (session_id, seq));
CREATE TABLE counters (session_id TEXT PRIMARY KEY, n BIGINT NOT NULL);
CREATE TABLE state (owner TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (owner, key));
"""
# Gap-free seqs by hand, as cheaply as asyncpg allows: one autocommitted statement per append
# that bumps the session's counter row (row lock) and inserts the message.
PG_RAW_APPEND = """
WITH c AS (UPDATE counters SET n = n + 1 WHERE session_id = $1 RETURNING n)
INSERT INTO messages (session_id, seq, created_at, role, body) SELECT $1, c.n, $2, 'user', $3 FROM c
"""


def pg_url_with_schema(url: str, schema: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}schema={schema}"


async def pg_raw_connect(url: str, schema: str) -> Any:
    import asyncpg

    from agnt5.store.postgres import split_url

    dsn, _ = split_url(url)
    return await asyncpg.connect(dsn, server_settings={"search_path": schema})


async def pg_raw_append(conn: Any, session_id: str, n: int) -> float:
    await conn.execute("INSERT INTO counters VALUES ($1, 0) ON CONFLICT DO NOTHING", session_id)
    start = time.perf_counter()
    for i in range(n):
        await conn.execute(PG_RAW_APPEND, session_id, time.time(), body(i))
    return time.perf_counter() - start


async def pg_raw_fill(conn: Any, session_id: str, n: int) -> None:
    await conn.copy_records_to_table(
        "messages",
        records=[(session_id, i + 1, time.time(), "user", body(i)) for i in range(n)],
        columns=["session_id", "seq", "created_at", "role", "body"],
    )


async def pg_raw_read_last(conn: Any, session_id: str, repeats: int) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        rows = await conn.fetch(
            "SELECT seq, created_at, role, body FROM messages WHERE session_id = $1 ORDER BY seq DESC LIMIT 50",
            session_id,
        )
        [json.loads(r[3]) for r in reversed(rows)]
    return time.perf_counter() - start


async def pg_raw_state(conn: Any, n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        await conn.execute(
            "INSERT INTO state (owner, key, value) VALUES ($1, $2, $3) "
            "ON CONFLICT (owner, key) DO UPDATE SET value = excluded.value",
            "s1",
            f"k{i % 50}",
            json.dumps(i),
        )
    return time.perf_counter() - start


async def pg_agnt5_state(store: Any, n: int) -> float:
    """set_state is cached on a network store; `flush()` after each makes every update durable."""
    session = Session(f"state-{uuid.uuid4().hex}", store=store)
    session.set_state("warm", 0)
    await session.flush()
    start = time.perf_counter()
    for i in range(n):
        session.set_state(f"k{i % 50}", i)
        await session.flush()
    return time.perf_counter() - start


def _pg_worker(
    kind: str, url: str, schema: str, session_id: str, worker: int, n: int, ready: Any, go: Any, out: Any
) -> None:
    """One of the concurrent appenders (its own process, connection and event loop)."""

    async def main() -> tuple[float, float]:
        if kind == "raw":
            conn = await pg_raw_connect(url, schema)
            warm = f"warm-{worker}"  # prepare the statement before the clock starts
            await conn.execute("INSERT INTO counters VALUES ($1, 0) ON CONFLICT DO NOTHING", warm)
            await conn.execute(PG_RAW_APPEND, warm, time.time(), body(0))
            ready.set()
            go.wait()
            start = time.perf_counter()
            for i in range(n):
                await conn.execute(PG_RAW_APPEND, session_id, time.time(), body(worker * n + i))
            end = time.perf_counter()
            await conn.close()
        else:
            from agnt5.store.postgres import PostgresStore

            store = PostgresStore(pg_url_with_schema(url, schema))
            session = Session(session_id, store=store)
            await session.exists()  # connect, and load the tokenizer, before the clock starts
            await Session(f"warm-{worker}", store=store).send_message(message(0))
            ready.set()
            go.wait()
            start = time.perf_counter()
            for i in range(n):
                await session.send_message(message(worker * n + i))
            end = time.perf_counter()
            await store.close()
        return start, end

    out.put(asyncio.run(main()))


def pg_processes(kind: str, url: str, schema: str, session_id: str, processes: int, per: int) -> float:
    """Wall time of `processes` processes appending `per` messages each to one session."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    ready = [ctx.Event() for _ in range(processes)]
    go, out = ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(target=_pg_worker, args=(kind, url, schema, session_id, w, per, ready[w], go, out))
        for w in range(processes)
    ]
    for p in procs:
        p.start()
    for r in ready:
        if not r.wait(120):
            raise RuntimeError("a benchmark process did not start")
    go.set()
    spans = [out.get(timeout=600) for _ in procs]
    for p in procs:
        p.join(60)
    return max(end for _, end in spans) - min(start for start, _ in spans)


async def run_postgres(url: str, quick: bool) -> list[tuple[str, str, str, str, str]]:
    from agnt5.store.postgres import PostgresStore

    appends = 500 if quick else 2000
    big = 20_000 if quick else 100_000
    rounds = 1 if quick else 3
    processes, per = (4, 100) if quick else (4, 250)
    tag = uuid.uuid4().hex[:8]
    raw_schema, agnt5_schema = f"bench_raw_{tag}", f"bench_agnt5_{tag}"
    admin = await pg_raw_connect(url, "public")
    await admin.execute(f"CREATE SCHEMA {raw_schema}")
    raw = await pg_raw_connect(url, raw_schema)
    await raw.execute(PG_SCHEMA_SQL)
    store = PostgresStore(pg_url_with_schema(url, agnt5_schema))
    rows = []
    try:
        await Session("warmup", store=store).send_message(message(0))
        await pg_raw_append(raw, "warmup", 1)

        base_ids, agnt5_ids = iter(range(rounds)), iter(range(rounds))
        b, a = await paired(
            rounds,
            lambda: pg_raw_append(raw, f"append-{next(base_ids)}", appends),
            lambda: agnt5_append(store, f"append-{next(agnt5_ids)}", appends),
        )
        rows.append(
            throughput_row(f"append {appends:,} messages (1 awaited call each)", appends, b, a, ">= 0.5x")
        )

        read = {}
        for n in (10_000, big):
            await pg_raw_fill(raw, f"read-{n}", n)
            session = await agnt5_fill(store, f"read-{n}", n)
            await raw.execute("ANALYZE")
            await session.history(limit=50)
            b, a = await paired(
                rounds,
                lambda n=n: pg_raw_read_last(raw, f"read-{n}", READ_REPEATS),
                lambda session=session: agnt5_read_last(session, READ_REPEATS),
            )
            read[n] = a
            rows.append(throughput_row(f"read last 50 of {n:,}", READ_REPEATS, b, a, ">= 0.5x"))
        rows.append(
            (f"read-last-50 cost, {big:,} vs 10,000", "", f"{read[big] / read[10_000]:.2f}x", "", "<= 1.5x")
        )

        b, a = await paired(
            rounds, lambda: pg_raw_state(raw, appends), lambda: pg_agnt5_state(store, appends)
        )
        rows.append(throughput_row(f"{appends:,} state updates (each durable)", appends, b, a, ">= 0.5x"))

        total = processes * per
        await raw.execute("INSERT INTO counters VALUES ('conc', 0)")
        b = await asyncio.to_thread(pg_processes, "raw", url, raw_schema, "conc", processes, per)
        session_id = f"conc-{uuid.uuid4().hex}"
        a = await asyncio.to_thread(pg_processes, "agnt5", url, agnt5_schema, session_id, processes, per)
        stored = await Session(session_id, store=store).history()
        seqs = [m.seq for m in stored]
        rows.append(
            throughput_row(
                f"{processes} processes x {per} appends, one session", total, b, a, ">= 0.5x, 0 lost"
            )
        )
        rows.append(
            (
                "  lost / seq gap-free",
                "",
                f"{total - len(stored)} / {seqs == list(range(1, len(seqs) + 1))}",
                "",
                "",
            )
        )
    finally:
        await store.close()
        await raw.close()
        await admin.execute(f"DROP SCHEMA IF EXISTS {raw_schema} CASCADE")
        await admin.execute(f"DROP SCHEMA IF EXISTS {agnt5_schema} CASCADE")
        await admin.close()
    return rows


def print_table(header: tuple[str, ...], rows: list[tuple[str, str, str, str, str]]) -> None:
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    parser.add_argument(
        "--postgres",
        metavar="URL",
        default=os.environ.get("AGNT5_TEST_POSTGRES_URL"),
        help="PostgreSQL server for the PostgresStore table (default: AGNT5_TEST_POSTGRES_URL)",
    )
    parser.add_argument("--only", choices=["sqlite", "postgres"], help="run one table only")
    args = parser.parse_args()
    if args.only != "postgres":
        rows = asyncio.run(run(args.quick))
        print_table(("operation", "raw aiosqlite", "agnt5", "agnt5 / raw", "target"), rows)
    if args.postgres:
        if args.only != "postgres":
            print()
        rows = asyncio.run(run_postgres(args.postgres, args.quick))
        print_table(
            ("operation (PostgreSQL)", "raw asyncpg", "agnt5 PostgresStore", "agnt5 / raw", "target"), rows
        )
    elif args.only == "postgres":
        parser.error("no PostgreSQL server: pass --postgres URL or run through scripts/with_postgres.sh")


if __name__ == "__main__":
    main()
