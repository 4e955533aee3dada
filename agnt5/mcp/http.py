"""MCPServerHTTP: an MCP server reached over streamable HTTP.

Headers (an `Authorization` token, say) are sent with every request and never shown: the repr
lists their names, errors and logs name the server by its URL without credentials or query.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from agnt5.errors import (
    InvalidInputError,
    MCPAuthenticationError,
    MCPConnectionLostError,
    MCPError,
    MCPHTTPError,
    MCPStartError,
    MCPTimeoutError,
)
from agnt5.mcp._connection import excerpt
from agnt5.mcp._server import MCPServer, ServerApprovalRule, string_map

if TYPE_CHECKING:
    from agnt5.mcp._connection import Connection

# What the SDK answers a request with when the server replied with an HTTP error status.
_STAND_INS = ("Server returned an error response", "Session terminated", "Not Found")


class MCPServerHTTP(MCPServer):
    """An MCP server at `url` (streamable HTTP): `MCPServerHTTP("https://host/mcp", headers={...})`.

    See `MCPServer` for `tool_prefix`, `allowed_tools`, `timeout`, `connect_timeout`,
    `requires_approval` and `idempotent_tools`; `name` names the server in errors (default: the URL without credentials and query).
    """

    def __init__(
        self,
        url: str,
        headers: Mapping[str, str] | None = None,
        *,
        name: str | None = None,
        tool_prefix: str | None = None,
        allowed_tools: Iterable[str] | None = None,
        timeout: float | None = 60.0,
        connect_timeout: float | None = 30.0,
        requires_approval: ServerApprovalRule = False,
        idempotent_tools: Iterable[str] | None = None,
    ) -> None:
        if (
            not isinstance(url, str)
            or urlsplit(url).scheme not in ("http", "https")
            or not urlsplit(url).hostname
        ):
            raise InvalidInputError(f"url must be an http:// or https:// URL, got {url!r}", field="url")
        headers_given = string_map(headers, "headers")
        super().__init__(
            name=name,
            tool_prefix=tool_prefix,
            allowed_tools=allowed_tools,
            timeout=timeout,
            connect_timeout=connect_timeout,
            requires_approval=requires_approval,
            idempotent_tools=idempotent_tools,
        )
        self.url = url
        self._headers = headers_given

    def __repr__(self) -> str:
        names = f", headers={sorted(self._headers)}" if self._headers else ""  # names only, never values
        return f"MCPServerHTTP({self.name!r}{names})"

    def default_name(self) -> str:
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{host}{port}{parts.path}"

    # -- MCPServer hooks --

    def transport(self, connection: Connection) -> AbstractAsyncContextManager[Any]:
        return self._open(connection)

    @asynccontextmanager
    async def _open(self, connection: Connection) -> AsyncIterator[Any]:
        import httpx2
        from mcp.client.streamable_http import streamable_http_client

        async def record(response: Any) -> None:
            if response.status_code >= 400:
                connection.http_status = response.status_code

        client = httpx2.AsyncClient(
            headers=self._headers,
            timeout=httpx2.Timeout(30.0, read=300.0),
            event_hooks={"response": [record]},
        )
        async with client, streamable_http_client(self.url, http_client=client) as streams:
            yield streams

    def http_error(self, connection: Connection, exc: BaseException, during: str) -> MCPError | None:
        status = connection.http_status
        message = getattr(exc, "message", None)
        if status is None or (message is not None and message not in _STAND_INS and exc.code != -32000):  # type: ignore[attr-defined]
            return None
        connection.http_status = None
        if status in (401, 403):
            return MCPAuthenticationError(
                f"{self.label} refused the credentials (HTTP {status}) during {during}; check the headers "
                "(e.g. Authorization) given to MCPServerHTTP",
                server=self.name,
                status_code=status,
            )
        if status == 404 and message == "Session terminated":
            connection.dead = True
            return MCPConnectionLostError(
                f"{self.label} no longer knows this session (HTTP 404, restarted?); the next run reconnects",
                server=self.name,
            )
        return MCPHTTPError(
            f"{self.label} answered HTTP {status} during {during}; the server failed (see its logs)",
            server=self.name,
            status_code=status,
        )

    def start_error(self, connection: Connection, exc: BaseException) -> MCPError:
        import httpx2

        mapped = self.http_error(connection, exc, "the handshake")
        if mapped is not None:
            return mapped
        if isinstance(exc, httpx2.TimeoutException):
            return MCPTimeoutError(f"{self.label} did not answer the handshake in time", server=self.name)
        if isinstance(exc, httpx2.HTTPError):
            return MCPStartError(
                f"{self.label} cannot be reached: {type(exc).__name__}: {excerpt(exc)}", server=self.name
            )
        return super().start_error(connection, exc)

    def transport_error(self, connection: Connection, exc: BaseException, during: str) -> MCPError | None:
        import httpx2

        if isinstance(exc, httpx2.TimeoutException):
            return MCPTimeoutError(f"{self.label} did not answer {during} in time", server=self.name)
        if isinstance(exc, (httpx2.HTTPError, OSError)):
            return MCPConnectionLostError(
                f"{self.label} cannot be reached during {during} ({type(exc).__name__}: {excerpt(exc)}); "
                "the next run reconnects",
                server=self.name,
            )
        return super().transport_error(connection, exc, during)

    def cause(self, exc: BaseException) -> BaseException | None:
        return None  # httpx errors carry the request, headers included


__all__ = ["MCPServerHTTP"]
