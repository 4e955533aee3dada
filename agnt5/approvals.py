"""Tool calls that wait for a human decision, and the texts a resumed run gives the model.

A tool marked `@tool(requires_approval=True)` (or with a callable `(ctx, args) -> bool` deciding
per call) is not run when the model calls it: the run pauses (`AgentResult.pending`), the call
is kept durably with the session (`agnt5.journal`), and `agent.run(None, session=...,
approvals={call_id: True | False | Denial("why")})` resumes it — in any process, any time later.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from agnt5.errors import ApprovalError, InvalidTypeError

if TYPE_CHECKING:
    from agnt5.run_context import RunContext
    from agnt5.tools import Tool

DENIED_TEXT = "Denied: a person declined this tool call{reason}. Do not retry it; tell the user."
INTERRUPTED_TEXT = (
    "Interrupted: this tool call started but the run stopped before its result was stored, so it "
    "is not known whether it ran. Do not assume it succeeded or failed: check its effect (or ask "
    "the user) before calling it again."
)


@dataclass(frozen=True, slots=True)
class Denial:
    """A decision that declines a call; `reason` is passed to the model as the tool's result."""

    reason: str = ""


Decision = bool | Denial
"""What `approvals=` maps a call id to: True approves, False or a Denial declines."""


@dataclass(frozen=True, slots=True)
class PendingCall:
    """A tool call waiting for a decision: what `AgentResult.pending` and
    `agnt5.journal.pending_calls` list."""

    call_id: str
    tool: str
    arguments: dict[str, Any]
    agent: str
    session_id: str
    run_id: str
    requested_at: datetime


def check_decisions(approvals: Mapping[str, Decision] | None) -> dict[str, Decision]:
    """`approvals` as a dict, each value checked (True, False or a Denial)."""
    if approvals is None:
        return {}
    if not isinstance(approvals, Mapping):
        raise InvalidTypeError(
            f"approvals maps call ids to True, False or Denial(reason), got {type(approvals).__name__}",
            field="approvals",
        )
    out: dict[str, Decision] = {}
    for call_id, decision in approvals.items():
        if not isinstance(call_id, str):
            raise InvalidTypeError(f"approvals keys are call ids (str), got {call_id!r}", field="approvals")
        if not isinstance(decision, (bool, Denial)):
            raise InvalidTypeError(
                f"approvals[{call_id!r}] must be True, False or Denial(reason), got {decision!r}",
                field="approvals",
            )
        out[call_id] = decision
    return out


def denial_text(decision: Decision) -> str:
    reason = decision.reason.strip() if isinstance(decision, Denial) else ""
    return DENIED_TEXT.format(reason=f" ({reason})" if reason else "")


def parse_arguments(arguments: str) -> dict[str, Any]:
    """A call's JSON arguments as a dict ({} when they are not a JSON object)."""
    try:
        value = json.loads(arguments or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


async def needs_approval(tool: Tool | None, ctx: RunContext[Any], arguments: str) -> bool:
    """Whether this call of `tool` waits for a decision: its `requires_approval` flag, or what its
    callable says about these arguments (sync or async; an error in it stops the run, typed)."""
    rule = getattr(tool, "requires_approval", False) if tool is not None else False
    if isinstance(rule, bool):
        return rule
    assert tool is not None
    try:
        answer = rule(ctx, parse_arguments(arguments))
        if inspect.isawaitable(answer):
            answer = await answer
    except Exception as exc:
        raise ApprovalError(
            f"the requires_approval check of tool {tool.name!r} raised {type(exc).__name__}: {exc}; "
            "nothing of this model turn ran"
        ) from exc
    return bool(answer)


__all__ = ["Decision", "Denial", "PendingCall", "check_decisions", "needs_approval"]
