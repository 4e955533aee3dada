"""Builders of provider responses in each provider's real wire format, for respx mocks.

Shapes follow the providers' API references: OpenAI chat.completions, Anthropic messages,
Gemini generateContent. Only ids, texts and token counts vary between calls.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import httpx

_ids = itertools.count(1)


def openai_call(name: str, arguments: dict[str, Any] | str, call_id: str | None = None) -> dict[str, Any]:
    args = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return {
        "id": call_id or f"call_{next(_ids):04d}",
        "type": "function",
        "function": {"name": name, "arguments": args},
    }


def openai_chat(
    content: str | None = None,
    tool_calls: list[dict[str, Any]] | None = None,
    *,
    prompt_tokens: int = 50,
    completion_tokens: int = 10,
    model: str = "gpt-4o-mini-2024-07-18",
) -> httpx.Response:
    """An OpenAI /v1/chat/completions 200 response."""
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    body = {
        "id": f"chatcmpl-{next(_ids):06d}",
        "object": "chat.completion",
        "created": 1727000000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": "tool_calls" if tool_calls else "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
        "system_fingerprint": "fp_0ba0d124f1",
    }
    return httpx.Response(200, json=body)


def anthropic_message(
    text: str | None = None,
    tool_uses: list[tuple[str, dict[str, Any]]] | None = None,
    *,
    input_tokens: int = 60,
) -> httpx.Response:
    """An Anthropic /v1/messages 200 response with text and tool_use blocks."""
    content: list[dict[str, Any]] = []
    if text:
        content.append({"type": "text", "text": text})
    for name, args in tool_uses or []:
        content.append({"type": "tool_use", "id": f"toolu_{next(_ids):08d}", "name": name, "input": args})
    body = {
        "id": f"msg_{next(_ids):08d}",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": content,
        "stop_reason": "tool_use" if tool_uses else "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": 20},
    }
    return httpx.Response(200, json=body)


def gemini_content(
    text: str | None = None, calls: list[tuple[str, dict[str, Any]]] | None = None
) -> httpx.Response:
    """A Gemini generateContent 200 response with text and functionCall parts."""
    parts: list[dict[str, Any]] = []
    if text:
        parts.append({"text": text})
    for name, args in calls or []:
        parts.append({"functionCall": {"name": name, "args": args}})
    body = {
        "candidates": [{"content": {"parts": parts, "role": "model"}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 40, "candidatesTokenCount": 12, "totalTokenCount": 52},
        "modelVersion": "gemini-2.0-flash",
    }
    return httpx.Response(200, json=body)


def openai_stream(chunks: list[dict[str, Any]]) -> httpx.Response:
    """An OpenAI streaming (SSE) response from `choices[0].delta` dicts; the last has finish_reason."""
    lines = []
    for delta in chunks:
        finish = delta.pop("finish_reason", None)
        chunk = {
            "id": "chatcmpl-stream",
            "object": "chat.completion.chunk",
            "created": 1727000000,
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        lines.append(f"data: {json.dumps(chunk)}\n\n")
    lines.append("data: [DONE]\n\n")
    return httpx.Response(200, content="".join(lines).encode(), headers={"content-type": "text/event-stream"})


def sent(route: Any, index: int = -1) -> Any:
    """The JSON body of a request a respx route received."""
    return json.loads(route.calls[index].request.content)


def uncached(value: Any) -> Any:
    """A request body (or part of one) without its `cache_control` markers, which move to the
    newest message every request: what stays the same between two requests compares equal."""
    if isinstance(value, dict):
        return {k: uncached(v) for k, v in value.items() if k != "cache_control"}
    if isinstance(value, list):
        return [uncached(v) for v in value]
    return value
