"""What `agnt5 inspect` shows, read from a store as JSON-ready dicts (no web framework here).

Every function only reads. Message content stays data: the page renders it as text.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import math
import time
from collections import Counter, OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from agnt5.errors import InvalidInputError, SessionNotFoundError
from agnt5.journal import NAMESPACE, decode, waiting
from agnt5.messages import Message
from agnt5.session import Session
from agnt5.store._rows import encode_cursor
from agnt5.store.base import Event, PagedMessages, SessionHeader, Store, user_owner
from agnt5.store.url import mask_credentials

PAGE = 200
"""Messages per timeline page: the page never holds a whole long history."""
MAX_PAGE = 1000
MAX_SESSIONS = 500
"""Sessions per list page at most."""
SCAN_BATCH = 500
SCAN_LIMIT = 20_000
"""Sessions examined per text-filtered list request; the page's cursor continues the scan."""
CHART_POINTS = 400
"""The tokens-over-time chart is downsampled to about this many points on the server."""
RELOAD_EVENTS = frozenset({"prune", "message_popped", "history_rewound", "history_cleared"})
"""Events after which a live timeline is reloaded (they change messages already shown)."""


def _iso(ts: float | None) -> str | None:
    return None if not ts else datetime.fromtimestamp(ts, UTC).isoformat()


def header_json(h: SessionHeader, tokens: int | None = None) -> dict[str, Any]:
    """A session's header for the page."""
    return {
        "id": h.id,
        "app_name": h.app_name,
        "user_id": h.user_id,
        "messages": h.message_count,
        "tokens": tokens,
        "metadata": h.metadata,
        "retention": h.retention,
        "created_at": _iso(h.created_at),
        "updated_at": _iso(h.updated_at),
        "expires_at": _iso(h.expires_at),
    }


def message_json(m: Message) -> dict[str, Any]:
    """One timeline entry: the stored fields plus who wrote it, its tokens and its marks."""
    metadata = dict(m.get("metadata") or {})
    return {
        "seq": m.seq,
        "id": m.get("id"),
        "role": m.get("role"),
        "agent": metadata.get("agent") or m.get("name"),
        "content": m.get("content"),
        "tool_calls": m.get("tool_calls"),
        "tool_call_id": m.get("tool_call_id"),
        "timestamp": m.get("timestamp"),
        "tokens": m.tokens,
        "pruned": m.pruned,
        "pruned_by": metadata.get("pruned_by"),
        "summary": bool(metadata.get("summary")),
        "metadata": metadata,
    }


def event_json(e: Event) -> dict[str, Any]:
    return {
        "id": e.id,
        "type": e.type,
        "timestamp": e.timestamp.isoformat(),
        "ts": e.timestamp.timestamp(),
        "data": e.data,
    }


def _matches(h: SessionHeader, text: str) -> bool:
    fields = [h.id, h.app_name or "", h.user_id or "", json.dumps(h.metadata, ensure_ascii=False)]
    return any(text in f.casefold() for f in fields)


async def _tokens(store: Store, session_id: str) -> int | None:
    try:
        return (await store.history_stats(session_id)).tokens
    except Exception:  # a store without pruning support (RunStore) has no token sums
        return None


async def list_sessions(
    store: Store, *, app: str | None, user: str | None, text: str | None, limit: int, cursor: str | None
) -> dict[str, Any]:
    """One page of sessions, newest update first; `text` keeps those whose id, app, user or
    metadata contain it (case-insensitive), scanning at most SCAN_LIMIT sessions per call."""
    wanted = (text or "").strip().casefold()
    if not wanted:
        page = await store.list_sessions(app, user, limit, cursor)
        headers, next_cursor = list(page.sessions), page.next_cursor
    else:
        headers = []
        next_cursor = cursor
        scanned = 0
        while True:
            page = await store.list_sessions(app, user, SCAN_BATCH, next_cursor)
            for i, h in enumerate(page.sessions):
                if _matches(h, wanted):
                    headers.append(h)
                    if len(headers) == limit:
                        more = i + 1 < len(page.sessions) or page.next_cursor is not None
                        next_cursor = encode_cursor(h.updated_at, h.id) if more else None
                        break
            else:
                scanned += len(page.sessions)
                next_cursor = page.next_cursor
                if next_cursor is None or scanned >= SCAN_LIMIT:
                    break
                continue
            break
    tokens = await asyncio.gather(*(_tokens(store, h.id) for h in headers))
    rows = [header_json(h, t) for h, t in zip(headers, tokens, strict=True)]
    return {"sessions": rows, "next_cursor": next_cursor}


