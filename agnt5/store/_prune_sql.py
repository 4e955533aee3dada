"""SQL of the pruning methods of SqliteStore, run on the store's connection thread.

Windows are chosen in the database from the stored (pos, seq, tokens, role) of each message: a
running sum over the newest messages, no history loaded into Python, nothing re-tokenised. A
prune is applied in one BEGIN IMMEDIATE transaction that moves exactly the planned seqs, so a
message appended while the prune was being planned (an LLM call can take seconds) is never lost.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Mapping, Sequence
from typing import Any

from agnt5.errors import ImmutableSessionError, PruneConflictError
from agnt5.store import _sqlite_counters as counters
from agnt5.store._rows import dumps, new_entries, prune_event_data
from agnt5.store.base import AppliedPrune, CutPoint, HistoryStats, PruneWrite, WindowCut

_SYSTEM = "('system', 'developer')"
_STATS = f"""
SELECT COUNT(*), COALESCE(SUM(tokens), 0),
       COALESCE(SUM(role IN {_SYSTEM}), 0),
       COALESCE(SUM(CASE WHEN role IN {_SYSTEM} THEN tokens ELSE 0 END), 0)
FROM (SELECT tokens, json_extract(entry, '$.role') AS role FROM messages WHERE session_id = ?)
"""
_SIZED = f"""
WITH sized AS (
    SELECT pos, seq, role,
           COUNT(*) OVER newest AS kept_messages,
           SUM(tokens) OVER newest AS kept_tokens
    FROM (SELECT pos, seq, tokens, json_extract(entry, '$.role') AS role
          FROM messages WHERE session_id = :id)
    WHERE role NOT IN {_SYSTEM}
    WINDOW newest AS (ORDER BY pos DESC ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
)
"""
_OLDEST_FITTING_USER = (
    _SIZED
    + """
SELECT pos, seq, kept_messages, kept_tokens FROM sized
WHERE role = 'user' AND (:max_messages IS NULL OR kept_messages <= :max_messages)
      AND (:room IS NULL OR kept_tokens <= :room)
ORDER BY pos LIMIT 1
"""
)
_NEWEST_USER = """
SELECT m.pos, m.seq,
       (SELECT COUNT(*) FROM messages k WHERE k.session_id = :id AND k.pos >= m.pos
            AND json_extract(k.entry, '$.role') NOT IN ('system', 'developer')),
       (SELECT COALESCE(SUM(k.tokens), 0) FROM messages k WHERE k.session_id = :id AND k.pos >= m.pos
            AND json_extract(k.entry, '$.role') NOT IN ('system', 'developer'))
FROM messages m WHERE m.session_id = :id AND json_extract(m.entry, '$.role') = 'user'
ORDER BY m.pos DESC LIMIT 1
"""


def history_stats(conn: sqlite3.Connection, session_id: str) -> HistoryStats:
    row = conn.execute(_STATS, (session_id,)).fetchone()
    return HistoryStats(int(row[0]), int(row[1]), int(row[2]), int(row[3]))


def _cut(row: Sequence[Any] | None) -> CutPoint | None:
    return None if row is None else CutPoint(float(row[0]), int(row[1]), int(row[2]), int(row[3]))


def window_cut(
    conn: sqlite3.Connection, session_id: str, max_messages: int | None, max_tokens: int | None
) -> WindowCut:
    conn.execute("BEGIN")  # one snapshot for the three reads
    try:
        stats = history_stats(conn, session_id)
        room = None if max_tokens is None else max_tokens - stats.system_tokens
        params = {"id": session_id, "max_messages": max_messages, "room": room}
        cut = _cut(conn.execute(_OLDEST_FITTING_USER, params).fetchone())
        last = _cut(conn.execute(_NEWEST_USER, {"id": session_id}).fetchone())
    finally:
        conn.execute("COMMIT")
    return WindowCut(stats, cut, last)


def seqs_before(conn: sqlite3.Connection, session_id: str, pos: float) -> list[int]:
    rows = conn.execute(
        f"SELECT seq FROM messages WHERE session_id = ? AND pos < ? "
        f"AND json_extract(entry, '$.role') NOT IN {_SYSTEM} ORDER BY pos",
        (session_id, pos),
    )
    return [int(r[0]) for r in rows]


def read_scores(conn: sqlite3.Connection, session_id: str, seqs: Sequence[int]) -> dict[int, float]:
    rows = conn.execute(
        "SELECT seq, score FROM message_scores WHERE session_id = ? "
        "AND seq IN (SELECT value FROM json_each(?))",
        (session_id, dumps(list(seqs))),
    )
    return {int(r[0]): float(r[1]) for r in rows}


def save_scores(conn: sqlite3.Connection, session_id: str, scores: Mapping[int, float], model: str) -> None:
    now = time.time()
    conn.executemany(
        "INSERT INTO message_scores (session_id, seq, score, model, scored_at) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (session_id, seq) DO UPDATE SET score = excluded.score, model = excluded.model, "
        "scored_at = excluded.scored_at",
        [(session_id, int(seq), float(score), model, now) for seq, score in scores.items()],
    )


def apply_prune(conn: sqlite3.Connection, session_id: str, prune: PruneWrite) -> AppliedPrune:
    """Runs inside the caller's BEGIN IMMEDIATE transaction; raising rolls everything back."""
    row = conn.execute("SELECT immutable FROM sessions WHERE id = ?", (session_id,)).fetchone()
    if row is None:
        raise PruneConflictError(f"session {session_id!r} no longer exists; nothing was pruned")
    if row[0]:
        raise ImmutableSessionError(f"session {session_id!r} is immutable and cannot be pruned")
    counters.settle(conn, session_id)  # exact counters before messages move away from the tail
    now = time.time()
    before = history_stats(conn, session_id)
    seqs = dumps(sorted(set(prune.remove_seqs)))
    chosen = "session_id = :id AND seq IN (SELECT value FROM json_each(:seqs))"
    params = {"id": session_id, "seqs": seqs, "prune": prune.prune_id, "now": now}
    found, last_pos = conn.execute(
        f"SELECT COUNT(*), MAX(pos) FROM messages WHERE {chosen}", params
    ).fetchone()
    wanted = len(set(prune.remove_seqs))
    if found != wanted:
        raise PruneConflictError(
            f"{wanted - found} of the {wanted} messages this prune planned to remove from session "
            f"{session_id!r} are no longer active (another prune ran meanwhile); nothing was "
            "changed — run the prune again"
        )
    conn.execute(
        "INSERT INTO pruned_messages (session_id, pos, seq, event_id, created_at, tokens, entry, "
        "pruned_by, pruned_at) SELECT session_id, pos, seq, event_id, created_at, tokens, "
        f"json_remove(entry, '$.content', '$.tool_calls'), :prune, :now FROM messages WHERE {chosen}",
        params,
    )
    conn.execute(f"DELETE FROM messages WHERE {chosen}", params)
    summary_seq = None
    if prune.summary is not None:
        summary_seq = _insert_summary(conn, session_id, prune, last_pos, now)
    added = 0 if summary_seq is None else 1
    conn.execute(
        "UPDATE sessions SET active_count = active_count - ? + ?, updated_at = ?, "
        "expires_at = ? + ttl_days * 86400.0 WHERE id = ?",
        (found, added, now, now, session_id),
    )
    if prune.scores:
        save_scores(conn, session_id, prune.scores, prune.score_model)
    applied = AppliedPrune(found, before, history_stats(conn, session_id), summary_seq)
    event_id = conn.execute(
        "UPDATE sessions SET next_event = next_event + 1 WHERE id = ? RETURNING next_event - 1",
        (session_id,),
    ).fetchone()[0]
    conn.execute(
        "INSERT INTO events (session_id, id, created_at, type, data) VALUES (?, ?, ?, ?, ?)",
        (session_id, event_id, now, prune.event.type, dumps(prune_event_data(prune, applied))),
    )
    return applied


def _insert_summary(
    conn: sqlite3.Connection, session_id: str, prune: PruneWrite, last_pos: float | None, now: float
) -> int:
    """Insert the summary right after the last message it replaces (before everything kept)."""
    summary = prune.summary
    assert summary is not None
    # Tombstones keep their positions: the summary's must differ from theirs too, or pruning the
    # summary later would collide with one (a position between the neighbours of both kinds).
    if last_pos is None:
        first = conn.execute("SELECT MIN(pos) FROM messages WHERE session_id = ?", (session_id,)).fetchone()[
            0
        ]
        first = first or 1.0
        below = conn.execute(
            "SELECT MAX(pos) FROM pruned_messages WHERE session_id = ? AND pos < ?", (session_id, first)
        ).fetchone()[0]
        pos = first - 0.5 if below is None else (below + first) / 2
    else:
        nxt = conn.execute(
            "SELECT MIN(pos) FROM (SELECT MIN(pos) AS pos FROM messages WHERE session_id = ? AND pos > ? "
            "UNION ALL SELECT MIN(pos) FROM pruned_messages WHERE session_id = ? AND pos > ?)",
            (session_id, last_pos, session_id, last_pos),
        ).fetchone()[0]
        pos = last_pos + 0.5 if nxt is None else (last_pos + nxt) / 2
    seq, event_id = conn.execute(
        "UPDATE sessions SET next_seq = next_seq + 1, next_event = next_event + 1 WHERE id = ? "
        "RETURNING next_seq - 1, next_event - 1",
        (session_id,),
    ).fetchone()
    conn.execute(
        "INSERT INTO messages (session_id, pos, seq, event_id, created_at, tokens, entry) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (session_id, pos, seq, event_id, now, summary.tokens, dumps(new_entries([summary], now)[0])),
    )
    return int(seq)
