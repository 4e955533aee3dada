"""Deliberate misuses of agnt5's public API: `mypy --strict` must report each marked line.

tests/test_typing.py checks that every `# expect: <code>` line gets an error with that code and
that no other line does.
"""

from __future__ import annotations

from agnt5 import Entity, Session, Usage, tool


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
