"""The tool-step journal's last write: a step's messages stored with its entry dropped (one
transaction on SQLite), and the fallbacks when the journal moved on or the store cannot."""

from __future__ import annotations

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
