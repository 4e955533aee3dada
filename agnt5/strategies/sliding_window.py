"""`sliding_window`: keep the newest messages — by count and/or tokens — cut at a user message.

Done in the database from the stored token counts: nothing is loaded or re-tokenised, so the
cost grows with the session's length only through one indexed scan and a running sum.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from agnt5.errors import TokenBudgetError
from agnt5.strategies.base import DEFAULT_KEEP_MESSAGES, Budget, PrunePlan, SessionView, check_positive

if TYPE_CHECKING:
    from agnt5.models import LanguageModel


class SlidingWindow:
    """Keep at most `window_size` non-system messages (system messages and summaries always stay,
    in place) and, with `max_tokens`, a history of at most that many tokens.

    The cut is the oldest user message whose suffix fits, so no tool call is separated from its
    results and the kept history starts at a user message. When even the newest turn (the last
    user message and everything after it) has more than `window_size` messages it is kept whole;
    when it exceeds `max_tokens`, TokenBudgetError. With neither limit, `window_size` is 50.
    """

    name = "sliding_window"
    uses_model = False

    def __init__(self, window_size: int | None = None) -> None:
        self.window_size = check_positive("window_size", window_size, self.name)

    @property
    def params(self) -> dict[str, Any]:
        return {"window_size": self.window_size}

    async def plan(self, view: SessionView, budget: Budget, model: LanguageModel | None = None) -> PrunePlan:
        window = self.window_size
        used: dict[str, Any] | None = None
        if window is None and budget.max_tokens is None:
            window = DEFAULT_KEEP_MESSAGES
            used = {**self.params, "window_size": window}
        cut = await view.window_cut(window, budget.max_tokens)
        stats = cut.stats
        over_count = window is not None and stats.conversation_messages > window
        over_tokens = budget.max_tokens is not None and stats.tokens > budget.max_tokens
        if not over_count and not over_tokens:
            return PrunePlan(reason="within limits", params=used)
        if budget.max_tokens is not None and stats.system_tokens > budget.max_tokens:
            raise TokenBudgetError(
                f"the system messages alone take {stats.system_tokens} tokens, more than max_tokens="
                f"{budget.max_tokens}; raise max_tokens (system messages are never removed or truncated)"
            )
        if cut.cut is not None:
            pos = cut.cut.pos
        elif cut.last_user is None:
            pos = math.inf  # no user message: nothing valid can follow the system messages
        elif (
            budget.max_tokens is not None
            and stats.system_tokens + cut.last_user.kept_tokens > budget.max_tokens
        ):
            raise TokenBudgetError(
                f"the system messages ({stats.system_tokens} tokens) and the newest turn "
                f"({cut.last_user.kept_tokens} tokens from the last user message on) exceed "
                f"max_tokens={budget.max_tokens}; raise max_tokens"
            )
        else:
            pos = cut.last_user.pos  # the newest turn alone exceeds window_size: keep it whole
        seqs = await view.seqs_before(pos)
        if not seqs:
            return PrunePlan(reason="nothing can be removed without splitting the newest turn", params=used)
        return PrunePlan(remove_seqs=tuple(seqs), params=used)
