"""A summary never takes a position a pruned message keeps: pruning it later must not collide
(both stores)."""

from __future__ import annotations

from agnt5.session import Session
from agnt5.store.base import NewEvent, NewMessage, PruneWrite, Store


async def _prune(store: Store, seq: int, n: int, summary: bool) -> None:
    text = NewMessage(f"msg_summary_{n}", {"role": "system", "content": f"summary {n}"}, {}, 5)
    await store.apply_prune("s", PruneWrite(f"p{n}", [seq], text if summary else None, NewEvent("prune", {})))


async def test_a_summary_placed_beside_a_tombstone_can_be_pruned_again(store: Store) -> None:
    session = Session("s", store=store)
    await session.send_messages([{"role": "user", "content": str(i)} for i in range(4)])
    await _prune(store, 3, 1, summary=False)  # seq 3's tombstone keeps its position
    await _prune(store, 2, 2, summary=True)  # the summary goes after seq 2, before seq 4
    [summary] = [m for m in await session.history() if m["role"] == "system"]
    await _prune(store, summary.seq, 3, summary=True)  # collided with seq 3's tombstone before
    everything = await session.history(include_pruned=True)
    assert sorted(m.seq for m in everything) == [1, 2, 3, 4, 5, 6]
    assert [m["content"] for m in await session.history()] == ["0", "summary 3", "3"]
