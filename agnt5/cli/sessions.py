"""`agnt5 sessions ...`: list, pending, show, export, prune and purge-expired on the configured
database."""

from __future__ import annotations

import argparse
import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from agnt5.approvals import PendingCall
from agnt5.cli.errors import EPILOG, UsageError
from agnt5.cli.render import compact, pending_line, transcript_line, whole_numbers
from agnt5.journal import pending_calls, sessions_with_steps
from agnt5.session import EXPORT_FORMATS, Session, purge_expired
from agnt5.store.base import SessionHeader, Store
from agnt5.strategies.registry import get_strategy

READ_ONLY = frozenset({"list", "pending", "show", "export"})
"""Subcommands that only read: they open the database read-only."""
PRUNE_PARAMS = ("window_size", "threshold", "max_messages", "keep_recent")
"""Strategy parameters the command line passes on when given (the strategy rejects the others)."""


def _when(ts: float | None) -> str:
    if not ts:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _header_json(h: SessionHeader) -> dict[str, Any]:
    return {
        "id": h.id,
        "app_name": h.app_name,
        "user_id": h.user_id,
        "messages": h.message_count,
        "metadata": h.metadata,
        "retention": whole_numbers(h.retention),
        "created_at": datetime.fromtimestamp(h.created_at, UTC).isoformat(),
        "updated_at": datetime.fromtimestamp(h.updated_at, UTC).isoformat(),
        "expires_at": datetime.fromtimestamp(h.expires_at, UTC).isoformat() if h.expires_at else None,
    }


