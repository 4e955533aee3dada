"""TestModel: calls every tool once with arguments made from its schema, then sums up the results.

A tool-wiring test needs no script: a request calls each offered tool not yet called since the
newest user message (handoffs and the output tool left out); once all were called it answers with
this turn's `{"tool": result, ...}` as JSON text, or with a valid instance of the output schema when
the agent has an `output_type` (as text, or through the `final_result` tool when that is offered).
Generated values are deterministic: required fields only, strings "a", numbers 0, False, the
first enum value, one item per array, bounds and formats (date, email, uuid...) respected.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from agnt5.errors import InvalidInputError
from agnt5.models import ToolCall
from agnt5.testing.function_model import AgentInfo, FunctionModel, Reply

OUTPUT_TOOL = "final_result"
"""The Agent's output tool when the model has no native JSON-schema output (agnt5.agent.FINAL_RESULT_TOOL)."""
HANDOFF_PREFIX = "transfer_to_"
NO_TOOL_CALLS_TEXT = "success (no tool calls)"
MAX_DEPTH = 24


class TestModel(FunctionModel):
    """A model for tool-wiring tests:

        model = TestModel()
        result = await Agent("a", model=model, tools=[lookup, notify]).run("go")
        assert json.loads(result.output) == {"lookup": ..., "notify": ...}

    `call_tools`: "all" offered tools (not `transfer_to_*` handoffs nor the output tool), or the
    names to call (a handoff may be named). `custom_output_text` replaces the JSON summary.
    `seed` varies the generated values (0: "a", 0, False, first enum value).
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        *,
        call_tools: Literal["all"] | Sequence[str] = "all",
        custom_output_text: str | None = None,
        seed: int = 0,
        model: str = "test-model",
        supports_response_schema: bool = True,
        **kwargs: Any,
    ) -> None:
        if call_tools != "all" and (isinstance(call_tools, str) or not isinstance(call_tools, Sequence)):
            raise InvalidInputError(f"call_tools is 'all' or a list of tool names, got {call_tools!r}")
        super().__init__(
            self._reply, model=model, supports_response_schema=supports_response_schema, **kwargs
        )
        self.call_tools = call_tools
        self.custom_output_text = custom_output_text
        self.seed = seed

    def _reply(self, messages: list[dict[str, Any]], info: AgentInfo) -> Reply:
        turn = _since_user(messages)
        called = {c["function"]["name"] for m in turn for c in m.get("tool_calls") or ()}
        to_call = [name for name in self._to_call(info) if name not in called]
        if to_call:
            return [
                ToolCall(f"call_{len(self.requests)}_{i}", name, json.dumps(self._arguments(info, name)))
                for i, name in enumerate(to_call)
            ]
        if info.output_schema is not None:
            return json.dumps(generate(info.output_schema, self.seed))
        if info.tool(OUTPUT_TOOL) is not None:
            args = self._arguments(info, OUTPUT_TOOL)
            return ToolCall(f"call_{len(self.requests)}_output", OUTPUT_TOOL, json.dumps(args))
        if self.custom_output_text is not None:
            return self.custom_output_text
        return _summary(turn) if called else NO_TOOL_CALLS_TEXT

    def _to_call(self, info: AgentInfo) -> list[str]:
        if self.call_tools == "all":
            return [n for n in info.tool_names if n != OUTPUT_TOOL and not n.startswith(HANDOFF_PREFIX)]
        return [n for n in info.tool_names if n in self.call_tools]

    def _arguments(self, info: AgentInfo, name: str) -> Any:
        function = info.tool(name) or {}
        return generate(function.get("parameters") or {"type": "object"}, self.seed)


def _since_user(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages after the newest user message (this turn's calls and results)."""
    for i in range(len(messages) - 1, -1, -1):
        if messages[i].get("role") == "user":
            return messages[i + 1 :]
    return messages


def _summary(turn: list[dict[str, Any]]) -> str:
    """This turn's tool results as JSON {tool name: result} (a result that is JSON is embedded as such)."""
    names = {c["id"]: c["function"]["name"] for m in turn for c in m.get("tool_calls") or ()}
    out: dict[str, Any] = {}
    for message in turn:
        if message.get("role") != "tool":
            continue
        call_id = message.get("tool_call_id")
        content = message.get("content")
        try:
            value = json.loads(content) if isinstance(content, str) else content
        except ValueError:
            value = content
        out[names.get(call_id, str(call_id))] = value
    return json.dumps(out, ensure_ascii=False)


# --- values from JSON schemas ---------------------------------------------------------------------

_FORMATS = {
    "date-time": "2024-01-01T00:00:00Z",
    "date": "2024-01-01",
    "time": "00:00:00",
    "duration": "P1D",
    "email": "a@example.com",
    "idn-email": "a@example.com",
    "uri": "https://example.com/",
    "url": "https://example.com/",
    "iri": "https://example.com/",
    "hostname": "example.com",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "ipv4": "127.0.0.1",
    "ipv6": "::1",
    "ipvanyaddress": "127.0.0.1",
}


