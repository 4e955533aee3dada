"""OpenAI (and the OpenAI-compatible default for models no other profile claims)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agnt5.providers.base import CacheHint, litellm_supports_response_schema


@dataclass(frozen=True, slots=True)
class OpenAIProfile:
    """OpenAI chat completions: any message order, usage in streams only on request."""

    name: str = "openai"
    api_key_env: str = "OPENAI_API_KEY"
    requires_user_first: bool = False
    hoists_system: bool = False

    def matches(self, model: str) -> bool:
        """Bare OpenAI model names and the "openai/" prefix."""
        name = model.lower()
        return name.startswith("openai/") or name.startswith(("gpt-", "chatgpt-", "o1", "o3", "o4", "ft:gpt"))

    def supports_json_schema(self, model: str) -> bool:
        """Structured outputs per litellm's model map (gpt-4o and later)."""
        return litellm_supports_response_schema(model)

    def cache_request(self, request: dict[str, Any], hint: CacheHint) -> dict[str, Any]:
        """`prompt_cache_key` for OpenAI's own models: OpenAI caches identical prefixes
        automatically; the key routes the requests of one conversation to the same cache. Models
        this profile serves only as the fallback (Groq, Ollama...) get nothing."""
        if not self.matches(str(request.get("model", ""))):
            return request
        return {**request, "prompt_cache_key": hint.key}
