"""The plumbing under `agnt5.tracing`: settings, the lazily found tracer and meter, run context.

opentelemetry is never imported here at import time. A tracer exists only when the application
configured an SDK (globally, or through `agnt5.tracing.configure`): with OpenTelemetry's default
proxy provider there is nothing to record, so agnt5 creates no spans at all (its cost then is a
dictionary lookup per operation).
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from agnt5 import _otel_content as content

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.metrics import Histogram, MeterProvider
    from opentelemetry.trace import Span, Tracer, TracerProvider

SEMCONV_VERSION = "1.41.0"
"""The OpenTelemetry semantic conventions release whose GenAI conventions agnt5 follows."""
SCHEMA_URL = f"https://opentelemetry.io/schemas/{SEMCONV_VERSION}"
CAPTURE_CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
_CONTENT_ON = {"true", "1", "yes", "on", "span_only", "span_and_event"}
_PROVIDERS = {
    "text-completion-openai": "openai",
    "gemini": "gcp.gemini",
    "vertex_ai": "gcp.vertex_ai",
    "vertex_ai_beta": "gcp.vertex_ai",
    "bedrock": "aws.bedrock",
    "azure": "azure.ai.openai",
    "azure_ai": "azure.ai.inference",
    "mistral": "mistral_ai",
    "xai": "x_ai",
    "cohere_chat": "cohere",
    "watsonx": "ibm.watsonx.ai",
}
"""litellm provider names whose GenAI-conventions name differs (the others are the same)."""


class Settings:
    """What `agnt5.tracing.configure` set (plain classes here: dataclasses cost import time)."""

    __slots__ = ("capture_content", "enabled", "meter_provider", "tracer_provider")

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        capture_content: bool | None = None,
        enabled: bool = True,
    ) -> None:
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider
        self.capture_content = capture_content
        self.enabled = enabled


settings = Settings()
_tracer_cache: tuple[Any, Tracer] | None = None
_metrics_cache: tuple[Any, Instruments] | None = None
_provider_names: dict[str, str] = {}


_UNKNOWN = object()
_env_checked: dict[str, bool] = {}


def _configured_by_env(variable: str) -> bool:
    """Whether OpenTelemetry's provider variable is set (read once: it is set at start-up or never)."""
    found = _env_checked.get(variable)
    if found is None:
        found = _env_checked[variable] = variable in os.environ
    return found


_NO_OP_PROVIDERS = ("ProxyTracerProvider", "NoOpTracerProvider", "_ProxyMeterProvider", "NoOpMeterProvider")


def _global_provider(signal: str, holder: str, attribute: str) -> Any:
    """The OpenTelemetry API's global tracer or meter provider (`signal` "trace" or "metrics"), or
    None while none is configured (the API's proxy or no-op provider).

    The global is read directly from `holder` while unset (the API's getter reads the environment
    on every call then), so an untraced operation costs a few attribute reads; the API is
    imported only once the application has imported it, or names a provider in the environment.
    """
    variable = f"OTEL_PYTHON_{'TRACER' if signal == 'trace' else 'METER'}_PROVIDER"
    api: Any = sys.modules.get(f"opentelemetry.{signal}")
    if api is None:
        if variable not in os.environ:
            return None
        api = importlib.import_module(f"opentelemetry.{signal}")
    provider = getattr(sys.modules.get(holder), attribute, _UNKNOWN)
    if provider is None and not _configured_by_env(variable):
        return None
    if provider is None or provider is _UNKNOWN:
        provider = api.get_tracer_provider() if signal == "trace" else api.get_meter_provider()
    return None if type(provider).__name__ in _NO_OP_PROVIDERS else provider


class Api:
    """The OpenTelemetry API functions agnt5 calls, bound once (imports inside hot functions cost)."""

    def __init__(self) -> None:
        from opentelemetry import context, trace

        self.attach = context.attach
        self.detach = context.detach
        self.get_value = context.get_value
        self.set_value = context.set_value
        self.set_span_in_context = trace.set_span_in_context
        self.get_current_span = trace.get_current_span
        self.kinds = {"INTERNAL": trace.SpanKind.INTERNAL, "CLIENT": trace.SpanKind.CLIENT}
        self.Status = trace.Status
        self.ERROR = trace.StatusCode.ERROR
        self.run_key = context.create_key("agnt5.run")


_api: Api | None = None


def api() -> Api:
    """The bound API (imports opentelemetry: call only once a tracer exists)."""
    global _api
    if _api is None:
        _api = Api()
    return _api


def use(new: Settings) -> None:
    """Replace the settings (and forget the tracer and instruments made for the old ones)."""
    global settings, _tracer_cache, _metrics_cache
    settings, _tracer_cache, _metrics_cache = new, None, None


def capture_content() -> bool:
    """Whether message content, tool arguments and tool results are recorded on spans."""
    if settings.capture_content is not None:
        return settings.capture_content
    return os.environ.get(CAPTURE_CONTENT_ENV, "").strip().lower() in _CONTENT_ON


