"""ScriptedModel: a LanguageModel that answers from a queue of scripted steps, with no HTTP at all."""

from __future__ import annotations

import json
import os
from collections import deque
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pydantic

from agnt5.errors import ScriptExhaustedError, ScriptIncompleteError
from agnt5.messages import to_provider_messages
from agnt5.models import (
    LanguageModel,
    ModelResponse,
    ResponseComplete,
    StreamEvent,
    TextDelta,
    ToolCall,
    Usage,
)
from agnt5.providers import CacheHint

if TYPE_CHECKING:
    from agnt5.tools import Tool


@dataclass(frozen=True, slots=True)
class ScriptedCall:
    """What a ScriptedModel was asked: the messages (provider format), tool names, response format."""

    messages: list[dict[str, Any]]
    tools: list[str]
    response_format: Any


class ScriptedModel(LanguageModel):
    """Queue replies, then hand the model to an Agent (or prune) in a test:

        model = ScriptedModel().tool_call("lookup", {"id": 7}).text("Done.")
        await Agent("a", model=model, tools=[lookup]).run("go")
        model.assert_complete()

    Each step answers one call, in order. A call with no step left raises ScriptExhaustedError;
    `assert_complete()` raises ScriptIncompleteError when steps were left unused (both are also
    AssertionErrors). `calls` records every request.
    """

    def __init__(
        self,
        model: str = "scripted-model",
        *,
        context_window: int = 128_000,
        max_output_tokens: int = 4096,
        count_model: str = "gpt-4o-mini",
    ) -> None:
        super().__init__(count_model)
        self.model = model
        self._count_model = count_model
        self._window = context_window
        self._max_output = max_output_tokens
        self._steps: deque[ModelResponse | BaseException] = deque()
        self.calls: list[ScriptedCall] = []

    def __repr__(self) -> str:
        return f"ScriptedModel({len(self._steps)} steps left, {len(self.calls)} calls)"

    # -- scripting --

    def text(self, text: str, *, prompt_tokens: int = 10, completion_tokens: int = 5) -> ScriptedModel:
        """Answer with plain text."""
        return self._queue(
            ModelResponse(text, [], "stop", _usage(prompt_tokens, completion_tokens), self.model)
        )

    def tool_call(
        self, name: str, arguments: Mapping[str, Any] | str | None = None, *, id: str | None = None
    ) -> ScriptedModel:
        """Answer with one tool call."""
        return self.tool_calls([(name, arguments or {}, id)])

    def tool_calls(
        self,
        calls: Iterable[
            tuple[str, Mapping[str, Any] | str] | tuple[str, Mapping[str, Any] | str, str | None]
        ],
    ) -> ScriptedModel:
        """Answer with several (parallel) tool calls: (name, arguments[, id]) each."""
        made = []
        for call in calls:
            name, arguments = call[0], call[1]
            call_id = call[2] if len(call) > 2 else None
            text = arguments if isinstance(arguments, str) else json.dumps(dict(arguments))
            made.append(ToolCall(call_id or f"call_{os.urandom(6).hex()}", name, text))
        return self._queue(ModelResponse("", made, "tool_calls", _usage(10, 5), self.model))

    def output(self, value: pydantic.BaseModel | Mapping[str, Any]) -> ScriptedModel:
        """Answer with structured output (the JSON of a pydantic model or dict)."""
        text = value.model_dump_json() if isinstance(value, pydantic.BaseModel) else json.dumps(dict(value))
        return self.text(text)

    def error(self, error: BaseException) -> ScriptedModel:
        """Raise `error` on that call (e.g. agnt5.errors.RateLimitError("slow down"))."""
        return self._queue(error)

    def _queue(self, step: ModelResponse | BaseException) -> ScriptedModel:
        self._steps.append(step)
        return self

    @property
    def remaining(self) -> int:
        return len(self._steps)

    def assert_complete(self) -> None:
        """Raise ScriptIncompleteError unless every queued step was used."""
        if self._steps:
            raise ScriptIncompleteError(
                f"{len(self._steps)} scripted step(s) were never used ({self!r}): the code under test "
                "made fewer model calls than scripted; remove the extra steps or check why a call was skipped"
            )

    # -- the LanguageModel interface --

    async def generate(
        self,
        messages: Iterable[Mapping[str, Any]],
        tools: Sequence[Tool | Mapping[str, Any]] | None = None,
        tool_choice: str | Mapping[str, Any] | None = None,
        response_format: Any = None,
        *,
        cache: CacheHint | None = None,
    ) -> ModelResponse:
        step = self._next(messages, tools, response_format)
        if isinstance(step, BaseException):
            raise step
        return step

    async def stream(
        self,
        messages: Iterable[Mapping[str, Any]],
        tools: Sequence[Tool | Mapping[str, Any]] | None = None,
        tool_choice: str | Mapping[str, Any] | None = None,
        response_format: Any = None,
        *,
        cache: CacheHint | None = None,
    ) -> AsyncIterator[StreamEvent]:
        step = self._next(messages, tools, response_format)
        if isinstance(step, BaseException):
            raise step
        for i, word in enumerate(step.text.split(" ") if step.text else []):
            yield TextDelta(word if i == 0 else " " + word)
        yield ResponseComplete(step)

    def _next(
        self, messages: Iterable[Mapping[str, Any]], tools: Any, response_format: Any
    ) -> ModelResponse | BaseException:
        names = [t["function"]["name"] if isinstance(t, Mapping) else t.name for t in tools or ()]
        self.calls.append(ScriptedCall(to_provider_messages(messages), names, response_format))
        if not self._steps:
            last = self.calls[-1].messages[-1] if self.calls[-1].messages else {}
            raise ScriptExhaustedError(
                f"ScriptedModel got call #{len(self.calls)} but no scripted step is left; "
                f"the last message was {json.dumps(last)[:300]}"
            )
        return self._steps.popleft()

    @property
    def context_window(self) -> int:
        return self._window

    @property
    def max_output_tokens(self) -> int:
        return self._max_output

    @property
    def supports_response_schema(self) -> bool:
        return True


def _usage(prompt: int, completion: int) -> Usage:
    return Usage(prompt, completion, prompt + completion, 0.0, requests=1)
