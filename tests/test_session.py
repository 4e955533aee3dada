"""Session: the spec's calls, history, four state scopes, durability, audit trail, export, retention.

Every test that takes `store` runs on both stores (tests/conftest.py). On the embedded store a
fresh Session object reads stored state with no await (the spec's usage) and `set_state` is
durable when it returns; on PostgreSQL (no synchronous access) the documented path is
`await session.load()` before reading, and a write is durable after the session's next awaited
call or `await session.flush()`. `ready()` and `flush()` calls below are no-ops on the embedded
store, so there the tests still check the synchronous behaviour.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import _workers
import pytest
from conftest import StoreEnv

import agnt5
from agnt5 import Session
from agnt5.errors import (
    ImmutableSessionError,
    MessageValidationError,
    RetentionPolicyError,
    SessionConflictError,
    SessionNotFoundError,
    StateScopeError,
)
from agnt5.messages import Message
from agnt5.store import Store
from agnt5.store.sqlite import SqliteStore
from agnt5.store.url import sqlite_path

WORKERS = Path(__file__).parent / "_workers.py"


def run_worker(name: str, *args: str) -> Any:
    """Run a function of tests/_workers.py in a fresh Python process; return its JSON result."""
    done = subprocess.run(
        [sys.executable, str(WORKERS), name, *args], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


async def ready(session: Session) -> Session:
    """`session`, ready to read stored state: as it is on the embedded store (no await needed,
    the spec's usage); after `await session.load()` on a store without synchronous access."""
    if not session.store.supports_sync:
        await session.load()
    return session


def tool_call(call_id: str, name: str = "search", arguments: str = '{"q": "alignment"}') -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


class AsyncOnlyStore(SqliteStore):
    """The embedded store presented as a store that can only be reached asynchronously."""

    supports_sync = False

    def _call_sync(self, fn: Any) -> Any:
        raise AssertionError("a store with supports_sync=False must never be called synchronously")


@pytest.fixture
async def async_store(store_env: StoreEnv) -> AsyncIterator[Store]:
    """A store without synchronous access: the embedded store presented as one, or PostgreSQL."""
    s = AsyncOnlyStore(sqlite_path(store_env.url)) if store_env.kind == "sqlite" else store_env.open()
    assert s.supports_sync is False
    yield s
    await s.close()


@pytest.fixture
async def store2(store_env: StoreEnv) -> AsyncIterator[Store]:
    """A second, independent store on the same database (as another process would open it)."""
    s = store_env.open()
    yield s
    await s.close()


# --- the spec, as written ------------------------------------------------------------------------


async def test_spec_basic_usage(store: Store) -> None:
    session = Session(
        id="conv-2024-001",
        app_name="research_assistant",
        user_id="user-123",
        metadata={"project": "ai-safety-research"},
        store=store,
    )
    await session.send_message({"role": "user", "content": "What are the key challenges in AI alignment?"})
    await session.send_message(
        {"role": "assistant", "content": "The main challenges include value learning and robustness."}
    )
    messages = await session.history(limit=10)
    all_messages = await session.history()
    user_messages = [m for m in all_messages if m["role"] == "user"]
    assert [m["content"] for m in messages] == [
        "What are the key challenges in AI alignment?",
        "The main challenges include value learning and robustness.",
    ]
    assert messages == all_messages
    assert [m["content"] for m in user_messages] == ["What are the key challenges in AI alignment?"]

    session.set_state("shopping_cart", ["item1", "item2"])
    session.set_state("current_step", "checkout")
    session.set_state("language", "English", scope="user")
    session.set_state("timezone", "America/Los_Angeles", scope="user")
    session.set_state("api_version", "v2", scope="app")
    session.set_state("feature_flags", {"new_ui": True}, scope="app")
    session.set_state("processing_step", "validation", scope="temp")
    assert session.get_state("shopping_cart") == ["item1", "item2"]
    assert session.get_state("current_step") == "checkout"
    assert session.get_state("language", scope="user") == "English"
    assert session.get_state("timezone", scope="user") == "America/Los_Angeles"
    assert session.get_state("api_version", scope="app") == "v2"
    assert session.get_state("feature_flags", scope="app") == {"new_ui": True}
    assert session.get_state("processing_step", scope="temp") == "validation"
    assert session.get_state("missing") is None
    assert session.get_state("missing", "fallback") == "fallback"
    assert session.get_state("missing", default=3, scope="app") == 3

    # "Agents can check dependencies"
    session.set_state("agent_outputs", {"researcher": {"status": "completed", "findings": [1]}})
    assert session.get_state("agent_outputs")["researcher"]["status"] == "completed"


async def test_spec_export_audit_and_retention(store: Store) -> None:
    session = Session(
        id="compliance-audit-001",
        user_id="analyst-789",
        metadata={"regulation": "SOC2", "audit_period": "Q4-2024", "auditor": "external-firm"},
        retention={"ttl_days": 730},
        store=store,
    )
    await session.send_message({"role": "user", "content": "Analyze user access patterns"})
    jsonl_export = await session.export(format="jsonl")
    line = json.loads(jsonl_export.splitlines()[0])
    assert {"timestamp", "role", "message", "metadata", "tool_calls"} <= set(line)
    recent_events = await session.events(since="2024-01-01", limit=100)
    assert [e.type for e in recent_events] == ["message_appended"]
    assert session.retention.ttl_days == 730

    for retention in (
        {"ttl_days": 2555, "auto_prune": False, "immutable": True},
        {"ttl_days": 30, "auto_prune": True, "prune_strategy": "sliding_window", "max_messages": 1000},
        {"ttl_days": 1, "auto_prune": True},
    ):
        s = Session(id=f"r-{len(retention)}-{retention['ttl_days']}", retention=retention, store=store)
        await s.save()
        fresh = await ready(Session(s.id, store=store))
        policy = fresh.retention
        assert {k: getattr(policy, k) for k in retention} == retention


# --- constructor ---------------------------------------------------------------------------------


def test_constructor_defaults_and_generated_id() -> None:
    a, b = Session(), Session()
    assert a.id != b.id and a.id.startswith("session-")
    s = Session("x", app_name="app", user_id="u", metadata={"k": 1})
    assert (s.id, s.app_name, s.user_id, s.metadata) == ("x", "app", "u", {"k": 1})
    assert Session("y").metadata == {}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"id": ""},
        {"id": 123},
        {"id": "ok", "app_name": ""},
        {"id": "ok", "app_name": 5},
        {"id": "ok", "user_id": ""},
        {"id": "ok", "user_id": ["u"]},
    ],
)
def test_constructor_rejects_bad_identifiers(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Session(**kwargs)


def test_constructor_rejects_bad_metadata_and_retention() -> None:
    with pytest.raises(ValueError, match="metadata"):
        Session("x", metadata=["not", "a", "dict"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="metadata"):
        Session("x", metadata={"when": datetime.now()})
    with pytest.raises(RetentionPolicyError):
        Session("x", retention="30 days")  # type: ignore[arg-type]


async def test_session_is_saved_on_first_write_and_get(store: Store) -> None:
    s = Session("lazy", store=store)
    assert not await s.exists()
    with pytest.raises(SessionNotFoundError):
        await Session.get("lazy", store=store)
    with pytest.raises(KeyError):
        await Session.get("lazy", store=store)
    await s.save()
    assert await s.exists()
    got = await Session.get("lazy", store=store)
    assert got.id == "lazy"


async def test_metadata_is_stored_and_replaced_when_given(store: Store, store2: Store) -> None:
    s = Session("m", app_name="app", user_id="u", metadata={"ticket_type": "billing"}, store=store)
    await s.send_message({"role": "user", "content": "hi"})
    fresh = await ready(Session("m", store=store2))
    assert fresh.metadata == {"ticket_type": "billing"}
    assert (fresh.app_name, fresh.user_id) == ("app", "u")
    replaced = Session("m", metadata={"ticket_type": "refund"}, store=store2)
    await replaced.save()
    assert (await ready(Session("m", store=store))).metadata == {"ticket_type": "refund"}


async def test_conflicting_user_or_app_raises(store: Store) -> None:
    await Session("c", app_name="app", user_id="alice", store=store).send_message(
        {"role": "user", "content": "x"}
    )
    with pytest.raises(SessionConflictError, match="user_id"):
        s = Session("c", app_name="app", user_id="bob", store=store)
        await s.send_message({"role": "user", "content": "y"})
    with pytest.raises(SessionConflictError, match="app_name"):
        s = Session("c", app_name="other", user_id="alice", store=store)
        await s.history()
    with pytest.raises(ValueError):  # SessionConflictError is a ValueError
        (await ready(Session("c", user_id="bob", store=store))).get_state("k", scope="user")
    # No conflict when the stored values are repeated or left out.
    assert len(await Session("c", app_name="app", user_id="alice", store=store).history()) == 1
    assert len(await Session("c", store=store).history()) == 1


# --- list and delete -----------------------------------------------------------------------------


async def test_list_filters_and_orders_by_last_update(store: Store) -> None:
    specs = [("s1", "app", "alice"), ("s2", "app", "bob"), ("s3", "app", "alice"), ("s4", "other", "alice")]
    for sid, app, user in specs:
        await Session(sid, app_name=app, user_id=user, store=store).send_message(
            {"role": "user", "content": sid}
        )
    # Touch s1 last: it becomes the most recently updated (the store keeps update times to the second).
    await asyncio.sleep(1.1)
    await Session("s1", store=store).send_message({"role": "user", "content": "again"})

    page = await Session.list(store=store)
    assert [h.id for h in page] == ["s1", "s4", "s3", "s2"]
    assert page.next_cursor is None
    assert [h.id for h in await Session.list(app_name="app", store=store)] == ["s1", "s3", "s2"]
    assert [h.id for h in await Session.list(user_id="alice", store=store)] == ["s1", "s4", "s3"]
    found = await Session.list(app_name="app", user_id="alice", store=store)
    assert [h.id for h in found] == ["s1", "s3"]
    assert found.sessions[0].message_count == 2
    assert len(await Session.list(app_name="nope", store=store)) == 0


async def test_list_with_default_store_and_keyword_filters() -> None:
    await Session("d1", app_name="a", user_id="u").send_message({"role": "user", "content": "x"})
    page = await Session.list(app_name="a", user_id="u")
    assert [h.id for h in page] == ["d1"]


async def test_list_pages_with_a_cursor(store: Store) -> None:
    for i in range(7):
        await Session(f"p{i}", app_name="app", store=store).send_message({"role": "user", "content": "x"})
    seen: list[str] = []
    sizes = []
    cursor = None
    while True:
        page = await Session.list(app_name="app", limit=3, cursor=cursor, store=store)
        sizes.append(len(page))
        seen += [h.id for h in page]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert sizes == [3, 3, 1]
    assert seen == [f"p{i}" for i in reversed(range(7))]
    with pytest.raises(ValueError, match="cursor"):
        await Session.list(cursor="not-a-cursor", store=store)
    for bad in (0, -1, True, 2.5):
        with pytest.raises(ValueError, match="limit"):
            await Session.list(limit=bad, store=store)  # type: ignore[arg-type]


async def test_delete_removes_the_session_whole_but_keeps_user_and_app_state(
    store: Store, store_env: StoreEnv
) -> None:
    s = Session("gone", app_name="app", user_id="u", store=store)
    keep = Session("kept", app_name="app", user_id="u", store=store)
    await s.send_message({"role": "user", "content": "bye"})
    await keep.send_message({"role": "user", "content": "stay"})
    s.set_state("step", 1)
    keep.set_state("step", 9)
    s.set_state("lang", "en", scope="user")
    s.set_state("flag", True, scope="app")

    await s.delete()

    assert not await s.exists()
    assert store_env.rows("SELECT count(*) FROM messages WHERE session_id = 'gone'") == [(0,)]
    assert store_env.rows("SELECT count(*) FROM events WHERE session_id = 'gone'") == [(0,)]
    assert store_env.rows("SELECT count(*) FROM state WHERE scope = 'session' AND owner = 'gone'") == [(0,)]
    fresh = await ready(Session("gone", app_name="app", user_id="u", store=store))
    assert await fresh.history() == []
    assert await fresh.events() == []
    assert fresh.get_state("step") is None
    assert fresh.get_state("lang", scope="user") == "en"
    assert fresh.get_state("flag", scope="app") is True
    assert [h.id for h in await Session.list(store=store)] == ["kept"]
    # The other session is untouched.
    assert [m["content"] for m in await keep.history()] == ["stay"]
    assert keep.get_state("step") == 9
    assert len(await keep.events()) == 2


# --- send_message --------------------------------------------------------------------------------


async def test_send_message_returns_the_stored_entry(store: Store) -> None:
    s = Session("e", store=store)
    before = datetime.now(UTC)
    m = await s.send_message({"role": "user", "content": "hi", "name": "alice"}, metadata={"source": "web"})
    after = datetime.now(UTC)
    assert isinstance(m, Message) and isinstance(m, dict)
    assert m["role"] == "user" and m["content"] == "hi" and m["name"] == "alice"
    assert m["metadata"] == {"source": "web"}
    assert m.seq == 1 and m.tokens > 0
    assert m["id"].startswith("msg_")
    assert before - timedelta(seconds=1) <= datetime.fromisoformat(m["timestamp"]) <= after
    [stored] = await s.history()
    assert stored == m and stored.seq == m.seq and stored.tokens == m.tokens


async def test_send_message_accepts_every_message_shape(store: Store) -> None:
    s = Session("shapes", store=store)
    parts = [
        {"type": "text", "text": "look"},
        {"type": "image_url", "image_url": {"url": "https://example.com/x.png"}},
    ]
    sent = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": parts},
        {"role": "assistant", "content": None, "tool_calls": [tool_call("c1"), tool_call("c2", "calc")]},
        {"role": "tool", "content": "found it", "tool_call_id": "c1"},
        {"role": "tool", "content": "42", "tool_call_id": "c2", "name": "calc"},
        {"role": "assistant", "content": "done"},
    ]
    for message in sent:
        await s.send_message(message)
    history = await s.history()
    assert [m.seq for m in history] == [1, 2, 3, 4, 5, 6]
    assert agnt5.to_provider_messages(history) == sent
    assert history[1]["content"] == parts
    assert history[2].get("tool_calls") == [tool_call("c1"), tool_call("c2", "calc")]
    assert history[3].get("tool_calls") is None


BAD_MESSAGES: list[tuple[Any, str]] = [
    ({"role": "wizard", "content": "x"}, "role"),
    ({"content": "x"}, "role"),
    ({"role": "user", "content": 3.5}, "content"),
    ({"role": "user", "content": None}, "content"),
    ({"role": "user", "content": [{"type": "text"}]}, "content[0].text"),
    ({"role": "user", "content": [{"nope": 1}]}, "content[0].type"),
    ({"role": "assistant", "content": None, "tool_calls": [{"id": "a"}]}, "tool_calls[0].function"),
    (
        {"role": "assistant", "content": None, "tool_calls": [tool_call("a"), tool_call("a")]},
        "tool_calls[1].id",
    ),
    (
        {"role": "assistant", "content": None, "tool_calls": [tool_call("a", arguments={})]},
        "tool_calls[0].function.arguments",
    ),  # type: ignore[arg-type]
    ({"role": "user", "content": "x", "tool_calls": [tool_call("a")]}, "tool_calls"),
    ({"role": "tool", "content": "x"}, "tool_call_id"),
    ({"role": "user", "content": "x", "name": ""}, "name"),
    ({"role": "user", "content": "x", "metadata": {"a": 1}}, "metadata"),
    ({"role": "user", "content": "x", "extra": 1}, "extra"),
    ("just text", "message"),
]


@pytest.mark.parametrize(("message", "field"), BAD_MESSAGES)
async def test_invalid_message_raises_and_stores_nothing(store: Store, message: Any, field: str) -> None:
    s = Session("v", store=store)
    with pytest.raises(MessageValidationError) as info:
        await s.send_message(message)
    assert isinstance(info.value, ValueError)
    assert info.value.field == field and field in str(info.value)
    assert not await s.exists()
    assert await s.history() == []
    assert await s.events() == []
    # Also when the session already has messages: nothing is added, no sequence number is used.
    await s.send_message({"role": "user", "content": "good"})
    with pytest.raises(MessageValidationError):
        await s.send_message(message)
    after = await s.send_message({"role": "user", "content": "good again"})
    assert after.seq == 2
    assert [m["content"] for m in await s.history()] == ["good", "good again"]
    assert [e.type for e in await s.events()] == ["message_appended", "message_appended"]


@pytest.mark.parametrize(
    ("metadata", "match"), [(["a"], "metadata"), ({"t": object()}, "metadata"), ({1: "x"}, "metadata")]
)
async def test_bad_metadata_argument_raises_and_stores_nothing(
    store: Store, metadata: Any, match: str
) -> None:
    s = Session("meta", store=store)
    with pytest.raises(MessageValidationError, match=match):
        await s.send_message({"role": "user", "content": "x"}, metadata=metadata)
    assert await s.history() == []


async def test_send_messages_batch_is_all_or_nothing(store: Store) -> None:
    s = Session("batch", store=store)
    await s.send_message({"role": "user", "content": "first"})
    with pytest.raises(MessageValidationError) as info:
        await s.send_messages(
            [
                {"role": "user", "content": "ok 1"},
                {"role": "assistant", "content": "ok 2"},
                {"role": "tool", "content": "no id"},
            ]
        )
    assert info.value.field == "tool_call_id"
    assert [m["content"] for m in await s.history()] == ["first"]
    stored = await s.send_messages(
        [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}], metadata={"batch": 1}
    )
    assert [m.seq for m in stored] == [2, 3]
    assert all(m["metadata"] == {"batch": 1} for m in stored)
    assert await s.send_messages([]) == []
    with pytest.raises(TypeError):
        await s.send_messages({"role": "user", "content": "one"})  # type: ignore[arg-type]
    assert [m.seq for m in await s.history()] == [1, 2, 3]


