"""`LanguageModel`: one async interface to any litellm model, returning plain typed records.

Calls go through `agnt5._litellm` (lazy import, retries, error mapping); provider quirks come from
`agnt5.providers.profile_for`. Results are dataclasses, never litellm objects, so the rest of agnt5
(and sessions on disk) never depend on litellm's types.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from agnt5 import _litellm, errors, tokens, tracing
from agnt5.messages import to_provider_messages
from agnt5.providers import CacheHint, ProviderProfile, profile_for
from agnt5.usage import Usage as Usage  # re-exported: Usage lived here first

if TYPE_CHECKING:
    from agnt5.tools import Tool

DEFAULT_MODEL = "gpt-4o-mini"
MODEL_ENV = "AGNT5_MODEL"
FALLBACK_CONTEXT_WINDOW = 8192
"""Context window assumed when litellm's model map does not know the model."""
FALLBACK_MAX_OUTPUT_TOKENS = 4096
"""Output limit assumed when litellm's model map does not know the model."""
USER_FIRST_PLACEHOLDER = "(conversation continues)"
"""User turn inserted when a provider requires one first and the (pruned) history starts otherwise."""


# --- records -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One function call the model asked for; `arguments` is the raw JSON text the model wrote."""

    id: str
    name: str
    arguments: str

    def to_dict(self) -> dict[str, Any]:
        """The OpenAI wire form: {"id", "type": "function", "function": {"name", "arguments"}}."""
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


@dataclass(frozen=True, slots=True)
class ModelResponse:
    """The assistant's reply: text, tool calls, why it stopped, and what it cost."""

    text: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str | None = None
    usage: Usage = field(default_factory=Usage)
    model: str = ""

    def message(self) -> dict[str, Any]:
        """The reply as a provider-format assistant message, ready to append to a history."""
        message: dict[str, Any] = {"role": "assistant", "content": self.text or None}
        if self.tool_calls:
            message["tool_calls"] = [call.to_dict() for call in self.tool_calls]
        elif message["content"] is None:
            message["content"] = ""
        return message


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of streamed assistant text."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A piece of a streamed tool call; `index` identifies the call, `arguments` is a JSON fragment."""

    index: int
    id: str | None
    name: str | None
    arguments: str


@dataclass(frozen=True, slots=True)
class ResponseComplete:
    """Last event of a stream: the whole response, tool calls assembled, usage when reported."""

    response: ModelResponse


StreamEvent = TextDelta | ToolCallDelta | ResponseComplete


# --- message preparation -------------------------------------------------------------------------


