"""Store configuration: AGNT5_DATABASE_URL, the default file, configure(), store=, bad URLs."""

from __future__ import annotations

from pathlib import Path

import pytest

import agnt5
from agnt5 import Entity, Session, config
from agnt5.errors import ConfigurationError
from agnt5.store import DEFAULT_DATABASE_URL, open_store
from agnt5.store.sqlite import SqliteStore
from agnt5.store.url import mask_password, sqlite_path


def _same_file(a: str | Path, b: Path) -> bool:
    return Path(a).resolve() == b.resolve()


def _files(folder: Path) -> list[Path]:
    return list(folder.iterdir())


async def _write_and_read(session_id: str = "cfg") -> int:
    s = Session(session_id)
    await s.send_message({"role": "user", "content": "hi"})
    return len(await Session(session_id).history())


async def test_default_database_is_created_under_the_working_directory_on_first_use(tmp_path: Path) -> None:
    assert DEFAULT_DATABASE_URL == "sqlite:///.agnt5/agnt5.db"
    assert config.database_url() == DEFAULT_DATABASE_URL
    db = tmp_path / ".agnt5" / "agnt5.db"
    s = Session("first")
    Entity("e")
    assert not db.exists() and not db.parent.exists()  # nothing until first use
    await s.send_message({"role": "user", "content": "hi"})
    assert db.exists()
    store = config.default_store()
    assert isinstance(store, SqliteStore) and _same_file(store.path, db)
    assert await _write_and_read("second") == 1


async def test_env_var_with_a_relative_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGNT5_DATABASE_URL", "sqlite:///data/app.db")
    assert await _write_and_read() == 1
    assert (tmp_path / "data" / "app.db").exists()
    assert not (tmp_path / ".agnt5").exists()


async def test_env_var_with_an_absolute_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "abs" / "x.db"
    monkeypatch.setenv("AGNT5_DATABASE_URL", f"sqlite:///{target}")  # four slashes: /tmp/...
    assert await _write_and_read() == 1
    assert target.exists()
    await Entity("shared").set("k", 1)
    other = SqliteStore(str(target))
    try:
        assert await Entity("shared", store=other).get("k") == 1
    finally:
        await other.close()


async def test_env_var_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGNT5_DATABASE_URL", "sqlite:///:memory:")
    assert await _write_and_read() == 1
    Session("mem").set_state("k", "v")
    assert Session("mem").get_state("k") == "v"
    assert _files(tmp_path) == []  # no file anywhere
    assert config.default_store().url == "sqlite:///:memory:"


async def test_configure_database_url_overrides_the_env_var(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGNT5_DATABASE_URL", "sqlite:///from_env.db")
    agnt5.configure(database_url="sqlite:///configured.db")
    assert config.database_url() == "sqlite:///configured.db"
    assert await _write_and_read() == 1
    assert (tmp_path / "configured.db").exists()
    assert not (tmp_path / "from_env.db").exists()


async def test_configure_store(store: SqliteStore, db_path: Path) -> None:
    agnt5.configure(store=store)
    await Session("s").send_message({"role": "user", "content": "x"})
    assert len(await Session("s", store=store).history()) == 1
    with pytest.raises(ValueError):
        agnt5.configure(database_url="sqlite:///a.db", store=store)


async def test_explicit_store_argument_wins(tmp_path: Path, store: SqliteStore, db_path: Path) -> None:
    agnt5.configure(database_url="sqlite:///default.db")
    s = Session("explicit", store=store)
    await s.send_message({"role": "user", "content": "x"})
    e = Entity("explicit", store=store)
    await e.set("k", 1)
    assert s.store is store and e.store is store
    assert not (tmp_path / "default.db").exists()
    assert await Session("explicit").history() == []
    assert await Entity("explicit").get("k") is None
    assert len(await Session("explicit", store=store).history()) == 1


@pytest.mark.parametrize(
    "url",
    [
        "mysql://user:secret@localhost/db",  # postgresql:// is supported: tests/store/test_postgres.py
        "mysql://localhost/db",
        "not a url",
        "",
        "sqlite://",
        "sqlite:///",
        "sqlite://relative.db",
        "sqlite:/x.db",
        "/tmp/plain/path.db",
    ],
)
def test_invalid_urls_raise_configuration_error(url: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        open_store(url)
    assert isinstance(info.value, ValueError)
    assert "secret" not in str(info.value)
    with pytest.raises(ConfigurationError):
        agnt5.configure(database_url=url)


async def test_a_rejected_configure_keeps_the_previous_setting(tmp_path: Path) -> None:
    agnt5.configure(database_url="sqlite:///good.db")
    with pytest.raises(ConfigurationError):
        agnt5.configure(database_url="redis://localhost")
    assert config.database_url() == "sqlite:///good.db"
    assert await _write_and_read() == 1
    assert (tmp_path / "good.db").exists()


async def test_invalid_env_var_fails_on_first_use(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGNT5_DATABASE_URL", "mysql://u:hunter2@db/x")
    s = Session("bad-env")  # constructing does not touch the store
    with pytest.raises(ConfigurationError) as info:
        await s.send_message({"role": "user", "content": "x"})
    assert "hunter2" not in str(info.value)
    with pytest.raises(ConfigurationError):
        await Entity("e").get("k")


def test_sqlite_path_and_password_masking() -> None:
    assert sqlite_path("sqlite:///rel/a.db") == "rel/a.db"
    assert sqlite_path("sqlite:////abs/a.db") == "/abs/a.db"
    assert sqlite_path("sqlite:///:memory:") == ":memory:"
    assert mask_password("postgresql://u:pw@h/db") == "postgresql://u:***@h/db"
    assert mask_password("postgresql://u:p@ss@h/db") == "postgresql://u:***@h/db"
    assert mask_password("sqlite:///a.db") == "sqlite:///a.db"
    # libpq-style query parameters
    assert (
        mask_password("postgresql://h/db?user=u&password=hunter2&sslmode=require")
        == "postgresql://h/db?user=u&password=***&sslmode=require"
    )
    assert (
        mask_password("postgres://u@h/db?PASSWORD=x&sslpassword=y")
        == "postgres://u@h/db?PASSWORD=***&sslpassword=***"
    )


def test_store_urls() -> None:
    assert SqliteStore("sqlite:///x.db").path == "x.db"
    assert SqliteStore("x.db").url == "sqlite:///x.db"
    assert SqliteStore().path == ":memory:"
