"""One model turn's tool calls, run so that the run can be resumed: journalled as they go.

`run_step` decides which calls wait for approval, writes the step to the session's journal
(`agnt5.journal`) before any tool runs — unless every call is safe to repeat (idempotent tools,
handoffs, the output tool) and none waits —, runs the others concurrently and records each
result as it completes. The step's messages reach the history whole, through `Run.append_soon`.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agnt5 import journal as journals
from agnt5.agent_tools import FINAL_RESULT_TOOL
from agnt5.approvals import needs_approval
from agnt5.journal import AWAITING, DONE, RUNNING, STEP_KEY, CallRecord, Step, lease_end
from agnt5.models import ToolCall
from agnt5.tools import Tool, ToolResult

FLUSH_DELAY = 0.001  # seconds a finished call's result waits for others to join its journal write

if TYPE_CHECKING:
    from agnt5.agent import Agent
    from agnt5.agent_run import Run

Ran = tuple[ToolResult, float]  # a call's result and how long it took (seconds)
OnResult = Callable[[ToolCall, ToolResult, float], Awaitable[None]]


@dataclass
class StepOutcome:
    """What a step's calls gave: a result per call (None while it waits for a decision)."""

    calls: list[ToolCall]
    results: list[Ran | None]
    step: Step | None  # None when nothing was journalled

    @property
    def waiting(self) -> bool:
        return self.step is not None and bool(self.step.awaiting)

    def ran(self) -> list[tuple[ToolCall, Ran]]:
        return [(c, r) for c, r in zip(self.calls, self.results, strict=True) if r is not None]


def is_idempotent(call: ToolCall, tools: Mapping[str, Tool], pure: set[str]) -> bool:
    """Safe to run again: an idempotent tool, or no tool at all (handoffs, the output tool,
    unknown names — those only produce a message)."""
    if call.name in pure or call.name not in tools:
        return True
    return bool(getattr(tools[call.name], "idempotent", False))


async def run_step(
    agent: Agent[Any, Any],
    run: Run,
    assistant: dict[str, Any],
    calls: Sequence[ToolCall],
    handoffs: Mapping[str, Agent[Any, Any]],
    tools: Sequence[Tool],
) -> StepOutcome:
    """Run the step's calls concurrently, journalled unless every call may safely run again."""
    pure = {*handoffs, FINAL_RESULT_TOOL} if agent.output_type is not None else set(handoffs)
    by_name = {t.name: t for t in tools}
    waiting = set()
    for call in calls:
        if call.name not in pure and await needs_approval(by_name.get(call.name), run.ctx, call.arguments):
            waiting.add(call.id)
    idempotent = {c.id: is_idempotent(c, by_name, pure) for c in calls}
    step: Step | None = None
    if waiting or not all(idempotent.values()):
        records = [
            CallRecord(c.id, c.name, c.arguments, AWAITING if c.id in waiting else RUNNING, idempotent[c.id])
            for c in calls
        ]
        step = Step(f"step_{os.urandom(8).hex()}", run.run_id, agent.name, assistant, records)
        if len(waiting) < len(calls):  # calls will run: other processes leave the step alone
            step.lease_until = lease_end()
        await run.journal.begin(step)
        run.live(step.id)
    runnable = [c for c in calls if c.id not in waiting]
    recorder = Recorder(run, step, runnable, idempotent) if step is not None else None
    results = await run_calls(agent, run, step, runnable, handoffs, tools, recorder)
    if step is not None and step.awaiting and step.lease_until:
        await run.journal.lease([step.id], 0.0)  # paused: nothing runs until a decision
    by_id = dict(zip([c.id for c in runnable], results, strict=True))
    return StepOutcome(list(calls), [by_id.get(c.id) for c in calls], step)


