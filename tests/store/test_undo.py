"""Session.pop and Session.rewind on both stores: whole blocks, vanished messages whose seqs are
reused gap-free, audit events, immutable sessions, unknown ids, and appends racing the removal."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from conftest import StoreEnv

from agnt5 import Session
from agnt5.errors import Agnt5Error, ImmutableSessionError, MessageNotFoundError, UpdateConflictError
from agnt5.retention import RetentionPolicy
from agnt5.store.base import Removal, Store


def call(id: str) -> dict[str, Any]:
    return {"id": id, "type": "function", "function": {"name": "lookup", "arguments": "{}"}}


def tool_turn(*ids: str, answered: int | None = None) -> list[dict[str, Any]]:
    """An assistant message calling `ids`, then the results of the first `answered` of them."""
    results = ids if answered is None else ids[:answered]
    return [
        {"role": "assistant", "content": None, "tool_calls": [call(i) for i in ids]},
        *({"role": "tool", "tool_call_id": i, "content": f"result {i}"} for i in results),
    ]


async def texts(session: Session) -> list[Any]:
    return [(m.seq, m["role"], m.get("content")) for m in await session.history()]


async def of_type(session: Session, type: str) -> list[Any]:
    return [e for e in await session.events() if e.type == type]


async def test_pop_removes_the_newest_message_and_its_seq_is_reused(store: Store) -> None:
    s = Session("s", store=store)
    sent = await s.send_messages([{"role": "user", "content": f"m{i}"} for i in (1, 2, 3)])
    popped = await s.pop()
    assert [(m.seq, m["content"], m["id"]) for m in popped] == [(3, "m3", sent[2]["id"])]
    assert await texts(s) == [(1, "user", "m1"), (2, "user", "m2")]
    again = await s.send_message({"role": "assistant", "content": "instead"})
    assert again.seq == 3 and again["id"] != sent[2]["id"]
    assert await texts(s) == [(1, "user", "m1"), (2, "user", "m2"), (3, "assistant", "instead")]
    [event] = await of_type(s, "message_popped")
    assert event.data == {"removed": 1, "message_ids": [sent[2]["id"]], "seqs": [3]}
    # the audit trail keeps the popped message's append, and event ids are never reused
    appended = [e.data["message_id"] for e in await of_type(s, "message_appended")]
    assert appended == [sent[0]["id"], sent[1]["id"], sent[2]["id"], again["id"]]
    ids = [e.id for e in await s.events()]
    assert ids == sorted(set(ids))
    header = await store.get_session("s")
    assert header is not None and header.message_count == 3


async def test_pop_removes_a_tool_call_with_all_its_results(store: Store) -> None:
    s = Session("s", store=store)
    await s.send_messages([{"role": "user", "content": "q"}, *tool_turn("a", "b")])
    popped = await s.pop()
    assert [m["role"] for m in popped] == ["assistant", "tool", "tool"]
    assert [m.seq for m in popped] == [2, 3, 4]
    assert await texts(s) == [(1, "user", "q")]
    assert (await s.send_message({"role": "assistant", "content": "a"})).seq == 2
    # a call whose results never all arrived is one block too
    await s.send_messages([*tool_turn("c", "d", answered=1)])
    assert [m["role"] for m in await s.pop()] == ["assistant", "tool"]
    assert [m["content"] for m in await s.pop()] == ["a"]
    assert [m["content"] for m in await s.pop()] == ["q"]
    assert await s.pop() == []  # empty: nothing to pop, nothing recorded
    assert len(await of_type(s, "message_popped")) == 4


async def test_pop_finds_a_block_longer_than_its_first_read(store: Store) -> None:
    s = Session("s", store=store)
    ids = [f"c{i}" for i in range(70)]
    await s.send_messages([{"role": "user", "content": "q"}, *tool_turn(*ids)])
    popped = await s.pop()
    assert len(popped) == 71 and popped[0]["role"] == "assistant"
    assert await texts(s) == [(1, "user", "q")]


async def test_rewind_removes_everything_after_a_message(store: Store) -> None:
    s = Session("s", store=store)
    sent = await s.send_messages([{"role": "user", "content": f"m{i}"} for i in range(1, 6)])
    removed = await s.rewind(to=sent[1]["id"])
    assert [m["content"] for m in removed] == ["m3", "m4", "m5"]
    assert await texts(s) == [(1, "user", "m1"), (2, "user", "m2")]
    assert (await s.send_message({"role": "user", "content": "new"})).seq == 3
    [event] = await of_type(s, "history_rewound")
    assert event.data == {
        "to": sent[1]["id"],
        "removed": 3,
        "message_ids": [m["id"] for m in sent[2:]],
        "seqs": [3, 4, 5],
    }
    newest = (await s.history())[-1]
    assert await s.rewind(to=newest["id"]) == []  # nothing after it
    assert len(await of_type(s, "history_rewound")) == 1


async def test_rewind_into_a_tool_call_keeps_the_whole_block(store: Store) -> None:
    s = Session("s", store=store)
    sent = await s.send_messages(
        [{"role": "user", "content": "q"}, *tool_turn("a", "b"), {"role": "assistant", "content": "done"}]
    )
    removed = await s.rewind(to=sent[1]["id"])  # the assistant message calling a and b
    assert [m["content"] for m in removed] == ["done"]
    assert [m["role"] for m in await s.history()] == ["user", "assistant", "tool", "tool"]
    removed = await s.rewind(to=sent[0]["id"])
    assert [m["role"] for m in removed] == ["assistant", "tool", "tool"]


async def test_rewind_to_an_unknown_or_pruned_message_is_a_typed_error(store: Store) -> None:
    s = Session("s", store=store)
    sent = await s.send_messages([{"role": "user", "content": f"m{i}"} for i in range(4)])
    with pytest.raises(MessageNotFoundError, match="no active message 'nope'") as info:
        await s.rewind(to="nope")
    assert isinstance(info.value, KeyError) and isinstance(info.value, Agnt5Error)
    await s.prune("keep_last_2")
    with pytest.raises(MessageNotFoundError):
        await s.rewind(to=sent[0]["id"])
    with pytest.raises(Agnt5Error):
        await s.rewind(to="")
    assert len(await s.history()) == 2


async def test_pop_and_rewind_after_pruning_never_show_a_seq_twice(store: Store) -> None:
    s = Session("s", store=store)
    await s.send_messages([{"role": "user", "content": f"m{i}"} for i in range(1, 7)])
    await s.prune("keep_last_2")  # tombstones 1..4
    assert [m.seq for m in await s.pop()] == [6]
    assert (await s.send_message({"role": "user", "content": "x"})).seq == 6
    await s.clear()  # every message a tombstone: 1..6
    assert (await s.send_message({"role": "user", "content": "y"})).seq == 7
    assert [m.seq for m in await s.pop()] == [7]
    assert (await s.send_message({"role": "user", "content": "z"})).seq == 7
    seqs = [m.seq for m in await s.history(include_pruned=True)]
    assert seqs == list(range(1, 8))


async def test_scores_of_removed_messages_do_not_stick_to_their_seq(store: Store) -> None:
    s = Session("s", store=store)
    await s.send_messages([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])
    await store.save_scores("s", {2: 0.9}, "scorer")
    await s.pop()
    await s.send_message({"role": "user", "content": "c"})
    assert await store.read_scores("s", [2]) == {}


async def test_an_immutable_session_refuses_pop_and_rewind(store: Store) -> None:
    s = Session("s", store=store, retention=RetentionPolicy(immutable=True))
    sent = await s.send_messages([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])
    with pytest.raises(ImmutableSessionError):
        await s.pop()
    with pytest.raises(ImmutableSessionError):
        await s.rewind(to=sent[0]["id"])
    # the store refuses too (a caller that skipped the check, or a policy changed meanwhile)
    with pytest.raises(ImmutableSessionError):
        await store.remove_messages("s", Removal(2, 2, _event()))
    assert len(await s.history()) == 2


def _event() -> Any:
    from agnt5.store.base import NewEvent

    return NewEvent("message_popped", {})


async def test_the_store_refuses_a_removal_planned_on_a_stale_history(store: Store) -> None:
    s = Session("s", store=store)
    await s.send_messages([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])
    with pytest.raises(UpdateConflictError):
        await store.remove_messages("s", Removal(2, 1, _event()))  # newest is 2, not 1
    with pytest.raises(UpdateConflictError):
        await store.remove_messages("s", Removal(9, 2, _event()))  # no seq 9
    assert len(await s.history()) == 2


async def test_a_pop_racing_an_append_pops_the_newest(
    store_env: StoreEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An append lands between pop's read and its removal: the removal is refused, pop reads
    again and removes what is newest then; nothing else is lost."""
    mine, other = store_env.open(), store_env.open()
    try:
        s = Session("s", store=mine)
        await s.send_messages([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])
        real = mine.remove_messages
        attempts: list[Removal] = []

        async def append_first(session_id: str, removal: Removal) -> Any:
            attempts.append(removal)
            if len(attempts) == 1:
                await Session("s", store=other).send_message({"role": "user", "content": "late"})
            return await real(session_id, removal)

        monkeypatch.setattr(mine, "remove_messages", append_first)
        popped = await s.pop()
        assert [m["content"] for m in popped] == ["late"]
        assert [(r.first_seq, r.newest_seq) for r in attempts] == [(2, 2), (3, 3)]
        assert [m["content"] for m in await s.history()] == ["a", "b"]
    finally:
        await mine.close()
        await other.close()


