"""Strategy names → strategies: `get_strategy("keep_last_50")`, `get_strategy("sliding_window",
window_size=100)`; unknown names and bad parameters raise StrategyError listing what is accepted."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any

from agnt5.errors import StrategyError
from agnt5.strategies.base import MAX_LIMIT, PruneStrategy
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
_KEEP_LAST = re.compile(r"keep_last_(.*)", re.DOTALL)


def accepted_names() -> str:
    return "keep_last_<N>, " + ", ".join(STRATEGIES)


def _parameters(factory: Callable[..., Any]) -> list[str]:
    return [p for p in inspect.signature(factory).parameters if p != "self"]


def _keep_last_n(digits: str) -> int:
    """N of `keep_last_<N>`: a whole number from 1 to MAX_LIMIT, else StrategyError saying so."""
    if not (digits.isascii() and digits.isdigit()):
        raise StrategyError(
            f"keep_last_<N> needs a whole number N >= 1 in the name (e.g. keep_last_50), got {digits[:40]!r}"
        )
    if len(digits.lstrip("0")) > len(str(MAX_LIMIT)) or int(digits) > MAX_LIMIT:
        raise StrategyError(
            f"keep_last_<N>: N={digits[:40]}{'...' if len(digits) > 40 else ''} is too large; use at most "
            f"{MAX_LIMIT} (any N above the session's size already keeps everything)"
        )
    if int(digits) < 1:
        raise StrategyError(
            f"keep_last_<N>: N must be >= 1 (keep_last_0 would remove everything), got {digits}"
        )
    return int(digits)


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
        return KeepLast(_keep_last_n(match.group(1)))
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
