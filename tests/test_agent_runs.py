"""One Agent, many runs: per-run session and deps, isolation under concurrency, overrides, and
instructions that see state — through respx-mocked OpenAI wire responses."""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from _wire import anthropic_message, gemini_content, openai_call, openai_chat, openai_stream, sent

from agnt5 import Agent, RunContext, Session, tool
from agnt5.agent_events import FinalResult, ToolResultEvent
from agnt5.errors import InstructionsError
from agnt5.store.sqlite import SqliteStore
from agnt5.testing import ScriptedModel

OPENAI = "https://api.openai.com/v1/chat/completions"
ANTHROPIC = "https://api.anthropic.com/v1/messages"


@pytest.fixture
async def mem_store() -> Any:
    store = SqliteStore(":memory:")
    yield store
    await store.close()


def texts(body: dict[str, Any]) -> list[str]:
    """Every text an OpenAI request body carries (contents and tool-call arguments)."""
    out = []
    for m in body["messages"]:
        if isinstance(m.get("content"), str):
            out.append(m["content"])
        for call in m.get("tool_calls") or ():
            out.append(call["function"]["arguments"])
    return out


@dataclass
class Deps:
    user: str
    lookups: list[str]


@tool
async def whoami(ctx: RunContext[Deps], topic: str) -> str:
    """Look up the caller."""
    ctx.deps.lookups.append(topic)
    await asyncio.sleep(0.001 * (hash(ctx.deps.user) % 5))  # interleave the runs
    return f"caller={ctx.deps.user} topic={topic}"


def echo_with_tool(request: httpx.Request) -> httpx.Response:
    """First request of a run: call whoami with the run's marker; then answer with what the tool said."""
    body = json.loads(request.content)
    last = body["messages"][-1]
    if last["role"] == "tool":
        return openai_chat(f"answer: {last['content']}")
    marker = re.search(r"marker-\d+", last["content"])
    assert marker is not None
    return openai_chat(tool_calls=[openai_call("whoami", {"topic": marker.group(0)})])


# --- isolation -----------------------------------------------------------------------------------


@respx.mock
async def test_concurrent_runs_without_a_session_each_see_only_their_own_messages() -> None:
    route = respx.post(OPENAI).mock(side_effect=echo_with_tool)
    agent = Agent("a", instructions="Help.", tools=[whoami], deps_type=Deps)
    deps = [Deps(f"user-{i}", []) for i in range(20)]
    results = await asyncio.gather(*(agent.run(f"question marker-{i}", deps=deps[i]) for i in range(20)))

    for i, result in enumerate(results):
        assert result.output == f"answer: caller=user-{i} topic=marker-{i}"
        assert deps[i].lookups == [f"marker-{i}"]
        assert [m["role"] for m in result.messages] == ["user", "assistant", "tool", "assistant"]
    assert route.call_count == 40
    for call in route.calls:
        body = json.loads(call.request.content)
        markers = {m for text in texts(body) for m in re.findall(r"marker-\d+|user-\d+", text)}
        numbers = {m.split("-")[1] for m in markers}
        assert len(numbers) == 1, f"a request mixed runs: {markers}"
        assert body["messages"][0] == {"role": "system", "content": "Help."}
    # No hidden memory on the agent: a new run starts from nothing.
    assert not [k for k in vars(agent) if "local" in k or "history" in k]


@respx.mock
async def test_concurrent_runs_on_distinct_sessions_and_none(mem_store: SqliteStore) -> None:
    route = respx.post(OPENAI).mock(side_effect=echo_with_tool)
    agent = Agent("a", tools=[whoami])
    sessions = [Session(f"s{i}", store=mem_store) for i in range(10)]
    for i, session in enumerate(sessions):
        await session.send_message({"role": "user", "content": f"earlier marker-{i}"})
        await session.send_message({"role": "assistant", "content": f"noted marker-{i}"})

    runs = [agent.run(f"now marker-{i}", session=sessions[i], deps=Deps(f"user-{i}", [])) for i in range(10)]
    runs += [agent.run(f"alone marker-{i}", deps=Deps(f"user-{i}", [])) for i in range(10, 20)]
    await asyncio.gather(*runs)

    for call in route.calls:
        body = json.loads(call.request.content)
        numbers = {m.split("-")[1] for t in texts(body) for m in re.findall(r"marker-\d+|user-\d+", t)}
        assert len(numbers) == 1
    for i, session in enumerate(sessions):
        contents = [m["content"] for m in await session.history()]
        assert contents == [
            f"earlier marker-{i}",
            f"noted marker-{i}",
            f"now marker-{i}",
            None,
            f"caller=user-{i} topic=marker-{i}",
            f"answer: caller=user-{i} topic=marker-{i}",
        ]


