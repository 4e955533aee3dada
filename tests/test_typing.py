"""Strict typing for users: `mypy --strict` on a user app that uses agnt5's public API.

mypy runs from a temporary directory outside the repository, so it checks against the INSTALLED
agnt5 (py.typed, explicit re-exports, an editable install mypy can see). tests/typing_app/app.py
must check clean; every `# expect: <code>` line of tests/typing_app/bad.py must be reported with
that code (so the check can fail), and no other line may be.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

APP_DIR = Path(__file__).parent / "typing_app"
_ERROR = re.compile(r"^(?P<file>[\w.]+):(?P<line>\d+): error: (?P<text>.*?)(?:  \[(?P<code>[\w-]+)\])?$")
_EXPECT = re.compile(r"#\s*expect:\s*([\w-]+)")


def _expected(path: Path) -> dict[int, str]:
    return {
        number: match.group(1)
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if (match := _EXPECT.search(line))
    }


def _run_mypy(workdir: Path) -> subprocess.CompletedProcess[str]:
    """One mypy run over both files; the cache lives in the system temp dir so reruns are fast."""
    cache = (
        Path(tempfile.gettempdir()) / f"agnt5-typing-mypy-cache-{sys.version_info[0]}{sys.version_info[1]}"
    )
    config = workdir / "mypy.ini"  # no repository or user configuration applies
    config.write_text("[mypy]\nstrict = True\n")
    env = {k: v for k, v in os.environ.items() if k not in ("MYPYPATH", "PYTHONPATH")}
    flags = ["--config-file", str(config), "--cache-dir", str(cache), "--no-error-summary", "--no-pretty"]
    return subprocess.run(
        [sys.executable, "-m", "mypy", *flags, "--show-error-codes", "app.py", "bad.py"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_user_app_passes_mypy_strict_and_misuse_is_reported(tmp_path: Path) -> None:
    for name in ("app.py", "bad.py"):
        shutil.copy(APP_DIR / name, tmp_path / name)
    proc = _run_mypy(tmp_path)
    output = proc.stdout + proc.stderr
    errors: dict[str, dict[int, list[str]]] = {"app.py": {}, "bad.py": {}}
    for line in proc.stdout.splitlines():
        match = _ERROR.match(line)
        if match is not None:
            errors.setdefault(match["file"], {}).setdefault(int(match["line"]), []).append(
                match["code"] or ""
            )
    hint = (
        "\n(if mypy cannot find agnt5, the install is not type-checkable: "
        "pip install -e '.[dev]' --config-settings editable_mode=compat, as the Makefile does)"
    )
    assert errors["app.py"] == {}, f"the user app must pass mypy --strict:\n{output}{hint}"

    expected = _expected(tmp_path / "bad.py")
    assert len(expected) >= 5
    missing = {n: code for n, code in expected.items() if code not in errors["bad.py"].get(n, [])}
    assert not missing, f"mypy did not report these misuses (line: code): {missing}\n{output}"
    unexpected = {n: codes for n, codes in errors["bad.py"].items() if n not in expected}
    assert not unexpected, f"unexpected mypy errors in bad.py: {unexpected}\n{output}"
    assert proc.returncode == 1, output  # 1: type errors found (2 would be a crash or bad usage)
