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

A second table runs (c) on claude-sonnet-4-5 (Anthropic wire format) with a session whose
retention names `prune_strategy="summarize_old"`, measured on the Anthropic request bodies with
the `cache_control` breakpoints agnt5 actually set, twice: with the summary laid out as before
(a system message, which litellm hoists into Anthropic's `system` after the instructions — the
old layout, restored in this benchmark only by replacing `agnt5.context.summaries_in_place`) and
as agnt5 sends it now (a user message at its place in the history, after the instructions).

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
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("AGNT5_DISABLE_NETWORK", "1")
os.environ.setdefault("OPENAI_API_KEY", "sk-bench-not-a-real-key")
os.environ.setdefault("ANTHROPIC_API_KEY", "sk-ant-bench-not-a-real-key")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import httpx
import respx
from _wire import uncached

import agnt5.context
from agnt5 import Agent, LanguageModel, Session, _litellm, tool
from agnt5.blocks import fit_to_budget
from agnt5.store.sqlite import SqliteStore
from agnt5.tokens import REPLY_PRIMER_TOKENS, counter_for

MODEL = "gpt-4o-mini"
OPENAI_URL = "https://api.openai.com/v1/chat/completions"
CLAUDE = "anthropic/claude-sonnet-4-5"
ANTHROPIC_URL = "https://api.anthropic.com/v1/messages"
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


def _anthropic_turn(messages: list[dict[str, Any]]) -> int:
    for m in reversed(messages):
        for block in m["content"] if m["role"] == "user" else ():
            if block.get("type") == "text" and block["text"].startswith("[turn "):
                return int(block["text"].split("]")[0][6:])
    raise AssertionError("no user turn in the request")


