"""`summarize_old`: past a threshold, the oldest messages become one summary message.

The summary is a system message placed right after the messages it replaces (so after the
system prompt and before everything kept), with metadata `{"summary": true, "covers": {...}}`.
It is incremental: the previous summary plus the messages that became old since make the next
one, and the previous summary is pruned — the tokens sent grow with what is new, not with the
whole history. What does not fit one request is summarised in token-sized chunks, then combined.
A failed call raises PruneModelError and changes nothing; error text never becomes a summary.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from agnt5.blocks import is_summary
from agnt5.errors import PruneModelError, StrategyError, TokenBudgetError
from agnt5.messages import Message
from agnt5.strategies import _llm
from agnt5.strategies.base import (
    DEFAULT_KEEP_MESSAGES,
    Budget,
    PrunePlan,
    SessionView,
    SummaryDraft,
    check_positive,
    layout,
    recent_turns,
    require_positive,
    turn_size,
)
from agnt5.tokens import TokenCounter, counter_for

if TYPE_CHECKING:
    from agnt5.models import LanguageModel, Usage

SUMMARY_HEADER = "Summary of the earlier conversation:\n"
SUMMARIZER_INSTRUCTIONS = (
    "You maintain the running summary of a conversation between a user and an AI assistant. "
    "Write a concise, factual summary that keeps everything needed to continue the conversation: "
    "the user's goals and preferences, facts, decisions, names, numbers, tool results and open "
    "questions. Merge the previous summary (if any) with the new messages into one summary. "
    "Write only the summary."
)
PART_INSTRUCTIONS = (
    "Summarise this part of a conversation between a user and an AI assistant concisely and "
    "factually, keeping facts, decisions, names, numbers, tool results and open questions. "
    "Write only the summary."
)


class SummarizeOld:
    """Once there are more than `threshold` non-system messages (or more tokens than the prune's
    `max_tokens`), summarise all but the newest whole turns — at most `keep_recent` messages
    (default: half the threshold) and, with max_tokens, what fits beside the system messages and
    the summary — into one summary of at most `summary_max_tokens` tokens.
    """

    name = "summarize_old"
    uses_model = True

    def __init__(
        self,
        threshold: int = DEFAULT_KEEP_MESSAGES,
        keep_recent: int | None = None,
        summary_max_tokens: int = 512,
    ) -> None:
        checked = require_positive("threshold", threshold, self.name)
        self.threshold = checked
        self.keep_recent = check_positive("keep_recent", keep_recent, self.name) or max(1, checked // 2)
        if self.keep_recent > self.threshold:
            raise StrategyError(
                f"summarize_old: keep_recent ({self.keep_recent}) must not exceed threshold ({self.threshold})"
            )
        summary = require_positive("summary_max_tokens", summary_max_tokens, self.name)
        self.summary_max_tokens = summary

    @property
    def params(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "keep_recent": self.keep_recent,
            "summary_max_tokens": self.summary_max_tokens,
        }

    async def plan(self, view: SessionView, budget: Budget, model: LanguageModel | None) -> PrunePlan:
        if model is None:
            raise StrategyError("summarize_old needs a model to write summaries; pass model=...")
        room_for_input = _llm.input_room(model, self.summary_max_tokens)
        if room_for_input < 4 * self.summary_max_tokens:
            raise StrategyError(
                f"summarize_old: summary_max_tokens={self.summary_max_tokens} is too large for "
                f"{model.model}'s context window ({model.context_window}); use at most "
                f"{max(1, (model.context_window - _llm.REQUEST_MARGIN) // 5)}"
            )
        max_tokens = budget.max_tokens
        messages = await view.messages()
        lay = layout(messages)
        conversation = sum(turn_size(t) for t in lay.turns)
        total = sum(m.tokens for m in messages)
        if conversation <= self.threshold and (max_tokens is None or total <= max_tokens):
            return PrunePlan(reason="within limits")
        previous = [m for m in messages if is_summary(m)]
        fixed = lay.system_tokens - sum(m.tokens for m in previous)
        room = None if max_tokens is None else max_tokens - fixed - self.summary_max_tokens - 16
        if room is not None and room < 0:
            raise TokenBudgetError(
                f"the system messages ({fixed} tokens) and a summary of up to {self.summary_max_tokens} "
                f"tokens exceed max_tokens={max_tokens}; raise max_tokens or lower summary_max_tokens"
            )
        first_recent = recent_turns(lay.turns, self.keep_recent, room)
        if first_recent < len(lay.turns) and room is not None:
            newest = sum(b.tokens for t in lay.turns[first_recent:] for b in t)
            if newest > room:
                raise TokenBudgetError(
                    f"the newest turn ({newest} tokens) does not fit max_tokens={max_tokens} beside the "
                    f"system messages and the summary; raise max_tokens"
                )
        old = [messages[i] for t in lay.turns[:first_recent] for b in t for i in b.indices]
        if not old:
            return PrunePlan(reason="nothing old enough to summarise outside the most recent turns")
        text, usage = await _Summariser(model, self.summary_max_tokens).run(
            [_llm.render(m) for m in old], _previous_text(previous)
        )
        covered = _covers(old, previous)
        return PrunePlan(
            remove_seqs=tuple(m.seq for m in (*previous, *old)),
            summary=SummaryDraft(
                SUMMARY_HEADER + text, {"summary": True, "covers": covered, "model": model.model}
            ),
            usage=usage,
        )


def _previous_text(previous: Sequence[Message]) -> str | None:
    texts = []
    for m in previous:
        content = m.get("content")
        if isinstance(content, str):
            texts.append(content.removeprefix(SUMMARY_HEADER))
    return "\n".join(texts) or None


def _covers(old: Sequence[Message], previous: Sequence[Message]) -> dict[str, Any]:
    before = [m.metadata.get("covers") for m in previous if isinstance(m.metadata.get("covers"), dict)]
    from_seq = min([old[0].seq, *(c.get("from_seq", old[0].seq) for c in before if c)])
    from_id = old[0].id
    for c in before:
        if c and c.get("from_seq") == from_seq and c.get("from_id"):
            from_id = c["from_id"]
    return {
        "from_seq": from_seq,
        "to_seq": old[-1].seq,
        "from_id": from_id,
        "to_id": old[-1].id,
        "messages": len(old) + sum(int(c.get("messages", 0)) for c in before if c),
        "new_messages": len(old),
        "previous_summary_ids": [m.id for m in previous],
    }


class _Summariser:
    """Summaries of transcripts of any length: one call when it fits, else chunks then a combine."""

    def __init__(self, model: LanguageModel, max_tokens: int) -> None:
        self.model = model
        self.max_tokens = max_tokens
        self.counter: TokenCounter = counter_for(model.model)
        self.usage: Usage | None = None

    async def run(self, lines: list[str], previous: str | None) -> tuple[str, Usage | None]:
        text = await self._summarise(lines, previous)
        return text, self.usage

    def _room(self, instructions: str, previous: str | None) -> int:
        base = self.model.count_tokens(_request(instructions, previous, []))
        return _llm.input_room(self.model, self.max_tokens) - base - 8

    async def _summarise(self, lines: list[str], previous: str | None) -> str:
        if previous is not None and self._room(SUMMARIZER_INSTRUCTIONS, previous) < self.max_tokens:
            lines, previous = [f"Earlier summary: {previous}", *lines], None  # an oversized old summary
        room = self._room(SUMMARIZER_INSTRUCTIONS, previous)
        if self._fits(SUMMARIZER_INSTRUCTIONS, previous, lines, room):
            return await self._call(SUMMARIZER_INSTRUCTIONS, previous, lines)
        part_room = self._room(PART_INSTRUCTIONS, None)
        parts = []
        for chunk in self._chunks(lines, part_room):
            parts.append(await self._call(PART_INSTRUCTIONS, None, chunk))
        return await self._summarise([f"Part {i + 1}: {p}" for i, p in enumerate(parts)], previous)

    def _fits(self, instructions: str, previous: str | None, lines: list[str], room: int) -> bool:
        if sum(self.counter.text(line) + 1 for line in lines) > room + 64:
            return False
        budget = _llm.input_room(self.model, self.max_tokens)
        return self.model.count_tokens(_request(instructions, previous, lines)) <= budget

    def _chunks(self, lines: list[str], room: int) -> list[list[str]]:
        chunks: list[list[str]] = []
        current: list[str] = []
        used = 0
        for line in lines:
            size = self.counter.text(line) + 1
            if size > room:
                line = _llm.truncate(line, room - 1, self.counter)
                size = self.counter.text(line) + 1
            if current and used + size > room:
                chunks.append(current)
                current, used = [], 0
            current.append(line)
            used += size
        if current:
            chunks.append(current)
        out: list[list[str]] = []
        for chunk in chunks:  # exact check: joined text can tokenise a little longer
            while not self._fits(PART_INSTRUCTIONS, None, chunk, room) and len(chunk) > 1:
                half = len(chunk) // 2
                out.append(chunk[:half])
                chunk = chunk[half:]
            out.append(chunk)
        return out

    async def _call(self, instructions: str, previous: str | None, lines: list[str]) -> str:
        response = await _llm.call(
            self.model,
            _request(instructions, previous, lines),
            what="summarize_old",
            output_tokens=self.max_tokens,
        )
        self.usage = _llm.add_usage(self.usage, response.usage)
        text = response.text.strip()
        if not text:
            raise PruneModelError(
                f"summarize_old: {self.model.model} returned an empty summary; the history is unchanged — "
                "retry the prune"
            )
        return text


def _request(instructions: str, previous: str | None, lines: list[str]) -> list[dict[str, Any]]:
    body = ""
    if previous is not None:
        body += f"Previous summary:\n{previous}\n\n"
    body += "New messages:\n" + "\n".join(lines)
    return [{"role": "system", "content": instructions}, {"role": "user", "content": body}]
