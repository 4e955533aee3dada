"""Agents using MCP servers as tool sources, driven by agnt5's offline models (no provider calls):
the real test server over stdio and streamable HTTP, sessions on SQLite."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from mcp_fixtures import children, gone, http_url, mcp_tasks, stdio_args

from agnt5 import Agent, RunContext, RunHooks, Session, tool
from agnt5.agent_events import ToolResultEvent
from agnt5.errors import MCPAuthenticationError, MCPConnectionLostError, MCPTimeoutError, ToolNameClashError
from agnt5.mcp import MCPServerHTTP, MCPServerStdio
from agnt5.models import ToolCall
from agnt5.store.sqlite import SqliteStore
from agnt5.testing import FunctionModel, ScriptedModel
from agnt5.testing.function_model import AgentInfo
from agnt5.tools import ToolResult

__all__ = ["http_url"]  # the fixture, imported for pytest

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def server() -> AsyncIterator[MCPServerStdio]:
    command, args = stdio_args()
    async with MCPServerStdio(command, args, timeout=2.0) as server:
        yield server


@pytest_asyncio.fixture(loop_scope="module")
async def store() -> AsyncIterator[SqliteStore]:
    store = SqliteStore(":memory:")
    yield store
    await store.close()


@tool
def shout(text: str) -> str:
    """Upper-case the text."""
    return text.upper()


def tool_messages(history: list[dict[str, Any]]) -> list[str]:
    return [m["content"] for m in history if m["role"] == "tool"]


async def test_an_agent_calls_mcp_tools_next_to_its_own(server: MCPServerStdio, store: SqliteStore) -> None:
    model = (
        ScriptedModel().tool_calls([("add", {"a": 2, "b": 3}), ("shout", {"text": "hi"})]).text("5 and HI")
    )
    session = Session("both", store=store)
    agent = Agent("calc", model=model, tools=[shout, server])
    result = await agent.run("add and shout", session=session)
    assert result.output == "5 and HI"
    model.assert_complete()
    assert {"add", "weather", "shout"} <= set(model.calls[0].tools)
    history = await session.history()
    assert tool_messages(history) == ["5", "HI"]
    types = [e.type for e in await session.events()]
    assert types.count("tool_call") == 2 and types.count("tool_result") == 2


async def test_the_model_gets_the_servers_schemas(server: MCPServerStdio) -> None:
    def reply(messages: list[dict[str, Any]], info: AgentInfo) -> str:
        return json.dumps(info.tool("weather"))

    result = await Agent("w", model=FunctionModel(reply), tools=[server]).run("schema?")
    assert json.loads(result.output) == {
        "name": "weather",
        "description": "Structured weather for a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }


async def test_bad_arguments_and_is_error_results_go_back_to_the_model(server: MCPServerStdio) -> None:
    seen: list[str] = []

    def reply(messages: list[dict[str, Any]], info: AgentInfo) -> Any:
        if messages[-1]["role"] == "tool":
            seen.extend(m["content"] for m in messages if m["role"] == "tool")
            return "understood"
        return [
            FunctionModel.tool_call("add", {"a": "two", "b": 2}),
            FunctionModel.tool_call("fail", {"message": "quota exceeded"}),
        ]

    result = await Agent("w", model=FunctionModel(reply), tools=[server]).run("go")
    assert result.output == "understood"
    assert seen[0].startswith("Error: invalid arguments for tool 'add': a: 'two' is not of type 'integer'")
    assert seen[1].startswith("Error: tool 'fail' failed:") and "quota exceeded" in seen[1]


async def test_a_clash_with_the_agents_own_tool_names_both_sources(server: MCPServerStdio) -> None:
    @tool
    def add(a: int, b: int) -> int:
        """A local add."""
        return a + b

    agent = Agent("calc", model=ScriptedModel().text("never"), tools=[add, server])
    with pytest.raises(ToolNameClashError) as caught:
        await agent.run("hi")
    assert caught.value.name == "add"
    assert caught.value.sources == ("agent 'calc' (its own tools)", "MCP server 'python stdio_server.py'")
    assert "give one of them a tool_prefix=" in str(caught.value)
    prefixed = MCPServerStdio(*stdio_args(), tool_prefix="remote")
    assert prefixed.tool_prefix == "remote"  # the way out (not started here: see test_mcp_http.py)


async def test_a_clash_between_two_servers_names_both(server: MCPServerStdio, http_url: str) -> None:
    remote = MCPServerHTTP(f"{http_url}/mcp", name="remote")
    agent = Agent("calc", model=ScriptedModel().text("never"), tools=[server, remote])
    with pytest.raises(ToolNameClashError) as caught:
        await agent.run("hi")
    assert caught.value.sources == ("MCP server 'python stdio_server.py'", "MCP server 'remote'")
    assert not remote.connected and not mcp_tasks("remote")  # the run closed what it opened
    both = Agent(
        "calc",
        model=ScriptedModel().tool_call("remote_add", {"a": 1, "b": 1}).text("2"),
        tools=[server, MCPServerHTTP(f"{http_url}/mcp", name="remote", tool_prefix="remote")],
    )
    assert (await both.run("hi")).output == "2"


async def test_tools_added_mid_run_are_offered_at_the_next_turn(http_url: str) -> None:
    model = ScriptedModel().tool_call("grow", {}).tool_call("extra", {}).text("done")
    async with MCPServerHTTP(f"{http_url}/mcp") as fresh:  # its own server state is shared: see extra
        result = await Agent("g", model=model, tools=[fresh]).run("grow")
    assert result.output == "done"
    assert "extra" in model.calls[1].tools
    assert tool_messages(result.messages)[-1] == "extra!"


async def test_hooks_see_and_can_block_mcp_calls(server: MCPServerStdio) -> None:
    class Block(RunHooks[None]):
        async def before_tool_call(
            self, ctx: RunContext[None], agent: Agent[None, Any], call: ToolCall
        ) -> ToolCall | ToolResult | str | None:
            return "blocked by policy" if call.name == "environment" else None

    model = ScriptedModel().tool_call("environment", {}).text("ok")
    result = await Agent("h", model=model, tools=[server], hooks=Block()).run("env?")
    assert tool_messages(result.messages) == ["blocked by policy"]


async def test_twenty_concurrent_runs_share_one_connection(server: MCPServerStdio) -> None:
    connection = server._connection

    def reply(messages: list[dict[str, Any]], info: AgentInfo) -> Any:
        if messages[-1]["role"] == "tool":
            return messages[-1]["content"]
        n = int(messages[-1]["content"])
        return [
            FunctionModel.tool_call("slow", {"seconds": 0.2, "label": str(n)}),
            FunctionModel.tool_call("pid"),
        ]

    agent = Agent("many", model=FunctionModel(reply), tools=[server])
    results = await asyncio.gather(*(agent.run(str(n)) for n in range(20)))
    pids = {tool_messages(r.messages)[1] for r in results}
    assert [tool_messages(r.messages)[0] for r in results] == [f"done {n}" for n in range(20)]
    assert len(pids) == 1 and server._connection is connection


async def test_concurrent_runs_of_a_server_not_opened_share_one_process_and_close_it(
    store: SqliteStore,
) -> None:
    before = children()
    lazy = MCPServerStdio(*stdio_args(), name="lazy")

    def reply(messages: list[dict[str, Any]], info: AgentInfo) -> Any:
        return messages[-1]["content"] if messages[-1]["role"] == "tool" else FunctionModel.tool_call("pid")

    agent = Agent("many", model=FunctionModel(reply), tools=[lazy])
    results = await asyncio.gather(*(agent.run("pid?") for _ in range(5)))
    pids = {int(r.output) for r in results}
    assert len(pids) == 1
    assert gone(pids.pop()) and children() <= before
    assert not lazy.connected and not mcp_tasks("lazy")


async def test_a_crash_mid_run_fails_cleanly_and_the_next_run_reconnects(store: SqliteStore) -> None:
    before = children()
    crashy = MCPServerStdio(*stdio_args(), name="crashy")
    session = Session("crash", store=store)
    model = ScriptedModel().tool_calls([("crash", {}), ("add", {"a": 1, "b": 1})])
    agent = Agent("c", model=model, tools=[crashy])
    with pytest.raises(MCPConnectionLostError) as caught:
        await agent.run("crash please", session=session)
    assert caught.value.server == "crashy"
    history = await session.history()
    assert [m["role"] for m in history] == ["user"]  # no assistant tool-call message, no orphan call
    failed = [e for e in await session.events() if e.type == "agent_run_failed"]
    assert failed and failed[-1].data["error"] == "MCPConnectionLostError"
    assert children() <= before and not mcp_tasks("crashy")

    agent.model = ScriptedModel().tool_call("add", {"a": 1, "b": 1}).text("two")
    assert (await agent.run("add please", session=session)).output == "two"
    assert children() <= before and not crashy.connected


async def test_a_timeout_mid_run_fails_cleanly(server: MCPServerStdio, store: SqliteStore) -> None:
    session = Session("slow", store=store)
    model = ScriptedModel().tool_calls([("slow", {"seconds": 30}), ("pid", {})])
    with pytest.raises(MCPTimeoutError):
        await Agent("t", model=model, tools=[server]).run("wait", session=session)
    assert [m["role"] for m in await session.history()] == ["user"]
    assert (await (await server.list_tools())[0].invoke({"a": 1, "b": 2})).content == "3"  # still usable


async def test_a_refused_token_fails_the_run_and_is_not_in_the_audit_trail(
    http_url: str, store: SqliteStore
) -> None:
    session = Session("auth", store=store)
    secured = MCPServerHTTP(
        f"{http_url}/secure/mcp", headers={"Authorization": "Bearer leaked-if-you-see-me"}
    )
    agent = Agent("a", model=ScriptedModel().text("never"), tools=[secured])
    with pytest.raises(MCPAuthenticationError):
        await agent.run("hi", session=session)
    events = await session.events()
    assert [e.type for e in events][-1] == "agent_run_failed"
    assert "refused the credentials (HTTP 401)" in events[-1].data["message"]
    assert "leaked-if-you-see-me" not in json.dumps([e.data for e in events])


async def test_a_handoff_target_and_a_streamed_run_use_their_sources(server: MCPServerStdio) -> None:
    worker = Agent(
        "worker", model=ScriptedModel().tool_call("add", {"a": 4, "b": 5}).text("9"), tools=[server]
    )
    front = Agent("front", model=ScriptedModel().tool_call("transfer_to_worker", {}), handoffs=[worker])
    result = await front.run("add 4 and 5")
    assert (result.agent_name, result.output) == ("worker", "9")
    assert tool_messages(result.messages)[-1] == "9"

    streamed = Agent(
        "s", model=ScriptedModel().tool_call("echo", {"text": "streamed"}).text("ok"), tools=[server]
    )
    events = [event async for event in streamed.stream("echo")]
    assert [e.content for e in events if isinstance(e, ToolResultEvent)] == ["streamed"]


async def test_cancelling_a_run_mid_call_closes_the_server_it_opened() -> None:
    before = children()
    lazy = MCPServerStdio(*stdio_args(), name="cancelled-run")
    agent = Agent("c", model=ScriptedModel().tool_call("slow", {"seconds": 30}), tools=[lazy])
    run = asyncio.ensure_future(agent.run("wait"))
    for _ in range(300):  # until the call is in flight on the server
        if lazy.connected and lazy._connection is not None and lazy._connection._tools is not None:
            break
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.2)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert not lazy.connected and not mcp_tasks("cancelled-run") and children() <= before
