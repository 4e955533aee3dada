"""The `agnt5` command: argument parsing, dispatch, error messages and exit codes."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import TextIO

from agnt5.cli import sessions
from agnt5.cli.errors import EPILOG, EXIT_OK, EXIT_USAGE, exit_code
from agnt5.inspect import command as inspect_command


def build_parser() -> argparse.ArgumentParser:
    """The whole command line; `--database-url` is accepted before or after the subcommand."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--database-url",
        default=argparse.SUPPRESS,  # a subcommand's copy must not reset the top-level value
        help="database URL (default: AGNT5_DATABASE_URL, else sqlite:///.agnt5/agnt5.db)",
    )
    parser = argparse.ArgumentParser(
        prog="agnt5",
        description="agnt5: durable sessions for AI agents.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser(
        "demo",
        help="the full tour, offline from recorded responses (or --live)",
        parents=[common],
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="A support conversation with a handoff and tools, state in four scopes, a long "
        "session pruned two ways, long-term memory, an export, the audit trail and a refund that "
        "waits for approval. Offline by "
        "default: model responses are replayed from a cassette shipped with agnt5.",
    )
    demo.add_argument("--live", action="store_true", help="call the real provider (needs OPENAI_API_KEY)")
    demo.add_argument(
        "--record",
        action="store_true",
        help="with --live: write the real responses to a cassette (default ./agnt5-demo-cassette.json)",
    )
    demo.add_argument(
        "--cassette",
        help="cassette file to replay or record (default: the shipped one to replay, "
        "./agnt5-demo-cassette.json to record)",
    )
    sessions.add_parsers(commands, common)
    inspect_command.add_parser(commands, common)
    return parser


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run the `agnt5` command with `argv` (default sys.argv[1:]); returns the exit code."""
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2), already printed by argparse
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        return asyncio.run(_dispatch(args, out, err))
    except (Exception, KeyboardInterrupt) as exc:
        code = exit_code(exc)
        command = " ".join(filter(None, ["agnt5", args.command, getattr(args, "action", None)]))
        if isinstance(exc, KeyboardInterrupt):
            err.write(f"{command}: interrupted\n")
        elif code == EXIT_USAGE or type(exc).__module__.startswith("agnt5") or isinstance(exc, OSError):
            err.write(f"{command}: error: {_message(exc)}\n")
        else:
            raise  # a bug: keep the traceback
        return code


async def _dispatch(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    url = getattr(args, "database_url", None)
    if args.command == "demo":
        from agnt5.demo.run import DemoOptions, run_demo

        options = DemoOptions(database_url=url, live=args.live, record=args.record, out=out, err=err)
        if args.cassette:
            options.cassette = args.cassette
        return await run_demo(options)
    if args.command == "inspect":
        return await inspect_command.run_inspect(args, url, out)
    from agnt5.config import database_url
    from agnt5.errors import DatabaseNotFoundError
    from agnt5.store.url import open_store

    # `sessions` commands never create a database; list/show/export also open it read-only, so a
    # database on a read-only filesystem can still be read.
    try:
        store = open_store(url or database_url(), create=False, read_only=args.action in sessions.READ_ONLY)
    except DatabaseNotFoundError as exc:
        where = "--database-url" if url else "AGNT5_DATABASE_URL or --database-url"
        raise DatabaseNotFoundError(f"{exc}; choose the database with {where}") from None
    try:
        code: int = await args.handler(args, store, out)
        return code
    finally:
        await store.close()


def _message(exc: BaseException) -> str:
    """The error's text for stderr, with any database password masked (whatever raised it)."""
    from agnt5.store.url import mask_credentials

    if isinstance(exc, KeyError) and exc.args:
        return mask_credentials(str(exc.args[0]))  # KeyError's str() would quote the message
    return mask_credentials(str(exc) or type(exc).__name__)


__all__ = ["EXIT_OK", "build_parser", "main"]
