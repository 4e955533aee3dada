"""SQL of SqliteStore.remove_messages (Session.pop / rewind), run on the store's connection thread
inside one BEGIN IMMEDIATE transaction.

The removed messages vanish, as in ADK's rewind: no tombstone, and their seqs are free again, so
the next append numbers right after the newest message that remains (pruned ones included, so a
seq is never shown twice). Their `message_appended` events (the message rows themselves until
now) are written to `events` with their ids, so the audit trail keeps them; scores stored for
their seqs are dropped (a later message may take the seq).
"""

from __future__ import annotations

import sqlite3

from agnt5.errors import ImmutableSessionError, UpdateConflictError
from agnt5.messages import Message, stored_message
from agnt5.store import _sqlite_counters as counters
from agnt5.store._rows import appended_event_data, dumps, loads, removal_event_data
from agnt5.store.base import Removal


def remove_messages(conn: sqlite3.Connection, session_id: str, removal: Removal, now: float) -> list[Message]:
    found = conn.execute("SELECT immutable FROM sessions WHERE id = ?", (session_id,)).fetchone()
    if found is None:
        raise UpdateConflictError(f"session {session_id!r} no longer exists; nothing was removed")
    if found[0]:
        raise ImmutableSessionError(f"session {session_id!r} is immutable; its messages cannot be removed")
    newest = conn.execute(counters.NEWEST_MESSAGE_SEQ, (session_id,)).fetchone()
    first = conn.execute(
        "SELECT pos FROM messages WHERE session_id = ? AND seq = ?", (session_id, removal.first_seq)
    ).fetchone()
    if newest is None or newest[0] != removal.newest_seq or first is None:
        raise UpdateConflictError(
            f"the history of session {session_id!r} changed meanwhile; nothing was removed (read it again)"
        )
    counters.settle(conn, session_id)  # exact counters before the tail moves back
    rows = conn.execute(
        "SELECT seq, event_id, created_at, tokens, entry FROM messages WHERE session_id = ? AND pos >= ? "
        "ORDER BY pos",
        (session_id, first[0]),
    ).fetchall()
    removed = [stored_message(loads(r[4]), int(r[0]), int(r[3])) for r in rows]
    conn.execute("DELETE FROM messages WHERE session_id = ? AND pos >= ?", (session_id, first[0]))
    seqs = dumps([m.seq for m in removed])
    conn.execute(
        "DELETE FROM message_scores WHERE session_id = ? AND seq IN (SELECT value FROM json_each(?))",
        (session_id, seqs),
    )
    conn.executemany(
        "INSERT INTO events (session_id, id, created_at, type, data) VALUES (?, ?, ?, 'message_appended', ?)",
        [(session_id, r[1], r[2], dumps(appended_event_data(m))) for r, m in zip(rows, removed, strict=True)],
    )
    conn.execute(
        "UPDATE sessions SET next_seq = 1 + coalesce((SELECT max(seq) FROM (SELECT seq FROM messages "
        "WHERE session_id = ?1 UNION ALL SELECT seq FROM pruned_messages WHERE session_id = ?1)), 0), "
        "active_count = active_count - ?2, updated_at = ?3, expires_at = ?3 + ttl_days * 86400.0 "
        "WHERE id = ?1",
        (session_id, len(removed), now),
    )
    event_id = counters.read(conn, session_id)
    assert event_id is not None
    conn.execute(
        "INSERT INTO events (session_id, id, created_at, type, data) VALUES (?, ?, ?, ?, ?)",
        (
            session_id,
            event_id.next_event,
            now,
            removal.event.type,
            dumps(removal_event_data(removal, removed)),
        ),
    )
    return removed