@respx.mock
async def test_concurrent_runs_through_a_handoff_are_isolated() -> None:
    def reply(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        marker = re.findall(r"marker-\d+", json.dumps(body["messages"]))
        assert len(set(marker)) == 1, marker
        tools = [t["function"]["name"] for t in body.get("tools", [])]
        if "transfer_to_expert" in tools:
            return openai_chat(tool_calls=[openai_call("transfer_to_expert", {})])
        return openai_chat(f"expert on {marker[0]}")

    respx.post(OPENAI).mock(side_effect=reply)
    expert = Agent("expert", instructions="You are the expert.")
    front = Agent("front", handoffs=[expert])
    results = await asyncio.gather(*(front.run(f"q marker-{i}") for i in range(15)))
    assert [r.output for r in results] == [f"expert on marker-{i}" for i in range(15)]
    assert {r.agent_name for r in results} == {"expert"}


async def test_run_local_sessions_live_in_memory(tmp_path: Path) -> None:
    from agnt5.run_store import RunStore

    seen: list[Session] = []

    @tool
    async def grab(ctx: RunContext) -> str:
        """Note the session."""
        seen.append(ctx.session)
        ctx.session.set_state("step", "grabbed")
        return str([m["content"] for m in await ctx.session.history()])

    agent = Agent("a", model=ScriptedModel().tool_call("grab").text("done"), tools=[grab])
    result = await agent.run("hi")
    assert result.output == "done" and len(seen) == 1
    # The run's session held the conversation so far (a tool call is stored with its results),
    # on a store of its own in memory.
    assert isinstance(seen[0].store, RunStore) and result.messages[2]["content"] == "['hi']"
    assert seen[0].get_state("step") == "grabbed"
    assert [m["content"] for m in await seen[0].history()] == ["hi", None, "['hi']", "done"]
    assert not (tmp_path / ".agnt5").exists()  # the user's database was never touched
    # A second run starts from nothing.
    await Agent("a", model=ScriptedModel().tool_call("grab").text("done"), tools=[grab]).run("again")
    assert seen[1] is not seen[0] and seen[1].get_state("step") == "grabbed"
    assert (await seen[1].history())[0]["content"] == "again"


@respx.mock
async def test_per_run_session_overrides_the_agents_own(mem_store: SqliteStore) -> None:
    respx.post(OPENAI).mock(
        side_effect=[
            openai_chat("ok"),
            openai_chat("ok"),
            openai_chat("ok"),
            openai_stream([{"role": "assistant", "content": "ok"}, {"finish_reason": "stop"}]),
        ]
    )
    own = Session("own", store=mem_store)
    other = Session("other", store=mem_store)
    agent = Agent("a", session=own)
    await agent.run("to own")
    await agent.run("to other", session=other)
    agent.run_sync("sync to other", session=other)
    events = [e async for e in agent.stream("streamed to other", session=other)]
    assert isinstance(events[-1], FinalResult)
    assert [m["content"] for m in await own.history()] == ["to own", "ok"]
    assert [m["content"] for m in await other.history()] == [
        "to other",
        "ok",
        "sync to other",
        "ok",
        "streamed to other",
        "ok",
    ]


async def test_tool_typed_with_generic_run_context_gets_deps() -> None:
    @tool
    def lookup(ctx: RunContext[Deps], key: str) -> str:
        """Look a key up for the caller."""
        return f"{ctx.deps.user}:{key}:{ctx.agent_name}:{ctx.tool_call_id}:{ctx.run_id.startswith('run_')}"

    assert lookup.context_param == "ctx" and "ctx" not in lookup.parameters["properties"]
    model = ScriptedModel().tool_call("lookup", {"key": "k"}, id="call_1").text("done")
    agent: Agent[Deps, str] = Agent("a", model=model, tools=[lookup], deps_type=Deps)
    result = await agent.run("go", deps=Deps("ann", []))
    assert result.messages[2]["content"] == "ann:k:a:call_1:True"


async def test_run_context_usage_grows_during_the_run() -> None:
    usages = []

    @tool
    def probe(ctx: RunContext) -> str:
        """Record the usage so far."""
        usages.append(ctx.usage.requests)
        return "ok"

    model = ScriptedModel().tool_call("probe").tool_call("probe").text("done")
    result = await Agent("a", model=model, tools=[probe]).run("go")
    assert usages == [1, 2] and result.usage.requests == 3


# --- override ------------------------------------------------------------------------------------


async def test_override_swaps_model_and_deps_for_the_block_and_handoffs_only() -> None:
    real_front = ScriptedModel()
    real_expert = ScriptedModel()
    expert = Agent("expert", model=real_expert, tools=[whoami])
    front = Agent("front", model=real_front, handoffs=[expert], deps_type=Deps)
    fake = ScriptedModel().tool_call("transfer_to_expert").tool_call("whoami", {"topic": "t"}).text("faked")
    test_deps = Deps("test-user", [])

    with front.override(model=fake, deps=test_deps):
        result = await front.run("hi", deps=Deps("real-user", []))
    assert result.output == "faked" and result.agent_name == "expert"
    assert test_deps.lookups == ["t"]
    assert result.messages[4]["content"] == "caller=test-user topic=t"
    assert real_front.calls == [] and real_expert.calls == []
    fake.assert_complete()
    # Outside the block the agent's own model answers again.
    real_front.text("real")
    assert (await front.run("hi")).output == "real"


async def test_override_does_not_leak_into_concurrent_runs_outside_the_block() -> None:
    real = ScriptedModel().text("real answer")
    agent = Agent("a", model=real)
    fake = ScriptedModel().text("fake answer")
    outside_started = asyncio.Event()
    inside_done = asyncio.Event()

    async def outside() -> str:
        outside_started.set()
        await inside_done.wait()  # runs while the block is active in the other task
        return str((await agent.run("hi")).output)

    async def inside() -> str:
        await outside_started.wait()
        with agent.override(model=fake):
            output = str((await agent.run("hi")).output)
            inside_done.set()
            await asyncio.sleep(0.01)  # keep the block open while the other run goes
        return output

    results = await asyncio.gather(outside(), inside())
    assert results == ["real answer", "fake answer"]


def test_override_reaches_run_sync_inside_a_running_loop() -> None:
    fake = ScriptedModel().text("fake").text("fake again")
    agent = Agent("a", model=ScriptedModel())

    async def main() -> str:
        with agent.override(model=fake):
            return str(agent.run_sync("hi").output)  # worker thread, own loop

    assert asyncio.run(main()) == "fake"
    with agent.override(model=fake):
        assert agent.run_sync("hi").output == "fake again"


# --- instructions that see state -----------------------------------------------------------------


@respx.mock
async def test_spec_multi_agent_snippet_sends_the_research_topic(mem_store: SqliteStore) -> None:
    def paper_search(topic: str) -> list[str]:
        """Find papers."""
        return [f"Paper on {topic}"]

    def github_search(topic: str) -> list[str]:
        """Find repositories."""
        return [f"repo/{topic}"]

    def document_tool(text: str) -> str:
        """Write a document."""
        return "saved"

    route = respx.post(OPENAI).mock(
        side_effect=[
            openai_chat("Found 3 papers."),
            openai_chat("Found 2 repos."),
            openai_chat("Report: ..."),
        ]
    )
    session = Session(
        id="research-workflow-001",
        user_id="researcher-123",
        metadata={"project": "quantum-computing-review"},
        store=mem_store,
    )
    session.set_state("research_topic", "quantum error correction")
    session.set_state("target_depth", "comprehensive")
    literature_agent = Agent(
        name="literature_reviewer",
        session=session,
        tools=[paper_search],
        instructions="You review the literature on {research_topic} ({target_depth}).",
    )
    code_agent = Agent(
        name="code_analyzer",
        session=session,
        tools=[github_search],
        instructions="Find code about {research_topic}. Note: {notes?}",
    )
    synthesis_agent = Agent(
        name="synthesizer",
        session=session,
        tools=[document_tool],
        instructions=["Synthesize findings on {research_topic}.", lambda ctx: f"You are {ctx.agent_name}."],
    )
    papers = await literature_agent.run("Find recent papers")
    implementations = await code_agent.run("Find implementations")
    report = await synthesis_agent.run("Synthesize findings")

    assert (papers.output, implementations.output, report.output) == (
        "Found 3 papers.",
        "Found 2 repos.",
        "Report: ...",
    )
    assert sent(route, 0)["messages"][0] == {
        "role": "system",
        "content": "You review the literature on quantum error correction (comprehensive).",
    }
    assert sent(route, 1)["messages"][0]["content"] == "Find code about quantum error correction. Note: "
    assert sent(route, 2)["messages"][0]["content"] == (
        "Synthesize findings on quantum error correction.\n\nYou are synthesizer."
    )
    # The template itself is never stored; the session holds only the conversation.
    assert all(m["role"] != "system" for m in await session.history())


@respx.mock
async def test_instructions_render_per_request_and_see_deps(mem_store: SqliteStore) -> None:
    route = respx.post(OPENAI).mock(
        side_effect=[
            openai_chat(tool_calls=[openai_call("set_step", {"step": "payment"})]),
            openai_chat("ok"),
        ]
    )

    @tool
    def set_step(ctx: RunContext, step: str) -> str:
        """Move the checkout to a step."""
        ctx.session.set_state("step", step)
        return "moved"

    async def greeting(ctx: RunContext[Deps]) -> str:
        return f"The user is {ctx.deps.user}."

    session = Session("s", store=mem_store)
    session.set_state("step", "cart")
    agent = Agent("a", instructions=[greeting, "Checkout step: {step}."], tools=[set_step], deps_type=Deps)
    await agent.run("pay", session=session, deps=Deps("ann", []))
    assert sent(route, 0)["messages"][0]["content"] == "The user is ann.\n\nCheckout step: cart."
    assert sent(route, 1)["messages"][0]["content"] == "The user is ann.\n\nCheckout step: payment."


@respx.mock
async def test_a_missing_state_key_fails_before_any_model_call(mem_store: SqliteStore) -> None:
    route = respx.post(OPENAI).mock(return_value=openai_chat("never"))
    agent = Agent("a", instructions="Topic: {research_topic}")
    session = Session("s", store=mem_store)
    with pytest.raises(InstructionsError) as caught:
        await agent.run("hi", session=session)
    assert caught.value.key == "research_topic"
    assert route.call_count == 0
    assert await session.history() == []  # nothing stored: the run can simply be retried
    session.set_state("research_topic", "tides")
    await agent.run("hi", session=session)
    assert sent(route)["messages"][0]["content"] == "Topic: tides"


# --- histories the run did not write -------------------------------------------------------------


def dangling(tool_name: str) -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": "weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": tool_name, "arguments": '{"query": "Paris"}'},
                },
                {
                    "id": "call_b",
                    "type": "function",
                    "function": {"name": tool_name, "arguments": '{"query": "Rome"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_a", "content": "sunny"},
    ]


def search(query: str) -> str:
    """Search."""
    return f"found {query}"


@respx.mock
async def test_openai_newest_unanswered_calls_are_executed_first(mem_store: SqliteStore) -> None:
    route = respx.post(OPENAI).mock(return_value=openai_chat("Rome is found."))
    session = Session("s", store=mem_store)
    await session.send_messages(dangling("search"))
    events = [e async for e in Agent("a", tools=[search]).stream("and Rome?", session=session)]
    assert [type(e).__name__ for e in events] == ["ToolResultEvent", "FinalResult"]
    assert isinstance(events[0], ToolResultEvent) and events[0].call_id == "call_b"
    messages = sent(route)["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "tool", "user"]
    assert messages[3] == {"role": "tool", "tool_call_id": "call_b", "content": "found Rome"}
    assert [m["role"] for m in await session.history()] == [
        "user",
        "assistant",
        "tool",
        "tool",
        "user",
        "assistant",
    ]


@respx.mock
async def test_openai_unanswered_calls_of_unknown_tools_are_left_out(mem_store: SqliteStore) -> None:
    route = respx.post(OPENAI).mock(return_value=openai_chat("ok"))
    session = Session("s", store=mem_store)
    await session.send_messages(dangling("elsewhere"))
    await Agent("a", tools=[search]).run("and Rome?", session=session)
    messages = sent(route)["messages"]
    calls = [c["id"] for m in messages for c in m.get("tool_calls") or ()]
    results = [m["tool_call_id"] for m in messages if m["role"] == "tool"]
    assert calls == ["call_a"] and results == ["call_a"]
    assert len(await session.history()) == 5  # nothing deleted: the stored history is intact


@respx.mock
async def test_anthropic_request_never_carries_an_unanswered_call(mem_store: SqliteStore) -> None:
    route = respx.post(ANTHROPIC).mock(return_value=anthropic_message("ok"))
    session = Session("s", store=mem_store)
    await session.send_messages(dangling("elsewhere"))
    await Agent("c", model="anthropic/claude-sonnet-4-5", tools=[search]).run("more?", session=session)
    body = sent(route)
    uses = [
        b["id"]
        for m in body["messages"]
        if isinstance(m["content"], list)
        for b in m["content"]
        if b["type"] == "tool_use"
    ]
    results = [
        b["tool_use_id"]
        for m in body["messages"]
        if isinstance(m["content"], list)
        for b in m["content"]
        if b["type"] == "tool_result"
    ]
    assert uses == ["call_a"] and results == ["call_a"]


@respx.mock
async def test_anthropic_newest_unanswered_calls_are_executed_first(mem_store: SqliteStore) -> None:
    route = respx.post(ANTHROPIC).mock(return_value=anthropic_message("ok"))
    session = Session("s", store=mem_store)
    await session.send_messages(dangling("search"))
    await Agent("c", model="anthropic/claude-sonnet-4-5", tools=[search]).run(session=session)
    body = sent(route)
    results = {
        b["tool_use_id"]: json.dumps(b["content"])
        for m in body["messages"]
        if isinstance(m["content"], list)
        for b in m["content"]
        if b["type"] == "tool_result"
    }
    assert set(results) == {"call_a", "call_b"} and "found Rome" in results["call_b"]


@respx.mock
async def test_gemini_request_never_carries_an_unanswered_call(mem_store: SqliteStore) -> None:
    route = respx.post(host="generativelanguage.googleapis.com").mock(return_value=gemini_content("ok"))
    session = Session("s", store=mem_store)
    await session.send_messages(dangling("elsewhere"))
    await Agent("g", model="gemini/gemini-2.0-flash", tools=[search]).run("more?", session=session)
    parts = [p for c in sent(route)["contents"] for p in c["parts"]]
    calls = [p for p in parts if {"functionCall", "function_call"} & set(p)]
    responses = [p for p in parts if {"functionResponse", "function_response"} & set(p)]
    assert len(calls) == 1 and len(responses) == 1
    assert "Rome" not in json.dumps(calls)


async def test_a_stream_closed_early_ends_quietly() -> None:
    stream = Agent("a", model=ScriptedModel().text("one two three")).stream("hi")
    async for _ in stream:
        break
    await stream.aclose()  # type: ignore[attr-defined]


async def test_run_hooks_must_be_run_hooks() -> None:
    with pytest.raises(TypeError, match="RunHooks"):
        await Agent("a", model=ScriptedModel()).run("hi", hooks=object())  # type: ignore[arg-type]


@respx.mock
async def test_invalid_input_is_refused_before_any_request(mem_store: SqliteStore) -> None:
    from agnt5.errors import MessageValidationError

    route = respx.post(OPENAI).mock(return_value=openai_chat("never"))
    session = Session("s", store=mem_store)
    with pytest.raises(MessageValidationError):
        await Agent("a").run({"role": "wizard", "content": "hi"}, session=session)
    assert route.call_count == 0 and await session.history() == []


@pytest.mark.parametrize("idempotent", [False, True], ids=["journalled", "not-journalled"])
async def test_a_step_that_fails_to_store_stops_the_run_before_the_next_request(
    mem_store: SqliteStore, idempotent: bool
) -> None:
    from agnt5.errors import StoreError

    session = Session("s", store=mem_store)
    real_store = session._store_new

    async def failing_tool_steps(new: Any, events: Any, kv: Any) -> Any:
        if any(m.body.get("role") == "tool" for m in new):
            raise StoreError("disk full")
        return await real_store(new, events, kv)

    session._store_new = failing_tool_steps  # type: ignore[method-assign]
    model = ScriptedModel().tool_call("search", {"query": "x"}).text("never sent")
    agent = Agent("a", model=model, tools=[tool(search, idempotent=idempotent)])
    with pytest.raises(StoreError, match="disk full"):
        await agent.run("go", session=session)
    # The step is stored before the next request: a failed write costs no further model call.
    assert len(model.calls) == 1
    assert [m["role"] for m in await session.history()] == ["user"]


async def test_override_with_function_and_test_models() -> None:
    from agnt5.testing import FunctionModel, TestModel

    agent = Agent("a", instructions="Help {temp:who?}.", tools=[whoami], deps_type=Deps)

    def reply(messages: list[dict[str, Any]], info: Any) -> Any:
        if messages[-1]["role"] == "tool":
            return f"tool said: {messages[-1]['content']}"
        return FunctionModel.tool_call("whoami", {"topic": messages[-1]["content"]})

    with agent.override(model=FunctionModel(reply), deps=Deps("fake", [])):
        result = await agent.run("billing")
    assert result.output == "tool said: caller=fake topic=billing"

    test_model = TestModel()
    deps = Deps("tm", [])
    with agent.override(model=test_model):
        result = await agent.run("anything", deps=deps)
    assert deps.lookups and "caller=tm" in result.output
    assert test_model.requests[0].tools == ["whoami"]
