"""Row encoding shared by the SQL stores: JSON text, session headers, tombstones, page cursors."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from agnt5.errors import InvalidInputError
from agnt5.messages import Message, iso, stored_message
from agnt5.store.base import AppliedPrune, Event, NewMessage, PruneWrite, SessionHeader

SESSION_COLUMNS = (
    "id, app_name, user_id, metadata, retention, created_at, updated_at, expires_at, active_count"
)


_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode
# JSONDecoder sets scan_once in __init__; typeshed does not declare it.
_scan: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def dumps(value: Any) -> str:
    """Compact JSON text; NaN and infinity are refused (they are not JSON)."""
    return _encode(value)


def loads(text: str) -> Any:
    """`json.loads` for JSON text this package wrote (compact, no surrounding whitespace).

    Scans from the first character without json.loads's two whitespace regex passes: a history
    read decodes one entry per message. Anything else takes the full path (and its errors).
    """
    try:
        value, end = _scan(text, 0)
    except StopIteration:
        return json.loads(text)
    return value if end == len(text) else json.loads(text)


def new_entries(messages: Sequence[NewMessage], now: float) -> list[Message]:
    """The history entries `messages` are stored as, stamped `now` (seq 0 until numbered)."""
    timestamp = iso(now)
    return [
        stored_message({**m.body, "id": m.id, "timestamp": timestamp, "metadata": m.metadata}, 0, m.tokens)
        for m in messages
    ]


def now() -> float:
    return time.time()


def header_from_row(r: Sequence[Any]) -> SessionHeader:
    """A SessionHeader from a row of SESSION_COLUMNS."""
    return SessionHeader(
        id=r[0],
        app_name=r[1],
        user_id=r[2],
        metadata=json.loads(r[3]),
        retention=json.loads(r[4]),
        created_at=r[5],
        updated_at=r[6],
        expires_at=r[7],
        message_count=int(r[8]),
    )


def event_from_row(r: Sequence[Any], session_id: str) -> Event:
    """An Event from a row of (id, created_at, type, data, seq, tokens, message id, role): `data`
    is NULL for a `message_appended` event, which its message row carries."""
    if r[3] is None:
        data = {"message_id": r[6], "seq": int(r[4]), "role": r[7], "tokens": int(r[5])}
    else:
        data = json.loads(r[3])
    return Event(int(r[0]), session_id, r[2], datetime.fromtimestamp(r[1], UTC), data)


def prune_event_data(prune: PruneWrite, applied: AppliedPrune) -> dict[str, Any]:
    """What a `prune` event records: the plan's data and what the prune changed."""
    return {
        **prune.event.data,
        "removed": applied.removed,
        "messages_before": applied.before.messages,
        "messages_after": applied.after.messages,
        "tokens_before": applied.before.tokens,
        "tokens_after": applied.after.tokens,
        "summary_seq": applied.summary_seq,
    }


def tombstone(entry: dict[str, Any], seq: int, tokens: int, pruned_by: str) -> Message:
    """A pruned message as history shows it: no content, and the prune that removed it in metadata."""
    entry["metadata"] = {**entry.get("metadata", {}), "pruned_by": pruned_by}
    return stored_message(entry, seq, tokens, pruned=True)


def encode_cursor(updated_at: float, session_id: str) -> str:
    """The opaque `Session.list` cursor after a session (ordered by update time, then id)."""
    raw = dumps([updated_at, session_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        updated_at, session_id = json.loads(base64.urlsafe_b64decode(padded))
        return float(updated_at), str(session_id)
    except (ValueError, TypeError) as exc:
        raise InvalidInputError(
            f"invalid cursor {cursor!r}: pass back the next_cursor of a previous page"
        ) from exc
