"""Finishing, at the start of a run, the tool steps its session holds: decided approvals and steps
a stopped (crashed) run left behind (`agnt5.journal`).

For each unfinished step, oldest first, in the agent that made it: the decisions are claimed with
one compare-and-set (a concurrent resume of the same calls loses with `ApprovalConflictError`
before anything runs), approved calls run, denied ones answer with the denial, a call that
started without a stored result runs again if its tool is idempotent and is otherwise answered
as interrupted, stored results are reused. A step still waiting for a decision pauses the run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from agnt5.agent_events import HandoffEvent, RunEvent, ToolResultEvent
from agnt5.agent_tools import handoff_tool_name, tool_message
from agnt5.approvals import INTERRUPTED_TEXT, Decision, Denial, denial_text
from agnt5.errors import (
    ApprovalConflictError,
    ApprovalError,
    ApprovalNotPendingError,
    PendingApprovalError,
    StepInProgressError,
)
from agnt5.journal import AWAITING, DONE, LIVE, RUNNING, STEP_KEY, Step, lease_end, now
from agnt5.models import ToolCall
from agnt5.run_audit import tool_events
from agnt5.steps import Recorder, run_calls, step_meta
from agnt5.store.base import NewEvent
from agnt5.tools import ToolResult

if TYPE_CHECKING:
    from agnt5.agent import Agent
    from agnt5.agent_run import Run
    from agnt5.toolsets import RunSources


@dataclass
class Resumed:
    """Where the run goes on after the session's steps: in `agent`, with these events to yield."""

    agent: Agent[Any, Any]
    events: list[RunEvent] = field(default_factory=list)
    final: Any = None  # the output, when a resumed step gave the final result


def check_decisions(
    decisions: Mapping[str, Decision],
    steps: Sequence[Step],
    history: Sequence[Mapping[str, Any]],
    has_input: bool,
    session_id: str,
    busy: Sequence[Step] = (),
) -> None:
    """Refuse, before anything runs, decisions for calls that are not waiting, new input while
    calls wait undecided, and a resume of steps another process is running (`busy`)."""
    running = [c.id for s in busy for c in s.calls]
    if busy and (any(cid in running for cid in decisions) or (not has_input and not steps and not decisions)):
        here = any(s.id in LIVE for s in busy)
        until = 0.0 if here else max(s.lease_until for s in busy)
        held = (
            "in this process"
            if here
            else f"until {datetime.fromtimestamp(until, UTC):%Y-%m-%d %H:%M:%S} UTC at least"
        )
        raise StepInProgressError(
            f"another run is executing tool calls of session {session_id!r} ({', '.join(running)}), "
            f"{held}; nothing was done here: retry after it (a crashed run's calls are resumed "
            "once its lease expires)",
            call_ids=running,
            lease_until=until,
        )
    waiting = {c.id for s in steps for c in s.awaiting}
    stray = [cid for cid in decisions if cid not in waiting]
    if stray:
        known = {c.id for s in steps for c in s.calls} | {m.get("tool_call_id") for m in history}
        decided = [c for c in stray if c in known]
        unknown = [c for c in stray if c not in known]
        parts = []
        if unknown:
            parts.append(f"no call waits for approval under id {', '.join(map(repr, unknown))}")
        if decided:
            parts.append(f"{', '.join(map(repr, decided))} already decided or ran")
        raise ApprovalNotPendingError(
            "cannot apply approvals: " + "; ".join(parts) + " (list the waiting calls with "
            "agnt5.journal.pending_calls(session) or `agnt5 sessions pending`)",
            call_ids=stray,
        )
    undecided = [p for s in steps for p in s.pending(session_id) if p.call_id not in decisions]
    if has_input and undecided:
        ids = ", ".join(p.call_id for p in undecided)
        raise PendingApprovalError(
            f"the session has tool calls waiting for approval ({ids}); decide them first with "
            "agent.run(None, session=..., approvals={call_id: True | False | Denial(reason)}), "
            "then send the new input",
            pending=undecided,
        )


def find_agent(root: Agent[Any, Any], name: str) -> Agent[Any, Any]:
    """The agent named `name` among `root` and the agents it can hand off to (transitively)."""
    seen: set[int] = set()
    queue = [root]
    while queue:
        agent = queue.pop(0)
        if agent.name == name:
            return agent
        if id(agent) not in seen:
            seen.add(id(agent))
            queue.extend(agent.handoffs)
    raise ApprovalError(
        f"the session's unfinished tool step belongs to agent {name!r}, which agent {root.name!r} "
        f"cannot reach through its handoffs; resume it with that agent (agent {name!r}.run(None, session=...))"
    )


