"""Spans and metrics of model requests: `chat {model}` and `embeddings {model}` (GenAI client).

One CLIENT span per logical request covers all of agnt5's retries (each retry is an
`agnt5.retry` event on it); `gen_ai.client.operation.duration` and `gen_ai.client.token.usage`
are recorded when it ends. Request parameters come from an allow-list, so an `api_key` passed to
the model is never read; error text is scrubbed of the keys in use before it is recorded.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from agnt5 import _otel
from agnt5 import _otel_content as content

if TYPE_CHECKING:
    from contextvars import Token
    from types import TracebackType

    from opentelemetry.context import Context
    from opentelemetry.trace import Span

    from agnt5.models import LanguageModel, ModelResponse

_REQUEST_PARAMS = (
    ("temperature", "gen_ai.request.temperature", float),
    ("top_p", "gen_ai.request.top_p", float),
    ("top_k", "gen_ai.request.top_k", float),
    ("frequency_penalty", "gen_ai.request.frequency_penalty", float),
    ("presence_penalty", "gen_ai.request.presence_penalty", float),
    ("max_tokens", "gen_ai.request.max_tokens", int),
    ("max_completion_tokens", "gen_ai.request.max_tokens", int),
    ("seed", "gen_ai.request.seed", int),
)
"""Request parameters recorded on chat spans: an allow-list, so nothing else (api_key!) is read."""


class ModelCall:
    """One logical model request: its span (when tracing) and its histograms (when metering).

    Use as `with tracing.model_call(...) as call:` and report the answer with `call.done(...)`.
    """

    __slots__ = (
        "_api_key",
        "_attach",
        "_ctx",
        "_first",
        "_metric_attrs",
        "_metrics",
        "_span",
        "_start",
        "_token",
    )

    def __init__(
        self,
        span: Span | None,
        metrics: _otel.Instruments | None,
        metric_attrs: dict[str, Any],
        api_key: Any,
        attach: bool,
        info: _otel.RunInfo | None = None,
    ) -> None:
        self._span = span
        self._metrics = metrics
        self._metric_attrs = metric_attrs
        self._api_key = api_key  # scrubbed from error text (secrets are gathered only on failure)
        self._attach = attach
        self._ctx: Context | None = _otel.context_with(span, info) if span is not None else None
        self._token: Token[Context] | None = None
        self._start = time.perf_counter()
        self._first: float | None = None

    def __enter__(self) -> ModelCall:
        if self._attach and self._ctx is not None:
            self._token = _otel.api().attach(self._ctx)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._span is None and self._metrics is None:
            return
        if self._token is not None:
            _otel.api().detach(self._token)
            self._token = None
        failed = exc if exc is not None and not isinstance(exc, GeneratorExit) else None
        if self._metrics is not None:
            attrs = self._metric_attrs
            if failed is not None:
                attrs = {**attrs, "error.type": content.error_type(failed)}
            self._metrics.duration.record(time.perf_counter() - self._start, attrs)
        if self._span is not None:
            if failed is not None:
                _otel.fail(self._span, failed, content.secrets(self._api_key))
            self._span.end()

    def attached(self) -> _Attached:
        """`with call.attached():` makes this call's span the current one inside the block."""
        return _Attached(self._ctx)

    def chunk(self) -> None:
        """A streamed chunk arrived (the first one sets `gen_ai.response.time_to_first_chunk`)."""
        if self._first is None and self._span is not None:
            self._first = time.perf_counter() - self._start
            self._span.set_attribute("gen_ai.response.time_to_first_chunk", self._first)

    def done(self, response: ModelResponse) -> ModelResponse:
        """Record the answer (model, finish reason, usage; the output when content is captured)."""
        usage = response.usage
        if self._span is not None and self._span.is_recording():
            attrs: dict[str, Any] = {
                "gen_ai.response.model": response.model,
                "gen_ai.usage.input_tokens": usage.prompt_tokens,
                "gen_ai.usage.output_tokens": usage.completion_tokens,
            }
            if response.finish_reason:
                attrs["gen_ai.response.finish_reasons"] = [response.finish_reason]
            if usage.cached_tokens:
                attrs["gen_ai.usage.cache_read.input_tokens"] = usage.cached_tokens
            if usage.estimated:
                attrs["agnt5.usage.estimated"] = True
            if usage.cost is not None:
                attrs["agnt5.usage.cost"] = usage.cost
            if _otel.capture_content():
                attrs["gen_ai.output.messages"] = content.output_messages(
                    response.text, response.tool_calls, response.finish_reason
                )
            self._span.set_attributes(attrs)
        if self._metrics is not None:
            self._metric_attrs["gen_ai.response.model"] = response.model
            if not usage.estimated:  # the conventions count reported (billable) tokens only
                self._tokens(usage.prompt_tokens, "input")
                self._tokens(usage.completion_tokens, "output")
        return response

    def embedded(self, response: Any) -> None:
        """Record an embeddings answer (litellm's EmbeddingResponse or its dict form)."""
        usage = _field(response, "usage")
        tokens = _field(usage, "prompt_tokens")
        model = _field(response, "model")
        model = model if isinstance(model, str) and model else None
        tokens = tokens if isinstance(tokens, int) and not isinstance(tokens, bool) else None
        if self._span is not None:
            if model is not None:
                self._span.set_attribute("gen_ai.response.model", model)
            if tokens is not None:
                self._span.set_attribute("gen_ai.usage.input_tokens", tokens)
        if self._metrics is not None:
            if model is not None:
                self._metric_attrs["gen_ai.response.model"] = model
            if tokens:
                self._tokens(tokens, "input")

    def _tokens(self, count: int, kind: str) -> None:
        assert self._metrics is not None
        self._metrics.token_usage.record(count, {**self._metric_attrs, "gen_ai.token.type": kind})


