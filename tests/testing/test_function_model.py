"""FunctionModel: replies computed from the messages and tools a request carried, sync or async."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pydantic
import pytest

from agnt5 import Agent, Session
from agnt5.agent_events import FinalResult, TextDelta, ToolCallEvent
from agnt5.errors import InvalidTypeError, RateLimitError
from agnt5.models import ModelResponse, ResponseComplete, ToolCall, ToolCallDelta, Usage
from agnt5.models import TextDelta as ModelTextDelta
from agnt5.store.sqlite import SqliteStore
from agnt5.testing import AgentInfo, FunctionModel, ModelRequest
from agnt5.tokens import count_tokens


def lookup(order_id: int) -> str:
    """Look an order up."""
    return f"order {order_id}: shipped"


class Verdict(pydantic.BaseModel):
    refund: bool
    reason: str


LOOKUP_SCHEMA = {
    "type": "function",
    "function": {
        "name": "lookup",
        "description": "Look an order up.",
        "parameters": {
            "type": "object",
            "properties": {"order_id": {"type": "integer"}},
            "required": ["order_id"],
        },
    },
}


# --- driven directly --------------------------------------------------------------------------------


async def test_the_function_sees_messages_and_info() -> None:
    seen: list[tuple[list[dict[str, Any]], AgentInfo]] = []

    def reply(messages: list[dict[str, Any]], info: AgentInfo) -> str:
        seen.append((messages, info))
        return f"{len(messages)} messages, tools {info.tool_names}"

    model = FunctionModel(reply)
    model.params["temperature"] = 0.2
    history = [{"role": "user", "content": "hi", "metadata": {"x": 1}, "id": "m1"}]
    response = await model.generate(history, tools=[LOOKUP_SCHEMA], tool_choice="auto")
    assert response.text == "1 messages, tools ['lookup']"
    assert response.finish_reason == "stop" and response.model == "function-model"
    messages, info = seen[0]
    assert messages == [{"role": "user", "content": "hi"}]  # provider format: agnt5 keys gone
    assert info.tools == [LOOKUP_SCHEMA] and info.tool_choice == "auto"
    assert info.tool("lookup") == LOOKUP_SCHEMA["function"] and info.tool("nope") is None
    assert info.model_settings == {"temperature": 0.2} and info.stream is False
    assert info.response_format is None and info.output_schema is None
    assert model.requests == [ModelRequest(messages, info)]
    assert model.calls[0].tools == ["lookup"]


async def test_an_async_function_and_tool_call_replies() -> None:
    async def reply(messages: list[dict[str, Any]], info: AgentInfo) -> Any:
        await asyncio.sleep(0)
        return [
            FunctionModel.tool_call("lookup", {"order_id": 1}, id="c1"),
            FunctionModel.tool_call("lookup", "{}"),
        ]

    response = await FunctionModel(reply).generate([{"role": "user", "content": "go"}])
    assert response.text == "" and response.finish_reason == "tool_calls"
    assert response.tool_calls[0] == ToolCall("c1", "lookup", '{"order_id": 1}')
    assert response.tool_calls[1].arguments == "{}" and response.tool_calls[1].id.startswith("call_")
    single = await FunctionModel(lambda m, i: ToolCall("c2", "f", "{}")).generate([])
    assert single.tool_calls == [ToolCall("c2", "f", "{}")]


async def test_structured_output_and_the_output_schema() -> None:
    model = FunctionModel(
        lambda messages, info: Verdict(refund=True, reason=str((info.output_schema or {}).get("title")))
    )
    response = await model.generate([{"role": "user", "content": "?"}], response_format=Verdict)
    assert Verdict.model_validate_json(response.text) == Verdict(refund=True, reason="Verdict")
    assert model.requests[0].info.output_schema == Verdict.model_json_schema()
    assert model.requests[0].response_format is Verdict
    as_dict = {"type": "json_schema", "json_schema": {"name": "v", "schema": {"type": "object"}}}
    await model.generate([], response_format=as_dict)
    assert model.requests[1].info.output_schema == {"type": "object"}


async def test_usage_counts_tokens_unless_the_reply_has_its_own() -> None:
    messages = [{"role": "user", "content": "How long do refunds take for orders paid by card?"}]
    model = FunctionModel(lambda m, i: "Five business days.")
    response = await model.generate(messages)
    assert response.usage.prompt_tokens == count_tokens(messages) > 10
    assert response.usage.completion_tokens == 4
    assert response.usage.total_tokens == response.usage.prompt_tokens + 4
    assert (response.usage.requests, response.usage.cost) == (1, 0.0)
    with_tools = await model.generate(messages, tools=[LOOKUP_SCHEMA])
    assert with_tools.usage.prompt_tokens > response.usage.prompt_tokens
    own = Usage(7, 3, 10, 0.5, requests=1)
    kept = await FunctionModel(lambda m, i: ModelResponse("x", usage=own)).generate(messages)
    assert kept.usage == own and kept.model == "function-model"


async def test_streaming_yields_text_pieces_and_calls() -> None:
    model = FunctionModel(lambda m, i: "refunds take five days")
    events = [e async for e in model.stream([{"role": "user", "content": "?"}])]
    assert [e.text for e in events if isinstance(e, ModelTextDelta)] == ["refunds", " take", " five", " days"]
    assert isinstance(events[-1], ResponseComplete) and events[-1].response.text == "refunds take five days"
    assert model.requests[0].info.stream is True
    calls = FunctionModel(lambda m, i: [ToolCall("c1", "lookup", '{"order_id": 2}')])
    events = [e async for e in calls.stream([])]
    assert events[0] == ToolCallDelta(0, "c1", "lookup", '{"order_id": 2}')
    assert isinstance(events[1], ResponseComplete) and events[1].response.tool_calls[0].id == "c1"


async def test_bad_replies_and_errors() -> None:
    with pytest.raises(InvalidTypeError, match="returned dict"):
        await FunctionModel(lambda m, i: {"role": "assistant"}).generate([])  # type: ignore[arg-type,return-value]
    with pytest.raises(InvalidTypeError, match="returned list"):
        await FunctionModel(lambda m, i: []).generate([])

    def slow(messages: list[dict[str, Any]], info: AgentInfo) -> str:
        raise RateLimitError("slow down")

    with pytest.raises(RateLimitError, match="slow down"):
        await FunctionModel(slow).generate([])
    with pytest.raises(InvalidTypeError, match="needs a function"):
        FunctionModel("not callable")  # type: ignore[arg-type]


def test_function_model_never_imports_litellm() -> None:
    import subprocess
    import sys

    code = (
        "import sys, asyncio\n"
        "from agnt5 import Agent\n"
        "from agnt5.testing import FunctionModel, TestModel\n"
        "def f(x: int) -> int:\n    return x\n"
        "r = asyncio.run(Agent('a', model=FunctionModel(lambda m, i: 'ok')).run('hi'))\n"
        "assert r.output == 'ok'\n"
        "r = asyncio.run(Agent('a', model=TestModel(), tools=[f]).run('hi'))\n"
        "assert r.output == '{\"f\": 0}', r.output\n"
        "assert 'litellm' not in sys.modules, 'litellm was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


# --- driving an Agent -------------------------------------------------------------------------------


def support_reply(messages: list[dict[str, Any]], info: AgentInfo) -> Any:
    """Looks an order up when the user names one, then answers from the tool result."""
    last = messages[-1]
    if last["role"] == "tool":
        return f"Your {last['content']}."
    order = next((int(w) for w in str(last["content"]).split() if w.isdigit()), None)
    if order is not None and "lookup" in info.tool_names:
        return FunctionModel.tool_call("lookup", {"order_id": order})
    return "Which order?"


async def test_an_agent_run_depends_on_the_prompt(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "fm.db"))
    try:
        model = FunctionModel(support_reply)
        agent = Agent("support", model=model, instructions="Be brief.", tools=[lookup])
        session = Session("s", store=store)
        first = await agent.run("where is my order?", session=session)
        assert first.output == "Which order?"
        second = await agent.run("it is order 42", session=session)
        assert second.output == "Your order 42: shipped."
        assert len(model.requests) == 3
        sent = model.requests[1].messages
        assert sent[0] == {"role": "system", "content": "Be brief."}
        assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
        assert model.requests[2].messages[-1]["role"] == "tool"
        assert second.usage.prompt_tokens > 0 and second.usage.requests == 2
    finally:
        await store.close()


async def test_instructions_rendered_from_state_reach_the_function(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "state.db"))
    try:
        session = Session("s", user_id="ana", store=store)
        session.set_state("topic", "quantum batteries")
        session.set_state("name", "Ana", scope="user")
        model = FunctionModel(lambda messages, info: messages[0]["content"])
        agent = Agent("researcher", model=model, instructions="Research {topic} for {user:name}.")
        result = await agent.run("go", session=session)
        assert result.output == "Research quantum batteries for Ana."
    finally:
        await store.close()


async def test_structured_output_through_an_agent() -> None:
    def judge(messages: list[dict[str, Any]], info: AgentInfo) -> Any:
        assert info.output_schema is not None and "refund" in info.output_schema["properties"]
        return Verdict(refund=True, reason="double charge")

    result = await Agent("judge", model=FunctionModel(judge), output_type=Verdict).run("decide")
    assert result.output == Verdict(refund=True, reason="double charge")

    def by_tool(messages: list[dict[str, Any]], info: AgentInfo) -> Any:
        output = info.tool("final_result")
        assert output is not None and info.output_schema is None
        return FunctionModel.tool_call("final_result", {"refund": False, "reason": "on time"})

    tool_model = FunctionModel(by_tool, supports_response_schema=False)
    result = await Agent("judge", model=tool_model, output_type=Verdict).run("decide")
    assert result.output == Verdict(refund=False, reason="on time")


async def test_streaming_an_agent_run() -> None:
    model = FunctionModel(support_reply)
    events = [e async for e in Agent("a", model=model, tools=[lookup]).stream("order 7 please")]
    assert [e.name for e in events if isinstance(e, ToolCallEvent)] == ["lookup"]
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Your order 7: shipped."
    final = events[-1]
    assert isinstance(final, FinalResult) and final.result.output == "Your order 7: shipped."


async def test_concurrent_runs_each_get_their_own_prompt() -> None:
    def echo(messages: list[dict[str, Any]], info: AgentInfo) -> str:
        return json.dumps([m["content"] for m in messages if m["role"] == "user"])

    model = FunctionModel(echo)
    agent = Agent("echo", model=model)
    results = await asyncio.gather(*(agent.run(f"q{i}") for i in range(10)))
    assert [json.loads(r.output) for r in results] == [[f"q{i}"] for i in range(10)]
