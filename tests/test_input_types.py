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
