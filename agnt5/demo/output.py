"""Printing the demo: agent runs as a readable transcript, state by scope."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from agnt5.cli.render import clip, compact

if TYPE_CHECKING:
    from agnt5.agent import AgentResult
    from agnt5.demo.context import Demo
    from agnt5.session import Session

SCOPES = ("session", "user", "app", "temp")


def _arguments(raw: str) -> str:
    try:
        value = json.loads(raw or "{}")
    except ValueError:
        return raw
    if not isinstance(value, dict):
        return raw
    return ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in value.items())


def run_lines(messages: Sequence[Mapping[str, Any]]) -> list[str]:
    """An agent run as transcript lines: who said what, tool calls and their results, handoffs."""
    lines: list[str] = []
    for m in messages:
        role = m.get("role")
        agent = m.get("name") or (m.get("metadata") or {}).get("agent") or "assistant"
        if role == "user":
            lines.append(f"  customer: {clip(str(m.get('content') or ''))}")
        elif role == "assistant":
            for call in m.get("tool_calls") or ():
                function = call.get("function") or {}
                name = str(function.get("name"))
                lines.append(f"  {agent} -> {name}({clip(_arguments(function.get('arguments') or ''), 80)})")
            if m.get("content"):
                lines.append(f"  {agent}: {clip(str(m['content']), 400)}")
        elif role == "tool":
            content = str(m.get("content") or "")
            if content.startswith("Transferred to "):
                target = content.removeprefix("Transferred to ").rstrip(".")
                lines.append(f"  >> handoff to {target}")
            else:
                lines.append(f"      <- {clip(content, 90)}")
    return lines


def show_run(demo: Demo, result: AgentResult) -> None:
    for line in run_lines(result.messages):
        demo.say(line)
    demo.say(
        f"  ({result.turns} model calls, {result.usage.total_tokens} tokens, answered by {result.agent_name})"
    )


def show_state(demo: Demo, session: Session, when: str) -> None:
    demo.say(f"state {when}:")
    for scope in SCOPES:
        demo.say(f"  {scope:<8} {compact(session.state(scope), 220)}")  # type: ignore[arg-type]
