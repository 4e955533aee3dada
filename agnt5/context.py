"""Context budgets: long conversations inside a token budget, with a prompt prefix that stays the
same from request to request so providers' prompt caches hit.

`Agent(context_budget=N)` (or a `ContextBudget`) makes an agent cache-aware. Its prompts are laid
out so that what changes sits at the end:

1. the tools (their schemas change only when the tools do);
2. a system message with the instructions up to their first part rendered per request (a
   `{key}` template or a callable) — the static part;
3. the session's history from the stored *cut* on. A `summarize_old` summary stands where the
   strategy put it — ahead of the turns it did not replace, so right after (2) — as a system
   message for OpenAI, and for providers that hoist system messages (Anthropic, Gemini) as a
   user message opened by `SUMMARY_NOTE` (litellm merges it with the user turn that follows):
   hoisted, it would join the system prompt, which then changed with every new summary. Other
   system messages of the history stay system messages, in place;
4. the instructions from that first dynamic part on, rendered for this request: a system message
   (OpenAI), or a user message for providers that hoist every system message into one system
   prompt ahead of the history (Anthropic, Gemini).

So a state change alters (4) only; (1)–(3) stay cacheable. When (1)–(4) would exceed the budget,
the history is cut at a block boundary (`agnt5.blocks`) so that the prompt falls to the
*low-water mark* (`low_water` × budget, default 65%), and that cut then stays fixed — consecutive
requests share their prefix — until the budget is reached again. Cutting is non-destructive (the
history stays); the cut (the id of the first message sent) is kept in the session's state under
`CUT_KEY`, per agent, so every run and process on the session sends the same prefix. A session
whose retention names a `prune_strategy` is pruned down to the low-water mark (or below, by the
strategy's own limits such as summarize_old's `keep_recent`) in the same big steps, whichever
strategy it is. A prune changes the prompt from the end of (2) on: the tools and the static
instructions stay byte-identical (and cached); what follows is new either way, since the turns
kept used to follow the messages removed. Without a context budget an agent behaves as before:
the window-based budget (`agnt5.agent._budget`) with the newest blocks that fit sent on every
request.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agnt5.blocks import Block, _newest_fitting, fit_to_budget, group_blocks, is_summary
from agnt5.errors import InvalidInputError, InvalidTypeError, TokenBudgetError
from agnt5.instructions import CompiledInstructions
from agnt5.messages import to_provider_messages
from agnt5.pending_calls import without_unanswered_calls
from agnt5.providers import CacheHint
from agnt5.tokens import REPLY_PRIMER_TOKENS, counter_for

if TYPE_CHECKING:
    from agnt5.agent import Agent
    from agnt5.agent_run import Run
    from agnt5.models import LanguageModel

CUT_KEY = "agnt5_context_cut"
"""Session-scope state key holding `{agent name: id of the first history message sent}`."""
DEFAULT_LOW_WATER = 0.65

SUMMARY_NOTE = "(From the application, not the user: older messages were replaced by this summary.)\n"
"""Opens a summary sent as a user message (providers that hoist system messages), so the model
does not take it for something the user wrote."""

CountFn = Callable[[Mapping[str, Any]], int]


@dataclass(frozen=True, slots=True)
class ContextBudget:
    """`tokens` for a request's prompt, tools and instructions included (smaller than the model's
    window, for cost); when reached, the history is cut down to `low_water` × `tokens`."""

    tokens: int
    low_water: float = DEFAULT_LOW_WATER

    def __post_init__(self) -> None:
        if isinstance(self.tokens, bool) or not isinstance(self.tokens, int) or self.tokens < 1:
            raise InvalidInputError(
                f"context_budget must be a positive number of tokens, got {self.tokens!r}",
                field="context_budget",
            )
        low = self.low_water
        if isinstance(low, bool) or not isinstance(low, int | float) or not 0 < low <= 1:
            raise InvalidInputError(
                f"low_water is the fraction of the budget a cut falls to, in (0, 1], got {low!r}",
                field="low_water",
            )


def as_context_budget(value: Any) -> ContextBudget | None:
    """`Agent(context_budget=...)`: None, a number of tokens, or a ContextBudget."""
    if value is None or isinstance(value, ContextBudget):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return ContextBudget(value)
    raise InvalidTypeError(
        f"context_budget takes a number of tokens or a ContextBudget, got {type(value).__name__}",
        field="context_budget",
    )


@dataclass(frozen=True, slots=True)
class SplitInstructions:
    """Instructions as a static head (sent first) and a dynamic rest (rendered, sent last)."""

    head: str
    rest: CompiledInstructions | None


def split_instructions(compiled: CompiledInstructions) -> SplitInstructions:
    """Split at the first part rendered per request (a template with placeholders or a callable)."""
    parts = compiled._parts  # the parsed parts, in order (agnt5.instructions)
    first = next((i for i, p in enumerate(parts) if not isinstance(p, str)), len(parts))
    head = "\n\n".join(p for p in parts[:first] if isinstance(p, str))
    return SplitInstructions(head, CompiledInstructions(parts[first:]) if first < len(parts) else None)


@dataclass(frozen=True, slots=True)
class Window:
    """What a cut leaves: the messages to send, and the new cut (None: the stored one holds)."""

    messages: list[Mapping[str, Any]]
    cut: str | None


def stable_window(
    history: Sequence[Mapping[str, Any]],
    fixed: int,
    budget: int,
    low_water: int,
    cut: str | None,
    count: CountFn,
) -> Window:
    """The history from `cut` (a message id) on while `fixed` + it fits `budget`; else a new cut:
    the newest whole blocks, starting at a user message, that fit `low_water` (or, when the
    newest turn alone is larger, `budget` — see `agnt5.blocks.fit_to_budget`). System messages
    stay in place. A cut naming no active user message (pruned, rewound) counts as none."""
    blocks = group_blocks(history, count)
    system = [b for b in blocks if b.kind == "system"]
    rest = [b for b in blocks if b.kind != "system"]
    fixed += sum(b.tokens for b in system)
    start = _cut_index(history, rest, cut)
    kept = rest[start:]
    new_cut = None
    if fixed + sum(b.tokens for b in kept) > budget:
        if fixed > budget:
            raise TokenBudgetError(
                f"the instructions, tools and system messages alone take {fixed} tokens, more than the "
                f"context budget of {budget}; shorten them or raise context_budget"
            )
        try:
            kept = _newest_fitting(rest, low_water - fixed) if low_water > fixed else []
        except TokenBudgetError:  # the newest turn is larger than the low-water mark
            kept = []
        if not kept or not _is_suffix(kept, rest):
            kept = _newest_fitting(rest, budget - fixed)
        new_cut = str(history[kept[0].start].get("id") or "") if kept else ""
    indices = sorted(i for b in (*system, *kept) for i in b.indices)
    return Window([history[i] for i in indices], new_cut)


def _cut_index(history: Sequence[Mapping[str, Any]], rest: list[Block], cut: str | None) -> int:
    if not cut:
        return 0
    for k, block in enumerate(rest):
        if block.kind == "user" and history[block.start].get("id") == cut:
            return k
    return 0


def _is_suffix(kept: list[Block], rest: list[Block]) -> bool:
    return len(kept) <= len(rest) and rest[len(rest) - len(kept) :] == kept


# --- the agent's prompt --------------------------------------------------------------------------


async def build_prompt(
    run: Run,
    agent: Agent[Any, Any],
    model: LanguageModel,
    history: list[dict[str, Any]],
    budget: int,
    tools_tokens: int,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], CacheHint | None]:
    """(prompt, history, cache hint) for one model request of `agent`; `budget` is the tokens
    the model leaves the messages (its window less the output reserve, the tools and the primer).

    With a `context_budget`, `cache_aware_prompt` builds it (the module doc). Otherwise the
    rendered instructions come first; over budget, a session whose retention names a
    `prune_strategy` is pruned with it (`agnt5.pruning.prune_to_fit`), and — without one, or if
    that is still not enough — system messages stay and the newest whole blocks that fit are
    sent, starting at a user message, without deleting anything (`agnt5.blocks.fit_to_budget`).
    """
    counter = counter_for(model.model)

    def count(message: Mapping[str, Any]) -> int:
        stored = getattr(message, "tokens", None)
        return stored if isinstance(stored, int) else counter.message(message)

    if agent.context_budget is not None:
        cap = budget + tools_tokens + REPLY_PRIMER_TOKENS
        return await cache_aware_prompt(
            run, agent.name, model, agent._split, history, agent.context_budget, tools_tokens, count, cap
        )
    text, run.rendered = agent._instructions.static or run.rendered, None
    if text is None:
        text = await agent._instructions.render(run.ctx)
    instructions = [{"role": "system", "content": text}] if text else []
    own = sum(count(m) for m in instructions)
    total = own + sum(count(m) for m in history)
    if total > budget and run.durable:
        from agnt5.pruning import prune_to_fit

        await run.settle()
        pruned = await prune_to_fit(run.session, budget - own, model=model)
        if pruned is not None and pruned.changed:
            history = await run.read()
            total = own + sum(count(m) for m in history)
    messages: list[Mapping[str, Any]] = without_unanswered_calls([*instructions, *history])
    if total > budget:
        messages = fit_to_budget(messages, budget, count)
    return to_provider_messages(messages), history, None


def _stored_cut(run: Run, agent: str) -> str | None:
    cuts = run.session.get_state(CUT_KEY)
    value = cuts.get(agent) if isinstance(cuts, Mapping) else None
    return value if isinstance(value, str) else None


def _store_cut(run: Run, agent: str, cut: str) -> None:
    cuts = run.session.get_state(CUT_KEY)
    run.session.set_state(CUT_KEY, {**(cuts if isinstance(cuts, Mapping) else {}), agent: cut})


async def cache_aware_prompt(
    run: Run,
    agent: str,
    model: LanguageModel,
    split: SplitInstructions,
    history: list[dict[str, Any]],
    budget: ContextBudget,
    tools_tokens: int,
    count: CountFn,
    cap: int,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], CacheHint]:
    """(prompt, history, cache hint) for one request of a cache-aware agent (see the module doc);
    `cap` is the most the model takes (its window less the output reserve)."""
    rendered, run.rendered = run.rendered, None
    tail_text = ""
    if split.rest is not None:
        if rendered is not None:  # rendered whole before the input was stored: reuse it
            tail_text = rendered[len(split.head) + 2 :] if split.head else rendered
        else:
            tail_text = await split.rest.render(run.ctx)
    head = [{"role": "system", "content": split.head}] if split.head else []
    tail_role = "user" if model.profile.hoists_system else "system"
    tail = [{"role": tail_role, "content": tail_text}] if tail_text else []
    fixed = sum(count(m) for m in (*head, *tail)) + tools_tokens + REPLY_PRIMER_TOKENS
    limit = min(budget.tokens, cap)
    low = int(limit * budget.low_water)
    cut = _stored_cut(run, agent)
    if model.profile.hoists_system:
        count = _counting_summaries_as_sent(count)
    window = stable_window(history, fixed, limit, low, cut, count)
    if window.cut is not None and run.durable and low > fixed:
        from agnt5.pruning import prune_to_fit

        await run.settle()
        try:
            pruned = await prune_to_fit(run.session, low - fixed, model=model)
        except TokenBudgetError:  # the newest turn alone is above the low-water mark: cut instead
            pruned = None
        if pruned is not None and pruned.changed:
            history = await run.read()
            window = stable_window(history, fixed, limit, low, None, count)
            # The prune did the cutting: the cut moves to the first message left.
            first = next((m for m in window.messages if m.get("role") == "user"), None)
            window = Window(window.messages, window.cut or str((first or {}).get("id") or "") or None)
    if window.cut == "" and window.messages:  # the first message kept is not stored yet
        history = await run.read()
        window = stable_window(history, fixed, limit, low, None, count)
    if window.cut:
        _store_cut(run, agent, window.cut)
    sent = summaries_in_place(window.messages) if model.profile.hoists_system else window.messages
    messages = without_unanswered_calls([*head, *sent])
    hint = CacheHint(run.session.id, tail=len(tail))
    return to_provider_messages([*messages, *tail]), history, hint


def summary_as_user(message: Mapping[str, Any]) -> dict[str, Any]:
    """A `summarize_old` summary as a user message opened by `SUMMARY_NOTE` (its id kept)."""
    content = message.get("content")
    if isinstance(content, list):
        body: Any = [{"type": "text", "text": SUMMARY_NOTE}, *content]
    else:
        body = SUMMARY_NOTE + str(content or "")
    return {**message, "role": "user", "content": body}


def summaries_in_place(messages: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """`messages` with each summary sent as a user message where it stands, for providers that
    hoist system messages: hoisted, a new summary would change the system prompt (see the module
    doc). Consecutive user messages are merged by litellm (Anthropic, Gemini)."""
    return [summary_as_user(m) if is_summary(m) else m for m in messages]


def _counting_summaries_as_sent(count: CountFn) -> CountFn:
    def counted(message: Mapping[str, Any]) -> int:
        return count(summary_as_user(message)) if is_summary(message) else count(message)

    return counted


__all__ = [
    "CUT_KEY",
    "ContextBudget",
    "SplitInstructions",
    "build_prompt",
    "cache_aware_prompt",
    "split_instructions",
]