async def test_concurrent_pops_and_appends_keep_numbering_gap_free(store_env: StoreEnv) -> None:
    stores = [store_env.open() for _ in range(3)]
    try:
        await Session("s", store=stores[0]).send_messages(
            [{"role": "user", "content": f"s{i}"} for i in range(20)]
        )

        async def appender(k: int) -> list[str]:
            out = []
            for i in range(15):
                m = await Session("s", store=stores[k % 3]).send_message(
                    {"role": "user", "content": f"w{k}-{i}"}
                )
                out.append(m["id"])
            return out

        async def popper(k: int) -> list[str]:
            gone: list[str] = []
            for _ in range(10):
                gone += [m["id"] for m in await Session("s", store=stores[k % 3]).pop()]
                await asyncio.sleep(0)
            return gone

        results = await asyncio.wait_for(
            asyncio.gather(*(appender(k) for k in range(3)), *(popper(k) for k in range(2))), 120
        )
        appended = {i for r in results[:3] for i in r}
        popped = [i for r in results[3:] for i in r]
        assert len(popped) == len(set(popped)) == 20  # each pop removed one distinct message
        history = await Session("s", store=stores[0]).history()
        assert [m.seq for m in history] == list(range(1, len(history) + 1))
        assert len(history) == 20 + 45 - 20
        kept = {m["id"] for m in history}
        assert not kept & set(popped)
        assert appended - set(popped) <= kept
        events = await Session("s", store=stores[0]).events()
        assert len({e.id for e in events}) == len(events)
    finally:
        for st in stores:
            await st.close()
