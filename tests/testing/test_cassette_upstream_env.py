"""AGNT5_CASSETTE_UPSTREAM: a separate process (a notebook kernel) records a cassette from a scripted
provider named by `module:function`, and replays it with no API key set."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agnt5.errors import CassetteError
from agnt5.testing.cassette import resolve_upstream

PROVIDER = """
import json
import httpx

calls = []

def answer(request: httpx.Request) -> httpx.Response:
    asked = json.loads(request.content)["messages"][-1]["content"]
    calls.append(asked)
    return httpx.Response(200, json={
        "id": "chatcmpl-scripted", "object": "chat.completion", "created": 1727000000,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": f"scripted: {asked}"}}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
    })
"""

SCRIPT = """
import asyncio
from agnt5 import Agent, configure
configure(database_url="sqlite:///:memory:")
print(asyncio.run(Agent("a").run("ping")).output)
"""


def _run(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    # No provider API key in the environment: the placeholder must satisfy the SDK.
    base = {"PATH": "/usr/bin:/bin", "LITELLM_LOCAL_MODEL_COST_MAP": "True", "PYTHONPATH": str(cwd)}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SCRIPT)],
        env={**base, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_separate_process_records_from_a_named_upstream_then_replays_without_a_key(tmp_path: Path) -> None:
    (tmp_path / "scripted_upstream.py").write_text(PROVIDER)
    path = tmp_path / "kernel.json"
    recorded = _run(
        {
            "AGNT5_CASSETTE": str(path),
            "AGNT5_RECORD": "1",
            "AGNT5_CASSETTE_UPSTREAM": "scripted_upstream:answer",
            "AGNT5_DISABLE_NETWORK": "1",  # the scripted upstream needs no network
        },
        tmp_path,
    )
    assert recorded.returncode == 0, recorded.stderr[-2000:]
    assert recorded.stdout.strip() == "scripted: ping"
    document = json.loads(path.read_text())
    assert len(document["interactions"]) == 1
    assert "sk-agnt5-cassette-placeholder" not in path.read_text()  # headers are never written

    replayed = _run({"AGNT5_CASSETTE": str(path), "AGNT5_DISABLE_NETWORK": "1"}, tmp_path)
    assert replayed.returncode == 0, replayed.stderr[-2000:]
    assert replayed.stdout.strip() == "scripted: ping"


def test_resolve_upstream_finds_a_module_function() -> None:
    assert resolve_upstream("json:dumps") is json.dumps


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("json.dumps", "module:function"),
        (":dumps", "module:function"),
        ("no_such_module_agnt5:f", "nothing importable"),
        ("json:no_such_function", "nothing importable"),
        ("json:__doc__", "not callable"),
    ],
)
def test_resolve_upstream_rejects_bad_specs(spec: str, problem: str) -> None:
    with pytest.raises(CassetteError, match=problem):
        resolve_upstream(spec)
