"""Message validation rules and the history entry type (no database involved)."""

from __future__ import annotations

from typing import Any

import pytest

import agnt5
from agnt5.errors import MessageValidationError
from agnt5.messages import Message, ensure_json, ensure_metadata, validate_message


def call(call_id: str = "call_1", name: str = "lookup", arguments: str = '{"q": "x"}') -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


VALID: list[dict[str, Any]] = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "hello"},
    {"role": "user", "content": ""},
    {"role": "user", "content": "hello", "name": "alice"},
    {"role": "assistant", "content": "hi"},
    {"role": "assistant", "content": None, "tool_calls": [call()]},
    {"role": "assistant", "content": "let me look", "tool_calls": [call("a"), call("b", "other")]},
    {"role": "tool", "content": "result", "tool_call_id": "call_1"},
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "what is in this image?"},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
        ],
    },
    {"role": "user", "content": [{"type": "image_url", "image_url": "https://example.com/a.png"}]},
]


@pytest.mark.parametrize("message", VALID)
def test_valid_messages_are_accepted_and_normalised(message: dict[str, Any]) -> None:
    out = validate_message(message)
    assert out["role"] == message["role"]
    assert out["content"] == message["content"]
    for key in ("name", "tool_call_id"):
        assert out.get(key) == message.get(key)
    if "tool_calls" in message:
        assert [c["id"] for c in out["tool_calls"]] == [c["id"] for c in message["tool_calls"]]


def test_tool_call_type_defaults_to_function_and_arguments_to_empty_string() -> None:
    out = validate_message(
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c", "function": {"name": "f"}}]}
    )
    assert out["tool_calls"] == [{"id": "c", "type": "function", "function": {"name": "f", "arguments": ""}}]


INVALID: list[tuple[Any, str]] = [
    ("hello", "message"),
    (["role", "user"], "message"),
    ({"content": "no role"}, "role"),
    ({"role": "robot", "content": "x"}, "role"),
    ({"role": "developer", "content": "x"}, "role"),
    ({"role": None, "content": "x"}, "role"),
    ({"role": "user"}, "content"),
    ({"role": "user", "content": None}, "content"),
    ({"role": "assistant", "content": None}, "content"),
    ({"role": "assistant", "content": None, "tool_calls": []}, "content"),
    ({"role": "assistant", "content": "x", "tool_calls": []}, "tool_calls"),
    ({"role": "user", "content": 42}, "content"),
    ({"role": "user", "content": {"text": "hi"}}, "content"),
    ({"role": "user", "content": b"bytes"}, "content"),
    ({"role": "user", "content": ["plain string part"]}, "content[0]"),
    ({"role": "user", "content": [{"text": "no type"}]}, "content[0].type"),
    ({"role": "user", "content": [{"type": "text", "text": "ok"}, {"type": "text"}]}, "content[1].text"),
    ({"role": "user", "content": [{"type": "text", "text": 5}]}, "content[0].text"),
    ({"role": "user", "content": [{"type": "image_url", "image_url": {}}]}, "content[0].image_url"),
    ({"role": "user", "content": [{"type": "image_url"}]}, "content[0].image_url"),
    ({"role": "user", "content": [{"type": "custom", "blob": object()}]}, "content[0]"),
    ({"role": "user", "content": "x", "name": ""}, "name"),
    ({"role": "user", "content": "x", "name": 7}, "name"),
    ({"role": "user", "content": "x", "tool_calls": [call()]}, "tool_calls"),
    ({"role": "tool", "content": "x", "tool_calls": [call()], "tool_call_id": "c"}, "tool_calls"),
    ({"role": "assistant", "content": None, "tool_calls": "call it"}, "tool_calls"),
    ({"role": "assistant", "content": None, "tool_calls": {"id": "c"}}, "tool_calls"),
    ({"role": "assistant", "content": None, "tool_calls": ["call"]}, "tool_calls[0]"),
    ({"role": "assistant", "content": None, "tool_calls": [{"function": {"name": "f"}}]}, "tool_calls[0].id"),
    ({"role": "assistant", "content": None, "tool_calls": [call(""), call()]}, "tool_calls[0].id"),
    (
        {"role": "assistant", "content": None, "tool_calls": [call("a"), call("b"), call("a")]},
        "tool_calls[2].id",
    ),
    (
        {"role": "assistant", "content": None, "tool_calls": [{**call(), "type": "code"}]},
        "tool_calls[0].type",
    ),
    ({"role": "assistant", "content": None, "tool_calls": [{"id": "c"}]}, "tool_calls[0].function"),
    (
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c", "function": {"arguments": "{}"}}]},
        "tool_calls[0].function.name",
    ),
    (
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": {"q": 1}}}],
        },
        "tool_calls[0].function.arguments",
    ),
    (
        {"role": "assistant", "content": None, "tool_calls": [{**call(), "index": 0}]},
        "tool_calls[0].index",
    ),
    ({"role": "tool", "content": "x"}, "tool_call_id"),
    ({"role": "tool", "content": "x", "tool_call_id": ""}, "tool_call_id"),
    ({"role": "tool", "content": "x", "tool_call_id": 3}, "tool_call_id"),
    ({"role": "user", "content": "x", "tool_call_id": "c"}, "tool_call_id"),
    ({"role": "user", "content": "x", "metadata": {"a": 1}}, "metadata"),
    ({"role": "user", "content": "x", "timestamp": "2024-01-01"}, "timestamp"),
    ({"role": "user", "content": "x", "zzz": 1, "aaa": 2}, "aaa"),
]


