"""What agnt5 needs to know about a provider that litellm does not smooth over."""

from __future__ import annotations

from typing import Protocol, runtime_checkable


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

    def matches(self, model: str) -> bool:
        """Whether this profile serves the litellm model string `model`."""
        ...

    def supports_json_schema(self, model: str) -> bool:
        """Whether `response_format` with a JSON schema is enforced natively for `model`."""
        ...


def litellm_supports_response_schema(model: str) -> bool:
    """litellm's answer to "does `model` support a JSON-schema response_format?"; False when unknown."""
    from agnt5._litellm import get_litellm

    try:
        return bool(get_litellm().supports_response_schema(model=model))
    except Exception:
        return False
