"""`python -m agnt5` and the `agnt5` console script; the command line lives in agnt5.cli."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `agnt5` command; returns the exit code (see `agnt5 --help`)."""
    from agnt5.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
