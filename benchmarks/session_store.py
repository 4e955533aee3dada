"""Session store benchmark: agnt5's embedded store beside a raw aiosqlite baseline, in one run;
and, given a PostgreSQL server, agnt5's PostgresStore beside a raw asyncpg baseline.

Run: python benchmarks/session_store.py [--quick] [--rounds N] [--postgres URL | --only postgres]
     scripts/with_postgres.sh .venv/bin/python benchmarks/session_store.py   # with a throw-away server
Prints Markdown tables. Every row is measured in paired rounds: each round times the baseline and
agnt5 back to back (which goes first alternates), after one untimed warm-up round of each; the
throughputs are the medians of the rounds and the ratio is the median of the per-round ratios
(agnt5 throughput / baseline throughput, higher is better), with their range, so machine noise
that hits one round hits both sides. Targets (issue 2): append >= 1.0x, state updates >= 0.8x,
read-last-50 >= 1.0x and flat from 10k to 100k (within 1.5x), concurrent appends 0 lost, 0 errors.
PostgreSQL (issue 7; the URL from --postgres or AGNT5_TEST_POSTGRES_URL): every operation >= 0.5x
the raw asyncpg baseline, 4 processes appending to one session lose nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agnt5 import Session
from agnt5.store.sqlite import SqliteStore

READ_REPEATS = 300


@dataclass(frozen=True)
class Pairs:
    """The timed rounds of one row: seconds of the baseline and of agnt5, round by round."""

    baseline: list[float]
    agnt5: list[float]

    @property
    def ratios(self) -> list[float]:
        """agnt5 throughput / baseline throughput, per round (= baseline time / agnt5 time)."""
        return [b / a for b, a in zip(self.baseline, self.agnt5, strict=True)]


def throughput_row(label: str, operations: int, pairs: Pairs, target: str) -> tuple[str, str, str, str, str]:
    """A table row: median operations per second of each side, and the median per-round ratio
    with its range over the rounds."""
    ratios = pairs.ratios
    spread = f" ({min(ratios):.2f}-{max(ratios):.2f})" if len(ratios) > 1 else ""
    return (
        label,
        f"{operations / statistics.median(pairs.baseline):,.0f}/s",
        f"{operations / statistics.median(pairs.agnt5):,.0f}/s",
        f"{statistics.median(ratios):.2f}x{spread}",
        target,
    )


async def paired(
    rounds: int, baseline: Callable[[], Awaitable[float]], agnt5: Callable[[], Awaitable[float]]
) -> Pairs:
    """`rounds` timed rounds of two functions (each runs once and returns its seconds), after one
    untimed warm-up round of each; the side that goes first alternates from round to round."""
    await baseline()
    await agnt5()
    out = Pairs([], [])
    for r in range(rounds):
        if r % 2 == 0:
            out.baseline.append(await baseline())
            out.agnt5.append(await agnt5())
        else:
            out.agnt5.append(await agnt5())
            out.baseline.append(await baseline())
    return out


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


async def baseline_concurrent(db: aiosqlite.Connection, session_id: str, tasks: int, per_task: int) -> float:
    lock = asyncio.Lock()  # one connection: transactions must not interleave
    counter = {"seq": 0}

    async def worker(w: int) -> None:
        for i in range(per_task):
            async with lock:
                counter["seq"] += 1
                await db.execute(
                    "INSERT INTO messages (session_id, seq, created_at, role, body) VALUES (?, ?, ?, ?, ?)",
                    (session_id, counter["seq"], time.time(), "user", body(i)),
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


@dataclass
class Checks:
    """What the concurrent rows verify, summed over every round: messages lost, errors, and
    whether every round's seqs were gap-free."""

    lost: int = 0
    errors: int = 0
    gap_free: bool = True

    def add(self, sent: int, stored: list[Any], errors: int = 0) -> None:
        seqs = [m.seq for m in stored]
        self.lost += sent - len(stored)
        self.errors += errors
        self.gap_free = self.gap_free and seqs == list(range(1, len(seqs) + 1))


async def agnt5_concurrent(
    store: SqliteStore, session_id: str, tasks: int, per_task: int, checks: Checks
) -> float:
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
    checks.add(tasks * per_task, await Session(session_id, store=store).history(), errors)
    return elapsed


# --- run ----------------------------------------------------------------------------------------------


