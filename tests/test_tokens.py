"""Token counting: tiktoken offline, equal to litellm.token_counter for OpenAI chat models."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agnt5 import Session, count_tokens
from agnt5.store.sqlite import SqliteStore
from agnt5.tokens import (
    count_message_tokens,
    count_text_tokens,
    counter_for,
    encoding_name_for_model,
    get_encoding,
)

OPENAI_MODELS = ["gpt-4o-mini", "gpt-4o", "gpt-4.1", "gpt-4", "gpt-3.5-turbo"]


@pytest.fixture(scope="module")
def litellm_counter() -> Any:
    import litellm

    return litellm.token_counter


texts = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"]),  # surrogates cannot be encoded
    max_size=200,
)
names = st.from_regex(r"[A-Za-z0-9_-]{1,20}", fullmatch=True)
arguments = st.dictionaries(
    st.text(max_size=10), st.one_of(st.integers(), st.text(max_size=20)), max_size=4
).map(json.dumps)


@st.composite
def messages(draw: st.DrawFn) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(
            st.sampled_from(["system", "user", "user_named", "user_parts", "assistant", "tool_calls"])
        )
        if kind == "system":
            out.append({"role": "system", "content": draw(texts)})
        elif kind == "user":
            out.append({"role": "user", "content": draw(texts)})
        elif kind == "user_named":
            out.append({"role": "user", "content": draw(texts), "name": draw(names)})
        elif kind == "user_parts":
            parts = [{"type": "text", "text": draw(texts)} for _ in range(draw(st.integers(1, 3)))]
            out.append({"role": "user", "content": parts})
        elif kind == "assistant":
            out.append({"role": "assistant", "content": draw(texts)})
        else:
            calls = [
                {
                    "id": f"call_{i}",
                    "type": "function",
                    "function": {"name": draw(names), "arguments": draw(arguments)},
                }
                for i in range(draw(st.integers(1, 3)))
            ]
            out.append({"role": "assistant", "content": None, "tool_calls": calls})
            for call in calls:
                out.append({"role": "tool", "tool_call_id": call["id"], "content": draw(texts)})
    return out


@pytest.mark.parametrize("model", OPENAI_MODELS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(conversation=messages())
def test_count_equals_litellm_token_counter(
    litellm_counter: Any, model: str, conversation: list[dict[str, Any]]
) -> None:
    assert count_tokens(conversation, model) == litellm_counter(model=model, messages=conversation)


FIXED: list[list[dict[str, Any]]] = [
    [{"role": "user", "content": "Hello, world!"}],
    [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "hi", "name": "bob"}],
    [
        {
            "role": "user",
            "content": [{"type": "text", "text": "part one"}, {"type": "text", "text": "part two"}],
        }
    ],
    [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
                },
                {"id": "c2", "type": "function", "function": {"name": "time", "arguments": "{}"}},
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sunny, 21°C"},
        {"role": "tool", "tool_call_id": "c2", "content": "12:00"},
    ],
    [{"role": "user", "content": "こんにちは世界 🙂 naïve résumé " * 20}],
    [{"role": "user", "content": "text with <|endoftext|> and <|im_start|> special markers"}],
    [{"role": "user", "content": ""}],
]


@pytest.mark.parametrize("model", OPENAI_MODELS)
@pytest.mark.parametrize("conversation", FIXED)
def test_fixed_conversations_equal_litellm(
    litellm_counter: Any, model: str, conversation: list[dict[str, Any]]
) -> None:
    assert count_tokens(conversation, model) == litellm_counter(model=model, messages=conversation)


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4o", "o200k_base"),
        ("gpt-4o-mini", "o200k_base"),
        ("gpt-4o-2024-08-06", "o200k_base"),
        ("chatgpt-4o-latest", "o200k_base"),
        ("gpt-4.1", "o200k_base"),
        ("gpt-4.1-nano", "o200k_base"),
        ("gpt-5", "o200k_base"),
        ("gpt-5-mini", "o200k_base"),
        ("o1", "o200k_base"),
        ("o1-mini", "o200k_base"),
        ("o3-mini", "o200k_base"),
        ("o4-mini", "o200k_base"),
        ("openai/gpt-4o", "o200k_base"),
        ("azure/gpt-4.1", "o200k_base"),
        ("ft:gpt-4o-mini:org::abc", "o200k_base"),
        ("GPT-4O", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-4-turbo", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
        ("openai/gpt-4", "cl100k_base"),
        ("claude-3-5-sonnet-20241022", "cl100k_base"),
        ("anthropic/claude-sonnet-4", "cl100k_base"),
        ("gemini/gemini-2.0-flash", "cl100k_base"),
    ],
)
def test_encoding_choice(model: str, encoding: str) -> None:
    assert encoding_name_for_model(model) == encoding
    assert counter_for(model).encoding_name == encoding


def test_the_chosen_encoding_is_actually_used() -> None:
    text = "こんにちは世界、元気ですか 🙂 Привет мир"
    o200k = len(get_encoding("o200k_base").encode(text))
    cl100k = len(get_encoding("cl100k_base").encode(text))
    assert o200k != cl100k
    assert count_text_tokens(text, "gpt-4o") == o200k
    assert count_text_tokens(text, "gpt-4") == cl100k
    message = {"role": "user", "content": text}
    assert count_message_tokens(message, "gpt-4o") - count_message_tokens(message, "gpt-4") == o200k - cl100k


def test_overheads() -> None:
    one = {"role": "user", "content": "hi"}
    # 3 framing + role + content per message, 3 for the reply primer.
    assert count_tokens([one], "gpt-4o") == 3 + 1 + 1 + 3
    assert count_message_tokens(one, "gpt-4o") == 3 + 1 + 1
    named = {"role": "user", "content": "hi", "name": "bob"}
    assert count_message_tokens(named, "gpt-4o") == count_message_tokens(one, "gpt-4o") + 1 + 1
    assert count_tokens([], "gpt-4o") == 3
    image = {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}
    assert count_message_tokens(image, "gpt-4o") == 3 + 1 + 85


def test_works_offline_from_litellms_copy_of_the_encodings(tmp_path: Path) -> None:
    script = """
