"""Tracing of pruning (`agnt5.prune`) and of the session store calls worth seeing (`agnt5.session.*`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import respx
from _convo import OPENAI_URL, openai_reply
from _otel import Otel, otel, tree
from opentelemetry.trace import SpanKind, StatusCode

from agnt5 import Session
from agnt5.store.sqlite import SqliteStore

__all__ = ["otel"]


def _chat(n: int) -> list[dict[str, Any]]:
    return [{"role": "user" if i % 2 == 0 else "assistant", "content": f"message {i} " * 5} for i in range(n)]


@pytest.fixture
async def db(tmp_path: Any) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(str(tmp_path / "t.db"))
    yield store
    await store.close()


async def _session(db: SqliteStore, n: int, **kw: Any) -> Session:
    session = Session("conv", store=db, **kw)
    if n:
        await session.send_messages(_chat(n))
    return session


async def test_prune_span_says_what_the_prune_did(otel: Otel, db: SqliteStore) -> None:
    session = await _session(db, 12)
    result = await session.prune(strategy="sliding_window", window_size=4)
    span = otel.one("agnt5.prune")
    assert span.kind is SpanKind.INTERNAL and span.status.status_code is StatusCode.UNSET
    assert dict(span.attributes or {}) == {
        "gen_ai.conversation.id": "conv",
        "agnt5.prune.auto": False,
        "agnt5.prune.strategy": "sliding_window",
        "agnt5.prune.changed": True,
        "agnt5.prune.reason": "pruned",
        "agnt5.prune.id": result.prune_id,
        "agnt5.prune.messages_removed": 8,
        "agnt5.prune.messages_before": 12,
        "agnt5.prune.messages_after": 4,
        "agnt5.prune.tokens_before": result.tokens_before,
        "agnt5.prune.tokens_after": result.tokens_after,
        "agnt5.prune.model_calls": 0,
    }
    assert result.tokens_before > result.tokens_after > 0


@respx.mock
async def test_a_summarising_prune_nests_and_counts_its_model_call(otel: Otel, db: SqliteStore) -> None:
    session = await _session(db, 12)
    respx.post(OPENAI_URL).mock(return_value=openai_reply("summary", prompt_tokens=300, completion_tokens=40))
    otel.exporter.clear()
    result = await session.prune(strategy="summarize_old", threshold=10, model="gpt-4o-mini", max_tokens=5000)
    prune = otel.one("agnt5.prune")
    chat = otel.one("chat gpt-4o-mini")
    assert chat.parent is not None and chat.parent.span_id == prune.context.span_id
    attributes = prune.attributes or {}
    assert attributes["agnt5.prune.model_calls"] == 1 and attributes["agnt5.prune.model"] == "gpt-4o-mini"
    assert attributes["agnt5.prune.max_tokens"] == 5000
    assert (attributes["gen_ai.usage.input_tokens"], attributes["gen_ai.usage.output_tokens"]) == (300, 40)
    assert attributes["agnt5.prune.messages_removed"] == result.removed > 0
    assert tree(otel.spans())[0] == "agnt5.prune"


async def test_a_failed_prune_is_an_error_span(otel: Otel, db: SqliteStore) -> None:
    session = await _session(db, 4, retention={"immutable": True})
    try:
        await session.prune(strategy="sliding_window", window_size=2)
    except Exception as exc:
        failure = exc
    span = otel.one("agnt5.prune")
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})["error.type"] == type(failure).__name__ == "ImmutableSessionError"


async def test_auto_prune_nests_under_the_append_that_triggered_it(otel: Otel, db: SqliteStore) -> None:
    session = await _session(db, 0, retention={"auto_prune": True, "max_messages": 5})
    for message in _chat(6):
        await session.send_message(message)
    auto = [s for s in otel.named("agnt5.prune") if (s.attributes or {})["agnt5.prune.auto"]]
    assert len(auto) == 1
    parent = next(s for s in otel.spans() if s.context.span_id == auto[0].parent.span_id)  # type: ignore[union-attr]
    assert parent.name == "agnt5.session.append"


async def test_store_calls_are_spans_with_counts(otel: Otel, db: SqliteStore) -> None:
    session = await _session(db, 3)
    await session.history(limit=2)
    session.set_state("plan", "pro")
    session.set_state("scratch", 1, scope="temp")  # process memory only: no span
    session.delete_state("plan")
    append = otel.one("agnt5.session.append")
    assert dict(append.attributes or {}) == {
        "gen_ai.conversation.id": "conv",
        "agnt5.session.events": 0,
        "agnt5.session.messages": 3,
    }
    history = otel.one("agnt5.session.history")
    assert dict(history.attributes or {}) == {
        "gen_ai.conversation.id": "conv",
        "agnt5.session.limit": 2,
        "agnt5.session.messages": 2,
    }
    writes = otel.named("agnt5.session.set_state")
    assert [dict(s.attributes or {}) for s in writes] == [
        {
            "gen_ai.conversation.id": "conv",
            "agnt5.session.state.scope": "session",
            "agnt5.session.state.key": "plan",
            "agnt5.session.state.action": action,
        }
        for action in ("set", "delete")
    ]
    assert all(s.kind is SpanKind.INTERNAL for s in otel.spans())


async def test_an_invalid_message_fails_its_append_span(otel: Otel, db: SqliteStore) -> None:
    session = await _session(db, 0)
    try:
        await session.send_message({"role": "wizard", "content": "hi"})
    except ValueError as exc:
        failure = exc
    span = otel.one("agnt5.session.append")
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})["error.type"] == type(failure).__name__