# --- history -------------------------------------------------------------------------------------


async def test_history_limit_semantics(store: Store) -> None:
    s = Session("h", store=store)
    for i in range(5):
        await s.send_message({"role": "user" if i % 2 == 0 else "assistant", "content": f"m{i}"})
    assert [m["content"] for m in await s.history()] == ["m0", "m1", "m2", "m3", "m4"]
    assert [m["content"] for m in await s.history(limit=2)] == ["m3", "m4"]
    assert [m["content"] for m in await s.history(1)] == ["m4"]
    assert len(await s.history(limit=5)) == 5
    assert len(await s.history(limit=500)) == 5
    assert await s.history(limit=0) == []
    for bad in (-1, -100, 1.5, "3", True):
        with pytest.raises(ValueError, match="limit"):
            await s.history(limit=bad)  # type: ignore[arg-type]
    assert await Session("empty", store=store).history(limit=3) == []


async def test_first_history_of_a_fresh_object_reads_header_and_messages(store: Store) -> None:
    """A new Session object's first history() loads its header with the messages (one store
    call on SQLite): limits, tombstones, the stored header and metadata given all hold."""
    s = Session("fh", app_name="app", user_id="alice", store=store)
    for i in range(4):
        await s.send_message({"role": "user", "content": f"m{i}"})
    await s.prune("keep_last_2")
    assert [m["content"] for m in await Session("fh", store=store).history()] == ["m2", "m3"]
    assert [m["content"] for m in await Session("fh", store=store).history(limit=1)] == ["m3"]
    everything = await Session("fh", store=store).history(include_pruned=True)
    assert [(m.seq, m.pruned) for m in everything] == [(1, True), (2, True), (3, False), (4, False)]
    fresh = Session("fh", metadata={"topic": "x"}, store=store)
    assert len(await fresh.history()) == 2
    assert (fresh.app_name, fresh.user_id, fresh.immutable) == ("app", "alice", False)
    assert (await ready(Session("fh", store=store))).metadata == {"topic": "x"}  # written back
    with pytest.raises(SessionConflictError, match="user_id"):
        await Session("fh", user_id="bob", store=store).history()
    unsaved = Session("fh-new", user_id="bob", store=store)
    assert await unsaved.history() == []
    assert not await unsaved.exists()  # reading stores nothing
    await unsaved.send_message({"role": "user", "content": "first"})
    assert [m.seq for m in await Session("fh-new", store=store).history()] == [1]


