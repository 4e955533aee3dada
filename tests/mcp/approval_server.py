"""A small MCP server over stdio for the approval tests: tools with side effects, each call
appended as a line to the file named by the `LEDGER` environment variable, and tools annotated
read-only or idempotent (MCP ToolAnnotations)."""

from __future__ import annotations

import os

from mcp.server.mcpserver import MCPServer
from mcp_types import ToolAnnotations


def record(line: str) -> None:
    """Append what a tool did to the ledger (the test reads it to see which calls ran)."""
    with open(os.environ["LEDGER"], "a", encoding="utf-8") as ledger:
        ledger.write(line + "\n")


def build() -> MCPServer:
    app: MCPServer = MCPServer("approval-server", log_level="WARNING")

    @app.tool()
    def transfer(to: str, amount: int) -> str:
        """Send money (no annotations: neither read-only nor idempotent)."""
        record(f"transfer {to} {amount}")
        return f"sent {amount} to {to}"

    @app.tool(annotations=ToolAnnotations(read_only_hint=True))
    def balance() -> str:
        """The account balance (read-only)."""
        record("balance")
        return "balance 1000"

    @app.tool(annotations=ToolAnnotations(idempotent_hint=True, read_only_hint=False))
    def set_limit(amount: int) -> str:
        """Set the daily limit (idempotent: the same amount twice is one change)."""
        record(f"set_limit {amount}")
        return f"limit {amount}"

    @app.tool(annotations=ToolAnnotations(read_only_hint=False, idempotent_hint=False, title="Close"))
    def close_account() -> str:
        """Close the account (annotated, but neither read-only nor idempotent)."""
        record("close_account")
        return "closed"

    return app


if __name__ == "__main__":
    build().run()