async def run_calls(
    agent: Agent[Any, Any],
    run: Run,
    step: Step | None,
    calls: Sequence[ToolCall],
    handoffs: Mapping[str, Agent[Any, Any]],
    tools: Sequence[Tool],
    recorder: Recorder | None,
) -> list[Ran]:
    """Run `calls` of a journalled step, renewing its lease while they run."""
    renewal = _Renewal(run, step.id) if step is not None and calls else None
    try:
        return await agent._run_tools(run, calls, handoffs, tools, recorder)
    finally:
        if renewal is not None:
            await renewal.stop()
        if recorder is not None:
            await recorder.settle()


class _Renewal:
    """Renews a step's lease every third of `LEASE_SECONDS` while its calls run. A timer until
    the first renewal is due (most steps end long before): no task to start and cancel."""

    def __init__(self, run: Run, step_id: str) -> None:
        self.run, self.step_id = run, step_id
        self.task: asyncio.Task[None] | None = None
        self.timer = asyncio.get_running_loop().call_later(journals.LEASE_SECONDS / 3, self._start)

    def _start(self) -> None:
        self.task = asyncio.ensure_future(self._renew())

    async def _renew(self) -> None:
        while True:
            await self.run.journal.lease([self.step_id], lease_end())
            await asyncio.sleep(journals.LEASE_SECONDS / 3)

    async def stop(self) -> None:
        self.timer.cancel()
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


class Recorder:
    """Journals a step's results as they complete. Results that complete together go in one
    write, started `FLUSH_DELAY` after the first; none is written when the step then goes to the
    history anyway (all calls done, none waiting: that write carries them), and an idempotent
    call's result starts no write (it may simply run again) but goes with the next one, and with
    a pause. Dropping a write only makes a crashed call "interrupted"."""

    def __init__(
        self, run: Run, step: Step, calls: Sequence[ToolCall], idempotent: Mapping[str, bool]
    ) -> None:
        self.run, self.step, self.idempotent = run, step, idempotent
        self.left = len(calls)
        self.unsaved: list[tuple[str, str, bool, float]] = []
        self.flushing: asyncio.Future[None] | None = None
        self.timer: asyncio.TimerHandle | None = None

    async def __call__(self, call: ToolCall, result: ToolResult, duration: float) -> None:
        self.left -= 1
        found = self.step.call(call.id)
        if found is not None:
            found.state, found.content, found.is_error = DONE, result.content, result.is_error
            found.duration_ms = round(duration * 1000, 3)
        # An idempotent call's result is kept for a pause (then it is written), not flushed for.
        self.unsaved.append((call.id, result.content, result.is_error, round(duration * 1000, 3)))
        if self.left and not self.idempotent[call.id] and self.flushing is None and self.timer is None:
            # Calls finishing within the next moment join this write (parallel calls of fast
            # tools end together: then the step goes to the history with them, and none is made).
            self.timer = asyncio.get_running_loop().call_later(FLUSH_DELAY, self._flush_now)

    def _flush_now(self) -> None:
        self.timer = None
        if self.unsaved and self.left and self.flushing is None:
            self.flushing = asyncio.ensure_future(self._flush())

    async def _flush(self) -> None:
        while self.unsaved and (self.left or self.step.awaiting):
            batch, self.unsaved = self.unsaved, []
            await self.run.journal.record(self.step.id, batch)
        self.flushing = None

    async def settle(self) -> None:
        """After the calls: wait for (or skip) the pending write; a step that waits for a decision
        has every result journalled before the run pauses."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.flushing is not None:
            await self.flushing
        if self.step.awaiting and self.unsaved:
            await self._flush()


def step_meta(agent_name: str, step: Step | None) -> dict[str, Any]:
    """The stored metadata of a step's assistant message: its agent and, if journalled, its step id
    (which tells a later run the step reached the history)."""
    return {"agent": agent_name} if step is None else {"agent": agent_name, STEP_KEY: step.id}


__all__ = ["Recorder", "StepOutcome", "run_step", "step_meta"]
