"""The store API given values that fail inside the database layer, on both stores.

Rule: nothing that goes wrong while a store writes leaves an awaiting caller waiting; an error
in one caller's item fails that caller with a typed agnt5 error (InvalidInputError naming the
field for a value that cannot be stored, StoreError otherwise), never its neighbours, and the
store keeps working. These tests call the store directly (bypassing Session's validation), and
some disable the store's own checks to reach the database driver with the bad value.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable
from typing import Any, TypeVar

import pytest

from agnt5.errors import Agnt5Error, InvalidInputError, StoreError
from agnt5.store import _rows
from agnt5.store.base import MemoryWrite, NewEvent, NewMessage, SessionHeader, StateWrite, Store

T = TypeVar("T")
BOUND = 10.0  # seconds: "never a hang" — every call answers well within this
SURROGATE = "x\ud800y"
CONTROL = "a\x00b\x01c\x07\x1b\x1f\x7f\x85\u2028\u2029\ufeff\r\n\t\x0b\x0c end"


async def bounded(awaitable: Awaitable[T]) -> T:
    return await asyncio.wait_for(awaitable, BOUND)


def msg(i: int | str, content: str = "ok", **metadata: Any) -> NewMessage:
    return NewMessage(f"m{i}", {"role": "user", "content": content}, dict(metadata), 2)


async def contents(store: Store, session_id: str) -> list[str]:
    return [m["content"] for m in await store.read_messages(session_id, None, False)]


async def still_works(store: Store) -> None:
    await bounded(store.append_messages(SessionHeader("after"), [msg("after", "fine")], []))
    assert await contents(store, "after") == ["fine"]
    await bounded(store.kv_set("after", "k", 1))
    assert await store.kv_get("after", "k") == (1, 1)


# --- refused up front, naming the field ------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "metadata", "field"),
    [
        ({"role": "user", "content": SURROGATE}, {}, "message.content"),
        ({"role": "user", "content": "ok"}, {"note": SURROGATE}, "message.metadata.note"),
        ({"role": "user", "content": [{"type": "text", "text": SURROGATE}]}, {}, "message.content[0].text"),
    ],
)
async def test_an_unstorable_message_is_refused_naming_the_field(
    store: Store, body: dict[str, Any], metadata: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidInputError, match="lone surrogate") as info:
        await bounded(store.append_messages(SessionHeader("s"), [NewMessage("m1", body, metadata, 2)], []))
    assert info.value.field == field
    assert await store.read_messages("s", None, True) == []
    await still_works(store)


async def test_unstorable_state_entity_event_memory_and_header_values_are_refused(store: Store) -> None:
    header = SessionHeader("s")
    cases: list[tuple[Awaitable[Any], str]] = [
        (
            store.write_state(header, [StateWrite("session", "s", "k", {"v": [SURROGATE]})], []),
            "state value 'k'.v[0]",
        ),
        (store.kv_set("e", "k", SURROGATE), "entity value 'k'"),
        (store.kv_compare_and_set("e", "k", {"a": SURROGATE}, 0), "entity value 'k'.a"),
        (store.append_events(header, [NewEvent("custom", {"x": SURROGATE})]), "custom event data.x"),
        (
            store.append_messages(SessionHeader("s", metadata={"m": SURROGATE}), [msg(1)], []),
            "session metadata.m",
        ),
        (store.append_messages(SessionHeader("s", user_id=SURROGATE), [msg(1)], []), "user_id"),
        (store.memory_put('["a",null]', [MemoryWrite("k", SURROGATE, {}, "h")]), "memory content"),
        (store.memory_put('["a",null]', [MemoryWrite("k", "c", {"m": SURROGATE}, "h")]), "memory metadata.m"),
    ]
    for call, field in cases:
        with pytest.raises(InvalidInputError) as info:
            await bounded(call)
        assert info.value.field == field
    assert await store.get_session("s") is None
    assert await store.kv_get("e", "k") is None
    assert await store.memory_list('["a",null]') == []
    await still_works(store)


async def test_values_json_cannot_hold_are_typed_errors(store: Store) -> None:
    deep: Any = "leaf"
    for _ in range(100_000):
        deep = [deep]
    for value in (float("nan"), float("inf"), object(), deep):
        with pytest.raises(InvalidInputError):
            await bounded(store.kv_set("e", "k", value))
    await still_works(store)


# --- failing inside the database layer: only the caller that caused it ---------------------------


@pytest.fixture
def unchecked(monkeypatch: pytest.MonkeyPatch) -> None:
    """Disable the stores' up-front checks, so a bad value reaches the database driver."""
    from agnt5.store import postgres, sqlite

    def passthrough(text: str, field: str, value: Any = None) -> str:
        return text

    for module in (sqlite, postgres, _rows):
        monkeypatch.setattr(module, "check_text", passthrough, raising=False)
    monkeypatch.setattr(_rows, "_encodable", lambda text: True, raising=False)


