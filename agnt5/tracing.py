"""OpenTelemetry traces and metrics of agent runs, model calls, tools, pruning, memory and the store.

Spans and metrics follow the OpenTelemetry GenAI semantic conventions v1.41.0 (`SEMCONV_VERSION`):
`invoke_agent {agent}`, `chat {model}`, `embeddings {model}`, `execute_tool {tool}`, plus agnt5's
own `agnt5.prune` and `agnt5.session.*` spans; `gen_ai.client.token.usage` and
`gen_ai.client.operation.duration` histograms. agnt5 uses the OpenTelemetry API only: nothing is
recorded until the application configures an SDK (globally, or here with `configure`), and message
content only when asked (`OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true` or
`configure(capture_content=True)`). The functions below are the call sites' context managers.
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast

from agnt5 import _otel
from agnt5 import _otel_content as content
from agnt5._otel import CAPTURE_CONTENT_ENV, SEMCONV_VERSION, capture_content
from agnt5._otel_models import ModelCall, embeddings_call, model_call, retrying

if TYPE_CHECKING:
    from contextvars import Token
    from types import TracebackType

    from opentelemetry.context import Context
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import Span, Tracer, TracerProvider

    from agnt5.models import LanguageModel
    from agnt5.pruning import PruneResult
    from agnt5.tools import ToolResult

T = TypeVar("T")
P = ParamSpec("P")
F = TypeVar("F", bound=Callable[..., Any])


def configure(
    *,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
    capture_content: bool | None = None,
    enabled: bool = True,
) -> None:
    """Where agnt5's spans and metrics go, and whether message content is recorded.

    Providers default to OpenTelemetry's global ones (`trace.set_tracer_provider(...)`), looked up
    on every operation, so an SDK configured after `import agnt5` is used. `capture_content` None
    follows OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT (off unless "true"). `enabled=False`
    turns agnt5's instrumentation off whatever is configured.
    """
    if capture_content is not None and not isinstance(capture_content, bool):
        from agnt5.errors import InvalidTypeError

        raise InvalidTypeError(
            f"capture_content must be True, False or None, got {capture_content!r}", field="capture_content"
        )
    _otel.use(_otel.Settings(tracer_provider, meter_provider, capture_content, bool(enabled)))


def reset() -> None:
    """Back to the defaults: global providers, content capture per the environment, enabled."""
    configure()


# --- tools, pruning, store ----------------------------------------------------------------------


class Operation:
    """An INTERNAL span, current inside its `with` block (a tool call, a prune, a store call)."""

    __slots__ = ("_ctx", "_span", "_token")

    def __init__(self, span: Span | None, info: _otel.RunInfo | None = None) -> None:
        self._span = span
        self._ctx: Context | None = _otel.context_with(span, info) if span is not None else None
        self._token: Token[Context] | None = None

    def __enter__(self) -> Operation:
        if self._ctx is not None:
            self._token = _otel.api().attach(self._ctx)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._span is None:
            return
        if self._token is not None:
            _otel.api().detach(self._token)
            self._token = None
        if exc is not None and not isinstance(exc, GeneratorExit):
            _otel.fail(self._span, exc, content.secrets())
        self._span.end()

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        """Set attributes on the span (None values are skipped)."""
        if self._span is not None:
            self._span.set_attributes({k: v for k, v in attributes.items() if v is not None})

    def tool_result(self, result: ToolResult) -> ToolResult:
        """Record a tool's result: an error result fails the span (`error.type`). Returns it."""
        if self._span is not None:
            if result.is_error:
                bound = _otel.api()
                message = content.scrub(result.content, content.secrets(), 500)
                self._span.set_attribute("error.type", content.tool_error_type(result.content))
                self._span.set_status(bound.Status(bound.ERROR, message))
            elif _otel.capture_content():
                self._span.set_attribute("gen_ai.tool.call.result", result.content)
        return result

    def pruned(self, result: PruneResult) -> PruneResult:
        """Record what a prune did (and how many model calls it made). Returns the result."""
        if self._span is not None:
            info = _otel.run_info()
            used_model = result.model is not None
            self.set_attributes(
                {
                    "agnt5.prune.strategy": result.strategy,
                    "agnt5.prune.changed": result.changed,
                    "agnt5.prune.reason": result.reason,
                    "agnt5.prune.id": result.prune_id,
                    "agnt5.prune.messages_removed": result.removed,
                    "agnt5.prune.messages_before": result.messages_before,
                    "agnt5.prune.messages_after": result.messages_after,
                    "agnt5.prune.tokens_before": result.tokens_before,
                    "agnt5.prune.tokens_after": result.tokens_after,
                    "agnt5.prune.model": result.model,
                    "agnt5.prune.model_calls": info.model_calls if info is not None else 0,
                    "gen_ai.usage.input_tokens": result.prompt_tokens if used_model else None,
                    "gen_ai.usage.output_tokens": result.completion_tokens if used_model else None,
                }
            )
        return result


