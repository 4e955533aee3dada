"""Context cost benchmark: a 300-turn conversation with tool calls inside an 8,000-token budget,
sent three ways, measuring what providers' prompt caches can serve. Prints a Markdown table.
Every request is checked to be within the budget (agnt5's count, tools and reply primer
included) and to end with the newest user turn whole (or its tool results).

(a) per-turn trimming: the newest whole blocks that fit the budget, recomputed every request
    (a sliding window, as LangChain's `trim_messages` does), sent through `LanguageModel`;
(b) agnt5 before issue 16: an Agent without `context_budget` (the same per-request fit,
    `agnt5.blocks.fit_to_budget`), its model's output reserve set so that its budget is 8,000;
(c) agnt5 cache-aware: `Agent(context_budget=8000)` (stable cuts down to 65%, kept until the
    budget is reached again).

The model is scripted behind respx (OpenAI wire format, offline, deterministic): two turns in
three call a tool first. Every request body agnt5 actually sent is measured. A request is a
token sequence (tool schemas, then each message, tiktoken o200k); its input tokens are that
length. Cache-eligible tokens:
- OpenAI's rule: the longest prefix shared with an earlier request (the last 32 are searched),
  if >= 1,024 tokens, rounded down to 1,024 + a multiple of 128;
- Anthropic's breakpoints: breakpoints after the instructions (tools + system), at the end of the
  previous turn and on the last message, as agnt5 places them, for all three; a request reads the
  longest prefix an earlier request wrote at a breakpoint, found at one of its breakpoints or up
  to 20 blocks before one (>= 1,024 tokens), and writes from there up to its last breakpoint.
Effective input cost uses litellm's cost map: gpt-4o-mini (cached reads 50%), gpt-5 (10%) under
OpenAI's rule, claude-sonnet-4-5 (reads 10%, writes 125%) under Anthropic's.

Run: .venv/bin/python benchmarks/context_cost.py
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("AGNT5_DISABLE_NETWORK", "1")
os.environ.setdefault("OPENAI_API_KEY", "sk-bench-not-a-real-key")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import httpx
import respx

from agnt5 import Agent, LanguageModel, Session, tool
from agnt5.blocks import fit_to_budget
from agnt5.store.sqlite import SqliteStore
from agnt5.tokens import REPLY_PRIMER_TOKENS, counter_for

MODEL = "gpt-4o-mini"
OPENAI_URL = "https://api.openai.com/v1/chat/completions"
TURNS = 300
BUDGET = 8000
SEED = 16
INSTRUCTIONS = (
    "You are the support assistant of a hardware shop. Answer questions about orders, stock, "
    "deliveries and returns. Look facts up with the tools before answering; never invent order "
    "numbers, prices or dates. Be concise, friendly and precise; quote the numbers you found. "
) * 4
WORDS = (
    "order delivery parcel drill hammer screws warranty refund invoice address courier stock "
    "shelf price discount battery charger ladder paint brush saw timber bolt washer"
).split()


# --- the conversation ----------------------------------------------------------------------------


def _text(rng: random.Random, lo: int, hi: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi)))


def user_text(turn: int) -> str:
    return f"[turn {turn}] " + _text(random.Random(SEED * 1000 + turn), 25, 90)


def is_tool_turn(turn: int) -> bool:
    return turn % 3 != 2


def order_details(order_id: str) -> str:
    """Look an order up by its id: items, status, delivery date."""
    turn = int(order_id.split("-")[1])
    return f"order {order_id}: " + _text(random.Random(SEED * 7000 + turn), 120, 320)


lookup_order = tool(order_details)


@tool
def check_stock(item: str) -> str:
    """How many of an item are in stock, per shop."""
    return f"{item}: 12 in Leeds, 3 in York"


def scripted(request: httpx.Request) -> httpx.Response:
    """The model: a tool call first on tool turns, then (or else) an answer; all deterministic."""
    body = json.loads(request.content)
    messages = body["messages"]
    last = messages[-1]
    turn = next(int(m["content"].split("]")[0][6:]) for m in reversed(messages) if m["role"] == "user")
    rng = random.Random(SEED * 3000 + turn)
    message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
    if last["role"] == "user" and is_tool_turn(turn):
        call = {"name": "lookup_order", "arguments": json.dumps({"order_id": f"A-{turn}"})}
        message["tool_calls"] = [{"id": f"call_{turn:04d}", "type": "function", "function": call}]
        finish = "tool_calls"
    else:
        message["content"] = _text(rng, 40, 160)
        finish = "stop"
    return httpx.Response(
        200,
        json={
            "id": f"chatcmpl-{turn}-{len(messages)}",
            "object": "chat.completion",
            "created": 1727000000,
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
        },
    )


# --- the three ways ------------------------------------------------------------------------------


def _schemas() -> list[dict[str, Any]]:
    return [lookup_order.schema(), check_stock.schema()]


async def per_turn_trimming(route: Any) -> None:
    """(a): a plain message list, trimmed to the newest blocks that fit before every request."""
    model = LanguageModel(MODEL)
    counter = counter_for(MODEL)
    tools_tokens = sum(counter.text(json.dumps(s, separators=(",", ":"))) for s in _schemas())
    room = BUDGET - tools_tokens - REPLY_PRIMER_TOKENS
    history: list[dict[str, Any]] = [{"role": "system", "content": INSTRUCTIONS}]
    for turn in range(TURNS):
        history.append({"role": "user", "content": user_text(turn)})
        while True:
            sent = fit_to_budget(history, room, counter.message)
            response = await model.generate(sent, tools=_schemas())
            history.append(response.message())
            if not response.tool_calls:
                break
            for call in response.tool_calls:
                result = order_details(**json.loads(call.arguments))
                history.append({"role": "tool", "tool_call_id": call.id, "content": result})


async def agnt5_run(route: Any, store: SqliteStore, cache_aware: bool) -> None:
    """(b) and (c): the same Agent, without and with a context budget."""
    if cache_aware:
        agent = Agent("shop", MODEL, INSTRUCTIONS, [lookup_order, check_stock], context_budget=BUDGET)
    else:
        probe = LanguageModel(MODEL)
        reserve = probe.context_window - BUDGET  # so that agnt5's window-based budget is 8,000
        agent = Agent(
            "shop", LanguageModel(MODEL, max_tokens=reserve), INSTRUCTIONS, [lookup_order, check_stock]
        )
    session = Session(f"bench-{cache_aware}", store=store)
    for turn in range(TURNS):
        await agent.run(user_text(turn), session=session)


# --- measuring -----------------------------------------------------------------------------------


@dataclass
class Request:
    blocks: list[list[int]]  # token ids: the tools as one block, then one block per message
    head: int  # blocks of the static head (tools + system)
    previous_turn_end: int  # blocks up to the end of the previous turn
    newest_user: str

    @property
    def tokens(self) -> list[int]:
        return [t for b in self.blocks for t in b]


def parse(body: dict[str, Any]) -> Request:
    import tiktoken

    enc = tiktoken.get_encoding("o200k_base")
    tools = enc.encode(json.dumps(body.get("tools", []), separators=(",", ":")))
    blocks = [tools]
    for m in body["messages"]:
        text = m["role"] + "\n" + (m.get("content") or "") + json.dumps(m.get("tool_calls") or "")
        blocks.append(enc.encode(text))
    messages = body["messages"]
    head = 1 + sum(1 for m in messages[:1] if m["role"] == "system")
    users = [i for i, m in enumerate(messages) if m["role"] == "user"]
    newest = users[-1]
    return Request(blocks, head, max(head, 1 + newest), messages[newest]["content"])


def _prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def openai_eligible(requests: list[Request]) -> list[int]:
    out = []
    seqs = [r.tokens for r in requests]
    for i, seq in enumerate(seqs):
        common = max((_prefix(seq, seqs[j]) for j in range(max(0, i - 32), i)), default=0)
        out.append(0 if common < 1024 else min(len(seq), 1024 + (common - 1024) // 128 * 128))
    return out


def anthropic_eligible(requests: list[Request]) -> list[tuple[int, int]]:
    """(read, written) tokens per request under Anthropic's breakpoint rules."""
    written: set[bytes] = set()
    out = []
    for r in requests:
        sizes = [len(b) for b in r.blocks]
        ends = [sum(sizes[:k]) for k in range(len(sizes) + 1)]
        hashes = [hashlib.sha1(b"").digest()]
        h = hashlib.sha1()
        for block in r.blocks:
            h.update(json.dumps(block).encode())
            hashes.append(h.copy().digest())
        points = sorted({r.head, r.previous_turn_end, len(r.blocks)})
        best = 0
        for p in points:
            for k in range(p, max(0, p - 20) - 1, -1):
                if hashes[k] in written and ends[k] >= 1024:
                    best = max(best, k)
                    break
        last = points[-1]
        read = ends[best]
        write = ends[last] - read if ends[last] >= 1024 else 0
        for p in points:
            if ends[p] >= 1024:
                written.add(hashes[p])
        out.append((read, write))
    return out


