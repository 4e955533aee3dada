"""RunStore: the session of a run given none behaves like a stored session, in process memory."""

from __future__ import annotations

import json

import pytest

from agnt5.agent_run import run_local_session
from agnt5.errors import StoreError
from agnt5.run_store import RunStore


async def test_history_state_events_and_undo_work_like_a_stored_session() -> None:
    session = run_local_session("gpt-4o-mini")
    assert isinstance(session.store, RunStore)
    await session.send_message({"role": "user", "content": "hi"})
    await session.send_messages(
        [
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "ok"},
        ]
    )
    history = await session.history()
    assert [(m.seq, m["role"]) for m in history] == [(0, "user"), (1, "assistant"), (2, "tool")]
    assert history[0].tokens > 0 and history[0].timestamp.tzinfo is not None
    history[0]["content"] = "changed by the caller"  # reads are copies, as from a database
    assert (await session.history(limit=1))[0]["role"] == "tool"
    assert (await session.history())[0]["content"] == "hi"

    session.set_state("cart", ["pen"])
    cart = session.get_state("cart")
    cart.append("mutated")
    assert session.get_state("cart") == ["pen"] and session.state() == {"cart": ["pen"]}

    popped = await session.pop()  # the tool-call block, whole
    assert [m["role"] for m in popped] == ["assistant", "tool"]
    await session.send_message({"role": "assistant", "content": "hello"})
    assert [(m.seq, m["content"]) for m in await session.history()] == [(0, "hi"), (1, "hello")]
    await session.rewind(to=(await session.history())[0].id)
    assert [m["content"] for m in await session.history()] == ["hi"]

    types = [e.type for e in await session.events()]
    assert types.count("message_appended") == 4 and "state_changed" in types
    assert "message_popped" in types and "history_rewound" in types
    ids = [e.id for e in await session.events()]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)

    assert await session.clear() == 1
    assert await session.history() == []
    tombstones = await session.history(include_pruned=True)
    assert [m.pruned for m in tombstones] == [True] and "content" not in tombstones[0]
    exported = [json.loads(line) for line in (await session.export()).splitlines()]
    assert len(exported) == 1


async def test_what_needs_a_real_store_says_so() -> None:
    session = run_local_session("gpt-4o-mini")
    await session.send_message({"role": "user", "content": "hi"})
    with pytest.raises(StoreError, match=r"run-local session.*session=Session"):
        await session.prune(strategy="sliding_window", window_size=1)
    assert await session.exists()
    await session.delete()
    assert not await session.exists() and await session.history() == []