def scripted_claude(request: httpx.Request) -> httpx.Response:
    """The same model in Anthropic's wire format; summarize_old's summariser gets a summary of
    ~250 words (the same for both layouts: it depends only on the history summarised)."""
    body = json.loads(request.content)
    messages = body["messages"]
    system = json.dumps(body.get("system", ""))
    content: list[dict[str, Any]]
    if "running summary" in system or "Summarise this part" in system:
        rng = random.Random(len(messages[-1]["content"][0]["text"]))
        content, stop, turn = [{"type": "text", "text": _text(rng, 220, 260)}], "end_turn", 0
    else:
        turn = _anthropic_turn(messages)
        last = messages[-1]["content"]
        answered = any(b.get("type") == "tool_result" for b in last)
        if not answered and is_tool_turn(turn):
            call = {"type": "tool_use", "id": f"toolu_{turn:04d}", "name": "lookup_order"}
            content, stop = [{**call, "input": {"order_id": f"A-{turn}"}}], "tool_use"
        else:
            rng = random.Random(SEED * 3000 + turn)
            content, stop = [{"type": "text", "text": _text(rng, 40, 160)}], "end_turn"
    return httpx.Response(
        200,
        json={
            "id": f"msg_{turn:04d}_{len(messages)}",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5-20250929",
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": {"input_tokens": 100, "output_tokens": 20},
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


async def summarized_claude_run(store: SqliteStore, old_layout: bool) -> tuple[list[dict[str, Any]], int]:
    """(c) on claude-sonnet-4-5 with summarize_old; returns what agnt5 passed litellm (messages,
    tools) per agent request, to check the budget by agnt5's own count, and the prunes made."""
    agent = Agent("shop", CLAUDE, INSTRUCTIONS, [lookup_order, check_stock], context_budget=BUDGET)
    session = Session(f"claude-{old_layout}", retention={"prune_strategy": "summarize_old"}, store=store)
    passed: list[dict[str, Any]] = []
    original_call, original_layout = _litellm.acompletion, agnt5.context.summaries_in_place

    async def recording(**kwargs: Any) -> Any:
        if kwargs.get("tools"):  # the agent's requests (the summariser's have no tools)
            passed.append({"messages": kwargs["messages"], "tools": kwargs["tools"]})
        return await original_call(**kwargs)

    _litellm.acompletion = recording
    if old_layout:  # the layout before: a summary stays a system message (hoisted into `system`)
        agnt5.context.summaries_in_place = lambda messages: list(messages)
    try:
        for turn in range(TURNS):
            await agent.run(user_text(turn), session=session)
    finally:
        _litellm.acompletion, agnt5.context.summaries_in_place = original_call, original_layout
    prunes = [e for e in await session.events() if e.type == "prune"]
    assert prunes and all(e.data["summary_id"] for e in prunes), "summarize_old never summarised"
    return passed, len(prunes)


# --- measuring -----------------------------------------------------------------------------------


@dataclass
class Request:
    blocks: list[list[int]]  # token ids: the tools as one block, then one block per message
    head: int  # blocks of the static head (tools + system)
    previous_turn_end: int  # blocks up to the end of the previous turn
    newest_user: str
    breakpoints: list[int] | None = None  # blocks up to each cache_control marker, when sent

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


def parse_anthropic(body: dict[str, Any]) -> Request:
    """An Anthropic request as Anthropic caches it: tools, then each system block, then each
    content block of each message (role included), with the breakpoints where agnt5 set them."""
    import tiktoken

    enc = tiktoken.get_encoding("o200k_base")
    items: list[tuple[str, Any]] = [("tools", body.get("tools", []))]
    items += [("system", b) for b in body.get("system", [])]
    items += [(m["role"], b) for m in body["messages"] for b in m["content"]]
    blocks, breakpoints = [], []
    for k, (role, block) in enumerate(items):
        blocks.append(enc.encode(role + "\n" + json.dumps(uncached(block), separators=(",", ":"))))
        marked = "cache_control" in block if isinstance(block, dict) else "cache_control" in block[-1]
        if marked:
            breakpoints.append(k + 1)
    assert len(breakpoints) <= 4, "more than four cache_control breakpoints"
    newest = next(
        b["text"]
        for m in reversed(body["messages"])
        if m["role"] == "user"
        for b in m["content"]
        if b.get("type") == "text" and b["text"].startswith("[turn ")
    )
    return Request(blocks, 0, 0, newest, breakpoints)


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
        points = r.breakpoints or sorted({r.head, r.previous_turn_end, len(r.blocks)})
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


def measure_anthropic(name: str, bodies: list[dict[str, Any]], passed: list[dict[str, Any]]) -> Row:
    requests = [parse_anthropic(b) for b in bodies]
    model = LanguageModel(CLAUDE)
    largest = 0
    assert len(passed) == len(bodies)
    for r, body, sent in zip(requests, bodies, passed, strict=True):
        size = model.count_tokens(sent["messages"], sent["tools"])  # agnt5's count, primer included
        assert size <= BUDGET, f"{name}: a request of {size} tokens"
        largest = max(largest, size)
        assert body["messages"][-1]["role"] == "user" and r.newest_user.startswith("[turn ")
    an = anthropic_eligible(requests)
    read, write = sum(a for a, _ in an), sum(w for _, w in an)
    return Row(name, len(requests), sum(len(r.tokens) for r in requests), 0, read, write, largest)


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


async def collect_claude(
    old_layout: bool, tmp: Path
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
    with respx.mock:
        route = respx.post(ANTHROPIC_URL).mock(side_effect=scripted_claude)
        store = SqliteStore(str(tmp / f"claude-{old_layout}.db"))
        try:
            passed, prunes = await summarized_claude_run(store, old_layout)
        finally:
            await store.close()
        bodies = [json.loads(call.request.content) for call in route.calls]
        return [b for b in bodies if b.get("tools")], passed, prunes


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
    variants = {
        True: "summary as a system message (hoisted into `system`; before)",
        False: "summary as a user message in the history (now)",
    }
    claude, prunes = [], set()
    with tempfile.TemporaryDirectory() as tmp:
        for old, name in variants.items():
            bodies, passed, made = await collect_claude(old, Path(tmp))
            claude.append(measure_anthropic(name, bodies, passed))
            prunes.add(made)
    print(
        f'\n(c) on {CLAUDE.split("/")[1]}, session prune_strategy="summarize_old" '
        f"({' / '.join(map(str, sorted(prunes)))} prunes), Anthropic's breakpoints as agnt5 set them "
        "in the request bodies\n"
    )
    print(
        "| summarize_old layout | requests | input tokens | largest request | cache reads | "
        "cache writes | cost claude-sonnet-4-5 (10% / 125%) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for row in claude:
        c = costs(row)["claude-sonnet-4-5"]
        print(
            f"| {row.name} | {row.requests} | {row.input:,} | {row.largest:,} | "
            f"{row.anthropic_read:,} ({row.anthropic_read / row.input:.0%}) | "
            f"{row.anthropic_write:,} ({row.anthropic_write / row.input:.0%}) | "
            f"${c:.4f} ({c / base['claude-sonnet-4-5']:.2f}× (a)) |"
        )


if __name__ == "__main__":
    asyncio.run(main())
