"""RunContext: what one agent run knows — its deps, its session, who is running, usage so far.

Built fresh for every run (a handoff continues the same run with the next agent's name); tools,
instructions and hooks receive it. The context object is never sent to the model.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Generic

from typing_extensions import TypeVar

from agnt5.usage import Usage

if TYPE_CHECKING:
    from agnt5.session import Session

DepsT = TypeVar("DepsT", default=None)
"""The type of a run's `deps` (whatever the application passes to `agent.run(..., deps=...)`)."""


@dataclass
class RunContext(Generic[DepsT]):
    """The run a tool, instruction or hook is part of. Annotate a tool parameter `RunContext[MyDeps]`
    to receive it.

    `session` is the run's conversation: the `session=` given to the run, else the agent's own,
    else a fresh in-memory session for that run alone. `usage` is the run's usage so far.
    `tool_call_id` is set while a tool runs.
    """

    deps: DepsT
    session: Session
    agent_name: str = ""
    run_id: str = ""
    usage: Usage = field(default_factory=Usage)
    tool_call_id: str | None = None

    def for_tool(self, tool_call_id: str) -> RunContext[DepsT]:
        """A copy for one tool call (so concurrent calls each see their own id)."""
        return replace(self, tool_call_id=tool_call_id)


__all__ = ["DepsT", "RunContext"]
