"""Blocks: the units a history may be cut between without breaking what providers accept.

A history is a sequence of blocks:

- `system`: one system (or developer) message — kept in place by every prune and fit; a
  summary written by `summarize_old` is a system message whose metadata has `"summary": true`;
- `user`: one user message — the only place a kept history may start (Anthropic requires it);
- `assistant`: one assistant message without tool calls;
- `tool_call`: an assistant message with `tool_calls` plus every tool result answering it that
  follows it directly (parallel calls included). A call whose result never arrived is still one
  block (`complete=False`), so it can be dropped like any other and never stalls pruning;
- `orphan`: consecutive tool results whose call is not directly before them. No history may be
  cut to start at one.

A *turn* is a user block with the non-system blocks after it up to the next user block.
`fit_to_budget` is the non-destructive trim an Agent applies before each model call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from agnt5.errors import TokenBudgetError

BlockKind = Literal["system", "user", "assistant", "tool_call", "orphan"]
SYSTEM_ROLES = ("system", "developer")
DEFAULT_COUNT_MODEL = "gpt-4o-mini"

M = TypeVar("M", bound=Mapping[str, Any])
CountFn = Callable[[Mapping[str, Any]], int]


@dataclass(frozen=True, slots=True)
class Block:
    """Messages `start` to `stop - 1` of a history, cut or kept together; `tokens` is their sum."""

    kind: BlockKind
    start: int
    stop: int
    tokens: int
    complete: bool = True
    """False for a `tool_call` block some of whose calls have no result yet."""

    @property
    def indices(self) -> range:
        return range(self.start, self.stop)

    @property
    def size(self) -> int:
        return self.stop - self.start

    @property
    def starts_turn(self) -> bool:
        return self.kind == "user"


def is_system(message: Mapping[str, Any]) -> bool:
    """Whether `message` is a system/developer message (a summary included)."""
    return message.get("role") in SYSTEM_ROLES


def is_summary(message: Mapping[str, Any]) -> bool:
    """Whether `message` is a summary written by `summarize_old` (a system message so marked)."""
    metadata = message.get("metadata")
    return is_system(message) and isinstance(metadata, Mapping) and metadata.get("summary") is True


def default_count(message: Mapping[str, Any]) -> int:
    """A message's tokens: the count stored with a history entry, else tiktoken (gpt-4o-mini)."""
    stored = getattr(message, "tokens", None)
    if isinstance(stored, int) and not isinstance(stored, bool):
        return stored
    from agnt5.tokens import count_message_tokens

    return count_message_tokens(message, DEFAULT_COUNT_MODEL)


def group_blocks(messages: Sequence[Mapping[str, Any]], count: CountFn | None = None) -> list[Block]:
    """Split a history into blocks, in order; every message belongs to exactly one block."""
    measure = count or default_count
    blocks: list[Block] = []
    i, n = 0, len(messages)
    while i < n:
        message = messages[i]
        role = message.get("role")
        start, tokens = i, measure(message)
        i += 1
        if role in SYSTEM_ROLES:
            blocks.append(Block("system", start, i, tokens))
        elif role == "user":
            blocks.append(Block("user", start, i, tokens))
        elif role == "assistant" and message.get("tool_calls"):
            pending = {c.get("id") for c in message["tool_calls"] if isinstance(c, Mapping)}
            while i < n and messages[i].get("role") == "tool" and messages[i].get("tool_call_id") in pending:
                pending.discard(messages[i].get("tool_call_id"))
                tokens += measure(messages[i])
                i += 1
            blocks.append(Block("tool_call", start, i, tokens, complete=not pending))
        elif role == "tool":
            while i < n and messages[i].get("role") == "tool":
                tokens += measure(messages[i])
                i += 1
            blocks.append(Block("orphan", start, i, tokens))
        else:
            blocks.append(Block("assistant", start, i, tokens))
    return blocks


def group_turns(blocks: Iterable[Block]) -> list[list[Block]]:
    """Group the non-system blocks into turns; a first group not led by a user block is kept as is."""
    turns: list[list[Block]] = []
    for block in blocks:
        if block.kind == "system":
            continue
        if block.kind == "user" or not turns:
            turns.append([block])
        else:
            turns[-1].append(block)
    return turns


def fit_to_budget(messages: Iterable[M], budget: int, count: CountFn | None = None) -> list[M]:
    """The messages to send so that `sum(count(m)) <= budget`, without changing any stored history.

    A history that fits is returned unchanged. Otherwise: system messages stay, in place; of the
    rest, the newest whole blocks that fit are kept, starting at a user message. When even the
    newest turn does not fit whole, its user message is kept with the newest blocks that fit after
    it. Raises TokenBudgetError when the protected messages alone — the system messages, plus the
    newest user message and the newest block — exceed the budget (never a truncated system prompt).
    `budget` covers messages only: reserve the reply primer (3 tokens), tools and output yourself.
    """
    history = list(messages)
    blocks = group_blocks(history, count)
    system = [b for b in blocks if b.kind == "system"]
    rest = [b for b in blocks if b.kind != "system"]
    system_tokens = sum(b.tokens for b in system)
    if system_tokens > budget:
        raise TokenBudgetError(
            f"the system messages alone take {system_tokens} tokens, more than the budget of {budget}; "
            "shorten the system prompt or raise the budget (system messages are never truncated)"
        )
    if system_tokens + sum(b.tokens for b in rest) <= budget:
        return history
    kept = _newest_fitting(rest, budget - system_tokens)
    indices = sorted(i for b in (*system, *kept) for i in b.indices)
    return [history[i] for i in indices]


def _newest_fitting(rest: list[Block], room: int) -> list[Block]:
    """The newest blocks that fit `room` and start at a user block (see `fit_to_budget`)."""
    first, used = len(rest), 0
    while first > 0 and used + rest[first - 1].tokens <= room:
        first -= 1
        used += rest[first].tokens
    for k in range(first, len(rest)):
        if rest[k].kind == "user":
            return rest[k:]
    anchor = next((k for k in range(first - 1, -1, -1) if rest[k].kind == "user"), None)
    if anchor is None:
        return []  # no user message anywhere: nothing valid can follow the system messages
    newest = rest[-1]
    needed = rest[anchor].tokens + (newest.tokens if newest is not rest[anchor] else 0)
    if needed > room:
        raise TokenBudgetError(
            f"the newest user message and the newest block need {needed} tokens but only {room} "
            "remain after the system messages; raise the budget or shorten the newest messages"
        )
    tail: list[Block] = []
    left = room - rest[anchor].tokens
    for block in reversed(rest[anchor + 1 :]):
        if block.tokens > left:
            break
        tail.append(block)
        left -= block.tokens
    return [rest[anchor], *reversed(tail)]
