"""MCPServerStdio against the real test server run as a subprocess (no mocked protocol).

One server process serves most tests (module scope: starting Python with the mcp SDK costs about
a second); the fault tests start their own.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from mcp_fixtures import children, gone, mcp_tasks, stdio_args

from agnt5.errors import (
    Agnt5Error,
    MCPConnectionLostError,
    MCPError,
    MCPProtocolError,
    MCPStartError,
    MCPTimeoutError,
)
from agnt5.mcp import DEFAULT_ENV_VARS, MCPServerStdio
from agnt5.tools import Tool

pytestmark = pytest.mark.asyncio(loop_scope="module")

GREETING = "hello-from-the-env-1234"


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def server() -> AsyncIterator[MCPServerStdio]:
    command, args = stdio_args()
    async with MCPServerStdio(command, args, env={"GREETING": GREETING}, timeout=2.0) as server:
        yield server


async def tools_of(server: MCPServerStdio) -> dict[str, Tool]:
    return {t.name: t for t in await server.list_tools()}


async def test_lists_the_servers_tools_with_their_schemas(server: MCPServerStdio) -> None:
    tools = await tools_of(server)
    assert {"add", "echo", "fail", "weather", "picture", "slow"} <= set(tools)
    add = tools["add"]
    assert add.description == "Add two integers."
    assert add.parameters == {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
        "required": ["a", "b"],
    }
    assert add.schema()["function"]["name"] == "add"
    assert repr(add) == "MCPTool('add', server='python stdio_server.py')"


async def test_the_tool_list_is_cached_per_connection(server: MCPServerStdio) -> None:
    first = await server.list_tools()
    second = await server.list_tools()
    assert first is second


async def test_a_call_returns_the_text_result(server: MCPServerStdio) -> None:
    tools = await tools_of(server)
    result = await tools["add"].invoke('{"a": 2, "b": 40}')
    assert (result.content, result.is_error) == ("42", False)
    assert (await tools["echo"].invoke({"text": "hi there"})).content == "hi there"


async def test_bad_arguments_are_checked_against_the_schema_before_the_call(server: MCPServerStdio) -> None:
    add = (await tools_of(server))["add"]
    result = await add.invoke({"a": "two"})
    assert result.is_error
    # Our validator's wording (the server's own would say "Error executing tool add").
    assert result.content.startswith("Error: invalid arguments for tool 'add': ")
    assert "'b' is a required property" in result.content
    assert "a: 'two' is not of type 'integer'" in result.content
    assert (await add.invoke("{not json")).is_error
    assert "must be a JSON object" in (await add.invoke("[1, 2]")).content


async def test_is_error_results_go_back_as_errors(server: MCPServerStdio) -> None:
    result = await (await tools_of(server))["fail"].invoke({"message": "the disk is full"})
    assert result.is_error
    assert result.content.startswith("Error: tool 'fail' failed: ")
    assert "the disk is full" in result.content


async def test_structured_content_becomes_the_result(server: MCPServerStdio) -> None:
    result = await (await tools_of(server))["weather"].invoke({"city": "Oslo"})
    assert json.loads(result.content) == {"city": "Oslo", "celsius": 21.5, "summary": "sunny"}


async def test_other_content_is_described_not_dropped(server: MCPServerStdio) -> None:
    result = await (await tools_of(server))["picture"].invoke({})
    lines = result.content.splitlines()
    assert lines[0] == "a red pixel"
    assert lines[1].startswith("[image content: image/png, 71 bytes")
    assert "[resource <file:///notes.txt>]" in lines and "pixel notes" in lines
    assert lines[-1] == "[resource link: big.csv <file:///big.csv>, text/csv]"


async def test_the_server_gets_only_the_minimal_environment_plus_env(server: MCPServerStdio) -> None:
    assert os.environ.get("OPENAI_API_KEY")  # set by tests/conftest.py: must not reach the server
    result = await (await tools_of(server))["environment"].invoke({})
    env = json.loads(result.content)
    assert env["GREETING"] == GREETING
    assert set(env) <= {*DEFAULT_ENV_VARS, "GREETING"}
    assert "PATH" in env and not any("API_KEY" in k for k in env)


async def test_list_changed_refreshes_the_tool_list(server: MCPServerStdio) -> None:
    tools = await tools_of(server)
    assert (await tools["grow"].invoke({})).content == "grown"
    for _ in range(100):  # the notification arrives with (or just after) the call's answer
        tools = await tools_of(server)
        if "extra" in tools:
            break
        await asyncio.sleep(0.02)
    assert (await tools["extra"].invoke({})).content == "extra!"


async def test_concurrent_calls_share_one_connection(server: MCPServerStdio) -> None:
    tools = await tools_of(server)
    pid = (await tools["pid"].invoke({})).content
    started = time.perf_counter()
    results = await asyncio.gather(
        *(tools["slow"].invoke({"seconds": 0.3, "label": str(i)}) for i in range(20))
    )
    elapsed = time.perf_counter() - started
    assert [r.content for r in results] == [f"done {i}" for i in range(20)]
    assert elapsed < 3  # run at once, not one after another (20 x 0.3 s)
    assert (await tools["pid"].invoke({})).content == pid


async def test_a_call_past_the_timeout_raises_and_the_connection_survives(server: MCPServerStdio) -> None:
    tools = await tools_of(server)
    started = time.perf_counter()
    with pytest.raises(MCPTimeoutError) as caught:
        await tools["slow"].invoke({"seconds": 30})
    assert time.perf_counter() - started < 5
    assert caught.value.server == "python stdio_server.py" and caught.value.timeout == 2.0
    assert "did not answer tools/call 'slow' within 2.0s" in str(caught.value)
    assert isinstance(caught.value, TimeoutError) and isinstance(caught.value, Agnt5Error)
    assert (await tools["add"].invoke({"a": 1, "b": 1})).content == "2"


async def test_a_cancelled_call_leaves_the_connection_usable(server: MCPServerStdio) -> None:
    tools = await tools_of(server)
    call = asyncio.ensure_future(tools["slow"].invoke({"seconds": 30}))
    await asyncio.sleep(0.2)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert (await tools["add"].invoke({"a": 2, "b": 2})).content == "4"


# --- faults (each starts its own server) ----------------------------------------------------------


async def test_a_crash_mid_call_raises_reaps_the_process_and_the_next_entry_reconnects() -> None:
    command, args = stdio_args()
    server = MCPServerStdio(command, args, env={"GREETING": GREETING}, name="crasher")
    async with server:
        tools = await tools_of(server)
        pid = int((await tools["pid"].invoke({})).content)
        with pytest.raises(MCPConnectionLostError) as caught:
            await tools["crash"].invoke({})
        assert gone(pid)  # exited and reaped by the time the error is raised
        error = caught.value
        assert error.server == "crasher"
        assert "MCP server 'crasher' closed the connection during tools/call 'crash'" in str(
            error
        ) and "the next run reconnects" in str(error)
        assert "crashing on purpose (greeting=***)" in error.stderr  # env values are masked
        assert GREETING not in str(error) and GREETING not in error.stderr
        with pytest.raises(MCPConnectionLostError):
            await tools["add"].invoke({"a": 1, "b": 1})
        assert not mcp_tasks("crasher")
        # Still inside `async with`: the next entry (a run) replaces the broken connection.
        async with server:
            again = await tools_of(server)
            assert int((await again["pid"].invoke({})).content) != pid
            assert (await again["add"].invoke({"a": 1, "b": 1})).content == "2"
    assert not server.connected and not mcp_tasks("crasher")


async def test_a_bad_command_is_a_start_error() -> None:
    server = MCPServerStdio("agnt5-no-such-command-xyz")
    with pytest.raises(MCPStartError) as caught:
        async with server:
            pass
    assert "command 'agnt5-no-such-command-xyz' not found" in str(caught.value)
    assert caught.value.server == "agnt5-no-such-command-xyz"
    assert not mcp_tasks("agnt5-no-such-command-xyz")


async def test_a_server_that_exits_at_once_is_a_start_error_quoting_its_stderr() -> None:
    before = children()
    command, args = stdio_args("--exit")
    with pytest.raises(MCPStartError) as caught:
        async with MCPServerStdio(command, args, name="quitter"):
            pass
    assert "exited before completing the MCP handshake" in str(caught.value)
    assert caught.value.stderr == "fatal: no configuration found"
    assert children() <= before and not mcp_tasks("quitter")


async def test_a_server_that_hangs_at_start_times_out_and_is_killed() -> None:
    before = children()
    hang = "import sys, time; sys.stdout.close(); time.sleep(120)"
    with pytest.raises(MCPTimeoutError) as caught:
        async with MCPServerStdio(sys.executable, ["-c", hang], connect_timeout=0.5, name="hanger"):
            pass
    assert "MCP server 'hanger' did not finish starting within 0.5s" in str(caught.value)
    assert children() <= before and not mcp_tasks("hanger")


async def test_malformed_output_is_a_protocol_error_and_the_process_is_reaped() -> None:
    before = children()
    command, args = stdio_args("--banner")
    with pytest.raises(MCPProtocolError) as caught:
        async with MCPServerStdio(command, args, name="banner") as server:
            await server.list_tools()
    assert "sent a message that is not valid MCP" in str(caught.value)
    assert "Welcome to the test server!" in str(caught.value)
    assert children() <= before and not mcp_tasks("banner")


async def test_cancelling_a_run_while_the_server_starts_leaves_nothing_behind() -> None:
    before = children()
    command, args = stdio_args()

    async def use() -> None:
        async with MCPServerStdio(command, args, name="cancelled"):
            await asyncio.sleep(60)

    task = asyncio.ensure_future(use())
    await asyncio.sleep(0.3)  # the process is running; its handshake is not done
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert children() <= before and not mcp_tasks("cancelled")


async def test_using_a_server_that_is_not_open_says_how() -> None:
    with pytest.raises(MCPError, match="is not open: use `async with server:`"):
        await MCPServerStdio("python").list_tools()
