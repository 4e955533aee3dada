"""The `agnt5` command line (`agnt5 demo`, `agnt5 sessions ...`); see `agnt5 --help`."""

from agnt5.cli.app import build_parser, main
from agnt5.cli.errors import EXIT_ERROR, EXIT_NOT_FOUND, EXIT_OK, EXIT_USAGE

__all__ = ["EXIT_ERROR", "EXIT_NOT_FOUND", "EXIT_OK", "EXIT_USAGE", "build_parser", "main"]
