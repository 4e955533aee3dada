"""One live connection to an MCP server, owned by one worker task.

The MCP client holds anyio task groups and cancel scopes, which must be entered and left on the
same task ("Attempted to exit cancel scope in a different task" otherwise). So a worker task
connects, waits until asked to close, and disconnects; runs only send requests through the
connection, from their own tasks, which any number of them may do at once.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, TypeVar

from agnt5.errors import (
    MCPConnectionLostError,
    MCPError,
    MCPProtocolError,
    MCPStartError,
    MCPTimeoutError,
)
from agnt5.mcp._content import to_tool_result
from agnt5.tools import Tool, ToolResult

if TYPE_CHECKING:
    from agnt5.mcp._server import MCPServer

logger = logging.getLogger("agnt5.mcp")
E = TypeVar("E", bound=MCPError)

# JSON-RPC codes (mcp_types.jsonrpc); repeated here so this module imports without the SDK.
_CONNECTION_CLOSED = -32000
_REQUEST_TIMEOUT = -32001
_PARSE_ERROR = -32700
_MAX_PAGES = 100


def excerpt(value: object, limit: int = 200) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def unwrap(exc: BaseException) -> BaseException:
    """The first real error inside (nested) exception groups: the MCP client's task groups wrap
    what went wrong; cancellations inside a group are its consequence, not its cause."""
    while isinstance(exc, BaseExceptionGroup):
        inner = [e for e in exc.exceptions if not isinstance(e, asyncio.CancelledError)]
        exc = (inner or list(exc.exceptions))[0]
    return exc


class Connection:
    """A connected MCP client: its tool list (cached until the server says it changed) and calls."""

    def __init__(self, server: MCPServer) -> None:
        self.server = server
        self.label = server.label  # "MCP server 'name'", for messages
        self.name = server.name
        self.client: Any = None
        self.dead = False
        self.fault: MCPError | None = None  # why the server broke the connection, when it did
        self.http_status: int | None = None  # the last HTTP error status (streamable HTTP)
        self.broken_by: BaseException | None = None  # what ended a live connection's transport
        self.errlog: Any = None  # a stdio server's stderr, kept for error messages
        self.owns_errlog = False
        self._ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._closing = asyncio.Event()
        self._scope: Any = None
        self._task: asyncio.Task[None] | None = None
        self._tools: list[Tool] | None = None
        self._stale = False
        self._list_lock = asyncio.Lock()

    # -- lifecycle (the worker task) --

    async def start(self, limit: float | None) -> None:
        """Connect (handshake included) within `limit` seconds, or raise a typed MCPError."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"agnt5-mcp {self.label}")
        expired = False
        try:
            async with asyncio.timeout(limit) as deadline:
                try:
                    await asyncio.shield(self._ready)
                finally:
                    expired = deadline.expired()
        except BaseException as exc:
            await self.close()
            if expired:
                raise MCPTimeoutError(
                    f"{self.label} did not finish starting within {limit}s (is it an MCP server? "
                    f"raise connect_timeout= if it starts slowly){self.server.stderr_hint(self)}",
                    server=self.name,
                    timeout=limit,
                ) from None
            if isinstance(exc, MCPError):
                raise exc from None
            raise
        if self.fault is not None:  # the server broke the protocol during the handshake
            await self.close()
            raise _copy(self.fault)

    async def _run(self) -> None:
        import anyio

        try:
            from mcp.client import Client
            from mcp_types import Implementation
            from mcp_types.version import MODERN_PROTOCOL_VERSIONS
        except ImportError as exc:
            self._ready.set_exception(
                MCPStartError(
                    f"cannot connect to {self.label}: the `mcp` package is not installed "
                    f"({exc}); install it with: pip install 'agnt5[mcp]'",
                    server=self.name,
                )
            )
            self.dead = True
            return
        from agnt5 import __version__

        try:
            with anyio.CancelScope() as scope:
                self._scope = scope
                if self._closing.is_set():
                    scope.cancel()
                client = Client(
                    self.server.transport(self),
                    mode=self.server.protocol,
                    message_handler=self._on_message,
                    cache=None,
                    client_info=Implementation(name="agnt5", version=__version__),
                )
                async with client, anyio.create_task_group() as group:
                    self.client = client
                    tools = client.server_capabilities.tools
                    if (
                        client.protocol_version in MODERN_PROTOCOL_VERSIONS
                        and tools is not None
                        and tools.list_changed
                    ):
                        group.start_soon(self._listen, client)
                    self._ready.set_result(None)
                    await self._closing.wait()
                    group.cancel_scope.cancel()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            if not self._ready.done():
                self._ready.set_exception(self.server.start_error(self, unwrap(exc)))
            elif self.fault is None:
                self.broken_by = unwrap(exc)  # the transport failed under a live connection
            else:
                logger.debug("%s: error while disconnecting: %r", self.label, exc)
        finally:
            self.dead = True
            self.client = None
            if not self._ready.done():
                self._ready.set_exception(
                    MCPStartError(f"connecting to {self.label} was cancelled", server=self.name)
                )

    async def _listen(self, client: Any) -> None:
        """2026-era servers announce tool-list changes on a `subscriptions/listen` stream."""
        try:
            async with client.listen(tools_list_changed=True) as subscription:
                async for _ in subscription:
                    self._stale = True
        except Exception as exc:  # the server may not offer it; the list is then listed once
            logger.debug("%s: no tool-list subscription: %r", self.label, exc)

    async def _on_message(self, message: Any) -> None:
        if isinstance(message, Exception):
            self.break_with(
                MCPProtocolError(
                    f"{self.label} sent a message that is not valid MCP ({_problem(message)}); a stdio "
                    "server must write only MCP messages to stdout (logs go to stderr)",
                    server=self.name,
                )
            )
        elif getattr(message, "method", None) == "notifications/tools/list_changed":
            self._stale = True

    def break_with(self, fault: MCPError) -> None:
        """End the connection because of `fault`: calls in flight and later ones raise it."""
        if self.fault is None:
            self.fault = fault
        self.dead = True
        self._closing.set()

    async def close(self) -> None:
        """Disconnect and wait until the worker is done (for stdio: the process is reaped)."""
        self.dead = True
        self._closing.set()
        if self._scope is not None and not self._ready.done():
            self._scope.cancel()  # abort a handshake in progress
        task = self._task
        if task is not None and not task.done():
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                if not task.done():
                    raise  # we were cancelled; the worker still finishes on its own
        if self.owns_errlog and self.errlog is not None:
            self.errlog.close()

    # -- requests (any task) --

    async def tools(self) -> list[Tool]:
        """The server's tools as agnt5 Tools, listed once and again after `tools/list_changed`."""
        if self._tools is not None and not self._stale:
            return self._tools
        async with self._list_lock:
            if self._tools is None or self._stale:
                self._stale = False
                listed: list[Any] = []
                cursor: str | None = None
                for _ in range(_MAX_PAGES):
                    page = await self.request(
                        "tools/list", lambda c=cursor: self._live().list_tools(cursor=c)
                    )
                    listed.extend(page.tools)
                    cursor = page.next_cursor
                    if cursor is None:
                        break
                try:
                    self._tools = self.server.build_tools(self, listed)
                except BaseException:
                    self._stale = True  # list again next time: the error stays until fixed
                    raise
        return self._tools

    async def call_tool(self, remote: str, arguments: dict[str, Any], shown: str) -> ToolResult:
        """Call tool `remote`; the server's error answers and `isError` results become error
        results for the model, faults (crash, timeout, HTTP error) raise typed MCPErrors."""
        from mcp.shared.exceptions import MCPError as SDKError

        timeout = self.server.timeout
        try:
            result = await self.request(
                f"tools/call {remote!r}",
                lambda: self._live().call_tool(remote, arguments, read_timeout_seconds=timeout),
            )
        except SDKError as exc:
            return ToolResult(f"Error: tool '{shown}' failed: {excerpt(exc.message, 2000)}", is_error=True)
        return to_tool_result(shown, result)

    async def request(self, during: str, send: Any) -> Any:
        """Await `send()` with the call timeout; faults become typed MCPErrors naming the server.
        A JSON-RPC error answer from the server is re-raised as is (the caller decides)."""
        from mcp.shared.exceptions import MCPError as SDKError

        timeout = self.server.timeout
        try:
            # The client's own read timeout answers first; this bound also covers a blocked write.
            async with asyncio.timeout(None if timeout is None else timeout + 5):
                return await send()
        except SDKError as exc:
            if exc.code == _CONNECTION_CLOSED:
                await self._settle()
            mapped = self._fault(exc, during)
            if mapped is None:
                raise
            raise mapped from None
        except Exception as exc:
            raise self._fault(exc, during) or self._lost(during) from self.server.cause(exc)

    async def _settle(self) -> None:
        """After the connection closed under a request: let the worker finish (a stdio process is
        reaped; what broke the transport is recorded) before the error is chosen."""
        self._closing.set()
        task = self._task
        if task is not None and not task.done():
            await asyncio.wait([task], timeout=3)

    def _live(self) -> Any:
        if self.fault is not None:
            raise _copy(self.fault)
        if self.dead or self.client is None:
            raise self._lost("the request")
        return self.client

    def _fault(self, exc: BaseException, during: str) -> MCPError | None:
        import pydantic

        exc = unwrap(exc)
        if isinstance(exc, MCPError):
            return exc
        if self.fault is not None:
            return _copy(self.fault)
        code = getattr(exc, "code", None)
        if code is not None and hasattr(exc, "error"):  # a JSON-RPC error (mcp.shared.exceptions.MCPError)
            http = self.server.http_error(self, exc, during)
            if http is not None:
                return http
            if code == _CONNECTION_CLOSED:
                return self._lost(during)
            if code == _REQUEST_TIMEOUT:
                return MCPTimeoutError(
                    f"{self.label} did not answer {during} within {self.server.timeout}s; "
                    "raise timeout= if the tool is slow",
                    server=self.name,
                    timeout=self.server.timeout,
                )
            if code == _PARSE_ERROR:
                return MCPProtocolError(
                    f"{self.label} answered {during} with a malformed message: {excerpt(exc)}",
                    server=self.name,
                )
            return None
        if isinstance(exc, pydantic.ValidationError):
            return MCPProtocolError(
                f"{self.label} answered {during} with a result that is not valid MCP: {excerpt(exc, 300)}",
                server=self.name,
            )
        if isinstance(exc, RuntimeError) and "structured content" in str(exc):
            return MCPProtocolError(
                f"{self.label} answered {during} wrongly: {excerpt(exc)}", server=self.name
            )
        if isinstance(exc, TimeoutError):
            return MCPTimeoutError(
                f"{self.label} did not answer {during} within {self.server.timeout}s",
                server=self.name,
                timeout=self.server.timeout,
            )
        return self.server.transport_error(self, exc, during)

    def _lost(self, during: str) -> MCPError:
        self.dead = True
        self._closing.set()  # the worker disconnects (and reaps a stdio process) now
        if self.broken_by is not None:
            mapped = self.server.transport_error(self, self.broken_by, during)
            if mapped is not None:
                return mapped
        stderr = self.server.stderr_tail(self)
        return MCPConnectionLostError(
            f"{self.label} closed the connection during {during} (it crashed or exited)"
            f"{self.server.stderr_hint(self)}; the next run reconnects",
            server=self.name,
            stderr=stderr,
        )


def _problem(exc: Exception) -> str:
    """What was wrong with a message the SDK could not read, quoting (the start of) the message."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            first = errors(include_url=False)[0]
            return f"{first['msg']}: {excerpt(first.get('input'), 120)!r}"
        except Exception:
            pass
    return f"{type(exc).__name__}: {excerpt(exc)}"


def _copy(error: E) -> E:
    """A fresh instance of a stored error (one instance raised from several tasks would share
    and grow one traceback)."""
    clone = error.__class__.__new__(error.__class__)
    clone.__dict__.update(error.__dict__)
    clone.args = error.args
    return clone


__all__ = ["Connection", "excerpt", "unwrap"]
