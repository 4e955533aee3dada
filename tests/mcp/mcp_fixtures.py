"""Real MCP servers for the MCP tests: the test server (`server_app.py`, written with the mcp
SDK's server API) as a stdio subprocess, and served over streamable HTTP on 127.0.0.1 by uvicorn
in a background thread for the whole module.

The tests import this module; the directory has no conftest.py or __init__.py on purpose (either
would shadow tests/conftest.py or, as a package named `mcp`, the SDK itself).

The HTTP app answers `/mcp` openly, `/secure/mcp` only with `Authorization: Bearer <TOKEN>` (401
otherwise) and `/broken/mcp` with 503. Without the `mcp` package these tests are skipped locally
and fail in CI (`CI` or `AGNT5_REQUIRE_POSTGRES` set), so CI always runs them.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent
STDIO_SERVER = str(HERE / "stdio_server.py")
TOKEN = "s3cret-token-for-tests"

if importlib.util.find_spec("mcp") is None:
    if os.environ.get("CI") or os.environ.get("AGNT5_REQUIRE_POSTGRES"):
        raise RuntimeError("the MCP tests need the mcp extra, which CI installs: pip install -e '.[dev]'")
    pytest.skip("the mcp extra is not installed (pip install -e '.[dev]')", allow_module_level=True)


def stdio_args(*flags: str) -> tuple[str, list[str]]:
    """`command, args` that start the test server over stdio (this interpreter, absolute path)."""
    return sys.executable, [STDIO_SERVER, *flags]


def children() -> set[int]:
    """Process ids of this process's live children (Linux /proc; empty elsewhere)."""
    pids: set[int] = set()
    for task in Path(f"/proc/{os.getpid()}/task").glob("*"):
        try:
            pids.update(int(p) for p in (task / "children").read_text().split())
        except OSError:
            continue
    return pids


def gone(pid: int) -> bool:
    """Whether process `pid` has exited and been reaped (a zombie still answers signal 0)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def mcp_tasks(name: str) -> list[Any]:
    """The MCP worker tasks of server `name` still running on this loop (a leak after close)."""
    import asyncio

    return [
        t for t in asyncio.all_tasks() if t.get_name() == f"agnt5-mcp MCP server {name!r}" and not t.done()
    ]


def _http_app() -> Any:
    from server_app import build

    inner = build("http-test-server").streamable_http_app()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            if path.startswith("/broken"):
                await _reply(send, 503, b"service unavailable")
                return
            if path.startswith("/secure"):
                headers = dict(scope["headers"])
                if headers.get(b"authorization") != f"Bearer {TOKEN}".encode():
                    await _reply(send, 401, b"unauthorized")
                    return
                scope = {**scope, "path": path.removeprefix("/secure"), "raw_path": None}
        await inner(scope, receive, send)

    return app


async def _reply(send: Any, status: int, body: bytes) -> None:
    await send(
        {"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain")]}
    )
    await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="module")
def http_url() -> Iterator[str]:
    """Base URL of the test server over streamable HTTP (a free port on 127.0.0.1)."""
    import uvicorn

    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(_http_app(), log_level="warning", lifespan="on", timeout_graceful_shutdown=1)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test MCP HTTP server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
