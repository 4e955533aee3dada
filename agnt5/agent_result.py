"""What an agent run gives back: `AgentResult` (output, usage, messages, and — for a run that
paused for approval — the pending calls)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic

from typing_extensions import TypeVar

from agnt5.approvals import PendingCall
from agnt5.usage import Usage

if TYPE_CHECKING:
    from agnt5.agent_run import Run
    from agnt5.session import Session

OutputT = TypeVar("OutputT", default=str)
"""The type of a run's output: `str`, or the agent's `output_type` (a pydantic model)."""


@dataclass
class AgentResult(Generic[OutputT]):
    """What a run produced: the output (text, or an `output_type` instance), the agent that
    answered, the messages this run added, summed usage and cost, and the number of model calls.

    Fields of a structured output read through: `result.category` is `result.output.category`.
    """

    output: OutputT
    agent_name: str
    messages: list[dict[str, Any]] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    turns: int = 0
    run_id: str = ""
    pending: list[PendingCall] = field(default_factory=list)
    session: Session | None = None

    @property
    def cost(self) -> float | None:
        return self.usage.cost

    @property
    def paused(self) -> bool:
        """True when the run stopped for approval: `pending` lists the calls waiting (then
        `output` is None); resume with `agent.run(None, session=result.session, approvals=...)`."""
        return bool(self.pending)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        output = self.__dict__.get("output")
        if isinstance(output, str):
            # A text answer that is a JSON object reads the same way (a router told to answer in JSON).
            fields = _json_object(output)
            if name in fields:
                return fields[name]
        elif output is not None and hasattr(output, name):
            return getattr(output, name)
        raise AttributeError(
            f"'AgentResult' has no attribute {name!r}: the output has no such field "
            "(give the Agent an output_type to get structured fields)"
        )

    def __str__(self) -> str:
        return str(self.output)


def _json_object(text: str) -> dict[str, Any]:
    stripped = text.strip()
    if not stripped.startswith("{"):
        return {}
    try:
        value = json.loads(stripped)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def partial_result(run: Run, agent_name: str) -> AgentResult[Any]:
    """The run so far, for errors that stop it (`.partial`)."""
    return AgentResult(None, agent_name, run.messages, run.usage, run.turns, run.run_id)


__all__ = ["AgentResult", "OutputT", "partial_result"]