async def _header(store: Store, session_id: str) -> SessionHeader:
    header = await store.get_session(session_id)
    if header is None:
        raise SessionNotFoundError(f"no session with id {session_id!r} in {mask_credentials(store.url)}")
    return header


async def _page(
    store: Store, session_id: str, before: int | None, after: int | None, limit: int
) -> list[Message]:
    if isinstance(store, PagedMessages):
        return await store.read_messages_page(
            session_id, before_seq=before, after_seq=after, limit=limit, include_pruned=True
        )
    everything = await store.read_messages(session_id, None, True)  # a store of one's own
    if before is not None:
        return [m for m in everything if m.seq < before][-limit:] if limit else []
    if after is not None:
        return [m for m in everything if m.seq > after][:limit]
    return everything[-limit:] if limit else []


async def messages(
    store: Store, session_id: str, *, before: int | None, after: int | None, limit: int
) -> dict[str, Any]:
    """A page of the timeline: older than `before`, newer than `after`, or the newest."""
    await _header(store, session_id)
    rows = await _page(store, session_id, before, after, limit + 1)
    more = len(rows) > limit
    if more:
        rows = rows[1:] if after is None else rows[:limit]
    return {"messages": [message_json(m) for m in rows], "more": more}


def _owners(header: SessionHeader) -> list[tuple[str, str | None]]:
    owners: list[tuple[str, str | None]] = [("session", header.id)]
    owners.append(("user", None if header.user_id is None else user_owner(header.app_name, header.user_id)))
    owners.append(("app", header.app_name or ""))
    return owners


