"""SQL of `read_messages_page` (agnt5 inspect's timeline), for SQLite and PostgreSQL alike: the
stores differ only in their placeholders."""

from __future__ import annotations

from dataclasses import dataclass

from agnt5.store._rows import MAX_INT


@dataclass(frozen=True, slots=True)
class PageQuery:
    """How to read one page: look up the position of message `anchor` with `anchor_sql` (session
    id, seq) unless it is None — then `start` bounds the page —, then read `sql` (session id,
    position, limit); rows come newest first unless `newer`."""

    anchor: int | None
    start: float
    newer: bool
    anchor_sql: str
    sql: str


def page_query(
    before_seq: int | None,
    after_seq: int | None,
    include_pruned: bool,
    *,
    session: str,
    seq: str,
    pos: str,
    limit: str,
) -> PageQuery:
    """The page before message `before_seq`, else after `after_seq` (0: from the beginning), else
    the newest; `session`, `seq`, `pos` and `limit` are the dialect's placeholders."""
    anchor_seq = before_seq if before_seq is not None else after_seq
    newer = before_seq is None and after_seq is not None
    anchor = None  # after_seq=0 starts at the beginning: no message to look up
    if anchor_seq is not None and (anchor_seq > 0 or before_seq is not None):
        anchor = min(max(anchor_seq, 0), MAX_INT)
    where = f"session_id = {session} AND pos {'>' if newer else '<'} {pos}"
    sql = f"SELECT pos, seq, tokens, entry, NULL AS pruned_by FROM messages WHERE {where}"
    if include_pruned:
        sql += f" UNION ALL SELECT pos, seq, tokens, entry, pruned_by FROM pruned_messages WHERE {where}"
    sql += f" ORDER BY pos{'' if newer else ' DESC'} LIMIT {limit}"
    anchor_sql = (
        f"SELECT pos FROM messages WHERE session_id = {session} AND seq = {seq} UNION ALL "
        f"SELECT pos FROM pruned_messages WHERE session_id = {session} AND seq = {seq} LIMIT 1"
    )
    start = float("inf") if anchor_seq is None else float("-inf")
    return PageQuery(anchor, start, newer, anchor_sql, sql)