@dataclass
class Row:
    name: str
    requests: int
    input: int
    openai: int
    anthropic_read: int
    anthropic_write: int
    largest: int  # agnt5's count (as litellm counts), tools and reply primer included


def measure(name: str, bodies: list[dict[str, Any]]) -> Row:
    requests = [parse(b) for b in bodies]
    model = LanguageModel(MODEL)
    largest = 0
    for r, body in zip(requests, bodies, strict=True):
        size = model.count_tokens(body["messages"], body.get("tools"))  # the reply primer included
        assert size <= BUDGET, f"{name}: a request of {size} tokens"
        largest = max(largest, size)
        assert body["messages"][-1]["role"] in ("user", "tool")
        assert r.newest_user.startswith("[turn ")  # the newest user turn is sent whole
    oa = openai_eligible(requests)
    an = anthropic_eligible(requests)
    return Row(
        name,
        len(requests),
        sum(len(r.tokens) for r in requests),
        sum(oa),
        sum(a for a, _ in an),
        sum(w for _, w in an),
        largest,
    )


def _price(model: str) -> tuple[float, float, float]:
    import litellm

    info = litellm.model_cost[model]
    base = info["input_cost_per_token"]
    return (
        base,
        info.get("cache_read_input_token_cost") or base,
        info.get("cache_creation_input_token_cost") or base,
    )


