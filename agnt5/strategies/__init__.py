"""Pruning strategies: one protocol (`PruneStrategy`), one module per strategy, a registry."""

from __future__ import annotations

from agnt5.strategies.base import Budget, PrunePlan, PruneStrategy, SessionView, SummaryDraft
from agnt5.strategies.keep_important import KeepImportant
from agnt5.strategies.keep_last import KeepLast
from agnt5.strategies.registry import STRATEGIES, accepted_names, get_strategy
from agnt5.strategies.sliding_window import SlidingWindow
from agnt5.strategies.summarize_old import SummarizeOld

__all__ = [
    "STRATEGIES",
    "Budget",
    "KeepImportant",
    "KeepLast",
    "PrunePlan",
    "PruneStrategy",
    "SessionView",
    "SlidingWindow",
    "SummarizeOld",
    "SummaryDraft",
    "accepted_names",
    "get_strategy",
]
