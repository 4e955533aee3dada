"""Input and output guardrails: a tripwire raises GuardrailTripped, stores nothing it guards, and
leaves a `guardrail_tripped` audit event."""

from __future__ import annotations

import asyncio
from typing import Any

import pydantic
import pytest
import respx
from _wire import openai_call, openai_chat

from agnt5 import Agent, GuardrailResult, GuardrailTripped, RunContext, Session
from agnt5.guardrails import Guardrail
from agnt5.store.sqlite import SqliteStore
from agnt5.testing import ScriptedModel

OPENAI = "https://api.openai.com/v1/chat/completions"


@pytest.fixture
async def mem_store() -> Any:
    store = SqliteStore(":memory:")
    yield store
    await store.close()


def no_secrets(ctx: RunContext[Any], text: Any) -> GuardrailResult:
    found = "password" in str(text).lower()
    return GuardrailResult(found, "the input contains a password" if found else "", {"rule": "secrets"})


async def short_answers(ctx: RunContext[Any], output: Any) -> bool:
    await asyncio.sleep(0)
    return len(str(output)) > 20  # True trips


@respx.mock
async def test_tripped_input_guardrail_stores_nothing_and_calls_no_model(mem_store: SqliteStore) -> None:
    route = respx.post(OPENAI).mock(return_value=openai_chat("never"))
    session = Session("s", store=mem_store)
    agent = Agent("a", input_guardrails=[no_secrets])
    with pytest.raises(GuardrailTripped) as caught:
        await agent.run("my password is hunter2", session=session)
    error = caught.value
    assert (error.guardrail, error.kind, error.reason) == (
        "no_secrets",
        "input",
        "the input contains a password",
    )
    assert error.info == {"rule": "secrets"} and "no_secrets" in str(error)
    assert route.call_count == 0
    assert await session.history() == []
    events = [e for e in await session.events() if e.type != "message_appended"]
    assert [e.type for e in events] == ["guardrail_tripped"]
    assert events[0].data["guardrail"] == "no_secrets" and events[0].data["kind"] == "input"


@respx.mock
async def test_passing_guardrails_let_the_run_go_on(mem_store: SqliteStore) -> None:
    respx.post(OPENAI).mock(return_value=openai_chat("Fine."))
    agent = Agent("a", input_guardrails=[no_secrets], output_guardrails=[short_answers])
    result = await agent.run("hello", session=Session("s", store=mem_store))
    assert result.output == "Fine."


@respx.mock
async def test_tripped_output_guardrail_stores_no_final_answer(mem_store: SqliteStore) -> None:
    respx.post(OPENAI).mock(
        side_effect=[
            openai_chat(tool_calls=[openai_call("lookup", {"q": "x"})]),
            openai_chat("This answer is much too long to pass."),
        ]
    )

    def lookup(q: str) -> str:
        """Look up."""
        return "data"

    session = Session("s", store=mem_store)
    agent = Agent("a", tools=[lookup], output_guardrails=[Guardrail(short_answers, name="brevity")])
    with pytest.raises(GuardrailTripped) as caught:
        await agent.run("go", session=session)
    assert (caught.value.guardrail, caught.value.kind) == ("brevity", "output")
    # The tool step is stored whole; the answer that tripped is not.
    assert [m["role"] for m in await session.history()] == ["user", "assistant", "tool"]
    types = [e.type for e in await session.events() if e.type != "message_appended"]
    assert types[-2:] == ["guardrail_tripped", "agent_run_failed"]
    assert "agent_run_finished" not in types


async def test_output_guardrails_of_the_answering_agent_see_structured_output() -> None:
    class Refund(pydantic.BaseModel):
        amount: int

    seen: list[Any] = []

    def cap(ctx: RunContext[Any], output: Any) -> GuardrailResult:
        seen.append((ctx.agent_name, output))
        return GuardrailResult(output.amount > 100, "refund over the cap")

    model = ScriptedModel().tool_call("transfer_to_billing").output({"amount": 500})
    billing = Agent("billing", model=model, output_type=Refund, output_guardrails=[cap])
    front = Agent("front", model=model, handoffs=[billing], output_guardrails=[short_answers])
    with pytest.raises(GuardrailTripped, match="refund over the cap"):
        await front.run("refund me")
    assert seen == [("billing", Refund(amount=500))]


async def test_guardrails_run_concurrently_and_the_first_in_order_is_reported() -> None:
    both = asyncio.Barrier(2)

    async def slow_pass(ctx: RunContext[Any], text: Any) -> bool:
        await asyncio.wait_for(both.wait(), 5)
        return False

    async def slow_trip(ctx: RunContext[Any], text: Any) -> GuardrailResult:
        await asyncio.wait_for(both.wait(), 5)
        return GuardrailResult(True, "second")

    agent = Agent("a", model=ScriptedModel(), input_guardrails=[slow_pass, slow_trip, no_secrets])
    with pytest.raises(GuardrailTripped) as caught:
        await agent.run("a password")
    assert caught.value.guardrail == "slow_trip"


async def test_a_guardrail_returning_something_else_is_a_type_error() -> None:
    agent = Agent("a", model=ScriptedModel(), input_guardrails=[lambda ctx, text: "yes"])
    with pytest.raises(TypeError, match="GuardrailResult or a bool"):
        await agent.run("hi")
    with pytest.raises(TypeError, match="guardrail is a function"):
        Agent("a", input_guardrails=["not callable"])  # type: ignore[list-item]
