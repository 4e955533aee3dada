"""`keep_important`: a model scores each message's importance; the highest-scored turns that fit
the limits are kept, plus the most recent turns.

Scoring is batched with structured output (a JSON-schema `response_format`, or a forced tool
call where the model has no native schema support). Batches are sized with tiktoken so every
request fits the model's context window with room for the reply. Scores are stored per message,
so a later prune scores only what is new. Whole turns (a user message and the replies and tool
calls after it) are kept or removed, so the kept history is valid for every provider.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agnt5.blocks import Block
from agnt5.errors import PruneModelError, StrategyError, TokenBudgetError
from agnt5.messages import Message
from agnt5.strategies import _llm
from agnt5.strategies.base import (
    DEFAULT_KEEP_MESSAGES,
    Budget,
    PrunePlan,
    SessionView,
    check_positive,
    layout,
    require_positive,
    turn_size,
    turn_tokens,
)
from agnt5.tokens import counter_for

if TYPE_CHECKING:
    from agnt5.models import LanguageModel, Usage

SCORER_INSTRUCTIONS = (
    "You rate how important each message of a conversation is for continuing the conversation "
    "later. Score from 0 (greetings, small talk, nothing worth remembering) to 10 (facts, "
    "decisions, requirements, names, numbers or results the assistant must not forget). "
    'Reply with JSON {"scores": [{"seq": <seq>, "score": <0-10>}, ...]} with exactly one entry '
    "for every message, identified by the number in brackets."
)
SCORES_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "scores": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"seq": {"type": "integer"}, "score": {"type": "number"}},
                "required": ["seq", "score"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["scores"],
    "additionalProperties": False,
}
SCORE_TOOL = "record_importance_scores"
OUTPUT_TOKENS_PER_SCORE = 12
OUTPUT_BASE_TOKENS = 32
MAX_SCORE = 10.0


@dataclass(frozen=True, slots=True)
class _Item:
    seq: int
    line: str
    tokens: int


class KeepImportant:
    """Keep the most important turns within `max_messages` non-system messages and/or the
    prune's `max_tokens`, always keeping the `keep_recent` newest turns (and system messages).

    Ties in score keep the newer turn. With no limit at all, `max_messages` is 50. `batch_size`
    caps the messages scored per request (further capped by the context window and the model's
    output limit).
    """

    name = "keep_important"
    uses_model = True

    def __init__(self, max_messages: int | None = None, keep_recent: int = 2, batch_size: int = 100) -> None:
        self.max_messages = check_positive("max_messages", max_messages, self.name)
        self.keep_recent = require_positive("keep_recent", keep_recent, self.name)
        self.batch_size = require_positive("batch_size", batch_size, self.name)

    @property
    def params(self) -> dict[str, Any]:
        return {
            "max_messages": self.max_messages,
            "keep_recent": self.keep_recent,
            "batch_size": self.batch_size,
        }

    async def plan(self, view: SessionView, budget: Budget, model: LanguageModel | None) -> PrunePlan:
        if model is None:
            raise StrategyError("keep_important needs a model to score messages; pass model=...")
        max_tokens = budget.max_tokens
        max_messages = self.max_messages
        used: dict[str, Any] | None = None
        if max_messages is None and max_tokens is None:
            max_messages = DEFAULT_KEEP_MESSAGES
            used = {**self.params, "max_messages": max_messages}
        messages = await view.messages()
        lay = layout(messages)
        conversation = sum(turn_size(t) for t in lay.turns)
        total = sum(m.tokens for m in messages)
        if (max_messages is None or conversation <= max_messages) and (
            max_tokens is None or total <= max_tokens
        ):
            return PrunePlan(reason="within limits", params=used)
        room = None if max_tokens is None else max_tokens - lay.system_tokens
        if room is not None and room < 0:
            raise TokenBudgetError(
                f"the system messages alone take {lay.system_tokens} tokens, more than max_tokens="
                f"{max_tokens}; raise max_tokens (system messages are never removed or truncated)"
            )
        first_recent = self._recent(lay.turns, room)
        candidates = lay.turns[:first_recent]
        if not candidates:
            return PrunePlan(reason="nothing to remove outside the most recent turns", params=used)
        recent = lay.turns[first_recent:]
        msg_room = None if max_messages is None else max_messages - sum(turn_size(t) for t in recent)
        tok_room = None if room is None else room - sum(turn_tokens(t) for t in recent)
        keepable = [
            (i, t)
            for i, t in enumerate(candidates)
            if t[0].kind == "user"
            and (msg_room is None or turn_size(t) <= msg_room)
            and (tok_room is None or turn_tokens(t) <= tok_room)
        ]
        usage: Usage | None = None
        kept: set[int] = set()
        if keepable:
            seqs = [messages[j].seq for _, t in keepable for b in t for j in b.indices]
            scores = await view.scores(seqs)
            missing = [
                messages[j]
                for _, t in keepable
                for b in t
                for j in b.indices
                if messages[j].seq not in scores
            ]
            if missing:
                fresh, usage = await self._score(view, model, missing)
                scores.update(fresh)
            kept = _choose(keepable, messages, scores, msg_room, tok_room)
        removed = [b for i, t in enumerate(candidates) if i not in kept for b in t]
        return PrunePlan(remove_seqs=tuple(lay.seqs(removed)), usage=usage, params=used)

    def _recent(self, turns: list[list[Block]], room: int | None) -> int:
        users = [i for i, t in enumerate(turns) if t[0].kind == "user"]
        if not users:
            return len(turns)
        first = users[-1]
        used = sum(turn_tokens(t) for t in turns[first:])
        if room is not None and used > room:
            raise TokenBudgetError(
                f"the newest turn takes {used} tokens but only {room} of max_tokens remain after the "
                "system messages; raise max_tokens"
            )
        for i in reversed(users[-self.keep_recent : -1]):
            more = sum(turn_tokens(t) for t in turns[i:first])
            if room is not None and used + more > room:
                break
            first, used = i, used + more
        return first

    async def _score(
        self, view: SessionView, model: LanguageModel, messages: Sequence[Message]
    ) -> tuple[dict[int, float], Usage | None]:
        """Score `messages` in batches that fit the context window; each batch's scores are cached
        as soon as they arrive."""
        counter = counter_for(model.model)
        native = model.supports_response_schema
        max_items = max(
            1, min(self.batch_size, (model.max_output_tokens - OUTPUT_BASE_TOKENS) // OUTPUT_TOKENS_PER_SCORE)
        )
        base = model.count_tokens(_request([]), None if native else [_score_tool()])
        usage: Usage | None = None
        scores: dict[int, float] = {}
        for batch in _batches(messages, model, counter, base, max_items):
            request = _request([item.line for item in batch])
            output = _output_tokens(len(batch))
            kwargs: dict[str, Any]
            if native:
                kwargs = {
                    "response_format": {
                        "type": "json_schema",
                        "json_schema": {"name": "importance_scores", "strict": True, "schema": SCORES_SCHEMA},
                    }
                }
            else:
                kwargs = {
                    "tools": [_score_tool()],
                    "tool_choice": {"type": "function", "function": {"name": SCORE_TOOL}},
                }
            response = await _llm.call(
                model, request, what="keep_important scoring", output_tokens=output, **kwargs
            )
            usage = _llm.add_usage(usage, response.usage)
            raw = response.tool_calls[0].arguments if response.tool_calls else response.text
            batch_scores = _parse_scores(raw, [item.seq for item in batch], model.model)
            await view.save_scores(batch_scores, model.model)
            scores.update(batch_scores)
        return scores, usage


def _output_tokens(items: int) -> int:
    return OUTPUT_BASE_TOKENS + OUTPUT_TOKENS_PER_SCORE * items


def _request(lines: Sequence[str]) -> list[dict[str, Any]]:
    return [
        {"role": "system", "content": SCORER_INSTRUCTIONS},
        {"role": "user", "content": "Messages:\n" + "\n".join(lines)},
    ]


def _score_tool() -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": SCORE_TOOL,
            "description": "Record one importance score (0-10) for every message.",
            "parameters": SCORES_SCHEMA,
        },
    }


def _batches(
    messages: Sequence[Message], model: LanguageModel, counter: Any, base: int, max_items: int
) -> list[list[_Item]]:
    """Pack messages into batches whose request fits the context window with the reply reserve."""
    batches: list[list[_Item]] = []
    current: list[_Item] = []
    used = 0
    for m in messages:
        line = f"[{m.seq}] {_llm.render(m)}"
        single_room = _llm.input_room(model, _output_tokens(1)) - base - 2
        if counter.text(line) > single_room:
            line = _llm.truncate(line, single_room, counter)
        item = _Item(m.seq, line, counter.text(line) + 1)
        fits = base + used + item.tokens <= _llm.input_room(model, _output_tokens(len(current) + 1))
        if current and (len(current) >= max_items or not fits):
            batches.append(current)
            current, used = [], 0
        current.append(item)
        used += item.tokens
    if current:
        batches.append(current)
    return _settle(batches, model)


def _settle(batches: list[list[_Item]], model: LanguageModel) -> list[list[_Item]]:
    """Move items on until every batch's exact request size fits (joined text can tokenise longer)."""
    out: list[list[_Item]] = []
    queue = [list(b) for b in batches]
    while queue:
        batch = queue.pop(0)
        overflow: list[_Item] = []
        while len(batch) > 1 and model.count_tokens(_request([i.line for i in batch])) > _llm.input_room(
            model, _output_tokens(len(batch))
        ):
            overflow.insert(0, batch.pop())
        out.append(batch)
        if overflow:
            queue.insert(0, overflow)
    return out


