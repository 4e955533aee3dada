"""The audit events an agent run records on an application's session: tool steps, handoffs, the
run's end, and what stopped it (none on a run-local session)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from agnt5.errors import GuardrailTripped
from agnt5.models import ToolCall
from agnt5.store.base import NewEvent
from agnt5.tools import ToolResult

if TYPE_CHECKING:
    from agnt5.agent import Agent
    from agnt5.agent_run import Run


def tool_events(
    run: Run,
    agent: Agent[Any, Any],
    calls: Sequence[ToolCall],
    results: Sequence[tuple[ToolResult, float]],
    target: Agent[Any, Any] | None,
) -> list[NewEvent]:
    """Audit events of one tool step (stored with its messages; none on a run-local session)."""
    if not run.durable:
        return []
    events = []
    for call, (result, duration) in zip(calls, results, strict=True):
        events.append(
            run.event(
                "tool_call", agent=agent.name, call_id=call.id, name=call.name, arguments=call.arguments
            )
        )
        events.append(
            run.event(
                "tool_result",
                agent=agent.name,
                call_id=call.id,
                name=call.name,
                is_error=result.is_error,
                duration_ms=round(duration * 1000, 3),
            )
        )
    if target is not None:
        events.append(run.event("handoff", from_agent=agent.name, to_agent=target.name))
    return events


def finished_event(run: Run, agent: Agent[Any, Any]) -> NewEvent:
    return run.event(
        "agent_run_finished",
        agent=agent.name,
        turns=run.turns,
        prompt_tokens=run.usage.prompt_tokens,
        completion_tokens=run.usage.completion_tokens,
        cost=run.usage.cost,
    )


async def record_failure(run: Run, agent: Agent[Any, Any], exc: BaseException) -> None:
    """Audit a stopped run: `guardrail_tripped` for a guardrail, `agent_run_failed` once started."""
    events = []
    if isinstance(exc, GuardrailTripped):
        events.append(
            run.event(
                "guardrail_tripped",
                agent=agent.name,
                guardrail=exc.guardrail,
                kind=exc.kind,
                reason=exc.reason,
            )
        )
    if run.started:
        events.append(
            run.event("agent_run_failed", agent=agent.name, error=type(exc).__name__, message=str(exc)[:500])
        )
    try:
        await run.audit(events)
    except Exception:
        pass  # the original error matters more than its audit record


__all__ = ["finished_event", "record_failure", "tool_events"]
