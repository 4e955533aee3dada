"""Lifecycle hooks: order, editing the outgoing messages, blocking/replacing tool calls, errors."""

from __future__ import annotations

import json
from typing import Any

import pytest
import respx
from _wire import openai_call, openai_chat, sent

from agnt5 import Agent, AgentResult, RunContext, RunHooks, Session, tool
from agnt5.errors import HookError
from agnt5.models import ModelResponse, ToolCall
from agnt5.store.sqlite import SqliteStore
from agnt5.testing import ScriptedModel
from agnt5.tools import ToolResult

OPENAI = "https://api.openai.com/v1/chat/completions"


@pytest.fixture
async def mem_store() -> Any:
    store = SqliteStore(":memory:")
    yield store
    await store.close()


calls_made: list[str] = []


@tool
def charge(amount: int) -> str:
    """Charge the card."""
    calls_made.append(f"charge {amount}")
    return f"charged {amount}"


@tool
def refund(amount: int) -> str:
    """Refund the card."""
    calls_made.append(f"refund {amount}")
    return f"refunded {amount}"


class Recorder(RunHooks[Any]):
    def __init__(self, label: str, log: list[str]) -> None:
        self.label, self.log = label, log

    async def on_run_start(self, ctx: RunContext[Any], agent: Agent[Any, Any]) -> None:
        self.log.append(f"{self.label}:start:{agent.name}:{ctx.deps}")

    async def on_run_end(
        self, ctx: RunContext[Any], agent: Agent[Any, Any], result: AgentResult[Any]
    ) -> None:
        self.log.append(f"{self.label}:end:{agent.name}:{result.output}")

    async def before_model_request(
        self, ctx: RunContext[Any], agent: Agent[Any, Any], messages: list[dict[str, Any]]
    ) -> list[dict[str, Any]] | None:
        self.log.append(f"{self.label}:request:{len(messages)}")
        return None

    async def after_model_response(
        self, ctx: RunContext[Any], agent: Agent[Any, Any], response: ModelResponse
    ) -> None:
        self.log.append(f"{self.label}:response:{response.text or response.tool_calls[0].name}")

    async def before_tool_call(
        self, ctx: RunContext[Any], agent: Agent[Any, Any], call: ToolCall
    ) -> ToolCall | ToolResult | str | None:
        self.log.append(f"{self.label}:tool:{call.name}:{ctx.tool_call_id}")
        return None

    async def after_tool_call(
        self, ctx: RunContext[Any], agent: Agent[Any, Any], call: ToolCall, result: ToolResult
    ) -> ToolResult | None:
        self.log.append(f"{self.label}:tool-done:{result.content}")
        return None

    async def on_handoff(
        self, ctx: RunContext[Any], from_agent: Agent[Any, Any], to_agent: Agent[Any, Any]
    ) -> None:
        self.log.append(f"{self.label}:handoff:{from_agent.name}->{to_agent.name}")


async def test_agent_and_run_hooks_see_every_moment_in_order() -> None:
    log: list[str] = []
    model = ScriptedModel().tool_call("transfer_to_cashier").tool_call("charge", {"amount": 5}, id="c1")
    model.text("Charged.")
    cashier = Agent("cashier", model=model, tools=[charge], hooks=Recorder("cashier", log))
    front = Agent("front", model=model, handoffs=[cashier], hooks=Recorder("front", log))
    result = await front.run("pay 5", deps="D", hooks=Recorder("run", log))
    assert result.output == "Charged."
    assert log == [
        "front:start:front:D",
        "run:start:front:D",
        "front:request:1",
        "run:request:1",
        "front:response:transfer_to_cashier",
        "run:response:transfer_to_cashier",
        "front:handoff:front->cashier",
        "run:handoff:front->cashier",
        "cashier:request:3",
        "run:request:3",
        "cashier:response:charge",
        "run:response:charge",
        "cashier:tool:charge:c1",
        "run:tool:charge:c1",
        "cashier:tool-done:charged 5",
        "run:tool-done:charged 5",
        "cashier:request:5",
        "run:request:5",
        "cashier:response:Charged.",
        "run:response:Charged.",
        "cashier:end:cashier:Charged.",
        "run:end:cashier:Charged.",
    ]


class Redact(RunHooks[Any]):
    async def before_model_request(
        self, ctx: RunContext[Any], agent: Agent[Any, Any], messages: list[dict[str, Any]]
    ) -> list[dict[str, Any]] | None:
        return [
            {**m, "content": m["content"].replace("4111-1111", "[card]")}
            if isinstance(m.get("content"), str)
            else m
            for m in messages
        ] + [{"role": "system", "content": "Never repeat card numbers."}]


@respx.mock
async def test_before_model_request_edits_what_is_sent_not_what_is_stored(mem_store: SqliteStore) -> None:
    route = respx.post(OPENAI).mock(return_value=openai_chat("ok"))
    session = Session("s", store=mem_store)
    await Agent("a", hooks=Redact()).run("my card is 4111-1111", session=session)
    assert sent(route)["messages"] == [
        {"role": "user", "content": "my card is [card]"},
        {"role": "system", "content": "Never repeat card numbers."},
    ]
    assert (await session.history())[0]["content"] == "my card is 4111-1111"


