"""The durable journal of a session's tool steps in flight: what makes runs resumable.

A model turn that calls tools is a *step*: one assistant message and its calls. Its messages reach
the session's history only whole (the assistant message with every result, one transaction), so
until then the step lives here, in the store's key/value table (namespace `agnt5.steps`, key the
session id; compare-and-set keeps concurrent writers apart):

- before any of its tools run, the step is written with each call `running` — or `awaiting` a
  decision when its tool requires approval;
- each result is written as it completes (the last one goes straight into the history);
- once the history holds the step, its entry is removed — in the same transaction as the step's
  append where the store can (SQLite), else right after.

A run that starts on a session with a step here finishes that step first (`agnt5.resume`):
stored results are reused (never run twice), approved calls run, a `running` call without a
result runs again only if its tool is idempotent, otherwise the model is told it was interrupted.
A step whose messages are already in the history (a crash between the two writes) is dropped.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from agnt5.approvals import PendingCall, parse_arguments
from agnt5.errors import UpdateConflictError

if TYPE_CHECKING:
    from agnt5.messages import Message
    from agnt5.session import Session
    from agnt5.store.base import Store

NAMESPACE = "agnt5.steps"
STEP_KEY = "step"  # metadata key of a journalled step's assistant message: the step id
AWAITING, RUNNING, DONE = "awaiting", "running", "done"


LIVE: set[str] = set()
"""Ids of the steps a run of this process is executing: a run starting on the same session leaves
them to it (it would otherwise take them for a crashed run's)."""


LEASE_SECONDS = 30.0
"""How long a step's calls count as running after the run executing them last said so: it renews
the lease every third of this while its tools run. A run of another process that finds a step
under lease leaves it alone (`StepInProgressError` when it has nothing else to do); once a
crashed run's lease expires, the step is resumed."""


def now() -> float:
    """The journal's clock (seconds since the epoch); tests replace it to age pending calls."""
    return time.time()


def lease_end() -> float:
    """When a lease taken now expires."""
    return now() + LEASE_SECONDS


@dataclass
class CallRecord:
    """One call of a step and how far it got."""

    id: str
    name: str
    arguments: str
    state: str  # AWAITING, RUNNING or DONE
    idempotent: bool = False
    content: str | None = None
    is_error: bool = False
    duration_ms: float = 0.0
    decision: str | None = None  # "approved" / "denied" once decided
    decided_by: str | None = None
    decided_at: float | None = None
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None and v is not False and v != 0.0}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CallRecord:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass
class Step:
    """A model turn whose tool calls are not all stored in the history yet."""

    id: str
    run_id: str
    agent: str
    assistant: dict[str, Any]
    calls: list[CallRecord]
    created_at: float = field(default_factory=lambda: now())
    lease_until: float = 0.0  # while its calls run: the run executing them renews this

    @property
    def awaiting(self) -> list[CallRecord]:
        return [c for c in self.calls if c.state == AWAITING]

    def call(self, call_id: str) -> CallRecord | None:
        return next((c for c in self.calls if c.id == call_id), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "run_id": self.run_id,
            "agent": self.agent,
            "assistant": self.assistant,
            "calls": [c.to_json() for c in self.calls],
            "created_at": self.created_at,
            "lease_until": self.lease_until,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Step:
        return cls(
            str(data["id"]),
            str(data.get("run_id", "")),
            str(data["agent"]),
            dict(data["assistant"]),
            [CallRecord.from_json(c) for c in data.get("calls", [])],
            float(data.get("created_at", 0.0)),
            float(data.get("lease_until", 0.0)),
        )

    def pending(self, session_id: str) -> list[PendingCall]:
        return [
            PendingCall(
                c.id,
                c.name,
                parse_arguments(c.arguments),
                self.agent,
                session_id,
                self.run_id,
                datetime.fromtimestamp(self.created_at, UTC),
            )
            for c in self.awaiting
        ]


def decode(value: Any) -> list[Step]:
    steps = value.get("steps", []) if isinstance(value, Mapping) else []
    return sorted((Step.from_json(s) for s in steps), key=lambda s: s.created_at)


def unfinished(steps: Sequence[Step], history: Sequence[Mapping[str, Any]]) -> list[Step]:
    """The steps whose messages are not in `history` (a step written there is finished)."""
    if not steps:
        return []
    stored = {
        m.get("metadata", {}).get(STEP_KEY)
        for m in history
        if m.get("role") == "assistant" and isinstance(m.get("metadata"), Mapping)
    }
    return [s for s in steps if s.id not in stored]


class Journal:
    """The steps in flight of one session, written with compare-and-set (version cached)."""

    def __init__(self, session: Session, steps: Sequence[Step] = (), version: int | None = None) -> None:
        self.session = session
        self.steps: dict[str, Step] = {s.id: s for s in steps}
        self.version = version  # None: not read yet
        self._lock = asyncio.Lock()

    async def read(self) -> list[Step]:
        found = await self.session.store.kv_get(NAMESPACE, self.session.id)
        self.version = 0 if found is None else found[1]
        self.steps = {s.id: s for s in decode(None if found is None else found[0])}
        return list(self.steps.values())

    async def update(self, change: Callable[[dict[str, Step]], None]) -> None:
        """Apply `change` to the stored steps and write them back; on a concurrent write, read
        again and re-apply (what `change` raises is raised, nothing written)."""
        async with self._lock:
            for attempt in range(60):
                if self.version is None:
                    await self.read()
                assert self.version is not None
                steps = {k: Step.from_json(s.to_json()) for k, s in self.steps.items()}
                change(steps)
                value = {"steps": [s.to_json() for s in steps.values()]}
                if not steps and self.version == 0:
                    self.steps = steps  # nothing stored, nothing to store
                    return
                # An emptied journal keeps its row ({"steps": []}): deleting it could race a writer.
                store = self.session.store
                if await store.kv_compare_and_set(NAMESPACE, self.session.id, value, self.version):
                    self.steps = steps
                    self.version += 1
                    return
                self.version = None
                if attempt > 2:
                    await asyncio.sleep(random.uniform(0, min(0.05, 0.001 * 2**attempt)))
        raise UpdateConflictError(
            f"the tool-step journal of session {self.session.id!r} kept changing under concurrent "
            "writers; retry the run"
        )

    async def begin(self, step: Step) -> None:
        def add(steps: dict[str, Step]) -> None:
            steps[step.id] = step

        await self.update(add)

    async def record(self, step_id: str, results: Sequence[tuple[str, str, bool, float]]) -> None:
        """Store results of a step's calls: (call id, content, is_error, duration in ms) each."""

        def done(steps: dict[str, Step]) -> None:
            step = steps.get(step_id)
            for call_id, content, is_error, duration_ms in results:
                call = step.call(call_id) if step is not None else None
                if call is not None:
                    call.state, call.content, call.is_error = DONE, content, is_error
                    call.duration_ms = duration_ms

        await self.update(done)

    async def lease(self, step_ids: Sequence[str], until: float) -> None:
        """Renew (or, with 0, release) the lease on steps this run executes."""

        def set_lease(steps: dict[str, Step]) -> None:
            for step_id in step_ids:
                if step_id in steps:
                    steps[step_id].lease_until = until

        await self.update(set_lease)

    async def finish(self, step_id: str) -> None:
        def drop(steps: dict[str, Step]) -> None:
            steps.pop(step_id, None)

        await self.update(drop)

    async def store_finished(
        self,
        step_id: str,
        items: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]],
        events: Sequence[Any],
    ) -> list[Message]:
        """Append a step's validated messages and events, its entry dropped from the journal in
        the same transaction where the store can (SQLite); else, or if another writer moved the
        journal on meanwhile, dropped right after."""
        async with self._lock:
            if self.version and step_id in self.steps:
                left = {k: s for k, s in self.steps.items() if k != step_id}
                value = {"steps": [s.to_json() for s in left.values()]}
                kv = (NAMESPACE, self.session.id, value, self.version)
                stored, written = await self.session._append_and_set(items, events, kv)
                if written:
                    self.steps, self.version = left, self.version + 1
                    return stored
            else:
                stored = await self.session._append(items, events, validated=True)
        await self.finish(step_id)
        return stored


def waiting(steps: Sequence[Step], session_id: str, recent: Sequence[Mapping[str, Any]]) -> list[PendingCall]:
    """The calls of `steps` waiting for a decision, oldest first; `recent` (the newest messages)
    tells which steps already reached the history."""
    return [p for s in unfinished([s for s in steps if s.awaiting], recent) for p in s.pending(session_id)]


async def pending_calls(session: Session) -> list[PendingCall]:
    """The tool calls of `session` waiting for a decision, oldest first."""
    steps = [s for s in await Journal(session).read() if s.awaiting]
    if not steps:  # the usual row: an emptied journal (no history read needed)
        return []
    return waiting(steps, session.id, await session.history(limit=50))


pending_approvals = pending_calls  # `agnt5.pending_approvals` (agnt5.pending_calls is another module)


async def sessions_with_steps(store: Store) -> list[str]:
    """Ids of the sessions with a journal row (it may hold no step, or only finished ones)."""
    return await store.kv_keys(NAMESPACE)


__all__ = [
    "CallRecord",
    "Journal",
    "Step",
    "pending_approvals",
    "pending_calls",
    "sessions_with_steps",
    "unfinished",
    "waiting",
]
