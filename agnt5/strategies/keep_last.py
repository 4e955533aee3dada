"""`keep_last_<N>`: the sliding window of the newest N non-system messages."""

from __future__ import annotations

from typing import Any

from agnt5.strategies.base import require_positive
from agnt5.strategies.sliding_window import SlidingWindow


class KeepLast(SlidingWindow):
    """Keep the newest `n` non-system messages (fewer when the cut must move to a user message)."""

    def __init__(self, n: int) -> None:
        checked = require_positive("n", n, "keep_last")
        super().__init__(window_size=checked)
        self.n = checked
        self.name = f"keep_last_{checked}"

    @property
    def params(self) -> dict[str, Any]:
        return {"n": self.n}