@pytest.mark.parametrize(("message", "field"), INVALID)
def test_invalid_messages_raise_naming_the_field(message: Any, field: str) -> None:
    with pytest.raises(MessageValidationError) as info:
        validate_message(message)
    assert isinstance(info.value, ValueError)
    assert info.value.field == field
    assert field in str(info.value)


def test_ensure_json_names_where_and_type() -> None:
    ensure_json({"a": [1, 2.5, None, True, "s", (1, 2)], "b": {"c": {}}}, "x")
    with pytest.raises(TypeError, match=r"my_key.*set"):
        ensure_json({1, 2}, "my_key")
    with pytest.raises(TypeError, match=r"outer\['inner'\]\[1\].*bytes"):
        ensure_json({"inner": [1, b"x"]}, "outer")
    with pytest.raises(TypeError, match="NaN"):
        ensure_json(float("nan"), "v")
    with pytest.raises(TypeError, match="keys must be strings"):
        ensure_json({1: "a"}, "v")


def test_ensure_metadata() -> None:
    assert ensure_metadata(None) == {}
    assert ensure_metadata({"a": 1}) == {"a": 1}
    with pytest.raises(MessageValidationError) as info:
        ensure_metadata(["not", "a", "dict"])
    assert info.value.field == "metadata"
    with pytest.raises(MessageValidationError) as info:
        ensure_metadata({"when": object()})
    assert info.value.field == "metadata"


def test_message_entry_is_a_dict_with_attributes() -> None:
    m = Message(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [call()],
            "id": "msg_1",
            "timestamp": "2024-05-01T12:00:00+00:00",
            "metadata": {"agent": "a"},
        },
        seq=4,
        tokens=17,
    )
    assert isinstance(m, dict)
    assert m["role"] == "assistant" and m.role == "assistant"
    assert m.get("tool_calls") == [call()]
    assert m.get("name") is None
    assert (m.id, m.seq, m.tokens, m.pruned) == ("msg_1", 4, 17, False)
    assert m.metadata == {"agent": "a"}
    assert m.timestamp.year == 2024 and m.timestamp.utcoffset() is not None
    assert m.to_provider() == {"role": "assistant", "content": None, "tool_calls": [call()]}


def test_to_provider_messages_strips_agnt5_fields_and_tombstones() -> None:
    live = Message(
        {"role": "user", "content": "hi", "name": "bob", "id": "1", "timestamp": "t", "metadata": {}},
        seq=1,
        tokens=1,
    )
    pruned = Message(
        {"role": "user", "id": "2", "timestamp": "t", "metadata": {}}, seq=2, tokens=1, pruned=True
    )
    plain = {"role": "assistant", "content": "yo", "id": "x", "tool_calls": None}
    out = agnt5.to_provider_messages([live, pruned, plain])
    assert out == [{"role": "user", "content": "hi", "name": "bob"}, {"role": "assistant", "content": "yo"}]
    assert all(type(m) is dict for m in out)
