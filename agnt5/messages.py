"""Chat messages: validation of what goes into a session, and the entries history gives back.

Messages use the OpenAI chat format that litellm accepts for every provider: `role`, `content`,
and `name`, `tool_calls`, `tool_call_id` where they apply.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from agnt5.errors import InputTooLargeError, InvalidInputError, InvalidTypeError, MessageValidationError
from agnt5.values import ensure_json, json_size, max_message_bytes, raise_too_large, text_bytes

ROLES = ("system", "user", "assistant", "tool")
PROVIDER_KEYS = ("role", "content", "name", "tool_calls", "tool_call_id")
_PROVIDER_KEY_SET = frozenset(PROVIDER_KEYS)


class Message(dict[str, Any]):
    """A history entry: the provider-format fields plus `id`, `timestamp` (ISO 8601, UTC) and `metadata`.

    It is a dict (`m["role"]`, `m.get("tool_calls")`); `seq`, `tokens` and `pruned` are attributes.
    Pass a history through `to_provider_messages` before sending it to a model.
    """

    __slots__ = ("pruned", "seq", "tokens")

    def __init__(self, fields: Mapping[str, Any], *, seq: int, tokens: int, pruned: bool = False) -> None:
        super().__init__(fields)
        self.seq = seq
        self.tokens = tokens
        self.pruned = pruned

    @property
    def id(self) -> str:
        return str(self["id"])

    @property
    def role(self) -> str:
        return str(self["role"])

    @property
    def metadata(self) -> dict[str, Any]:
        value: dict[str, Any] = self["metadata"]
        return value

    @property
    def timestamp(self) -> datetime:
        return datetime.fromisoformat(self["timestamp"])

    def to_provider(self) -> dict[str, Any]:
        """This message as the plain provider-format dict litellm accepts."""
        return {k: self[k] for k in PROVIDER_KEYS if k in self and (k == "content" or self[k] is not None)}

    def __repr__(self) -> str:
        return f"Message(seq={self.seq}, {dict.__repr__(self)})"


def to_provider_messages(messages: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Turn a session history (or any dict-like messages) into the plain list litellm accepts.

    Keeps only provider keys (drops agnt5's id, timestamp, metadata), drops tombstones of pruned
    messages and empty `tool_calls`, and normalises each tool call to its wire shape. Anything but
    a list (or other iterable) of message dicts raises InvalidTypeError.
    """
    if isinstance(messages, str | bytes | Mapping) or not isinstance(messages, Iterable):
        raise InvalidTypeError(
            f"messages must be a list of message dicts, got {type(messages).__name__}"
            + ("; wrap a single message in a list" if isinstance(messages, Mapping) else ""),
            field="messages",
        )
    out: list[dict[str, Any]] = []
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping):
            raise InvalidTypeError(
                f"messages[{i}] must be a message dict (role, content, ...), got {type(m).__name__}",
                field=f"messages[{i}]",
            )
        if isinstance(m, Message) and m.pruned:
            continue
        clean = {k: m[k] for k in PROVIDER_KEYS if k in m and (k == "content" or m[k] is not None)}
        if "tool_calls" in clean:
            calls = clean["tool_calls"]
            if not calls:
                del clean["tool_calls"]
            elif isinstance(calls, str | bytes | Mapping) or not isinstance(calls, Iterable):
                raise InvalidTypeError(
                    f"messages[{i}].tool_calls must be a list of tool calls, got {type(calls).__name__}",
                    field=f"messages[{i}].tool_calls",
                )
            else:
                try:
                    clean["tool_calls"] = [_wire_tool_call(call) for call in calls]
                except (AttributeError, TypeError) as exc:
                    raise InvalidTypeError(
                        f"messages[{i}].tool_calls: each tool call must be a dict "
                        f'{{"id", "type", "function": {{"name", "arguments"}}}} ({exc})',
                        field=f"messages[{i}].tool_calls",
                    ) from exc
        out.append(clean)
    return out