def costs(row: Row) -> dict[str, float]:
    out = {}
    for model in ("gpt-4o-mini", "gpt-5"):
        base, read, _ = _price(model)
        out[model] = (row.input - row.openai) * base + row.openai * read
    base, read, write = _price("claude-sonnet-4-5")
    fresh = row.input - row.anthropic_read - row.anthropic_write
    out["claude-sonnet-4-5"] = fresh * base + row.anthropic_read * read + row.anthropic_write * write
    return out


async def collect(kind: str, tmp: Path) -> list[dict[str, Any]]:
    with respx.mock:
        route = respx.post(OPENAI_URL).mock(side_effect=scripted)
        store = SqliteStore(str(tmp / f"{kind}.db"))
        try:
            if kind == "a":
                await per_turn_trimming(route)
            else:
                await agnt5_run(route, store, cache_aware=kind == "c")
        finally:
            await store.close()
        return [json.loads(call.request.content) for call in route.calls]


async def main() -> None:
    names = {
        "a": "(a) per-turn trimming",
        "b": "(b) agnt5 before (fit every request)",
        "c": "(c) agnt5 cache-aware (context_budget=8000)",
    }
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind, name in names.items():
            rows.append(measure(name, await collect(kind, Path(tmp))))
    base = costs(rows[0])
    print(
        f"{TURNS} turns ({sum(is_tool_turn(t) for t in range(TURNS))} with a tool call), budget {BUDGET:,} tokens\n"
    )
    print(
        "| context | requests | input tokens | largest request | cache-eligible, OpenAI rule | "
        "cache reads / writes, Anthropic | cost gpt-4o-mini (50%) | cost gpt-5 (10%) | "
        "cost claude-sonnet-4-5 (10% / 125%) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        c = costs(row)
        rel = {k: c[k] / base[k] for k in c}
        print(
            f"| {row.name} | {row.requests} | {row.input:,} | {row.largest:,} | "
            f"{row.openai:,} ({row.openai / row.input:.0%}) | "
            f"{row.anthropic_read / row.input:.0%} / {row.anthropic_write / row.input:.0%} | "
            f"${c['gpt-4o-mini']:.4f} ({rel['gpt-4o-mini']:.2f}×) | ${c['gpt-5']:.4f} ({rel['gpt-5']:.2f}×) | "
            f"${c['claude-sonnet-4-5']:.4f} ({rel['claude-sonnet-4-5']:.2f}×) |"
        )


if __name__ == "__main__":
    asyncio.run(main())
