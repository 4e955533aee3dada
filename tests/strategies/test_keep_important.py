"""keep_important: batched structured scoring over real (respx-mocked) OpenAI HTTP, stored scores,
budget-sized batches, typed errors with the history unchanged, and the invariants."""

from __future__ import annotations

import asyncio
import copy
import json
import re
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
    scores_for,
)
from _mocks import fixture_json, json_response, sleeps  # noqa: F401  (sleeps is a fixture)
from conftest import StoreEnv
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agnt5.blocks import group_blocks
from agnt5.errors import PruneModelError, TokenBudgetError
from agnt5.models import LanguageModel
from agnt5.tokens import count_tokens


def _chat(n: int, important: set[int]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"role": "system", "content": "You are a travel agent."}]
    for i in range(n):
        tag = "IMPORTANT my passport number is 12345" if i in important else "thanks, nice weather"
        out += [
            {"role": "user", "content": f"turn {i}: {tag}"},
            {"role": "assistant", "content": f"noted {i}"},
        ]
    return out


def _seqs(request: httpx.Request) -> list[int]:
    text = json.loads(request.content)["messages"][-1]["content"]
    return [int(s) for s in re.findall(r"^\[(\d+)\]", text, flags=re.M)]


@respx.mock
async def test_scores_in_one_structured_call_and_keeps_the_important_turns() -> None:
    session = await make_session(_chat(10, important={1, 4}))
    route = respx.post(OPENAI_URL).mock(side_effect=scores_for)
    result = await session.prune(strategy="keep_important", max_messages=6, keep_recent=1)
    assert route.call_count == 1
    body = json.loads(route.calls[0].request.content)
    assert body["model"] == "gpt-4o-mini"
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["schema"]["required"] == ["scores"]
    assert body["max_tokens"] > 0
    # every candidate message (turns 0..8: seqs 2..19) was sent, nothing from the recent turn or system
    assert _seqs(route.calls[0].request) == list(range(2, 20))
    after = await session.history()
    # Exactly: the system prompt, the two important turns whole, and the most recent turn.
    assert [m["content"] for m in after] == [
        "You are a travel agent.",
        "turn 1: IMPORTANT my passport number is 12345",
        "noted 1",
        "turn 4: IMPORTANT my passport number is 12345",
        "noted 4",
        "turn 9: thanks, nice weather",
        "noted 9",
    ]
    assert result.changed and result.model == "gpt-4o-mini"
    assert result.prompt_tokens == 100 and result.completion_tokens == 20 and result.cost is not None


@respx.mock
async def test_scores_are_stored_and_not_requested_again() -> None:
    session = await make_session(_chat(10, important={2}))
    route = respx.post(OPENAI_URL).mock(side_effect=scores_for)
    await session.prune(strategy="keep_important", max_messages=8, keep_recent=1)
    first = set(_seqs(route.calls[0].request))
    for m in _chat(4, important=set())[1:]:
        await session.send_message(m)
    await session.prune(strategy="keep_important", max_messages=8, keep_recent=1)
    second = set(_seqs(route.calls[-1].request))
    assert second and not (second & first), "already-scored messages were scored again"


@respx.mock
async def test_batches_fit_the_context_window() -> None:
    session = await make_session(_chat(30, important={3}))
    route = respx.post(OPENAI_URL).mock(side_effect=scores_for)
    model = SmallWindow("gpt-4o-mini", window=700)
    await session.prune(strategy="keep_important", max_messages=10, keep_recent=1, model=model)
    assert route.call_count > 1
    scored: list[int] = []
    for call in route.calls:
        body = json.loads(call.request.content)
        prompt = count_tokens(body["messages"], "gpt-4o-mini")
        assert prompt + body["max_tokens"] <= model.window, "a scoring request exceeded the context window"
        scored += _seqs(call.request)
    assert sorted(scored) == scored and len(scored) == len(set(scored))


@respx.mock
async def test_ties_break_towards_newer_turns() -> None:
    session = await make_session(_chat(8, important=set()))
    respx.post(OPENAI_URL).mock(side_effect=lambda r: scores_for(r, score=5))
    await session.prune(strategy="keep_important", max_messages=6, keep_recent=1)
    contents = [m["content"] for m in await session.history()]
    assert contents[1:] == [x for i in (5, 6, 7) for x in (f"turn {i}: thanks, nice weather", f"noted {i}")]


