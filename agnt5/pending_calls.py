"""Tool calls without results in a history the run did not write (send_messages, another program, a crash).

Providers refuse such a history (OpenAI answers HTTP 400, Anthropic and Gemini too), so it is never
sent as is: `unanswered_calls` finds the calls of a dangling newest assistant message (a run executes
them first), and `without_unanswered_calls` leaves every other unanswered call, and every tool result
whose call is not there, out of the prompt. Pure functions on provider-format (or agnt5 Message) dicts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar, cast

from agnt5.messages import Message, stored_message, to_provider_messages

M = TypeVar("M", bound=Mapping[str, Any])


def _call_id(call: Any) -> Any:
    return call.get("id") if isinstance(call, Mapping) else getattr(call, "id", None)


def _visible(messages: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [m for m in messages if not (isinstance(m, Message) and m.pruned)]


def unanswered_calls(history: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The tool calls (wire dicts) of the newest assistant message that have no result yet.

    Only when that assistant message is the newest message other than tool results; results that
    follow it may be partly present. Empty when nothing is pending. Check this before the run
    appends its own input: after a new user message the dangling calls are no longer the newest.
    """
    messages = _visible(history)
    answered: set[Any] = set()
    for message in reversed(messages):
        role = message.get("role")
        if role == "tool":
            answered.add(message.get("tool_call_id"))
            continue
        if role != "assistant" or not message.get("tool_calls"):
            return []
        calls: list[dict[str, Any]] = to_provider_messages([message])[0]["tool_calls"]
        pending, seen = [], set()
        for call in calls:
            call_id = call.get("id")
            if call_id not in answered and call_id not in seen:
                pending.append(call)
            seen.add(call_id)
        return pending
    return []


def without_unanswered_calls(messages: Sequence[M]) -> list[M]:
    """`messages` with every tool call that has no result removed, anywhere in the history.

    A call counts as answered when a tool message with its id is among the tool messages right
    after its assistant message (what providers require). An assistant message left with neither
    calls nor content is dropped; tool results whose call is not right before them (orphans) and
    repeated results for one call are dropped too; pruned tombstones are left out. Messages that
    need no change are returned as the same objects; a changed one is a new dict (a Message stays a
    Message, with its seq).
    """
    visible = [m for m in messages if not (isinstance(m, Message) and m.pruned)]
    out: list[M] = []
    i, n = 0, len(visible)
    while i < n:
        message = visible[i]
        role = message.get("role")
        if role == "tool":
            i += 1  # a result with no assistant call right before its group
            continue
        if role != "assistant" or not message.get("tool_calls"):
            out.append(message)
            i += 1
            continue
        j = i + 1
        while j < n and visible[j].get("role") == "tool":
            j += 1
        calls = message["tool_calls"]
        call_ids = {_call_id(call) for call in calls}
        results: list[M] = []
        answered: set[Any] = set()
        for result in visible[i + 1 : j]:
            call_id = result.get("tool_call_id")
            if call_id in call_ids and call_id not in answered:
                answered.add(call_id)
                results.append(result)
        kept = []
        for call in calls:
            call_id = _call_id(call)
            if call_id in answered:
                kept.append(call)
                answered.discard(call_id)  # a repeated call id keeps only its first call
        if len(kept) == len(calls):
            out.append(message)
        elif kept:
            out.append(cast(M, _with_calls(message, kept)))
        elif _has_content(message.get("content")):
            out.append(cast(M, _with_calls(message, None)))
        out.extend(results)
        i = j
    return out


def _has_content(content: Any) -> bool:
    if isinstance(content, str):
        return bool(content.strip())
    return bool(content)


def _with_calls(message: Mapping[str, Any], calls: list[Any] | None) -> dict[str, Any]:
    fields = {k: v for k, v in message.items() if k != "tool_calls"}
    if calls:
        fields["tool_calls"] = calls
    if isinstance(message, Message):
        # Same seq; the stored token count slightly overstates the smaller message, which budgets allow.
        return stored_message(fields, message.seq, message.tokens, message.pruned)
    return fields


__all__ = ["unanswered_calls", "without_unanswered_calls"]
