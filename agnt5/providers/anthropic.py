"""Anthropic Messages API (through litellm)."""

from __future__ import annotations

from dataclasses import dataclass

from agnt5.providers.base import litellm_supports_response_schema


@dataclass(frozen=True, slots=True)
class AnthropicProfile:
    """Anthropic: the conversation must open with a user turn."""

    name: str = "anthropic"
    api_key_env: str = "ANTHROPIC_API_KEY"
    requires_user_first: bool = True

    def matches(self, model: str) -> bool:
        """Model names starting with "anthropic/" or "claude"."""
        name = model.lower()
        return name.startswith(("anthropic/", "claude"))

    def supports_json_schema(self, model: str) -> bool:
        """litellm emulates JSON schema output for Claude with a forced tool; trust its model map."""
        return litellm_supports_response_schema(model)