class Policy(RunHooks[Any]):
    async def before_tool_call(
        self, ctx: RunContext[Any], agent: Agent[Any, Any], call: ToolCall
    ) -> ToolCall | ToolResult | str | None:
        amount = json.loads(call.arguments)["amount"]
        if call.name == "charge" and amount > 100:
            return ToolResult("Blocked: charges over 100 need approval.", is_error=True)
        if call.name == "refund":
            return ToolCall(call.id, "refund", json.dumps({"amount": min(amount, 10)}))  # capped
        return None

    async def after_tool_call(
        self, ctx: RunContext[Any], agent: Agent[Any, Any], call: ToolCall, result: ToolResult
    ) -> ToolResult | None:
        return ToolResult(result.content.upper()) if call.name == "refund" else None


@respx.mock
async def test_before_tool_call_blocks_or_replaces_and_after_tool_call_replaces(
    mem_store: SqliteStore,
) -> None:
    calls_made.clear()
    route = respx.post(OPENAI).mock(
        side_effect=[
            openai_chat(
                tool_calls=[
                    openai_call("charge", {"amount": 500}, "c1"),
                    openai_call("refund", {"amount": 99}, "c2"),
                    openai_call("charge", {"amount": 5}, "c3"),
                ]
            ),
            openai_chat("done"),
        ]
    )
    session = Session("s", store=mem_store)
    await Agent("a", tools=[charge, refund]).run("go", session=session, hooks=Policy())
    assert sorted(calls_made) == ["charge 5", "refund 10"]  # the 500 charge never ran
    results = {m["tool_call_id"]: m["content"] for m in sent(route, 1)["messages"] if m["role"] == "tool"}
    assert results == {
        "c1": "Blocked: charges over 100 need approval.",
        "c2": "REFUNDED 10",
        "c3": "charged 5",
    }
    events = {e.data["call_id"]: e.data for e in await session.events() if e.type == "tool_result"}
    assert events["c1"]["is_error"] is True and events["c3"]["is_error"] is False


class Explodes(RunHooks[Any]):
    def __init__(self, where: str) -> None:
        self.where = where

    async def after_tool_call(
        self, ctx: RunContext[Any], agent: Agent[Any, Any], call: ToolCall, result: ToolResult
    ) -> ToolResult | None:
        if self.where == "after_tool_call":
            raise RuntimeError("audit service down")
        return None

    async def after_model_response(
        self, ctx: RunContext[Any], agent: Agent[Any, Any], response: ModelResponse
    ) -> None:
        if self.where == "after_model_response" and response.tool_calls:
            raise KeyError("boom")

    async def on_run_start(self, ctx: RunContext[Any], agent: Agent[Any, Any]) -> None:
        if self.where == "on_run_start":
            raise ValueError("nope")


@pytest.mark.parametrize("where", ["after_tool_call", "after_model_response", "on_run_start"])
async def test_hook_errors_are_typed_and_leave_the_session_consistent(
    where: str, mem_store: SqliteStore
) -> None:
    calls_made.clear()
    model = ScriptedModel().tool_call("charge", {"amount": 1}).text("never")
    session = Session("s", store=mem_store)
    with pytest.raises(HookError) as caught:
        await Agent("a", model=model, tools=[charge]).run("go", session=session, hooks=Explodes(where))
    assert caught.value.hook == where
    assert caught.value.__cause__ is not None and where in str(caught.value)
    roles = [m["role"] for m in await session.history()]
    # No assistant tool-call message without its results, and nothing at all if the run never started.
    assert roles == ([] if where == "on_run_start" else ["user"])
    types = [e.type for e in await session.events()]
    assert ("agent_run_failed" in types) == (where != "on_run_start")


async def test_a_bad_before_tool_call_return_is_a_hook_error() -> None:
    class Bad(RunHooks[Any]):
        async def before_tool_call(self, ctx: RunContext[Any], agent: Agent[Any, Any], call: ToolCall) -> Any:
            return 42

    model = ScriptedModel().tool_call("charge", {"amount": 1}).text("never")
    with pytest.raises(HookError, match="before_tool_call returned int"):
        await Agent("a", model=model, tools=[charge]).run("go", hooks=Bad())


def test_hooks_must_be_run_hooks() -> None:
    with pytest.raises(TypeError, match="RunHooks"):
        Agent("a", hooks=object())  # type: ignore[arg-type]


async def test_a_failing_on_run_end_leaves_a_finished_run(mem_store: SqliteStore) -> None:
    class EndFails(RunHooks[Any]):
        async def on_run_end(
            self, ctx: RunContext[Any], agent: Agent[Any, Any], result: AgentResult[Any]
        ) -> None:
            raise RuntimeError("metrics down")

    session = Session("s", store=mem_store)
    with pytest.raises(HookError, match="on_run_end"):
        await Agent("a", model=ScriptedModel().text("hello")).run("hi", session=session, hooks=EndFails())
    assert [m["content"] for m in await session.history()] == ["hi", "hello"]
    types = [e.type for e in await session.events() if e.type != "message_appended"]
    assert types == ["agent_run_started", "agent_run_finished"]


@respx.mock
async def test_handoff_tool_describes_the_target_from_its_first_text_instructions() -> None:
    route = respx.post(OPENAI).mock(return_value=openai_chat("hi"))
    expert = Agent("expert", instructions=[lambda ctx: "dynamic", "Answers billing questions.\nMore."])
    await Agent("front", handoffs=[expert]).run("hi")
    (schema,) = sent(route)["tools"]
    assert schema["function"]["description"] == (
        "Hand the conversation over to the agent 'expert'. It: Answers billing questions."
    )
