"""Pruning a session: plan with a strategy, apply in one transaction, record the audit event.

`Session.prune` delegates here. A prune applies whole or not at all: the strategy only reads
(and may call a model); the store then moves exactly the planned messages to the tombstones,
inserts the summary and appends the `prune` event in one transaction. Messages appended while
the plan was being made (an LLM call takes seconds) are never removed.

Automatic pruning (`retention={"auto_prune": True, "max_messages": N, "prune_strategy": ...}`)
runs after `send_message` once the session holds more than N active messages and prunes down
to 80% of N (hysteresis: the next prune comes after another 20% of N messages, not on every
message). It never fails the append: a failure is logged and recorded as an
`auto_prune_failed` event. `prune_to_fit` is the entry point for agents whose prompt would not
fit the model's context window.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from agnt5 import tracing
from agnt5.errors import ImmutableSessionError, StrategyError
from agnt5.store.base import NewEvent, NewMessage, PruneWrite
from agnt5.strategies.base import Budget, PrunePlan, PruneStrategy, SessionView, require_positive
from agnt5.strategies.registry import get_strategy
from agnt5.tokens import counter_for

if TYPE_CHECKING:
    from agnt5.models import LanguageModel, Usage
    from agnt5.session import Session

log = logging.getLogger("agnt5.pruning")

AUTO_PRUNE_TARGET = 0.8
"""Auto-prune prunes down to this fraction of `max_messages` (hysteresis)."""
DEFAULT_AUTO_MAX_MESSAGES = 1000
"""`max_messages` assumed when a retention policy sets `auto_prune` without it."""
DEFAULT_STRATEGY = "sliding_window"

_locks: dict[tuple[int, int, str], asyncio.Lock] = {}


@dataclass(frozen=True, slots=True, repr=False)
class PruneResult:
    """What a prune did. `changed` is False when the history was already within its limits (or
    nothing could be removed): then nothing was written and no model was called."""

    strategy: str
    params: dict[str, Any]
    changed: bool
    reason: str = ""
    prune_id: str | None = None
    removed: int = 0
    removed_seqs: tuple[int, ...] = ()
    summary_id: str | None = None
    messages_before: int = 0
    messages_after: int = 0
    tokens_before: int = 0
    tokens_after: int = 0
    model: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = None
    auto: bool = False
    max_tokens: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def summary_created(self) -> bool:
        return self.summary_id is not None

    def __repr__(self) -> str:
        """The dataclass repr with `removed_seqs` summarised (a prune may remove thousands)."""
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            shown = _seqs_summary(value) if f.name == "removed_seqs" else repr(value)
            parts.append(f"{f.name}={shown}")
        return f"PruneResult({', '.join(parts)})"


def _seqs_summary(seqs: tuple[int, ...], max_ranges: int = 4) -> str:
    """`(1, 2, 3, 7)` as `<4 seqs: 1-3, 7>`; past `max_ranges` ranges the rest is counted."""
    if not seqs:
        return "()"
    ranges = [f"{a}-{b}" if a != b else str(a) for a, b in _ranges(seqs)]
    shown = ", ".join(ranges[:max_ranges])
    if len(ranges) > max_ranges:
        shown += f", ... ({len(ranges) - max_ranges} more ranges)"
    return f"<{len(seqs)} seqs: {shown}>"


def resolve_model(session: Session, model: LanguageModel | str | None) -> LanguageModel:
    """`model` as a LanguageModel: as given, from a model string, else the session's model."""
    from agnt5.models import LanguageModel

    if isinstance(model, LanguageModel):
        return model
    if model is None:
        return LanguageModel(session.model)
    if isinstance(model, str) and model:
        return LanguageModel(model)
    raise StrategyError(f"model must be a LanguageModel or a model string, got {model!r}")


def _lock(session: Session) -> asyncio.Lock:
    key = (id(asyncio.get_running_loop()), id(session.store), session.id)
    lock = _locks.get(key)
    if lock is None:
        lock = _locks[key] = asyncio.Lock()
    return lock


