"""Token counting with tiktoken, offline, matching `litellm.token_counter` for OpenAI chat models.

A message costs 3 tokens of framing plus the tokens of each string field (role, content, name
+ 1, tool_call_id) and of each tool call's arguments; a request adds 3 tokens of reply priming.
Models without a public tiktoken encoding (Anthropic, Gemini, ...) are counted with `cl100k_base`,
an estimate that budgets treat as exact.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import tiktoken

TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMER_TOKENS = 3
TEXT_CACHE_ENTRIES = 65_536
TEXT_CACHE_CHARS = 32_000_000
"""Bounds of the per-counter cache of string counts (cleared whole when either is reached)."""
CHUNK_CHARS = 4096
"""Strings longer than this are counted in pieces (see TokenCounter._long_text)."""
IMAGE_PART_TOKENS = 85
"""Flat cost of an image part: OpenAI's low-detail price. Images are never fetched to be measured."""

_O200K_PREFIXES = ("gpt-4o", "chatgpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "gpt-oss")
_PROVIDER_PREFIXES = ("openai/", "azure/", "azure_ai/", "openrouter/openai/", "litellm_proxy/")


def _point_tiktoken_at_litellm_cache() -> None:
    """Let tiktoken load encodings offline from the copies litellm ships, unless the user chose a cache."""
    if "TIKTOKEN_CACHE_DIR" in os.environ:
        return
    spec = importlib.util.find_spec("litellm")
    if spec is None or spec.origin is None:
        return
    folder = Path(spec.origin).parent / "litellm_core_utils" / "tokenizers"
    if folder.is_dir():
        os.environ["TIKTOKEN_CACHE_DIR"] = str(folder)


def encoding_name_for_model(model: str) -> str:
    """`o200k_base` for gpt-4o, gpt-4.1, gpt-5 and the o-series; `cl100k_base` for everything else."""
    name = model.lower()
    for prefix in _PROVIDER_PREFIXES:
        if name.startswith(prefix):
            name = name[len(prefix) :]
            break
    if name.startswith("ft:"):
        name = name[3:]
    return "o200k_base" if name.startswith(_O200K_PREFIXES) else "cl100k_base"


@functools.cache
def get_encoding(name: str) -> tiktoken.Encoding:
    """The tiktoken encoding `name`, loaded once per process from the offline cache."""
    _point_tiktoken_at_litellm_cache()
    import tiktoken

    return tiktoken.get_encoding(name)


@functools.cache
def _counter(model: str) -> TokenCounter:
    return TokenCounter(encoding_name_for_model(model))


class TokenCounter:
    """Counts tokens of text and chat messages with one tiktoken encoding."""

    def __init__(self, encoding_name: str) -> None:
        self.encoding_name = encoding_name
        self._encoding = get_encoding(encoding_name)
        # encode_ordinary counts special-token text as plain text (what litellm does), and is faster.
        self._encode = self._encoding.encode_ordinary
        self._short: dict[str, int] = {}
        self._seen: dict[str, int] = {}
        self._seen_chars = 0

    def text(self, text: str) -> int:
        """Tokens of a plain string (special tokens counted as text, never refused).

        Counts are remembered per string (bounded), because agents count the same history again
        before every model call; a string is encoded once.
        """
        if not text:
            return 0
        count = self._seen.get(text)
        if count is None:
            count = len(self._encode(text)) if len(text) <= CHUNK_CHARS else self._long_text(text)
            if len(self._seen) >= TEXT_CACHE_ENTRIES or self._seen_chars >= TEXT_CACHE_CHARS:
                self._seen.clear()
                self._seen_chars = 0
            self._seen[text] = count
            self._seen_chars += len(text)
        return count

    def _long_text(self, text: str) -> int:
        """Tokens of a long string, encoded in pieces of at most CHUNK_CHARS.

        Pieces end before a space that starts a word, where tiktoken's pre-tokeniser splits anyway,
        so ordinary text counts exactly. A run with no such space (one character repeated, base64)
        is cut hard: BPE's cost grows faster than linearly in a run's length, and a cut adds at
        most a token or two to the count.
        """
        total = 0
        start, end = 0, len(text)
        encode = self._encode
        while start < end:
            stop = start + CHUNK_CHARS
            if stop >= end:
                stop = end
            else:
                cut = text.rfind(" ", start + 1, stop)
                while cut > start and not (text[cut + 1 : cut + 2].isalpha() and not text[cut - 1].isspace()):
                    cut = text.rfind(" ", start + 1, cut)
                if cut > start:
                    stop = cut
            total += len(encode(text[start:stop]))
            start = stop
        return total

    def _label(self, text: str) -> int:
        """Tokens of a role, name or id: few distinct values, so they are cached."""
        count = self._short.get(text)
        if count is None:
            count = self.text(text)
            if len(self._short) < 4096:
                self._short[text] = count
        return count

    def content(self, content: Any) -> int:
        """Tokens of a message's `content`: a string, a list of parts, or None."""
        if content is None:
            return 0
        if isinstance(content, str):
            return self.text(content)
        total = 0
        for part in content:
            if isinstance(part, str):
                total += self.text(part)
            elif isinstance(part, Mapping):
                kind = part.get("type")
                if kind == "text":
                    total += self.text(str(part.get("text") or ""))
                elif kind in ("image_url", "image", "input_image"):
                    total += IMAGE_PART_TOKENS
                elif kind == "input_audio" or kind == "file":
                    continue
                else:
                    text = part.get("text")
                    if isinstance(text, str):
                        total += self.text(text)
        return total

    def message(self, message: Mapping[str, Any]) -> int:
        """Tokens one message adds to a prompt, framing included (not the reply primer)."""
        total = TOKENS_PER_MESSAGE
        for key in ("role", "name", "tool_call_id"):
            value = message.get(key)
            if isinstance(value, str):
                total += self._label(value)
        if message.get("name"):
            total += TOKENS_PER_NAME
        total += self.content(message.get("content"))
        for call in message.get("tool_calls") or ():
            function = call.get("function") or {}
            total += self.text(str(function.get("arguments", "")))
        return total

    def messages(self, messages: Iterable[Mapping[str, Any]]) -> int:
        """Tokens of a whole prompt: every message plus the reply primer."""
        return sum(self.message(m) for m in messages) + REPLY_PRIMER_TOKENS


def counter_for(model: str) -> TokenCounter:
    """The shared TokenCounter for `model` (one per encoding per process)."""
    return _counter(model)


def count_message_tokens(message: Mapping[str, Any], model: str = "gpt-4o-mini") -> int:
    """Tokens one message adds to a prompt for `model` (framing included)."""
    return _counter(model).message(message)


def count_tokens(messages: Iterable[Mapping[str, Any]], model: str = "gpt-4o-mini") -> int:
    """Prompt tokens of `messages` for `model`, as `litellm.token_counter(model, messages)` counts them.

    `messages` is a list (or other iterable) of message dicts; anything else raises InvalidTypeError.
    """
    from agnt5.errors import InvalidTypeError

    if not isinstance(model, str):
        raise InvalidTypeError(
            f"model must be a model name string, got {type(model).__name__}", field="model"
        )
    if isinstance(messages, str | bytes | Mapping) or not isinstance(messages, Iterable):
        raise InvalidTypeError(
            f"messages must be a list of message dicts, got {type(messages).__name__}"
            + ("; wrap a single message in a list" if isinstance(messages, Mapping) else ""),
            field="messages",
        )
    items = list(messages)
    for i, m in enumerate(items):
        if not isinstance(m, Mapping):
            raise InvalidTypeError(
                f"messages[{i}] must be a message dict (role, content, ...), got {type(m).__name__}",
                field=f"messages[{i}]",
            )
    try:
        return _counter(model).messages(items)
    except (AttributeError, TypeError) as exc:  # a field of the wrong type deeper in a message
        raise InvalidTypeError(
            f"a message has a field of the wrong type ({exc}); messages use the OpenAI chat format",
            field="messages",
        ) from exc


def count_text_tokens(text: str, model: str = "gpt-4o-mini") -> int:
    """Tokens of a plain string for `model`."""
    return _counter(model).text(text)
