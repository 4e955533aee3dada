"""Blocks and fit_to_budget: whole tool-call blocks, user-first, system kept, budget or error."""

from __future__ import annotations

from typing import Any

import pytest
from _convo import conversations
from hypothesis import given, settings
from hypothesis import strategies as st

from agnt5.blocks import fit_to_budget, group_blocks, group_turns, is_summary
from agnt5.errors import TokenBudgetError
from agnt5.tokens import count_message_tokens

CALLS = [
    {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}},
    {"id": "b", "type": "function", "function": {"name": "f", "arguments": "{}"}},
]


def test_blocks_group_parallel_calls_missing_results_and_orphans() -> None:
    history = [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": None, "tool_calls": CALLS},
        {"role": "tool", "tool_call_id": "a", "content": "1"},
        {"role": "tool", "tool_call_id": "b", "content": "2"},
        {"role": "tool", "tool_call_id": "zzz", "content": "orphan"},
        {"role": "assistant", "content": None, "tool_calls": CALLS[:1]},  # result never arrived
        {"role": "user", "content": "next"},
        {"role": "assistant", "content": "done"},
    ]
    blocks = group_blocks(history)
    assert [(b.kind, b.start, b.stop) for b in blocks] == [
        ("system", 0, 1),
        ("user", 1, 2),
        ("tool_call", 2, 5),
        ("orphan", 5, 6),
        ("tool_call", 6, 7),
        ("user", 7, 8),
        ("assistant", 8, 9),
    ]
    assert blocks[2].complete and not blocks[4].complete
    assert sum(b.tokens for b in blocks) == sum(count_message_tokens(m) for m in history)
    turns = group_turns(blocks)
    assert [[b.kind for b in t] for t in turns] == [
        ["user", "tool_call", "orphan", "tool_call"],
        ["user", "assistant"],
    ]


def test_is_summary() -> None:
    assert is_summary({"role": "system", "content": "x", "metadata": {"summary": True}})
    assert not is_summary({"role": "user", "content": "x", "metadata": {"summary": True}})
    assert not is_summary({"role": "system", "content": "x"})


def test_fit_returns_input_unchanged_when_it_fits() -> None:
    history = [{"role": "assistant", "content": "no user first"}, {"role": "user", "content": "q"}]
    assert fit_to_budget(history, 10_000) == history


def test_fit_keeps_system_in_place_and_starts_at_user() -> None:
    history = [
        {"role": "system", "content": "rules"},
        {"role": "user", "content": "old " * 50},
        {"role": "assistant", "content": None, "tool_calls": CALLS},
        {"role": "tool", "tool_call_id": "a", "content": "1"},
        {"role": "tool", "tool_call_id": "b", "content": "2"},
        {"role": "user", "content": "new"},
        {"role": "assistant", "content": None, "tool_calls": CALLS},
        {"role": "tool", "tool_call_id": "a", "content": "1"},
        {"role": "tool", "tool_call_id": "b", "content": "2"},
    ]
    budget = sum(count_message_tokens(m) for m in history[:1] + history[5:]) + 2
    out = fit_to_budget(history, budget)
    assert out == [history[0], *history[5:]]


def test_fit_oversized_turn_keeps_its_user_message_and_newest_blocks() -> None:
    big = {"role": "assistant", "content": "long " * 200}
    history = [
        {"role": "system", "content": "rules"},
        {"role": "user", "content": "question"},
        big,
        {"role": "assistant", "content": None, "tool_calls": CALLS[:1]},
        {"role": "tool", "tool_call_id": "a", "content": "result"},
    ]
    out = fit_to_budget(history, 80)
    assert out == [history[0], history[1], history[3], history[4]]


def test_fit_raises_when_system_alone_exceeds() -> None:
    history = [{"role": "system", "content": "rules " * 100}, {"role": "user", "content": "q"}]
    with pytest.raises(TokenBudgetError, match="system messages alone"):
        fit_to_budget(history, 20)


def test_fit_raises_when_newest_user_and_block_do_not_fit() -> None:
    history = [{"role": "system", "content": "s"}, {"role": "user", "content": "q " * 300}]
    with pytest.raises(TokenBudgetError, match="newest user message"):
        fit_to_budget(history, 50)


def test_fit_list_content_is_really_trimmed() -> None:
    """litellm's trim_messages returns list-content input untrimmed; this must not."""
    part = [
        {"type": "text", "text": "word " * 100},
        {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
    ]
    history = [{"role": "user", "content": part} for _ in range(10)]
    out = fit_to_budget(history, 250)
    assert 0 < len(out) < 10
    assert sum(count_message_tokens(m) for m in out) <= 250


@settings(deadline=None, max_examples=150)
@given(conversations(), st.integers(5, 400))
def test_fit_invariants(history: list[dict[str, Any]], budget: int) -> None:
    for i, m in enumerate(history):
        m["id"] = f"m{i}"
    try:
        out = fit_to_budget(history, budget)
    except TokenBudgetError:
        blocks = group_blocks(history)
        system = sum(b.tokens for b in blocks if b.kind == "system")
        rest = [b for b in blocks if b.kind != "system"]
        users = [b for b in rest if b.kind == "user"]
        assert system > budget or (
            users
            and system + users[-1].tokens + (rest[-1].tokens if rest[-1] is not users[-1] else 0) > budget
        )
        return
    total = sum(count_message_tokens(m) for m in history)
    if total <= budget:
        assert out == history
        return
    assert sum(count_message_tokens(m) for m in out) <= budget
    ids = [m["id"] for m in out]
    assert ids == sorted(ids, key=lambda i: int(i[1:]))
    assert all(m in out for m in history if m["role"] == "system")
    rest = [m for m in out if m["role"] != "system"]
    if rest:
        assert rest[0]["role"] == "user"
    kept = set(ids)
    for block in group_blocks(history):
        members = {history[i]["id"] for i in block.indices}
        assert members <= kept or not members & kept
