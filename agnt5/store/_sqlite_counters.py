"""How the SQLite store numbers a session's messages and events without writing the session row
on every append or state change.

The session row's `next_seq`, `next_event` and `active_count` are a settled floor. A writer reads
that floor, the session's newest message (highest `pos`: the end of the primary key, a page the
insert writes anyway) and its newest event, and numbers after whichever is further; it writes
only its own rows. Messages appended since the last settle are exactly seqs `next_seq` ..
`newest.seq` (appends are gap-free and land at `pos = seq`), so the active count is derived.
Anything that removes messages (prune, clear) settles the row first, in the same BEGIN IMMEDIATE
transaction, so the floor is exact before the newest message can move back. Events are never
removed while the session exists. Schema version 4 marks databases numbered this way (older
agnt5 versions refuse them rather than reuse numbers).
"""

from __future__ import annotations

import sqlite3
from typing import NamedTuple

from agnt5.store._rows import SESSION_COLUMNS

_NEWEST_MESSAGE = "SELECT {column} FROM messages WHERE session_id = {id} ORDER BY pos DESC LIMIT 1"


def _next_seq(floor: str, id: str) -> str:
    """SQL for session `id`'s next seq, given SQL for its settled floor."""
    newest = _NEWEST_MESSAGE.format(column="seq", id=id)
    return f"max({floor}, coalesce(({newest}) + 1, 0))"


def _next_event(floor: str, id: str) -> str:
    """SQL for session `id`'s next event id, given SQL for its settled floor."""
    newest = _NEWEST_MESSAGE.format(column="event_id", id=id)
    last = f"SELECT MAX(id) FROM events WHERE session_id = {id}"
    return f"max({floor}, coalesce(({newest}) + 1, 0), coalesce(({last}) + 1, 0))"


NEWEST_MESSAGE_SEQ = _NEWEST_MESSAGE.format(column="seq", id="?")
"""SQL for the seq of a session's newest active message (by position)."""

_COUNTERS = f"""
SELECT {_next_seq("next_seq", "?1")}, {_next_event("next_event", "?1")}, updated_at, next_seq
FROM sessions WHERE id = ?1
"""

# One message appended by one autocommitted statement, if its seq is ?5 (what the caller expects
# from its last append): the row count says whether it was, with no RETURNING (a fifth of the
# statement's cost) and no FROM reading the table written (which would need a temporary copy).
# Nothing is inserted when another writer moved the session on, or it does not exist.
APPEND_ONE_AS = f"""
INSERT INTO messages (session_id, pos, seq, event_id, created_at, tokens, entry)
SELECT ?1, ?5, ?5, {_next_event("(SELECT next_event FROM sessions WHERE id = ?1)", "?1")}, ?2, ?3, ?4
WHERE ?5 = {_next_seq("(SELECT next_seq FROM sessions WHERE id = ?1)", "?1")}
"""

# SESSION_COLUMNS with the active count derived: the settled count plus the seqs appended since.
SESSION_COLUMNS_SQL = SESSION_COLUMNS.replace(
    "active_count", f"active_count + {_next_seq('next_seq', 'sessions.id')} - next_seq"
)

# A session's header (SESSION_COLUMNS_SQL) and then its counters (Counters), in one statement.
HEADER_AND_COUNTERS = f"""
SELECT {SESSION_COLUMNS_SQL}, {_next_seq("next_seq", "?1")}, {_next_event("next_event", "?1")}, updated_at, next_seq
FROM sessions WHERE id = ?1
"""
HEADER_COLUMNS = SESSION_COLUMNS.count(",") + 1

# What a session row just created holds (the schema's defaults), with no message or event yet.
NEW_SESSION_SEQ = NEW_SESSION_EVENT = 1


class Counters(NamedTuple):
    """The next free numbers of a session, as the database stands."""

    next_seq: int
    next_event: int
    updated_at: float
    floor_seq: int  # the settled next_seq in the session row


def created(now: float) -> Counters:
    """The counters of a session created at `now` in the current transaction (it was absent)."""
    return Counters(NEW_SESSION_SEQ, NEW_SESSION_EVENT, now, NEW_SESSION_SEQ)


def read(conn: sqlite3.Connection, session_id: str) -> Counters | None:
    """The session's next message seq and event id (None if the session does not exist)."""
    row = conn.execute(_COUNTERS, (session_id,)).fetchone()
    return None if row is None else Counters(*row)


def settle(conn: sqlite3.Connection, session_id: str) -> None:
    """Write the derived counters into the session row (before messages are removed or numbered
    out of order)."""
    counters = read(conn, session_id)
    if counters is None:
        return
    conn.execute(
        "UPDATE sessions SET next_seq = ?, next_event = ?, active_count = active_count + ? WHERE id = ?",
        (counters.next_seq, counters.next_event, counters.next_seq - counters.floor_seq, session_id),
    )
