"""How an agent run reaches its SQLite session: the history read and the input stored in one
store call, then per tool step its journal entry and the step stored with that entry dropped
(one call each), and one call for the answer — with the stored header, conflicts, pending calls
and failures as before."""

from __future__ import annotations

import collections
from collections.abc import Sequence
from typing import Any

import pytest

from agnt5 import Agent, Session
from agnt5.errors import InvalidInputError, SessionConflictError
from agnt5.messages import Message
from agnt5.store.base import NewEvent, NewMessage, SessionHeader
from agnt5.store.sqlite import SqliteStore
from agnt5.testing import FunctionModel

TRIPS = (
    "read_and_append",
    "read_session",
    "read_messages",
    "get_session",
    "append_messages",
    "append_messages_and_set",
    "append_events",
    "kv_get",
    "kv_compare_and_set",
)


@pytest.fixture
async def store() -> Any:
    store = SqliteStore(":memory:")
    yield store
    await store.close()


def count_trips(store: SqliteStore) -> collections.Counter[str]:
    """Count the store's calls (each one trip to its database thread)."""
    counts: collections.Counter[str] = collections.Counter()
    for name in TRIPS:
        method = getattr(store, name)

        async def counted(*args: Any, _method: Any = method, _name: str = name, **kwargs: Any) -> Any:
            counts[_name] += 1
            return await _method(*args, **kwargs)

        setattr(store, name, counted)
    return counts


def weather(city: str) -> str:
    """Current weather of a city."""
    return f"sunny in {city}"


def two_calls_then_answer(messages: list[dict[str, Any]], info: Any) -> Any:
    if messages[-1]["role"] == "tool":
        return "Sunny in both."
    return [
        FunctionModel.tool_call("weather", {"city": "Paris"}),
        FunctionModel.tool_call("weather", {"city": "Tokyo"}),
    ]


async def test_a_run_takes_four_store_calls_and_stores_everything(store: SqliteStore) -> None:
    counts = count_trips(store)
    agent = Agent("w", model=FunctionModel(two_calls_then_answer), tools=[weather])
    session = Session("trips", user_id="u1", store=store)
    result = await agent.run("Weather in Paris and Tokyo?", session=session)
    assert result.output == "Sunny in both."
    # History (and journal) + input in one call; the step journalled before its tools run; the
    # step stored with its journal entry dropped; the answer with the run's end.
    assert counts == {
        "read_and_append": 1,
        "kv_compare_and_set": 1,
        "append_messages_and_set": 1,
        "append_messages": 1,
    }
    assert await store.kv_get("agnt5.steps", "trips") == ({"steps": []}, 2)  # begun, then dropped
    stored = await Session("trips", store=store).history()
    assert [m.role for m in stored] == ["user", "assistant", "tool", "tool", "assistant"]
    assert [m.seq for m in stored] == [1, 2, 3, 4, 5]
    assert [m["id"] for m in result.messages] == [m["id"] for m in stored]
    kinds = [e.type for e in await session.events()]
    assert kinds[:2] == ["message_appended", "agent_run_started"]
    assert kinds[-2:] == ["message_appended", "agent_run_finished"]
    assert kinds.count("tool_call") == kinds.count("tool_result") == 2
    # A second run on the same object and on a fresh one: the history comes first, then the input.
    again = await agent.run("And tomorrow?", session=Session("trips", store=store))
    assert [m.seq for m in again.messages] == [6, 7, 8, 9, 10]


async def test_the_input_is_stored_before_the_first_request(store: SqliteStore) -> None:
    seen: list[list[str]] = []

    async def reply(messages: list[dict[str, Any]], info: Any) -> str:
        seen.append([m["content"] for m in await Session("early", store=store).history()])
        return "ok"

    await Agent("a", model=FunctionModel(reply)).run("hello", session=Session("early", store=store))
    assert seen == [["hello"]]


async def test_a_conflicting_session_stores_nothing(store: SqliteStore) -> None:
    await Session("c", user_id="alice", store=store).send_message({"role": "user", "content": "mine"})
    agent = Agent("a", model=FunctionModel(lambda m, i: "never"))
    with pytest.raises(SessionConflictError, match="user_id"):
        await agent.run("hijack", session=Session("c", user_id="bob", store=store))
    assert [m["content"] for m in await Session("c", store=store).history()] == ["mine"]
    assert [e.type for e in await Session("c", store=store).events()] == ["message_appended"]


async def test_metadata_given_to_a_stored_session_is_written_with_the_run(store: SqliteStore) -> None:
    await Session("m", metadata={"v": 1}, store=store).send_message({"role": "user", "content": "x"})
    agent = Agent("a", model=FunctionModel(lambda m, i: "ok"))
    await agent.run("y", session=Session("m", metadata={"v": 2}, store=store))
    fresh = await Session.get("m", store=store)
    assert fresh.metadata == {"v": 2}
    assert [m["content"] for m in await fresh.history()] == ["x", "y", "ok"]


async def test_pending_calls_are_answered_before_the_input(store: SqliteStore) -> None:
    session = Session("p", store=store)
    call = {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Oslo"}'}}
    await session.send_messages(
        [{"role": "user", "content": "Oslo?"}, {"role": "assistant", "content": None, "tool_calls": [call]}]
    )
    counts = count_trips(store)
    agent = Agent("a", model=FunctionModel(lambda m, i: "Sunny."), tools=[weather])
    await agent.run("thanks", session=Session("p", store=store))
    assert counts["read_and_append"] == 1  # read; nothing appended (calls were pending)
    history = await session.history()
    assert [(m.role, m.get("content")) for m in history[2:]] == [
        ("tool", "sunny in Oslo"),
        ("user", "thanks"),
        ("assistant", "Sunny."),
    ]


def _plan(append: bool, header: SessionHeader | None = None, fail: bool = False) -> Any:
    def plan(
        stored: SessionHeader | None, history: Sequence[Message], kv: Any
    ) -> tuple[SessionHeader, bool, bool]:
        if fail:
            raise InvalidInputError("refused by the plan")
        return header or stored or SessionHeader("s"), False, append

    return plan


async def test_read_and_append_appends_only_when_planned(store: SqliteStore) -> None:
    message = NewMessage("msg_1", {"role": "user", "content": "one"}, {}, 5)
    header, history, out = await store.read_and_append("s", _plan(True), [message], [NewEvent("e", {"n": 1})])
    assert header.id == "s"
    assert history == [] and out is not None and [m.seq for m in out] == [1]
    header, history, out = await store.read_and_append(
        "s", _plan(False), [NewMessage("msg_2", {"role": "user", "content": "two"}, {}, 5)], []
    )
    assert out is None and [m["content"] for m in history] == ["one"]
    with pytest.raises(InvalidInputError, match="refused"):
        await store.read_and_append(
            "s", _plan(True, fail=True), [NewMessage("msg_3", {"role": "user", "content": "3"}, {}, 5)], []
        )
    assert [m["content"] for m in await store.read_messages("s", None, False)] == ["one"]
    assert [e.type for e in await store.read_events("s", None, None)] == ["message_appended", "e"]
    # The next plain append numbers after what the combined call wrote.
    more = await store.append_messages(
        SessionHeader("s"), [NewMessage("msg_4", {"role": "user", "content": "4"}, {}, 5)], []
    )
    assert [m.seq for m in more] == [2]
