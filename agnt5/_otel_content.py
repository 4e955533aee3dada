"""What agnt5's spans say about content and failures: GenAI message JSON, error types, secret scrubbing.

Messages follow the input/output message JSON schemas of the OpenTelemetry GenAI semantic
conventions (v1.41.0): `{"role", "parts": [{"type": "text" | "tool_call" | "tool_call_response" |
"uri" | "blob", ...}], "name"?, "finish_reason"?}`, serialised to a JSON string because OpenTelemetry
Python span attributes hold only primitives. Kept apart from `agnt5.tracing` so that module stays
about spans and metrics.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant", "tool": "tool"}
_FINISH = {"tool_calls": "tool_call", "function_call": "tool_call", "max_tokens": "length"}
_DATA_URL = re.compile(r"^data:([\w.+-]+/[\w.+-]+);base64,(.*)$", re.DOTALL)
_TOOL_FAILED = re.compile(r"^Error: tool '.*?' failed: ([A-Za-z_][\w.]*):")
_MIN_SECRET = 8
"""Shorter values are not scrubbed (they would blank out ordinary words)."""


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _arguments(raw: Any) -> Any:
    """Tool-call arguments as an object when they are JSON text (the conventions expect an object)."""
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    return raw


def _content_parts(content: Any) -> list[dict[str, Any]]:
    if content is None or content == "":
        return []
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    if not isinstance(content, Sequence):
        return [{"type": "text", "content": str(content)}]
    parts: list[dict[str, Any]] = []
    for part in content:
        if not isinstance(part, Mapping):
            parts.append({"type": "text", "content": str(part)})
        elif part.get("type") == "text":
            parts.append({"type": "text", "content": str(part.get("text", ""))})
        elif part.get("type") == "image_url":
            image = part.get("image_url")
            url = str(image.get("url", "") if isinstance(image, Mapping) else image or "")
            inline = _DATA_URL.match(url)
            if inline:
                mime, data = inline.groups()
                parts.append({"type": "blob", "modality": "image", "mime_type": mime, "content": data})
            else:
                parts.append({"type": "uri", "modality": "image", "uri": url})
        else:
            parts.append(dict(part))  # a GenericPart: any type, its own properties
    return parts


def message_parts(message: Mapping[str, Any]) -> dict[str, Any]:
    """One provider-format (OpenAI) message in the conventions' ChatMessage form."""
    role = str(message.get("role", ""))
    if role == "tool":
        parts: list[dict[str, Any]] = [
            {
                "type": "tool_call_response",
                "id": message.get("tool_call_id"),
                "response": message.get("content"),
            }
        ]
    else:
        parts = _content_parts(message.get("content"))
        for call in message.get("tool_calls") or ():
            function = call.get("function") or {}
            parts.append(
                {
                    "type": "tool_call",
                    "id": call.get("id"),
                    "name": function.get("name"),
                    "arguments": _arguments(function.get("arguments")),
                }
            )
    out: dict[str, Any] = {"role": _ROLES.get(role, role), "parts": parts}
    if message.get("name"):
        out["name"] = message["name"]
    return out


def input_messages(messages: Iterable[Mapping[str, Any]]) -> str:
    """`gen_ai.input.messages`: the request's messages, in order, as a JSON string."""
    return _json([message_parts(m) for m in messages])


def output_messages(text: str, tool_calls: Iterable[Any], finish_reason: str | None) -> str:
    """`gen_ai.output.messages`: the one choice agnt5 reads, as a JSON string."""
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    calls = [
        {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
        for c in tool_calls
    ]
    if calls:
        message["tool_calls"] = calls
    out = message_parts(message)
    out["finish_reason"] = finish_reason_of(finish_reason)
    return _json([out])


def finish_reason_of(reason: str | None) -> str:
    """A provider's finish reason in the conventions' terms (stop, length, tool_call, ...)."""
    if not reason:
        return "error"
    return _FINISH.get(reason, reason)


def tool_definitions(tools: Iterable[Mapping[str, Any]]) -> str:
    """`gen_ai.tool.definitions` with only the required properties (type and name): schemas are large."""
    out = []
    for tool in tools:
        function = tool.get("function")
        named = function if isinstance(function, Mapping) else tool
        out.append({"type": str(tool.get("type", "function")), "name": str(named.get("name", ""))})
    return _json(out)


def json_value(value: Any) -> str:
    """A tool's arguments or result as the JSON string the conventions record on spans."""
    return value if isinstance(value, str) else _json(value)


def error_type(exc: BaseException) -> str:
    """`error.type` of a failed operation: the exception's class name (agnt5's errors are documented)."""
    return type(exc).__qualname__


def tool_error_type(content: str) -> str:
    """`error.type` of a tool call that came back as an error result (the exception was handled)."""
    failed = _TOOL_FAILED.match(content)
    if failed:
        return failed.group(1)
    if content.startswith("Error: invalid arguments"):
        return "invalid_arguments"
    if content.startswith("Error: unknown tool"):
        return "unknown_tool"
    return "tool_error"


def secrets(*given: Any) -> list[str]:
    """Values that must never reach telemetry: the keys given to a model and the *_API_KEY variables."""
    found = [v for v in given if isinstance(v, str) and len(v) >= _MIN_SECRET]
    found += [
        v
        for k, v in os.environ.items()
        if (k.endswith("_API_KEY") or k.endswith("_TOKEN")) and len(v) >= _MIN_SECRET
    ]
    return sorted(set(found), key=len, reverse=True)


def scrub(text: str, hidden: Sequence[str], limit: int = 1000) -> str:
    """`text` with every secret in `hidden` replaced by '***', cut to `limit` characters."""
    for secret in hidden:
        if secret in text:
            text = text.replace(secret, "***")
    return text if len(text) <= limit else text[:limit] + "..."


__all__ = [
    "error_type",
    "finish_reason_of",
    "input_messages",
    "json_value",
    "message_parts",
    "output_messages",
    "scrub",
    "secrets",
    "tool_definitions",
    "tool_error_type",
]