class _Attached:
    __slots__ = ("_ctx", "_token")

    def __init__(self, ctx: Context | None) -> None:
        self._ctx = ctx
        self._token: Token[Context] | None = None

    def __enter__(self) -> None:
        if self._ctx is not None:
            self._token = _otel.api().attach(self._ctx)

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            _otel.api().detach(self._token)
            self._token = None


NO_CALL = ModelCall(None, None, {}, None, False)
"""What `model_call` returns when nothing is recorded (stateless, shared)."""


def _field(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)


def _server(api_base: Any, attrs: dict[str, Any]) -> None:
    """`server.address` / `server.port` of a custom `api_base`: the host only, never user-info."""
    if not isinstance(api_base, str) or not api_base:
        return
    from urllib.parse import urlsplit

    try:
        url = urlsplit(api_base)
        host, port = url.hostname, url.port
    except ValueError:
        return
    if host:
        attrs["server.address"] = host
        attrs["server.port"] = port or (443 if url.scheme == "https" else 80)


def model_call(model: LanguageModel, request: Mapping[str, Any], *, stream: bool = False) -> ModelCall:
    """The span and metrics of one `chat` request. The span is current inside the `with` block,
    except for streams (an async generator must not leave its span current while its consumer
    runs): there, wrap the request itself in `call.attached()`."""
    tracer, metrics = _otel.tracer(), _otel.instruments()
    if (tracer is None and metrics is None) or _otel.litellm_traces():
        return NO_CALL
    name = model.model
    base: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": _otel.provider_name(name),
        "gen_ai.request.model": name,
    }
    _server(model.params.get("api_base"), base)
    span, info = None, None
    if tracer is not None:
        info = _otel.run_info()
        if info is not None:
            info.model_calls += 1
        attrs = dict(base)
        for key, attribute, convert in _REQUEST_PARAMS:
            value = request.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                attrs[attribute] = convert(value)
        stop = request.get("stop")
        if stop:
            attrs["gen_ai.request.stop_sequences"] = (
                [stop] if isinstance(stop, str) else [str(s) for s in stop]
            )
        choices = request.get("n")
        if isinstance(choices, int) and choices != 1:
            attrs["gen_ai.request.choice.count"] = choices
        if stream:
            attrs["gen_ai.request.stream"] = True
        if request.get("response_format") is not None:
            attrs["gen_ai.output.type"] = "json"
        _otel.add_run_attributes(attrs, info)
        if _otel.capture_content():
            attrs["gen_ai.input.messages"] = content.input_messages(request.get("messages") or ())
            if request.get("tools"):
                attrs["gen_ai.tool.definitions"] = content.tool_definitions(request["tools"])
        span = _otel.start(tracer, f"chat {name}", attrs, "CLIENT")
    return ModelCall(span, metrics, base, model.params.get("api_key"), not stream, info)


def embeddings_call(model: str, inputs: int, dimensions: int | None, params: Mapping[str, Any]) -> ModelCall:
    """The span and metrics of one `embeddings` request of `inputs` texts (current inside the block)."""
    tracer, metrics = _otel.tracer(), _otel.instruments()
    if (tracer is None and metrics is None) or _otel.litellm_traces():
        return NO_CALL
    base: dict[str, Any] = {
        "gen_ai.operation.name": "embeddings",
        "gen_ai.provider.name": _otel.provider_name(model),
        "gen_ai.request.model": model,
    }
    _server(params.get("api_base"), base)
    span, info = None, None
    if tracer is not None:
        info = _otel.run_info()
        attrs = {**base, "agnt5.embeddings.inputs": inputs}
        if dimensions is not None:
            attrs["gen_ai.embeddings.dimension.count"] = dimensions
        _otel.add_run_attributes(attrs, info)
        span = _otel.start(tracer, f"embeddings {model}", attrs, "CLIENT")
    return ModelCall(span, metrics, base, params.get("api_key"), True, info)


def retrying(attempt: int, error: BaseException, delay: float) -> None:
    """A model request failed and will be sent again: an `agnt5.retry` event on the current span."""
    api: Any = sys.modules.get("opentelemetry.trace")
    if api is None or _otel.tracer() is None:
        return
    span = api.get_current_span()
    if not span.is_recording():
        return
    attrs: dict[str, Any] = {
        "agnt5.retry.attempt": attempt,
        "agnt5.retry.delay_s": round(delay, 3),
        "error.type": content.error_type(error),
    }
    status = getattr(error, "status_code", None)
    if isinstance(status, int):
        attrs["http.response.status_code"] = status
    span.add_event("agnt5.retry", attrs)