async def run(quick: bool, rounds: int) -> list[tuple[str, str, str, str, str]]:
    appends = 500 if quick else 2000
    big = 20_000 if quick else 100_000
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        base = await baseline_connect(os.path.join(tmp, "baseline.db"))
        store = SqliteStore(os.path.join(tmp, "agnt5.db"))

        # appends; both sides name their sessions alike (a new session per round)
        base_ids, agnt5_ids = itertools.count(), itertools.count()
        pairs = await paired(
            rounds,
            lambda: baseline_append(base, f"append-{next(base_ids)}", appends),
            lambda: agnt5_append(store, f"append-{next(agnt5_ids)}", appends),
        )
        rows.append(
            throughput_row(f"append {appends:,} messages (1 awaited call each)", appends, pairs, ">= 1.0x")
        )

        # read last 50
        read = {}
        for n in (10_000, big):
            await baseline_fill(base, f"read-{n}", n)
            session = await agnt5_fill(store, f"read-{n}", n)
            pairs = await paired(
                rounds,
                lambda n=n: baseline_read_last(base, f"read-{n}", READ_REPEATS),
                lambda session=session: agnt5_read_last(session, READ_REPEATS),
            )
            read[n] = statistics.median(pairs.agnt5)
            rows.append(throughput_row(f"read last 50 of {n:,}", READ_REPEATS, pairs, ">= 1.0x"))
        rows.append(
            (f"read-last-50 cost, {big:,} vs 10,000", "", f"{read[big] / read[10_000]:.2f}x", "", "<= 1.5x")
        )

        # state updates
        pairs = await paired(
            rounds, lambda: baseline_state(base, appends), lambda: agnt5_state(store, appends)
        )
        rows.append(
            throughput_row(f"{appends:,} state updates (set_state, durable)", appends, pairs, ">= 0.8x")
        )

        # concurrent appends through separate Session objects (a new session per round)
        checks = Checks()
        base_ids, agnt5_ids = itertools.count(), itertools.count()
        pairs = await paired(
            rounds,
            lambda: baseline_concurrent(base, f"conc-{next(base_ids)}", 20, 100),
            lambda: agnt5_concurrent(store, f"conc-{next(agnt5_ids)}", 20, 100, checks),
        )
        rows.append(
            throughput_row("20 tasks x 100 appends, 20 Session objects", 2000, pairs, "0 lost, 0 errors")
        )
        rows.append(
            (
                f"  lost / errors / seq gap-free ({rounds + 1} rounds)",
                "",
                f"{checks.lost} / {checks.errors} / {checks.gap_free}",
                "",
                "",
            )
        )

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


async def run_postgres(url: str, quick: bool, rounds: int) -> list[tuple[str, str, str, str, str]]:
    from agnt5.store.postgres import PostgresStore

    appends = 500 if quick else 2000
    big = 20_000 if quick else 100_000
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
        base_ids, agnt5_ids = itertools.count(), itertools.count()
        pairs = await paired(
            rounds,
            lambda: pg_raw_append(raw, f"append-{next(base_ids)}", appends),
            lambda: agnt5_append(store, f"append-{next(agnt5_ids)}", appends),
        )
        rows.append(
            throughput_row(f"append {appends:,} messages (1 awaited call each)", appends, pairs, ">= 0.5x")
        )

        read = {}
        for n in (10_000, big):
            await pg_raw_fill(raw, f"read-{n}", n)
            session = await agnt5_fill(store, f"read-{n}", n)
            await raw.execute("ANALYZE")
            pairs = await paired(
                rounds,
                lambda n=n: pg_raw_read_last(raw, f"read-{n}", READ_REPEATS),
                lambda session=session: agnt5_read_last(session, READ_REPEATS),
            )
            read[n] = statistics.median(pairs.agnt5)
            rows.append(throughput_row(f"read last 50 of {n:,}", READ_REPEATS, pairs, ">= 0.5x"))
        rows.append(
            (f"read-last-50 cost, {big:,} vs 10,000", "", f"{read[big] / read[10_000]:.2f}x", "", "<= 1.5x")
        )

        pairs = await paired(
            rounds, lambda: pg_raw_state(raw, appends), lambda: pg_agnt5_state(store, appends)
        )
        rows.append(throughput_row(f"{appends:,} state updates (each durable)", appends, pairs, ">= 0.5x"))

        total = processes * per
        checks = Checks()
        base_ids, agnt5_ids = itertools.count(), itertools.count()

        async def raw_round() -> float:
            session_id = f"conc-{next(base_ids)}"
            await raw.execute("INSERT INTO counters VALUES ($1, 0)", session_id)
            return await asyncio.to_thread(pg_processes, "raw", url, raw_schema, session_id, processes, per)

        async def agnt5_round() -> float:
            session_id = f"conc-{next(agnt5_ids)}"
            elapsed = await asyncio.to_thread(
                pg_processes, "agnt5", url, agnt5_schema, session_id, processes, per
            )
            checks.add(total, await Session(session_id, store=store).history())
            return elapsed

        pairs = await paired(rounds, raw_round, agnt5_round)
        rows.append(
            throughput_row(
                f"{processes} processes x {per} appends, one session", total, pairs, ">= 0.5x, 0 lost"
            )
        )
        rows.append(
            (f"  lost / seq gap-free ({rounds + 1} rounds)", "", f"{checks.lost} / {checks.gap_free}", "", "")
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
    parser.add_argument("--quick", action="store_true", help="smaller sizes and 2 rounds (a smoke run)")
    parser.add_argument("--rounds", type=int, help="timed rounds per row (default 5; --quick: 2)")
    parser.add_argument(
        "--postgres",
        metavar="URL",
        default=os.environ.get("AGNT5_TEST_POSTGRES_URL"),
        help="PostgreSQL server for the PostgresStore table (default: AGNT5_TEST_POSTGRES_URL)",
    )
    parser.add_argument("--only", choices=["sqlite", "postgres"], help="run one table only")
    args = parser.parse_args()
    rounds = args.rounds or (2 if args.quick else 5)
    if args.only != "postgres":
        rows = asyncio.run(run(args.quick, rounds))
        print_table(("operation", "raw aiosqlite", "agnt5", "agnt5 / raw", "target"), rows)
    if args.postgres:
        if args.only != "postgres":
            print()
        rows = asyncio.run(run_postgres(args.postgres, args.quick, rounds))
        print_table(
            ("operation (PostgreSQL)", "raw asyncpg", "agnt5 PostgresStore", "agnt5 / raw", "target"), rows
        )
    elif args.only == "postgres":
        parser.error("no PostgreSQL server: pass --postgres URL or run through scripts/with_postgres.sh")


if __name__ == "__main__":
    main()
