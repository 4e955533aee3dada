"""Exit codes of the `agnt5` command (documented in `agnt5 --help` and the README) and the
mapping from errors to them."""

from __future__ import annotations

from agnt5.errors import (
    Agnt5Error,
    ConfigurationError,
    DatabaseNotFoundError,
    SessionNotFoundError,
    StrategyError,
    TokenBudgetError,
)

EXIT_OK = 0
EXIT_ERROR = 1
"""A runtime failure: store, model/provider, cassette, immutable session, unwritable file."""
EXIT_USAGE = 2
"""Bad command line: unknown option or strategy, bad value, --live without an API key."""
EXIT_NOT_FOUND = 3
"""No session with the given id, or no database at the given SQLite path (nothing is created)."""
EXIT_INTERRUPTED = 130

EPILOG = """\
exit codes:
  0    success
  1    runtime error (store, model or provider, cassette, immutable session, file,
       a write refused by a read-only database)
  2    usage error (bad option or value, unknown strategy, --live without an API key)
  3    not found (no session with that id; no database at that path: `sessions`
       commands never create one)
  130  interrupted

environment:
  AGNT5_DATABASE_URL  database (default sqlite:///.agnt5/agnt5.db); --database-url overrides it
"""


class UsageError(Exception):
    """A command-line mistake found after parsing (exit code 2)."""


def exit_code(error: BaseException) -> int:
    """The exit code for an error a command raised."""
    if isinstance(error, SessionNotFoundError | DatabaseNotFoundError):
        return EXIT_NOT_FOUND
    if isinstance(error, UsageError | StrategyError | TokenBudgetError | ConfigurationError):
        return EXIT_USAGE
    if isinstance(error, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(error, Agnt5Error | OSError):
        return EXIT_ERROR
    return EXIT_ERROR
