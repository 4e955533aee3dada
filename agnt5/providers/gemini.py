"""Google Gemini through the Generative Language API ("gemini/...")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agnt5.providers.base import CacheHint, litellm_supports_response_schema


@dataclass(frozen=True, slots=True)
class GeminiProfile:
    """Gemini: contents must open with a user turn."""

    name: str = "gemini"
    api_key_env: str = "GEMINI_API_KEY"
    requires_user_first: bool = True
    hoists_system: bool = True

    def matches(self, model: str) -> bool:
        """Model names starting with "gemini/" (AI Studio) or "gemini-"."""
        name = model.lower()
        return name.startswith(("gemini/", "gemini-"))

    def supports_json_schema(self, model: str) -> bool:
        """Gemini 1.5 and later accept a response schema; litellm's model map knows which."""
        return litellm_supports_response_schema(model)

    def cache_request(self, request: dict[str, Any], hint: CacheHint) -> dict[str, Any]:
        """Nothing: Gemini caches repeated prefixes implicitly."""
        return request
