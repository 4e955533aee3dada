"""A tool of an MCP server as an agnt5 Tool: the server's schema for the model, arguments checked
against it before the call, the call sent over the server's connection."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pydantic

from agnt5.errors import InvalidTypeError
from agnt5.tools import ApprovalRule, RunContext, Tool, ToolResult, _strip_titles

if TYPE_CHECKING:
    from agnt5.mcp._connection import Connection


class _AnyArguments(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="allow")


def tool_schema(schema: Mapping[str, Any] | None) -> dict[str, Any]:
    """The input schema as sent to the model: an object schema, without pydantic's titles."""
    out: dict[str, Any] = _strip_titles(dict(schema or {}))
    out.setdefault("type", "object")
    if out["type"] == "object":
        out.setdefault("properties", {})
    return out


def _problems(validator: Any, arguments: dict[str, Any]) -> str:
    errors = sorted(validator.iter_errors(arguments), key=lambda e: list(e.absolute_path))
    parts = []
    for error in errors[:5]:
        where = ".".join(str(p) for p in error.absolute_path) or "arguments"
        parts.append(f"{where}: {error.message}")
    return "; ".join(parts)


class MCPTool(Tool):
    """One tool of an MCP server; `remote_name` is the server's name for it (before any prefix).

    `requires_approval` (True/False or `(ctx, args) -> bool`) comes from the server's
    `requires_approval=`; `idempotent` from its `idempotent_tools=` or the tool's annotations.
    """

    def __init__(
        self,
        connection: Connection,
        remote_name: str,
        name: str,
        description: str,
        schema: Any,
        *,
        requires_approval: ApprovalRule = False,
        idempotent: bool = False,
    ) -> None:
        # Tool's own __init__ builds a pydantic model from a signature; here the server's schema rules.
        self.name = name
        self.requires_approval = requires_approval
        self.idempotent = idempotent
        self.remote_name = remote_name
        self.description = description
        self.parameters = tool_schema(schema if isinstance(schema, Mapping) else None)
        self.args_model = _AnyArguments
        self.context_param = None
        self._positional = ()
        self.is_async = True
        self.function = self._call
        self._connection = connection
        self._validator: Any = None

    def __repr__(self) -> str:
        return f"MCPTool({self.name!r}, server={self._connection.name!r})"

    async def _call(self, **arguments: Any) -> ToolResult:
        return await self.invoke(arguments)

    def _check(self, arguments: dict[str, Any]) -> str:
        """What is wrong with `arguments` under the server's input schema ("" when nothing)."""
        if self._validator is None:
            import jsonschema

            cls = jsonschema.validators.validator_for(
                self.parameters, default=jsonschema.Draft202012Validator
            )
            try:
                cls.check_schema(self.parameters)
            except jsonschema.SchemaError:
                self._validator = False  # the server's schema is broken: let the server judge
            else:
                self._validator = cls(self.parameters)
        if self._validator is False:
            return ""
        return _problems(self._validator, arguments)

    async def invoke(
        self, arguments: str | Mapping[str, Any], ctx: RunContext[Any] | None = None
    ) -> ToolResult:
        """Check `arguments` against the input schema and call the server. A bad call or an error
        answer comes back as an error result; a broken server raises a typed MCPError."""
        if isinstance(arguments, str):
            try:
                parsed = json.loads(arguments) if arguments.strip() else {}
            except (ValueError, RecursionError) as exc:
                return self._error(f"arguments are not valid JSON ({str(exc)[:200]})")
        elif isinstance(arguments, Mapping):
            parsed = dict(arguments)
        else:
            raise InvalidTypeError(
                f"tool arguments must be JSON text or a mapping, got {type(arguments).__name__}",
                field="arguments",
            )
        if not isinstance(parsed, dict):
            return self._error(f"arguments must be a JSON object, got {type(parsed).__name__}")
        problems = self._check(parsed)
        if problems:
            return self._error(problems)
        return await self._connection.call_tool(self.remote_name, parsed, self.name)


__all__ = ["MCPTool", "tool_schema"]
