"""Run the test MCP server over stdio. `--banner` first writes a non-MCP line to stdout (a
malformed message); `--exit` exits at once after a line on stderr."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

if __name__ == "__main__":
    if "--exit" in sys.argv:
        print("fatal: no configuration found", file=sys.stderr, flush=True)
        sys.exit(3)
    from server_app import build

    if "--banner" in sys.argv:
        print("Welcome to the test server!", flush=True)
    build().run()
