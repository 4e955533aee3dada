"""Tools from Model Context Protocol servers: `Agent(tools=[MCPServerStdio(...), MCPServerHTTP(...)])`.

Built on the official `mcp` SDK (`pip install 'agnt5[mcp]'`), which is imported only when a
server connects: `import agnt5` and `import agnt5.mcp` do not load it.
"""

from __future__ import annotations

from agnt5.errors import (
    MCPAuthenticationError,
    MCPConnectionLostError,
    MCPError,
    MCPHTTPError,
    MCPProtocolError,
    MCPStartError,
    MCPTimeoutError,
    ToolNameClashError,
)
from agnt5.mcp._server import MCPServer
from agnt5.mcp._tool import MCPTool
from agnt5.mcp.http import MCPServerHTTP
from agnt5.mcp.stdio import DEFAULT_ENV_VARS, MCPServerStdio

__all__ = [
    "DEFAULT_ENV_VARS",
    "MCPAuthenticationError",
    "MCPConnectionLostError",
    "MCPError",
    "MCPHTTPError",
    "MCPProtocolError",
    "MCPServer",
    "MCPServerHTTP",
    "MCPServerStdio",
    "MCPStartError",
    "MCPTimeoutError",
    "MCPTool",
    "ToolNameClashError",
]
