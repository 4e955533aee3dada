"""keep_last_<N>: the newest N non-system messages, cut at a user message; invariants hold."""

from __future__ import annotations

import asyncio
from typing import Any

from _convo import check_invariants, conversations, example_store, make_session
from conftest import StoreEnv
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


@settings(deadline=None, max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(conversations(), st.integers(1, 15))
def test_keep_last_invariants(store_env: StoreEnv, history: list[dict[str, Any]], n: int) -> None:
    async def run() -> None:
        store, session_id = example_store(store_env)
        try:
            session = await make_session(history, store, session_id=session_id)
            before = await session.history()
            result = await session.prune(strategy=f"keep_last_{n}")
            after = await session.history()
            check_invariants(before, after, changed=result.changed)
            conversation = [m for m in before if m["role"] != "system"]
            if len(conversation) <= n:
                assert not result.changed
            assert result.messages_after == len(after)
        finally:
            await store.close()

    asyncio.run(run())
