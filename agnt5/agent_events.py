"""Typed events of an agent run, as `Agent.stream` yields them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agnt5.agent import AgentResult


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of the answering agent's text."""

    agent: str
    text: str


@dataclass(frozen=True, slots=True)
class ToolCallEvent:
    """The model asked for a tool call (arguments as the raw JSON it wrote)."""

    agent: str
    call_id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class ToolResultEvent:
    """A tool call finished; `is_error` when it failed (the error text went back to the model)."""

    agent: str
    call_id: str
    name: str
    content: str
    is_error: bool


@dataclass(frozen=True, slots=True)
class HandoffEvent:
    """The conversation moved from one agent to another."""

    from_agent: str
    to_agent: str


@dataclass(frozen=True, slots=True)
class FinalResult:
    """The last event of a run: the same AgentResult that `run` returns."""

    result: AgentResult[Any]


@dataclass(frozen=True, slots=True)
class RunPaused:
    """The last event of a run that stopped for approval: `result.pending` lists the calls waiting
    for a decision (resume with `agent.run(None, session=..., approvals={...})`)."""

    result: AgentResult[Any]


RunEvent = TextDelta | ToolCallEvent | ToolResultEvent | HandoffEvent | FinalResult | RunPaused
