"""Anthropic Messages API (through litellm)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agnt5.providers.base import CacheHint, litellm_supports_response_schema, text_parts

EPHEMERAL = {"type": "ephemeral"}
MAX_BREAKPOINTS = 4
"""Anthropic accepts at most four `cache_control` breakpoints per request."""


@dataclass(frozen=True, slots=True)
class AnthropicProfile:
    """Anthropic: the conversation must open with a user turn; system messages are hoisted into
    `system`; prompt caching through explicit `cache_control` breakpoints."""

    name: str = "anthropic"
    api_key_env: str = "ANTHROPIC_API_KEY"
    requires_user_first: bool = True
    hoists_system: bool = True

    def matches(self, model: str) -> bool:
        """Model names starting with "anthropic/" or "claude"."""
        name = model.lower()
        return name.startswith(("anthropic/", "claude"))

    def supports_json_schema(self, model: str) -> bool:
        """litellm emulates JSON schema output for Claude with a forced tool; trust its model map."""
        return litellm_supports_response_schema(model)

    def cache_request(self, request: dict[str, Any], hint: CacheHint) -> dict[str, Any]:
        """Breakpoints on the last tool, the first system message, the last stable message and
        the end of the previous turn (before the newest user message): at most four. Anthropic
        reads the longest cached prefix ending at a breakpoint (looking back up to 20 blocks)."""
        out = dict(request)
        tools = request.get("tools")
        budget = MAX_BREAKPOINTS
        if tools:
            out["tools"] = [*tools[:-1], {**tools[-1], "cache_control": dict(EPHEMERAL)}]
            budget -= 1
        messages = [dict(m) for m in request["messages"]]
        stable = len(messages) - hint.tail
        system = next((i for i in range(stable) if messages[i].get("role") in ("system", "developer")), None)
        last = _markable(messages, stable - 1)
        newest_user = next((i for i in range(stable - 1, -1, -1) if messages[i].get("role") == "user"), None)
        previous = _markable(messages, newest_user - 1) if newest_user is not None else None
        for index in dict.fromkeys(i for i in (system, last, previous) if i is not None):
            if budget == 0:
                break
            parts = text_parts(messages[index].get("content"))
            if parts is None:  # an empty system message: nothing to mark
                continue
            parts[-1]["cache_control"] = dict(EPHEMERAL)
            messages[index]["content"] = parts
            budget -= 1
        out["messages"] = messages
        return out


def _markable(messages: list[dict[str, Any]], index: int) -> int | None:
    """The newest non-system message at or before `index` whose content can carry a breakpoint."""
    for i in range(index, -1, -1):
        m = messages[i]
        if m.get("role") not in ("system", "developer") and text_parts(m.get("content")) is not None:
            return i
    return None