@tracing.traced_prune
async def prune(
    session: Session,
    strategy: str | PruneStrategy | None = None,
    *,
    max_tokens: int | None = None,
    model: LanguageModel | str | None = None,
    auto: bool = False,
    **params: Any,
) -> PruneResult:
    """Prune `session` with `strategy` (a name, `keep_last_<N>`, or a strategy object; default
    the retention policy's `prune_strategy`, else sliding_window). See `Session.prune`."""
    if max_tokens is not None:
        require_positive("max_tokens", max_tokens, "prune")
    header = await session._ensure()
    if header.retention.get("immutable"):
        raise ImmutableSessionError(f"session {session.id!r} is immutable and cannot be pruned")
    if strategy is None:
        strategy = header.retention.get("prune_strategy") or DEFAULT_STRATEGY
    chosen = get_strategy(strategy, **params)
    lm = resolve_model(session, model) if chosen.uses_model else None
    view = SessionView(session.store, session.id, session.model)
    lock = _lock(session)
    try:
        async with lock:
            plan = await chosen.plan(view, Budget(max_tokens), lm)
            if not plan.changes:
                stats = await view.stats()
                return PruneResult(
                    chosen.name,
                    _used_params(chosen, plan),
                    False,
                    plan.reason or "nothing to prune",
                    messages_before=stats.messages,
                    messages_after=stats.messages,
                    tokens_before=stats.tokens,
                    tokens_after=stats.tokens,
                    model=lm.model if lm is not None and plan.usage is not None else None,
                    auto=auto,
                    max_tokens=max_tokens,
                    **_usage_fields(plan.usage),
                )
            return await _apply(session, chosen, plan, lm, max_tokens, auto)
    finally:
        if not lock.locked():
            _locks.pop((id(asyncio.get_running_loop()), id(session.store), session.id), None)


async def _apply(
    session: Session,
    strategy: PruneStrategy,
    plan: PrunePlan,
    lm: LanguageModel | None,
    max_tokens: int | None,
    auto: bool,
) -> PruneResult:
    prune_id = f"prune_{os.urandom(12).hex()}"
    summary: NewMessage | None = None
    if plan.summary is not None:
        body = {"role": "system", "content": plan.summary.text}
        metadata = {**plan.summary.metadata, "prune_id": prune_id}
        tokens = counter_for(session.model).message(body)
        summary = NewMessage(f"msg_{os.urandom(16).hex()}", body, metadata, tokens)
    usage = _usage_fields(plan.usage)
    params = _used_params(strategy, plan)
    data = {
        "prune_id": prune_id,
        "strategy": strategy.name,
        "params": params,
        "max_tokens": max_tokens,
        "auto": auto,
        "removed_seqs": _ranges(plan.remove_seqs),
        "summary_id": summary.id if summary else None,
        "model": lm.model if lm is not None else None,
        "usage": {"prompt_tokens": usage["prompt_tokens"], "completion_tokens": usage["completion_tokens"]},
        "cost": usage["cost"],
    }
    write = PruneWrite(
        prune_id,
        plan.remove_seqs,
        summary,
        NewEvent("prune", data),
        plan.scores,
        lm.model if lm is not None else "",
    )
    applied = await asyncio.shield(session.store.apply_prune(session.id, write))
    return PruneResult(
        strategy.name,
        params,
        True,
        "pruned",
        prune_id=prune_id,
        removed=applied.removed,
        removed_seqs=tuple(plan.remove_seqs),
        summary_id=summary.id if summary else None,
        messages_before=applied.before.messages,
        messages_after=applied.after.messages,
        tokens_before=applied.before.tokens,
        tokens_after=applied.after.tokens,
        model=lm.model if lm is not None else None,
        auto=auto,
        max_tokens=max_tokens,
        **usage,
    )


def _used_params(strategy: PruneStrategy, plan: PrunePlan) -> dict[str, Any]:
    """The parameters the plan actually used (a default limit filled in), else the strategy's."""
    return dict(plan.params) if plan.params is not None else strategy.params


