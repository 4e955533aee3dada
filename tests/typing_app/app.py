"""A small user app on agnt5's public API; tests/test_typing.py checks it with `mypy --strict`.

Never imported by the suite (it would need a model). Extend it as the public API grows: every
line here must type-check under --strict against the installed agnt5.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pydantic

from agnt5 import (
    Agent,
    AgentResult,
    ApprovalConflictError,
    Denial,
    Entity,
    GuardrailResult,
    GuardrailTripped,
    LanguageModel,
    Memory,
    MemoryResult,
    Message,
    PendingCall,
    RunContext,
    RunHooks,
    Session,
    Tool,
    Usage,
    UsageLimitExceeded,
    UsageLimits,
    VectorMemoryService,
    pending_approvals,
    tool,
)
from agnt5.errors import Agnt5Error, InvalidInputError


@tool
def add(a: int, b: int) -> int:
    """Add two numbers.

    Args:
        a: The first number.
        b: The second number.
    """
    return a + b


@tool(name="lookup_order", description="Look an order up by id.")
async def lookup_order(order_id: str) -> dict[str, str]:
    return {"id": order_id, "status": "shipped"}


async def main() -> None:
    session = Session(id="support-1", app_name="shop", user_id="u1")
    message: Message = await session.send_message({"role": "user", "content": "hi"})
    seq: int = message.seq
    session.set_state("plan", "pro", scope="user")
    plan: object = session.get_state("plan", scope="user")
    history: list[Message] = await session.history(limit=10)

    entity = Entity("inventory")
    await entity.set("apples", 3)
    apples: object = await entity.get("apples", 0)

    memory = Memory(VectorMemoryService("text-embedding-3-small"), user_id="u1", app_name="shop")
    await memory.store("pref", "likes green tea")
    hits: list[MemoryResult] = list(await memory.search("tea", limit=3))

    model = LanguageModel("gpt-4o-mini", temperature=0.0)
    agent = Agent("helper", model=model, instructions="Be brief.", tools=[add, lookup_order], memory=memory)
    result: AgentResult[str] = await agent.run("what is 2 + 3?", session=session)
    answer: str = result.output
    usage: Usage = result.usage + Usage(prompt_tokens=1)
    total: int = usage.total_tokens

    direct: int = add(2, 3)  # a @tool function keeps its signature
    order: dict[str, str] = await lookup_order("A-1")
    as_tool: Tool = add

    try:
        Session(id="")
    except InvalidInputError as exc:
        field: str | None = exc.field
    except Agnt5Error:
        pass

    print(seq, plan, history, apples, hits, answer, total, direct, order, as_tool, field)


# --- an application's agent: deps, tools taking RunContext[Deps], typed output ---------------------


@dataclass
class ShopDeps:
    user_id: str
    discount: float


class Refund(pydantic.BaseModel):
    amount: float
    reason: str


@tool
async def price(ctx: RunContext[ShopDeps], item: str) -> float:
    """The caller's price of an item."""
    return 10.0 * (1 - ctx.deps.discount)


def who(ctx: RunContext[ShopDeps]) -> str:
    return f"The user is {ctx.deps.user_id}."


def no_secrets(ctx: RunContext[ShopDeps], text: object) -> GuardrailResult:
    return GuardrailResult("password" in str(text), "contains a password")


class Audit(RunHooks[ShopDeps]):
    async def on_run_start(self, ctx: RunContext[ShopDeps], agent: Agent[ShopDeps, Any]) -> None:
        print(ctx.deps.user_id, ctx.run_id, ctx.usage.requests, agent.name)


shop: Agent[ShopDeps, Refund] = Agent(
    "refunds",
    instructions=["Refunds for {user:name?}.", who],
    tools=[price],
    output_type=Refund,
    deps_type=ShopDeps,
    hooks=Audit(),
    input_guardrails=[no_secrets],
)


async def handle_refund(user_id: str, text: str) -> float:
    session = Session(id=f"chat-{user_id}", app_name="shop", user_id=user_id)
    try:
        result: AgentResult[Refund] = await shop.run(
            text,
            session=session,
            deps=ShopDeps(user_id, 0.1),
            usage_limits=UsageLimits(requests=5, total_tokens=20_000),
            hooks=Audit(),
        )
    except UsageLimitExceeded as exc:
        print(exc.limit, exc.actual, exc.partial)
        return 0.0
    except GuardrailTripped as exc:
        print(exc.guardrail, exc.reason)
        return 0.0
    amount: float = result.output.amount
    with shop.override(model="gpt-4o", deps=ShopDeps("test", 0.0)):
        again: AgentResult[Refund] = shop.run_sync(text, deps=ShopDeps(user_id, 0.0))
    return amount + again.output.amount


def above_limit(ctx: RunContext[ShopDeps], args: dict[str, Any]) -> bool:
    return float(args.get("amount", 0)) > 100 * (1 - ctx.deps.discount)


@tool(requires_approval=above_limit)
async def issue_refund(order_id: str, amount: float) -> str:
    """Refund an order."""
    return f"refunded {amount} on {order_id}"


@tool(idempotent=True)
def order_status(order_id: str) -> str:
    """An order's status (safe to repeat)."""
    return "shipped"


refunder: Agent[ShopDeps, str] = Agent("refunder", tools=[issue_refund, order_status], deps_type=ShopDeps)


async def refund_with_approval(session: Session, deps: ShopDeps) -> str | None:
    result = await refunder.run("refund o1", session=session, deps=deps)
    if result.paused:
        waiting: list[PendingCall] = await pending_approvals(session)
        decisions: dict[str, bool | Denial] = {p.call_id: p.arguments.get("amount", 0) < 500 for p in waiting}
        decisions[waiting[0].call_id] = Denial("over the monthly limit")
        try:
            result = await refunder.run(
                None, session=session, deps=deps, approvals=decisions, approved_by="ana"
            )
        except ApprovalConflictError as exc:
            print(exc.call_ids)
            return None
    return result.output
