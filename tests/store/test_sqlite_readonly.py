"""SQLite databases that must not be created or written: `create=False`, `read_only=True`, and a
database on a read-only filesystem (opened read-only by itself; writes say "read-only")."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from agnt5.errors import DatabaseNotFoundError, ReadOnlyStoreError
from agnt5.store.base import NewMessage, SessionHeader, StateWrite
from agnt5.store.sqlite import SqliteStore


def _message(i: int) -> NewMessage:
    return NewMessage(f"m{i}", {"role": "user", "content": f"hello {i}"}, {}, 3)


async def _make_database(path: Path) -> None:
    store = SqliteStore(path)
    await store.append_messages(SessionHeader("s1"), [_message(1)], [])
    await store.close()


def test_create_false_on_a_missing_file_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "typo" / "agnt5.db"
    with pytest.raises(DatabaseNotFoundError, match="no database at"):
        SqliteStore(missing, create=False)
    with pytest.raises(DatabaseNotFoundError, match="no database at"):
        SqliteStore(missing, read_only=True)
    assert not (tmp_path / "typo").exists()


async def test_create_false_opens_an_existing_database_for_writing(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    await _make_database(path)
    store = SqliteStore(path, create=False)
    await store.append_messages(SessionHeader("s1"), [_message(2)], [])
    assert [m["content"] for m in await store.read_messages("s1", None, False)] == ["hello 1", "hello 2"]
    assert store.read_only is False
    await store.close()


async def test_read_only_store_reads_and_refuses_writes(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    await _make_database(path)
    store = SqliteStore(path, read_only=True)
    assert [m["content"] for m in await store.read_messages("s1", None, False)] == ["hello 1"]
    with pytest.raises(ReadOnlyStoreError, match="read-only"):
        await store.append_messages(SessionHeader("s1"), [_message(2)], [])
    with pytest.raises(ReadOnlyStoreError, match="read-only"):
        await store.write_state(SessionHeader("s1"), [StateWrite("session", "s1", "k", 1)], [])
    with pytest.raises(ReadOnlyStoreError, match="read-only"):
        await store.kv_set("e", "k", 1)
    # still usable for reads after refused writes
    assert len(await store.read_messages("s1", None, False)) == 1
    await store.close()
    reopened = SqliteStore(path)
    assert len(await reopened.read_messages("s1", None, False)) == 1
    await reopened.close()


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(writable source directory, the same directory seen read-only). As root: a read-only
    bind mount (a real read-only filesystem); otherwise: permissions (root ignores those)."""
    src = tmp_path / "src"
    src.mkdir()
    ro = tmp_path / "ro"
    if os.geteuid() != 0:
        yield src, src  # the caller makes it read-only by permissions
        os.chmod(src, 0o755)
        for f in src.iterdir():
            os.chmod(f, 0o644)
        return
    ro.mkdir()
    mount = shutil.which("mount")
    if mount is None:
        pytest.skip("no mount(8) to make a read-only filesystem")
    ok = subprocess.run([mount, "--bind", str(src), str(ro)], capture_output=True).returncode == 0
    if ok:
        ok = subprocess.run([mount, "-o", "remount,ro,bind", str(ro)], capture_output=True).returncode == 0
        if not ok:
            subprocess.run(["umount", str(ro)], check=False)
    if not ok:
        pytest.skip("cannot mount a read-only filesystem here")
    try:
        yield src, ro
    finally:
        subprocess.run(["umount", str(ro)], check=False)


async def test_database_on_a_read_only_filesystem_is_readable_and_writes_say_read_only(
    read_only_dir: tuple[Path, Path],
) -> None:
    src, ro = read_only_dir
    await _make_database(src / "a.db")
    if src == ro:  # not root: read-only by permissions
        os.chmod(src / "a.db", 0o444)
        os.chmod(src, 0o555)
    before = sorted(p.name for p in ro.iterdir())
    for kwargs in ({}, {"read_only": True}, {"create": False}):
        store = SqliteStore(ro / "a.db", **kwargs)  # type: ignore[arg-type]
        assert [m["content"] for m in await store.read_messages("s1", None, False)] == ["hello 1"]
        assert [h.id for h in await store.list_sessions(None, None, 10, None)] == ["s1"]
        with pytest.raises(ReadOnlyStoreError, match="read-only"):
            await store.append_messages(SessionHeader("s1"), [_message(2)], [])
        assert store.read_only is True
        await store.close()
    assert sorted(p.name for p in ro.iterdir()) == before