def _wire_tool_call(call: Any) -> dict[str, Any]:
    if not isinstance(call, Mapping):  # a ToolCall record
        return dict(call.to_dict())
    function = call.get("function") or {}
    return {
        "id": call.get("id"),
        "type": call.get("type") or "function",
        "function": {"name": function.get("name"), "arguments": function.get("arguments") or ""},
    }


def stored_message(fields: Mapping[str, Any], seq: int, tokens: int, pruned: bool = False) -> Message:
    """`Message(fields, seq=..., tokens=...)` without the keyword-call overhead (stores build many)."""
    m = _new_message(Message)
    _dict_update(m, fields)
    m.seq = seq
    m.tokens = tokens
    m.pruned = pruned
    return m


_new_message = Message.__new__
_dict_update = dict.update
_iso_second: tuple[float, str] = (math.nan, "")  # the last whole second formatted, and its text


def iso(ts: float) -> str:
    """`ts` (epoch seconds) as ISO 8601 UTC with microseconds, e.g. 2026-11-25T14:26:00.123456+00:00.

    Always six fraction digits (the strings sort as the times do); the date part is formatted
    once per second, since a store stamps every message it appends.
    """
    frac, whole = math.modf(ts)
    micro = round(frac * 1_000_000)
    if micro < 0:
        whole, micro = whole - 1, micro + 1_000_000
    elif micro >= 1_000_000:
        whole, micro = whole + 1, micro - 1_000_000
    global _iso_second
    second = _iso_second  # one read: other threads may replace it meanwhile
    if second[0] != whole:
        second = _iso_second = (whole, datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S"))
    return f"{second[1]}.{micro:06d}+00:00"


# --- validation ----------------------------------------------------------------------------------


def validate_message(message: Any) -> dict[str, Any]:
    """Check a message and return its normalised provider-format dict; raise MessageValidationError.

    Rules: `role` is system/user/assistant/tool; `content` is a string, a list of parts or None
    (None only for an assistant message that has tool calls); `tool_calls` only on assistant
    messages, each `{"id", "type": "function", "function": {"name", "arguments": str}}` with
    unique ids; a tool message needs `tool_call_id`; `name` is a non-empty string; no other keys.
    """
    if not isinstance(message, Mapping):
        raise MessageValidationError("message", f"expected a dict, got {type(message).__name__}")
    if not _PROVIDER_KEY_SET.issuperset(message):
        unknown = sorted(str(k) for k in message if k not in PROVIDER_KEYS)
        raise MessageValidationError(
            unknown[0],
            f"unknown key; a message may only have {', '.join(PROVIDER_KEYS)} "
            "(pass per-message data as send_message(..., metadata={...}))",
        )
    role = message.get("role")
    if role not in ROLES:
        raise MessageValidationError("role", f"must be one of {', '.join(ROLES)}, got {role!r}")
    out: dict[str, Any] = {"role": role}
    size = 0

    content = message.get("content")
    tool_calls = message.get("tool_calls")
    if content is None:
        if role != "assistant" or not tool_calls:
            raise MessageValidationError(
                "content", "is required (None is allowed only for an assistant message with tool_calls)"
            )
    elif isinstance(content, str):
        size = _text(content, "content")
    elif isinstance(content, list):
        size = _validate_parts(content)
    else:
        raise MessageValidationError(
            "content", f"must be a string, a list of content parts or None, got {type(content).__name__}"
        )
    out["content"] = content

    if "name" in message and message["name"] is not None:
        name = message["name"]
        if not isinstance(name, str) or not name:
            raise MessageValidationError("name", "must be a non-empty string")
        size += _text(name, "name")
        out["name"] = name

    if tool_calls is not None:
        if role != "assistant":
            raise MessageValidationError("tool_calls", f"only assistant messages have tool_calls, not {role}")
        out["tool_calls"] = _validate_tool_calls(tool_calls)
        size += sum(
            _text(c["function"]["arguments"], "tool_calls.function.arguments") for c in out["tool_calls"]
        )

    tool_call_id = message.get("tool_call_id")
    if role == "tool":
        if not isinstance(tool_call_id, str) or not tool_call_id:
            raise MessageValidationError(
                "tool_call_id", "a tool message needs the id of the tool call it answers (non-empty string)"
            )
        _text(tool_call_id, "tool_call_id")
        out["tool_call_id"] = tool_call_id
    elif tool_call_id is not None:
        raise MessageValidationError("tool_call_id", f"only tool messages have tool_call_id, not {role}")
    limit = max_message_bytes()
    if size > limit:
        raise_too_large("message", size, limit, "max_message_bytes", "AGNT5_MAX_MESSAGE_BYTES")
    return out


def _text(value: str, field: str) -> int:
    try:
        return text_bytes(value, field)
    except InvalidInputError as exc:
        raise MessageValidationError(field, str(exc).split(": ", 1)[-1]) from None


def _validate_parts(parts: list[Any]) -> int:
    size = 0
    for i, part in enumerate(parts):
        where = f"content[{i}]"
        if not isinstance(part, Mapping):
            raise MessageValidationError(where, f"a content part must be a dict, got {type(part).__name__}")
        kind = part.get("type")
        if not isinstance(kind, str) or not kind:
            raise MessageValidationError(f"{where}.type", "a content part needs a string 'type'")
        if kind == "text" and not isinstance(part.get("text"), str):
            raise MessageValidationError(f"{where}.text", "a text part needs a string 'text'")
        if kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, Mapping) else image
            if not isinstance(url, str) or not url:
                raise MessageValidationError(f"{where}.image_url", "an image_url part needs a url")
        try:
            size += json_size(part, where)
        except InvalidInputError as exc:
            raise MessageValidationError(where, str(exc)) from exc
    return size


