"""`agnt5` command line: `agnt5 demo` runs the offline walkthrough."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="agnt5", description="agnt5: durable conversations for AI agents")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run the offline walkthrough of the Session API")
    demo.add_argument(
        "--database-url",
        default=None,
        help="where to store the demo's sessions (default: AGNT5_DATABASE_URL or sqlite:///.agnt5/agnt5.db)",
    )
    args = parser.parse_args(argv)
    if args.command == "demo":
        from agnt5.demo.walkthrough import run

        return asyncio.run(run(database_url=args.database_url))
    parser.error(f"unknown command {args.command!r}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