def generate(schema: Mapping[str, Any], seed: int = 0) -> Any:
    """A value valid against a JSON schema (pydantic's output: $defs, anyOf, enums, bounds, formats).

    Patterns are not honoured. Raises InvalidInputError for a schema that only recurses forever.
    """
    return _Generator(schema, seed).value(schema, 0, 0)


class _Generator:
    def __init__(self, root: Mapping[str, Any], seed: int) -> None:
        self.root = root
        self.seed = seed
        self.active: list[str] = []  # the $refs being generated, outermost first

    def value(self, schema: Mapping[str, Any], index: int, depth: int) -> Any:
        """`index` is the position in an array, so items differ (uniqueItems, sets)."""
        if depth > MAX_DEPTH:
            raise InvalidInputError(
                f"cannot generate a value: the schema nests deeper than {MAX_DEPTH} levels "
                "(a required field that refers to itself?)"
            )
        ref = schema.get("$ref")
        if isinstance(ref, str):
            self.active.append(ref)
            try:
                return self.value(self._resolve(schema), index, depth + 1)
            finally:
                self.active.pop()
        if "const" in schema:
            return schema["const"]
        if schema.get("enum"):
            options = schema["enum"]
            return options[(self.seed + index) % len(options)]
        for key in ("anyOf", "oneOf"):
            if schema.get(key):
                # Not null when there is a choice, nor a model being built already (recursion ends).
                options = [
                    o
                    for o in schema[key]
                    if self._resolve(o).get("type") != "null" and not self._recursive(o)
                ]
                options = options or [o for o in schema[key] if self._resolve(o).get("type") == "null"]
                options = options or schema[key]
                return self.value(options[self.seed % len(options)], index, depth + 1)
        if schema.get("allOf"):
            merged: dict[str, Any] = {}
            for part in schema["allOf"]:
                merged.update(self._resolve(part))
            return self.value(merged, index, depth + 1)
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if kind is None:
            kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
        if kind == "object":
            return self._object(schema, depth)
        if kind == "array":
            return self._array(schema, depth)
        if kind == "string":
            return self._string(schema, index)
        if kind in ("integer", "number"):
            return self._number(schema, index, integer=kind == "integer")
        if kind == "boolean":
            return (self.seed + index) % 2 == 1
        return None

    def _recursive(self, schema: Mapping[str, Any]) -> bool:
        return schema.get("$ref") in self.active

    def _resolve(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        seen = 0
        while "$ref" in schema:
            ref = str(schema["$ref"])
            if not ref.startswith("#/") or seen > MAX_DEPTH:
                raise InvalidInputError(f"cannot generate a value: unsupported $ref {ref!r}")
            target: Any = self.root
            for part in ref[2:].split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
            seen += 1
        return schema

    def _object(self, schema: Mapping[str, Any], depth: int) -> dict[str, Any]:
        properties: Mapping[str, Any] = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        out: dict[str, Any] = {}
        for key in schema.get("required") or ():
            sub = properties.get(key, extra if isinstance(extra, Mapping) else {})
            out[key] = self.value(sub, 0, depth + 1)
        return out

    def _array(self, schema: Mapping[str, Any], depth: int) -> list[Any]:
        prefix = schema.get("prefixItems")
        if prefix:
            return [self.value(item, i, depth + 1) for i, item in enumerate(prefix)]
        items = schema.get("items")
        if not isinstance(items, Mapping):
            items = {}
        minimum = int(schema.get("minItems", 0))
        count = minimum if self._recursive(items) else max(1, minimum)
        if "maxItems" in schema:
            count = min(count, int(schema["maxItems"]))
        return [self.value(items, i, depth + 1) for i in range(count)]

    def _string(self, schema: Mapping[str, Any], index: int) -> str:
        if schema.get("format") in _FORMATS:
            return _FORMATS[schema["format"]]
        letter = chr(ord("a") + (self.seed + index) % 26)
        text = letter * max(1, int(schema.get("minLength", 0)))
        if "maxLength" in schema:
            text = text[: int(schema["maxLength"])]
        return text

    def _number(self, schema: Mapping[str, Any], index: int, *, integer: bool) -> int | float:
        step = 1 if integer else 0.5
        value: float = self.seed + index
        if "minimum" in schema:
            value = max(value, schema["minimum"])
        if "exclusiveMinimum" in schema:
            value = max(value, schema["exclusiveMinimum"] + step)
        if "maximum" in schema:
            value = min(value, schema["maximum"])
        if "exclusiveMaximum" in schema:
            value = min(value, schema["exclusiveMaximum"] - step)
        multiple = schema.get("multipleOf")
        if multiple:
            value = -(-value // multiple) * multiple
            if "maximum" in schema and value > schema["maximum"]:
                value -= multiple
        if integer:
            return int(-(-value // 1))
        return float(value)


__all__ = ["NO_TOOL_CALLS_TEXT", "OUTPUT_TOOL", "TestModel", "generate"]
