"""Guardrails: checks on a run's input and final output that can stop the run.

A guardrail is a function `(ctx, value) -> GuardrailResult | bool` (sync or async): True or a
result with `tripwire=True` trips it. Input guardrails (`Agent(input_guardrails=[...])`) see the
run's input (the string given, else the list of input messages) before anything is stored or any
model is called; output guardrails (`Agent(output_guardrails=[...])`, those of the agent that
answers) see the final output before it is stored. A tripped guardrail raises `GuardrailTripped`
and records a `guardrail_tripped` audit event on the session. Guardrails of one kind run
concurrently and all finish before the run goes on (blocking, never racing the model). Sync
functions run inline on the event loop: keep them cheap, and make one that does I/O async.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeAlias

from agnt5.errors import GuardrailTripped, InvalidTypeError
from agnt5.run_context import DepsT, RunContext

Kind = Literal["input", "output"]


@dataclass(frozen=True, slots=True)
class GuardrailResult:
    """What a guardrail decided: `tripwire` stops the run; `reason` says why; `info` is anything
    the application wants on the error (scores, matched rules)."""

    tripwire: bool
    reason: str = ""
    info: Any = None


GuardrailFunction: TypeAlias = Callable[
    [RunContext[DepsT], Any], "GuardrailResult | bool | Awaitable[GuardrailResult | bool]"
]


@dataclass(frozen=True, slots=True)
class Guardrail(Generic[DepsT]):
    """A guardrail function with a name (the function's name unless given)."""

    function: GuardrailFunction[DepsT]
    name: str = ""

    def __post_init__(self) -> None:
        if not callable(self.function):
            raise InvalidTypeError(
                f"a guardrail is a function (ctx, value) -> bool | GuardrailResult, got {self.function!r}"
            )

    async def check(self, ctx: RunContext[DepsT], value: Any) -> GuardrailResult:
        """Run the function and normalise its answer. A sync function runs inline on the event
        loop (keep it cheap, like a regex; write an async one for I/O such as a moderation call)."""
        outcome = self.function(ctx, value)
        if inspect.isawaitable(outcome):
            outcome = await outcome
        if isinstance(outcome, GuardrailResult):
            return outcome
        if isinstance(outcome, bool):
            return GuardrailResult(outcome)
        raise InvalidTypeError(
            f"guardrail {self.label!r} returned {type(outcome).__name__}; return a GuardrailResult or a "
            "bool (True trips it)"
        )

    @property
    def label(self) -> str:
        return self.name or getattr(self.function, "__name__", "guardrail")


def as_guardrails(items: Sequence[Guardrail[Any] | GuardrailFunction[Any]]) -> tuple[Guardrail[Any], ...]:
    """Guardrails from functions or Guardrail objects (checked when the agent is built)."""
    out = []
    for item in items:
        if isinstance(item, Guardrail):
            out.append(item)
        elif callable(item):
            out.append(Guardrail(item))
        else:
            raise InvalidTypeError(
                f"a guardrail is a function (ctx, value) -> bool | GuardrailResult, got {item!r}"
            )
    return tuple(out)


async def first_tripped(
    guardrails: Sequence[Guardrail[Any]], ctx: RunContext[Any], value: Any, kind: Kind
) -> GuardrailTripped | None:
    """Run every guardrail concurrently; the error for the first (in order) that tripped, or None."""
    if not guardrails:
        return None
    if len(guardrails) == 1:  # the usual case: no task to schedule
        results = [await guardrails[0].check(ctx, value)]
    else:
        results = await asyncio.gather(*(g.check(ctx, value) for g in guardrails))
    for guardrail, result in zip(guardrails, results, strict=True):
        if result.tripwire:
            reason = result.reason or "no reason given"
            return GuardrailTripped(
                f"{kind} guardrail {guardrail.label!r} tripped: {reason}",
                guardrail=guardrail.label,
                kind=kind,
                reason=result.reason,
                info=result.info,
            )
    return None


__all__ = ["Guardrail", "GuardrailResult", "as_guardrails", "first_tripped"]