def _usage_fields(usage: Usage | None) -> dict[str, Any]:
    if usage is None:
        return {"prompt_tokens": 0, "completion_tokens": 0, "cost": None}
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "cost": usage.cost,
    }


def _ranges(seqs: tuple[int, ...]) -> list[list[int]]:
    """Seqs as inclusive [first, last] ranges (compact in the audit event)."""
    out: list[list[int]] = []
    for seq in sorted(seqs):
        if out and out[-1][1] == seq - 1:
            out[-1][1] = seq
        else:
            out.append([seq, seq])
    return out


def auto_prune_params(
    strategy: str, max_messages: int, system_messages: int = 0
) -> tuple[int, dict[str, Any]]:
    """The target (80% of max_messages, system messages included) and the parameters that make
    `strategy` prune down to it (strategies count non-system messages)."""
    target = max(1, math.floor(max_messages * AUTO_PRUNE_TARGET))
    room = max(1, target - system_messages)
    if strategy == "sliding_window":
        return target, {"window_size": room}
    if strategy == "keep_important":
        return target, {"max_messages": room}
    if strategy == "summarize_old":  # the summary itself takes one of the target's places
        return target, {"threshold": room, "keep_recent": max(1, room - 1)}
    return target, {}  # keep_last_<N>: N is the user's explicit choice


async def auto_prune(session: Session, newest_seq: int) -> PruneResult | None:
    """Prune after an append (of seq `newest_seq`) when the retention policy asks for it; never
    raises (see module doc).

    The active count is read only when it could exceed `max_messages`: every message that became
    active since a count was known has a higher seq than the newest one then, so that count plus
    the seqs appended since bounds it, whichever process appended or pruned meanwhile.
    """
    header = session._header
    if header is None or not header.retention.get("auto_prune") or header.retention.get("immutable"):
        return None
    limit = int(header.retention.get("max_messages") or DEFAULT_AUTO_MAX_MESSAGES)
    strategy = str(header.retention.get("prune_strategy") or DEFAULT_STRATEGY)
    mark = session._active_mark
    if mark is not None and mark[1] + (newest_seq - mark[0]) <= limit:
        return None
    try:
        stored = await session.store.get_session(session.id)  # one row: the active count
        if stored is None:
            return None
        session._active_mark = (newest_seq, stored.message_count)
        if stored.message_count <= limit:
            return None
        system = (await session.store.history_stats(session.id)).system_messages
        _, params = auto_prune_params(strategy, limit, system)
        result = await prune(session, strategy, auto=True, **params)
        if result.changed:  # counted inside the prune's transaction, after newest_seq was stored
            session._active_mark = (newest_seq, result.messages_after)
        return result
    except Exception as exc:
        log.warning("auto-prune of session %r with %s failed: %s", session.id, strategy, exc)
        try:
            data = {"strategy": strategy, "error": type(exc).__name__, "message": str(exc)[:500]}
            await session.store.append_events(header, [NewEvent("auto_prune_failed", data)])
        except Exception:  # the append it follows has succeeded; do not fail it
            log.exception("could not record the auto-prune failure of session %r", session.id)
        return None


async def prune_to_fit(
    session: Session,
    budget_tokens: int,
    model: LanguageModel | str | None = None,
    strategy: str | PruneStrategy | None = None,
) -> PruneResult | None:
    """For agents: prune `session` so its active history fits `budget_tokens`, with `strategy` or
    the retention policy's `prune_strategy`. Returns None when there is no strategy to use or the
    session is immutable — then trim non-destructively with `agnt5.blocks.fit_to_budget`. Raises
    TokenBudgetError when the system messages and newest turn alone exceed the budget, and
    PruneModelError when an LLM strategy's call fails (the history is unchanged either way).
    """
    header = await session._ensure()
    chosen = strategy if strategy is not None else header.retention.get("prune_strategy")
    if chosen is None or header.retention.get("immutable"):
        return None
    return await prune(session, chosen, max_tokens=budget_tokens, model=model)
