"""Retention policies: how long a session lives and how its history is kept in bounds."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from agnt5.errors import InvalidInputError, RetentionPolicyError
from agnt5.values import MAX_COUNT

STRATEGY_NAMES = ("sliding_window", "keep_important", "summarize_old")
MAX_TTL_DAYS = 3_650_000
"""Ten thousand years: a longer ttl is the same as none (and would overflow a timestamp)."""


class RetentionPolicy(BaseModel):
    """A session's retention policy (the `retention=` dict of Session).

    - `ttl_days`: the session expires this many days after its last update; `purge_expired()`
      then deletes it whole (unless immutable).
    - `immutable`: the history cannot be pruned, cleared or deleted (appending is still allowed);
      once set on a stored session it cannot be unset.
    - `auto_prune`, `prune_strategy`, `max_messages`: prune automatically once the session holds
      more than `max_messages` messages.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    ttl_days: float | None = Field(default=None, gt=0, le=MAX_TTL_DAYS)
    immutable: bool = False
    auto_prune: bool = False
    prune_strategy: str | None = None
    max_messages: int | None = Field(default=None, gt=0, le=MAX_COUNT)

    @field_validator("prune_strategy")
    @classmethod
    def _known_strategy(cls, value: str | None) -> str | None:
        if value is None or value in STRATEGY_NAMES:
            return value
        if re.fullmatch(r"keep_last_[1-9][0-9]{0,18}", value) and int(value[10:]) <= MAX_COUNT:
            return value
        raise InvalidInputError(
            f"unknown prune strategy {value!r}; accepted: keep_last_<N> (N from 1 to 2**63-1), "
            f"{', '.join(STRATEGY_NAMES)}"
        )

    @classmethod
    def parse(cls, value: Mapping[str, Any] | RetentionPolicy | None) -> RetentionPolicy:
        """Validate a retention dict; raise RetentionPolicyError naming the bad key."""
        if value is None:
            return cls()
        if isinstance(value, RetentionPolicy):
            return value
        if not isinstance(value, Mapping):
            raise RetentionPolicyError(f"retention must be a dict, got {type(value).__name__}")
        try:
            return cls.model_validate(dict(value))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'retention'}: {e['msg']}" for e in exc.errors()
            )
            accepted = ", ".join(cls.model_fields)
            raise RetentionPolicyError(
                f"invalid retention policy: {problems} (accepted keys: {accepted})"
            ) from exc

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(exclude_defaults=True)