_NO_OPERATION = Operation(None)


def _operation(
    tracer: Tracer, name: str, attrs: dict[str, Any], info: _otel.RunInfo | None = None
) -> Operation:
    _otel.add_run_attributes(attrs, _otel.run_info())
    return Operation(_otel.start(tracer, name, attrs), info)


def tool_call(name: str, call_id: str, arguments: Any = None, description: str | None = None) -> Operation:
    """`execute_tool {name}`: the tool runs inside it, so the tool's own spans nest under it."""
    tracer = _otel.tracer()
    if tracer is None:
        return _NO_OPERATION
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": name,
        "gen_ai.tool.call.id": call_id,
        "gen_ai.tool.type": "function",
    }
    if description:
        attrs["gen_ai.tool.description"] = description
    if arguments is not None and _otel.capture_content():
        attrs["gen_ai.tool.call.arguments"] = content.json_value(arguments)
    return _operation(tracer, f"execute_tool {name}", attrs)


def traced_tool_call(method: F) -> F:
    """Decorates the agent's tool-call method `(self, call, tools, ...) -> (ToolResult, seconds)`:
    an `execute_tool {tool}` span, current while the tool (and any hook around it) runs."""

    @functools.wraps(method)
    async def traced(*args: Any, **kwargs: Any) -> Any:
        if _otel.tracer() is None:
            return await method(*args, **kwargs)
        call, tools = args[1], args[2] if len(args) > 2 else {}
        tool = tools.get(call.name) if isinstance(tools, Mapping) else None
        with tool_call(call.name, call.id, call.arguments, getattr(tool, "description", None)) as span:
            outcome = await method(*args, **kwargs)
            span.tool_result(outcome[0] if isinstance(outcome, tuple) else outcome)
            return outcome

    return cast(F, traced)


def traced_prune(prune: Callable[P, Awaitable[PruneResult]]) -> Callable[P, Awaitable[PruneResult]]:
    """Decorates `agnt5.pruning.prune`: an `agnt5.prune` span around each prune, with what it
    did; a summarising strategy's model calls nest under it (and are counted)."""

    @functools.wraps(prune)
    async def traced(*args: P.args, **kwargs: P.kwargs) -> PruneResult:
        tracer = _otel.tracer()
        session = args[0] if args else kwargs.get("session")
        if tracer is None or session is None:
            return await prune(*args, **kwargs)
        attrs: dict[str, Any] = {
            "gen_ai.conversation.id": getattr(session, "id", ""),
            "agnt5.prune.auto": bool(kwargs.get("auto", False)),
        }
        if kwargs.get("max_tokens") is not None:
            attrs["agnt5.prune.max_tokens"] = kwargs["max_tokens"]
        outer = _otel.run_info()
        info = outer.child() if outer is not None else _otel.RunInfo()
        with _operation(tracer, "agnt5.prune", attrs, info) as span:
            return span.pruned(await prune(*args, **kwargs))

    return traced