@pytest.mark.usefixtures("unchecked")
async def test_a_value_the_driver_cannot_encode_fails_only_its_caller(store: Store) -> None:
    bad_body = {"role": "user", "content": SURROGATE}
    calls = [store.append_messages(SessionHeader(f"n{i}"), [msg(i, f"neighbour {i}")], []) for i in range(8)]
    calls.insert(4, store.append_messages(SessionHeader("bad"), [NewMessage("b", bad_body, {}, 2)], []))
    calls.insert(
        6, store.append_messages(SessionHeader("n1"), [msg("n1b", "second"), msg("n1c", "third")], [])
    )
    results = await bounded(asyncio.gather(*calls, return_exceptions=True))
    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(errors) == 1 and isinstance(errors[0], InvalidInputError), results
    assert isinstance(results[4], InvalidInputError)
    for i in range(8):
        expected = [f"neighbour {i}"] + (["second", "third"] if i == 1 else [])
        got = await contents(store, f"n{i}")
        # concurrent appends to one session commit in either order (PostgreSQL: separate connections)
        assert sorted(got) == sorted(expected)
        if i == 1:
            assert got.index("third") == got.index("second") + 1  # one call's batch stays together
    assert await store.get_session("bad") is None
    with pytest.raises(InvalidInputError):
        await bounded(store.write_state(SessionHeader("s"), [StateWrite("session", "s", SURROGATE, 1)], []))
    with pytest.raises(InvalidInputError):
        await bounded(store.kv_set("e", SURROGATE, 1))
    await still_works(store)


async def test_sqlite_group_commit_with_a_bad_item_answers_every_caller(
    sqlite_store: Any, monkeypatch: pytest.MonkeyPatch, unchecked: None
) -> None:
    """Several appends queued while the database thread is busy go into one transaction: a bad
    one (a value the driver cannot bind, or an unexpected exception) fails alone."""
    from agnt5.store import sqlite

    real_append = sqlite._append

    def failing_append(conn: Any, job: Any) -> int:
        if job.header.id == "boom":
            raise RuntimeError("unexpected failure while numbering")
        return real_append(conn, job)

    monkeypatch.setattr(sqlite, "_append", failing_append)
    store = sqlite_store
    await store.append_messages(SessionHeader("warm"), [msg(0)], [])  # open the database
    release = threading.Event()
    store._database().enqueue(lambda conn: release.wait(BOUND))  # hold the database thread
    calls = [
        asyncio.ensure_future(store.append_messages(SessionHeader(f"n{i}"), [msg(i, f"neighbour {i}")], []))
        for i in range(6)
    ]
    bad = asyncio.ensure_future(
        store.append_messages(
            SessionHeader("bad"), [NewMessage("b", {"role": "user", "content": SURROGATE}, {}, 2)], []
        )
    )
    boom = asyncio.ensure_future(store.append_messages(SessionHeader("boom"), [msg("x")], []))
    more = [
        asyncio.ensure_future(store.append_messages(SessionHeader(f"n{i}"), [msg(i, f"neighbour {i}")], []))
        for i in range(6, 10)
    ]
    await asyncio.sleep(0.05)
    assert len(store._appends) == 12  # all queued: one group
    release.set()
    results = await bounded(asyncio.gather(*calls, bad, boom, *more, return_exceptions=True))
    assert isinstance(results[6], InvalidInputError)
    assert isinstance(results[7], StoreError) and "unexpected failure" in str(results[7])
    assert [r for r in results if isinstance(r, BaseException)] == [results[6], results[7]]
    for i in range(10):
        assert await contents(store, f"n{i}") == [f"neighbour {i}"]
    assert await store.get_session("bad") is None and await store.get_session("boom") is None
    await still_works(store)


