"""A small user app on agnt5's public API; tests/test_typing.py checks it with `mypy --strict`.

Never imported by the suite (it would need a model). Extend it as the public API grows: every
line here must type-check under --strict against the installed agnt5.
"""

from __future__ import annotations

from agnt5 import (
    Agent,
    AgentResult,
    Entity,
    LanguageModel,
    Memory,
    MemoryResult,
    Message,
    Session,
    Tool,
    Usage,
    VectorMemoryService,
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
