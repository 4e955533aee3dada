"""Provider profiles: the few behaviours that differ by provider, picked by litellm model prefix."""

from __future__ import annotations

from agnt5.providers.anthropic import AnthropicProfile
from agnt5.providers.base import CacheHint, ProviderProfile
from agnt5.providers.gemini import GeminiProfile
from agnt5.providers.openai import OpenAIProfile

OPENAI = OpenAIProfile()
ANTHROPIC = AnthropicProfile()
GEMINI = GeminiProfile()

_PROFILES: tuple[ProviderProfile, ...] = (ANTHROPIC, GEMINI, OPENAI)


def profile_for(model: str) -> ProviderProfile:
    """The profile serving `model`; OpenAI's (the most permissive) for anything unrecognised."""
    for profile in _PROFILES:
        if profile.matches(model):
            return profile
    return OPENAI


__all__ = [
    "ANTHROPIC",
    "GEMINI",
    "OPENAI",
    "AnthropicProfile",
    "CacheHint",
    "GeminiProfile",
    "OpenAIProfile",
    "ProviderProfile",
    "profile_for",
]
