"""FunctionModel: a LanguageModel whose reply is computed by your function from what it was sent.

For tests that depend on the prompt (instructions rendered from state, history seen by a handoff,
tool results): the function gets the provider-format messages and an `AgentInfo` (tools, output
schema, settings) and returns the reply. No HTTP, no litellm.
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeAlias

import pydantic

from agnt5.errors import InvalidTypeError
from agnt5.messages import to_provider_messages
from agnt5.models import (
    LanguageModel,
    ModelResponse,
    ResponseComplete,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from agnt5.providers import CacheHint
from agnt5.tokens import counter_for

if TYPE_CHECKING:
    from agnt5.tools import Tool


@dataclass(frozen=True, slots=True)
class AgentInfo:
    """What a request carried besides the messages.

    `tools` are the OpenAI tool schemas sent (handoffs and the `final_result` output tool
    included); `response_format` is what was passed (a pydantic model class, a dict or None) and
    `output_schema` its JSON schema; `model_settings` the model's parameters; `stream` whether the
    request was streamed.
    """

    tools: list[dict[str, Any]] = field(default_factory=list)
    tool_choice: str | Mapping[str, Any] | None = None
    response_format: Any = None
    output_schema: dict[str, Any] | None = None
    model_settings: dict[str, Any] = field(default_factory=dict)
    stream: bool = False

    @property
    def tool_names(self) -> list[str]:
        return [str(t["function"]["name"]) for t in self.tools]

    def tool(self, name: str) -> dict[str, Any] | None:
        """The `function` part ({name, description, parameters}) of the tool named `name`, if sent."""
        for schema in self.tools:
            if schema["function"]["name"] == name:
                function: dict[str, Any] = schema["function"]
                return function
        return None


@dataclass(frozen=True, slots=True)
class ModelRequest:
    """One request a FunctionModel (or TestModel) answered: the messages and the AgentInfo."""

    messages: list[dict[str, Any]]
    info: AgentInfo

    @property
    def tools(self) -> list[str]:
        """The names of the tools offered (as on ScriptedCall)."""
        return self.info.tool_names

    @property
    def response_format(self) -> Any:
        return self.info.response_format


Reply: TypeAlias = str | ModelResponse | ToolCall | Sequence[ToolCall] | pydantic.BaseModel
"""What a FunctionModel's function returns: text, a whole response, tool call(s), or structured output."""
ReplyFunction: TypeAlias = Callable[[list[dict[str, Any]], AgentInfo], Reply | Awaitable[Reply]]