async def finish_steps(
    root: Agent[Any, Any],
    run: Run,
    decisions: Mapping[str, Decision],
    approved_by: str | None,
    sources: RunSources,
) -> Resumed:
    """Finish `run.steps` (see the module docstring); the run pauses (`run.pending`) at a step
    still waiting for a decision."""
    resumed = Resumed(root)
    for step in run.steps:
        agent = find_agent(root, step.agent)
        resumed.agent = agent
        run.ctx.agent_name = agent.name
        step = await _claim(run, step, decisions, approved_by)
        run.live(step.id)
        events = _decision_events(run, step, decisions, approved_by)
        handoffs = {handoff_tool_name(a): a for a in agent.handoffs}
        tools = await agent._tools_for(run, sources)
        again = [c for c in step.calls if c.state == RUNNING]
        calls = [ToolCall(c.id, c.name, c.arguments) for c in again]
        recorder = Recorder(run, step, calls, {c.id: False for c in again})
        ran = await run_calls(agent, run, step, calls, handoffs, tools, recorder) if calls else []
        for call, (result, _) in zip(calls, ran, strict=True):  # the recorder updated `step`
            resumed.events.append(
                ToolResultEvent(agent.name, call.id, call.name, result.content, result.is_error)
            )
        if step.awaiting:
            run.pending = step.pending(run.session.id)
            if step.lease_until:
                await run.journal.lease([step.id], 0.0)
            await run.audit(events)
            return resumed
        all_calls = [ToolCall(c.id, c.name, c.arguments) for c in step.calls]
        results = [(ToolResult(c.content or "", c.is_error), c.duration_ms / 1000) for c in step.calls]
        target = next((handoffs[c.name] for c in all_calls if c.name in handoffs), None)
        items = [(step.assistant, step_meta(agent.name, step))] + [
            tool_message(c, r, agent.name) for c, (r, _) in zip(all_calls, results, strict=True)
        ]
        events += tool_events(run, agent, all_calls, results, target)
        await _store(run, step, items, events)
        final = agent._final_from_tool(all_calls, results)
        if final is not None:
            resumed.final = final
            return resumed
        if target is not None:
            resumed.events.append(HandoffEvent(agent.name, target.name))
            resumed.agent = target
            run.ctx.agent_name = target.name
    return resumed


async def _claim(run: Run, step: Step, decisions: Mapping[str, Decision], approved_by: str | None) -> Step:
    """Write this resume's decisions and the interrupted calls' answers (one compare-and-set);
    the step as stored after it."""
    decided_at = now()
    conflicts: list[str] = []

    def claim(steps: dict[str, Step]) -> None:
        conflicts.clear()  # a retry (after a concurrent write) starts over
        stored = steps.get(step.id)
        if stored is None:
            conflicts.extend(c.id for c in step.calls)
            raise _conflict(run, conflicts)
        for call in stored.calls:
            decision = decisions.get(call.id)
            if decision is not None and call.state != AWAITING:
                conflicts.append(call.id)
            elif decision is not None:
                call.decision = "approved" if decision is True else "denied"
                call.decided_by, call.decided_at = approved_by, decided_at
                if decision is True:
                    call.state = RUNNING
                else:
                    call.state, call.content = DONE, denial_text(decision)
                    call.reason = decision.reason if isinstance(decision, Denial) else None
            elif call.state == RUNNING and not call.idempotent:
                call.state, call.content, call.is_error = DONE, INTERRUPTED_TEXT, True
        if any(c.state == RUNNING for c in stored.calls):  # this run executes them now
            stored.lease_until = lease_end()
        if conflicts:
            raise _conflict(run, conflicts)

    await run.journal.update(claim)
    claimed = run.journal.steps[step.id]
    return Step.from_json(claimed.to_json())


async def _store(
    run: Run, step: Step, items: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]], events: list[NewEvent]
) -> None:
    """Store the finished step unless another resume stored it first (checked in the append's
    transaction where the store has one), then drop it from the journal."""
    await run.settle()

    def absent(history: Sequence[Mapping[str, Any]], _: Any) -> bool:
        return not any(m.get("metadata", {}).get(STEP_KEY) == step.id for m in history)

    _, stored, _ = await run.session._read_and_append(items, events if run.durable else (), absent)
    if stored is None:
        raise _conflict(run, [c.id for c in step.calls])
    run.messages.extend(stored)
    await run.journal.finish(step.id)


def _conflict(run: Run, call_ids: list[str]) -> ApprovalConflictError:
    return ApprovalConflictError(
        f"another run of session {run.session.id!r} already decided or ran {', '.join(map(repr, call_ids))}; "
        "nothing ran here (read the session's history for the outcome)",
        call_ids=list(call_ids),
    )


def _decision_events(
    run: Run, step: Step, decisions: Mapping[str, Decision], approved_by: str | None
) -> list[NewEvent]:
    events = []
    for call in step.calls:
        if call.id in decisions and call.decision is not None:
            events.append(
                run.event(
                    "approval_decided",
                    agent=step.agent,
                    call_id=call.id,
                    name=call.name,
                    decision=call.decision,
                    reason=call.reason,
                    approved_by=approved_by,
                    requested_at=step.created_at,
                    decided_at=call.decided_at,
                )
            )
        elif call.content == INTERRUPTED_TEXT:
            events.append(
                run.event("tool_call_interrupted", agent=step.agent, call_id=call.id, name=call.name)
            )
    return events


__all__ = ["Resumed", "check_decisions", "find_agent", "finish_steps"]