async def test_history_entries_are_dict_like_with_id_timestamp_metadata(store: Store) -> None:
    s = Session("entries", store=store)
    await s.send_message({"role": "user", "content": "q"}, metadata={"channel": "sms"})
    await s.send_message({"role": "assistant", "content": None, "tool_calls": [tool_call("t1")]})
    first, second = await s.history()
    assert first["metadata"] == {"channel": "sms"} and first.metadata == {"channel": "sms"}
    assert second["metadata"] == {}
    assert first["id"] != second["id"]
    assert first.get("tool_calls") is None and second.get("tool_calls") == [tool_call("t1")]
    for m in (first, second):
        ts = datetime.fromisoformat(m["timestamp"])
        assert ts.utcoffset() == timedelta(0)
        assert abs((datetime.now(UTC) - ts).total_seconds()) < 60
    assert first.timestamp <= second.timestamp


async def test_to_provider_messages_gives_what_litellm_accepts(store: Store) -> None:
    import litellm

    s = Session("provider", store=store)
    await s.send_message({"role": "system", "content": "sys"})
    await s.send_message({"role": "user", "content": [{"type": "text", "text": "hi"}], "name": "ann"})
    await s.send_message({"role": "assistant", "content": None, "tool_calls": [tool_call("k")]})
    await s.send_message({"role": "tool", "content": "r", "tool_call_id": "k"}, metadata={"x": 1})
    plain = agnt5.to_provider_messages(await s.history())
    assert all(type(m) is dict for m in plain)
    assert all(set(m) <= {"role", "content", "name", "tool_calls", "tool_call_id"} for m in plain)
    json.dumps(plain)
    litellm.utils.validate_chat_completion_user_messages(messages=plain)
    response = litellm.completion(model="gpt-4o-mini", messages=plain, mock_response="fine")
    assert response.choices[0].message.content == "fine"


