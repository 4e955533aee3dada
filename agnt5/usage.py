"""Usage: the tokens, requests and cost of model calls, summed over a run or a prune."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Usage:
    """Token usage of model calls; `cost` in USD when litellm's price map knows the model.

    `requests` counts the model calls summed here. `cached_tokens` are prompt tokens the provider
    served from its cache (included in `prompt_tokens`). `estimated` is True when some of these
    numbers were not reported by the provider but estimated locally (litellm counts the tokens
    itself when a response carries no usage).
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cost: float | None = None
    requests: int = 0
    cached_tokens: int = 0
    estimated: bool = False

    def __add__(self, other: Usage) -> Usage:
        """The usage of both (cost unknown only if both are; estimated if either is)."""
        cost = None if self.cost is None and other.cost is None else (self.cost or 0.0) + (other.cost or 0.0)
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.total_tokens + other.total_tokens,
            cost,
            self.requests + other.requests,
            self.cached_tokens + other.cached_tokens,
            self.estimated or other.estimated,
        )


__all__ = ["Usage"]
