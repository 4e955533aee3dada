"""What MCPServerStdio and MCPServerHTTP share: the lifecycle, the tool list and error mapping.

`async with server:` keeps one connection open for every run inside the block; a run given a
server that is not open opens it for itself and closes it at its end. Entries are counted, so
concurrent runs share one connection, and a connection that broke is replaced by the next entry.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Self, TypeAlias

from agnt5.errors import InvalidInputError, InvalidTypeError, MCPError, MCPStartError, ToolNameClashError
from agnt5.mcp._connection import Connection, excerpt

if TYPE_CHECKING:
    from agnt5.run_context import RunContext
    from agnt5.tools import ApprovalRule, Tool

logger = logging.getLogger("agnt5.mcp")

_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_BAD_CHARS = re.compile(r"[^A-Za-z0-9_-]")


def string_map(value: object, field: str) -> dict[str, str]:
    """`env=` / `headers=`: None or a dict of strings to strings (copied)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise InvalidTypeError(f"{field} must be a dict of strings to strings", field=field)
    return dict(value)


def _seconds(value: object, field: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise InvalidInputError(
            f"{field} must be a positive number of seconds or None, got {value!r}", field=field
        )
    return float(value)


ServerApprovalRule: TypeAlias = "bool | Iterable[str] | Callable[[RunContext[Any], str, dict[str, Any]], Any]"
"""`requires_approval=` of an MCP server: False, True (every tool), tool names (server names,
before any prefix) or `(ctx, tool_name, args) -> bool` (sync or async) deciding per call."""

_APPROVAL_HELP = "True, False, a list of tool names or a function (ctx, tool_name, args) -> bool"


def _approval_setting(value: object) -> bool | frozenset[str] | Callable[..., Any]:
    """`requires_approval=` checked: a bool, the set of names, or the function."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        raise InvalidTypeError(
            f"requires_approval must be {_APPROVAL_HELP}; got the string {value!r} (write [{value!r}])",
            field="requires_approval",
        )
    if callable(value):
        try:
            signature = inspect.signature(value)
        except (TypeError, ValueError):  # some builtins have none: the call will tell
            return value
        try:
            signature.bind(None, "tool", {})
        except TypeError:
            raise InvalidTypeError(
                f"requires_approval's function must take (ctx, tool_name, args), got {value!r}{signature}",
                field="requires_approval",
            ) from None
        return value
    if isinstance(value, Iterable) and not isinstance(value, Mapping):
        return _names(value, "requires_approval")
    raise InvalidTypeError(
        f"requires_approval must be {_APPROVAL_HELP}, got {type(value).__name__}", field="requires_approval"
    )


def _names(value: Iterable[Any], field: str) -> frozenset[str]:
    names = tuple(value)
    for item in names:
        if not isinstance(item, str):
            raise InvalidTypeError(f"{field} must hold tool names (str), got {item!r}", field=field)
    return frozenset(names)


def _idempotent_setting(value: object) -> frozenset[str] | None:
    if value is None:
        return None
    if isinstance(value, (str, Mapping)) or not isinstance(value, Iterable):
        raise InvalidTypeError(
            f"idempotent_tools must be None or a list of tool names, got {value!r}", field="idempotent_tools"
        )
    return _names(value, "idempotent_tools")


def annotated_idempotent(item: Any) -> bool:
    """Whether a listed tool's annotations say calling it again is harmless (MCP ToolAnnotations:
    `idempotentHint` or `readOnlyHint` true)."""
    annotations = getattr(item, "annotations", None)
    return (
        getattr(annotations, "idempotent_hint", None) is True
        or getattr(annotations, "read_only_hint", None) is True
    )


def _bound(rule: Callable[..., Any], remote: str) -> ApprovalRule:
    """The server's `(ctx, tool_name, args)` rule as one tool's `(ctx, args)` rule."""

    def requires_approval(ctx: RunContext[Any], args: dict[str, Any]) -> Any:
        return rule(ctx, remote, args)

    requires_approval.__qualname__ = f"requires_approval[{remote}]"
    return requires_approval


class MCPServer:
    """Base of `MCPServerStdio` and `MCPServerHTTP`: a tool source for `Agent(tools=[...])`.

    `tool_prefix` renames every tool to `<prefix>_<name>` (to avoid clashes); `allowed_tools`
    keeps only the named tools (server names, before the prefix); `timeout` bounds each call
    and `connect_timeout` the start and handshake, in seconds. `requires_approval` makes calls
    wait for a person (`agnt5.approvals`): True for every tool, a list of tool names (each must be
    listed by the server), or `(ctx, tool_name, args) -> bool`. A tool is idempotent (re-run after
    a crash) when its annotations say `idempotentHint` or `readOnlyHint`, or, given
    `idempotent_tools` (names), exactly when it is named there.
    """

    protocol = "auto"  # the mcp client's mode: 2026-era discovery, falling back to `initialize`

    def __init__(
        self,
        *,
        name: str | None,
        tool_prefix: str | None,
        allowed_tools: Iterable[str] | None,
        timeout: float | None,
        connect_timeout: float | None,
        requires_approval: ServerApprovalRule = False,
        idempotent_tools: Iterable[str] | None = None,
    ) -> None:
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise InvalidInputError(f"name must be a non-empty string, got {name!r}", field="name")
        if tool_prefix is not None and (not isinstance(tool_prefix, str) or not _NAME_RE.match(tool_prefix)):
            raise InvalidInputError(
                f"tool_prefix must be 1-64 letters, digits, '_' or '-', got {tool_prefix!r}",
                field="tool_prefix",
            )
        if isinstance(allowed_tools, str):
            raise InvalidTypeError(
                "allowed_tools must be a list of tool names, not one string", field="allowed_tools"
            )
        self._name = name
        self.tool_prefix = tool_prefix
        self.allowed_tools = None if allowed_tools is None else frozenset(allowed_tools)
        self.timeout = _seconds(timeout, "timeout")
        self.connect_timeout = _seconds(connect_timeout, "connect_timeout")
        self.requires_approval = _approval_setting(requires_approval)
        self.idempotent_tools = _idempotent_setting(idempotent_tools)
        self._users = 0
        self._connection: Connection | None = None
        self._lock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- naming --

    def default_name(self) -> str:
        raise NotImplementedError

    @property
    def name(self) -> str:
        """The server's name in errors and logs (never with headers, tokens or env values)."""
        if self._name is None:
            self._name = self.default_name()
        return self._name

    @property
    def label(self) -> str:
        return f"MCP server {self.name!r}"

    @property
    def connected(self) -> bool:
        """Whether a live connection is open (inside `async with` or a run using the server)."""
        return self._connection is not None and not self._connection.dead

    # -- lifecycle --

    async def __aenter__(self) -> Self:
        await self._acquire()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._release()

    async def _acquire(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            if self._users:
                raise MCPError(
                    f"{self.label} is open on another event loop; open it on one loop", server=self.name
                )
            self._loop, self._lock, self._connection = loop, asyncio.Lock(), None
        assert self._lock is not None
        self._users += 1
        try:
            async with self._lock:
                current = self._connection
                if current is None or current.dead:
                    self._connection = None
                    if current is not None:
                        await current.close()
                    connection = Connection(self)
                    await connection.start(self.connect_timeout)
                    self._connection = connection
        except BaseException:
            await self._release()
            raise

    async def _release(self) -> None:
        self._users -= 1
        if self._users > 0 or self._lock is None:
            return
        async with self._lock:
            if self._users > 0:
                return
            connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close()

    # -- tools --

    async def list_tools(self, ctx: RunContext[Any] | None = None) -> Sequence[Tool]:
        """The server's tools (cached per connection, listed again after `tools/list_changed`)."""
        connection = self._connection
        if connection is None or self._users == 0:
            raise MCPError(
                f"{self.label} is not open: use `async with server:` or give it to an Agent's tools",
                server=self.name,
            )
        return await connection.tools()

    def build_tools(self, connection: Connection, listed: Sequence[Any]) -> list[Tool]:
        """MCPTools for the listed tools, filtered by `allowed_tools` and renamed by `tool_prefix`."""
        from agnt5.mcp._tool import MCPTool

        tools: list[Tool] = []
        seen: dict[str, str] = {}
        for item in listed:
            remote = str(item.name)
            if self.allowed_tools is not None and remote not in self.allowed_tools:
                continue
            shown = f"{self.tool_prefix}_{remote}" if self.tool_prefix else remote
            shown = _BAD_CHARS.sub("_", shown)[:64] or "tool"
            if shown in seen:
                raise ToolNameClashError(
                    f"{self.label} lists tools {seen[shown]!r} and {remote!r}, which are both {shown!r} "
                    "as a tool name the model can use; leave one out with allowed_tools=",
                    name=shown,
                    sources=(self.label, self.label),
                )
            seen[shown] = remote
            description = item.description or getattr(item, "title", None) or ""
            tools.append(
                MCPTool(
                    connection,
                    remote,
                    shown,
                    description,
                    item.input_schema,
                    requires_approval=self.approval_rule(remote),
                    idempotent=(
                        annotated_idempotent(item)
                        if self.idempotent_tools is None
                        else remote in self.idempotent_tools
                    ),
                )
            )
        names = {str(t.name) for t in listed}
        if isinstance(self.requires_approval, frozenset) and not self.requires_approval <= names:
            # Fail rather than skip: a misspelt name would let the tool meant run without approval.
            raise InvalidInputError(
                f"{self.label}: requires_approval names tools it does not list: "
                f"{', '.join(sorted(self.requires_approval - names))} (it lists: "
                f"{', '.join(sorted(names)) or 'nothing'}); use server names, before any tool_prefix, "
                "or a function (ctx, tool_name, args) -> bool for tools that come and go",
                field="requires_approval",
            )
        for field, wanted in (("allowed", self.allowed_tools), ("idempotent", self.idempotent_tools)):
            missing = sorted((wanted or frozenset()) - names)
            if missing:
                logger.warning("%s does not offer the %s tools %s", self.label, field, ", ".join(missing))
        return tools

    def approval_rule(self, remote: str) -> ApprovalRule:
        """The `requires_approval` of this server's tool `remote` (its server name)."""
        rule = self.requires_approval
        if isinstance(rule, bool):
            return rule
        if isinstance(rule, frozenset):
            return remote in rule
        return _bound(rule, remote)

    # -- transport-specific (subclasses) --

    def transport(self, connection: Connection) -> AbstractAsyncContextManager[Any]:
        """The mcp SDK transport (an async context manager yielding the stream pair)."""
        raise NotImplementedError

    def start_error(self, connection: Connection, exc: BaseException) -> MCPError:
        """The typed error for a failed start (`exc` is what the SDK raised)."""
        mapped = connection.fault or self.http_error(connection, exc, "the handshake")
        if mapped is not None:
            return mapped
        if isinstance(exc, MCPError):
            return exc
        return MCPStartError(
            f"{self.label} failed to start: {type(exc).__name__}: {excerpt(exc)}{self.stderr_hint(connection)}",
            server=self.name,
            stderr=self.stderr_tail(connection),
        )

    def transport_error(self, connection: Connection, exc: BaseException, during: str) -> MCPError | None:
        """The typed error for an unexpected transport exception during a request."""
        return MCPError(
            f"{self.label} failed during {during}: {type(exc).__name__}: {excerpt(exc)}", server=self.name
        )

    def http_error(self, connection: Connection, exc: BaseException, during: str) -> MCPError | None:
        """The typed error for an HTTP error status behind `exc` (HTTP servers only)."""
        return None

    def cause(self, exc: BaseException) -> BaseException | None:
        """What a typed error is chained to (None where the original could show secrets)."""
        return exc

    def stderr_tail(self, connection: Connection) -> str:
        return ""

    def stderr_hint(self, connection: Connection) -> str:
        """A suffix for error messages quoting the server's last error output, if any."""
        tail = self.stderr_tail(connection)
        return f"; its last stderr output: {tail!r}" if tail else ""


__all__ = ["MCPServer"]