class FunctionModel(LanguageModel):
    """A model whose reply is `fn(messages, info)` (sync or async):

        def reply(messages, info):
            if messages[-1]["role"] == "tool":
                return "Done: " + messages[-1]["content"]
            return FunctionModel.tool_call("lookup", {"id": 7})

        await Agent("a", model=FunctionModel(reply), tools=[lookup]).run("go")

    `fn` returns a str (text), a ToolCall or a list of them (`FunctionModel.tool_call(...)`), a
    pydantic model instance (structured output, sent as its JSON), or a whole ModelResponse.
    Usage counts the tokens of what was sent and returned (cost 0.0); a ModelResponse that carries
    its own usage keeps it. `requests` records every request; exceptions from `fn` propagate.
    """

    def __init__(
        self,
        fn: ReplyFunction,
        *,
        model: str = "function-model",
        context_window: int = 128_000,
        max_output_tokens: int = 4096,
        count_model: str = "gpt-4o-mini",
        supports_response_schema: bool = True,
    ) -> None:
        if not callable(fn):
            raise InvalidTypeError(f"FunctionModel needs a function (messages, info) -> reply, got {fn!r}")
        super().__init__(count_model)
        self.model = model
        self.fn = fn
        self._count_model = count_model
        self._window = context_window
        self._max_output = max_output_tokens
        self._native_output = supports_response_schema
        self.requests: list[ModelRequest] = []

    def __repr__(self) -> str:
        name = getattr(self.fn, "__qualname__", None) or repr(self.fn)
        return f"{type(self).__name__}({name}, {len(self.requests)} requests)"

    @staticmethod
    def tool_call(
        name: str, arguments: Mapping[str, Any] | str | None = None, *, id: str | None = None
    ) -> ToolCall:
        """A tool call to return from `fn` (`arguments` a dict or JSON text; a random id unless given)."""
        text = arguments if isinstance(arguments, str) else json.dumps(dict(arguments or {}))
        return ToolCall(id or f"call_{os.urandom(6).hex()}", name, text)

    @property
    def calls(self) -> list[ModelRequest]:
        """`requests` under ScriptedModel's name (`.messages`, `.tools`, `.response_format` read the same)."""
        return self.requests

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
        return await self._respond(messages, tools, tool_choice, response_format, stream=False)

    async def stream(
        self,
        messages: Iterable[Mapping[str, Any]],
        tools: Sequence[Tool | Mapping[str, Any]] | None = None,
        tool_choice: str | Mapping[str, Any] | None = None,
        response_format: Any = None,
        *,
        cache: CacheHint | None = None,
    ) -> AsyncIterator[StreamEvent]:
        """The same reply, streamed: the text word by word, then each tool call, then the whole response."""
        response = await self._respond(messages, tools, tool_choice, response_format, stream=True)
        for i, word in enumerate(response.text.split(" ") if response.text else []):
            yield TextDelta(word if i == 0 else " " + word)
        for index, call in enumerate(response.tool_calls):
            yield ToolCallDelta(index, call.id, call.name, call.arguments)
        yield ResponseComplete(response)

    async def _respond(
        self,
        messages: Iterable[Mapping[str, Any]],
        tools: Sequence[Tool | Mapping[str, Any]] | None,
        tool_choice: str | Mapping[str, Any] | None,
        response_format: Any,
        *,
        stream: bool,
    ) -> ModelResponse:
        sent = to_provider_messages(messages)
        schemas = [dict(t) if isinstance(t, Mapping) else t.schema() for t in tools or ()]
        info = AgentInfo(
            tools=schemas,
            tool_choice=tool_choice,
            response_format=response_format,
            output_schema=_output_schema(response_format),
            model_settings=dict(self.params),
            stream=stream,
        )
        self.requests.append(ModelRequest(sent, info))
        reply = self.fn(sent, info)
        if inspect.isawaitable(reply):
            reply = await reply
        response = self._as_response(reply)
        if response.usage == Usage():
            response = replace(response, usage=self._usage(sent, schemas, response))
        return response if response.model else replace(response, model=self.model)

    def _as_response(self, reply: Any) -> ModelResponse:
        if isinstance(reply, ModelResponse):
            return reply
        if isinstance(reply, str):
            return ModelResponse(reply, [], "stop", model=self.model)
        if isinstance(reply, pydantic.BaseModel):
            return ModelResponse(reply.model_dump_json(), [], "stop", model=self.model)
        if isinstance(reply, ToolCall):
            reply = [reply]
        if isinstance(reply, Sequence) and reply and all(isinstance(c, ToolCall) for c in reply):
            return ModelResponse("", list(reply), "tool_calls", model=self.model)
        raise InvalidTypeError(
            f"{self!r}: the function returned {type(reply).__name__}; return a str, a ToolCall or a "
            "non-empty list of them (FunctionModel.tool_call(name, args)), a pydantic model, or a ModelResponse"
        )

    def _usage(
        self, sent: list[dict[str, Any]], schemas: list[dict[str, Any]], response: ModelResponse
    ) -> Usage:
        counter = counter_for(self._count_model)
        prompt = counter.messages(sent) + sum(
            counter.text(json.dumps(schema, separators=(",", ":"))) for schema in schemas
        )
        completion = counter.text(response.text) + sum(
            counter.text(call.name) + counter.text(call.arguments) for call in response.tool_calls
        )
        return Usage(prompt, completion, prompt + completion, 0.0, requests=1)

    @property
    def context_window(self) -> int:
        return self._window

    @property
    def max_output_tokens(self) -> int:
        return self._max_output

    @property
    def supports_response_schema(self) -> bool:
        return self._native_output


def _output_schema(response_format: Any) -> dict[str, Any] | None:
    """The JSON schema a response_format asks for: a pydantic model's, or a json_schema dict's."""
    if response_format is None:
        return None
    if isinstance(response_format, type) and issubclass(response_format, pydantic.BaseModel):
        return response_format.model_json_schema()
    if isinstance(response_format, Mapping):
        if response_format.get("type") == "json_schema":
            schema = (response_format.get("json_schema") or {}).get("schema")
            return dict(schema) if isinstance(schema, Mapping) else {"type": "object"}
        if response_format.get("type") == "json_object":
            return {"type": "object"}
    return None


__all__ = ["AgentInfo", "FunctionModel", "ModelRequest", "Reply", "ReplyFunction"]
