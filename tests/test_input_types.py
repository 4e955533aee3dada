"""Public helpers given the wrong kind of argument raise typed agnt5 errors (never a bare
AttributeError or a silently wrong result): `to_provider_messages`, `purge_expired`."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

import agnt5
from agnt5 import Message, Session, purge_expired, to_provider_messages
from agnt5.errors import Agnt5Error, InvalidTypeError
from agnt5.store import Store


@pytest.mark.parametrize(
    ("messages", "match"),
    [
        ("hello", "messages must be a list of message dicts, got str"),
        (b"hi", "got bytes"),
        ({"role": "user", "content": "hi"}, "got dict; wrap a single message in a list"),
        (None, "got NoneType"),
        (3.5, "got float"),
        (["hello"], r"messages\[0\] must be a message dict \(role, content, ...\), got str"),
        ([{"role": "user", "content": "x"}, None], r"messages\[1\] must be a message dict"),
        (
            [{"role": "assistant", "content": "", "tool_calls": "call"}],
            r"messages\[0\]\.tool_calls must be a list",
        ),
        ([{"role": "assistant", "content": "", "tool_calls": [1]}], r"each tool call must be a dict"),
        (
            [{"role": "assistant", "content": "", "tool_calls": [{"id": "c", "function": "f"}]}],
            r"each tool call must be a dict",
        ),
    ],
)
def test_to_provider_messages_refuses_what_is_not_a_list_of_messages(messages: Any, match: str) -> None:
    with pytest.raises(InvalidTypeError, match=match) as caught:
        to_provider_messages(messages)
    assert isinstance(caught.value, Agnt5Error) and isinstance(caught.value, TypeError)
    assert caught.value.field is not None and caught.value.field.startswith("messages")


def test_to_provider_messages_still_takes_lists_iterables_and_history_entries() -> None:
    entry = Message(
        {
            "id": "m1",
            "timestamp": "2024-01-01T00:00:00+00:00",
            "metadata": {},
            "role": "user",
            "content": "a",
        },
        seq=1,
        tokens=5,
    )
    pruned = Message({"id": "m0", "role": "user", "metadata": {}}, seq=0, tokens=5, pruned=True)
    call = {"id": "c1", "function": {"name": "f", "arguments": "{}"}}
    out = to_provider_messages(
        iter([pruned, entry, {"role": "assistant", "content": None, "tool_calls": [call]}])
    )
    assert out == [
        {"role": "user", "content": "a"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
        },
    ]
    assert to_provider_messages([]) == []


@pytest.fixture
def tokyo_local_time() -> Iterator[None]:
    """Local time 9 hours ahead of UTC, so a naive datetime read as local time is visibly wrong."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "JST-9"
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = before
        time.tzset()


@pytest.mark.parametrize("now", ["x", "2030-01-01", 1_900_000_000, date(2030, 1, 1)])
async def test_purge_expired_refuses_a_now_that_is_not_a_datetime(store: Store, now: Any) -> None:
    await Session(id="kept", store=store, retention={"ttl_days": 1}).save()
    with pytest.raises(
        InvalidTypeError, match=r"now must be a datetime \(e.g. datetime.now\(UTC\)\)"
    ) as caught:
        await purge_expired(store=store, now=now)
    assert caught.value.field == "now"
    assert await Session(id="kept", store=store).exists()


@pytest.mark.usefixtures("tokyo_local_time")
async def test_purge_expired_reads_a_naive_now_as_utc(store: Store) -> None:
    agnt5.configure(store=store)
    session = Session(id="short-lived", retention={"ttl_days": 1})
    await session.send_message({"role": "user", "content": "hi"})
    updated = (await store.get_session("short-lived")).updated_at  # type: ignore[union-attr]
    expiry = datetime.fromtimestamp(updated, UTC) + timedelta(days=1)
    # 4 hours before expiry in UTC: kept (read as Tokyo time it would be 13 hours before: kept too).
    assert await purge_expired(now=(expiry - timedelta(hours=4)).replace(tzinfo=None)) == []
    # 4 hours after expiry in UTC; read as Tokyo local time it would still be 5 hours before it.
    assert await purge_expired(now=(expiry + timedelta(hours=4)).replace(tzinfo=None)) == ["short-lived"]
    assert not await session.exists()


