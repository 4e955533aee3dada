"""The strategy tests run on every store: make_session() without a store uses the `store` fixture."""

from __future__ import annotations

from typing import Any

import pytest

import agnt5


@pytest.fixture(autouse=True)
def _sessions_on_each_store(store: Any) -> None:
    agnt5.configure(store=store)
