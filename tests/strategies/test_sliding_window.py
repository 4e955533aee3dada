"""sliding_window and keep_last_<N>: chosen in SQL, cut at user messages, invariants hold."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from _convo import check_invariants, conversations, example_store, make_session
from conftest import StoreEnv
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agnt5.errors import TokenBudgetError
from agnt5.strategies import KeepLast, SlidingWindow, get_strategy


def _turns(n: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"role": "system", "content": "rules"}]
    for i in range(n):
        call = {"id": f"c{i}", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        out += [
            {"role": "user", "content": f"question {i}"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": f"c{i}", "content": "result"},
            {"role": "assistant", "content": f"answer {i}"},
        ]
    return out


async def test_keep_last_cuts_at_a_user_message_and_keeps_system() -> None:
    session = await make_session(_turns(10))
    result = await session.prune(strategy="keep_last_10")
    after = await session.history()
    assert result.changed and result.strategy == "keep_last_10" and result.params == {"n": 10}
    assert [m["role"] for m in after] == ["system"] + ["user", "assistant", "tool", "assistant"] * 2
    assert result.removed == 32 and result.messages_after == 9
    assert result.tokens_after == sum(m.tokens for m in after) < result.tokens_before


async def test_window_never_loads_the_history(monkeypatch: pytest.MonkeyPatch) -> None:
    session = await make_session(_turns(30))

    async def refuse(*args: Any) -> Any:
        raise AssertionError("sliding_window must not read the whole history")

    monkeypatch.setattr(session.store, "read_messages", refuse)
    result = await session.prune(strategy="sliding_window", window_size=12)
    assert result.changed and result.messages_after == 13


async def test_newest_turn_longer_than_the_window_is_kept_whole() -> None:
    history = _turns(2)
    history += [{"role": "assistant", "content": f"more {i}"} for i in range(10)]
    session = await make_session(history)
    result = await session.prune(strategy="sliding_window", window_size=3)
    after = await session.history()
    assert [m["role"] for m in after][:2] == ["system", "user"]
    assert len(after) == 1 + 4 + 10 and result.removed == 4


async def test_token_budget_respected_or_clear_error() -> None:
    session = await make_session(_turns(20))
    result = await session.prune(strategy="sliding_window", max_tokens=120)
    after = await session.history()
    assert sum(m.tokens for m in after) <= 120 and result.tokens_after <= 120
    with pytest.raises(TokenBudgetError, match="system messages alone"):
        await session.prune(strategy="sliding_window", max_tokens=3)
    with pytest.raises(TokenBudgetError, match="newest turn"):
        await session.prune(strategy="sliding_window", max_tokens=20)
    assert await session.history() == after


async def test_within_limits_changes_nothing() -> None:
    session = await make_session(_turns(3))
    events = len(await session.events())
    result = await session.prune(strategy="sliding_window", window_size=100)
    assert not result.changed and result.reason == "within limits" and result.removed == 0
    assert len(await session.events()) == events


def test_registry_builds_keep_last() -> None:
    strategy = get_strategy("keep_last_7")
    assert isinstance(strategy, KeepLast) and strategy.window_size == 7
    assert isinstance(get_strategy("sliding_window", window_size=5), SlidingWindow)


@settings(deadline=None, max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(conversations(), st.integers(1, 20), st.one_of(st.none(), st.integers(10, 300)))
def test_sliding_window_invariants(
    store_env: StoreEnv, history: list[dict[str, Any]], window: int, max_tokens: int | None
) -> None:
    async def run() -> None:
        store, session_id = example_store(store_env)
        try:
            session = await make_session(history, store, session_id=session_id)
            before = await session.history()
            try:
                result = await session.prune(
                    strategy="sliding_window", window_size=window, max_tokens=max_tokens
                )
            except TokenBudgetError:
                assert await session.history() == before
                assert max_tokens is not None
                return
            after = await session.history()
            check_invariants(before, after, changed=result.changed, max_tokens=max_tokens)
            conversation = [m for m in before if m["role"] != "system"]
            within = len(conversation) <= window and (
                max_tokens is None or sum(m.tokens for m in before) <= max_tokens
            )
            if within:
                assert not result.changed
            kept = [m for m in after if m["role"] != "system"]
            users = [m for m in conversation if m["role"] == "user"]
            if result.changed and users:
                # at most `window` kept, unless the newest turn alone is longer (then exactly it)
                newest_turn = len(conversation) - conversation.index(users[-1])
                assert len(kept) <= max(window, newest_turn)
        finally:
            await store.close()

    asyncio.run(run())