# --- state ---------------------------------------------------------------------------------------


async def test_user_scope_is_shared_by_one_users_sessions_only(store: Store) -> None:
    a1 = Session("a1", app_name="app", user_id="alice", store=store)
    a2 = Session("a2", app_name="app", user_id="alice", store=store)
    b1 = Session("b1", app_name="app", user_id="bob", store=store)
    other_app = Session("x1", app_name="other", user_id="alice", store=store)
    a1.set_state("theme", "dark", scope="user")
    await a1.flush()
    a2, b1, other_app = [await ready(x) for x in (a2, b1, other_app)]
    assert a2.get_state("theme", scope="user") == "dark"
    assert b1.get_state("theme", scope="user") is None
    assert other_app.get_state("theme", scope="user") is None
    # Not the session scope either.
    assert a1.get_state("theme") is None and a2.get_state("theme") is None
    a2.set_state("theme", "light", scope="user")
    await a2.flush()
    await ready(a1)
    assert a1.get_state("theme", scope="user") == "light"
    assert a1.state("user") == {"theme": "light"}


async def test_app_scope_is_shared_across_users_not_apps(store: Store) -> None:
    alice = Session("s-a", app_name="app", user_id="alice", store=store)
    bob = Session("s-b", app_name="app", user_id="bob", store=store)
    anon = Session("s-c", app_name="app", store=store)
    other = Session("s-d", app_name="other", user_id="alice", store=store)
    alice.set_state("rate_limit", 1000, scope="app")
    await alice.flush()
    bob, anon, other = [await ready(x) for x in (bob, anon, other)]
    assert bob.get_state("rate_limit", scope="app") == 1000
    assert anon.get_state("rate_limit", scope="app") == 1000
    assert other.get_state("rate_limit", scope="app") is None


async def test_session_scope_is_per_session(store: Store) -> None:
    a = Session("one", app_name="app", user_id="u", store=store)
    b = Session("two", app_name="app", user_id="u", store=store)
    a.set_state("page", 3)
    await a.flush()
    assert (await ready(b)).get_state("page") is None
    assert a.state() == {"page": 3}
    a.delete_state("page")
    assert a.get_state("page", "none") == "none"
    a.delete_state("never-set")


async def test_temp_scope_is_never_persisted_and_cleared(store: Store, store_env: StoreEnv) -> None:
    s = Session("t", user_id="u", store=store)
    s.set_state("validation_step", "in_progress", scope="temp")
    assert s.get_state("validation_step", scope="temp") == "in_progress"
    assert s.state("temp") == {"validation_step": "in_progress"}
    assert s.get_state("validation_step") is None  # not the session scope
    await s.send_message({"role": "user", "content": "x"})
    assert (await ready(Session("t", store=store))).get_state("validation_step", scope="temp") is None
    assert store_env.rows(
        "SELECT count(*) FROM state WHERE scope = 'temp' OR value LIKE '%in_progress%'"
    ) == [(0,)]
    assert all(e.data.get("scope") != "temp" for e in await s.events())
    s.clear_temp()
    assert s.get_state("validation_step", scope="temp") is None
    assert s.state("temp") == {}


async def test_bad_scopes_raise_state_scope_error(store: Store) -> None:
    anonymous = Session("anon", app_name="app", store=store)
    with pytest.raises(StateScopeError, match="user_id"):
        anonymous.set_state("theme", "dark", scope="user")
    with pytest.raises(StateScopeError, match="user_id"):
        anonymous.get_state("theme", scope="user")
    s = Session("scoped", user_id="u", store=store)
    for call in (
        lambda: s.set_state("k", 1, scope="global"),  # type: ignore[arg-type]
        lambda: s.get_state("k", scope="Session"),  # type: ignore[arg-type]
        lambda: s.state("invocation"),  # type: ignore[arg-type]
    ):
        with pytest.raises(StateScopeError, match="unknown state scope"):
            call()
    assert issubclass(StateScopeError, ValueError)
    assert not await anonymous.exists() and not await s.exists()


@pytest.mark.parametrize("scope", ["session", "user", "app", "temp"])
@pytest.mark.parametrize(
    ("value", "type_name"),
    [({1, 2}, "set"), (object(), "object"), ({"when": datetime.now()}, "datetime"), (b"x", "bytes")],
)
async def test_non_json_state_raises_type_error_and_writes_nothing(
    store: Store, scope: str, value: Any, type_name: str
) -> None:
    s = Session("j", app_name="app", user_id="u", store=store)
    s.set_state("cart", ["kept"], scope=scope)  # type: ignore[arg-type]
    events_before = await s.events()
    with pytest.raises(TypeError, match=rf"'cart'.*{type_name}"):
        s.set_state("cart", value, scope=scope)  # type: ignore[arg-type]
    assert s.get_state("cart", scope=scope) == ["kept"]  # type: ignore[arg-type]
    fresh = await ready(Session("j", store=store))
    assert fresh.get_state("cart", scope=scope) == (None if scope == "temp" else ["kept"])  # type: ignore[arg-type]
    assert await s.events() == events_before


def test_state_keys_must_be_non_empty_strings() -> None:
    s = Session("k")
    for key in (5, None):
        with pytest.raises(TypeError):
            s.set_state(key, 1)  # type: ignore[arg-type]
    for key in ("", "a\x00b", "x\ud800"):
        with pytest.raises(ValueError, match="state key"):
            s.set_state(key, 1)


async def test_fresh_object_in_same_process_sees_history_and_state_without_await(
    store: Store, store2: Store
) -> None:
    s = Session("fresh", app_name="app", user_id="u", metadata={"m": 1}, store=store)
    await s.send_message({"role": "user", "content": "remember me"})
    s.set_state("step", 3)
    s.set_state("lang", "de", scope="user")
    s.set_state("flag", [1], scope="app")
    await s.flush()
    for st in (store, store2):
        # No await before get_state on the embedded store (the spec's usage); load() otherwise.
        fresh = await ready(Session("fresh", store=st))
        assert fresh.get_state("step") == 3
        assert fresh.get_state("lang", scope="user") == "de"
        assert fresh.get_state("flag", scope="app") == [1]
        assert fresh.metadata == {"m": 1}
        assert [m["content"] for m in await fresh.history()] == ["remember me"]


async def test_set_state_is_durable_when_it_returns_on_the_embedded_store(
    store: Store, store_env: StoreEnv
) -> None:
    await store.get_session("durable")  # the store is open (its tables exist); nothing is written
    s = Session("durable", user_id="u", store=store)
    s.set_state("n", 41)
    s.set_state("n", 42)
    sql = "SELECT value FROM state WHERE scope = 'session' AND owner = 'durable' AND key = 'n'"
    if not store.supports_sync:  # durable once flushed (or at the session's next awaited call)
        assert store_env.rows(sql) == []
        await s.flush()
    assert store_env.rows(sql) == [("42",)]
    assert await s.exists()


