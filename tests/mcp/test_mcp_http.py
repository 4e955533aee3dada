"""MCPServerHTTP against the real test server served over streamable HTTP on 127.0.0.1 (uvicorn in
a background thread, one per module; no mocked protocol)."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
import pytest_asyncio
from mcp_fixtures import TOKEN, http_url, mcp_tasks

from agnt5.errors import MCPAuthenticationError, MCPConnectionLostError, MCPHTTPError, ToolNameClashError
from agnt5.mcp import MCPServerHTTP
from agnt5.tools import Tool

__all__ = ["http_url"]  # the fixture, imported for pytest

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def server(http_url: str) -> AsyncIterator[MCPServerHTTP]:
    async with MCPServerHTTP(f"{http_url}/mcp", timeout=5) as server:
        yield server


async def tools_of(server: MCPServerHTTP) -> dict[str, Tool]:
    return {t.name: t for t in await server.list_tools()}


async def test_lists_and_calls_tools_over_http(server: MCPServerHTTP) -> None:
    tools = await tools_of(server)
    assert {"add", "weather", "fail"} <= set(tools)
    assert (await tools["add"].invoke({"a": 20, "b": 22})).content == "42"
    weather = await tools["weather"].invoke({"city": "Lima"})
    assert json.loads(weather.content)["city"] == "Lima"
    failed = await tools["fail"].invoke({"message": "nope"})
    assert failed.is_error and "nope" in failed.content
    assert (await tools["add"].invoke({"a": 1})).content.startswith("Error: invalid arguments for tool 'add'")


async def test_tool_prefix_and_allowed_tools(http_url: str) -> None:
    async with MCPServerHTTP(f"{http_url}/mcp", tool_prefix="calc", allowed_tools=["add", "echo"]) as server:
        tools = await tools_of(server)
        assert sorted(tools) == ["calc_add", "calc_echo"]
        assert tools["calc_add"].schema()["function"]["name"] == "calc_add"
        assert (await tools["calc_add"].invoke({"a": 1, "b": 2})).content == "3"  # sent as `add`


async def test_list_changed_refreshes_the_tool_list_over_http(server: MCPServerHTTP) -> None:
    tools = await tools_of(server)
    assert "extra" not in tools
    assert (await tools["grow"].invoke({})).content == "grown"
    for _ in range(100):
        tools = await tools_of(server)
        if "extra" in tools:
            break
        await asyncio.sleep(0.02)
    assert (await tools["extra"].invoke({})).content == "extra!"


async def test_concurrent_calls_share_one_http_connection(server: MCPServerHTTP) -> None:
    tools = await tools_of(server)
    connection = server._connection
    started = time.perf_counter()
    results = await asyncio.gather(
        *(tools["slow"].invoke({"seconds": 0.3, "label": str(i)}) for i in range(20))
    )
    assert [r.content for r in results] == [f"done {i}" for i in range(20)]
    assert time.perf_counter() - started < 3
    assert server._connection is connection


async def test_401_is_an_authentication_error_without_the_token(http_url: str) -> None:
    wrong = MCPServerHTTP(
        f"{http_url}/secure/mcp?key=querysecret", headers={"Authorization": "Bearer wrong-token"}
    )
    with pytest.raises(MCPAuthenticationError) as caught:
        async with wrong:
            pass
    error = caught.value
    assert error.status_code == 401 and isinstance(error, MCPHTTPError)
    assert error.server == f"{http_url}/secure/mcp"
    assert "refused the credentials (HTTP 401)" in str(error)
    for text in (str(error), repr(error), repr(wrong), wrong.label, str(error.__cause__)):
        assert "wrong-token" not in text and "querysecret" not in text
    assert repr(wrong) == f"MCPServerHTTP('{http_url}/secure/mcp', headers=['Authorization'])"
    assert not mcp_tasks(error.server)
    async with MCPServerHTTP(f"{http_url}/secure/mcp", headers={"Authorization": f"Bearer {TOKEN}"}) as right:
        assert (await tools_of(right))["echo"] is not None


async def test_5xx_is_an_http_error_with_the_status(http_url: str) -> None:
    with pytest.raises(MCPHTTPError) as caught:
        async with MCPServerHTTP(f"{http_url}/broken/mcp", name="broken"):
            pass
    assert caught.value.status_code == 503 and not isinstance(caught.value, MCPAuthenticationError)
    assert "MCP server 'broken' answered HTTP 503" in str(caught.value)


async def test_an_unreachable_server_is_a_start_error() -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    from agnt5.errors import MCPStartError

    with pytest.raises(MCPStartError, match="cannot be reached"):
        async with MCPServerHTTP(f"http://127.0.0.1:{port}/mcp", connect_timeout=10):
            pass


@pytest.fixture
def stoppable() -> Iterator[tuple[str, Callable[[], None]]]:
    """A second HTTP test server on a port of its own, and a function that stops it."""
    import uvicorn
    from mcp_fixtures import _http_app

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(_http_app(), log_level="error", timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the second test server did not start"
        time.sleep(0.02)

    def stop() -> None:
        server.should_exit = True
        thread.join(10)
        sock.close()

    yield f"http://127.0.0.1:{sock.getsockname()[1]}", stop
    stop()


async def test_a_server_that_goes_away_mid_session_is_a_lost_connection(
    stoppable: tuple[str, Callable[[], None]],
) -> None:
    url, stop = stoppable
    async with MCPServerHTTP(f"{url}/mcp", name="leaving", timeout=5) as server:
        tools = await tools_of(server)
        assert (await tools["add"].invoke({"a": 1, "b": 1})).content == "2"
        await asyncio.to_thread(stop)
        with pytest.raises(MCPConnectionLostError) as caught:
            await tools["add"].invoke({"a": 1, "b": 1})
        assert caught.value.server == "leaving"
        assert "MCP server 'leaving' cannot be reached during tools/call 'add'" in str(caught.value)
    assert not mcp_tasks("leaving")


async def test_names_are_cut_to_64_characters_and_a_clash_after_cutting_is_an_error(http_url: str) -> None:
    prefix = "p" * 58
    async with MCPServerHTTP(f"{http_url}/mcp", tool_prefix=prefix, allowed_tools=["weather"]) as server:
        assert [t.name for t in await server.list_tools()] == [f"{prefix}_weath"]
    prefix = "p" * 61  # "picture" and "pid" both become <prefix>_pi
    async with MCPServerHTTP(
        f"{http_url}/mcp", tool_prefix=prefix, allowed_tools=["picture", "pid"]
    ) as server:
        with pytest.raises(ToolNameClashError, match="lists tools 'picture' and 'pid'") as caught:
            await server.list_tools()
        assert caught.value.name == f"{prefix}_pi"
