"""UsageLimits on recorded-shape usage (OpenAI wire responses): checked before each request (the
prompt counted locally) and after each response; the error carries the partial run."""

from __future__ import annotations

import math
from typing import Any

import pytest
import respx
from _wire import openai_call, openai_chat

from agnt5 import Agent, Session, UsageLimitExceeded, UsageLimits
from agnt5.store.sqlite import SqliteStore

OPENAI = "https://api.openai.com/v1/chat/completions"


@pytest.fixture
async def mem_store() -> Any:
    store = SqliteStore(":memory:")
    yield store
    await store.close()


calls: list[str] = []


def lookup(q: str) -> str:
    """Look something up."""
    calls.append(q)
    return f"result for {q}"


def looping(request: Any) -> Any:
    return openai_chat(
        tool_calls=[openai_call("lookup", {"q": "again"})], prompt_tokens=50, completion_tokens=10
    )


@respx.mock
async def test_requests_limit_stops_before_the_next_request(mem_store: SqliteStore) -> None:
    route = respx.post(OPENAI).mock(side_effect=looping)
    session = Session("s", store=mem_store)
    with pytest.raises(UsageLimitExceeded) as caught:
        await Agent("a", tools=[lookup]).run("go", session=session, usage_limits=UsageLimits(requests=2))
    error = caught.value
    assert (error.limit, error.value, error.actual) == ("requests", 2, 3)
    assert route.call_count == 2
    assert error.partial.turns == 2 and error.partial.usage.prompt_tokens == 100
    assert [m["role"] for m in error.partial.messages] == ["user", "assistant", "tool", "assistant", "tool"]
    assert [m["role"] for m in await session.history()] == ["user", "assistant", "tool", "assistant", "tool"]
    failed = [e for e in await session.events() if e.type == "agent_run_failed"]
    assert failed[0].data["error"] == "UsageLimitExceeded"


@respx.mock
async def test_a_prompt_over_the_input_limit_is_never_sent() -> None:
    route = respx.post(OPENAI).mock(return_value=openai_chat("never"))
    with pytest.raises(UsageLimitExceeded) as caught:
        await Agent("a").run("word " * 200, usage_limits=UsageLimits(input_tokens=100))
    assert caught.value.limit == "input_tokens" and caught.value.actual > 200
    assert "counted locally" in str(caught.value)
    assert route.call_count == 0
    assert caught.value.partial.turns == 0


@respx.mock
async def test_reported_input_tokens_count_toward_the_next_prediction() -> None:
    # The first response reports 50 prompt tokens; the second prompt (~40 tokens) would pass 60.
    route = respx.post(OPENAI).mock(side_effect=looping)
    with pytest.raises(UsageLimitExceeded) as caught:
        await Agent("a", tools=[lookup]).run("go", usage_limits=UsageLimits(input_tokens=60))
    assert caught.value.limit == "input_tokens" and route.call_count == 1
    assert caught.value.partial.usage.prompt_tokens == 50


@respx.mock
async def test_output_and_total_tokens_are_checked_after_each_response() -> None:
    respx.post(OPENAI).mock(side_effect=looping)
    with pytest.raises(UsageLimitExceeded) as caught:
        await Agent("a", tools=[lookup]).run("go", usage_limits=UsageLimits(output_tokens=15))
    assert (caught.value.limit, caught.value.actual) == ("output_tokens", 20)
    # The second response was paid for (it is on the partial usage) but its tool calls never ran.
    assert caught.value.partial.usage.completion_tokens == 20
    assert [m["role"] for m in caught.value.partial.messages] == ["user", "assistant", "tool"]

    with pytest.raises(UsageLimitExceeded) as caught:
        await Agent("a", tools=[lookup]).run("go", usage_limits=UsageLimits(total_tokens=100))
    assert caught.value.limit == "total_tokens"


@respx.mock
async def test_cost_limit_on_litellm_prices() -> None:
    respx.post(OPENAI).mock(
        return_value=openai_chat("expensive", prompt_tokens=2_000_000, completion_tokens=10)
    )
    with pytest.raises(UsageLimitExceeded) as caught:
        await Agent("a").run("go", usage_limits=UsageLimits(cost=0.10))
    assert caught.value.limit == "cost" and caught.value.actual > 0.10  # gpt-4o-mini: $0.15 per 1M input
    assert caught.value.partial.usage.cost == caught.value.actual


@respx.mock
async def test_a_cost_limit_that_cannot_be_checked_says_so() -> None:
    respx.post(OPENAI).mock(return_value=openai_chat("ok", model="my-finetune"))
    agent = Agent("a", model="openai/my-unpriced-finetune")
    assert (await agent.run("go")).usage.cost is None  # litellm has no price for this model
    with pytest.raises(UsageLimitExceeded, match="cannot be checked") as caught:
        await agent.run("go", usage_limits=UsageLimits(cost=1.0))
    assert caught.value.limit == "cost" and math.isnan(caught.value.actual)
    # Limits on tokens alone work for such a model.
    assert (await agent.run("go", usage_limits=UsageLimits(total_tokens=1000))).output == "ok"


@respx.mock
async def test_tool_calls_limit_stops_before_the_tools_run(mem_store: SqliteStore) -> None:
    calls.clear()
    respx.post(OPENAI).mock(
        return_value=openai_chat(
            tool_calls=[openai_call("lookup", {"q": "a"}), openai_call("lookup", {"q": "b"})]
        )
    )
    session = Session("s", store=mem_store)
    with pytest.raises(UsageLimitExceeded) as caught:
        await Agent("a", tools=[lookup]).run("go", session=session, usage_limits=UsageLimits(tool_calls=1))
    assert (caught.value.limit, caught.value.actual) == ("tool_calls", 2)
    assert calls == []
    assert [m["role"] for m in await session.history()] == ["user"]  # no call stored without results


def test_usage_limits_are_validated() -> None:
    with pytest.raises(ValueError, match="requests"):
        UsageLimits(requests=-1)
    with pytest.raises(ValueError, match="cost"):
        UsageLimits(cost="5")  # type: ignore[arg-type]
    assert UsageLimits() == UsageLimits(None, None, None, None, None, None)