async def test_another_process_sees_history_and_state(store: Store, store_env: StoreEnv) -> None:
    # Written here, read by a fresh process with no await before get_state.
    s = Session("xp", app_name="app", user_id="u1", metadata={"from": "parent"}, store=store)
    await s.send_message({"role": "user", "content": "hello from the parent"})
    s.set_state("step", 1)
    s.set_state("lang", "en", scope="user")
    s.set_state("flag", False, scope="app")
    s.set_state("scratch", "x", scope="temp")
    await s.flush()
    seen = await asyncio.to_thread(run_worker, "read_session", store_env.url, "xp")
    assert seen["step"] == 1 and seen["lang"] == "en" and seen["flag"] is False
    assert seen["scratch"] is None
    assert seen["metadata"] == {"from": "parent"} and seen["user_id"] == "u1"
    assert seen["history"] == [{"role": "user", "content": "hello from the parent", "seq": 1, "meta": {}}]

    # Written by another process, read here.
    await asyncio.to_thread(run_worker, "write_session", store_env.url, "child")
    fresh = await ready(Session("child", store=store))
    assert fresh.get_state("step") == 2
    assert fresh.get_state("lang", scope="user") == "fr"
    assert fresh.get_state("flag", scope="app") is True
    assert fresh.get_state("scratch", scope="temp") is None
    assert fresh.metadata == {"from": "child"}
    history = await fresh.history()
    assert [(m["role"], m["content"], m.seq) for m in history] == [
        ("user", "hello from a child", 1),
        ("assistant", "hi child", 2),
    ]
    assert history[1]["metadata"] == {"agent": "a"}


async def test_async_only_store_flushes_on_next_awaited_call(async_store: Store, store_env: StoreEnv) -> None:
    s = Session("async", app_name="app", user_id="u", store=async_store)
    s.set_state("step", 1)
    s.set_state("lang", "en", scope="user")
    s.set_state("gone", 1)
    s.delete_state("gone")
    assert s.get_state("step") == 1  # visible to this object at once
    assert s.get_state("lang", scope="user") == "en"
    assert s.get_state("gone") is None
    await s.history()  # the next awaited call makes them durable
    assert dict(store_env.rows("SELECT key, value FROM state WHERE scope IN ('session', 'user')")) == {
        "step": "1",
        "lang": '"en"',
    }
    s.set_state("step", 2)
    await s.send_message({"role": "user", "content": "x"})
    assert store_env.rows("SELECT value FROM state WHERE key = 'step'") == [("2",)]
    s.set_state("step", 3)
    await s.events()
    assert store_env.rows("SELECT value FROM state WHERE key = 'step'") == [("3",)]


async def test_async_only_store_flush_and_load(async_store: Store, store_env: StoreEnv) -> None:
    s = Session("af", app_name="app", user_id="u", metadata={"k": "v"}, store=async_store)
    s.set_state("a", [1, 2])
    s.set_state("b", {"c": 1}, scope="app")
    await s.flush()
    assert dict(store_env.rows("SELECT key, value FROM state")) == {"a": "[1,2]", "b": '{"c":1}'}
    await s.flush()  # nothing pending: a no-op

    fresh = Session("af", store=async_store)
    assert await fresh.load() is fresh
    assert fresh.get_state("a") == [1, 2]
    assert fresh.get_state("b", scope="app") == {"c": 1}
    assert fresh.metadata == {"k": "v"} and fresh.user_id == "u"
    assert fresh.state() == {"a": [1, 2]}

    # load() refreshes what another writer changed.
    writer = Session("af", store=async_store)
    await writer.load()
    writer.set_state("a", "new")
    await writer.flush()
    assert fresh.get_state("a") == [1, 2]
    await fresh.load()
    assert fresh.get_state("a") == "new"


async def test_cancelled_flush_writes_once_and_loses_nothing(async_store: Store) -> None:
    s = Session("cf", store=async_store)
    s.set_state("k", 1)
    # Cancelled while reading the header: the change stays pending.
    task = asyncio.create_task(s.flush())
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await s.flush()
    assert (await Session("cf", store=async_store).load()).get_state("k") == 1
    # Cancelled while writing: the write completes, once.
    s.set_state("k", 2)
    task = asyncio.create_task(s.flush())
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await _settle()
    other = Session("cf", store=async_store)
    await other.load()
    other.set_state("k", 3)  # a later writer must not be overwritten by a replay of the old write
    await other.flush()
    await s.flush()
    await s.history()
    assert (await Session("cf", store=async_store).load()).get_state("k") == 3
    changes = [e.data["key"] for e in await s.events() if e.type == "state_changed"]
    assert changes == ["k", "k", "k"]


class FailingWrites(AsyncOnlyStore):
    fail = True

    async def write_state(self, header: Any, writes: Any, events: Any) -> None:
        if self.fail:
            raise OSError("disk on fire")
        await super().write_state(header, writes, events)


async def test_failed_flush_keeps_the_changes_pending(db_path: Path) -> None:
    store = FailingWrites(str(db_path))
    s = Session("ff", store=store)
    s.set_state("a", 1)
    with pytest.raises(OSError):
        await s.flush()
    s.set_state("b", 2)
    store.fail = False
    await s.flush()
    assert (await Session("ff", store=store).load()).state() == {"a": 1, "b": 2}
    await store.close()


async def test_load_refreshes_on_the_embedded_store_too(store: Store, store2: Store) -> None:
    s = Session("l", user_id="u", metadata={"v": 1}, store=store)
    s.set_state("x", 1)
    s.set_state("lang", "en", scope="user")
    await s.flush()  # a no-op on the embedded store
    stale = await Session("l", store=store).load()
    assert stale.get_state("x") == 1 and stale.metadata == {"v": 1}
    # Another writer (another store on the database, as another process) changes it all.
    other = Session("l", metadata={"v": 2}, store=store2)
    await other.save()
    other.set_state("x", 2)
    other.set_state("lang", "fr", scope="user")
    await other.flush()
    assert stale.metadata == {"v": 1}  # the header an object read stays as read...
    assert await stale.load() is stale  # ...until load() reads it again, on every store
    assert stale.metadata == {"v": 2}
    assert stale.get_state("x") == 2 and stale.get_state("lang", scope="user") == "fr"
    assert stale.state() == {"x": 2} and stale.user_id == "u"


async def test_two_objects_of_one_user_setting_different_keys_both_persist(
    async_store: Store, store: Store
) -> None:
    # Interleaved writers, both on the async-only path (where a whole-state rewrite would lose one).
    a = Session("pa", app_name="app", user_id="u", store=async_store)
    b = Session("pb", app_name="app", user_id="u", store=async_store)
    await a.load()
    await b.load()
    a.set_state("theme", "dark", scope="user")
    b.set_state("language", "en", scope="user")
    await b.flush()
    await a.flush()
    c = await ready(Session("pc", app_name="app", user_id="u", store=store))
    assert c.state("user") == {"theme": "dark", "language": "en"}
    # And two objects of one session on `store` (the embedded store: synchronous writes).
    x = Session("same", user_id="u", store=store)
    y = Session("same", user_id="u", store=store)
    x.set_state("k1", 1)
    y.set_state("k2", 2)
    await x.flush()
    await y.flush()
    assert (await ready(x)).state() == {"k1": 1, "k2": 2}


