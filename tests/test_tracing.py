"""Tracing of model calls: `chat`/`embeddings` spans and the GenAI client histograms.

Provider answers are real wire formats mocked with respx; spans and metrics go to the SDK's
in-memory exporter and reader through `agnt5.tracing.configure` (see tests/_otel.py). Agent runs,
pruning, the store and the setup without an SDK are in tests/tracing/.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import respx
from _memory_fakes import EMBEDDINGS_URL, FakeEmbeddings
from _mocks import OPENAI_MODEL, OPENAI_URL, json_response, sleeps, sse_response
from _otel import Otel, otel
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

from agnt5 import errors, tracing
from agnt5._otel import DURATION_BUCKETS, SCHEMA_URL, TOKEN_BUCKETS
from agnt5.memory import Memory
from agnt5.memory_vector import VectorMemoryService
from agnt5.models import LanguageModel, ResponseComplete
from agnt5.store.sqlite import SqliteStore

__all__ = ["otel", "sleeps"]  # fixtures, re-exported so pytest finds them here

USER = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of France?"}]
SECRET = "sk-proj-SECRET-0123456789abcdef"


def _cost(attributes: dict[str, Any]) -> float:
    cost = attributes.pop("agnt5.usage.cost")
    assert isinstance(cost, float) and cost > 0
    return cost


@respx.mock
async def test_chat_span_names_attributes_and_kind(otel: Otel) -> None:
    respx.post(OPENAI_URL).mock(return_value=json_response("openai/chat_text.json"))
    model = LanguageModel(OPENAI_MODEL, temperature=0.2, max_tokens=100, seed=7, stop=["END"], top_p=0.9)
    await model.generate(USER)
    span = otel.one("chat gpt-4o-mini")
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    assert span.instrumentation_scope is not None
    assert (span.instrumentation_scope.name, span.instrumentation_scope.schema_url) == ("agnt5", SCHEMA_URL)
    attributes = dict(span.attributes or {})
    _cost(attributes)
    assert attributes == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.request.temperature": 0.2,
        "gen_ai.request.top_p": 0.9,
        "gen_ai.request.max_tokens": 100,
        "gen_ai.request.seed": 7,
        "gen_ai.request.stop_sequences": ("END",),
        "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": 24,
        "gen_ai.usage.output_tokens": 8,
    }
    assert span.events == ()  # no retry


@respx.mock
async def test_provider_names_and_server_follow_the_conventions(otel: Otel) -> None:
    respx.post("https://llm.internal.example:8443/v1/chat/completions").mock(
        return_value=json_response("openai/chat_text.json")
    )
    respx.post("https://api.anthropic.com/v1/messages").mock(
        return_value=json_response("anthropic/messages_text.json")
    )
    await LanguageModel("openai/gpt-4o-mini", api_base="https://llm.internal.example:8443/v1").generate(USER)
    await LanguageModel("anthropic/claude-sonnet-4-5").generate(USER)
    openai_span, anthropic_span = otel.spans()
    assert openai_span.attributes is not None and anthropic_span.attributes is not None
    assert openai_span.attributes["server.address"] == "llm.internal.example"
    assert openai_span.attributes["server.port"] == 8443
    assert anthropic_span.name == "chat anthropic/claude-sonnet-4-5"
    assert anthropic_span.attributes["gen_ai.provider.name"] == "anthropic"
    assert anthropic_span.attributes["gen_ai.response.finish_reasons"] == ("stop",)  # litellm's mapping
    assert "server.address" not in anthropic_span.attributes


@respx.mock
async def test_429_retried_then_succeeding_is_one_ok_span_with_the_retry_as_an_event(
    otel: Otel, sleeps: list[float]
) -> None:
    respx.post(OPENAI_URL).mock(
        side_effect=[
            json_response("openai/error_429.json", 429, headers={"retry-after": "3"}),
            json_response("openai/chat_text.json"),
        ]
    )
    await LanguageModel(OPENAI_MODEL, num_retries=2).generate(USER)
    span = otel.one("chat gpt-4o-mini")
    # A retried error is handled: the operation succeeded (semconv "recording errors").
    assert span.status.status_code is StatusCode.UNSET
    assert span.attributes is not None and "error.type" not in span.attributes
    assert [(e.name, dict(e.attributes or {})) for e in span.events] == [
        (
            "agnt5.retry",
            {
                "agnt5.retry.attempt": 1,
                "agnt5.retry.delay_s": 3.0,
                "error.type": "RateLimitError",
                "http.response.status_code": 429,
            },
        )
    ]
    assert sleeps == [3.0]
    (duration,) = otel.points("gen_ai.client.operation.duration")
    assert "error.type" not in duration.attributes


@respx.mock
async def test_429_exhausted_is_an_error_span_and_an_error_duration(otel: Otel, sleeps: list[float]) -> None:
    respx.post(OPENAI_URL).mock(return_value=json_response("openai/error_429.json", 429))
    with pytest.raises(errors.RateLimitError):
        await LanguageModel(OPENAI_MODEL, num_retries=2).generate(USER)
    span = otel.one("chat gpt-4o-mini")
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description and "rate-limited" in span.status.description
    assert span.attributes is not None and span.attributes["error.type"] == "RateLimitError"
    assert [e.name for e in span.events] == ["agnt5.retry", "agnt5.retry", "exception"]
    assert [e.attributes["agnt5.retry.attempt"] for e in span.events[:2]] == [1, 2]  # type: ignore[index]
    exception = span.events[2].attributes or {}
    assert exception["exception.type"] == "agnt5.errors.RateLimitError"
    assert "Traceback" in str(exception["exception.stacktrace"])
    assert "gen_ai.usage.input_tokens" not in span.attributes
    (duration,) = otel.points("gen_ai.client.operation.duration")
    assert duration.attributes["error.type"] == "RateLimitError"
    assert otel.points("gen_ai.client.token.usage") == []


@respx.mock
async def test_histograms_are_the_conventions(otel: Otel) -> None:
    respx.post(OPENAI_URL).mock(return_value=json_response("openai/chat_text.json"))
    await LanguageModel(OPENAI_MODEL).generate(USER)
    await LanguageModel(OPENAI_MODEL).generate(USER)
    usage = otel.metric("gen_ai.client.token.usage")
    assert (usage.unit, usage.description) == ("{token}", "Number of input and output tokens used.")
    points = {p.attributes["gen_ai.token.type"]: p for p in usage.data.data_points}
    assert set(points) == {"input", "output"}
    assert (points["input"].count, points["input"].sum) == (2, 48)
    assert (points["output"].count, points["output"].sum) == (2, 16)
    assert tuple(points["input"].explicit_bounds) == tuple(float(b) for b in TOKEN_BUCKETS)
    assert dict(points["output"].attributes) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
        "gen_ai.token.type": "output",
    }
    duration = otel.metric("gen_ai.client.operation.duration")
    assert (duration.unit, duration.description) == ("s", "GenAI operation duration.")
    (point,) = duration.data.data_points
    assert point.count == 2 and 0 < point.sum < 10
    assert tuple(point.explicit_bounds) == DURATION_BUCKETS
    assert dict(point.attributes) == {
        k: v for k, v in points["output"].attributes.items() if k != "gen_ai.token.type"
    }


@respx.mock
async def test_content_is_off_by_default(otel: Otel, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(tracing.CAPTURE_CONTENT_ENV, raising=False)
    respx.post(OPENAI_URL).mock(return_value=json_response("openai/chat_text.json"))
    await LanguageModel(OPENAI_MODEL).generate(USER)
    attributes = otel.one("chat gpt-4o-mini").attributes or {}
    assert not [k for k in attributes if k.endswith(".messages") or k == "gen_ai.tool.definitions"]
    assert "Paris" not in json.dumps(dict(attributes)) and "Capital" not in json.dumps(dict(attributes))


@pytest.mark.parametrize("switch", ["env", "setting"])
@respx.mock
async def test_content_when_asked_follows_the_message_schema(
    otel: Otel, monkeypatch: pytest.MonkeyPatch, switch: str
) -> None:
    if switch == "env":
        monkeypatch.setenv(tracing.CAPTURE_CONTENT_ENV, "true")
    else:
        monkeypatch.delenv(tracing.CAPTURE_CONTENT_ENV, raising=False)
        tracing.configure(tracer_provider=otel.tracer_provider, meter_provider=None, capture_content=True)
    respx.post(OPENAI_URL).mock(return_value=json_response("openai/chat_parallel_tool_calls.json"))
    history = [
        *USER,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": '{"q": "x"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "42"},
    ]
    tool = {"type": "function", "function": {"name": "lookup", "description": "Look up.", "parameters": {}}}
    response = await LanguageModel(OPENAI_MODEL).generate(history, tools=[tool])
    attributes = otel.one("chat gpt-4o-mini").attributes or {}
    assert json.loads(str(attributes["gen_ai.input.messages"])) == [
        {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
        {"role": "user", "parts": [{"type": "text", "content": "Capital of France?"}]},
        {
            "role": "assistant",
            "parts": [{"type": "tool_call", "id": "call_1", "name": "lookup", "arguments": {"q": "x"}}],
        },
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_1", "response": "42"}]},
    ]
    assert json.loads(str(attributes["gen_ai.tool.definitions"])) == [{"type": "function", "name": "lookup"}]
    (output,) = json.loads(str(attributes["gen_ai.output.messages"]))
    assert output["role"] == "assistant" and output["finish_reason"] == "tool_call"
    assert [p["type"] for p in output["parts"]] == ["tool_call"] * len(response.tool_calls)
    assert [p["name"] for p in output["parts"]] == [c.name for c in response.tool_calls]
    assert [p["arguments"] for p in output["parts"]] == [json.loads(c.arguments) for c in response.tool_calls]


def _strings(otel: Otel) -> list[str]:
    """Every text that reaches telemetry: span names, attributes, events, statuses, metric points."""
    out: list[str] = []
    for span in otel.spans():
        out += [span.name, str(span.status.description), json.dumps(dict(span.attributes or {}), default=str)]
        out += [json.dumps(dict(e.attributes or {}), default=str) for e in span.events]
    data = otel.reader.get_metrics_data()
    for resource in data.resource_metrics if data is not None else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                out += [json.dumps(dict(p.attributes or {}), default=str) for p in metric.data.data_points]
    return out


@respx.mock
async def test_no_api_key_anywhere_even_when_the_provider_echoes_it(
    otel: Otel, monkeypatch: pytest.MonkeyPatch, sleeps: list[float]
) -> None:
    monkeypatch.setenv(tracing.CAPTURE_CONTENT_ENV, "true")
    echoed = {
        "error": {
            "message": f"Incorrect API key provided: {SECRET}. You can find your API key at https://x.",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }
    }
    route = respx.post(OPENAI_URL).mock(
        side_effect=[json_response("openai/chat_text.json"), httpx.Response(401, json=echoed)]
    )
    model = LanguageModel(OPENAI_MODEL, api_key=SECRET)
    await model.generate(USER)
    with pytest.raises(errors.AuthenticationError) as failure:
        await model.generate(USER)
    assert SECRET in str(failure.value)  # the error itself is the application's to handle
    assert route.calls[0].request.headers["authorization"] == f"Bearer {SECRET}"  # the key was used
    texts = _strings(otel)
    assert len(otel.spans()) == 2 and any("***" in t for t in texts)
    assert not [t for t in texts if SECRET in t]
    assert not [t for t in texts if "sk-test-not-a-real-key" in t]  # the OPENAI_API_KEY variable


@respx.mock
async def test_stream_span_is_never_current_in_the_consumer(otel: Otel) -> None:
    respx.post(OPENAI_URL).mock(return_value=sse_response("openai/stream_text.txt"))
    seen: list[Any] = []
    async for event in LanguageModel(OPENAI_MODEL).stream(USER):
        seen.append(trace.get_current_span().get_span_context())
        if isinstance(event, ResponseComplete):
            text = event.response.text
    span = otel.one("chat gpt-4o-mini")
    attributes = span.attributes or {}
    assert attributes["gen_ai.request.stream"] is True
    assert 0 < float(attributes["gen_ai.response.time_to_first_chunk"]) < 10  # type: ignore[arg-type]
    assert attributes["gen_ai.response.finish_reasons"] == ("stop",) and text
    assert all(not ctx.is_valid for ctx in seen)  # the caller's code ran outside the span
    assert span.end_time is not None


@respx.mock
async def test_abandoned_stream_ends_its_span_without_error(otel: Otel) -> None:
    respx.post(OPENAI_URL).mock(return_value=sse_response("openai/stream_text.txt"))
    stream = LanguageModel(OPENAI_MODEL).stream(USER)
    await stream.__anext__()
    await stream.aclose()  # type: ignore[attr-defined]
    span = otel.one("chat gpt-4o-mini")
    assert span.status.status_code is StatusCode.UNSET and span.end_time is not None


async def test_memory_embeddings_are_spans_and_token_metrics(otel: Otel, tmp_path: Any) -> None:
    fake = FakeEmbeddings(dim=8)
    store = SqliteStore(str(tmp_path / "m.db"))
    with respx.mock() as router:
        router.post(EMBEDDINGS_URL).mock(side_effect=fake)
        memory = Memory(VectorMemoryService(store=store, dimensions=8))
        await memory.store("allergies", "Penicillin")
        await memory.search("penicillin?")
    await store.close()
    first, second = otel.named("embeddings text-embedding-3-small")
    assert first.kind is SpanKind.CLIENT
    assert dict(first.attributes or {}) == {
        "gen_ai.operation.name": "embeddings",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "text-embedding-3-small",
        "gen_ai.embeddings.dimension.count": 8,
        "agnt5.embeddings.inputs": 1,
        "gen_ai.response.model": "text-embedding-3-small",
        "gen_ai.usage.input_tokens": 3,
    }
    assert second.status.status_code is StatusCode.UNSET
    (tokens,) = otel.points("gen_ai.client.token.usage")
    assert tokens.attributes["gen_ai.operation.name"] == "embeddings" and tokens.sum == 6
    (duration,) = otel.points("gen_ai.client.operation.duration")
    assert duration.count == 2


async def test_a_bad_capture_setting_is_refused() -> None:
    with pytest.raises(errors.InvalidTypeError, match="capture_content"):
        tracing.configure(capture_content="yes")  # type: ignore[arg-type]