def _store_attributes(
    operation: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> dict[str, Any] | None:
    """Attributes of a Session method's span from its arguments; None: not worth a span."""
    session = args[0]
    attrs: dict[str, Any] = {"gen_ai.conversation.id": session.id}
    if operation == "append":  # Session._append(items, events)
        attrs["agnt5.session.events"] = len(args[2]) if len(args) > 2 else len(kwargs.get("events", ()))
    elif operation == "history":  # Session.history(limit, include_pruned=...)
        limit = args[1] if len(args) > 1 else kwargs.get("limit")
        if limit is not None:
            attrs["agnt5.session.limit"] = limit
    elif operation == "set_state":  # Session._write_state(key, scope, value, delete=...)
        scope = args[2] if len(args) > 2 else kwargs.get("scope")
        if scope == "temp":  # process memory only: nothing is stored
            return None
        attrs["agnt5.session.state.scope"] = scope
        attrs["agnt5.session.state.key"] = args[1] if len(args) > 1 else kwargs.get("key")
        attrs["agnt5.session.state.action"] = "delete" if kwargs.get("delete") else "set"
    return attrs


def traced_session(operation: str) -> Callable[[F], F]:
    """Decorates a Session method with an `agnt5.session.<operation>` span (append, history,
    set_state): cheap store calls worth seeing in a trace; the span counts the messages."""

    def decorate(method: F) -> F:
        if inspect.iscoroutinefunction(method):

            @functools.wraps(method)
            async def traced_async(*args: Any, **kwargs: Any) -> Any:
                tracer = _otel.tracer()
                attrs = _store_attributes(operation, args, kwargs) if tracer is not None else None
                if tracer is None or attrs is None:
                    return await method(*args, **kwargs)
                with _operation(tracer, f"agnt5.session.{operation}", attrs) as span:
                    result = await method(*args, **kwargs)
                    if isinstance(result, list):
                        span.set_attributes({"agnt5.session.messages": len(result)})
                    return result

            return cast(F, traced_async)

        @functools.wraps(method)
        def traced(*args: Any, **kwargs: Any) -> Any:
            tracer = _otel.tracer()
            attrs = _store_attributes(operation, args, kwargs) if tracer is not None else None
            if tracer is None or attrs is None:
                return method(*args, **kwargs)
            with _operation(tracer, f"agnt5.session.{operation}", attrs):
                return method(*args, **kwargs)

        return cast(F, traced)

    return decorate


# --- agent runs ----------------------------------------------------------------------------------


def agent_run(
    agent_name: str,
    model: LanguageModel,
    events: AsyncIterator[T],
    *,
    handoff_from: str | None = None,
) -> AsyncIterator[T]:
    """`invoke_agent {agent}` around a run's event generator: the span is current while the run
    works and never while the caller handles an event. Inside a run (a handoff), a child span."""
    tracer = _otel.tracer()
    if tracer is None:
        return events
    return _traced_run(tracer, agent_name, model, events, handoff_from)


async def _traced_run(
    tracer: Tracer,
    agent_name: str,
    model: LanguageModel,
    events: AsyncIterator[T],
    handoff_from: str | None,
) -> AsyncIterator[T]:
    from agnt5.agent_events import FinalResult, RunPaused

    bound = _otel.api()
    attach, detach = bound.attach, bound.detach

    outer = _otel.run_info()
    info = outer.child() if outer is not None else _otel.RunInfo()
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.provider.name": _otel.provider_name(model.model),
        "gen_ai.agent.name": agent_name,
        "gen_ai.request.model": model.model,
    }
    if handoff_from is not None:
        attrs["agnt5.handoff.from_agent"] = handoff_from
    _otel.add_run_attributes(attrs, info)
    span = _otel.start(tracer, f"invoke_agent {agent_name}", attrs)
    ctx = _otel.context_with(span, info)
    try:
        while True:
            token = attach(ctx)
            try:
                event = await events.__anext__()
            except StopAsyncIteration:
                break
            finally:
                detach(token)
            if isinstance(event, (FinalResult, RunPaused)):
                usage = event.result.usage
                span.set_attributes(
                    {
                        "gen_ai.usage.input_tokens": usage.prompt_tokens,
                        "gen_ai.usage.output_tokens": usage.completion_tokens,
                    }
                )
            yield event
    except GeneratorExit:
        raise
    except BaseException as exc:
        _otel.fail(span, exc, content.secrets())
        raise
    finally:
        token = attach(ctx)
        try:
            if isinstance(events, AsyncGenerator):
                await events.aclose()
        finally:
            detach(token)
            span.end()


def run_started(run_id: str, session_id: str) -> None:
    """Give the current run's spans (from now on) its id and its session's id."""
    info = _otel.run_info()
    if info is None:
        return
    info.run_id, info.conversation_id = run_id, session_id
    _otel.api().get_current_span().set_attributes(
        {"agnt5.run.id": run_id, "gen_ai.conversation.id": session_id}
    )


def current_ids() -> dict[str, str]:
    """The current trace and span ids (hex), for audit events; {} outside any recorded trace."""
    api: Any = sys.modules.get("opentelemetry.trace")
    if api is None:
        return {}
    ctx = api.get_current_span().get_span_context()
    if not ctx.is_valid:
        return {}
    return {"trace_id": format(ctx.trace_id, "032x"), "span_id": format(ctx.span_id, "016x")}


__all__ = [
    "CAPTURE_CONTENT_ENV",
    "SEMCONV_VERSION",
    "ModelCall",
    "Operation",
    "agent_run",
    "capture_content",
    "configure",
    "current_ids",
    "embeddings_call",
    "model_call",
    "reset",
    "retrying",
    "run_started",
    "tool_call",
    "traced_prune",
    "traced_session",
    "traced_tool_call",
]
