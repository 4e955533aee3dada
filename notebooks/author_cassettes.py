"""Author the notebooks' cassettes: run each notebook in a fresh kernel that records its model calls.

    .venv/bin/python notebooks/author_cassettes.py            # every notebook, scripted provider
    .venv/bin/python notebooks/author_cassettes.py pruning    # one notebook
    OPENAI_API_KEY=sk-... .venv/bin/python notebooks/author_cassettes.py --live

The kernel gets AGNT5_CASSETTE=cassettes/<name>.json and AGNT5_RECORD=1, so agnt5 records every
provider request the notebook's own code makes (no mocking in the notebook) and writes the
cassette when the kernel shuts down. By default the answers come from `scripted_provider.py`
(named in AGNT5_CASSETTE_UPSTREAM), which speaks OpenAI's wire format; `--live` sends the
requests to the real provider instead. Outputs are not written back: notebooks stay without them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
NOTEBOOKS = ("quickstart", "multi_agent", "pruning", "memory", "agents_in_an_app", "mcp", "approvals")


def cassette_path(name: str) -> Path:
    return HERE / "cassettes" / f"{name}.json"


def execute(name: str, env: dict[str, str], timeout: int = 300) -> None:
    """Run notebooks/<name>.ipynb top to bottom in a fresh kernel with `env` added; raise on a cell error."""
    notebook = nbformat.read(HERE / f"{name}.ipynb", as_version=4)  # type: ignore[no-untyped-call]
    client = NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(HERE)}},  # the kernel's working directory
    )
    client.execute(env={**os.environ, "MPLBACKEND": "Agg", **env})


def author(name: str, live: bool) -> None:
    path = cassette_path(name)
    path.unlink(missing_ok=True)
    env = {"AGNT5_CASSETTE": str(path), "AGNT5_RECORD": "1"}
    if not live:
        env["AGNT5_CASSETTE_UPSTREAM"] = f"scripted_provider:{name}"
        env["AGNT5_DISABLE_NETWORK"] = "1"  # the scripted provider needs none
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))
    started = time.perf_counter()
    execute(name, env)
    interactions = json.loads(path.read_text())["interactions"] if path.exists() else []
    if not live:
        _check_script_used(name, interactions)
    print(
        f"{name}: {len(interactions)} interactions -> {path.relative_to(HERE.parent)} "
        f"({time.perf_counter() - started:.1f} s)"
    )


def _check_script_used(name: str, interactions: list[dict[str, Any]]) -> None:
    """Every scripted agent reply was asked for (the kernel's provider state is gone by now)."""
    sys.path.insert(0, str(HERE))
    import scripted_provider

    made = sum(
        1
        for i in interactions
        if i["request"]["url"].endswith("/chat/completions")
        and scripted_provider.is_agent_request(i["request"]["body"])
    )
    scripted = len(scripted_provider.SCRIPTS[name])
    if made != scripted:
        raise SystemExit(f"{name}: the notebook made {made} agent calls but its script has {scripted} steps")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("names", nargs="*", choices=[[], *NOTEBOOKS], help="notebooks (default: all)")
    parser.add_argument(
        "--live", action="store_true", help="record from the real provider (needs its API key)"
    )
    args = parser.parse_args(argv)
    for name in args.names or NOTEBOOKS:
        author(name, args.live)
    return 0


if __name__ == "__main__":
    sys.exit(main())
