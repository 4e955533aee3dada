"""Strategy names → strategies: `get_strategy("keep_last_50")`, `get_strategy("sliding_window",
window_size=100)`; unknown names and bad parameters raise StrategyError listing what is accepted."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any

from agnt5.errors import StrategyError
from agnt5.strategies.base import PruneStrategy
from agnt5.strategies.keep_important import KeepImportant
from agnt5.strategies.keep_last import KeepLast
from agnt5.strategies.sliding_window import SlidingWindow
from agnt5.strategies.summarize_old import SummarizeOld

STRATEGIES: dict[str, Callable[..., PruneStrategy]] = {
    "sliding_window": SlidingWindow,
    "keep_last": KeepLast,
    "keep_important": KeepImportant,
    "summarize_old": SummarizeOld,
}
_KEEP_LAST = re.compile(r"keep_last_([1-9][0-9]*)")


def accepted_names() -> str:
    return "keep_last_<N>, " + ", ".join(STRATEGIES)


def _parameters(factory: Callable[..., Any]) -> list[str]:
    return [p for p in inspect.signature(factory).parameters if p != "self"]


def get_strategy(strategy: str | PruneStrategy, **params: Any) -> PruneStrategy:
    """The strategy named `strategy` built with `params`, or a strategy object as is (then no params)."""
    if not isinstance(strategy, str):
        if not isinstance(strategy, PruneStrategy):
            raise StrategyError(
                f"strategy must be a name ({accepted_names()}) or an object with name, uses_model, "
                f"params and async plan(view, budget, model); got {type(strategy).__name__}"
            )
        if params:
            raise StrategyError(
                f"parameters {sorted(params)} were given with a strategy object; set them on the object"
            )
        return strategy
    match = _KEEP_LAST.fullmatch(strategy)
    if match is not None:
        if params:
            raise StrategyError(f"{strategy} takes no parameters (N is in the name); got {sorted(params)}")
        return KeepLast(int(match.group(1)))
    factory = STRATEGIES.get(strategy)
    if factory is None:
        raise StrategyError(f"unknown prune strategy {strategy!r}; accepted: {accepted_names()}")
    accepted = _parameters(factory)
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise StrategyError(
            f"{strategy} does not take {', '.join(unknown)}; it accepts {', '.join(accepted)} "
            "(and prune() itself takes max_tokens and model)"
        )
    try:
        return factory(**params)
    except TypeError as exc:
        raise StrategyError(f"{strategy}: {exc}; it accepts {', '.join(accepted)}") from exc
