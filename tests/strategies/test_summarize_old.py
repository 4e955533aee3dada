"""summarize_old over respx-mocked OpenAI HTTP: what is sent, where the summary goes, incremental
re-summarising, chunking to the context window, typed failures, concurrent appends, invariants."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
import respx
from _convo import (
    OPENAI_URL,
    FakeModel,
    SmallWindow,
    check_invariants,
    conversations,
    example_store,
    make_session,
    openai_reply,
)
from _mocks import json_response, sleeps  # noqa: F401  (sleeps is a fixture)
from conftest import StoreEnv
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agnt5.errors import PruneModelError, StrategyError, TokenBudgetError
from agnt5.tokens import count_tokens


def _chat(start: int, n: int, system: bool = True) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"role": "system", "content": "You are a tutor."}] if system else []
    for i in range(start, start + n):
        out += [
            {"role": "user", "content": f"question {i} about topic {i}"},
            {"role": "assistant", "content": f"answer {i}"},
        ]
    return out


def _sent(route: Any, index: int = -1) -> str:
    return str(json.loads(route.calls[index].request.content)["messages"][-1]["content"])


@respx.mock
async def test_old_messages_become_one_summary_after_the_system_prompt() -> None:
    session = await make_session(_chat(0, 15))
    route = respx.post(OPENAI_URL).mock(return_value=openai_reply("The student asked about topics 0-9."))
    result = await session.prune(
        strategy="summarize_old", threshold=20, keep_recent=10, summary_max_tokens=200
    )
    assert route.call_count == 1
    body = json.loads(route.calls[0].request.content)
    assert body["max_tokens"] == 200
    sent = _sent(route)
    assert "question 0 about topic 0" in sent and "answer 9" in sent and "question 10" not in sent
    assert "You are a tutor." not in sent  # the system prompt is kept, not summarised
    after = await session.history()
    assert after[0]["content"] == "You are a tutor."
    summary = after[1]
    assert summary["role"] == "system" and summary["content"].endswith("The student asked about topics 0-9.")
    covers = summary["metadata"]["covers"]
    assert summary["metadata"]["summary"] is True
    assert (covers["from_seq"], covers["to_seq"], covers["messages"]) == (2, 21, 20)
    assert [m["content"] for m in after[2:4]] == ["question 10 about topic 10", "answer 10"]
    assert len(after) == 12 and result.summary_id == summary["id"] and result.removed == 20
    tombstones = [m for m in await session.history(include_pruned=True) if m.pruned]
    assert len(tombstones) == 20 and all("content" not in m for m in tombstones)
    assert all(m.metadata["pruned_by"] == result.prune_id for m in tombstones)


@respx.mock
async def test_incremental_summary_sends_only_what_is_new() -> None:
    session = await make_session(_chat(0, 30))
    route = respx.post(OPENAI_URL).mock(return_value=openai_reply("SUMMARY-ONE"))
    await session.prune(strategy="summarize_old", threshold=20, keep_recent=10)
    first_sent = count_tokens(json.loads(route.calls[0].request.content)["messages"])
    await session.send_messages(_chat(30, 10, system=False))
    route.mock(return_value=openai_reply("SUMMARY-TWO"))
    result = await session.prune(strategy="summarize_old", threshold=20, keep_recent=10)
    sent = _sent(route)
    assert sent.startswith("Previous summary:\nSUMMARY-ONE")
    assert "question 0 " not in sent and "question 25 about" in sent and "question 34 " in sent
    second_sent = count_tokens(json.loads(route.calls[1].request.content)["messages"])
    assert second_sent < first_sent * 0.6  # 20 new messages + the summary, not all 70 old ones
    after = await session.history()
    summaries = [m for m in after if m["metadata"].get("summary")]
    assert len(summaries) == 1 and summaries[0]["content"].endswith("SUMMARY-TWO")
    covers = summaries[0]["metadata"]["covers"]
    assert covers["from_seq"] == 2 and covers["messages"] == 70 and covers["new_messages"] == 20
    assert result.removed == 21  # 20 messages and the previous summary
    pruned = [m for m in await session.history(include_pruned=True) if m.pruned]
    assert any(m["role"] == "system" and m.metadata.get("summary") for m in pruned)


@respx.mock
async def test_chunked_when_the_old_part_exceeds_the_context_window() -> None:
    history = [{"role": "system", "content": "tutor"}]
    for i in range(40):
        history += [
            {"role": "user", "content": f"question {i} " + "detail " * 30},
            {"role": "assistant", "content": f"answer {i}"},
        ]
    session = await make_session(history)
    route = respx.post(OPENAI_URL).mock(side_effect=lambda r: openai_reply(f"part summary {len(r.content)}"))
    model = SmallWindow("gpt-4o-mini", window=900)
    await session.prune(
        strategy="summarize_old", threshold=10, keep_recent=4, summary_max_tokens=100, model=model
    )
    assert route.call_count > 2
    for call in route.calls:
        body = json.loads(call.request.content)
        assert count_tokens(body["messages"]) + body["max_tokens"] <= model.window
    assert "Part 1:" in _sent(route)  # the last call combines the parts
    sent = "".join(_sent(route, i) for i in range(route.call_count - 1))
    assert all(f"question {i} " in sent for i in range(38))


@pytest.mark.parametrize(
    "reply",
    [
        lambda r: json_response("openai/error_500.json", 500),
        httpx.ReadTimeout("slow"),
        lambda r: openai_reply(""),
    ],
    ids=["http-500", "timeout", "empty"],
)
@pytest.mark.usefixtures("sleeps")
@respx.mock
async def test_a_failed_call_changes_nothing(reply: Any) -> None:
    session = await make_session(_chat(0, 15))
    before = await session.history(include_pruned=True)
    respx.post(OPENAI_URL).mock(side_effect=reply)
    with pytest.raises(PruneModelError) as info:
        await session.prune(strategy="summarize_old", threshold=10)
    assert "history is unchanged" in str(info.value)
    assert await session.history(include_pruned=True) == before
    assert not any(e.type == "prune" for e in await session.events())


@respx.mock
async def test_messages_appended_during_the_call_are_kept() -> None:
    session = await make_session(_chat(0, 15))
    other = await make_session([], session.store)
    appended: list[Any] = []

    async def slow(request: httpx.Request) -> httpx.Response:
        appended.append(await other.send_message({"role": "user", "content": "late question"}))
        appended.append(await other.send_message({"role": "assistant", "content": "late answer"}))
        return openai_reply("summary")

    respx.post(OPENAI_URL).mock(side_effect=slow)
    result = await session.prune(strategy="summarize_old", threshold=20, keep_recent=4)
    after = await session.history()
    assert [m["content"] for m in after[-2:]] == ["late question", "late answer"]
    assert result.messages_after == len(after) == 1 + 1 + 4 + 2
    assert {m.seq for m in appended}.isdisjoint(result.removed_seqs)


async def test_within_threshold_no_call_and_parameters_checked() -> None:
    session = await make_session(_chat(0, 5))
    model = FakeModel()
    result = await session.prune(strategy="summarize_old", threshold=50, model=model)
    assert not result.changed and model.requests == []
    with pytest.raises(StrategyError, match="keep_recent"):
        await session.prune(strategy="summarize_old", threshold=5, keep_recent=10, model=model)
    with pytest.raises(StrategyError, match="too large"):
        await session.prune(strategy="summarize_old", threshold=5, summary_max_tokens=100_000, model=model)


async def test_token_budget_error_before_any_call() -> None:
    session = await make_session(_chat(0, 30))
    model = FakeModel()
    with pytest.raises(TokenBudgetError):
        await session.prune(strategy="summarize_old", max_tokens=100, model=model)
    assert model.requests == []


@settings(deadline=None, max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(conversations(), st.integers(1, 12), st.one_of(st.none(), st.integers(150, 800)))
def test_summarize_old_invariants(
    store_env: StoreEnv, history: list[dict[str, Any]], threshold: int, max_tokens: int | None
) -> None:
    async def run() -> None:
        store, session_id = example_store(store_env)
        model = FakeModel(window=2000, output=500)
        try:
            session = await make_session(history, store, session_id=session_id)
            before = await session.history()
            try:
                result = await session.prune(
                    strategy="summarize_old",
                    threshold=threshold,
                    max_tokens=max_tokens,
                    model=model,
                    summary_max_tokens=40,
                )
            except TokenBudgetError:
                assert max_tokens is not None and await session.history() == before
                return
            after = await session.history()
            check_invariants(before, after, changed=result.changed, max_tokens=max_tokens)
            conversation = [m for m in before if m["role"] != "system"]
            if len(conversation) <= threshold and (
                max_tokens is None or sum(m.tokens for m in before) <= max_tokens
            ):
                assert not result.changed and model.requests == []
            if result.changed:
                assert result.summary_id in {m["id"] for m in after}
            for request in model.requests:
                assert model.count_tokens(request) + 40 <= model.window
        finally:
            await store.close()

    asyncio.run(run())
