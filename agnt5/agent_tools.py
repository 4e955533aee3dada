"""The tools an agent adds for the model besides its own — `transfer_to_<name>` for handoffs, the
`final_result` output tool — and the messages a tool call leaves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pydantic

from agnt5.models import ToolCall
from agnt5.tools import Tool, ToolResult

FINAL_RESULT_TOOL = "final_result"
"""The tool of structured output, for models without native JSON-schema output."""

if TYPE_CHECKING:
    from agnt5.agent import Agent


def tool_message(call: ToolCall, result: ToolResult, agent: str) -> tuple[dict[str, Any], dict[str, Any]]:
    return {"role": "tool", "tool_call_id": call.id, "content": result.content}, {"agent": agent}


def unknown_tool(call: ToolCall, tools: Mapping[str, Tool], handoffs: Mapping[str, Any]) -> ToolResult:
    known = ", ".join(sorted([*tools, *handoffs])) or "none"
    return ToolResult(f"Error: unknown tool {call.name!r}; available tools: {known}", is_error=True)


def handoff_tool_name(agent: Agent[Any, Any]) -> str:
    return f"transfer_to_{agent.name}"[:64]


def handoff_schema(agent: Agent[Any, Any]) -> dict[str, Any]:
    """The `transfer_to_<name>` tool; its description quotes the first line of the agent's
    instructions (their first text part when they are a list)."""
    given = agent.instructions
    parts = list(given) if isinstance(given, Sequence) and not isinstance(given, str) else [given]
    text = next((p for p in parts if isinstance(p, str)), "")
    about = text.strip().splitlines()[0] if text.strip() else ""
    description = f"Hand the conversation over to the agent {agent.name!r}." + (
        f" It: {about}" if about else ""
    )
    return {
        "type": "function",
        "function": {
            "name": handoff_tool_name(agent),
            "description": description,
            "parameters": {"type": "object", "properties": {}, "additionalProperties": False},
        },
    }


def final_result_schema(output_type: type[pydantic.BaseModel]) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": FINAL_RESULT_TOOL,
            "description": f"Give your final answer as a {output_type.__name__}. Call this once, when done.",
            "parameters": output_type.model_json_schema(),
        },
    }


def validation_errors(exc: pydantic.ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'output'}: {e['msg']}" for e in exc.errors())


__all__ = [
    "FINAL_RESULT_TOOL",
    "final_result_schema",
    "handoff_schema",
    "handoff_tool_name",
    "tool_message",
    "unknown_tool",
    "validation_errors",
]
