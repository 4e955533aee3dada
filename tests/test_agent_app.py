"""A web application's pattern, FastAPI-style: one module-level Agent, a session per user, deps per
request. 50 concurrent requests from 10 users, on SQLite and PostgreSQL, through respx-mocked
OpenAI wire responses: every session ends with exactly its own turns, in order, and no request
body carries another user's text."""

from __future__ import annotations

import asyncio
import json
import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import httpx
import respx
from _wire import openai_call, openai_chat

from agnt5 import Agent, RunContext, Session, tool

OPENAI = "https://api.openai.com/v1/chat/completions"
USERS = 10
TURNS = 5


# --- the "application module" --------------------------------------------------------------------


@dataclass
class AppDeps:
    user_id: str
    orders: dict[str, list[str]]


@tool
async def list_orders(ctx: RunContext[AppDeps]) -> list[str]:
    """The caller's orders."""
    await asyncio.sleep(0)
    return ctx.deps.orders[ctx.deps.user_id]


support = Agent(
    "support",
    instructions="You help {user:name}. Be brief.",
    tools=[list_orders],
    deps_type=AppDeps,
)
_turn_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)


async def chat_endpoint(store: Any, user_id: str, text: str, orders: dict[str, list[str]]) -> str:
    """POST /chat: the user's conversation, one turn at a time per conversation."""
    session = Session(f"chat-{user_id}", app_name="shop", user_id=user_id, store=store)
    async with _turn_locks[f"{id(store)}:{session.id}"]:
        result = await support.run(text, session=session, deps=AppDeps(user_id, orders))
    return result.output


# --- the test ------------------------------------------------------------------------------------


def model_reply(request: httpx.Request) -> httpx.Response:
    body = json.loads(request.content)
    last = body["messages"][-1]
    if last["role"] == "tool":
        return openai_chat(f"Your orders: {last['content']}")
    if "orders" in last["content"]:
        return openai_chat(tool_calls=[openai_call("list_orders", {})])
    return openai_chat(f"echo: {last['content']}")


def owners(text: str) -> set[str]:
    return set(re.findall(r"u(\d+)(?:-|\b)", text))


@respx.mock
async def test_fifty_concurrent_requests_from_ten_users(store: Any) -> None:
    route = respx.post(OPENAI).mock(side_effect=model_reply)
    orders = {f"u{u}": [f"order-u{u}-{k}" for k in range(2)] for u in range(USERS)}
    for u in range(USERS):
        profile = Session(f"profile-u{u}", app_name="shop", user_id=f"u{u}", store=store)
        profile.set_state("name", f"name-u{u}", scope="user")
        await profile.flush()

    def text(u: int, t: int) -> str:
        return f"u{u}-turn{t}: show my orders" if t % 2 else f"u{u}-turn{t}: hello"

    requests = [chat_endpoint(store, f"u{u}", text(u, t), orders) for t in range(TURNS) for u in range(USERS)]
    answers = await asyncio.gather(*requests)

    assert len(answers) == USERS * TURNS
    # No request carried another user's text (instructions, messages, tool results).
    for call in route.calls:
        body = json.loads(call.request.content)
        seen = set()
        for message in body["messages"]:
            seen |= owners(json.dumps(message))
        assert len(seen) == 1, f"request mixes users {sorted(seen)}"
        (user,) = seen
        assert body["messages"][0] == {"role": "system", "content": f"You help name-u{user}. Be brief."}
    # Every session holds exactly its own turns, in order.
    for u in range(USERS):
        history = await Session(f"chat-u{u}", store=store).history()
        expected: list[Any] = []
        for t in range(TURNS):
            expected.append(("user", text(u, t)))
            if t % 2:
                expected += [
                    ("assistant", None),
                    ("tool", json.dumps(orders[f"u{u}"], separators=(",", ":"))),
                    ("assistant", f"Your orders: {json.dumps(orders[f'u{u}'], separators=(',', ':'))}"),
                ]
            else:
                expected.append(("assistant", f"echo: {text(u, t)}"))
        assert [(m["role"], m["content"]) for m in history] == expected
        assert {m.metadata["agent"] for m in history} == {"support"}
        seqs = [m.seq for m in history]
        assert seqs == sorted(seqs)
