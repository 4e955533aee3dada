"""`agnt5 inspect` on the command line: what it refuses (remote host, taken port, missing
database, missing extra) and how it stops (Ctrl-C: exit 0); `import agnt5` loads no web server."""

from __future__ import annotations

import io
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import agnt5
from agnt5.cli import main
from agnt5.session import Session
from agnt5.store.url import open_store
from inspector import _data

ROOT = Path(agnt5.__file__).resolve().parent.parent


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'cli.db'}"

    async def build() -> None:
        store = open_store(url)
        await Session("cli-1", app_name="cli", store=store).send_message({"role": "user", "content": "hi"})
        await store.close()

    _data.run(build())
    return url


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_a_non_loopback_host_needs_allow_remote(db_url: str) -> None:
    code, out, err = _run("inspect", "--database-url", db_url, "--host", "0.0.0.0")
    assert code == 2 and out == ""
    assert "refusing to serve on 0.0.0.0, which is not a loopback address" in err and "--allow-remote" in err


def test_a_port_in_use_is_a_clear_error(db_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        code, _, err = _run("inspect", "--database-url", db_url, "--port", str(port))
    assert code == 2
    assert f"port {port} on 127.0.0.1 is already in use: choose another with --port" in err


def test_no_database_at_the_path_is_exit_3_and_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"
    code, _, err = _run("inspect", "--database-url", f"sqlite:///{missing}")
    assert code == 3 and f"no database at {missing}" in err and "--database-url" in err
    assert not missing.exists()


def test_a_missing_extra_says_what_to_install(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    code, _, err = _run("inspect", "--database-url", db_url)
    assert code == 2
    assert (
        "agnt5 inspect needs the web server packages (uvicorn is missing): pip install 'agnt5[inspect]'"
        in err
    )


def test_a_bad_port_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", "--port", "70000"]) == 2
    assert "must be from 0 to 65535" in capsys.readouterr().err


def test_import_agnt5_loads_no_web_server() -> None:
    code = (
        "import sys, agnt5, agnt5.cli; "
        "print([m for m in ('starlette', 'uvicorn', 'agnt5.inspect.server') if m in sys.modules])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=60
    )
    assert done.stdout.strip() == "[]", done.stderr


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}


@pytest.fixture
def serve(db_url: str) -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def _start(started: list[subprocess.Popen[str]], *argv: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "agnt5", "inspect", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    started.append(process)
    assert process.stdout is not None
    line = process.stdout.readline()
    match = re.search(r"http://\S+", line)
    assert match, f"{line!r} {process.stderr.read() if process.poll() is not None else ''}"
    return process, match.group()


def test_serves_until_ctrl_c_then_exits_0(db_url: str, serve: list[subprocess.Popen[str]]) -> None:
    process, url = _start(serve, "--database-url", db_url)
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", url)
    assert "Sessions" in httpx.get(url, timeout=10).text
    listed = httpx.get(url + "api/sessions", timeout=10).json()
    assert [s["id"] for s in listed["sessions"]] == ["cli-1"]
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=10) == 0
    out, err = process.communicate(timeout=5)
    assert "stopped" in out and "Traceback" not in err and "interrupted" not in err


def test_allow_remote_requires_the_printed_token(db_url: str, serve: list[subprocess.Popen[str]]) -> None:
    process, url = _start(serve, "--database-url", db_url, "--host", "0.0.0.0", "--allow-remote")
    match = re.fullmatch(r"http://0\.0\.0\.0:(\d+)/\?token=([\w-]{20,})", url)
    assert match, url
    local = f"http://127.0.0.1:{match.group(1)}"
    assert httpx.get(local + "/api/sessions", timeout=10).status_code == 401
    assert httpx.get(local + "/api/sessions", params={"token": "guess"}, timeout=10).status_code == 401
    assert httpx.get(local + "/api/sessions", params={"token": match.group(2)}, timeout=10).status_code == 200
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=10) == 0
