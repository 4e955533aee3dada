"""Part 4 of the demo: a long session (240 messages written locally, no model) pruned twice —
`keep_important` drops the small talk, then `summarize_old` folds what is old into a summary."""

from __future__ import annotations

import json
import math
import random
from typing import Any

from agnt5.cli.render import clip
from agnt5.demo.context import APP, MODEL, Demo
from agnt5.pruning import PruneResult
from agnt5.session import Session

TURNS = 80
"""Half order problems (4 messages each: question, tool call, result, answer), half small talk (2)."""
BATCH = 20
SYSTEM = "You are Acme's support assistant. Be brief and friendly."
PRODUCTS = [
    ("wireless headphones", 89.00),
    ("standing desk", 349.00),
    ("espresso machine", 229.00),
    ("mechanical keyboard", 119.00),
    ("4K monitor", 279.00),
    ("office chair", 189.00),
    ("webcam", 59.00),
    ("desk lamp", 39.00),
]
PROBLEMS = [
    "arrived with a cracked case",
    "never arrived",
    "is the wrong colour",
    "stopped working after a week",
    "was missing its power cable",
]
SMALL_TALK = [
    ("Hi there, just checking in.", "Hello! Nice to hear from you. How can I help today?"),
    ("Thanks, that's all for now!", "You're welcome, have a great day!"),
    ("Haha, you're quick today.", "I try my best! Anything else I can do?"),
    ("Is it sunny where you are?", "I don't see the weather, but I hope it's sunny for you!"),
    ("Ok, talk later.", "Talk soon!"),
]


def _order_turn(n: int, rng: random.Random) -> list[dict[str, Any]]:
    product, price = rng.choice(PRODUCTS)
    problem = rng.choice(PROBLEMS)
    order = f"A-{1000 + n}"
    call_id = f"call_hist_{n:03d}"
    arguments = json.dumps({"order_id": order})
    result = {"order_id": order, "item": product, "amount": price, "status": "delivered"}
    return [
        {"role": "user", "content": f"My order #{order} ({product}) {problem}. Can you help?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": "lookup_order", "arguments": arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call_id, "content": json.dumps(result)},
        {
            "role": "assistant",
            "content": f"Sorry about that! I've shipped a free replacement {product} for order #{order} "
            f"(${price:.2f}); it arrives within 3 days and you can keep or recycle the old one.",
        },
    ]


def history() -> list[dict[str, Any]]:
    """The long session's messages: deterministic (seeded), so its prune requests match the cassette."""
    rng = random.Random(2025)
    messages: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM}]
    for n in range(TURNS):
        if n % 2 == 0:
            messages += _order_turn(n, rng)
        else:
            user, assistant = SMALL_TALK[rng.randrange(len(SMALL_TALK))]
            messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    return messages


async def write_backlog(demo: Demo) -> Session:
    session = Session(
        demo.session_id("backlog"),
        app_name=APP,
        user_id=demo.user_id,
        metadata={"channel": "web-chat", "imported": True},
        store=demo.store,
        model=MODEL,
    )
    messages = history()
    bar = demo.progress(len(messages), f"writing {len(messages)} messages")
    for start in range(0, len(messages), BATCH):
        chunk = messages[start : start + BATCH]
        await session.send_messages(chunk, metadata={"agent": "support_assistant"})
        bar.advance(len(chunk))
    demo.finish()
    stats = await demo.store.history_stats(session.id)
    demo.say(f"session {session.id}: {stats.messages} messages, {stats.tokens} tokens")
    return session


def _report(demo: Demo, name: str, result: PruneResult) -> None:
    demo.say(
        f"  {name}: removed {result.removed} messages ({result.messages_before} -> {result.messages_after}), "
        f"tokens {result.tokens_before} -> {result.tokens_after}"
        + (f"; {result.prompt_tokens} prompt tokens sent to {result.model}" if result.model else "")
    )
    demo.facts[name] = {
        "removed": result.removed,
        "tokens_before": result.tokens_before,
        "tokens_after": result.tokens_after,
        "messages_before": result.messages_before,
        "messages_after": result.messages_after,
    }


async def prune_backlog(demo: Demo, session: Session) -> None:
    stats = await demo.store.history_stats(session.id)
    model = demo.model()
    demo.say("keep_important(max_messages=120, keep_recent=4): the model scores every message 0-10")
    demo.progress(math.ceil(stats.conversation_messages / 100), "scoring importance")
    important = await session.prune("keep_important", max_messages=120, keep_recent=4, model=model)
    demo.finish()
    _report(demo, "keep_important", important)

    demo.say("summarize_old(threshold=40, keep_recent=12): older turns become one summary message")
    demo.progress(1, "summarising")
    summarised = await session.prune("summarize_old", threshold=40, keep_recent=12, model=model)
    demo.finish()
    _report(demo, "summarize_old", summarised)

    kept = await session.history()
    summary = next((m for m in kept if (m.metadata or {}).get("summary")), None)
    if summary is not None:
        covers = summary.metadata.get("covers", {})
        demo.say(f"  summary message (covers {covers.get('messages')} messages):")
        demo.say(f"    {clip(str(summary.get('content')), 300)}")
    tombstones = len(await session.history(include_pruned=True)) - len(kept)
    demo.say(f"  now {len(kept)} active messages; {tombstones} tombstones keep the pruned ids and metadata")