def _parse_scores(raw: str, seqs: Sequence[int], model: str) -> dict[int, float]:
    """Validate the scorer's JSON: one numeric score in [0, 10] for every requested seq."""

    def bad(problem: str) -> PruneModelError:
        return PruneModelError(
            f"keep_important scoring: {model} returned malformed scores ({problem}); "
            "the history is unchanged — retry the prune, or use a model with structured output"
        )

    try:
        data = json.loads(raw)
    except (TypeError, ValueError, RecursionError):
        raise bad(f"not JSON: {raw[:80]!r}") from None
    entries = data.get("scores") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise bad('no "scores" list')
    wanted = set(seqs)
    out: dict[int, float] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            raise bad(f"entry {entry!r} is not an object")
        seq, score = entry.get("seq"), entry.get("score")
        if isinstance(seq, bool) or not isinstance(seq, int) or seq not in wanted:
            continue  # a seq that was not asked for is ignored
        if isinstance(score, bool) or not isinstance(score, int | float) or not 0 <= score <= MAX_SCORE:
            raise bad(f"score {score!r} for message {seq} is not a number from 0 to 10")
        out[seq] = float(score)
    missing = wanted - set(out)
    if missing:
        raise bad(f"no score for messages {sorted(missing)[:10]}")
    return out


def _choose(
    keepable: list[tuple[int, list[Block]]],
    messages: Sequence[Message],
    scores: dict[int, float],
    msg_room: int | None,
    tok_room: int | None,
) -> set[int]:
    """Greedy by score (a turn scores its best message), newer first on ties, within both rooms."""

    def key(item: tuple[int, list[Block]]) -> tuple[float, int]:
        index, turn = item
        best = max(scores[messages[j].seq] for b in turn for j in b.indices)
        return (-best, -index)

    kept: set[int] = set()
    for index, turn in sorted(keepable, key=key):
        size, tokens = turn_size(turn), turn_tokens(turn)
        if (msg_room is None or size <= msg_room) and (tok_room is None or tokens <= tok_room):
            kept.add(index)
            msg_room = None if msg_room is None else msg_room - size
            tok_room = None if tok_room is None else tok_room - tokens
    return kept
