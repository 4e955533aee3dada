"""Tool sources: objects that supply tools to agent runs (an MCP server is one).

A source is entered around each run (`async with source:`; entering it again while it is open
reuses its connection) and listed at every turn, so a source whose tools change mid-run is seen
with its current tools. The tools it lists are ordinary `agnt5.Tool`s: calls go through the
agent's usual tool path (hooks, limits, the transaction that stores a tool-call message with all
its results or none).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from agnt5.errors import ToolNameClashError

if TYPE_CHECKING:
    from agnt5.run_context import RunContext
    from agnt5.tools import Tool


@runtime_checkable
class ToolSource(Protocol):
    """Supplies tools per run: entered around the run, listed at every turn."""

    @property
    def label(self) -> str:
        """How errors name this source (never with secrets)."""
        ...

    async def __aenter__(self) -> Any: ...

    async def __aexit__(self, *exc_info: object) -> bool | None: ...

    async def list_tools(self, ctx: RunContext[Any]) -> Sequence[Tool]:
        """The tools the model may call now (cheap when nothing changed)."""
        ...


def is_tool_source(value: object) -> bool:
    """Whether `value` is a tool source rather than a function or Tool."""
    return isinstance(value, ToolSource)


class RunSources:
    """The tool sources one run has entered (each once, whichever agent of the run uses it),
    left together, in reverse order, when the run ends."""

    def __init__(self) -> None:
        self._stack = AsyncExitStack()
        self._entered: set[int] = set()

    async def enter(self, sources: Iterable[ToolSource]) -> None:
        for source in sources:
            if id(source) not in self._entered:
                await self._stack.enter_async_context(source)
                self._entered.add(id(source))

    async def aclose(self) -> None:
        await self._stack.aclose()


async def list_all(
    sources: Sequence[ToolSource], ctx: RunContext[Any], taken: Mapping[str, str]
) -> list[Tool]:
    """The tools of every source (listed concurrently). `taken` maps the names already in use
    (the agent's own tools, handoffs) to who owns them; a clash raises ToolNameClashError."""
    if len(sources) == 1:
        listed = [await sources[0].list_tools(ctx)]
    else:
        listed = list(await asyncio.gather(*(source.list_tools(ctx) for source in sources)))
    owners = dict(taken)
    tools: list[Tool] = []
    for source, found in zip(sources, listed, strict=True):
        label = source.label
        for tool in found:
            owner = owners.get(tool.name)
            if owner is not None:
                raise ToolNameClashError(
                    f"tool name {tool.name!r} is offered by both {owner} and {label}; give one "
                    "of them a tool_prefix= (or leave the tool out with allowed_tools=)",
                    name=tool.name,
                    sources=(owner, label),
                )
            owners[tool.name] = label
            tools.append(tool)
    return tools


__all__ = ["RunSources", "ToolSource", "is_tool_source", "list_all"]