import os, socket, json
def refuse(*a, **k):
    raise OSError("network disabled in this test")
socket.socket.connect = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse
from agnt5.tokens import count_text_tokens
counts = [count_text_tokens("offline tokens", m) for m in ("gpt-4o", "gpt-4")]
print(json.dumps({"counts": counts, "cache": os.environ.get("TIKTOKEN_CACHE_DIR")}))
"""
    env = {k: v for k, v in os.environ.items() if k != "TIKTOKEN_CACHE_DIR"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["counts"] == [2, 2]
    cache = Path(result["cache"])
    assert cache.is_dir() and "litellm" in cache.parts
    # A cache folder chosen by the user is respected.
    env["TIKTOKEN_CACHE_DIR"] = str(tmp_path / "mine")
    script_mine = "import os; import agnt5.tokens as t; t.get_encoding('cl100k_base'); print(os.environ['TIKTOKEN_CACHE_DIR'])"
    (tmp_path / "mine").mkdir()
    for f in (f for f in cache.iterdir() if f.is_file()):
        (tmp_path / "mine" / f.name).write_bytes(f.read_bytes())
    done = subprocess.run(
        [sys.executable, "-c", script_mine], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(tmp_path / "mine")


async def test_stored_messages_keep_their_token_count(store: SqliteStore, litellm_counter: Any) -> None:
    cases: list[tuple[str, dict[str, Any]]] = [
        ("gpt-4o-mini", {"role": "user", "content": "How many tokens is this sentence?", "name": "ann"}),
        ("gpt-4", {"role": "user", "content": "こんにちは世界、元気ですか"}),
        (
            "gpt-4o",
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
                ],
            },
        ),
    ]
    for i, (model, message) in enumerate(cases):
        s = Session(f"tok{i}", model=model, store=store)
        sent = await s.send_message(message)
        expected = litellm_counter(model=model, messages=[message]) - 3  # without the reply primer
        assert sent.tokens == expected
        [stored] = await Session(f"tok{i}", store=store).history()
        assert stored.tokens == expected
        events = [e for e in await s.events() if e.type == "message_appended"]
        assert events[0].data["tokens"] == expected
        exported = json.loads((await s.export()).splitlines()[0])
        assert exported["tokens"] == expected


async def test_session_model_defaults_to_agnt5_model(
    monkeypatch: pytest.MonkeyPatch, store: SqliteStore
) -> None:
    text = "こんにちは世界、元気ですか"
    assert Session("d", store=store).model == "gpt-4o-mini"
    monkeypatch.setenv("AGNT5_MODEL", "gpt-4")
    s = Session("m4", store=store)
    assert s.model == "gpt-4"
    sent = await s.send_message({"role": "user", "content": text})
    assert sent.tokens == count_message_tokens({"role": "user", "content": text}, "gpt-4")
    assert sent.tokens != count_message_tokens({"role": "user", "content": text}, "gpt-4o")


@pytest.mark.parametrize(
    ("messages", "model", "match"),
    [
        ("hello", "gpt-4o-mini", "messages must be a list of message dicts, got str"),
        (b"hello", "gpt-4o-mini", "got bytes"),
        ({"role": "user", "content": "hi"}, "gpt-4o-mini", "wrap a single message in a list"),
        (None, "gpt-4o-mini", "got NoneType"),
        (42, "gpt-4o-mini", "got int"),
        (["hello"], "gpt-4o-mini", r"messages\[0\] must be a message dict"),
        ([{"role": "user", "content": "x"}, 7], "gpt-4o-mini", r"messages\[1\] must be a message dict"),
        (
            [{"role": "assistant", "tool_calls": [5]}],
            "gpt-4o-mini",
            "a message has a field of the wrong type",
        ),
        ([{"role": "user", "content": "hi"}], 5, "model must be a model name string, got int"),
    ],
)
def test_count_tokens_refuses_what_is_not_a_list_of_messages(messages: Any, model: Any, match: str) -> None:
    from agnt5.errors import Agnt5Error, InvalidTypeError

    with pytest.raises(InvalidTypeError, match=match) as caught:
        count_tokens(messages, model)
    assert isinstance(caught.value, Agnt5Error) and isinstance(caught.value, TypeError)


def test_count_tokens_takes_any_iterable_of_messages() -> None:
    messages = [{"role": "user", "content": "hello there"}, {"role": "assistant", "content": "hi"}]
    assert count_tokens(iter(messages)) == count_tokens(tuple(messages)) == count_tokens(messages) > 6
