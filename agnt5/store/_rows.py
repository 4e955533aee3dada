"""Row encoding shared by the SQL stores: JSON text, session headers, tombstones, page cursors."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from agnt5.errors import InvalidInputError, InvalidTypeError
from agnt5.messages import Message, iso, stored_message
from agnt5.store.base import (
    AppliedPrune,
    Event,
    MemoryWrite,
    NewEvent,
    NewMessage,
    PruneWrite,
    Removal,
    SessionHeader,
)

SESSION_COLUMNS = (
    "id, app_name, user_id, metadata, retention, created_at, updated_at, expires_at, active_count"
)


_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode
# JSONDecoder sets scan_once in __init__; typeshed does not declare it.
_scan: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def dumps(value: Any) -> str:
    """Compact JSON text; NaN and infinity are refused (they are not JSON)."""
    return _encode(value)


MAX_INT = 2**63 - 1  # the largest integer either database holds


def clamp(n: int) -> int:
    """`n` (a limit, a count) within what a database integer holds: a larger limit means "all"."""
    return max(0, min(n, MAX_INT))


def timestamp(value: float, field: str) -> float:
    """`value` as epoch seconds (a float); an InvalidInputError when no float can hold it."""
    try:
        return float(value)
    except (OverflowError, TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"{field} must be a time in epoch seconds, got {value!r}", field=field
        ) from exc


def encode(value: Any, field: str) -> str:
    """`dumps(value)` for a value about to be stored, with what cannot be stored refused as an
    InvalidInputError naming `field` (and the path inside it): text that is not valid Unicode
    (a lone surrogate), NaN or infinity, values JSON cannot hold, nesting too deep to encode."""
    try:
        text = _encode(value)
    except RecursionError:
        raise InvalidInputError(f"{field} is nested too deeply to store; flatten it", field=field) from None
    except ValueError as exc:
        raise InvalidInputError(f"{field} cannot be stored: {exc}", field=field) from exc
    except TypeError as exc:
        raise InvalidTypeError(
            f"{field} cannot be stored: {exc}; use JSON values (str, int, float, bool, None, list, dict)",
            field=field,
        ) from exc
    return check_text(text, field, value)


def check_text(text: str, field: str, value: Any = None) -> str:
    """`text`, if it can be written as UTF-8; else an InvalidInputError naming where in `value`
    (default: `text` itself) the lone surrogate is. Databases store UTF-8, which has no encoding
    for a lone surrogate ('\\ud800'): binding one would fail on the database thread."""
    if text.isascii():
        return text
    try:
        text.encode()
    except UnicodeEncodeError:
        where = _surrogate_path(text if value is None else value, field) or field
        raise InvalidInputError(
            f"{where} holds a lone surrogate (e.g. '\\ud800'), which is not valid Unicode and "
            "cannot be stored; decode the text properly or replace it (errors='replace')",
            field=where,
        ) from None
    return text


def _surrogate_path(value: Any, path: str) -> str | None:
    """The dotted path of the first string (or key) in `value` that is not valid UTF-8 text."""
    if isinstance(value, str):
        return None if _encodable(value) else path
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(k, str) and not _encodable(k):
                return f"{path}.{k!r}"
            found = _surrogate_path(v, f"{path}.{k}")
            if found is not None:
                return found
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            found = _surrogate_path(v, f"{path}[{i}]")
            if found is not None:
                return found
    return None


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def check_header(header: SessionHeader) -> None:
    """Refuse, as InvalidInputError, a session header the database could not store.

    A Session passes the same header object to every append: it is checked once (anything
    that still fails on the database thread is a typed error there, without the field)."""
    if _checked_headers.get(header.id) is header:
        return
    check_text(header.id, "session id")
    if header.app_name is not None:
        check_text(header.app_name, "app_name")
    if header.user_id is not None:
        check_text(header.user_id, "user_id")
    encode(header.metadata, "session metadata")
    encode(header.retention, "retention")
    if len(_checked_headers) >= 10_000:
        _checked_headers.clear()
    _checked_headers[header.id] = header


_checked_headers: dict[str, SessionHeader] = {}


def check_events(events: Sequence[NewEvent]) -> None:
    """Refuse, as InvalidInputError, an event the database could not store."""
    encode_events(events)


def encode_events(events: Sequence[NewEvent]) -> list[tuple[str, str]]:
    """(type, data as JSON text) of each event, checked: an event the database could not store
    is refused as InvalidInputError."""
    return [(check_text(e.type, "event type"), encode(e.data, f"{e.type} event data")) for e in events]


def encode_memory(write: MemoryWrite) -> str:
    """A memory write's metadata as JSON text, its key and content checked likewise."""
    check_text(write.key, "memory key")
    check_text(write.content, "memory content")
    return encode(write.metadata, "memory metadata")


def value_error(exc: BaseException) -> InvalidInputError | None:
    """The input error for a value a database driver could not bind; None for anything else."""
    if isinstance(exc, UnicodeError):
        return InvalidInputError(
            f"a value cannot be stored: {exc} (text must be valid Unicode, without lone "
            "surrogates); nothing was written"
        )
    if isinstance(exc, OverflowError):
        return InvalidInputError(f"a number is too large to store: {exc}; nothing was written")
    return None


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


def appended_event_data(message: Message) -> dict[str, Any]:
    """The `message_appended` event data of a message, as read_events derives it from its row."""
    return {
        "message_id": message["id"],
        "seq": message.seq,
        "role": message["role"],
        "tokens": message.tokens,
    }


def removal_event_data(removal: Removal, removed: Sequence[Message]) -> dict[str, Any]:
    """What a `message_popped` / `history_rewound` event records: the ids and seqs removed."""
    return {
        **removal.event.data,
        "removed": len(removed),
        "message_ids": [m["id"] for m in removed],
        "seqs": [m.seq for m in removed],
    }


def tombstone_entry(entry_text: str) -> str:
    """The stored entry of a pruned message: the entry without its content and tool calls."""
    entry = loads(entry_text)
    return dumps({k: v for k, v in entry.items() if k not in ("content", "tool_calls")})


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