async def test_two_processes_setting_different_keys_both_persist(store_env: StoreEnv, store: Store) -> None:
    # Each attempt checks that nothing is lost; the writers must overlap in at least one attempt
    # (on a loaded machine one process can finish its 40 writes before the other starts).
    overlapped = {}
    for attempt in range(3):
        sid = f"merge{attempt}"
        await Session(sid, app_name="app", user_id=f"u{attempt}", store=store).save()
        await asyncio.to_thread(
            _workers.race,
            _workers.set_state_keys,
            [(store_env.url, sid, f"u{attempt}", p, 40) for p in ("a", "b")],
        )
        s = await ready(Session(sid, store=store))
        expected = {f"{p}{i}": i for p in ("a", "b") for i in range(40)}
        assert s.state() == expected
        assert s.state("user") == expected
        # The two processes wrote at the same time: their writes interleave in the audit trail.
        writers = [e.data["key"][0] for e in await s.events() if e.type == "state_changed"]
        assert sorted(writers) == ["a"] * 80 + ["b"] * 80
        overlapped = _workers.runs(writers)
        if sum(overlapped.values()) > 2:
            break
    assert sum(overlapped.values()) > 2, f"the writers never overlapped in 3 races: runs {overlapped}"


# --- cancellation --------------------------------------------------------------------------------


async def _settle() -> None:
    """Wait for every other task (shielded writes keep running after their caller is cancelled)."""
    others = asyncio.all_tasks() - {asyncio.current_task()}
    await asyncio.gather(*others, return_exceptions=True)


async def _check_whole_or_absent(s: Session, sent: dict[str, dict[str, Any]]) -> list[Message]:
    history = await s.history()
    assert [m.seq for m in history] == list(range(1, len(history) + 1))
    by_content = {m["content"]: m for m in history}
    assert len(by_content) == len(history)  # none stored twice
    for content, m in by_content.items():
        original = sent[content]
        assert m["role"] == "user" and m["metadata"] == original
        assert m.tokens > 0
    events = [e for e in await s.events() if e.type == "message_appended"]
    assert sorted(e.data["seq"] for e in events) == [m.seq for m in history]
    return history


