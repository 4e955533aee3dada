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

from agnt5 import tracing
from agnt5.errors import InvalidTypeError
from agnt5.messages import validate_message
from agnt5.pending_calls import unanswered_calls
from agnt5.run_context import RunContext
from agnt5.store.base import NewEvent
from agnt5.usage import Usage, UsageLimits

if TYPE_CHECKING:
    from agnt5.agent import Agent
    from agnt5.hooks import RunHooks
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

    writing: asyncio.Future[None] | None = None  # the step being stored while the model works

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
    ) -> tuple[list[dict[str, Any]], bool]:
        """Start on an application's session: its history, with the run's input and start
        events stored after it in the same store call (one transaction: one trip to the database
        thread, where a read and an append take two). Returns (history with the input, True) —
        or (history, False) with nothing stored when it ends with tool calls never answered,
        which the run deals with before storing its input (then through `append_soon`)."""
        history, stored = await asyncio.shield(self.session._read_and_append(items, events, _nothing_pending))
        if stored is None:
            return list(history), False
        self.messages.extend(stored)
        return [*history, *stored], True

    def append_soon(
        self,
        items: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]],
        events: Sequence[NewEvent] = (),
    ) -> list[dict[str, Any]]:
        """Start storing a step (messages and audit events, one transaction) and return its
        messages, validated, for the next prompt. The write overlaps the next model request and
        is awaited as soon as the response arrives (`settle`), before anything else happens;
        invalid messages raise here, before any request is sent."""
        validated = [validate_message(message) for message, _ in items]
        if items or (events and self.durable):
            self.writing = asyncio.ensure_future(self._write(self.writing, items, events))
        return validated

    async def _write(
        self,
        before: asyncio.Future[None] | None,
        items: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]],
        events: Sequence[NewEvent],
    ) -> None:
        if before is not None:
            await before
        self.messages.extend(await self.session._append(items, events if self.durable else ()))

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
        stored: list[dict[str, Any]] = list(
            await asyncio.shield(self.session._append(items, events if self.durable else ()))
        )
        self.messages.extend(stored)
        return stored

    async def audit(self, events: Sequence[NewEvent]) -> None:
        """Record audit events on an application's session (a no-op on a run-local one), after
        any step still being stored (whose failure is the run's error, reported elsewhere)."""
        with contextlib.suppress(Exception):
            await self.settle()
        if self.durable and events:
            await asyncio.shield(self.session._append([], events))


def _nothing_pending(history: Sequence[Mapping[str, Any]]) -> bool:
    return not unanswered_calls(history)


async def gather_or_cancel(awaitables: Iterable[Awaitable[T]]) -> list[T]:
    """All results in order; on the first failure the others are cancelled (and awaited) before
    the error propagates, so no tool keeps running after its run stopped."""
    tasks = [asyncio.ensure_future(a) for a in awaitables]
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