async def list_sessions(args: argparse.Namespace, store: Store, out: TextIO) -> int:
    """Print one page of sessions, most recently updated first, and the cursor of the next page."""
    try:
        page = await Session.list(args.app, args.user, limit=args.limit, cursor=args.cursor, store=store)
    except ValueError as exc:  # a malformed --cursor
        raise UsageError(str(exc)) from exc
    if args.json:
        document = {"sessions": [_header_json(h) for h in page], "next_cursor": page.next_cursor}
        out.write(json.dumps(document, ensure_ascii=False, indent=2) + "\n")
        return 0
    if not page.sessions:
        out.write(f"no sessions in {store.url}\n")
        return 0
    rows = [("ID", "APP", "USER", "MESSAGES", "UPDATED (UTC)")]
    rows += [
        (h.id, h.app_name or "-", h.user_id or "-", str(h.message_count), _when(h.updated_at)) for h in page
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        out.write("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() + "\n")
    if page.next_cursor:
        out.write(f"more: agnt5 sessions list --cursor {page.next_cursor}\n")
    return 0


async def show(args: argparse.Namespace, store: Store, out: TextIO) -> int:
    """Print a session's header, state and newest messages as a transcript."""
    session = await Session.get(args.id, store=store)
    header = await store.get_session(args.id)
    assert header is not None
    stats = await store.history_stats(args.id)
    messages = await session.history(args.limit, include_pruned=args.include_pruned)
    out.write(f"Session {session.id}\n")
    out.write(f"  app: {header.app_name or '-'}   user: {header.user_id or '-'}\n")
    out.write(f"  active messages: {stats.messages} ({stats.tokens} tokens)\n")
    out.write(
        f"  created: {_when(header.created_at)}   updated: {_when(header.updated_at)}"
        f"   expires: {_when(header.expires_at)}\n"
    )
    if header.metadata:
        out.write(f"  metadata: {compact(header.metadata)}\n")
    if header.retention:
        out.write(f"  retention: {compact(whole_numbers(header.retention))}\n")
    for scope in ("session", "user", "app"):
        if scope == "user" and header.user_id is None:
            continue
        values = session.state(scope)
        if values:
            out.write(f"  state ({scope}): {compact(values)}\n")
    shown = "all" if args.limit is None else f"newest {args.limit}"
    pruned = ", with pruned" if args.include_pruned else ""
    out.write(f"Messages ({shown}{pruned}):\n")
    for m in messages:
        out.write("  " + transcript_line(m, m.seq) + "\n")
    if not messages:
        out.write("  (none)\n")
    waiting = await pending_calls(session)
    if waiting:
        out.write(f"Waiting for approval ({len(waiting)}):\n")
        for call in waiting:
            out.write("  " + pending_line(call) + "\n")
    return 0


def _pending_json(header: SessionHeader, calls: list[PendingCall]) -> dict[str, Any]:
    return {
        "id": header.id,
        "app_name": header.app_name,
        "user_id": header.user_id,
        "oldest_requested_at": min(c.requested_at for c in calls).isoformat(),
        "calls": [
            {
                "call_id": c.call_id,
                "tool": c.tool,
                "arguments": c.arguments,
                "agent": c.agent,
                "run_id": c.run_id,
                "requested_at": c.requested_at.isoformat(),
            }
            for c in calls
        ],
    }


async def pending(args: argparse.Namespace, store: Store, out: TextIO) -> int:
    """Print the sessions with tool calls waiting for a decision, longest waiting first."""
    found: list[tuple[SessionHeader, list[PendingCall]]] = []
    for session_id in await sessions_with_steps(store):
        calls = await pending_calls(Session(session_id, store=store))  # one read when none waits
        if not calls:
            continue
        header = await store.get_session(session_id)
        if header is None or (args.app is not None and header.app_name != args.app):
            continue  # (None: deleted meanwhile)
        if args.user is not None and header.user_id != args.user:
            continue
        found.append((header, calls))
    found.sort(key=lambda item: (min(c.requested_at for c in item[1]), item[0].id))
    if args.json:
        document = {"sessions": [_pending_json(h, calls) for h, calls in found]}
        out.write(json.dumps(document, ensure_ascii=False, indent=2) + "\n")
        return 0
    if not found:
        out.write(f"no session waits for approval in {store.url}\n")
        return 0
    rows = [("ID", "APP", "USER", "WAITING", "OLDEST REQUEST (UTC)")]
    for h, calls in found:
        waiting = ", ".join(f"{c.call_id} {c.tool}" for c in calls)
        oldest = min(c.requested_at for c in calls).strftime("%Y-%m-%d %H:%M:%S")
        rows.append((h.id, h.app_name or "-", h.user_id or "-", waiting, oldest))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        out.write("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() + "\n")
    out.write("details: agnt5 sessions show ID; decide with agent.run(None, session=..., approvals=...)\n")
    return 0


async def export(args: argparse.Namespace, store: Store, out: TextIO) -> int:
    """Write the session as jsonl or json to stdout or `--output`."""
    session = await Session.get(args.id, store=store)
    text = await session.export(format=args.format, include_pruned=not args.no_pruned)
    if args.format == "json" and not text.endswith("\n"):
        text += "\n"
    if args.output is None or args.output == "-":
        out.write(text)
        return 0
    path = Path(args.output)
    await asyncio.to_thread(path.write_text, text, encoding="utf-8")
    lines = text.count("\n") if args.format == "jsonl" else len(json.loads(text)["messages"])
    out.write(f"wrote {lines} messages of {session.id} to {path}\n")
    return 0


async def prune(args: argparse.Namespace, store: Store, out: TextIO) -> int:
    """Prune a session with a strategy and print what changed."""
    params = {name: getattr(args, name) for name in PRUNE_PARAMS if getattr(args, name) is not None}
    strategy = get_strategy(args.strategy, **params)  # a bad name or parameter is a usage error (2)
    session = await Session.get(args.id, store=store)
    result = await session.prune(strategy, max_tokens=args.max_tokens, model=args.model)
    if not result.changed:
        out.write(
            f"{session.id}: unchanged ({result.reason}); {result.messages_before} messages, "
            f"{result.tokens_before} tokens\n"
        )
        return 0
    out.write(
        f"{session.id}: pruned with {result.strategy} {compact(result.params)}\n"
        f"  removed {result.removed} messages: {result.messages_before} → {result.messages_after} active\n"
        f"  tokens: {result.tokens_before} → {result.tokens_after}\n"
    )
    if result.summary_id:
        out.write(f"  summary message: {result.summary_id}\n")
    if result.model:
        cost = f", ${result.cost:.6f}" if result.cost is not None else ""
        out.write(
            f"  model {result.model}: {result.prompt_tokens} prompt + {result.completion_tokens} "
            f"completion tokens{cost}\n"
        )
    return 0


async def purge(args: argparse.Namespace, store: Store, out: TextIO) -> int:
    """Delete the sessions whose retention ttl has passed; print their ids."""
    ids = await purge_expired(store=store)
    for session_id in ids:
        out.write(f"{session_id}\n")
    out.write(f"purged {len(ids)} expired session(s) from {store.url}\n")
    return 0


def add_parsers(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register `sessions` and its subcommands on the top-level subparsers."""
    documented = {"epilog": EPILOG, "formatter_class": argparse.RawDescriptionHelpFormatter}
    sessions = commands.add_parser(
        "sessions",
        help="list, show, export and prune stored sessions; list those waiting for approval",
        parents=[common],
        **documented,
    )
    sub = sessions.add_subparsers(dest="action", required=True, metavar="ACTION")

    p = sub.add_parser("list", help="sessions, most recently updated first", parents=[common])
    p.add_argument("--app", help="only sessions of this app_name")
    p.add_argument("--user", help="only sessions of this user_id")
    p.add_argument("--limit", type=_positive, default=20, help="sessions per page (default 20)")
    p.add_argument("--cursor", help="the cursor printed after the previous page")
    p.add_argument("--json", action="store_true", help="print JSON (sessions and next_cursor)")
    p.set_defaults(handler=list_sessions)

    p = sub.add_parser("pending", help="sessions with tool calls waiting for approval", parents=[common])
    p.add_argument("--app", help="only sessions of this app_name")
    p.add_argument("--user", help="only sessions of this user_id")
    p.add_argument("--json", action="store_true", help="print JSON (sessions with their waiting calls)")
    p.set_defaults(handler=pending)

    p = sub.add_parser("show", help="a session's header, state and messages", parents=[common])
    p.add_argument("id", help="session id")
    p.add_argument("--limit", type=_non_negative, default=None, help="show only the newest N messages")
    p.add_argument("--include-pruned", action="store_true", help="show tombstones of pruned messages")
    p.set_defaults(handler=show)

    p = sub.add_parser("export", help="the session as jsonl or json", parents=[common])
    p.add_argument("id", help="session id")
    p.add_argument("--format", choices=EXPORT_FORMATS, default="jsonl", help="default jsonl")
    p.add_argument("--output", "-o", help="write to this file instead of stdout")
    p.add_argument("--no-pruned", action="store_true", help="leave out tombstones of pruned messages")
    p.set_defaults(handler=export)

    p = sub.add_parser(
        "prune",
        help="prune a session's history with a strategy",
        parents=[common],
        description="Strategies: keep_last_<N>, sliding_window, keep_important, summarize_old. "
        "keep_important and summarize_old call a model (--model, default the session's model / "
        "AGNT5_MODEL) and need its API key.",
    )
    p.add_argument("id", help="session id")
    p.add_argument("--strategy", required=True, help="strategy name, e.g. sliding_window or keep_last_50")
    p.add_argument("--window-size", type=_positive, help="sliding_window: messages kept")
    p.add_argument("--threshold", type=_positive, help="summarize_old: messages before summarising")
    p.add_argument("--max-messages", type=_positive, help="keep_important: messages kept")
    p.add_argument("--keep-recent", type=_positive, help="keep_important / summarize_old: recent kept")
    p.add_argument("--max-tokens", type=_positive, help="upper bound of the tokens that remain")
    p.add_argument("--model", help="model for keep_important / summarize_old")
    p.set_defaults(handler=prune)

    p = sub.add_parser("purge-expired", help="delete sessions past their retention ttl", parents=[common])
    p.set_defaults(handler=purge)


def _positive(text: str) -> int:
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def _non_negative(text: str) -> int:
    value = _integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text!r}")
    return value


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