# --- tools, memory and prune: the rest of the bad-input scan ---------------------------------------


def _double(a: int) -> int:
    return 2 * a


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: agnt5.tool(name=5)(_double), "tool name must be a string, got int"),  # type: ignore[call-overload]
        (lambda: agnt5.tool(description=["x"])(_double), "tool description must be a string, got list"),  # type: ignore[call-overload]
    ],
)
def test_tool_name_and_description_must_be_strings(make: Any, match: str) -> None:
    from agnt5.errors import ToolDefinitionError

    with pytest.raises(ToolDefinitionError, match=match):
        make()


@pytest.mark.parametrize("arguments", [5, None, [1], ("a", 1)])
async def test_tool_invoke_refuses_arguments_that_are_neither_json_text_nor_a_mapping(arguments: Any) -> None:
    double = agnt5.tool(_double)
    with pytest.raises(InvalidTypeError, match="tool arguments must be JSON text or a mapping") as caught:
        await double.invoke(arguments)
    assert caught.value.field == "arguments"
    assert (await double.invoke({"a": 2})).content == "4"


@pytest.mark.parametrize(
    "text",
    ["[" * 100_000 + "]" * 100_000, '{"a": ' + "9" * 5000 + "}"],
    ids=["nested-100k-deep", "5000-digit-number"],
)
async def test_tool_invoke_turns_unreadable_model_json_into_an_error_result(text: str) -> None:
    result = await agnt5.tool(_double).invoke(text)
    assert result.is_error
    assert result.content.startswith("Error: invalid arguments for tool '_double': arguments cannot be read")
    assert len(result.content) < 400


async def test_memory_store_many_refuses_what_is_not_a_dict_or_tuples() -> None:
    from agnt5 import InMemoryMemoryService, Memory
    from agnt5.errors import MemoryTypeError

    memory = Memory(InMemoryMemoryService(), user_id="u1")
    for items in (5, None, "key=content"):
        with pytest.raises(MemoryTypeError, match="items: must be a dict or a list of tuples") as caught:
            await memory.store_many(items)  # type: ignore[arg-type]
        assert caught.value.field == "items"
    await memory.store_many({"k": "v"})
    assert [r.key for r in await memory.list()] == ["k"]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"num_retries": -1}, "InvalidInputError", "num_retries must be an int >= 0"),
        ({"num_retries": "2"}, "InvalidInputError", "num_retries must be an int >= 0"),
        ({"cached_namespaces": 0}, "InvalidInputError", "cached_namespaces must be a positive int"),
        ({"cached_namespaces": 2.5}, "InvalidInputError", "cached_namespaces must be a positive int"),
        ({"store": "sqlite:///x.db"}, "InvalidTypeError", "store must be an agnt5 Store"),
    ],
)
def test_vector_memory_service_checks_its_settings(kwargs: dict[str, Any], error: str, match: str) -> None:
    from agnt5 import VectorMemoryService, errors

    with pytest.raises(getattr(errors, error), match=match):
        VectorMemoryService("text-embedding-3-small", **kwargs)


async def test_an_empty_strategy_name_is_refused_not_read_as_the_default(store: Store) -> None:
    from agnt5.errors import StrategyError

    session = Session(id="s", store=store)
    await session.send_messages([{"role": "user", "content": f"m{i}"} for i in range(3)])
    with pytest.raises(StrategyError, match="unknown prune strategy ''"):
        await session.prune(strategy="")
    assert len(await session.history()) == 3
