"""Tracing of agent runs: the span tree of a run with tool calls and a handoff, its attributes,
failing tools and runs, content capture, and audit events that point at their spans.

The model is OpenAI's wire format mocked with respx, so the real LanguageModel path runs.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import respx
from _mocks import OPENAI_URL, sleeps
from _otel import Otel, otel, tree
from _wire import openai_call, openai_chat, openai_stream
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

from agnt5 import Agent, Session, errors, tool, tracing
from agnt5.agent_events import FinalResult
from agnt5.store.sqlite import SqliteStore

__all__ = ["otel", "sleeps"]

GEN_AI = ("invoke_agent", "chat", "execute_tool", "app.")
APP: dict[str, Any] = {}  # the application's own tracer provider (the test's), for the tool's span


@pytest.fixture(autouse=True)
def _app_tracer(otel: Otel) -> None:
    APP["provider"] = otel.tracer_provider


@tool
def lookup_invoice(month: str) -> list[dict[str, Any]]:
    """The customer's charges in one month.

    Args:
        month: The month as YYYY-MM.
    """
    tracer = trace.get_tracer("app", tracer_provider=APP["provider"])
    with tracer.start_as_current_span("app.invoices"):  # the tool's own span
        return [{"id": "ch_1", "eur": 29}, {"id": "ch_2", "eur": 29}]


@tool
def refund(charge_id: str) -> str:
    """Refund one charge.

    Args:
        charge_id: The charge id.
    """
    raise ValueError(f"card processor down for {charge_id}")


def responder(request: httpx.Request) -> httpx.Response:
    """triage hands off to billing; billing looks the invoice up and refunds (which fails), then answers."""
    body = json.loads(request.content)
    tools = [t["function"]["name"] for t in body.get("tools", [])]
    answered = {m.get("tool_call_id") for m in body["messages"] if m["role"] == "tool"}
    if "transfer_to_billing" in tools:
        return openai_chat(tool_calls=[openai_call("transfer_to_billing", {}, "call_handoff")])
    if "call_lookup" not in answered:
        return openai_chat(
            tool_calls=[
                openai_call("lookup_invoice", {"month": "2024-03"}, "call_lookup"),
                openai_call("refund", {"charge_id": "ch_2"}, "call_refund"),
            ],
            prompt_tokens=80,
            completion_tokens=20,
        )
    return openai_chat(
        "I found the duplicate charge; the refund failed, so I escalated it.", prompt_tokens=120
    )


def stream_responder(request: httpx.Request) -> httpx.Response:
    """The same answers as `responder`, streamed (SSE): one delta carrying the whole message."""
    (choice,) = json.loads(responder(request).content)["choices"]
    message = choice["message"]
    delta: dict[str, Any] = {"role": "assistant", "content": message["content"]}
    if message.get("tool_calls"):
        delta["tool_calls"] = [{"index": i, **c} for i, c in enumerate(message["tool_calls"])]
    return openai_stream([{**delta, "finish_reason": choice["finish_reason"]}])


@pytest.fixture
async def db(tmp_path: Any) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(str(tmp_path / "t.db"))
    yield store
    await store.close()


def agents(db: SqliteStore) -> Agent[Any, Any]:
    billing = Agent("billing", "gpt-4o-mini", "You handle refunds.", tools=[lookup_invoice, refund])
    return Agent("triage", "gpt-4o-mini", "You route customers.", handoffs=[billing])


def _gen_ai(otel: Otel) -> list[Any]:
    return [s for s in otel.spans() if s.name.startswith(GEN_AI)]


@respx.mock
async def test_span_tree_of_a_run_with_tools_and_a_handoff(otel: Otel, db: SqliteStore) -> None:
    respx.post(OPENAI_URL).mock(side_effect=responder)
    result = await agents(db).run("I was charged twice", session=Session("support-42", store=db))
    assert result.agent_name == "billing"
    assert tree(_gen_ai(otel)) == [
        "invoke_agent triage",
        "  chat gpt-4o-mini",
        "  execute_tool transfer_to_billing",
        "  invoke_agent billing",
        "    chat gpt-4o-mini",
        "    execute_tool lookup_invoice",
        "      app.invoices",
        "    execute_tool refund",
        "    chat gpt-4o-mini",
    ]
    assert len({s.context.trace_id for s in otel.spans()}) == 1  # store spans included: one trace

    triage, billing = otel.one("invoke_agent triage"), otel.one("invoke_agent billing")
    assert triage.parent is None and triage.kind is SpanKind.INTERNAL
    assert dict(triage.attributes or {}) == {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.provider.name": "openai",
        "gen_ai.agent.name": "triage",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.conversation.id": "support-42",
        "agnt5.run.id": result.run_id,
        "gen_ai.usage.input_tokens": result.usage.prompt_tokens,
        "gen_ai.usage.output_tokens": result.usage.completion_tokens,
    }
    assert dict(billing.attributes or {}) == {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.provider.name": "openai",
        "gen_ai.agent.name": "billing",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.conversation.id": "support-42",
        "agnt5.run.id": result.run_id,
        "agnt5.handoff.from_agent": "triage",
    }
    for span in otel.spans():  # every span of the run says which session and run it belongs to
        if not span.name.startswith("app."):
            assert (span.attributes or {}).get("gen_ai.conversation.id") == "support-42", span.name
        if span.name.startswith(("chat", "execute_tool", "invoke_agent")):
            assert (span.attributes or {})["agnt5.run.id"] == result.run_id, span.name

    lookup = otel.one("execute_tool lookup_invoice")
    assert lookup.kind is SpanKind.INTERNAL and lookup.status.status_code is StatusCode.UNSET
    assert dict(lookup.attributes or {}) == {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "lookup_invoice",
        "gen_ai.tool.call.id": "call_lookup",
        "gen_ai.tool.type": "function",
        "gen_ai.tool.description": "The customer's charges in one month.",
        "gen_ai.conversation.id": "support-42",
        "agnt5.run.id": result.run_id,
    }
    (own,) = otel.named("app.invoices")  # the sync tool ran in a thread, inside its span
    assert own.parent is not None and own.parent.span_id == lookup.context.span_id
    handoff = otel.one("execute_tool transfer_to_billing")
    assert handoff.parent is not None and handoff.parent.span_id == triage.context.span_id
    assert billing.parent is not None and billing.parent.span_id == triage.context.span_id


@respx.mock
async def test_a_failing_tool_is_an_error_span_and_the_run_goes_on(otel: Otel, db: SqliteStore) -> None:
    respx.post(OPENAI_URL).mock(side_effect=responder)
    result = await agents(db).run("I was charged twice", session=Session("s", store=db))
    failed = otel.one("execute_tool refund")
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.status.description and "card processor down for ch_2" in failed.status.description
    assert (failed.attributes or {})["error.type"] == "ValueError"
    assert otel.one("invoke_agent billing").status.status_code is StatusCode.UNSET  # handled by the model
    assert result.output.startswith("I found the duplicate charge")


@respx.mock
async def test_audit_events_carry_the_trace_and_span_they_happened_in(otel: Otel, db: SqliteStore) -> None:
    respx.post(OPENAI_URL).mock(side_effect=responder)
    session = Session("s", store=db)
    result = await agents(db).run("I was charged twice", session=session)
    triage, billing = otel.one("invoke_agent triage"), otel.one("invoke_agent billing")
    hexed = {s.name: format(s.context.span_id, "016x") for s in (triage, billing)}
    trace_id = format(triage.context.trace_id, "032x")
    events = [e for e in await session.events() if e.data.get("run_id") == result.run_id]
    assert {e.type for e in events} >= {
        "agent_run_started",
        "tool_call",
        "tool_result",
        "handoff",
        "agent_run_finished",
    }
    assert all(e.data["trace_id"] == trace_id for e in events)
    where = {(e.type, e.data.get("name") or e.data.get("to_agent")): e.data["span_id"] for e in events}
    assert where[("agent_run_started", None)] == hexed["invoke_agent triage"]
    assert where[("handoff", "billing")] == hexed["invoke_agent triage"]
    assert where[("tool_call", "refund")] == hexed["invoke_agent billing"]
    assert where[("agent_run_finished", None)] == hexed["invoke_agent triage"]


@respx.mock
async def test_a_failed_run_is_an_error_span_and_its_audit_event_points_at_it(
    otel: Otel, db: SqliteStore, sleeps: list[float]
) -> None:
    respx.post(OPENAI_URL).mock(return_value=httpx.Response(500, json={"error": {"message": "boom"}}))
    session = Session("s", store=db)
    with pytest.raises(errors.ProviderError):
        await Agent("solo", "gpt-4o-mini").run("hi", session=session)
    run = otel.one("invoke_agent solo")
    assert run.status.status_code is StatusCode.ERROR
    assert (run.attributes or {})["error.type"] == "ProviderError"
    chat = otel.one("chat gpt-4o-mini")
    assert chat.parent is not None and chat.parent.span_id == run.context.span_id
    assert [e.name for e in chat.events] == ["agnt5.retry", "agnt5.retry", "exception"]
    (failed,) = [e for e in await session.events() if e.type == "agent_run_failed"]
    assert failed.data["span_id"] == format(run.context.span_id, "016x")


@respx.mock
async def test_content_on_records_tool_arguments_and_results(
    otel: Otel, db: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    respx.post(OPENAI_URL).mock(side_effect=responder)
    await agents(db).run("I was charged twice", session=Session("off", store=db))
    off = otel.one("execute_tool lookup_invoice").attributes or {}
    assert "gen_ai.tool.call.arguments" not in off and "gen_ai.tool.call.result" not in off
    otel.exporter.clear()
    monkeypatch.setenv(tracing.CAPTURE_CONTENT_ENV, "true")
    await agents(db).run("I was charged twice", session=Session("on", store=db))
    on = otel.one("execute_tool lookup_invoice").attributes or {}
    assert json.loads(str(on["gen_ai.tool.call.arguments"])) == {"month": "2024-03"}
    assert json.loads(str(on["gen_ai.tool.call.result"])) == [
        {"id": "ch_1", "eur": 29},
        {"id": "ch_2", "eur": 29},
    ]
    refused = otel.one("execute_tool refund").attributes or {}
    assert "gen_ai.tool.call.result" not in refused  # only a successful call has a result
    first_chat = min(otel.named("chat gpt-4o-mini"), key=lambda s: s.start_time or 0)
    messages = json.loads(str((first_chat.attributes or {})["gen_ai.input.messages"]))
    assert messages[0] == {"role": "system", "parts": [{"type": "text", "content": "You route customers."}]}
    assert messages[-1]["parts"] == [{"type": "text", "content": "I was charged twice"}]


@respx.mock
async def test_streamed_run_keeps_its_spans_out_of_the_callers_code(otel: Otel, db: SqliteStore) -> None:
    respx.post(OPENAI_URL).mock(side_effect=stream_responder)
    outside: list[bool] = []
    async for event in agents(db).stream("I was charged twice", session=Session("s", store=db)):
        outside.append(not trace.get_current_span().get_span_context().is_valid)
        if isinstance(event, FinalResult):
            assert event.result.agent_name == "billing"
    assert outside and all(outside)
    assert tree(_gen_ai(otel)) == [
        "invoke_agent triage",
        "  chat gpt-4o-mini",
        "  execute_tool transfer_to_billing",
        "  invoke_agent billing",
        "    chat gpt-4o-mini",
        "    execute_tool lookup_invoice",
        "      app.invoices",
        "    execute_tool refund",
        "    chat gpt-4o-mini",
    ]
    assert all((s.attributes or {})["gen_ai.request.stream"] for s in otel.named("chat gpt-4o-mini"))


@respx.mock
async def test_a_stream_closed_early_ends_its_spans_and_its_run(otel: Otel, db: SqliteStore) -> None:
    respx.post(OPENAI_URL).mock(side_effect=stream_responder)
    session = Session("early", store=db)
    stream = agents(db).stream("I was charged twice", session=session)
    await stream.__anext__()  # the first event; then the caller stops listening
    await stream.aclose()  # type: ignore[attr-defined]
    run = otel.one("invoke_agent triage")
    assert run.end_time is not None and run.status.status_code is StatusCode.UNSET
    assert all(s.end_time is not None for s in otel.spans())
    assert not [e for e in await session.events() if e.type == "agent_run_finished"]