async def test_cancelled_send_message_stores_whole_or_nothing(store: Store) -> None:
    warm = Session("cancel", user_id="u", store=store)
    await warm.send_message({"role": "user", "content": "first"}, metadata={"i": -1})
    sent: dict[str, dict[str, Any]] = {"first": {"i": -1}}
    outcomes: dict[str, tuple[Session, int, Message | None]] = {}
    for i in range(72):
        content = f"m{i}"
        sent[content] = {"i": i}
        # Half the calls go through the warm object, half through a new object that must read
        # the session header first, so cancellation lands at different points of the call.
        session = warm if i % 2 == 0 else Session("cancel", store=store)
        task = asyncio.create_task(
            session.send_message({"role": "user", "content": content}, metadata={"i": i})
        )
        spins = (i // 2) % 6
        for _ in range(spins):
            await asyncio.sleep(0)
        if i % 12 == 11:
            await asyncio.sleep(0.001)
        task.cancel()
        try:
            result: Message | None = await task
        except asyncio.CancelledError:
            result = None
        outcomes[content] = (session, spins, result)
    await _settle()
    history = await _check_whole_or_absent(s=warm, sent=sent)
    stored = {m["content"] for m in history}
    cancelled_but_stored = cancelled_and_absent = 0
    for content, (session, spins, result) in outcomes.items():
        if result is not None:  # the call returned: its message is there
            assert content in stored and result.seq == next(m.seq for m in history if m["content"] == content)
        elif content in stored:
            cancelled_but_stored += 1
        else:
            cancelled_and_absent += 1
        if spins == 0:  # cancelled before it ever ran
            assert content not in stored
        if session is warm and spins > 0:  # cancelled once its append was under way
            assert content in stored
    assert cancelled_but_stored > 0 and cancelled_and_absent > 0
    later = await warm.send_message({"role": "user", "content": "after"})
    assert later.seq == len(history) + 1


async def test_wait_for_timeouts_store_whole_or_nothing(store: Store) -> None:
    s = Session("timeouts", store=store)
    sent: dict[str, dict[str, Any]] = {}
    returned: set[str] = set()
    for i in range(60):
        content = f"t{i}"
        sent[content] = {"i": i}
        # Timeouts from 0 (cancelled before it runs) to ~0.9 s (time to finish even on a busy machine).
        timeout = 0.0 if i == 0 else 0.00002 * 1.2**i
        try:
            await asyncio.wait_for(
                s.send_message({"role": "user", "content": content}, metadata={"i": i}), timeout=timeout
            )
            returned.add(content)
        except TimeoutError:
            pass
    await _settle()
    stored = {m["content"] for m in await _check_whole_or_absent(s, sent)}
    assert returned <= stored
    assert "t0" not in stored  # timed out before it ever ran
    # Some of each: calls that landed and calls that never did, so the checks above saw both.
    assert returned and len(stored) < len(sent), f"stored {len(stored)} of {len(sent)}"


async def test_cancelled_batch_is_all_or_nothing(store: Store) -> None:
    warm = Session("cb", store=store)
    size = 5
    await warm.send_messages(
        [{"role": "user", "content": f"b-1-{j}"} for j in range(size)], metadata={"i": -1}
    )
    outcomes: dict[int, list[Message] | None] = {}
    for i in range(40):
        # Half the calls go through the warm object, half through a new object that must read the
        # session header first, so cancellation lands at different points of the call.
        session = warm if i % 2 == 0 else Session("cb", store=store)
        task = asyncio.create_task(
            session.send_messages(
                [{"role": "user", "content": f"b{i}-{j}"} for j in range(size)], metadata={"i": i}
            )
        )
        # Cancel before it runs, at one of its first few suspensions, or after 1 to 16 ms.
        spins = (i // 2) % 10
        for _ in range(spins):
            await asyncio.sleep(0)
        if spins >= 7:
            await asyncio.sleep(0.001 * 2 ** (spins - 7 + 2 * (i // 20)))
        task.cancel()
        try:
            outcomes[i] = await task
        except asyncio.CancelledError:
            outcomes[i] = None
    await _settle()
    history = await warm.history()
    assert [m.seq for m in history] == list(range(1, len(history) + 1))
    batches: dict[int, list[Message]] = {}
    for m in history:
        batches.setdefault(m["metadata"]["i"], []).append(m)
    for i, stored in batches.items():  # every stored batch is whole, in order, contiguous
        assert [m["content"] for m in stored] == [f"b{i}-{j}" for j in range(size)]
        assert [m.seq for m in stored] == list(range(stored[0].seq, stored[0].seq + size))
    for i, result in outcomes.items():
        if result is not None:  # the call returned: exactly its batch is stored
            assert [m.seq for m in result] == [m.seq for m in batches[i]]
        if (i // 2) % 10 == 0:  # cancelled before it ever ran
            assert i not in batches
    # Some of each: batches that landed (some although their call was cancelled while under way:
    # the case all-or-nothing is about), and batches that never did.
    landed, absent = len(batches) - 1, len(outcomes) - (len(batches) - 1)
    cancelled_but_stored = sum(result is None and i in batches for i, result in outcomes.items())
    assert landed > 0 and absent > 0, f"{landed} batches stored, {absent} absent"
    assert cancelled_but_stored > 0, "no batch was cancelled while its append was under way"
    later = await warm.send_messages([{"role": "user", "content": "after"}])
    assert later[0].seq == len(history) + 1


# --- audit trail ---------------------------------------------------------------------------------


async def test_events_record_messages_state_and_clear(store: Store) -> None:
    s = Session("ev", app_name="app", user_id="u", store=store)
    m = await s.send_message({"role": "user", "content": "hi"})
    s.set_state("step", 1)
    s.set_state("lang", "en", scope="user")
    s.set_state("flag", 1, scope="app")
    s.delete_state("step")
    await s.record_event("custom", {"k": "v"})
    assert await s.clear() == 1
    events = await s.events()
    assert [e.type for e in events] == [
        "message_appended",
        "state_changed",
        "state_changed",
        "state_changed",
        "state_changed",
        "custom",
        "history_cleared",
    ]
    assert events[0].data["message_id"] == m["id"] and events[0].data["seq"] == 1
    assert events[0].data["role"] == "user"
    assert [(e.data["scope"], e.data["key"]) for e in events[1:5]] == [
        ("session", "step"),
        ("user", "lang"),
        ("app", "flag"),
        ("session", "step"),
    ]
    assert events[4].data["action"] == "delete"
    assert events[5].data == {"k": "v"}
    assert all(e.session_id == "ev" for e in events)
    assert [e.id for e in events] == sorted(e.id for e in events)
    assert all(e.timestamp.tzinfo is not None for e in events)
    # Events survive clearing the history; the messages do not.
    assert await s.history() == []
    assert (await s.send_message({"role": "user", "content": "again"})).seq == 2
    with pytest.raises(ValueError):
        await s.record_event("")


async def test_events_since_and_limit(store: Store) -> None:
    s = Session("since", store=store)
    for i in range(4):
        await s.send_message({"role": "user", "content": str(i)})
    now = datetime.now(UTC)
    everything = await s.events()
    assert len(everything) == 4
    assert await s.events(since="2024-01-01") == everything
    assert await s.events(since="2100-01-01") == []
    assert await s.events(since=date(2024, 1, 1)) == everything
    assert await s.events(since=date(2100, 1, 1)) == []
    assert await s.events(since=(now - timedelta(minutes=5)).isoformat()) == everything
    assert await s.events(since=(now - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")) == everything
    assert await s.events(since=(now + timedelta(minutes=5)).isoformat()) == []
    assert await s.events(since=now - timedelta(minutes=5)) == everything
    assert await s.events(since=now + timedelta(minutes=5)) == []
    # A timezone-aware moment is compared as the instant it names.
    tokyo = (now + timedelta(minutes=5)).astimezone(__import__("zoneinfo").ZoneInfo("Asia/Tokyo"))
    assert await s.events(since=tokyo) == []
    for i, event in enumerate(everything):  # an event's own timestamp includes it
        assert await s.events(since=event.timestamp) == everything[i:]
        assert await s.events(since=event.timestamp.isoformat()) == everything[i:]
    assert await s.events(limit=2) == everything[:2]
    assert await s.events(limit=0) == []
    assert await s.events(since="2024-01-01", limit=3) == everything[:3]
    for bad in ("yesterday", "2024-13-01", "01/02/2024", ""):
        with pytest.raises(ValueError, match="ISO"):
            await s.events(since=bad)
    for bad_limit in (-1, 1.5):
        with pytest.raises(ValueError):
            await s.events(limit=bad_limit)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        await s.events(since=12345)  # type: ignore[arg-type]


@pytest.fixture
def local_timezone(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    def use(tz: str) -> None:
        monkeypatch.setenv("TZ", tz)
        time.tzset()

    yield use
    monkeypatch.undo()
    time.tzset()


async def test_naive_since_is_utc_not_local_time(store: Store, local_timezone: Any) -> None:
    s = Session("naive", store=store)
    await s.send_message({"role": "user", "content": "x"})
    utc_wall = datetime.now(UTC).replace(tzinfo=None)
    # East of UTC: read as local time, "one hour from now" would be hours in the past.
    local_timezone("Etc/GMT-9")
    assert await s.events(since=utc_wall + timedelta(hours=1)) == []
    assert await s.events(since=(utc_wall + timedelta(hours=1)).isoformat()) == []
    # West of UTC: read as local time, "one hour ago" would be hours in the future.
    local_timezone("Etc/GMT+9")
    assert len(await s.events(since=utc_wall - timedelta(hours=1))) == 1
    assert len(await s.events(since=(utc_wall - timedelta(hours=1)).isoformat())) == 1


# --- export --------------------------------------------------------------------------------------


async def test_export_jsonl_one_line_per_message(store: Store) -> None:
    s = Session("exp", app_name="app", user_id="u", metadata={"audit": True}, store=store)
    await s.send_message({"role": "user", "content": "line\nbreak ünïcode"}, metadata={"ip": "1.2.3.4"})
    await s.send_message({"role": "assistant", "content": None, "tool_calls": [tool_call("z")]})
    await s.send_message({"role": "tool", "content": "ok", "tool_call_id": "z"})
    history = await s.history()
    text = await s.export(format="jsonl")
    assert text.endswith("\n")
    lines = [json.loads(line) for line in text.splitlines()]
    assert len(lines) == 3
    for line, m in zip(lines, history, strict=True):
        assert {"timestamp", "role", "message", "metadata", "tool_calls"} <= set(line)
        assert line["timestamp"] == m["timestamp"]
        assert line["role"] == m["role"]
        assert line["id"] == m["id"] and line["seq"] == m.seq
    assert lines[0]["message"] == "line\nbreak ünïcode"
    assert lines[0]["metadata"] == {"ip": "1.2.3.4"} and lines[0]["tool_calls"] is None
    assert lines[1]["message"] is None and lines[1]["tool_calls"] == [tool_call("z")]
    assert lines[2]["tool_call_id"] == "z"
    assert await s.export() == text  # jsonl is the default


async def test_export_json_and_unknown_format(store: Store) -> None:
    s = Session("ej", app_name="app", user_id="u", metadata={"m": 1}, retention={"ttl_days": 7}, store=store)
    await s.send_message({"role": "user", "content": "hi"})
    doc = json.loads(await s.export(format="json"))
    assert doc["session"]["id"] == "ej" and doc["session"]["metadata"] == {"m": 1}
    assert doc["session"]["user_id"] == "u" and doc["session"]["retention"]["ttl_days"] == 7
    assert [m["message"] for m in doc["messages"]] == ["hi"]
    assert await Session("nothing", store=store).export() == ""
    for bad in ("csv", "JSONL", ""):
        with pytest.raises(ValueError, match=r"jsonl.*json"):
            await s.export(format=bad)


# --- retention -----------------------------------------------------------------------------------


async def test_purge_expired_deletes_expired_sessions_whole(store: Store, store_env: StoreEnv) -> None:
    specs: dict[str, dict[str, Any] | None] = {
        "short": {"ttl_days": 1},
        "fraction": {"ttl_days": 0.5},
        "long": {"ttl_days": 30},
        "forever": None,
        "locked": {"ttl_days": 1, "immutable": True},
    }
    for sid, retention in specs.items():
        s = Session(sid, app_name="app", user_id="u", retention=retention, store=store)
        await s.send_message({"role": "user", "content": sid})
        s.set_state("k", sid)
        s.set_state("shared", 1, scope="user")
        await s.flush()
    header = (await Session.list(store=store)).sessions
    short = next(h for h in header if h.id == "short")
    assert short.expires_at == pytest.approx(short.updated_at + 86400)

    assert await agnt5.purge_expired(store=store) == []  # nothing has expired yet
    purged = await agnt5.purge_expired(store=store, now=datetime.now(UTC) + timedelta(days=2))
    assert sorted(purged) == ["fraction", "short"]
    remaining = sorted(h.id for h in await Session.list(store=store))
    assert remaining == ["forever", "locked", "long"]
    for sid in purged:
        for table, column in (("messages", "session_id"), ("events", "session_id"), ("sessions", "id")):
            assert store_env.rows(f"SELECT count(*) FROM {table} WHERE {column} = ?", sid) == [(0,)]
        assert store_env.rows("SELECT count(*) FROM state WHERE scope = 'session' AND owner = ?", sid) == [
            (0,)
        ]
    assert (await ready(Session("locked", store=store))).get_state("k") == "locked"
    assert (await ready(Session("long", store=store))).get_state("shared", scope="user") == 1
    later = datetime.now(UTC) + timedelta(days=365)
    assert await store.purge_expired(later.timestamp()) == ["long"]
    assert sorted(h.id for h in await Session.list(store=store)) == ["forever", "locked"]


async def test_immutable_session_refuses_delete_and_clear(store: Store) -> None:
    s = Session("medical", retention={"ttl_days": 2555, "immutable": True}, store=store)
    await s.send_message({"role": "user", "content": "symptoms"})  # appending is allowed
    assert s.immutable
    with pytest.raises(ImmutableSessionError):
        await s.delete()
    with pytest.raises(ImmutableSessionError):
        await s.clear()
    assert [m["content"] for m in await s.history()] == ["symptoms"]
    assert await s.exists()

    with pytest.raises(ImmutableSessionError):
        reopened = Session("medical", retention={"immutable": False}, store=store)
        await reopened.delete()
    with pytest.raises(ImmutableSessionError):
        reopened = Session("medical", retention={"ttl_days": 1, "immutable": False}, store=store)
        await reopened.send_message({"role": "user", "content": "unlock?"})
    # A new policy that does not mention immutable keeps it.
    relaxed = Session("medical", retention={"ttl_days": 3}, store=store)
    await relaxed.save()
    assert relaxed.immutable and (await ready(Session("medical", store=store))).immutable
    assert (await ready(Session("medical", store=store))).retention.ttl_days == 3
    with pytest.raises(ImmutableSessionError):
        await relaxed.delete()
    assert len(await Session("medical", store=store).history()) == 1


@pytest.mark.parametrize(
    ("retention", "key"),
    [
        ({"ttl": 30}, "ttl"),
        ({"ttl_days": 30, "max_msgs": 5}, "max_msgs"),
        ({"ttl_days": -1}, "ttl_days"),
        ({"ttl_days": 0}, "ttl_days"),
        ({"ttl_days": "thirty"}, "ttl_days"),
        ({"ttl_days": "30"}, "ttl_days"),
        ({"ttl_days": True}, "ttl_days"),
        ({"immutable": "maybe"}, "immutable"),
        ({"immutable": "yes"}, "immutable"),
        ({"immutable": 1}, "immutable"),
        ({"auto_prune": [True]}, "auto_prune"),
        ({"max_messages": 0}, "max_messages"),
        ({"max_messages": -10}, "max_messages"),
        ({"max_messages": 2.5}, "max_messages"),
        ({"max_messages": "100"}, "max_messages"),
        ({"prune_strategy": "bogus"}, "prune_strategy"),
        ({"prune_strategy": "keep_last_0"}, "prune_strategy"),
        ({"prune_strategy": "keep_last_"}, "prune_strategy"),
        ({"prune_strategy": 5}, "prune_strategy"),
    ],
)
def test_bad_retention_raises_naming_the_key(retention: dict[str, Any], key: str) -> None:
    with pytest.raises(RetentionPolicyError, match=key) as info:
        Session("r", retention=retention)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    "strategy", ["sliding_window", "keep_important", "summarize_old", "keep_last_50", "keep_last_1"]
)
async def test_known_prune_strategies_are_accepted_and_stored(store: Store, strategy: str) -> None:
    s = Session(
        "ps", retention={"auto_prune": True, "prune_strategy": strategy, "max_messages": 100}, store=store
    )
    await s.save()
    policy = (await ready(Session("ps", store=store))).retention
    assert (policy.auto_prune, policy.prune_strategy, policy.max_messages) == (True, strategy, 100)


async def test_unknown_strategy_error_lists_the_accepted_ones() -> None:
    with pytest.raises(RetentionPolicyError, match=r"sliding_window.*keep_important.*summarize_old"):
        Session("r", retention={"prune_strategy": "lru"})


# --- Jupyter -------------------------------------------------------------------------------------


async def test_repr_html_shows_metadata_state_and_recent_messages(store: Store) -> None:
    s = Session("nb", app_name="app", user_id="u", metadata={"project": "<quantum>"}, store=store)
    for i in range(15):
        await s.send_message({"role": "user", "content": f"message number {i}"})
    await s.send_message({"role": "assistant", "content": None, "tool_calls": [tool_call("q", "web_search")]})
    s.set_state("a", 1)
    s.set_state("b", 2)
    s.set_state("lang", "en", scope="user")
    await s.flush()
    html = (await ready(Session("nb", store=store)))._repr_html_()
    assert "nb" in html and "16 messages" in html
    assert "project" in html and "&lt;quantum&gt;" in html and "<quantum>" not in html
    assert "session: 2 keys" in html and "user: 1 key" in html
    assert "message number 14" in html and "web_search" in html
    assert "message number 0<" not in html  # only the recent ones
    # without synchronous reads (PostgreSQL) they are the newest as of the object's last load
    assert ("as of this object's last load" in html) is (not store.supports_sync)


async def test_repr_html_without_sync_reads_shows_what_the_object_appended_and_read(store: Store) -> None:
    s = Session("nb-tail", store=store)
    for i in range(12):
        await s.send_message({"role": "user", "content": f"appended {i}"})
    html = s._repr_html_()
    assert "appended 11" in html and "appended 2<" in html and "appended 1<" not in html
    other = Session("nb-tail", store=store)
    await other.send_message({"role": "user", "content": "from another object"})
    if not store.supports_sync:
        assert "from another object" not in s._repr_html_()  # not seen yet ...
        await s.history(limit=3)
    assert "from another object" in s._repr_html_()  # ... until this object reads it


async def test_repr_html_counts_messages_appended_after_the_header_loaded(store: Store) -> None:
    s = Session("nb-live", store=store)
    await s.send_message({"role": "user", "content": "first"})
    await s.send_message({"role": "user", "content": "second"})
    assert "2 messages" in (await ready(s))._repr_html_()  # the same object, not a reopened one
