"""MCPServerStdio/MCPServerHTTP options, names and reprs, and the lazy SDK import (no server)."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest
from mcp_fixtures import stdio_args

from agnt5.errors import InvalidInputError
from agnt5.mcp import MCPServerStdio


def test_inherit_env_passes_the_parent_environment() -> None:
    command, args = stdio_args()
    assert "OPENAI_API_KEY" not in MCPServerStdio(command, args).environment()
    inherited = MCPServerStdio(command, args, env={"X": "1"}, inherit_env=True).environment()
    assert inherited["OPENAI_API_KEY"] == os.environ["OPENAI_API_KEY"] and inherited["X"] == "1"


def test_reprs_and_names_hide_env_values_and_extra_args() -> None:
    server = MCPServerStdio(
        "/usr/bin/node", ["dist/server.js", "--token", "abc123secret"], env={"KEY": "v4lue"}
    )
    assert repr(server) == "MCPServerStdio('node server.js', env=['KEY'])"
    assert "abc123secret" not in server.label and "v4lue" not in repr(server)
    assert MCPServerStdio("npx", ["-y", "@scope/server-x"]).name == "npx @scope/server-x"
    assert MCPServerStdio("npx", ["-y", "x"], name="files").label == "MCP server 'files'"


@pytest.mark.parametrize(
    "kwargs",
    [{"timeout": 0}, {"timeout": "1"}, {"connect_timeout": -1}, {"tool_prefix": "a b"}, {"name": ""}],
)
def test_bad_options_are_input_errors(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError):
        MCPServerStdio("python", **kwargs)
    with pytest.raises(InvalidInputError):
        MCPServerStdio("")
    with pytest.raises(InvalidInputError):
        MCPServerStdio("python", "server.py")  # args must be a list
    with pytest.raises(InvalidInputError):
        MCPServerStdio("python", env={"A": 1})  # type: ignore[dict-item]


def test_import_agnt5_does_not_import_the_mcp_sdk() -> None:
    code = (
        "import sys, agnt5, agnt5.mcp, agnt5.toolsets\n"
        "from agnt5.mcp import MCPServerStdio, MCPServerHTTP\n"
        "MCPServerStdio('python'); MCPServerHTTP('http://127.0.0.1:1/mcp')\n"
        "print(sorted(m for m in sys.modules if m == 'mcp' or m.startswith(('mcp.', 'mcp_types', 'httpx2'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
