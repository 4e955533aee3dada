"""Arbitrary text and JSON-ish values through every write path, on both stores.

Each value either is stored and reads back exactly, or is refused with an `Agnt5Error` — within a
bounded time, never a hang — and the store still works afterwards. Valid values (Unicode without
lone surrogates, finite numbers, nesting and size within the limits) must never be refused.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from _convo import example_store
from conftest import StoreEnv
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agnt5 import Entity, Memory, Session
from agnt5.errors import Agnt5Error
from agnt5.memory_keyword import InMemoryMemoryService

BOUND_S = 30.0
FUZZ = settings(deadline=None, max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])

any_char = st.characters(blacklist_categories=())  # surrogates, NUL and control characters included
texts = st.one_of(
    st.text(any_char, max_size=40),
    st.sampled_from(["a" * 1_000_000, "é" * 300_000, "\x00\x01\x1f" * 1000, "x\ud800y", "\udfff", ""]),
)
numbers = st.one_of(st.integers(), st.floats(allow_nan=True, allow_infinity=True))
json_values = st.recursive(
    st.none() | st.booleans() | numbers | st.text(any_char, max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(any_char, max_size=8), inner, max_size=4)
    ),
    max_leaves=25,
)


def _valid(value: Any) -> bool:
    """Whether agnt5 must accept `value` (it may still refuse nothing else)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, (list, tuple)):
        return all(_valid(v) for v in value)
    if isinstance(value, dict):
        return all(_valid(k) and _valid(v) for k, v in value.items())
    return True


async def _outcome(
    write: Callable[[], Awaitable[Any]],
    read: Callable[[], Awaitable[Any]],
    value: Any,
    valid: bool | None = None,
) -> None:
    valid = _valid(value) if valid is None else valid
    try:
        await asyncio.wait_for(write(), BOUND_S)
    except Agnt5Error:
        assert not valid, f"a valid value was refused: {value!r:.200}"
        return
    assert valid, f"an invalid value was accepted: {value!r:.200}"
    assert await asyncio.wait_for(read(), BOUND_S) == value


def _run(env: StoreEnv, body: Callable[[Any, str], Awaitable[None]]) -> None:
    async def main() -> None:
        store, session_id = example_store(env)
        try:
            await body(store, session_id)
            # the store still works afterwards
            check = Session(id=f"{session_id}-after", store=store)
            await check.send_message({"role": "user", "content": "ok"})
            assert [m["content"] for m in await check.history()] == ["ok"]
        finally:
            await store.close()

    asyncio.run(main())


@FUZZ
@given(content=texts, metadata=json_values)
def test_send_message_round_trips_or_refuses(store_env: StoreEnv, content: str, metadata: Any) -> None:
    async def body(store: Any, sid: str) -> None:
        session = Session(id=sid, store=store)
        meta = {"v": metadata}

        async def write() -> None:
            await session.send_message({"role": "user", "content": content}, meta)

        async def read() -> Any:
            stored = await Session(id=sid, store=store).history()
            return [(m["content"], m["metadata"]) for m in stored]

        await _outcome(write, read, [(content, meta)])

    _run(store_env, body)


@FUZZ
@given(key=texts, value=json_values)
def test_set_state_round_trips_or_refuses(store_env: StoreEnv, key: str, value: Any) -> None:
    async def body(store: Any, sid: str) -> None:
        session = Session(id=sid, user_id="u", store=store)

        async def write() -> None:
            session.set_state("k", value, scope="user")
            await session.flush()

        async def read() -> Any:
            fresh = await Session(id=sid, user_id="u", store=store).load()
            return fresh.get_state("k", scope="user")

        await _outcome(write, read, value)

        async def write_key() -> None:
            session.set_state(key, 1)
            await session.flush()

        async def read_key() -> Any:
            return (await Session(id=sid, store=store).load()).get_state(key)

        valid_key = (
            bool(key)
            and _valid(key)
            and "\x00" not in key
            and len(key.encode("utf-8", "surrogatepass")) <= 1024
        )
        await _outcome(write_key, read_key, 1, valid_key)

    _run(store_env, body)


@FUZZ
@given(value=json_values)
def test_entity_set_round_trips_or_refuses(store_env: StoreEnv, value: Any) -> None:
    async def body(store: Any, sid: str) -> None:
        entity = Entity(sid, store=store)

        async def write() -> None:
            await entity.set("k", value)

        async def read() -> Any:
            return await Entity(sid, store=store).get("k")

        await _outcome(write, read, value)

    _run(store_env, body)


@FUZZ
@given(content=texts, metadata=json_values)
def test_memory_round_trips_or_refuses(store_env: StoreEnv, content: str, metadata: Any) -> None:
    async def body(store: Any, sid: str) -> None:
        memory = Memory(InMemoryMemoryService(), user_id="u")

        async def write() -> None:
            await memory.store("k", content, {"m": metadata})

        async def read() -> Any:
            record = await memory.get("k")
            assert record is not None
            return (record.content, record.metadata)

        if not content.strip():
            with pytest.raises(Agnt5Error):
                await write()
            return
        await _outcome(write, read, (content, {"m": metadata}))

    _run(store_env, body)
