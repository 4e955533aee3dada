"""Undo for a session's history: `Session.pop()` and `Session.rewind(to=...)`.

Removal is ADK's rewind semantic: the removed messages vanish from the history (no tombstone,
unlike a prune) and their seqs are free again, so the next append takes the seq after the newest
message that remains. The audit trail keeps every `message_appended` event and records the
removal as a `message_popped` / `history_rewound` event naming the ids and seqs removed.

Neither ever leaves half a tool-call pair: `pop` removes the newest block (agnt5.blocks) — one
message, or an assistant tool-call message with every result answering it — and `rewind` keeps
the whole block of the message it rewinds to.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from agnt5.blocks import Block, group_blocks
from agnt5.errors import ImmutableSessionError, MessageNotFoundError, UpdateConflictError
from agnt5.messages import Message
from agnt5.store.base import NewEvent, Removal
from agnt5.values import check_name

if TYPE_CHECKING:
    from agnt5.session import Session

RETRIES = 50  # a concurrent append between the read and the removal: read again and retry
_FIRST_WINDOW = 32  # newest messages read to find the newest block (more only when it is longer)


async def pop(session: Session) -> list[Message]:
    """Remove the newest block; the removed messages, oldest first ([] for an empty history)."""
    return await _remove(session, _newest_block, "message_popped", {})


async def rewind(session: Session, to: str) -> list[Message]:
    """Remove every message after `to` (and after the rest of its tool-call block, if it is in one)."""
    check_name(to, "to")

    async def after_target(s: Session) -> tuple[list[Message], int] | None:
        history = await s.store.read_messages(s.id, None, False)
        index = next((i for i, m in enumerate(history) if m.get("id") == to), None)
        if index is None:
            raise MessageNotFoundError(
                f"session {s.id!r} has no active message {to!r} (pruned, removed or never there); "
                "pass the id of a message from session.history()"
            )
        block = _block_of(history, index)
        return (history, block.stop) if block.stop < len(history) else None

    return await _remove(session, after_target, "history_rewound", {"to": to})


async def _newest_block(session: Session) -> tuple[list[Message], int] | None:
    """(the newest messages, index of the newest block's first), None for an empty history."""
    limit = _FIRST_WINDOW
    while True:
        tail = await session.store.read_messages(session.id, limit, False)
        if not tail:
            return None
        last = _blocks(tail)[-1]
        # Tool results at the very start of the window may answer a call just before it.
        if last.kind != "orphan" or last.start > 0 or len(tail) < limit:
            return tail, last.start
        limit *= 4


Plan = Callable[["Session"], Awaitable[tuple[list[Message], int] | None]]
"""Reads the history; returns (messages, index of the first to remove), or None: nothing to remove."""


async def _remove(session: Session, plan: Plan, event_type: str, event_data: dict[str, Any]) -> list[Message]:
    header = await session._ensure()
    if header.retention.get("immutable"):
        raise ImmutableSessionError(f"session {session.id!r} is immutable; its messages cannot be removed")
    for attempt in range(RETRIES):
        found = await plan(session)
        if found is None:
            return []
        messages, start = found
        removal = Removal(messages[start].seq, messages[-1].seq, NewEvent(event_type, event_data))
        try:
            removed = await asyncio.shield(session.store.remove_messages(session.id, removal))
        except UpdateConflictError:
            # Appended to (or pruned) meanwhile: back off a little (jittered, growing) so a
            # steady stream of appends leaves a gap for the read and the removal.
            await asyncio.sleep(random.uniform(0, min(0.05, 0.001 * 2**attempt)))
            continue
        gone = {m["id"] for m in removed}
        session._tail = [m for m in session._tail if m["id"] not in gone]
        return removed
    raise UpdateConflictError(
        f"the history of session {session.id!r} kept changing under concurrent writers; nothing was "
        "removed — retry when fewer writers append to it"
    )


def _blocks(messages: list[Message]) -> list[Block]:
    return group_blocks(messages, lambda m: 0)  # block boundaries only: no token counting


def _block_of(messages: list[Message], index: int) -> Block:
    return next(b for b in _blocks(messages) if b.start <= index < b.stop)