def _ensure_user_first(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for i, message in enumerate(messages):
        if message.get("role") in ("system", "developer"):
            continue
        if message.get("role") != "user":
            return [*messages[:i], {"role": "user", "content": USER_FIRST_PLACEHOLDER}, *messages[i:]]
        break
    return messages


def _tool_schemas(tools: Sequence[Tool | Mapping[str, Any]] | None) -> list[dict[str, Any]] | None:
    if not tools:
        return None
    return [dict(t) if isinstance(t, Mapping) else t.schema() for t in tools]


def _count_prompt(messages: list[dict[str, Any]], schemas: list[dict[str, Any]] | None, model: str) -> int:
    total = tokens.count_tokens(messages, model)
    for schema in schemas or ():
        total += tokens.count_text_tokens(json.dumps(schema, separators=(",", ":")), model)
    return total


def _prompt_tokens(request: Mapping[str, Any], model: str) -> int:
    """The prompt tokens of a prepared request, counted locally (for answers without usage)."""
    return _count_prompt(request["messages"], request.get("tools"), model)


# --- the model -----------------------------------------------------------------------------------


class LanguageModel:
    """A chat model reached through litellm: `generate`, `stream`, token counting and limits.

    `model` is any litellm model string ("gpt-4o-mini", "anthropic/claude-sonnet-4-5",
    "gemini/gemini-2.0-flash"); it defaults to $AGNT5_MODEL, else "gpt-4o-mini". Extra keyword
    arguments go to `litellm.acompletion` unchanged. Failures raise `agnt5.errors.ModelError`s;
    rate limits, timeouts and 5xx are retried `num_retries` times with backoff first.
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        timeout: float | None = None,
        num_retries: int = 2,
        api_key: str | None = None,
        api_base: str | None = None,
        **params: Any,
    ) -> None:
        if model is not None and not isinstance(model, str):
            raise errors.InvalidTypeError(
                f"model must be a litellm model name such as 'gpt-4o-mini', got {type(model).__name__}"
            )
        self.model: str = model or os.environ.get(MODEL_ENV) or DEFAULT_MODEL
        if isinstance(num_retries, bool) or not isinstance(num_retries, int) or num_retries < 0:
            raise errors.ConfigurationError(f"num_retries must be an integer >= 0, got {num_retries!r}")
        self.num_retries = num_retries
        named = {
            "temperature": temperature,
            "max_tokens": max_tokens,
            "timeout": timeout,
            "api_key": api_key,
            "api_base": api_base,
        }
        self.params: dict[str, Any] = {k: v for k, v in named.items() if v is not None} | params
        self.profile: ProviderProfile = profile_for(self.model)

    def __repr__(self) -> str:
        return f"LanguageModel({self.model!r})"

    # -- calls --

    def _request(
        self,
        messages: Iterable[Mapping[str, Any]],
        tools: Sequence[Tool | Mapping[str, Any]] | None,
        tool_choice: str | Mapping[str, Any] | None,
        response_format: Any,
        cache: CacheHint | None = None,
    ) -> dict[str, Any]:
        prepared = to_provider_messages(messages)
        if self.profile.requires_user_first:
            prepared = _ensure_user_first(prepared)
        request: dict[str, Any] = {**self.params, "model": self.model, "messages": prepared}
        schemas = _tool_schemas(tools)
        if schemas:
            request["tools"] = schemas
            if tool_choice is not None:
                request["tool_choice"] = tool_choice
        if response_format is not None:
            request["response_format"] = response_format
        return self.profile.cache_request(request, cache) if cache is not None else request

    async def generate(
        self,
        messages: Iterable[Mapping[str, Any]],
        tools: Sequence[Tool | Mapping[str, Any]] | None = None,
        tool_choice: str | Mapping[str, Any] | None = None,
        response_format: Any = None,
        *,
        cache: CacheHint | None = None,
    ) -> ModelResponse:
        """One completion. `tools` are `Tool`s or OpenAI tool dicts; `response_format` a dict or
        pydantic model; `cache` adds the provider's prompt-caching hints (`agnt5.providers`)."""
        request = self._request(messages, tools, tool_choice, response_format, cache)
        with tracing.model_call(self, request) as call:
            raw = await _litellm.acompletion(num_retries=self.num_retries, **request)
            try:
                response = _parse_response(raw, self.model, lambda: _prompt_tokens(request, self.model))
            except errors.ModelError:
                raise
            except Exception as exc:
                raise _litellm.map_exception(exc, self.model, answered=True) from exc
            return call.done(response)

    async def stream(
        self,
        messages: Iterable[Mapping[str, Any]],
        tools: Sequence[Tool | Mapping[str, Any]] | None = None,
        tool_choice: str | Mapping[str, Any] | None = None,
        response_format: Any = None,
        *,
        cache: CacheHint | None = None,
    ) -> AsyncIterator[StreamEvent]:
        """Stream a completion: TextDelta/ToolCallDelta events, then one ResponseComplete.

        A stream that ends before the provider says why it stopped raises ProviderError.
        """
        request = self._request(messages, tools, tool_choice, response_format, cache)
        request["stream"] = True
        # litellm never forwards this where unsupported; it tells its stream wrapper to report usage.
        request.setdefault("stream_options", {"include_usage": True})
        with tracing.model_call(self, request, stream=True) as call:  # never current across a yield
            with call.attached():
                raw_stream = await _litellm.acompletion(num_retries=self.num_retries, **request)
            assembler = _StreamAssembler(self.model)
            async for chunk in _litellm.iterate_stream(raw_stream, self.model):
                call.chunk()
                for event in assembler.feed(chunk):
                    yield event
            reported = _litellm.stream_usage_reported(raw_stream)
            response = call.done(assembler.finish(reported, lambda: _prompt_tokens(request, self.model)))
        yield ResponseComplete(response)

    # -- tokens and limits --

    def count_tokens(
        self,
        messages: Iterable[Mapping[str, Any]],
        tools: Sequence[Tool | Mapping[str, Any]] | None = None,
    ) -> int:
        """Prompt tokens of `messages` (plus the tools' JSON schemas) for this model, offline."""
        return _count_prompt(to_provider_messages(messages), _tool_schemas(tools), self.model)

    @cached_property
    def _info(self) -> Mapping[str, Any]:
        try:
            info = _litellm.get_litellm().get_model_info(self.model)
        except Exception:
            return {}
        return info if isinstance(info, Mapping) else {}

    @property
    def context_window(self) -> int:
        """Max prompt tokens per litellm's model map; 8192 when litellm does not know the model."""
        value = self._info.get("max_input_tokens") or self._info.get("max_tokens")
        return int(value) if isinstance(value, int) and value > 0 else FALLBACK_CONTEXT_WINDOW

    @property
    def max_output_tokens(self) -> int:
        """Max completion tokens per litellm's model map; 4096 when unknown."""
        value = self._info.get("max_output_tokens")
        return int(value) if isinstance(value, int) and value > 0 else FALLBACK_MAX_OUTPUT_TOKENS

    @property
    def supports_response_schema(self) -> bool:
        """Whether a JSON-schema `response_format` is enforced natively (False when unknown)."""
        return self.profile.supports_json_schema(self.model)


# --- parsing litellm objects ---------------------------------------------------------------------


def _get(obj: Any, key: str, default: Any = None) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(key, default)
    return getattr(obj, key, default)


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0


def _reported(raw_usage: Any) -> bool:
    """Whether litellm's usage holds counts (litellm gives zeros when an answer has no usage)."""
    if raw_usage is None:
        return False
    return _int(_get(raw_usage, "prompt_tokens")) > 0 or _int(_get(raw_usage, "completion_tokens")) > 0


def _estimated_usage(model: str, prompt: int, text: str, calls: Sequence[ToolCall]) -> Usage:
    """Usage counted locally for an answer that reported none: the prompt sent, the text and tool calls."""
    completion = tokens.count_text_tokens(text, model) if text else 0
    for call in calls:
        completion += tokens.count_text_tokens(call.name + call.arguments, model)
    cost = _cost(None, model, prompt, completion, None)
    return Usage(prompt, completion, prompt + completion, cost, requests=1, estimated=True)


def _usage(raw_usage: Any, model: str, raw_response: Any = None) -> Usage:
    if raw_usage is None:
        return Usage(requests=1)
    prompt = _int(_get(raw_usage, "prompt_tokens"))
    completion = _int(_get(raw_usage, "completion_tokens"))
    total = _int(_get(raw_usage, "total_tokens")) or prompt + completion
    details = _get(raw_usage, "prompt_tokens_details")
    cached = _int(_get(details, "cached_tokens")) if details is not None else 0
    # Anthropic's cache writes; litellm keeps the field and counts them in prompt_tokens.
    written = _int(_get(raw_usage, "cache_creation_input_tokens"))
    if not written and details is not None:
        written = _int(_get(details, "cache_creation_tokens"))
    cost = _cost(raw_usage, model, prompt, completion, raw_response, cached, written)
    return Usage(
        prompt, completion, total, cost, requests=1, cached_tokens=cached, cache_write_tokens=written
    )


def _cost(
    raw_usage: Any,
    model: str,
    prompt: int,
    completion: int,
    raw_response: Any,
    cached: int = 0,
    written: int = 0,
) -> float | None:
    """USD per litellm's price map, cache reads and writes at their own prices (None when unknown)."""
    hidden = getattr(raw_response, "_hidden_params", None)
    if isinstance(hidden, Mapping) and isinstance(hidden.get("response_cost"), int | float):
        return float(hidden["response_cost"])
    cost = _get(raw_usage, "cost")
    if isinstance(cost, int | float):
        return float(cost)
    litellm = _litellm.get_litellm()
    try:
        if raw_response is not None:
            return float(litellm.completion_cost(completion_response=raw_response))
        prompt_cost, completion_cost = litellm.cost_per_token(
            model=model,
            prompt_tokens=prompt,
            completion_tokens=completion,
            cache_read_input_tokens=cached,
            cache_creation_input_tokens=written,
        )
        return float(prompt_cost + completion_cost)
    except Exception:
        return None


def _parse_response(raw: Any, requested_model: str, prompt_tokens: Callable[[], int]) -> ModelResponse:
    """`raw` (a litellm ModelResponse) as agnt5's; usage counted locally when the answer had none."""
    choices = _get(raw, "choices") or []
    if not choices:
        raise errors.ProviderError(
            f"{requested_model} returned a response without choices; the provider reply was malformed. "
            "Retry the call.",
            model=requested_model,
        )
    choice = choices[0]
    message = _get(choice, "message")
    content = _get(message, "content")
    calls = [
        ToolCall(
            id=str(_get(call, "id") or f"call_{i}"),
            name=str(_get(_get(call, "function"), "name") or ""),
            arguments=str(_get(_get(call, "function"), "arguments") or "{}"),
        )
        for i, call in enumerate(_get(message, "tool_calls") or [])
    ]
    text = content if isinstance(content, str) else ""
    raw_usage = _get(raw, "usage")
    if _reported(raw_usage):
        usage = _usage(raw_usage, requested_model, raw)
    else:
        usage = _estimated_usage(requested_model, prompt_tokens(), text, calls)
    return ModelResponse(
        text=text,
        tool_calls=calls,
        finish_reason=_get(choice, "finish_reason"),
        usage=usage,
        model=str(_get(raw, "model") or requested_model),
    )


@dataclass(slots=True)
class _PartialCall:
    id: str | None = None
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class _StreamAssembler:
    """Turns litellm stream chunks into events and, at the end, one ModelResponse."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.reported_model: str | None = None
        self.text: list[str] = []
        self.calls: dict[int, _PartialCall] = {}
        self.finish_reason: str | None = None
        self.usage: Any = None

    def feed(self, chunk: Any) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        self.reported_model = self.reported_model or _get(chunk, "model")
        usage = _get(chunk, "usage")
        if usage is not None:
            self.usage = usage
        for choice in _get(chunk, "choices") or []:
            if _get(choice, "finish_reason"):
                self.finish_reason = _get(choice, "finish_reason")
            delta = _get(choice, "delta")
            if delta is None:
                continue
            text = _get(delta, "content")
            if isinstance(text, str) and text:
                self.text.append(text)
                events.append(TextDelta(text))
            for call in _get(delta, "tool_calls") or []:
                events.append(self._feed_call(call))
        return events

    def _feed_call(self, call: Any) -> ToolCallDelta:
        call_id = _get(call, "id")
        index = _get(call, "index")
        if not isinstance(index, int):
            index = len(self.calls) - 1 if call_id is None and self.calls else len(self.calls)
        partial = self.calls.get(index)
        if partial is not None and call_id and partial.id and partial.id != call_id:
            index = max(self.calls) + 1  # a provider reusing an index for a new call
            partial = None
        if partial is None:
            partial = self.calls[index] = _PartialCall()
        function = _get(call, "function")
        name = _get(function, "name")
        arguments = _get(function, "arguments") or ""
        if call_id:
            partial.id = call_id
        if name:
            partial.name = name
        partial.arguments.append(arguments)
        return ToolCallDelta(index=index, id=call_id, name=name, arguments=arguments)

    def finish(self, reported: bool | None, prompt_tokens: Callable[[], int]) -> ModelResponse:
        """The whole response; `reported` False when litellm estimated the usage (None: unknown)."""
        if self.finish_reason is None:
            raise errors.ProviderError(
                f"the stream from {self.model} ended before the provider said why it stopped "
                "(truncated response); retry the call.",
                model=self.model,
                provider=_litellm.provider_name(self.model),
            )
        calls = [
            ToolCall(id=p.id or f"call_{i}", name=p.name, arguments="".join(p.arguments) or "{}")
            for i, p in sorted(self.calls.items())
        ]
        text = "".join(self.text)
        if not _reported(self.usage):
            usage = _estimated_usage(self.model, prompt_tokens(), text, calls)
        else:
            usage = _usage(self.usage, self.model)
            if reported is False:  # litellm counted the tokens itself
                usage = dataclasses.replace(usage, estimated=True)
        return ModelResponse(
            text=text,
            tool_calls=calls,
            finish_reason=self.finish_reason,
            usage=usage,
            model=str(self.reported_model or self.model),
        )
