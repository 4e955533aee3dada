"""The MCP server the tests talk to, written with the mcp SDK's server API (`MCPServer`).

`tests/mcp/stdio_server.py` runs it as a subprocess over stdio; `tests/mcp/conftest.py` serves
it over streamable HTTP on 127.0.0.1 inside the test run.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Annotated

from mcp.server.mcpserver import Context, Image, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ContentBlock, EmbeddedResource, ResourceLink, TextContent, TextResourceContents
from pydantic import BaseModel, Field

PIXEL = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c6360f8cf"
    "c0f01f0005000201a2b0f3a50000000049454e44ae426082"
)


class Weather(BaseModel):
    city: str
    celsius: float
    summary: str


def build(name: str = "test-server") -> MCPServer:
    app: MCPServer = MCPServer(name, log_level="WARNING")

    @app.tool()
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    @app.tool(description="Current weather of a city.")
    def get_weather(city: Annotated[str, Field(description="The city name.")]) -> str:
        # The same tool, with the same schema, as benchmarks/agent_overhead.py's local get_weather.
        return f"sunny in {city}"

    @app.tool()
    def echo(text: str) -> str:
        """Say the text back."""
        return text

    @app.tool()
    def fail(message: str) -> str:
        """Always fails with the message."""
        raise ToolError(message)

    @app.tool()
    def weather(city: str) -> Weather:
        """Structured weather for a city."""
        return Weather(city=city, celsius=21.5, summary="sunny")

    @app.tool()
    def picture() -> list[ContentBlock]:
        """A caption, a one-pixel PNG, an embedded text resource and a link."""
        return [
            TextContent(type="text", text="a red pixel"),
            Image(data=PIXEL, format="png").to_image_content(),
            EmbeddedResource(
                type="resource",
                resource=TextResourceContents(
                    uri="file:///notes.txt", mime_type="text/plain", text="pixel notes"
                ),
            ),
            ResourceLink(type="resource_link", name="big.csv", uri="file:///big.csv", mime_type="text/csv"),
        ]

    @app.tool()
    def environment() -> dict[str, str]:
        """The server process's environment."""
        return dict(os.environ)

    @app.tool()
    def pid() -> int:
        """The server's process id."""
        return os.getpid()

    @app.tool()
    async def slow(seconds: float, label: str = "") -> str:
        """Sleep, then answer with the label."""
        await asyncio.sleep(seconds)
        return f"done {label}".strip()

    @app.tool()
    async def grow(ctx: Context) -> str:
        """Add a tool named `extra` and announce that the tool list changed."""

        def extra() -> str:
            """A tool added at run time."""
            return "extra!"

        app.add_tool(extra, name="extra")
        await ctx.notify_tools_changed()  # 2026-era clients (subscriptions/listen)
        try:
            await ctx.request_context.session.send_tool_list_changed()  # 2025-era clients
        except Exception:
            pass
        return "grown"

    @app.tool()
    def crash() -> str:
        """Kill the server process mid-call."""
        print(f"crashing on purpose (greeting={os.environ.get('GREETING')})", file=sys.stderr, flush=True)
        os._exit(7)

    return app
