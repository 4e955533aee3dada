"""What agnt5 needs to know about a provider that litellm does not smooth over."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class CacheHint:
    """Asks a provider to cache the prompt's stable prefix: `key` names the conversation (the
    session id); the last `tail` messages change from request to request (state-rendered
    instructions) and are never marked as cacheable."""

    key: str
    tail: int = 0


@runtime_checkable
class ProviderProfile(Protocol):
    """Provider capabilities the core consults; one implementation per provider family."""

    @property
    def name(self) -> str:
        """litellm's provider name ("openai", "anthropic", "gemini")."""
        ...

    @property
    def api_key_env(self) -> str:
        """Environment variable litellm reads the API key from; named in authentication errors."""
        ...

    @property
    def requires_user_first(self) -> bool:
        """The first non-system message must have role "user" (else the provider answers HTTP 400)."""
        ...

    @property
    def hoists_system(self) -> bool:
        """System messages anywhere in a request become one system prompt ahead of the messages
        (Anthropic's `system`, Gemini's `system_instruction`), so text that changes per request
        must be sent as a user message to keep the prefix stable."""
        ...

    def matches(self, model: str) -> bool:
        """Whether this profile serves the litellm model string `model`."""
        ...

    def supports_json_schema(self, model: str) -> bool:
        """Whether `response_format` with a JSON schema is enforced natively for `model`."""
        ...

    def cache_request(self, request: dict[str, Any], hint: CacheHint) -> dict[str, Any]:
        """`request` (litellm keyword arguments) with this provider's prompt-caching hints added."""
        ...


def litellm_supports_response_schema(model: str) -> bool:
    """litellm's answer to "does `model` support a JSON-schema response_format?"; False when unknown."""
    from agnt5._litellm import get_litellm

    try:
        return bool(get_litellm().supports_response_schema(model=model))
    except Exception:
        return False


def text_parts(content: Any) -> list[dict[str, Any]] | None:
    """A message's content as a list of content parts (copied), or None when it has none."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else None
    if isinstance(content, list) and content and all(isinstance(p, dict) for p in content):
        return [dict(p) for p in content]
    return None
