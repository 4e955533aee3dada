"""The pruning strategy protocol, the plan a strategy returns, and the read-only session view.

A strategy only plans: it reads the session through a `SessionView` (no writes to the history),
may call a model, and returns a `PrunePlan` — which seqs to remove, an optional summary, the
model usage. `agnt5.pruning` applies the plan in one transaction, so a failed plan changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from agnt5.blocks import Block, group_blocks, group_turns
from agnt5.messages import Message
from agnt5.store.base import HistoryStats, Store, WindowCut
from agnt5.tokens import TokenCounter, counter_for

if TYPE_CHECKING:
    from agnt5.models import LanguageModel, Usage

DEFAULT_KEEP_MESSAGES = 50
"""Messages kept when a strategy is given no limit (the spec's `keep_last_50`)."""
MAX_LIMIT = 2**63 - 1
"""The largest count or token limit a strategy accepts (the stores' integer range)."""


@dataclass(frozen=True, slots=True)
class Budget:
    """Limits every strategy honours besides its own parameters: `max_tokens` for what remains."""

    max_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class SummaryDraft:
    """A summary message to insert after the messages it replaces."""

    text: str
    metadata: dict[str, Any]


@dataclass(frozen=True, slots=True)
class PrunePlan:
    """What a strategy decided. No seqs and no summary means: leave the history as it is."""

    remove_seqs: tuple[int, ...] = ()
    summary: SummaryDraft | None = None
    usage: Usage | None = None
    scores: Mapping[int, float] = field(default_factory=dict)
    reason: str = ""
    params: Mapping[str, Any] | None = None
    """The parameters the plan used when they differ from the strategy's own (a default limit
    filled in); `PruneResult.params` and the prune event report these."""

    @property
    def changes(self) -> bool:
        return bool(self.remove_seqs) or self.summary is not None


@runtime_checkable
class PruneStrategy(Protocol):
    """A pruning strategy: `name`, the `params` it was built with, and `plan`."""

    name: str
    uses_model: bool

    @property
    def params(self) -> dict[str, Any]:
        """The parameters as recorded in the prune event (JSON-serialisable)."""
        ...

    async def plan(self, view: SessionView, budget: Budget, model: LanguageModel | None) -> PrunePlan:
        """Decide what to remove; must not write the history. `model` is given when `uses_model`."""
        ...


class SessionView:
    """Read-only access to one session's active history for strategies (plus their score cache)."""

    def __init__(self, store: Store, session_id: str, model_name: str) -> None:
        self._store = store
        self.session_id = session_id
        self.model_name = model_name
        self.counter: TokenCounter = counter_for(model_name)

    async def stats(self) -> HistoryStats:
        return await self._store.history_stats(self.session_id)

    async def window_cut(self, max_messages: int | None, max_tokens: int | None) -> WindowCut:
        return await self._store.window_cut(self.session_id, max_messages, max_tokens)

    async def seqs_before(self, pos: float) -> list[int]:
        return await self._store.seqs_before(self.session_id, pos)

    async def messages(self) -> list[Message]:
        """The whole active history (strategies that read content: scoring, summarising)."""
        return await self._store.read_messages(self.session_id, None, False)

    async def scores(self, seqs: Sequence[int]) -> dict[int, float]:
        return await self._store.read_scores(self.session_id, seqs) if seqs else {}

    async def save_scores(self, scores: Mapping[int, float], model: str) -> None:
        """Cache scores (not part of the history) so a failed prune does not pay for them twice."""
        if scores:
            await self._store.save_scores(self.session_id, scores, model)


@dataclass(frozen=True, slots=True)
class Layout:
    """A history split for planning: system blocks, and the non-system blocks grouped in turns."""

    messages: list[Message]
    blocks: list[Block]
    turns: list[list[Block]]

    @property
    def system_tokens(self) -> int:
        return sum(b.tokens for b in self.blocks if b.kind == "system")

    def seqs(self, blocks: Sequence[Block]) -> list[int]:
        return [self.messages[i].seq for b in blocks for i in b.indices]


def layout(messages: list[Message]) -> Layout:
    blocks = group_blocks(messages)
    return Layout(messages, blocks, group_turns(blocks))


def turn_tokens(turn: Sequence[Block]) -> int:
    return sum(b.tokens for b in turn)


def turn_size(turn: Sequence[Block]) -> int:
    return sum(b.size for b in turn)


def recent_turns(turns: list[list[Block]], max_messages: int | None, max_tokens: int | None) -> int:
    """Index of the first turn of the newest user-led turns that fit both limits; the newest
    user-led turn is always included (the current turn is never split). len(turns) when there is
    no user-led turn."""
    users = [i for i, t in enumerate(turns) if t[0].kind == "user"]
    if not users:
        return len(turns)
    first = users[-1]
    count = sum(turn_size(t) for t in turns[first:])
    tokens = sum(turn_tokens(t) for t in turns[first:])
    for i in reversed(users[:-1]):
        more = sum(turn_size(t) for t in turns[i:first])
        more_tokens = sum(turn_tokens(t) for t in turns[i:first])
        if (max_messages is not None and count + more > max_messages) or (
            max_tokens is not None and tokens + more_tokens > max_tokens
        ):
            break
        first, count, tokens = i, count + more, tokens + more_tokens
    return first


def check_positive(name: str, value: Any, strategy: str) -> int | None:
    """Validate an optional integer parameter (None or > 0), raising StrategyError that names it."""
    return None if value is None else require_positive(name, value, strategy)


def require_positive(name: str, value: Any, strategy: str) -> int:
    """Validate an integer parameter (1 to MAX_LIMIT), raising StrategyError that names it."""
    from agnt5.errors import StrategyError

    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise StrategyError(f"{strategy}: {name} must be a positive integer, got {_short(value)}")
    if value > MAX_LIMIT:
        raise StrategyError(
            f"{strategy}: {name}={_short(value)} is too large; use at most {MAX_LIMIT} "
            "(any limit above the session's size already keeps everything)"
        )
    return value


def _short(value: Any) -> str:
    """repr(value), shortened (a huge int or string in an error message stays readable)."""
    if isinstance(value, int) and value.bit_length() > 200:  # str() of a huge int is slow or refused
        return f"an integer of about {int(value.bit_length() * 0.30103) + 1} digits"
    try:
        text = repr(value)
    except Exception:  # a repr that fails (deep nesting, a broken __repr__)
        text = f"a {type(value).__name__}"
    return text if len(text) <= 80 else text[:77] + "..."
