"""Shared parts of the model-based strategies: rendering messages as text, bounding requests to
the context window, calling the model with typed errors, adding up usage."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from agnt5._litellm import is_retryable
from agnt5.errors import ModelError, PruneError, PruneModelError
from agnt5.tokens import TokenCounter, get_encoding

if TYPE_CHECKING:
    from agnt5.models import LanguageModel, ModelResponse, Usage

REQUEST_MARGIN = 64
"""Tokens left free in every request besides the output reserve (provider-side framing)."""


def render(message: Mapping[str, Any]) -> str:
    """A message as one transcript entry: role, text (image parts as [image]) and tool calls."""
    role = str(message.get("role"))
    if message.get("name"):
        role += f" ({message['name']})"
    if message.get("tool_call_id"):
        role += f" [result of {message['tool_call_id']}]"
    content = message.get("content")
    if isinstance(content, str):
        text = content
    elif isinstance(content, list):
        pieces = []
        for part in content:
            if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                pieces.append(part["text"])
            elif isinstance(part, Mapping):
                pieces.append(f"[{part.get('type', 'part')}]")
        text = " ".join(pieces)
    else:
        text = ""
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        text += f" [calls {function.get('name')}({function.get('arguments', '')}) id={call.get('id')}]"
    return f"{role}: {text.strip()}"


def truncate(text: str, max_tokens: int, counter: TokenCounter) -> str:
    """`text` cut to at most `max_tokens` tokens (marked), for a request only — never the history."""
    if max_tokens <= 0:
        return ""
    encoding = get_encoding(counter.encoding_name)
    ids = encoding.encode_ordinary(text)
    if len(ids) <= max_tokens:
        return text
    marker = " […truncated]"
    keep = max(0, max_tokens - counter.text(marker) - 1)
    return encoding.decode(ids[:keep]) + marker


def bounded(model: LanguageModel, max_tokens: int) -> LanguageModel:
    """A copy of `model` whose replies are capped at `max_tokens` (the caller's model is untouched)."""
    clone = copy.copy(model)
    clone.params = {**model.params, "max_tokens": max_tokens}
    return clone


def input_room(model: LanguageModel, output_tokens: int) -> int:
    """Prompt tokens one request may use: the context window minus the output reserve and a margin."""
    return model.context_window - output_tokens - REQUEST_MARGIN


async def call(
    model: LanguageModel,
    messages: Sequence[Mapping[str, Any]],
    *,
    what: str,
    output_tokens: int,
    **kwargs: Any,
) -> ModelResponse:
    """One model call of a prune; a failure becomes PruneModelError (the history is untouched)."""
    prompt = model.count_tokens(messages, kwargs.get("tools"))
    room = input_room(model, output_tokens)
    if prompt > room:  # a planning bug, never sent
        raise PruneError(
            f"{what}: a request of {prompt} tokens would not fit {model.model}'s context window "
            f"({model.context_window} tokens, {output_tokens} reserved for the reply)"
        )
    try:
        return await bounded(model, output_tokens).generate(messages, **kwargs)
    except ModelError as exc:
        # Advise a retry only where one can help (rate limit, timeout, 5xx), never for a missing
        # key, a rejected request or an answer litellm cannot parse.
        retry = " — retry the prune later" if is_retryable(exc) else ""
        raise PruneModelError(
            f"{what}: the call to {model.model} failed ({type(exc).__name__}: {exc}); "
            f"the history is unchanged{retry}"
        ) from exc


def add_usage(total: Usage | None, more: Usage) -> Usage:
    """`more` added to `total` (None before the first call)."""
    return more if total is None else total + more


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
