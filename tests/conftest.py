"""Shared fixtures: every test runs offline, on a fresh database, with real model calls refused.

The `store` fixture runs each test that takes it on both stores: `sqlite` (a fresh file) and
`postgres` (a fresh schema on the server of AGNT5_TEST_POSTGRES_URL, dropped afterwards).
Without that variable the postgres tests are skipped — unless AGNT5_REQUIRE_POSTGRES=1 (CI,
scripts/with_postgres.sh), where a missing or unreachable server fails the run instead.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
# Any provider call a test forgets to mock fails loudly instead of reaching the network.
os.environ["AGNT5_DISABLE_NETWORK"] = "1"
for _var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY"):
    os.environ.setdefault(_var, "sk-test-not-a-real-key")

pytest_plugins = ["pytester"]  # tests of agnt5's own pytest plugin

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test gets its own working directory, so the default database is never shared."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AGNT5_DATABASE_URL", raising=False)
    monkeypatch.delenv("AGNT5_MODEL", raising=False)
    from agnt5 import config

    config.reset()
    yield
    config.reset()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "test.db"


# --- both stores ----------------------------------------------------------------------------------

POSTGRES_URL = os.environ.get("AGNT5_TEST_POSTGRES_URL") or None
REQUIRE_POSTGRES = os.environ.get("AGNT5_REQUIRE_POSTGRES", "") not in ("", "0")
STORE_KINDS = ["sqlite", "postgres"]
_postgres_problem: str | None = None  # why the server cannot be used (checked once per run)


def _check_postgres() -> str | None:
    """None when the test server answers; otherwise what is wrong."""
    if POSTGRES_URL is None:
        return "AGNT5_TEST_POSTGRES_URL is not set (run the suite through scripts/with_postgres.sh)"
    try:
        import asyncpg
    except ImportError:
        return "asyncpg is not installed (pip install -e '.[dev]')"

    async def probe() -> None:
        conn = await asyncpg.connect(POSTGRES_URL, timeout=10)
        await conn.close()

    try:
        asyncio.run(probe())
    except Exception as exc:
        from agnt5.store.url import mask_password

        return f"the PostgreSQL test server at {mask_password(POSTGRES_URL)} is unreachable: {exc!r}"
    return None


def pytest_sessionstart(session: pytest.Session) -> None:
    global _postgres_problem
    if POSTGRES_URL is None and not REQUIRE_POSTGRES:
        _postgres_problem = (
            "AGNT5_TEST_POSTGRES_URL is not set (run the suite through scripts/with_postgres.sh)"
        )
        return
    _postgres_problem = _check_postgres()
    if _postgres_problem is not None and REQUIRE_POSTGRES:
        # CI: never a green run that silently skipped the PostgreSQL tests.
        pytest.exit(f"AGNT5_REQUIRE_POSTGRES=1 but {_postgres_problem}", returncode=1)


def require_postgres() -> str:
    """The test server's URL; skips the test locally (fails it in CI) when there is none."""
    if _postgres_problem is not None or POSTGRES_URL is None:
        reason = _postgres_problem or "no PostgreSQL test server"
        if REQUIRE_POSTGRES:
            pytest.fail(f"AGNT5_REQUIRE_POSTGRES=1 but {reason}")
        pytest.skip(reason)
    return POSTGRES_URL


def _run_async(coro: Any) -> Any:
    """Run a coroutine to completion from sync code, even while an event loop runs in this thread."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


@dataclass
class StoreEnv:
    """One test's database on one kind of store: open more stores on it, or read it with raw SQL."""

    kind: str
    url: str  # opens this same database (another store, another process)
    schema: str | None = None  # postgres: this test's schema

    def open(self) -> Any:
        """A new, independent store on the same database (as another process would open it)."""
        from agnt5.store.url import open_store

        return open_store(self.url)

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Read the database directly, bypassing agnt5 (`?` placeholders, as in sqlite3)."""
        if self.kind == "sqlite":
            import sqlite3

            from agnt5.store.url import sqlite_path

            conn = sqlite3.connect(sqlite_path(self.url))
            try:
                return conn.execute(sql, params).fetchall()
            finally:
                conn.close()
        return _run_async(self._pg_rows(sql, params))

    async def _pg_rows(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        import asyncpg

        counter = iter(range(1, len(params) + 1))
        numbered = re.sub(r"\?", lambda _: f"${next(counter)}", sql)
        assert POSTGRES_URL is not None
        conn = await asyncpg.connect(POSTGRES_URL, server_settings={"search_path": f'"{self.schema}"'})
        try:
            return [tuple(r) for r in await conn.fetch(numbered, *params)]
        finally:
            await conn.close()


async def _drop_schema(schema: str) -> None:
    import asyncpg

    assert POSTGRES_URL is not None
    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


@pytest.fixture(params=STORE_KINDS)
def store_env(request: pytest.FixtureRequest, db_path: Path) -> Iterator[StoreEnv]:
    """A fresh database on each kind of store (postgres: its own schema, dropped afterwards)."""
    if request.param == "sqlite":
        yield StoreEnv("sqlite", f"sqlite:///{db_path.resolve()}")
        return
    url = require_postgres()
    schema = f"t_{uuid.uuid4().hex[:16]}"
    sep = "&" if "?" in url else "?"
    yield StoreEnv("postgres", f"{url}{sep}schema={schema}", schema)
    _run_async(_drop_schema(schema))


@pytest.fixture
async def store(store_env: StoreEnv) -> AsyncIterator[Any]:
    """A store on the test's fresh database, on each kind of store."""
    s = store_env.open()
    yield s
    await s.close()


@pytest.fixture
async def sqlite_store(db_path: Path) -> AsyncIterator[Any]:
    """The embedded store on the test's database file (tests of SQLite-only behaviour)."""
    from agnt5.store.sqlite import SqliteStore

    s = SqliteStore(str(db_path))
    yield s
    await s.close()


@pytest.fixture
def postgres_url() -> str:
    """The PostgreSQL test server (skipped locally without one; a failure in CI)."""
    return require_postgres()


@pytest.fixture
async def pg_env(postgres_url: str) -> AsyncIterator[StoreEnv]:
    """A fresh schema on the PostgreSQL test server, dropped afterwards (PostgreSQL-only tests)."""
    schema = f"t_{uuid.uuid4().hex[:16]}"
    sep = "&" if "?" in postgres_url else "?"
    yield StoreEnv("postgres", f"{postgres_url}{sep}schema={schema}", schema)
    await _drop_schema(schema)
