"""Session.prune end to end: registry errors, immutability, tombstones, export, the prune event,
conflicts, auto-prune with hysteresis, prune_to_fit for agents; a prune racing with appends.

Every test runs on both stores: make_session() without a store uses the `store` fixture.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, ClassVar

import pytest
import respx
from _convo import OPENAI_URL, FakeModel, make_session, openai_reply

import agnt5
from agnt5 import Session
from agnt5.errors import ImmutableSessionError, PruneConflictError, StrategyError
from agnt5.pruning import PruneResult, auto_prune_params, prune_to_fit
from agnt5.store import Store
from agnt5.store.base import NewEvent, PruneWrite
from agnt5.strategies import Budget, PrunePlan, SessionView


@pytest.fixture(autouse=True)
def _sessions_on_each_store(store: Store) -> None:
    agnt5.configure(store=store)


def _chat(n: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"role": "system", "content": "sys"}]
    for i in range(n):
        out += [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]
    return out


@pytest.mark.parametrize(
    ("strategy", "params", "match"),
    [
        (
            "keep_everything",
            {},
            "accepted: keep_last_<N>, sliding_window, keep_last, keep_important, summarize_old",
        ),
        ("keep_last_0", {}, "N must be >= 1"),
        ("keep_last_x", {}, r"needs a whole number N >= 1 in the name \(e.g. keep_last_50\), got 'x'"),
        ("keep_last_-3", {}, "needs a whole number N >= 1"),
        ("keep_last_99999999999999999999999", {}, "too large; use at most 9223372036854775807"),
        ("keep_last_" + "9" * 5000, {}, "too large; use at most 9223372036854775807"),
        (
            "sliding_window",
            {"window_size": 10**30},
            "window_size=1000000000000000000000000000000 is too large",
        ),
        (
            "sliding_window",
            {"window_size": 10**5000},
            "window_size=an integer of about 5001 digits is too large",
        ),
        ("keep_important", {"max_messages": 2**63}, "max_messages=9223372036854775808 is too large"),
        ("summarize_old", {"threshold": 2**64}, "threshold=.* is too large; use at most 9223372036854775807"),
        ("keep_last_5", {"n": 3}, "takes no parameters"),
        ("sliding_window", {"window": 5}, "accepts window_size"),
        ("sliding_window", {"window_size": -1}, "window_size must be a positive integer"),
        ("keep_important", {"keep_recent": "2"}, "keep_recent must be a positive integer"),
        ("summarize_old", {"threshold": 0}, "threshold must be a positive integer"),
    ],
)
async def test_bad_strategies_and_parameters_say_what_is_accepted(
    strategy: str, params: dict[str, Any], match: str
) -> None:
    session = await make_session(_chat(3))
    with pytest.raises(StrategyError, match=match):
        await session.prune(strategy=strategy, **params)


async def test_bad_max_tokens_and_model() -> None:
    session = await make_session(_chat(3))
    with pytest.raises(StrategyError, match="max_tokens"):
        await session.prune(strategy="keep_last_2", max_tokens=0)
    with pytest.raises(StrategyError, match="max_tokens=1000000000000000000000000000000 is too large"):
        await session.prune(strategy="keep_last_2", max_tokens=10**30)
    with pytest.raises(StrategyError, match="max_tokens"):
        await prune_to_fit(session, 10**30, strategy="keep_last_2")
    with pytest.raises(StrategyError, match="model"):
        await session.prune(strategy="keep_important", model=42)  # type: ignore[arg-type]


async def test_the_largest_limits_keep_everything_on_each_store() -> None:
    session = await make_session(_chat(3))
    for strategy, params in [
        ("keep_last_9223372036854775807", {}),
        ("sliding_window", {"window_size": 2**63 - 1}),
        ("sliding_window", {"max_tokens": 2**63 - 1}),
    ]:
        result = await session.prune(strategy=strategy, **params)
        assert not result.changed and result.messages_after == 7
    assert len(await session.history()) == 7


async def test_default_limits_are_reported_as_used() -> None:
    """With no limit at all, sliding_window and keep_important keep 50 (README: Pruning); the
    result and the prune event say so instead of `None`."""
    session = await make_session(_chat(60))
    result = await session.prune(strategy="sliding_window")
    assert result.params == {"window_size": 50} and result.messages_after == 51
    event = [e for e in await session.events() if e.type == "prune"][-1]
    assert event.data["params"] == {"window_size": 50}

    session = Session("important", store=session.store)
    await session.send_messages(_chat(60))
    result = await session.prune(strategy="keep_important", model=FakeModel())
    assert result.changed and result.params == {"max_messages": 50, "keep_recent": 2, "batch_size": 100}
    assert len([m for m in await session.history() if m["role"] != "system"]) <= 50
    event = [e for e in await session.events() if e.type == "prune"][-1]
    assert event.data["params"]["max_messages"] == 50

    # A given limit is reported as given; with max_tokens only, no message limit applies.
    result = await session.prune(strategy="sliding_window", max_tokens=10**6)
    assert result.params == {"window_size": None} and not result.changed
    assert (await session.prune(strategy="sliding_window", window_size=40)).params == {"window_size": 40}


async def test_prune_result_repr_summarises_the_removed_seqs() -> None:
    session = await make_session(_chat(150))
    result = await session.prune(strategy="keep_last_2")
    assert len(result.removed_seqs) == 298
    text = repr(result)
    assert "removed_seqs=<298 seqs: 2-299>" in text and "removed=298" in text
    assert len(text) < 600 and "150, 151" not in text
    scattered = PruneResult("s", {}, True, removed_seqs=(1, 2, 3, 5, 7, 9, 11, 13))
    assert "removed_seqs=<8 seqs: 1-3, 5, 7, 9, ... (2 more ranges)>" in repr(scattered)
    assert "removed_seqs=()" in repr(PruneResult("s", {}, False))


async def test_immutable_sessions_refuse() -> None:
    session = await make_session(_chat(3), retention={"immutable": True})
    with pytest.raises(ImmutableSessionError):
        await session.prune(strategy="keep_last_1")
    assert len(await session.history()) == 7


async def test_tombstones_export_and_prune_event() -> None:
    session = await make_session(_chat(5))
    await session.send_message({"role": "user", "content": "tagged"}, metadata={"topic": "x"})
    result = await session.prune(strategy="keep_last_2")
    assert isinstance(result, PruneResult) and result.removed == 10
    everything = await session.history(include_pruned=True)
    tombstones = [m for m in everything if m.pruned]
    assert len(tombstones) == 10
    for m in tombstones:
        assert "content" not in m and m["id"] and m["role"] in ("user", "assistant") and m["timestamp"]
        assert m.metadata["pruned_by"] == result.prune_id and m.tokens > 0
    lines = [json.loads(line) for line in (await session.export(format="jsonl")).splitlines()]
    assert sum(1 for line in lines if line.get("pruned")) == 10
    active = [line for line in lines if not line.get("pruned")]
    assert [line["role"] for line in active] == ["system", "user"] and active[1]["metadata"] == {"topic": "x"}
    prune_events = [e for e in await session.events() if e.type == "prune"]
    assert len(prune_events) == 1
    data = prune_events[0].data
    assert data["prune_id"] == result.prune_id and data["strategy"] == "keep_last_2"
    assert data["params"] == {"n": 2} and data["removed"] == 10 and data["removed_seqs"] == [[2, 11]]
    assert data["messages_before"] == 12 and data["messages_after"] == 2
    assert data["tokens_before"] == result.tokens_before and data["tokens_after"] == result.tokens_after
    assert data["cost"] is None and data["model"] is None
    assert (await Session.get("conv", store=session.store)).metadata == {}
    assert (await session.store.get_session(session.id)).message_count == 2  # type: ignore[union-attr]


@respx.mock
async def test_llm_prune_event_carries_model_usage_and_cost() -> None:
    session = await make_session(_chat(12))
    respx.post(OPENAI_URL).mock(return_value=openai_reply("summary", prompt_tokens=300, completion_tokens=40))
    result = await session.prune(strategy="summarize_old", threshold=10, model="gpt-4o-mini")
    event = [e for e in await session.events() if e.type == "prune"][-1]
    assert event.data["model"] == "gpt-4o-mini"
    assert event.data["usage"] == {"prompt_tokens": 300, "completion_tokens": 40}
    assert event.data["cost"] == result.cost and result.cost and result.cost > 0
    assert event.data["summary_id"] == result.summary_id


async def test_apply_prune_is_all_or_nothing_on_conflict() -> None:
    session = await make_session(_chat(5))
    store = session.store
    event = NewEvent("prune", {})
    await store.apply_prune(session.id, PruneWrite("p1", [2, 3], None, event))
    before = await session.history(include_pruned=True)
    with pytest.raises(PruneConflictError, match="run the prune again"):
        await store.apply_prune(session.id, PruneWrite("p2", [3, 4, 5], None, event))
    assert await session.history(include_pruned=True) == before


async def test_strategy_objects_and_the_default_from_retention() -> None:
    class DropOldest:
        name = "drop_oldest"
        uses_model = False
        params: ClassVar[dict[str, Any]] = {}

        async def plan(self, view: SessionView, budget: Budget, model: Any) -> PrunePlan:
            history = await view.messages()
            return PrunePlan(remove_seqs=(history[1].seq, history[2].seq))

    session = await make_session(_chat(3))
    result = await session.prune(DropOldest())
    assert result.strategy == "drop_oldest" and result.removed == 2
    with pytest.raises(StrategyError, match="strategy object"):
        await session.prune(DropOldest(), window_size=3)  # type: ignore[arg-type]
    session = Session("other", store=session.store, retention={"prune_strategy": "keep_last_2"})
    await session.send_messages(_chat(3))
    assert (await session.prune()).strategy == "keep_last_2"


async def test_auto_prune_with_hysteresis(store: Store) -> None:
    session = Session("auto", store=store, retention={"auto_prune": True, "max_messages": 10})
    await session.send_message({"role": "system", "content": "sys"})
    for i in range(9):  # up to 10 active: no prune yet
        await session.send_message({"role": "user" if i % 2 == 0 else "assistant", "content": f"m{i}"})
    assert not [e for e in await session.events() if e.type == "prune"]
    await session.send_message({"role": "assistant", "content": "m9"})  # 11 > 10
    prunes = [e for e in await session.events() if e.type == "prune"]
    assert len(prunes) == 1 and prunes[0].data["auto"] is True
    assert prunes[0].data["strategy"] == "sliding_window" and prunes[0].data["params"] == {"window_size": 7}
    active = (await store.get_session("auto")).message_count  # type: ignore[union-attr]
    assert active <= 8
    for i in range(2):  # back under the limit: no prune on every message
        await session.send_message({"role": "user", "content": f"n{i}"})
    assert len([e for e in await session.events() if e.type == "prune"]) == 1
    history = await session.history()
    assert history[0]["content"] == "sys" and history[-1]["content"] == "n1"
    assert history[1]["role"] == "user"


async def test_auto_prune_reads_the_active_count_only_when_it_could_exceed_the_limit(store: Store) -> None:
    """Two writers alternate on one session: after every append the history is within
    max_messages, yet the count is read on a small fraction of appends (the seq bound)."""
    reads = 0
    get_session = store.get_session

    async def counting_get_session(session_id: str) -> Any:
        nonlocal reads
        reads += 1
        return await get_session(session_id)

    store.get_session = counting_get_session  # type: ignore[method-assign]
    retention = {"auto_prune": True, "max_messages": 20}
    writers = [Session("bounded", store=store, retention=retention) for _ in range(2)]
    for w in writers:
        await w.save()
    reads = 0
    for i in range(120):
        await writers[i % 2].send_message({"role": "user", "content": f"m{i}"})
        assert len(await writers[0].history()) <= 20, i
    prunes = [e for e in await writers[0].events() if e.type == "prune"]
    assert len(prunes) >= 5  # 120 messages through a window of 20 (pruned to 16 each time)
    assert reads < 60, reads  # without the bound: one read per append (120)


async def test_auto_prune_failure_keeps_the_message_and_is_recorded(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    session = Session(
        "auto",
        store=store,
        retention={"auto_prune": True, "max_messages": 4, "prune_strategy": "summarize_old"},
    )
    with respx.mock:
        respx.post(OPENAI_URL).mock(return_value=openai_reply(""))  # an unusable summary
        with caplog.at_level(logging.WARNING, logger="agnt5.pruning"):
            await session.send_messages(_chat(3))
    assert len(await session.history()) == 7
    failures = [e for e in await session.events() if e.type == "auto_prune_failed"]
    assert failures and failures[0].data["error"] == "PruneModelError"
    assert "auto-prune" in caplog.text


def test_auto_prune_params() -> None:
    assert auto_prune_params("sliding_window", 1000) == (800, {"window_size": 800})
    assert auto_prune_params("sliding_window", 1000, 2) == (800, {"window_size": 798})
    assert auto_prune_params("keep_important", 10) == (8, {"max_messages": 8})
    assert auto_prune_params("summarize_old", 10, 1) == (8, {"threshold": 7, "keep_recent": 6})
    assert auto_prune_params("keep_last_5", 10) == (8, {})


async def test_prune_to_fit_uses_the_sessions_strategy() -> None:
    session = await make_session(_chat(20), retention={"prune_strategy": "sliding_window"})
    result = await prune_to_fit(session, 60)
    assert result is not None and result.tokens_after <= 60
    plain = await make_session(_chat(3), session_id="plain")
    assert await prune_to_fit(plain, 10) is None


async def test_scores_are_deleted_with_the_session() -> None:
    session = await make_session(_chat(12))
    await session.prune(strategy="keep_important", max_messages=8, model=FakeModel())
    assert await session.store.read_scores(session.id, list(range(100)))
    await session.delete()
    assert await session.store.read_scores(session.id, list(range(100))) == {}


async def test_prunes_racing_with_appends_lose_nothing(store: Store) -> None:
    """Appends keep landing while prunes run (a prune holds the session's row lock on PostgreSQL,
    the write lock on SQLite, while it moves exactly its planned messages): every message ends up
    active or a tombstone, each once, with unique gap-free seqs and its audit event."""
    session = await make_session(_chat(10))
    writers = [Session("conv", store=store) for _ in range(4)]
    sent: dict[str, str] = {}  # message id -> content

    async def append(w: int) -> None:
        for i in range(40):
            role = "user" if i % 2 == 0 else "assistant"
            m = await writers[w].send_message({"role": role, "content": f"w{w}-{i}"})
            sent[m.id] = m["content"]

    async def prune() -> int:
        applied = 0
        for _ in range(15):
            try:
                result = await session.prune(strategy="keep_last_6")
            except PruneConflictError:
                continue  # another prune moved the same messages first: nothing was applied
            applied += result.changed
            await asyncio.sleep(0)
        return applied

    results = await asyncio.gather(*(append(w) for w in range(4)), prune(), prune())
    assert sum(r for r in results if isinstance(r, int)) >= 1
    everything = await session.history(include_pruned=True)
    assert sorted(m.seq for m in everything) == list(range(1, len(everything) + 1))
    by_id = {m["id"]: m for m in everything}
    assert len(by_id) == len(everything) == 21 + len(sent)  # _chat(10): 21 messages, no summaries
    for message_id, content in sent.items():  # each appended message is there, once
        m = by_id[message_id]
        assert m.pruned or m["content"] == content
    appended = [e for e in await session.events() if e.type == "message_appended"]
    assert sorted(e.data["message_id"] for e in appended) == sorted(by_id)
    header = await store.get_session("conv")
    assert header is not None and header.message_count == sum(1 for m in everything if not m.pruned)
