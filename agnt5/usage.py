"""Usage: the tokens, requests and cost of model calls, summed over a run or a prune."""

from __future__ import annotations

import math
from dataclasses import dataclass

from agnt5.errors import InvalidInputError, UsageLimitExceeded


@dataclass(frozen=True, slots=True)
class Usage:
    """Token usage of model calls; `cost` in USD when litellm's price map knows the model.

    `requests` counts the model calls summed here. `cached_tokens` are prompt tokens the provider
    served from its cache and `cache_write_tokens` those it wrote to its cache (Anthropic's
    `cache_creation_input_tokens`), both included in `prompt_tokens`. `estimated` is True when some of these
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
    cache_write_tokens: int = 0

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
            self.cache_write_tokens + other.cache_write_tokens,
        )


@dataclass(frozen=True, slots=True)
class UsageLimits:
    """Upper bounds for one agent run; None leaves a measure unlimited.

    Checked before each model request (`requests`; `input_tokens` and `total_tokens` with the
    prompt counted locally, so a request that would exceed them is not sent; `tool_calls` before
    tools run) and after each response (tokens as reported, `cost` in USD). Exceeding one raises
    `UsageLimitExceeded` carrying the partial run. A `cost` limit on a response whose cost is
    unknown (litellm has no price for the model) raises too: a limit that cannot be checked does
    not pass silently.
    """

    requests: int | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    cost: float | None = None
    tool_calls: int | None = None

    def __post_init__(self) -> None:
        for name in ("requests", "input_tokens", "output_tokens", "total_tokens", "cost", "tool_calls"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
                raise InvalidInputError(
                    f"UsageLimits({name}=...) must be a non-negative number or None, got {value!r}",
                    field=name,
                )

    def check_before_request(self, used: Usage, requests: int, prompt_tokens: int) -> None:
        """Raise if one more request with `prompt_tokens` (counted locally) would pass a limit."""
        _check("requests", self.requests, requests + 1, "the next model request would be request")
        _check(
            "input_tokens",
            self.input_tokens,
            used.prompt_tokens + prompt_tokens,
            f"the next request's prompt ({prompt_tokens} tokens, counted locally) would bring input tokens to",
        )
        _check(
            "total_tokens",
            self.total_tokens,
            used.total_tokens + prompt_tokens,
            f"the next request's prompt ({prompt_tokens} tokens, counted locally) would bring total tokens to",
        )

    def check_after_response(self, used: Usage, response: Usage, model: str) -> None:
        """Raise if the usage so far (including `response`) passed a limit, or a cost limit
        cannot be checked because the response's cost is unknown."""
        _check("input_tokens", self.input_tokens, used.prompt_tokens, "input tokens reached")
        _check("output_tokens", self.output_tokens, used.completion_tokens, "output tokens reached")
        _check("total_tokens", self.total_tokens, used.total_tokens, "total tokens reached")
        if self.cost is None:
            return
        if response.cost is None:
            raise UsageLimitExceeded(
                f"a cost limit of ${self.cost} is set but the cost of {model}'s response is unknown "
                "(litellm has no price for this model), so the limit cannot be checked; drop cost= "
                "from UsageLimits or register the model's price (litellm.register_model)",
                limit="cost",
                value=self.cost,
                actual=math.nan,
            )
        _check("cost", self.cost, used.cost or 0.0, "cost (USD) reached")

    def check_tool_calls(self, made: int, more: int) -> None:
        """Raise if running `more` tool calls after `made` would pass the `tool_calls` limit."""
        _check("tool_calls", self.tool_calls, made + more, f"running {more} more tool call(s) would make")


def _check(name: str, limit: float | None, actual: float, what: str) -> None:
    if limit is None or actual <= limit:
        return
    raise UsageLimitExceeded(
        f"usage limit exceeded: {what} {actual:g}, over the limit {name}={limit:g}; raise the limit in "
        "UsageLimits or shorten the run (the run so far is on .partial)",
        limit=name,
        value=limit,
        actual=actual,
    )


__all__ = ["Usage", "UsageLimits"]
