"""Lifecycle hooks: subclass `RunHooks` and override the moments you need.

Give hooks per agent (`Agent(hooks=...)`) or per run (`agent.run(..., hooks=...)`). Every method
is an async no-op by default. Some may change what happens by returning a value:
`before_model_request` a replacement message list, `before_tool_call` a replacement call or a
result that blocks the call, `after_tool_call` a replacement result. An exception in a hook
becomes `HookError` (`hook` names the method, `__cause__` is the original) and the run stops with
the session consistent: a tool call's message is only ever stored together with its results.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Generic

from agnt5.errors import HookError
from agnt5.run_context import DepsT, RunContext

if TYPE_CHECKING:
    from agnt5.agent import Agent, AgentResult
    from agnt5.models import ModelResponse, ToolCall
    from agnt5.tools import ToolResult


class RunHooks(Generic[DepsT]):
    """No-op lifecycle callbacks of an agent run; override the ones you need."""

    async def on_run_start(self, ctx: RunContext[DepsT], agent: Agent[DepsT, Any]) -> None:
        """The run starts (after its input guardrails passed, before anything is stored)."""

    async def on_run_end(
        self, ctx: RunContext[DepsT], agent: Agent[DepsT, Any], result: AgentResult[Any]
    ) -> None:
        """The run finished with `result` (stored by then); `agent` is the one that answered."""

    async def before_model_request(
        self, ctx: RunContext[DepsT], agent: Agent[DepsT, Any], messages: list[dict[str, Any]]
    ) -> list[dict[str, Any]] | None:
        """Before each model request: return a new message list to send instead (or edit
        `messages` in place and return None). The session is not changed."""
        return None

    async def after_model_response(
        self, ctx: RunContext[DepsT], agent: Agent[DepsT, Any], response: ModelResponse
    ) -> None:
        """After each model response, before its tool calls run or its answer is stored."""

    async def before_tool_call(
        self, ctx: RunContext[DepsT], agent: Agent[DepsT, Any], call: ToolCall
    ) -> ToolCall | ToolResult | str | None:
        """Before a tool runs: return a ToolCall to run instead (other arguments or tool), a
        ToolResult or string to block the call (that is its result), or None to go ahead."""
        return None

    async def after_tool_call(
        self, ctx: RunContext[DepsT], agent: Agent[DepsT, Any], call: ToolCall, result: ToolResult
    ) -> ToolResult | None:
        """After a tool ran: return a ToolResult to send the model instead, or None."""
        return None

    async def on_handoff(
        self, ctx: RunContext[DepsT], from_agent: Agent[DepsT, Any], to_agent: Agent[DepsT, Any]
    ) -> None:
        """The conversation moves from one agent to another (the handoff is stored by then)."""


class HookChain:
    """The hooks of one run, called in order (the agent's own, then the run's), each seeing the
    previous one's changes; exceptions become HookError."""

    __slots__ = ("hooks",)

    def __init__(self, hooks: Sequence[RunHooks[Any]]) -> None:
        self.hooks = tuple(hooks)

    def __bool__(self) -> bool:
        return bool(self.hooks)

    @classmethod
    def of(cls, agent_hooks: RunHooks[Any] | None, run_hooks: RunHooks[Any] | None) -> HookChain:
        """The chain for one agent of a run: its own hooks first, then the run's."""
        return cls([h for h in (agent_hooks, run_hooks) if h is not None])

    async def run_start(self, ctx: RunContext[Any], agent: Agent[Any, Any]) -> None:
        for hooks in self.hooks:
            await _call("on_run_start", hooks.on_run_start(ctx, agent))

    async def run_end(self, ctx: RunContext[Any], agent: Agent[Any, Any], result: AgentResult[Any]) -> None:
        for hooks in self.hooks:
            await _call("on_run_end", hooks.on_run_end(ctx, agent, result))

    async def model_request(
        self, ctx: RunContext[Any], agent: Agent[Any, Any], messages: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        for hooks in self.hooks:
            replaced = await _call("before_model_request", hooks.before_model_request(ctx, agent, messages))
            if replaced is not None:
                messages = list(replaced)
        return messages

    async def model_response(
        self, ctx: RunContext[Any], agent: Agent[Any, Any], response: ModelResponse
    ) -> None:
        for hooks in self.hooks:
            await _call("after_model_response", hooks.after_model_response(ctx, agent, response))

    async def tool_call(
        self, ctx: RunContext[Any], agent: Agent[Any, Any], call: ToolCall
    ) -> ToolCall | ToolResult:
        """The call to run (possibly replaced), or the result that blocks it."""
        from agnt5.models import ToolCall
        from agnt5.tools import ToolResult

        for hooks in self.hooks:
            outcome = await _call("before_tool_call", hooks.before_tool_call(ctx, agent, call))
            if isinstance(outcome, str):
                return ToolResult(outcome)
            if isinstance(outcome, ToolResult):
                return outcome
            if isinstance(outcome, ToolCall):
                call = outcome
            elif outcome is not None:
                raise HookError(
                    f"before_tool_call returned {type(outcome).__name__}; return a ToolCall, a ToolResult, "
                    "a string or None",
                    hook="before_tool_call",
                )
        return call

    async def tool_result(
        self, ctx: RunContext[Any], agent: Agent[Any, Any], call: ToolCall, result: ToolResult
    ) -> ToolResult:
        for hooks in self.hooks:
            replaced = await _call("after_tool_call", hooks.after_tool_call(ctx, agent, call, result))
            if replaced is not None:
                result = replaced
        return result

    async def handoff(
        self, ctx: RunContext[Any], from_agent: Agent[Any, Any], to_agent: Agent[Any, Any]
    ) -> None:
        for hooks in self.hooks:
            await _call("on_handoff", hooks.on_handoff(ctx, from_agent, to_agent))


async def _call(name: str, awaitable: Any) -> Any:
    try:
        return await awaitable
    except HookError:
        raise
    except Exception as exc:
        raise HookError(
            f"hook {name} raised {type(exc).__name__}: {exc} (the run stopped; the session holds only "
            "complete steps)",
            hook=name,
        ) from exc


__all__ = ["HookChain", "RunHooks"]
