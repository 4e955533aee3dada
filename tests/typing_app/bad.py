"""Deliberate misuses of agnt5's public API: `mypy --strict` must report each marked line.

tests/test_typing.py checks that every `# expect: <code>` line gets an error with that code and
that no other line does.
"""

from __future__ import annotations

from agnt5 import Agent, Entity, RunContext, Session, Usage, UsageLimits, tool


@tool
def add(a: int, b: int) -> int:
    return a + b


async def main() -> None:
    Session(id=42)  # expect: arg-type
    add("two", 3)  # expect: arg-type
    text: str = add(1, 2)  # expect: assignment
    await Entity("e").set(1, "v")  # expect: arg-type
    Usage(prompt_tokens="many")  # expect: arg-type
    print(text)


class Deps:
    user_id: str = "u1"


def needs_deps(ctx: RunContext[Deps]) -> str:
    return ctx.deps.user_id


async def agents() -> None:
    agent = Agent("a", deps_type=Deps)
    await agent.run("hi", deps=42)  # expect: arg-type
    result = await agent.run("hi", deps=Deps())
    _ = result.output.amount  # expect: attr-defined
    UsageLimits(requests="5")  # expect: arg-type
    needs_deps(RunContext(deps=None, session=Session()))  # expect: arg-type
    await agent.run(None, approvals={"call_1": "yes"})  # expect: dict-item
