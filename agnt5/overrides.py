"""`agent.override(model=..., deps=...)`: swap an agent's model and deps inside a `with` block.

One ContextVar holds the active overrides (agent → record). Entering a block sets a new mapping
for the current context only, so runs started in other tasks (whose context was copied before
the block) keep the real model; leaving the block restores the previous mapping.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agnt5.agent import Agent
    from agnt5.models import LanguageModel

_UNSET: Any = object()


@dataclass(frozen=True, slots=True)
class Override:
    """What one agent uses inside an override block (`_UNSET` fields keep the agent's own)."""

    model: LanguageModel | Any = _UNSET
    deps: Any = _UNSET


_Active = Mapping[int, tuple["Agent[Any, Any]", Override]]
_active: ContextVar[_Active | None] = ContextVar("agnt5_overrides", default=None)


def _reachable(agent: Agent[Any, Any]) -> list[Agent[Any, Any]]:
    """The agent and every agent it can hand off to, directly or through others."""
    seen: dict[int, Agent[Any, Any]] = {}
    stack = [agent]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen[id(current)] = current
        stack.extend(current.handoffs)
    return list(seen.values())


@contextmanager
def override(agent: Agent[Any, Any], *, model: Any = _UNSET, deps: Any = _UNSET) -> Iterator[None]:
    """Inside the block, runs of `agent` (and of agents it hands off to) use `model` and `deps`."""
    if model is not _UNSET:
        from agnt5.models import LanguageModel

        model = model if isinstance(model, LanguageModel) else LanguageModel(model)
    current = _active.get() or {}
    updated = dict(current)
    for reached in _reachable(agent):
        previous = current.get(id(reached))
        base = previous[1] if previous is not None and previous[0] is reached else Override()
        updated[id(reached)] = (
            reached,
            Override(
                model if model is not _UNSET else base.model,
                deps if deps is not _UNSET else base.deps,
            ),
        )
    token = _active.set(updated)
    try:
        yield
    finally:
        _active.reset(token)


def active(agent: Agent[Any, Any]) -> Override | None:
    """The override in force for `agent` in this context, if any."""
    overrides = _active.get()
    if not overrides:
        return None
    entry = overrides.get(id(agent))
    return entry[1] if entry is not None and entry[0] is agent else None


def model_for(agent: Agent[Any, Any]) -> LanguageModel:
    """The model `agent` uses here: the override's, else its own."""
    found = active(agent)
    return agent.model if found is None or found.model is _UNSET else found.model


def deps_for(agent: Agent[Any, Any], given: Any) -> Any:
    """The deps of a run started on `agent`: the override's, else those given to the run."""
    found = active(agent)
    return given if found is None or found.deps is _UNSET else found.deps


__all__ = ["Override", "deps_for", "model_for", "override"]