def _validate_tool_calls(tool_calls: Any) -> list[dict[str, Any]]:
    if not isinstance(tool_calls, list) or not tool_calls:
        raise MessageValidationError(
            "tool_calls", "must be a non-empty list (omit it when there are no calls)"
        )
    seen: set[str] = set()
    out = []
    for i, call in enumerate(tool_calls):
        where = f"tool_calls[{i}]"
        if not isinstance(call, Mapping):
            raise MessageValidationError(where, f"must be a dict, got {type(call).__name__}")
        call_id = call.get("id")
        if not isinstance(call_id, str) or not call_id:
            raise MessageValidationError(f"{where}.id", "must be a non-empty string")
        _text(call_id, f"{where}.id")
        if call_id in seen:
            raise MessageValidationError(f"{where}.id", f"duplicate tool call id {call_id!r}")
        seen.add(call_id)
        kind = call.get("type", "function")
        if kind != "function":
            raise MessageValidationError(f"{where}.type", f"must be 'function', got {kind!r}")
        function = call.get("function")
        if not isinstance(function, Mapping):
            raise MessageValidationError(f"{where}.function", "must be a dict with name and arguments")
        name = function.get("name")
        if not isinstance(name, str) or not name:
            raise MessageValidationError(f"{where}.function.name", "must be a non-empty string")
        _text(name, f"{where}.function.name")
        arguments = function.get("arguments", "")
        if not isinstance(arguments, str):
            raise MessageValidationError(
                f"{where}.function.arguments", "must be a JSON string (use json.dumps on a dict)"
            )
        extra = sorted(set(call) - {"id", "type", "function"})
        if extra:
            raise MessageValidationError(f"{where}.{extra[0]}", "unknown key in a tool call")
        out.append({"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}})
    return out


def ensure_metadata(metadata: Any, where: str = "metadata") -> dict[str, Any]:
    """A metadata argument: None or a JSON-serialisable dict with string keys, within the message limit."""
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise MessageValidationError(where, f"must be a dict, got {type(metadata).__name__}")
    if not metadata:
        return {}
    try:
        ensure_json(metadata, where, limit=max_message_bytes())
    except InputTooLargeError:
        raise
    except InvalidInputError as exc:
        raise MessageValidationError(where, str(exc)) from exc
    return dict(metadata)
