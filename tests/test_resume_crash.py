"""Runs killed (SIGKILL) at random moments and resumed from another process.

Each round starts `tests/_resume_worker.py` on a new session, kills it after a random delay
spread over the run, resumes the session in a second process, and checks: every non-idempotent
call ran at most once and exactly once when its result is stored (the tools' side-effect log),
the final history is valid for OpenAI's, Anthropic's and Gemini's rules, and the answer arrives.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from conftest import StoreEnv
from test_pending_calls import PROVIDERS, send

from agnt5 import Session
from agnt5.approvals import INTERRUPTED_TEXT
from agnt5.journal import pending_calls
from agnt5.messages import to_provider_messages

WORKER = Path(__file__).parent / "_resume_worker.py"
REPEATABLE = {"lookup"}


class Worker:
    """`tests/_resume_worker.py` serving jobs: its children run, get killed, and resume."""

    def __init__(self) -> None:
        root = str(Path(__file__).resolve().parents[1])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )
        assert self.reply() == {"ready": True}

    def reply(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, f"the worker died (exit {self.proc.poll()})"
        return dict(json.loads(line))

    def job(self, **job: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()
        answer = self.reply()
        assert "error" not in answer, answer["error"]
        return answer

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def check_provider_rules(history: Sequence[Mapping[str, Any]]) -> None:
    """What OpenAI, Anthropic and Gemini require of a conversation with tools: every call of an
    assistant message answered, right after it, once, in the order the calls were made; no tool
    result without its call; the conversation opens with the user; no two assistant turns without
    a user or tool turn between them (Anthropic's alternation once results are user turns)."""
    assert history and history[0]["role"] == "user"
    i = 0
    while i < len(history):
        message = history[i]
        assert message["role"] != "tool", f"tool result without its call at {i}: {message}"
        if message["role"] == "assistant" and message.get("tool_calls"):
            ids = [c["id"] for c in message["tool_calls"]]
            answers = []
            i += 1
            while i < len(history) and history[i]["role"] == "tool":
                answers.append(history[i]["tool_call_id"])
                i += 1
            assert answers == ids, f"calls {ids} answered by {answers}"
            assert i < len(history), "the conversation ends with tool results: no answer"
            continue
        if message["role"] == "assistant" and i + 1 < len(history):
            assert history[i + 1]["role"] != "assistant", "two assistant turns in a row"
        i += 1


def check_round(history: Sequence[Mapping[str, Any]], log: Path, answer: str) -> Counter[str]:
    check_provider_rules(history)
    assert history[-1]["role"] == "assistant" and history[-1]["content"] == answer
    assert answer.startswith("done: ")
    ran = Counter[str]()
    tool_of: dict[str, str] = {}
    for line in log.read_text().splitlines() if log.exists() else []:
        entry = json.loads(line)
        ran[entry["call"]] += 1
        tool_of[entry["call"]] = entry["tool"]
    stored = {m["tool_call_id"]: m["content"] for m in history if m["role"] == "tool"}
    outcome = Counter[str]()
    for call_id, times in ran.items():
        if tool_of[call_id] not in REPEATABLE:
            assert times == 1, f"{tool_of[call_id]} call {call_id} ran {times} times"
    for call_id, content in stored.items():
        if content == INTERRUPTED_TEXT:
            outcome["interrupted"] += 1
            continue
        assert ran[call_id] >= 1, f"result of {call_id} stored but the tool never ran"
        outcome["stored"] += 1
    return outcome


async def _kill_rounds(env: StoreEnv, tmp_path: Path, rounds: int) -> None:
    worker = Worker()
    try:
        # Calibration: how long a whole run takes here, so the kills spread over all of it.
        whole = max(
            worker.job(db=env.url, sid="calibration", log=str(tmp_path / "c.log"))["ran_for"]
            for _ in range(3)
        )
        rng = random.Random(20261126)
        finished = []
        waits = 0
        for n in range(rounds):
            sid, log = f"kill-{n}", tmp_path / f"kill-{n}.log"
            # Every other kill lands at a random moment of the run; the others within 2 ms of a
            # random tool's side effect, while its step is being run and journalled.
            when = {"kill_after": rng.uniform(0.0, whole)}
            if n % 2:
                when = {"kill_after": rng.uniform(0.0, 0.002), "on_effect": rng.randint(1, 5)}
            done = worker.job(db=env.url, sid=sid, log=str(log), **when)
            finished.append((sid, log, done["answer"]))
            waits += done["waits"]
    finally:
        worker.close()
    totals = Counter[str]()
    store = env.open()
    try:
        for n, (sid, log, answer) in enumerate(finished):
            session = Session(sid, store=store)
            history = await session.history()
            totals += check_round(history, log, answer)
            assert await pending_calls(session) == []
            if n % 5 == 0:  # and as each provider gets it, through litellm's own request bodies
                for model, url, reply, problems in PROVIDERS:
                    assert problems(await send(model, url, reply, to_provider_messages(history))) == []
    finally:
        await store.close()
    print(
        f"\n{rounds} kills over {whole * 1000:.0f} ms runs: {dict(totals)}; {waits} resumes waited out a lease"
    )
    # Kills landed while tools ran, and resumes found the killed run's step under its lease.
    assert totals["stored"] > 0 and totals["interrupted"] > 0 and waits > 0


@pytest.mark.parametrize("store_env", ["sqlite"], indirect=True)
async def test_runs_killed_at_random_points_resume_without_repeating_a_stored_call(
    store_env: StoreEnv, tmp_path: Path
) -> None:
    await _kill_rounds(store_env, tmp_path, 50)


@pytest.mark.parametrize("store_env", ["postgres"], indirect=True)
async def test_runs_killed_on_postgres_resume_without_repeating_a_stored_call(
    store_env: StoreEnv, tmp_path: Path
) -> None:
    await _kill_rounds(store_env, tmp_path, 12)


def test_the_provider_rules_check_catches_what_providers_refuse() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "t", "arguments": "{}"}}
    user = {"role": "user", "content": "u"}
    asks = {"role": "assistant", "content": None, "tool_calls": [call]}
    answer = {"role": "tool", "tool_call_id": "c1", "content": "r"}
    final = {"role": "assistant", "content": "ok"}
    check_provider_rules([user, asks, answer, final])
    for bad in ([user, asks, final], [user, answer, final], [user, asks, answer, answer, final], [asks]):
        with pytest.raises(AssertionError):
            check_provider_rules(bad)
