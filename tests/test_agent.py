"""Agent runs end to end through respx-mocked provider HTTP in each provider's wire format."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pydantic
import pytest
import respx
from _wire import anthropic_message, gemini_content, openai_call, openai_chat, openai_stream, sent

from agnt5 import Agent, LanguageModel, RunContext, Session, tool
from agnt5.agent_events import FinalResult, HandoffEvent, TextDelta, ToolCallEvent, ToolResultEvent
from agnt5.errors import AuthenticationError, MaxTurnsExceeded, OutputValidationError, ProviderError
from agnt5.messages import to_provider_messages
from agnt5.store.sqlite import SqliteStore

OPENAI = "https://api.openai.com/v1/chat/completions"
ANTHROPIC = "https://api.anthropic.com/v1/messages"


@pytest.fixture
async def mem_store() -> Any:
    store = SqliteStore(":memory:")
    yield store
    await store.close()


@pytest.fixture(autouse=True)
def instant_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    from agnt5 import _litellm

    async def no_sleep(delay: float) -> None:
        return None

    monkeypatch.setattr(_litellm, "_sleep", no_sleep)


def search_kb_tool(query: str) -> str:
    """Search the knowledge base.

    Args:
        query: What to look for.
    """
    return f"KB: refunds take 5 days ({query})"


def create_ticket_tool(summary: str, priority: int = 3) -> dict[str, Any]:
    """Open a support ticket.

    Args:
        summary: One line describing the problem.
        priority: 1 (urgent) to 5 (low).
    """
    return {"ticket": "T-1", "summary": summary, "priority": priority}


# --- the spec's snippets -------------------------------------------------------------------------


@respx.mock
async def test_spec_integration_with_agents(mem_store: SqliteStore) -> None:
    route = respx.post(OPENAI).mock(
        side_effect=[
            openai_chat(tool_calls=[openai_call("search_kb_tool", {"query": "recent charge"})]),
            openai_chat("Refunds take 5 days; I have opened ticket T-1."),
        ]
    )
    session = Session(
        id="support-ticket-456", user_id="customer-789", metadata={"ticket_type": "billing"}, store=mem_store
    )
    lm = LanguageModel()
    agent = Agent(
        name="support_agent",
        model=lm,
        instructions="You are a helpful customer support agent.",
        tools=[search_kb_tool, create_ticket_tool],
        session=session,
    )
    result = await agent.run("I need help with my recent charge")
    history = await session.history()

    assert result.output == "Refunds take 5 days; I have opened ticket T-1."
    assert result.agent_name == "support_agent" and result.turns == 2
    assert [m["role"] for m in history] == ["user", "assistant", "tool", "assistant"]
    assert history[2]["content"] == "KB: refunds take 5 days (recent charge)"
    assert all(m.metadata["agent"] == "support_agent" for m in history)
    assert history[3]["name"] == "support_agent"
    first = sent(route, 0)
    assert first["messages"][0] == {"role": "system", "content": "You are a helpful customer support agent."}
    assert first["messages"][1] == {"role": "user", "content": "I need help with my recent charge"}
    schema = {t["function"]["name"]: t["function"] for t in first["tools"]}
    assert schema["create_ticket_tool"]["parameters"]["properties"]["priority"]["description"].startswith(
        "1 (urgent)"
    )
    # The second call carries the tool result paired with its call.
    second = sent(route, 1)["messages"]
    assert second[-1]["role"] == "tool" and second[-1]["tool_call_id"] == second[-2]["tool_calls"][0]["id"]
    assert result.usage.prompt_tokens == 100 and result.usage.completion_tokens == 20
    assert result.cost is not None and result.cost > 0


@respx.mock
async def test_spec_multi_agent_coordination(mem_store: SqliteStore) -> None:
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
    literature_agent = Agent(name="literature_reviewer", session=session, tools=[paper_search])
    code_agent = Agent(name="code_analyzer", session=session, tools=[github_search])
    synthesis_agent = Agent(name="synthesizer", session=session, tools=[document_tool])

    papers = await literature_agent.run("Find recent papers")
    implementations = await code_agent.run("Find implementations")
    report = await synthesis_agent.run("Synthesize findings")
    full_history = await session.history()

    assert (papers.output, implementations.output, report.output) == (
        "Found 3 papers.",
        "Found 2 repos.",
        "Report: ...",
    )
    assert [m.metadata["agent"] for m in full_history if m["role"] == "assistant"] == [
        "literature_reviewer",
        "code_analyzer",
        "synthesizer",
    ]
    # The synthesizer saw the other agents' work, attributed by name.
    seen = sent(route, 2)["messages"]
    assert {"role": "assistant", "content": "Found 3 papers.", "name": "literature_reviewer"} in seen
    assert {"role": "assistant", "content": "Found 2 repos.", "name": "code_analyzer"} in seen
    assert session.get_state("research_topic") == "quantum error correction"


@respx.mock
async def test_spec_manual_router_pattern(mem_store: SqliteStore) -> None:
    def classification_tool(text: str) -> str:
        """Classify an inquiry as billing or technical."""
        return "billing"

    def billing_tools(plan: str) -> str:
        """Change the subscription plan."""
        return f"upgraded to {plan}"

    route = respx.post(OPENAI).mock(
        side_effect=[
            openai_chat(tool_calls=[openai_call("classification_tool", {"text": "upgrade"})]),
            openai_chat('{"category": "billing"}'),
            openai_chat("You can upgrade under Settings > Plan."),
        ]
    )
    session = Session(id="customer-inquiry-789", user_id="customer-456", store=mem_store)
    coordinator = Agent(name="router", session=session, tools=[classification_tool])
    routing = await coordinator.run("How do I upgrade my subscription?")

    if routing.category == "billing":
        billing_agent = Agent(name="billing_specialist", session=session, tools=[billing_tools])
        result = await billing_agent.run("Continue from coordinator's analysis")
    else:  # pragma: no cover - the mock routes to billing
        raise AssertionError("routed wrongly")
    assert result.output == "You can upgrade under Settings > Plan."
    seen = sent(route, 2)["messages"]
    assert seen[0] == {"role": "user", "content": "How do I upgrade my subscription?"}
    assert any(m.get("name") == "router" for m in seen)
    with pytest.raises(AttributeError, match="output_type"):
        _ = routing.priority


# --- structured output ---------------------------------------------------------------------------


class Routing(pydantic.BaseModel):
    category: str
    confidence: float


@respx.mock
async def test_structured_output_uses_json_schema_response_format(mem_store: SqliteStore) -> None:
    route = respx.post(OPENAI).mock(return_value=openai_chat('{"category": "technical", "confidence": 0.9}'))
    agent = Agent("router", output_type=Routing, session=Session("s", store=mem_store))
    result = await agent.run("My app crashes")
    assert isinstance(result.output, Routing)
    assert result.category == "technical" and result.confidence == 0.9
    body = sent(route)
    assert body["response_format"]["type"] == "json_schema"
    assert set(body["response_format"]["json_schema"]["schema"]["properties"]) == {"category", "confidence"}


@respx.mock
async def test_structured_output_validation_error_goes_back_once(mem_store: SqliteStore) -> None:
    route = respx.post(OPENAI).mock(
        side_effect=[
            openai_chat('{"category": "billing"}'),
            openai_chat('{"category": "billing", "confidence": 1}'),
        ]
    )
    result = await Agent("router", output_type=Routing, session=Session("s", store=mem_store)).run("hi")
    assert result.output == Routing(category="billing", confidence=1.0)
    correction = sent(route, 1)["messages"][-1]
    assert correction["role"] == "user" and "confidence" in correction["content"]


@respx.mock
async def test_structured_output_fails_after_one_correction(mem_store: SqliteStore) -> None:
    respx.post(OPENAI).mock(side_effect=[openai_chat("not json"), openai_chat('{"category": 3}')])
    with pytest.raises(OutputValidationError, match="Routing"):
        await Agent("router", output_type=Routing, session=Session("s", store=mem_store)).run("hi")


@respx.mock
async def test_structured_output_falls_back_to_final_result_tool(mem_store: SqliteStore) -> None:
    # gpt-3.5-turbo has no JSON-schema response_format in litellm's model map.
    route = respx.post(OPENAI).mock(
        side_effect=[
            openai_chat(tool_calls=[openai_call("final_result", {"category": "billing"})]),
            openai_chat(tool_calls=[openai_call("final_result", {"category": "billing", "confidence": 0.5})]),
        ]
    )
    session = Session("s", store=mem_store)
    result = await Agent("router", model="gpt-3.5-turbo", output_type=Routing, session=session).run("hi")
    assert result.output == Routing(category="billing", confidence=0.5)
    first = sent(route, 0)
    assert "response_format" not in first
    assert [t["function"]["name"] for t in first["tools"]] == ["final_result"]
    # The invalid first call was answered with the validation error, paired with its call.
    assert "confidence" in sent(route, 1)["messages"][-1]["content"]
    history = await session.history()
    assert [m["role"] for m in history] == ["user", "assistant", "tool", "assistant", "tool"]


# --- tools ---------------------------------------------------------------------------------------


@respx.mock
async def test_tool_failures_go_back_to_the_model_and_the_run_goes_on(mem_store: SqliteStore) -> None:
    def divide(a: int, b: int) -> float:
        """Divide a by b."""
        return a / b

    route = respx.post(OPENAI).mock(
        side_effect=[
            openai_chat(
                tool_calls=[
                    openai_call("divide", "{not json", "c1"),
                    openai_call("divide", {"a": "x", "b": 1}, "c2"),
                    openai_call("nope", {}, "c3"),
                    openai_call("divide", {"a": 1, "b": 0}, "c4"),
                    openai_call("divide", {"a": 6, "b": 3}, "c5"),
                ]
            ),
            openai_chat("done"),
        ]
    )
    result = await Agent("calc", tools=[divide], session=Session("s", store=mem_store)).run("compute")
    assert result.output == "done"
    results = {m["tool_call_id"]: m["content"] for m in sent(route, 1)["messages"] if m["role"] == "tool"}
    assert "not valid JSON" in results["c1"]
    assert results["c2"].startswith("Error: invalid arguments for tool 'divide'") and "a" in results["c2"]
    assert "unknown tool 'nope'" in results["c3"] and "divide" in results["c3"]
    assert "ZeroDivisionError" in results["c4"]
    assert results["c5"] == "2.0"


@respx.mock
async def test_parallel_tool_calls_run_concurrently(mem_store: SqliteStore) -> None:
    both_running = asyncio.Barrier(2)

    async def wait_for_partner(name: str) -> str:
        """Returns once the other call is running too."""
        await asyncio.wait_for(both_running.wait(), timeout=5)
        return name

    respx.post(OPENAI).mock(
        side_effect=[
            openai_chat(
                tool_calls=[
                    openai_call("wait_for_partner", {"name": "a"}),
                    openai_call("wait_for_partner", {"name": "b"}),
                ]
            ),
            openai_chat("both"),
        ]
    )
    result = await Agent("p", tools=[wait_for_partner], session=Session("s", store=mem_store)).run("go")
    assert result.output == "both"


@respx.mock
async def test_tool_reads_and_writes_session_state_through_run_context(mem_store: SqliteStore) -> None:
    @tool
    def add_to_cart(item: str, ctx: RunContext) -> str:
        """Add an item to the cart."""
        assert ctx.session is not None
        cart = ctx.session.get_state("cart", [])
        ctx.session.set_state("cart", [*cart, item])
        ctx.session.set_state("last_agent", ctx.agent_name, scope="temp")
        return f"cart has {len(cart) + 1} items"

    route = respx.post(OPENAI).mock(
        side_effect=[
            openai_chat(tool_calls=[openai_call("add_to_cart", {"item": "book"})]),
            openai_chat("ok"),
        ]
    )
    session = Session("s", user_id="u", store=mem_store)
    session.set_state("cart", ["pen"])
    session.set_state("scratch", 1, scope="temp")
    await Agent("shop", tools=[add_to_cart], session=session).run("add a book")
    assert session.get_state("cart") == ["pen", "book"]
    assert "ctx" not in json.dumps(sent(route, 0)["tools"])
    assert session.get_state("scratch", scope="temp") is None  # temp cleared at the end of the run
    assert session.get_state("last_agent", scope="temp") is None


# --- handoffs ------------------------------------------------------------------------------------


@respx.mock
async def test_handoff_continues_on_the_same_session(mem_store: SqliteStore) -> None:
    def refund(amount: float) -> str:
        """Refund an amount."""
        return f"refunded {amount}"

    route = respx.post(OPENAI).mock(
        side_effect=[
            openai_chat(tool_calls=[openai_call("transfer_to_billing_specialist", {})]),
            openai_chat(tool_calls=[openai_call("refund", {"amount": 20})]),
            openai_chat("Refunded $20."),
        ]
    )
    session = Session("s", store=mem_store)
    billing = Agent("billing_specialist", instructions="You handle billing.", tools=[refund])
    router = Agent("router", instructions="Route.", handoffs=[billing], session=session)
    result = await router.run("I was charged twice")

    assert (
        result.agent_name == "billing_specialist" and result.output == "Refunded $20." and result.turns == 3
    )
    assert [t["function"]["name"] for t in sent(route, 0)["tools"]] == ["transfer_to_billing_specialist"]
    second = sent(route, 1)
    assert second["messages"][0] == {"role": "system", "content": "You handle billing."}
    assert second["messages"][1] == {"role": "user", "content": "I was charged twice"}
    events = [e for e in await session.events() if e.type == "handoff"]
    assert [(e.data["from_agent"], e.data["to_agent"]) for e in events] == [("router", "billing_specialist")]
    assert [m.metadata["agent"] for m in await session.history() if m["role"] == "assistant"] == [
        "router",
        "billing_specialist",
        "billing_specialist",
    ]


# --- run lifecycle -------------------------------------------------------------------------------


@respx.mock
async def test_max_turns_raises_with_partial_result_and_complete_pairs(mem_store: SqliteStore) -> None:
    respx.post(OPENAI).mock(
        side_effect=lambda request: openai_chat(tool_calls=[openai_call("search_kb_tool", {"query": "x"})])
    )
    session = Session("s", store=mem_store)
    with pytest.raises(MaxTurnsExceeded) as caught:
        await Agent("loop", tools=[search_kb_tool], session=session, max_turns=3).run("go")
    partial = caught.value.partial
    assert partial.turns == 3 and partial.output is None and len(partial.messages) == 7
    roles = [m["role"] for m in await session.history()]
    assert roles == ["user"] + ["assistant", "tool"] * 3


@respx.mock
async def test_provider_failure_midway_leaves_history_consistent(mem_store: SqliteStore) -> None:
    respx.post(OPENAI).mock(
        side_effect=[
            openai_chat(tool_calls=[openai_call("search_kb_tool", {"query": "x"})]),
            httpx.Response(500, json={"error": {"message": "boom", "type": "server_error"}}),
            httpx.Response(500, json={"error": {"message": "boom", "type": "server_error"}}),
            httpx.Response(500, json={"error": {"message": "boom", "type": "server_error"}}),
        ]
    )
    session = Session("s", store=mem_store)
    session.set_state("scratch", 1, scope="temp")
    with pytest.raises(ProviderError):
        await Agent("a", tools=[search_kb_tool], session=session).run("go")
    assert [m["role"] for m in await session.history()] == ["user", "assistant", "tool"]
    types = [e.type for e in await session.events()]
    assert "agent_run_failed" in types and "agent_run_finished" not in types
    assert session.get_state("scratch", scope="temp") is None


@respx.mock
async def test_cancelled_during_tools_stores_no_orphan_tool_call(mem_store: SqliteStore) -> None:
    started = asyncio.Event()

    async def slow(x: int) -> int:
        """Never finishes in time."""
        started.set()
        await asyncio.sleep(60)
        return x

    respx.post(OPENAI).mock(return_value=openai_chat(tool_calls=[openai_call("slow", {"x": 1})]))
    session = Session("s", store=mem_store)
    task = asyncio.create_task(Agent("a", tools=[slow], session=session).run("go"))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [m["role"] for m in await session.history()] == ["user"]


@respx.mock
async def test_authentication_error_is_typed() -> None:
    respx.post(OPENAI).mock(
        return_value=httpx.Response(
            401,
            json={
                "error": {
                    "message": "Incorrect API key provided",
                    "type": "invalid_request_error",
                    "code": "invalid_api_key",
                }
            },
        )
    )
    with pytest.raises(AuthenticationError, match="OPENAI_API_KEY"):
        await Agent("a").run("hi")


@respx.mock
async def test_agent_without_session_keeps_no_memory_between_runs(mem_store: SqliteStore) -> None:
    route = respx.post(OPENAI).mock(
        side_effect=[openai_chat("Hi Ann."), openai_chat("I don't know."), openai_chat("Your name is Ann.")]
    )
    agent = Agent("a")
    first = await agent.run("I am Ann")
    result = await agent.run("What is my name?")
    # Each run without a session has a fresh history of its own: no hidden memory on the agent.
    assert result.output == "I don't know."
    assert [m["content"] for m in sent(route, 1)["messages"]] == ["What is my name?"]
    assert [m["content"] for m in first.messages] == ["I am Ann", "Hi Ann."]
    # A conversation is a session: pass one per run.
    session = Session("ann", store=mem_store)
    await session.send_messages(to_provider_messages(first.messages))
    await agent.run("What is my name?", session=session)
    assert [m["content"] for m in sent(route, 2)["messages"]] == ["I am Ann", "Hi Ann.", "What is my name?"]


@respx.mock
def test_run_sync_in_a_script() -> None:
    respx.post(OPENAI).mock(return_value=openai_chat("sync ok"))
    assert Agent("a").run_sync("hi").output == "sync ok"


@respx.mock
async def test_run_sync_inside_a_running_loop_like_jupyter(mem_store: SqliteStore) -> None:
    respx.post(OPENAI).mock(return_value=openai_chat("from a notebook"))
    session = Session("s", store=mem_store)
    result = Agent("a", session=session).run_sync("hi")
    assert result.output == "from a notebook"
    assert [m["content"] for m in await session.history()] == ["hi", "from a notebook"]


def test_plain_respx_mock_with_default_settings_intercepts_agent_calls() -> None:
    with respx.mock() as mock:
        route = mock.post(OPENAI).mock(return_value=openai_chat("mocked"))
        assert Agent("a").run_sync("hi").output == "mocked"
        assert route.call_count == 1


# --- other providers' wire formats ---------------------------------------------------------------


@respx.mock
async def test_anthropic_tool_use_loop(mem_store: SqliteStore) -> None:
    route = respx.post(ANTHROPIC).mock(
        side_effect=[
            anthropic_message("Let me look.", [("search_kb_tool", {"query": "refund"})]),
            anthropic_message("Refunds take 5 days."),
        ]
    )
    session = Session("s", store=mem_store)
    agent = Agent(
        "claude",
        model="anthropic/claude-sonnet-4-5",
        instructions="Be brief.",
        tools=[search_kb_tool],
        session=session,
    )
    result = await agent.run("refund?")
    assert result.output == "Refunds take 5 days."
    second = sent(route, 1)
    assert (
        second["system"][0]["text"] == "Be brief."
        if isinstance(second["system"], list)
        else second["system"] == "Be brief."
    )
    tool_use = second["messages"][1]["content"]
    assert any(block["type"] == "tool_use" and block["name"] == "search_kb_tool" for block in tool_use)
    tool_result = second["messages"][2]["content"][0]
    assert tool_result["type"] == "tool_result" and "5 days" in json.dumps(tool_result["content"])
    assert [m["role"] for m in await session.history()] == ["user", "assistant", "tool", "assistant"]


@respx.mock
async def test_gemini_function_call_loop(mem_store: SqliteStore) -> None:
    route = respx.post(host="generativelanguage.googleapis.com").mock(
        side_effect=[
            gemini_content(calls=[("search_kb_tool", {"query": "refund"})]),
            gemini_content("5 days."),
        ]
    )
    session = Session("s", store=mem_store)
    result = await Agent("gem", model="gemini/gemini-2.0-flash", tools=[search_kb_tool], session=session).run(
        "refund?"
    )
    assert result.output == "5 days."
    contents = sent(route, 1)["contents"]
    # Gemini's JSON API accepts proto field names in either case; litellm sends snake_case.
    assert any({"functionCall", "function_call"} & set(part) for part in contents[1]["parts"])
    assert any({"functionResponse", "function_response"} & set(part) for part in contents[2]["parts"])


# --- streaming and audit -------------------------------------------------------------------------


@respx.mock
async def test_stream_yields_typed_events_in_order(mem_store: SqliteStore) -> None:
    respx.post(OPENAI).mock(
        side_effect=[
            openai_stream(
                [
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "call_s1",
                                "type": "function",
                                "function": {"name": "search_kb_tool", "arguments": ""},
                            }
                        ],
                    },
                    {"tool_calls": [{"index": 0, "function": {"arguments": '{"query"'}}]},
                    {"tool_calls": [{"index": 0, "function": {"arguments": ': "x"}'}}]},
                    {"finish_reason": "tool_calls"},
                ]
            ),
            openai_stream(
                [
                    {"role": "assistant", "content": "Refunds "},
                    {"content": "take 5 days."},
                    {"finish_reason": "stop"},
                ]
            ),
        ]
    )
    session = Session("s", store=mem_store)
    events = [e async for e in Agent("a", tools=[search_kb_tool], session=session).stream("refund?")]
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["ToolCallEvent", "ToolResultEvent", "TextDelta", "TextDelta", "FinalResult"]
    assert isinstance(events[0], ToolCallEvent) and events[0].arguments == '{"query": "x"}'
    assert isinstance(events[1], ToolResultEvent) and "5 days" in events[1].content
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Refunds take 5 days."
    final = events[-1]
    assert isinstance(final, FinalResult) and final.result.output == "Refunds take 5 days."
    assert (await session.history())[-1]["content"] == "Refunds take 5 days."


@respx.mock
async def test_stream_reports_handoff(mem_store: SqliteStore) -> None:
    respx.post(OPENAI).mock(
        side_effect=[
            openai_stream(
                [
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "call_h",
                                "type": "function",
                                "function": {"name": "transfer_to_expert", "arguments": "{}"},
                            }
                        ],
                    },
                    {"finish_reason": "tool_calls"},
                ]
            ),
            openai_stream([{"role": "assistant", "content": "Expert here."}, {"finish_reason": "stop"}]),
        ]
    )
    expert = Agent("expert")
    events = [
        e async for e in Agent("front", handoffs=[expert], session=Session("s", store=mem_store)).stream("hi")
    ]
    handoffs = [e for e in events if isinstance(e, HandoffEvent)]
    assert [(h.from_agent, h.to_agent) for h in handoffs] == [("front", "expert")]
    assert isinstance(events[-1], FinalResult) and events[-1].result.agent_name == "expert"


@respx.mock
async def test_audit_events_of_a_run(mem_store: SqliteStore) -> None:
    respx.post(OPENAI).mock(
        side_effect=[
            openai_chat(tool_calls=[openai_call("search_kb_tool", {"query": "x"}, "c1")]),
            openai_chat("done", prompt_tokens=70, completion_tokens=5),
        ]
    )
    session = Session("s", store=mem_store)
    result = await Agent("a", tools=[search_kb_tool], session=session).run("go")
    events = [e for e in await session.events() if e.type != "message_appended"]
    assert [e.type for e in events] == ["agent_run_started", "tool_call", "tool_result", "agent_run_finished"]
    assert all(e.data["run_id"] == result.run_id for e in events)
    assert events[1].data["name"] == "search_kb_tool" and events[2].data["is_error"] is False
    finished = events[-1].data
    assert (finished["turns"], finished["prompt_tokens"], finished["completion_tokens"]) == (2, 120, 15)


# --- construction errors -------------------------------------------------------------------------


def test_agent_rejects_bad_configuration() -> None:
    with pytest.raises(ValueError, match="agent name"):
        Agent("has space")
    with pytest.raises(ValueError, match="max_turns"):
        Agent("a", max_turns=0)
    with pytest.raises(TypeError, match="output_type"):
        Agent("a", output_type=dict)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="several tools named search_kb_tool"):
        Agent("a", tools=[search_kb_tool, [search_kb_tool]])
    with pytest.raises(TypeError, match="message dicts"):
        Agent("a").run_sync(["hi"])  # type: ignore[list-item]


# --- context fitting -----------------------------------------------------------------------------


@respx.mock
async def test_prompt_is_fitted_to_the_context_window_without_touching_the_session(
    mem_store: SqliteStore,
) -> None:
    from agnt5.tokens import count_tokens

    route = respx.post(OPENAI).mock(return_value=openai_chat("fits"))
    session = Session("long", store=mem_store)
    filler = "lorem ipsum dolor sit amet " * 90  # ~540 tokens a message
    for i in range(20):
        await session.send_message({"role": "user", "content": f"question {i}: {filler}"})
        await session.send_message({"role": "assistant", "content": f"answer {i}: {filler}"})
    before = len(await session.history())
    lm = LanguageModel("gpt-4", max_tokens=1000)  # 8,192-token window
    agent = Agent("a", model=lm, instructions="Be brief.", session=session)
    await agent.run("newest question")

    messages = sent(route)["messages"]
    assert messages[0] == {"role": "system", "content": "Be brief."}
    assert messages[1]["role"] == "user"
    assert messages[-1] == {"role": "user", "content": "newest question"}
    assert count_tokens(messages, "gpt-4") <= 8192 - 1000
    assert 2 < len(messages) < 40
    # Nothing was deleted: the session holds everything plus this run's messages.
    assert len(await session.history()) == before + 2


@respx.mock
async def test_system_prompt_larger_than_the_window_is_a_clear_error() -> None:
    from agnt5.errors import TokenBudgetError

    respx.post(OPENAI).mock(return_value=openai_chat("never"))
    agent = Agent("a", model=LanguageModel("gpt-4", max_tokens=1000), instructions="rule " * 9000)
    with pytest.raises(TokenBudgetError, match="system"):
        await agent.run("hi")


@respx.mock
async def test_a_session_with_a_prune_strategy_is_pruned_to_fit(mem_store: SqliteStore) -> None:
    from agnt5.tokens import count_tokens

    route = respx.post(OPENAI).mock(return_value=openai_chat("fits"))
    session = Session("long", retention={"prune_strategy": "sliding_window"}, store=mem_store)
    filler = "lorem ipsum dolor sit amet " * 90
    for i in range(20):
        await session.send_message({"role": "user", "content": f"question {i}: {filler}"})
        await session.send_message({"role": "assistant", "content": f"answer {i}: {filler}"})
    agent = Agent(
        "a", model=LanguageModel("gpt-4", max_tokens=1000), instructions="Be brief.", session=session
    )
    await agent.run("newest question")

    messages = sent(route)["messages"]
    assert count_tokens(messages, "gpt-4") <= 8192 - 1000
    assert messages[0]["role"] == "system" and messages[1]["role"] == "user"
    active = await session.history()
    pruned = [m for m in await session.history(include_pruned=True) if m.pruned]
    assert pruned and len(active) < 42
    assert [m["content"] for m in messages[1:]] == [m["content"] for m in active[:-1]]  # then "fits"
    prunes = [e for e in await session.events() if e.type == "prune"]
    assert len(prunes) == 1 and prunes[0].data["strategy"] == "sliding_window"


# --- memory --------------------------------------------------------------------------------------


async def test_agent_with_memory_remembers_and_recalls_across_sessions(mem_store: SqliteStore) -> None:
    from agnt5 import InMemoryMemoryService, Memory
    from agnt5.testing import ScriptedModel

    memory = Memory(service=InMemoryMemoryService(), user_id="user-456", app_name="clinic")
    first = (
        ScriptedModel()
        .tool_call("remember", {"key": "allergies", "content": "Allergic to penicillin"})
        .text("Noted.")
    )
    await Agent("intake", model=first, memory=memory, session=Session("visit-1", store=mem_store)).run(
        "I am allergic to penicillin"
    )
    assert [r.content for r in await memory.list()] == ["Allergic to penicillin"]

    second = ScriptedModel().tool_call("recall", {"query": "penicillin allergies"}).text("Avoid penicillin.")
    result = await Agent(
        "doctor", model=second, memory=memory, session=Session("visit-2", store=mem_store)
    ).run("What should I avoid?")
    assert result.output == "Avoid penicillin."
    assert second.calls[0].tools == ["remember", "recall"]
    recalled = json.loads(next(m for m in second.calls[1].messages if m["role"] == "tool")["content"])
    assert recalled[0]["key"] == "allergies" and recalled[0]["content"] == "Allergic to penicillin"
