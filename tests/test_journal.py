"""The tool-step journal's last write: a step's messages stored with its entry dropped (one
transaction on SQLite), and the fallbacks when the journal moved on or the store cannot."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agnt5 import Session
from agnt5.journal import NAMESPACE, RUNNING, STEP_KEY, CallRecord, Journal, Step
from agnt5.run_store import RunStore
from agnt5.store.sqlite import SqliteStore


def step(step_id: str, call_id: str) -> Step:
    call = {"id": call_id, "type": "function", "function": {"name": "refund", "arguments": "{}"}}
    assistant = {"role": "assistant", "content": None, "tool_calls": [call]}
    return Step(step_id, "run_1", "a", assistant, [CallRecord(call_id, "refund", "{}", RUNNING)])


def messages(s: Step, call_id: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [
        (s.assistant, {"agent": "a", STEP_KEY: s.id}),
        ({"role": "tool", "tool_call_id": call_id, "content": "done"}, {"agent": "a"}),
    ]


@pytest.fixture
async def sqlite() -> Any:
    store = SqliteStore(":memory:")
    yield store
    await store.close()


async def test_a_finished_step_leaves_the_journal_in_the_append_transaction(sqlite: SqliteStore) -> None:
    session = Session("j", store=sqlite)
    await session.send_message({"role": "user", "content": "refund"})
    journal = Journal(session, version=0)
    one = step("step_1", "call_1")
    await journal.begin(one)
    calls = {"cas": 0}
    real_cas = sqlite.kv_compare_and_set

    async def counted(*args: Any) -> bool:
        calls["cas"] += 1
        return await real_cas(*args)

    sqlite.kv_compare_and_set = counted  # type: ignore[method-assign]
    stored = await journal.store_finished(one.id, messages(one, "call_1"), [])
    assert [m.role for m in stored] == ["assistant", "tool"]
    assert calls["cas"] == 0  # no write of its own
    assert journal.steps == {} and journal.version == 2
    assert await sqlite.kv_get(NAMESPACE, "j") == ({"steps": []}, 2)


async def test_a_journal_moved_on_meanwhile_still_loses_only_the_finished_step(sqlite: SqliteStore) -> None:
    """Another run journalled a step after this journal's last read: the combined write finds a
    newer version, sets nothing, and the entry is dropped right after (the other step stays)."""
    session = Session("k", store=sqlite)
    await session.send_message({"role": "user", "content": "refund"})
    mine, theirs = Journal(session, version=0), Journal(Session("k", store=sqlite))
    one, two = step("step_1", "call_1"), step("step_2", "call_2")
    await mine.begin(one)
    await theirs.begin(two)  # reads the journal (version 1), writes version 2
    stored = await mine.store_finished(one.id, messages(one, "call_1"), [])
    assert [m.role for m in stored] == ["assistant", "tool"]
    found = await sqlite.kv_get(NAMESPACE, "k")
    assert found is not None and [s["id"] for s in found[0]["steps"]] == ["step_2"] and found[1] == 3
    history = await Session("k", store=sqlite).history()
    assert [m.role for m in history] == ["user", "assistant", "tool"]


async def test_a_store_without_the_combined_write_drops_the_entry_after() -> None:
    store = RunStore()
    session = Session("r", store=store)
    await session.send_message({"role": "user", "content": "refund"})
    journal = Journal(session, version=0)
    one = step("step_1", "call_1")
    await journal.begin(one)
    await journal.store_finished(one.id, messages(one, "call_1"), [])
    assert journal.steps == {} and await store.kv_get(NAMESPACE, "r") == ({"steps": []}, 2)
    assert [m.role for m in await session.history()] == ["user", "assistant", "tool"]


async def test_a_result_is_journalled_while_a_slower_call_of_its_step_runs(sqlite: SqliteStore) -> None:
    """A result that completes well before the step's other call is journalled within about
    FLUSH_DELAY (a crash then never reports it interrupted); results that complete together are
    written with the step itself, so the journal sees only its begin and the combined end."""
    from agnt5 import Agent, tool
    from agnt5.testing import ScriptedModel

    seen: list[Any] = []
    released = asyncio.Event()

    @tool
    async def fast(n: int) -> str:
        """Fast."""
        return f"fast {n}"

    @tool
    async def slow(n: int) -> str:
        """Slow: waits until the journal was looked at."""
        for _ in range(200):
            found = await sqlite.kv_get(NAMESPACE, "slow")
            calls = found[0]["steps"][0]["calls"] if found and found[0]["steps"] else []
            if any(c["state"] == "done" for c in calls):
                seen.append([(c["name"], c["state"], c.get("content")) for c in calls])
                break
            await asyncio.sleep(0.005)
        released.set()
        return f"slow {n}"

    versions: list[int] = []
    real_cas = sqlite.kv_compare_and_set

    async def counted(namespace: str, key: str, value: Any, expected: int) -> bool:
        versions.append(expected)
        return await real_cas(namespace, key, value, expected)

    sqlite.kv_compare_and_set = counted  # type: ignore[method-assign]
    model = ScriptedModel().tool_calls([("fast", {"n": 1}), ("slow", {"n": 2})]).text("both done")
    result = await Agent("a", model=model, tools=[fast, slow]).run(
        "go", session=Session("slow", store=sqlite)
    )
    assert result.output == "both done" and released.is_set()
    assert seen == [[("fast", "done", "fast 1"), ("slow", "running", None)]]
    assert versions == [0, 1]  # begun; the fast result; then dropped with the step's append
    assert await sqlite.kv_get(NAMESPACE, "slow") == ({"steps": []}, 3)

    versions.clear()
    model = ScriptedModel().tool_calls([("fast", {"n": 1}), ("fast", {"n": 2})]).text("done")
    await Agent("a", model=model, tools=[fast]).run("again", session=Session("slow", store=sqlite))
    assert versions == [3]  # only the begin: both results went with the step
    assert await sqlite.kv_get(NAMESPACE, "slow") == ({"steps": []}, 5)


class _SeparateReads:
    """A SqliteStore seen without its one-transaction `read_and_append` (as PostgreSQL is): a
    run's start then reads the journal and the history separately. `between` runs once, after
    the first of the two reads returned."""

    def __init__(self, store: SqliteStore, between: Any) -> None:
        self._store, self._between, self._reads = store, between, 0

    def __getattr__(self, name: str) -> Any:
        if name == "read_and_append":
            raise AttributeError(name)
        found = getattr(self._store, name)
        if name not in ("kv_get", "read_session", "read_messages"):
            return found

        async def read(*args: Any, **kwargs: Any) -> Any:
            answer = await found(*args, **kwargs)
            self._reads += 1
            if self._reads == 1:
                await self._between()
            return answer

        return read


async def test_a_resume_never_misses_a_step_finished_between_its_two_reads(sqlite: SqliteStore) -> None:
    """Another resume stores the step (and drops its journal entry) between this resume's reads of
    the journal and of the history: the journal is read first, so the call is found in one of
    them and reported decided — never "no call waits" (what reading the history first gave)."""
    from agnt5 import Agent, tool
    from agnt5.errors import ApprovalNotPendingError
    from agnt5.testing import FunctionModel

    ran: list[str] = []

    @tool(requires_approval=True)
    async def refund(order: str) -> str:
        """Refund an order."""
        ran.append(order)
        return f"refunded {order}"

    def fn(messages: list[dict[str, Any]], info: Any) -> Any:
        if messages[-1]["role"] == "user":
            return FunctionModel.tool_call("refund", {"order": "o1"})
        return "answer: " + str(messages[-1]["content"])

    agent = Agent("a", model=FunctionModel(fn), tools=[refund])
    paused = await agent.run("refund o1", session=Session("c", store=sqlite))
    call_id = paused.pending[0].call_id

    async def winner() -> None:
        done = await agent.run(None, session=Session("c", store=sqlite), approvals={call_id: True})
        assert done.output == "answer: refunded o1"

    racing = _SeparateReads(sqlite, winner)
    with pytest.raises(ApprovalNotPendingError, match="already decided or ran"):
        await agent.run(None, session=Session("c", store=racing), approvals={call_id: True})  # type: ignore[arg-type]
    assert ran == ["o1"]