@respx.mock
async def test_tool_call_mode_when_the_model_has_no_native_schema(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(LanguageModel, "supports_response_schema", property(lambda self: False))
    session = await make_session(_chat(6, important={0}))

    def answer(request: httpx.Request) -> httpx.Response:
        scores = json.loads(scores_for(request).content)["choices"][0]["message"]["content"]
        body = copy.deepcopy(fixture_json("openai/chat_parallel_tool_calls.json"))
        body["choices"][0]["message"]["tool_calls"] = [
            {
                "id": "call_s",
                "type": "function",
                "function": {"name": "record_importance_scores", "arguments": scores},
            }
        ]
        return httpx.Response(200, json=body)

    route = respx.post(OPENAI_URL).mock(side_effect=answer)
    result = await session.prune(strategy="keep_important", max_messages=4, keep_recent=1)
    body = json.loads(route.calls[0].request.content)
    assert (
        body["tool_choice"]["function"]["name"] == "record_importance_scores"
        and "response_format" not in body
    )
    assert result.changed
    assert any("IMPORTANT" in str(m["content"]) for m in await session.history())


@pytest.mark.parametrize(
    "reply",
    [
        lambda r: openai_reply("this is not JSON"),
        lambda r: openai_reply('{"scores": [{"seq": 2, "score": "high"}]}'),
        lambda r: openai_reply('{"scores": []}'),
        lambda r: json_response("openai/error_500.json", 500),
        httpx.ReadTimeout("timed out"),
    ],
    ids=["not-json", "bad-score", "missing-scores", "http-500", "timeout"],
)
@pytest.mark.usefixtures("sleeps")
@respx.mock
async def test_failures_leave_history_unchanged(reply: Any) -> None:
    session = await make_session(_chat(8, important={1}))
    before = await session.history(include_pruned=True)
    events = await session.events()
    respx.post(OPENAI_URL).mock(side_effect=reply)
    with pytest.raises(PruneModelError, match="history is unchanged"):
        await session.prune(strategy="keep_important", max_messages=4, keep_recent=1)
    assert await session.history(include_pruned=True) == before
    assert await session.events() == events


async def test_within_limits_makes_no_model_call() -> None:
    session = await make_session(_chat(3, important=set()))
    model = FakeModel()
    result = await session.prune(strategy="keep_important", max_messages=50, model=model)
    assert not result.changed and model.requests == []


async def test_protected_messages_over_budget_raise_before_any_call() -> None:
    session = await make_session(_chat(5, important=set()))
    model = FakeModel()
    with pytest.raises(TokenBudgetError):
        await session.prune(strategy="keep_important", max_tokens=5, model=model)
    assert model.requests == []


def _fake_score(seq: int) -> int:
    """The score tests/_convo.py's FakeModel gives the message with this seq."""
    return (seq * 7) % 11


def _expected_kept(
    before: list[Any], max_messages: int | None, max_tokens: int | None, keep_recent: int = 2
) -> list[int]:
    """The seqs keep_important keeps, by its documented rule, written out independently: system
    messages stay; the newest turn (and up to `keep_recent` newest user-led turns that fit the
    tokens) stay; of the older user-led turns, the best-scored ones (a turn scores its best
    message; ties: the newer turn) are taken greedily while they fit both limits; all else goes."""
    blocks = group_blocks(before)
    turns: list[list[Any]] = []  # a turn: a user block and the non-system blocks up to the next one
    for block in blocks:
        if block.kind != "system":
            if block.kind == "user" or not turns:
                turns.append([block])
            else:
                turns[-1].append(block)

    def seqs(turn: list[Any]) -> list[int]:
        return [before[i].seq for b in turn for i in b.indices]

    def tokens(turn: list[Any]) -> int:
        return sum(b.tokens for b in turn)

    system = [m.seq for m in before if m["role"] == "system"]
    if (max_messages is None or len(before) - len(system) <= max_messages) and (
        max_tokens is None or sum(m.tokens for m in before) <= max_tokens
    ):
        return [m.seq for m in before]
    tok_room = None if max_tokens is None else max_tokens - sum(m.tokens for m in before if m.seq in system)
    users = [i for i, t in enumerate(turns) if t[0].kind == "user"]
    first = users[-1] if users else len(turns)
    for i in reversed(users[-keep_recent:-1]):
        if tok_room is not None and sum(tokens(t) for t in turns[i:]) > tok_room:
            break
        first = i
    msg_room = None if max_messages is None else max_messages - sum(len(seqs(t)) for t in turns[first:])
    if tok_room is not None:
        tok_room -= sum(tokens(t) for t in turns[first:])
    ranked = sorted(
        (i for i in users if i < first), key=lambda i: (-max(map(_fake_score, seqs(turns[i]))), -i)
    )
    kept = list(system) + [s for t in turns[first:] for s in seqs(t)]
    for i in ranked:
        size, cost = len(seqs(turns[i])), tokens(turns[i])
        if (msg_room is None or size <= msg_room) and (tok_room is None or cost <= tok_room):
            kept += seqs(turns[i])
            msg_room = None if msg_room is None else msg_room - size
            tok_room = None if tok_room is None else tok_room - cost
    return sorted(kept)


@settings(deadline=None, max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(conversations(), st.one_of(st.none(), st.integers(1, 15)), st.one_of(st.none(), st.integers(20, 400)))
def test_keep_important_invariants(
    store_env: StoreEnv, history: list[dict[str, Any]], max_messages: int | None, max_tokens: int | None
) -> None:
    async def run() -> None:
        store, session_id = example_store(store_env)
        model = FakeModel(window=600, output=200)
        try:
            session = await make_session(history, store, session_id=session_id)
            before = await session.history()
            try:
                result = await session.prune(
                    strategy="keep_important", max_messages=max_messages, max_tokens=max_tokens, model=model
                )
            except TokenBudgetError:
                assert max_tokens is not None and await session.history() == before
                return
            after = await session.history()
            check_invariants(before, after, changed=result.changed, max_tokens=max_tokens)
            conversation = [m for m in before if m["role"] != "system"]
            limit = max_messages if max_messages is not None or max_tokens is not None else 50
            assert [m.seq for m in after] == _expected_kept(before, limit, max_tokens), (
                "kept the wrong messages"
            )
            if (limit is None or len(conversation) <= limit) and (
                max_tokens is None or sum(m.tokens for m in before) <= max_tokens
            ):
                assert not result.changed and model.requests == []
            for request in model.requests:
                assert model.count_tokens(request) <= model.window
        finally:
            await store.close()

    asyncio.run(run())
