"""Pruning benchmark: sliding_window at 10k and 100k messages, incremental summarize_old, and
agnt5's token counter against litellm.token_counter. Prints a Markdown table.

Offline: the summariser is a respx-mocked OpenAI endpoint. Run: .venv/bin/python benchmarks/pruning.py
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("AGNT5_DISABLE_NETWORK", "1")
os.environ.setdefault("OPENAI_API_KEY", "sk-bench-not-a-real-key")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import httpx
import respx

from agnt5 import Session
from agnt5.store.sqlite import SqliteStore
from agnt5.tokens import count_tokens

MODEL = "gpt-4o-mini"
OPENAI_URL = "https://api.openai.com/v1/chat/completions"


def conversation(start: int, n: int) -> list[dict[str, Any]]:
    """n messages of user / assistant-with-tool-call / tool / assistant turns."""
    out: list[dict[str, Any]] = []
    i = start
    while len(out) < n:
        call = {
            "id": f"c{i}",
            "type": "function",
            "function": {"name": "search", "arguments": f'{{"q": "item {i}"}}'},
        }
        out += [
            {"role": "user", "content": f"Question {i}: what do we know about item {i} and its price?"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": f"c{i}", "content": f"item {i} costs {i % 97} dollars"},
            {"role": "assistant", "content": f"Item {i} costs {i % 97} dollars according to the catalogue."},
        ]
        i += 1
    return out[:n]


async def fill(session: Session, n: int) -> None:
    await session.send_message({"role": "system", "content": "You are a shopping assistant."})
    messages = conversation(0, n - 1)
    for k in range(0, len(messages), 5000):
        await session.send_messages(messages[k : k + 5000])


async def sliding_window(n: int, folder: Path) -> float:
    store = SqliteStore(folder / f"window_{n}.db")
    session = Session(f"s{n}", store=store)
    await fill(session, n)
    start = time.perf_counter()
    result = await session.prune(strategy="sliding_window", window_size=100)
    elapsed = time.perf_counter() - start
    assert result.changed and result.messages_after <= 101, result
    await store.close()
    return elapsed


def _reply(text: str) -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 1727000000,
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        },
    )


async def summarize_twice(folder: Path) -> tuple[int, int, int, int]:
    store = SqliteStore(folder / "summary.db")
    session = Session("sum", store=store)
    await fill(session, 401)
    sent: list[int] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(count_tokens(json.loads(request.content)["messages"], MODEL))
        return _reply(f"Summary {len(sent)}: the user asked about many items and their prices.")

    with respx.mock:
        respx.post(OPENAI_URL).mock(side_effect=answer)
        first = await session.prune(strategy="summarize_old", threshold=100, keep_recent=50)
        await session.send_messages(conversation(10_000, 100))
        second = await session.prune(strategy="summarize_old", threshold=100, keep_recent=50)
    await store.close()
    first_new = first.removed
    second_new = second.removed - 1  # the previous summary is replaced, not new
    return sent[0], sent[-1], first_new, second_new


def token_counter(n: int = 2000, rounds: int = 5) -> tuple[float, float, float, int, int]:
    """(agnt5 first count, agnt5 recount, litellm, agnt5 tokens, litellm tokens): seconds per count."""
    import litellm

    from agnt5.tokens import TokenCounter, encoding_name_for_model

    messages = [m for m in conversation(0, n) if m.get("content") is not None and not m.get("tool_calls")]
    cold = 0.0
    for _ in range(rounds):  # a fresh counter each time: every string encoded
        counter = TokenCounter(encoding_name_for_model(MODEL))
        start = time.perf_counter()
        ours = counter.messages(messages)
        cold += time.perf_counter() - start
    cold /= rounds
    theirs = litellm.token_counter(model=MODEL, messages=messages)
    start = time.perf_counter()
    for _ in range(rounds):  # the agent's case: the same history counted before each model call
        count_tokens(messages, MODEL)
    agnt5_time = (time.perf_counter() - start) / rounds
    start = time.perf_counter()
    for _ in range(rounds):
        litellm.token_counter(model=MODEL, messages=messages)
    litellm_time = (time.perf_counter() - start) / rounds
    return cold, agnt5_time, litellm_time, ours, theirs


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        t10k = await sliding_window(10_000, folder)
        t100k = await sliding_window(100_000, folder)
        s1, s2, n1, n2 = await summarize_twice(folder)
    cold, a, lt, ours, theirs = token_counter()
    n_counted = f"{len([m for m in conversation(0, 2000) if m.get('content') and not m.get('tool_calls')]):,}"
    rows = [
        ("sliding_window, 10,000 messages (window 100)", f"{t10k * 1000:.1f} ms", ""),
        (
            "sliding_window, 100,000 messages (window 100)",
            f"{t100k * 1000:.1f} ms",
            f"{t100k / t10k:.1f}x the 10k cost (target <= 10x)",
        ),
        ("summarize_old, 1st run: tokens sent", f"{s1:,}", f"{n1} messages summarised"),
        (
            "summarize_old, 2nd run: tokens sent",
            f"{s2:,}",
            f"{n2} new messages; tokens ratio {s2 / s1:.2f} vs new-message ratio {n2 / n1:.2f}",
        ),
        (
            f"token count, {n_counted} messages: agnt5, first count",
            f"{cold * 1000:.2f} ms",
            f"{lt / cold:.1f}x faster than litellm; counts {ours:,} = {theirs:,}: {ours == theirs}",
        ),
        (
            f"token count, {n_counted} messages: agnt5, recount (agent turn)",
            f"{a * 1000:.2f} ms",
            f"{lt / a:.1f}x faster than litellm (target >= 3x)",
        ),
        (f"token count, {n_counted} messages: litellm.token_counter", f"{lt * 1000:.2f} ms", ""),
    ]
    print("| Measurement | Result | Note |")
    print("| --- | ---: | --- |")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    asyncio.run(main())