async def pending(store: Store, session_id: str, recent: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The session's tool calls waiting for approval (`agnt5.journal`), oldest first; `recent`
    (the newest messages) tells which journalled steps already reached the history."""
    found = await store.kv_get(NAMESPACE, session_id)
    return [
        {
            "call_id": p.call_id,
            "tool": p.tool,
            "arguments": p.arguments,
            "agent": p.agent,
            "run_id": p.run_id,
            "requested_at": p.requested_at.isoformat(),
        }
        for p in waiting(decode(None if found is None else found[0]), session_id, recent)
    ]


async def session(store: Store, session_id: str, *, limit: int = PAGE) -> dict[str, Any]:
    """A session's header, state by scope and newest messages: what the page paints first."""
    header = await _header(store, session_id)
    page = await messages(store, session_id, before=None, after=None, limit=limit)
    state: dict[str, Any] = {}
    for scope, owner in _owners(header):
        state[scope] = None if owner is None else await store.get_state(scope, owner)
    state["temp"] = None  # temp state lives in the process that set it: never stored
    return {
        "session": header_json(header),
        "pending": await pending(store, session_id, page["messages"]),
        "state": state,
        "messages": page["messages"],
        "older": page["more"],
        "store": mask_credentials(store.url),
    }


@dataclass(slots=True)
class _Trail:
    events: list[Event]
    fingerprint: tuple[float, int]  # the header's (updated_at, message_count) when read
    started: float  # wall-clock time the read started
    stamp: float  # monotonic time of the last whole read
    derived: dict[str, tuple[int, Any]] = field(default_factory=dict)  # name -> (events, value)


class EventCache:
    """The audit trails read lately: a 100,000-message session's whole trail takes seconds to
    read, and a trail only grows. A cached trail is returned as is when the session's header shows
    nothing was written since (appends and events move `updated_at`, at most once a second, or the
    message count), extended with what is new otherwise, and re-read whole after `max_age`
    seconds. At most `size` sessions are kept."""

    def __init__(self, size: int = 8, max_age: float = 300.0) -> None:
        self.size = size
        self.max_age = max_age
        self._entries: OrderedDict[str, _Trail] = OrderedDict()
        self._reading: dict[str, asyncio.Lock] = {}

    async def read(self, store: Store, session_id: str) -> list[Event]:
        # Requests arriving while a whole trail is read wait for it, then reuse or extend it.
        async with self._reading.setdefault(session_id, asyncio.Lock()):
            header = await _header(store, session_id)
            return await self._read(store, header)

    async def _read(self, store: Store, header: SessionHeader) -> list[Event]:
        fingerprint = (header.updated_at, header.message_count)
        started = time.time()
        entry = self._entries.pop(header.id, None)
        if entry is None or time.monotonic() - entry.stamp > self.max_age or not entry.events:
            entry = _Trail(
                await store.read_events(header.id, None, None), fingerprint, started, time.monotonic()
            )
        elif entry.fingerprint != fingerprint or entry.started < header.updated_at + TOUCH_INTERVAL:
            last = entry.events[-1]
            since = last.timestamp.timestamp() - SINCE_SLACK
            new = [e for e in await store.read_events(header.id, since, None) if e.id > last.id]
            entry = _Trail(entry.events + new, fingerprint, started, entry.stamp) if new else entry
            entry.fingerprint, entry.started = fingerprint, started
        self._entries[header.id] = entry
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return entry.events

    def derived(self, session_id: str, name: str, events: list[Event]) -> Any:
        """What was computed as `name` from this trail as it is now, else None."""
        entry = self._entries.get(session_id)
        if entry is None or entry.events is not events:
            return None
        found = entry.derived.get(name)
        return found[1] if found is not None and found[0] == len(events) else None

    def remember(self, session_id: str, name: str, events: list[Event], value: Any) -> None:
        entry = self._entries.get(session_id)
        if entry is not None and entry.events is events:
            entry.derived[name] = (len(events), value)


TOUCH_INTERVAL = 1.05
"""A session's `updated_at` moves at most once a second (agnt5/store/sqlite.py): a read started
this long after it has seen every write that did not move it."""
SINCE_SLACK = 0.001
"""Seconds read before a `since` time: an event's time comes back rounded to the microsecond."""


async def events(
    store: Store, cache: EventCache, session_id: str, *, type: str | None, before: int | None, limit: int
) -> dict[str, Any]:
    """The newest `limit` audit events (of one type), older than event id `before`; with counts per type."""
    every = await cache.read(store, session_id)
    counts = cache.derived(session_id, "counts", every)
    if counts is None:
        counts = dict(sorted(Counter(e.type for e in every).items()))
        cache.remember(session_id, "counts", every, counts)
    chosen = [e for e in every if (type is None or e.type == type) and (before is None or e.id < before)]
    more = len(chosen) > limit
    chosen = chosen[-limit:] if limit else []
    return {
        "events": [event_json(e) for e in reversed(chosen)],
        "counts": counts,
        "more": more,
    }


def _prune_json(e: Event, x: int) -> dict[str, Any]:
    d = e.data
    return {
        "event_id": e.id,
        "timestamp": e.timestamp.isoformat(),
        "x": x,
        "strategy": d.get("strategy"),
        "auto": d.get("auto"),
        "params": d.get("params"),
        "removed": d.get("removed"),
        "removed_seqs": d.get("removed_seqs"),
        "messages_before": d.get("messages_before"),
        "messages_after": d.get("messages_after"),
        "tokens_before": d.get("tokens_before"),
        "tokens_after": d.get("tokens_after"),
        "summary_seq": d.get("summary_seq"),
        "model": d.get("model"),
    }


def token_series(every: Sequence[Event]) -> tuple[list[tuple[int, int]], list[dict[str, Any]]]:
    """The active history's tokens after each appended message (x: messages appended so far),
    replayed from the audit trail; prunes, pops and clears bring it down."""
    points: list[tuple[int, int]] = []
    prunes: list[dict[str, Any]] = []
    tokens_of: dict[int, int] = {}
    total = 0
    x = 0
    for e in every:
        d: Mapping[str, Any] = e.data
        if e.type == "message_appended":
            x += 1
            t = int(d.get("tokens") or 0)
            tokens_of[int(d.get("seq") or 0)] = t
            total += t
        elif e.type == "prune":
            total = int(d.get("tokens_after") or 0)
            prunes.append(_prune_json(e, x))
        elif e.type in ("message_popped", "history_rewound"):
            total -= sum(tokens_of.pop(int(s), 0) for s in d.get("seqs") or ())
        elif e.type == "history_cleared":
            total = 0
        else:
            continue
        points.append((x, max(total, 0)))
    return points, prunes


def downsample(
    points: Sequence[tuple[int, int]], keep: Sequence[int], n: int = CHART_POINTS
) -> list[list[int]]:
    """At most about `n` points: per bucket its lowest and highest, plus every point at an x in `keep`."""
    if len(points) <= n:
        return [list(p) for p in points]
    size = math.ceil(len(points) / (n / 2))
    must = set(keep)
    out: list[tuple[int, int]] = []
    for start in range(0, len(points), size):
        bucket = range(start, min(start + size, len(points)))
        lo = min(bucket, key=lambda i: points[i][1])
        hi = max(bucket, key=lambda i: points[i][1])
        chosen = {bucket[0], bucket[-1], lo, hi} | {i for i in bucket if points[i][0] in must}
        out.extend(points[i] for i in sorted(chosen))
    return [list(p) for p in out]


async def activity(store: Store, cache: EventCache, session_id: str) -> dict[str, Any]:
    """The tokens-over-time chart (downsampled), the prunes, event counts and active totals."""
    every = await cache.read(store, session_id)
    known = cache.derived(session_id, "activity", every)
    if known is not None:
        return dict(known)
    points, prunes = token_series(every)
    marks = {p["x"] for p in prunes}
    stats: dict[str, int] | None
    try:
        s = await store.history_stats(session_id)
        stats = {"messages": s.messages, "tokens": s.tokens}
    except Exception:
        stats = None
    last = every[-1] if every else None
    result = {
        "points": downsample(points, sorted(marks)),
        "prunes": prunes,
        "counts": dict(sorted(Counter(e.type for e in every).items())),
        "active": stats,
        "last_event": None if last is None else {"id": last.id, "ts": last.timestamp.timestamp()},
    }
    cache.remember(session_id, "activity", every, result)
    return result


async def poll(
    store: Store,
    trails: Store,
    cache: EventCache,
    session_id: str,
    *,
    after: int,
    after_event: int,
    limit: int = MAX_PAGE,
) -> dict[str, Any]:
    """What changed since the page last looked: messages after seq `after`, events after id
    `after_event` (from the cached trail, read on `trails`), and whether the shown timeline must
    be reloaded."""
    header = await _header(store, session_id)
    rows = await _page(store, session_id, None, after, limit)
    every = await cache.read(trails, session_id)
    new_events = every[bisect.bisect_right(every, after_event, key=lambda e: e.id) :]
    last = new_events[-1] if new_events else None
    recent = await _page(store, session_id, None, None, 50)
    return {
        "session": header_json(header),
        "pending": await pending(store, session_id, [message_json(m) for m in recent]),
        "messages": [message_json(m) for m in rows],
        "events": [event_json(e) for e in new_events if e.type != "message_appended"],
        "last_event": None if last is None else {"id": last.id, "ts": last.timestamp.timestamp()},
        "reload": any(e.type in RELOAD_EVENTS for e in new_events),
    }


async def export(store: Store, session_id: str, format: str) -> str:
    """The session as `agnt5 sessions export` writes it (jsonl or json)."""
    await _header(store, session_id)
    session = await Session.get(session_id, store=store)
    return await session.export(format=format)


def _whole(value: str, name: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise InvalidInputError(f"{name} must be a whole number, got {value!r}", field=name) from None


def positive(value: str | None, name: str, default: int, maximum: int) -> int:
    """A paging parameter: a whole number from 1 to `maximum` (InvalidInputError otherwise)."""
    if value is None or value == "":
        return default
    n = _whole(value, name)
    if not 1 <= n <= maximum:
        raise InvalidInputError(f"{name} must be from 1 to {maximum}, got {n}", field=name)
    return n


def optional_int(value: str | None, name: str, minimum: int = 0) -> int | None:
    """An optional cursor parameter (a seq or an event id)."""
    if value is None or value == "":
        return None
    n = _whole(value, name)
    if n < minimum:
        raise InvalidInputError(f"{name} must be {minimum} or more, got {n}", field=name)
    return n