async def test_an_unexpected_error_in_a_write_is_a_store_error_and_the_store_goes_on(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure that is no database error (a bug, a broken encoder) still answers typed."""
    from agnt5.store import postgres, sqlite

    module = sqlite if type(store).__name__ == "SqliteStore" else postgres
    real = module._touch_session

    def broken(conn: Any, header: SessionHeader, now: float) -> Any:
        if header.id == "broken":
            raise RuntimeError("encoder exploded")
        return real(conn, header, now)

    monkeypatch.setattr(module, "_touch_session", broken)
    neighbours = [store.append_messages(SessionHeader(f"n{i}"), [msg(i)], []) for i in range(4)]
    results = await bounded(
        asyncio.gather(
            store.append_messages(SessionHeader("broken"), [msg("b")], []),
            *neighbours,
            return_exceptions=True,
        )
    )
    assert isinstance(results[0], StoreError) and not isinstance(results[0], InvalidInputError)
    assert all(not isinstance(r, BaseException) for r in results[1:])
    with pytest.raises(StoreError):
        await bounded(
            store.write_state(SessionHeader("broken"), [StateWrite("session", "broken", "k", 1)], [])
        )
    await still_works(store)


# --- NUL and control characters round-trip ---------------------------------------------------------


async def test_nul_and_control_characters_round_trip_exactly(store: Store) -> None:
    header = SessionHeader("s", metadata={"note": CONTROL})
    body = {"role": "user", "content": CONTROL}
    meta = {"k": CONTROL, "nested": [CONTROL, {"x": CONTROL}], "key\x00\x01": "v"}
    await store.append_messages(
        header, [NewMessage("m1", body, meta, 2)], [NewEvent("custom", {"d": CONTROL})]
    )
    await store.append_messages(header, [msg(2, "plain")], [])
    [first, _] = await store.read_messages("s", None, False)
    assert first["content"] == CONTROL and first["metadata"] == meta
    assert (await store.get_session("s")).metadata == {"note": CONTROL}  # type: ignore[union-attr]
    events = await store.read_events("s", None, None)
    assert [e.data for e in events if e.type == "custom"] == [{"d": CONTROL}]

    await store.write_state(header, [StateWrite("session", "s", "k", {"v": CONTROL})], [])
    assert await store.get_state("session", "s") == {"k": {"v": CONTROL}}
    await store.kv_set("e", "k", [CONTROL])
    assert await store.kv_get("e", "k") == ([CONTROL], 1)
    assert await store.kv_compare_and_set("e", "k", {"c": CONTROL}, 1)
    assert await store.kv_get("e", "k") == ({"c": CONTROL}, 2)

    ns = '["app",null]'
    await store.memory_put(ns, [MemoryWrite("k", CONTROL, {"m": CONTROL}, "h")])
    [row] = await store.memory_list(ns)
    assert row.content == CONTROL and row.metadata == {"m": CONTROL}
    [row] = await store.memory_get(ns, ["k"])
    assert row.content == CONTROL

    # cleared messages keep their metadata in the tombstone
    assert await store.clear_messages("s", NewEvent("history_cleared", {})) == 2
    pruned = await store.read_messages("s", None, True)
    assert pruned[0]["metadata"]["k"] == CONTROL and "content" not in pruned[0]


# --- absurd integers -----------------------------------------------------------------------------


@pytest.mark.parametrize("huge", [2**63, 2**64, 10**20, 10**30])
async def test_absurd_limits_do_not_overflow(store: Store, huge: int) -> None:
    await store.append_messages(SessionHeader("s"), [msg(1), msg(2)], [])
    assert len(await bounded(store.read_messages("s", huge, False))) == 2
    assert len(await bounded(store.read_messages("s", huge, True))) == 2
    assert len(await bounded(store.read_events("s", None, huge))) == 2
    assert [h.id for h in await bounded(store.list_sessions(None, None, huge, None))] == ["s"]
    cut = await bounded(store.window_cut("s", huge, huge))
    assert cut.cut is not None and cut.cut.kept_messages == 2
    assert await bounded(store.read_scores("s", [huge, 1])) == {}
    assert await bounded(store.kv_compare_and_set("e", "k", 1, huge)) is False
    assert await bounded(store.purge_expired(float(huge))) == []
    for since in (float(huge), huge):
        try:
            assert await bounded(store.read_events("s", since, None)) == []
        except Agnt5Error:
            pass  # typed is acceptable for a timestamp beyond every clock


async def test_an_append_queued_behind_a_close_is_answered(sqlite_store: Any) -> None:
    """An append whose drain lands behind the connection thread's stop (a close from another
    thread racing it) still gets an answer once the close is done."""
    store = sqlite_store
    await store.append_messages(SessionHeader("s"), [msg(1)], [])
    db = store._database()
    release = threading.Event()
    db.enqueue(lambda conn: release.wait(BOUND))  # hold the thread while the stop is queued
    stopping = asyncio.get_running_loop().run_in_executor(None, db.stop_and_join)
    await asyncio.sleep(0.05)
    late = asyncio.ensure_future(store.append_messages(SessionHeader("s"), [msg(2)], []))
    await asyncio.sleep(0.05)
    release.set()
    await stopping
    await store.close()
    with pytest.raises(StoreError, match="closed"):
        await bounded(late)
