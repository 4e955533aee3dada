"""Plain-text rendering shared by `agnt5 sessions show` and `agnt5 demo`: transcript lines,
compact JSON and a progress bar (no terminal library: output stays readable in logs)."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from agnt5.approvals import PendingCall

WIDTH = 100
"""Characters of message text shown per transcript line before it is cut with an ellipsis."""


def clip(text: str, width: int = WIDTH) -> str:
    """`text` on one line, cut to `width` characters (marked with …)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def compact(value: Any, width: int = WIDTH) -> str:
    """A JSON value on one line, clipped."""
    return clip(json.dumps(value, ensure_ascii=False, separators=(", ", ": ")), width)


def whole_numbers(value: Any) -> Any:
    """`value` with whole floats as ints (a retention's `ttl_days` is stored as 30.0: show 30)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {k: whole_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [whole_numbers(v) for v in value]
    return value


def speaker(message: Mapping[str, Any]) -> str:
    """Who wrote a message: the role, plus the agent's name for assistant messages."""
    role = str(message.get("role"))
    name = message.get("name") or (message.get("metadata") or {}).get("agent")
    if role == "assistant" and name:
        return f"{role} ({name})"
    return role


def message_text(message: Mapping[str, Any], width: int = WIDTH) -> str:
    """A message's content (text parts joined) and its tool calls as `→ name(args)`."""
    content = message.get("content")
    if isinstance(content, str):
        text = content
    elif isinstance(content, list):
        text = " ".join(
            str(p.get("text")) if isinstance(p, Mapping) and "text" in p else f"[{p.get('type', 'part')}]"
            for p in content
            if isinstance(p, Mapping)
        )
    else:
        text = ""
    calls = [
        f"→ {(c.get('function') or {}).get('name')}({(c.get('function') or {}).get('arguments') or ''})"
        for c in message.get("tool_calls") or ()
        if isinstance(c, Mapping)
    ]
    return clip(" ".join(part for part in [text, *calls] if part), width)


def transcript_line(message: Mapping[str, Any], seq: int | None = None, width: int = WIDTH) -> str:
    """One line of a transcript: `[seq] speaker: text`; tombstones of pruned messages say so."""
    prefix = f"[{seq}] " if seq is not None else ""
    metadata = message.get("metadata") or {}
    if metadata.get("pruned_by"):
        return f"{prefix}{speaker(message)}: (pruned by {metadata['pruned_by']})"
    who = speaker(message)
    if message.get("role") == "tool" and message.get("tool_call_id"):
        who += f" [{message['tool_call_id']}]"
    if metadata.get("summary"):
        who += " (summary)"
    return f"{prefix}{who}: {message_text(message, width)}"


def pending_line(call: PendingCall, width: int = WIDTH) -> str:
    """A call waiting for approval: `[call id] agent → tool(arguments), requested <UTC time>`."""
    arguments = compact(call.arguments, width)
    when = call.requested_at.strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"[{call.call_id}] {call.agent} → {call.tool}({arguments}), requested {when}"


class ProgressBar:
    """`[#####-----]  50% label` on `stream`: redrawn in place on a terminal, and printed once
    when done otherwise, so logs get one line instead of a hundred."""

    def __init__(self, total: int, label: str = "", *, stream: TextIO | None = None, width: int = 20) -> None:
        self.total = max(1, total)
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.done = 0
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def render(self) -> str:
        fraction = min(1.0, self.done / self.total)
        filled = round(fraction * self.width)
        bar = "#" * filled + "-" * (self.width - filled)
        return f"[{bar}] {round(fraction * 100):3d}% {self.label}".rstrip()

    def advance(self, steps: int = 1) -> None:
        self.done = min(self.total, self.done + steps)
        if self._tty:
            self.stream.write("\r  " + self.render())
            self.stream.flush()

    def finish(self) -> None:
        self.done = self.total
        self.stream.write(("\r  " if self._tty else "  ") + self.render() + "\n")
        self.stream.flush()