def tracer() -> Tracer | None:
    """agnt5's tracer, or None when no SDK is configured (then nothing is traced at all)."""
    global _tracer_cache
    if not settings.enabled:
        return None
    provider: Any = settings.tracer_provider
    if provider is None:
        provider = _global_provider("trace", "opentelemetry.trace", "_TRACER_PROVIDER")
        if provider is None:
            return None
    cached = _tracer_cache
    if cached is not None and cached[0] is provider:
        return cached[1]
    from agnt5 import __version__

    made: Tracer = provider.get_tracer("agnt5", __version__, schema_url=SCHEMA_URL)
    _tracer_cache = (provider, made)
    return made


class Instruments:
    """The GenAI client histograms."""

    __slots__ = ("duration", "token_usage")

    def __init__(self, token_usage: Histogram, duration: Histogram) -> None:
        self.token_usage = token_usage
        self.duration = duration


def instruments() -> Instruments | None:
    """agnt5's histograms, or None when no meter provider is configured."""
    global _metrics_cache
    if not settings.enabled:
        return None
    provider: Any = settings.meter_provider
    if provider is None:
        provider = _global_provider("metrics", "opentelemetry.metrics._internal", "_METER_PROVIDER")
        if provider is None:
            return None
    cached = _metrics_cache
    if cached is not None and cached[0] is provider:
        return cached[1]
    from agnt5 import __version__

    meter = provider.get_meter("agnt5", __version__, schema_url=SCHEMA_URL)
    made = Instruments(
        meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=list(TOKEN_BUCKETS),
        ),
        meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
        ),
    )
    _metrics_cache = (provider, made)
    return made


def provider_name(model: str) -> str:
    """`gen_ai.provider.name` for a litellm model string: litellm's provider, in the conventions' terms."""
    known = _provider_names.get(model)
    if known is not None:
        return known
    from agnt5 import _litellm

    loaded = _litellm.is_loaded()
    litellm_name = _litellm.provider_name(model) if loaded else None
    if litellm_name is None:  # before litellm is loaded (a test model): the prefix, else the profile
        from agnt5.providers import profile_for

        litellm_name = model.split("/", 1)[0] if "/" in model else profile_for(model).name
    name = _PROVIDERS.get(litellm_name, litellm_name)
    if loaded:
        _provider_names[model] = name
    return name


# --- the run a span belongs to -------------------------------------------------------------------


class RunInfo:
    """What the spans under one agent run (or one prune) share: ids, and a count of model calls."""

    __slots__ = ("conversation_id", "model_calls", "run_id")

    def __init__(self, conversation_id: str | None = None, run_id: str | None = None) -> None:
        self.conversation_id = conversation_id
        self.run_id = run_id
        self.model_calls = 0

    def child(self) -> RunInfo:
        """The same ids with a count of its own."""
        return RunInfo(self.conversation_id, self.run_id)


def run_info() -> RunInfo | None:
    """The RunInfo of the current context (None outside a traced run or prune)."""
    bound = _api
    if bound is None:
        return None
    value = bound.get_value(bound.run_key)
    return value if isinstance(value, RunInfo) else None


def add_run_attributes(attributes: dict[str, Any], info: RunInfo | None) -> None:
    """`gen_ai.conversation.id` (the session) and `agnt5.run.id` of the run a span is part of."""
    if info is not None:
        if info.conversation_id is not None:
            attributes["gen_ai.conversation.id"] = info.conversation_id
        if info.run_id is not None:
            attributes["agnt5.run.id"] = info.run_id


def context_with(span: Span, info: RunInfo | None = None) -> Context:
    """The current context with `span` current (and `info` as the run's, when given)."""
    bound = api()
    ctx = bound.set_span_in_context(span)
    return bound.set_value(bound.run_key, info, ctx) if info is not None else ctx


def start(made: Tracer, name: str, attributes: dict[str, Any], kind: str = "INTERNAL") -> Span:
    """A new span (not current) under the current context."""
    return made.start_span(name, kind=api().kinds[kind], attributes=attributes)


def fail(span: Span, exc: BaseException, hidden: Sequence[str]) -> None:
    """Mark `span` failed: status ERROR, `error.type`, and an `exception` event (secrets scrubbed)."""
    bound = api()
    message = content.scrub(str(exc), hidden, 500)
    span.set_attribute("error.type", content.error_type(exc))
    span.set_status(bound.Status(bound.ERROR, message))
    stack = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    span.add_event(
        "exception",
        {
            "exception.type": f"{type(exc).__module__}.{type(exc).__qualname__}",
            "exception.message": message,
            "exception.stacktrace": content.scrub(stack, hidden, 8000),
        },
    )


def litellm_traces() -> bool:
    """Whether litellm's own OpenTelemetry callback is on (then it makes the model spans, not agnt5)."""
    litellm: Any = sys.modules.get("litellm")
    if litellm is None:
        return False
    for name in ("callbacks", "success_callback", "_async_success_callback"):
        for callback in getattr(litellm, name, None) or ():
            if callback == "otel" or any(
                k.__name__ == "OpenTelemetry" and k.__module__.startswith("litellm.")
                for k in type(callback).__mro__
            ):
                return True
    return False
