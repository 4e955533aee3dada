"""The state of one agent run, kept apart from the Agent (a definition shared by any number of runs).

A run writes to its session: the one given to `run(session=...)`, else the agent's own, else a
fresh session kept in process memory for that run alone (`agnt5.run_store`). Nothing
run-specific is ever stored on an Agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from agnt5 import journal as journals
from agnt5 import tracing
from agnt5.approvals import PendingCall
from agnt5.errors import InvalidTypeError
from agnt5.journal import Journal, Step
from agnt5.messages import validate_message
from agnt5.pending_calls import unanswered_calls
from agnt5.run_context import RunContext
from agnt5.store.base import NewEvent
from agnt5.usage import Usage, UsageLimits

if TYPE_CHECKING:
    from agnt5.agent import Agent
    from agnt5.hooks import RunHooks
    from agnt5.messages import Message
    from agnt5.session import Session

T = TypeVar("T")


def run_local_session(model: str) -> Session:
    """A fresh session for one run that was given none: in process memory, on a RunStore of its
    own (no database, nothing to delete: it goes when the run's objects go)."""
    from agnt5.run_store import RunStore
    from agnt5.session import Session

    session = Session(f"run-{os.urandom(12).hex()}", store=RunStore(), model=model)
    session._header = session._merge(None)  # new by construction: no need to ask the store
    return session


@dataclass
class Run:
    """State shared by the agents of one run (a handoff continues the same run)."""

    run_id: str
    session: Session
    ctx: RunContext[Any]
    durable: bool  # the session is the application's (audit events are stored); else run-local
    limits: UsageLimits | None = None
    hooks: RunHooks[Any] | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    turns: int = 0
    tool_calls: int = 0
    started: bool = False
    rendered: str | None = None  # the first request's instructions, rendered before the input is stored
    handoff_to: Agent[Any, Any] | None = None
    output: Any = None
    done: bool = False
    final: list[tuple[Mapping[str, Any], Mapping[str, Any]]] = field(default_factory=list)

    writing: asyncio.Future[None] | None = None  # messages being stored (awaited by `settle`)
    journal: Journal = field(init=False)  # the session's tool steps in flight (agnt5.journal)
    steps: list[Step] = field(default_factory=list)  # steps found unfinished when the run started
    busy: list[Step] = field(default_factory=list)  # unfinished steps another process runs (leased)
    pending: list[PendingCall] = field(default_factory=list)  # calls waiting: the run paused
    own_steps: list[str] = field(default_factory=list)  # steps this run is executing

    def __post_init__(self) -> None:
        # A run-local session is new: its journal is known to be empty without asking the store.
        self.journal = Journal(self.session, version=None if self.durable else 0)

    def live(self, step_id: str) -> None:
        """Mark a step as executed by this run (other runs of the process leave it alone)."""
        journals.LIVE.add(step_id)
        self.own_steps.append(step_id)

    def release(self) -> None:
        for step_id in self.own_steps:
            journals.LIVE.discard(step_id)
        self.own_steps.clear()

    async def drop_leases(self) -> None:
        """A run stopping early (an error, a cancel) no longer executes its steps: their leases
        go, so a run resumes them at once rather than after the lease expires."""
        leased = [sid for sid in self.own_steps if self.journal.steps.get(sid, None) is not None]
        if leased:
            await asyncio.shield(self.journal.lease(leased, 0.0))

    def event(self, type: str, **data: Any) -> NewEvent:
        """An audit event of this run, carrying the trace and span ids it happened under (if traced)."""
        return NewEvent(type, {"run_id": self.run_id, **tracing.current_ids(), **data})

    def add_usage(self, usage: Usage) -> None:
        self.turns += 1
        self.usage += usage
        self.ctx.usage = self.usage

    async def read(self) -> list[dict[str, Any]]:
        await self.settle()
        return list(await self.session.history())

    async def open(
        self,
        items: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]],
        events: Sequence[NewEvent],
        hold: bool = False,
    ) -> tuple[list[dict[str, Any]], bool]:
        """Start on an application's session: its history, with the run's input and start
        events stored after it in the same store call (one transaction: one trip to the database
        thread, where a read and an append take two), the journal read with it. Returns (history
        with the input, True) — or (history, False) with nothing stored when it ends with tool
        calls never answered or the journal holds an unfinished step (`self.steps`), which the
        run deals with before storing its input (then through `append_soon`); with `hold`
        (approvals to check first) nothing is stored either."""
        unfinished: list[Step] = []
        busy: list[Step] = []

        def accept(history: Sequence[Mapping[str, Any]], found: tuple[Any, int] | None) -> bool:
            steps = journals.decode(None if found is None else found[0])
            left = journals.unfinished(steps, history)
            current = journals.now()
            # Steps another run executes — of this process (live), or leased by another — are its.
            busy[:] = [s for s in left if s.id in journals.LIVE or s.lease_until > current]
            unfinished[:] = [s for s in left if s not in busy]
            return not hold and not unfinished and not unanswered_calls(history)

        key = (journals.NAMESPACE, self.session.id)
        history, stored, found = await asyncio.shield(
            self.session._read_and_append(items, events, accept, key)
        )
        self.journal.steps = {s.id: s for s in journals.decode(None if found is None else found[0])}
        self.journal.version = 0 if found is None else found[1]
        self.steps, self.busy = unfinished, busy
        if stored is None:
            return list(history), False
        self.messages.extend(stored)
        return [*history, *stored], True

    def append_soon(
        self,
        items: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]],
        events: Sequence[NewEvent] = (),
        finish: str | None = None,
    ) -> list[dict[str, Any]]:
        """Start storing messages and audit events (one transaction; with `finish`, that journal
        entry dropped with them where the store can) and return the messages, validated. The write
        is awaited by `settle` — by `store_step` at once; the answers to calls found unanswered at
        a run's start are stored while its first request is made. Invalid messages raise here,
        before any request is sent."""
        validated = [validate_message(message) for message, _ in items]
        if items or (events and self.durable):
            checked = [(body, meta) for body, (_, meta) in zip(validated, items, strict=True)]
            self.writing = asyncio.ensure_future(self._write(self.writing, checked, events, finish))
        return validated

    async def store_step(
        self,
        items: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]],
        events: Sequence[NewEvent],
        finish: str | None,
    ) -> list[dict[str, Any]]:
        """Store a tool step (its messages and audit events in one transaction, then its journal
        entry `finish` removed) before the next model request, and return its messages for that
        request. Stored first, not alongside: a store that fails stops the run before another
        billed request, and the write never competes with the request's own work."""
        await self.settle()
        start = len(self.messages)
        if self.durable:
            self.append_soon(items, events, finish)
            await self.settle()  # shielded: a cancelled run still stores the step whole
        else:  # process memory: the write never waits on anything, so nothing can cut it short
            validated = [(validate_message(m), meta) for m, meta in items]
            await self._write(None, validated, events, finish)
        return self.messages[start:]  # as stored: with their token counts, not counted again

    async def _write(
        self,
        before: asyncio.Future[None] | None,
        items: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]],
        events: Sequence[NewEvent],
        finish: str | None,
    ) -> None:
        if before is not None:
            await before
        events = events if self.durable else ()
        if finish is None:
            stored = await self.session._append(items, events, validated=True)
        else:  # the step and the end of its journal entry, together where the store can
            stored = await self.journal.store_finished(finish, items, events)
        self.messages.extend(stored)

    async def settle(self) -> None:
        """Wait for the step being stored (shielded: a cancelled run still stores it whole)."""
        writing, self.writing = self.writing, None
        if writing is not None:
            await asyncio.shield(writing)

    async def append(
        self,
        items: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]],
        events: Sequence[NewEvent] = (),
    ) -> list[dict[str, Any]]:
        """Store messages and (on an application's session) audit events in one transaction,
        after any step still being stored. Shielded: an answer is stored whole."""
        await self.settle()
        stored: list[Message]
        if self.durable:
            stored = await asyncio.shield(self.session._append(items, events))
        else:  # process memory: nothing to shield (the session goes with the run)
            stored = await self.session._append(items, ())
        self.messages.extend(stored)
        return list(stored)

    async def audit(self, events: Sequence[NewEvent]) -> None:
        """Record audit events on an application's session (a no-op on a run-local one), after
        any step still being stored (whose failure is the run's error, reported elsewhere)."""
        with contextlib.suppress(Exception):
            await self.settle()
        if self.durable and events:
            await asyncio.shield(self.session._append([], events))


async def gather_or_cancel(awaitables: Iterable[Awaitable[T]]) -> list[T]:
    """All results in order; on the first failure the others are cancelled (and awaited) before
    the error propagates, so no tool keeps running after its run stopped."""
    pending = list(awaitables)
    if len(pending) == 1:  # one call (the usual step): no task to schedule
        return [await pending[0]]
    tasks = [asyncio.ensure_future(a) for a in pending]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def input_messages(
    input: str | Mapping[str, Any] | Sequence[Mapping[str, Any]] | None,
) -> list[Mapping[str, Any]]:
    """A run's input as messages: a string is one user message."""
    if input is None:
        return []
    if isinstance(input, str):
        return [{"role": "user", "content": input}]
    if isinstance(input, Mapping):
        return [input]
    if isinstance(input, Sequence):
        messages: list[Mapping[str, Any]] = []
        for item in input:
            if not isinstance(item, Mapping):
                raise InvalidTypeError(f"agent input lists hold message dicts, got {type(item).__name__}")
            messages.append(item)
        return messages
    raise InvalidTypeError(
        f"agent input must be a string, a message dict or a list of them, got {type(input).__name__}"
    )


__all__ = ["Run", "gather_or_cancel", "input_messages", "run_local_session"]
