"""`agnt5 demo` end to end, offline from the shipped cassette (AGNT5_DISABLE_NETWORK=1 is set by
conftest): what it prints proves each part happened; a second run on the same database works; the
shipped cassette is exactly what scripts/author_demo_cassette.py produces from the demo code.

The story checks hold for the authored cassette and for one re-recorded from the real provider
(`agnt5 demo --live --record`): they check what the agents did, not the model's wording."""

from __future__ import annotations

import asyncio
import importlib.util
import io
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

from agnt5 import _litellm
from agnt5.cli import EXIT_ERROR, EXIT_OK, main
from agnt5.demo import loading
from agnt5.demo.loading import LABEL
from agnt5.demo.run import RECORDED_CASSETTE, SHIPPED_CASSETTE, DemoOptions, cassette_path

ROOT = Path(__file__).resolve().parents[1]


def _demo(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["demo", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _prune_figures(out: str, strategy: str) -> tuple[int, int, int]:
    match = re.search(rf"  {strategy}: removed (\d+) messages \(\d+ -> \d+\), tokens (\d+) -> (\d+)", out)
    assert match, out
    removed, before, after = (int(g) for g in match.groups())
    return removed, before, after


def _check_story(out: str, err: str) -> None:
    # the router hands off; the specialist uses both tools and answers
    assert "  router -> transfer_to_billing_specialist()" in out
    assert "  >> handoff to billing_specialist" in out
    assert '  billing_specialist -> lookup_charges(month="2025-11")' in out
    assert '  billing_specialist -> issue_refund(charge_id="ch_1002"' in out
    assert re.search(r"\n  billing_specialist: .*ch_1002", out)  # its answer names the refunded charge
    assert "answered by billing_specialist" in out
    # state: all four scopes before the run; temp is empty after it; user/app carry to a new session
    before = out.split("state before the run:")[1]
    assert '  session  {"ticket_status": "open"}' in before
    assert '  user     {"plan": "Pro (monthly, $29.00)"}' in before
    assert '  app      {"refund_window_days": 30}' in before
    assert '  temp     {"routing_hint": "billing"}' in before
    after = out.split("state after the runs")[1].split("==")[0]
    assert '"ticket_status": "refunded"' in after and '"refunds_issued": 1' in after
    assert "  temp     {}" in after
    new_session = out.split("state seen from the new session")[1]
    assert "  session  {}" in new_session and '"refunds_issued": 1' in new_session
    # memory: remembered in one session, recalled by the agent in the next, found by search
    assert "  billing_specialist -> remember(key=" in out
    follow_up = out.split("== 3.")[1].split("direct search:")[0]
    assert "  billing_specialist -> recall(query=" in follow_up
    assert re.search(r"\n  billing_specialist: .*4242", follow_up)  # the answer uses the recalled fact
    hits = out.split("direct search:")[1].splitlines()[1:4]
    assert "Visa card ending in 4242" in hits[0]
    scores = [float(line.split()[0]) for line in hits]
    assert scores == sorted(scores, reverse=True)
    # the long session: both prunes remove messages and tokens
    assert re.search(r"session demo-\w+-backlog: 241 messages, \d+ tokens", out)
    for strategy in ("keep_important", "summarize_old"):
        removed, before_tokens, after_tokens = _prune_figures(out, strategy)
        assert removed > 0 and before_tokens > after_tokens
    assert _prune_figures(out, "keep_important")[2] == _prune_figures(out, "summarize_old")[1]
    assert "    Summary of the earlier conversation: " in out
    # export: an excerpt of real jsonl lines
    count = int(re.search(r"as jsonl \((\d+) lines", out).group(1))  # type: ignore[union-attr]
    assert count == 12
    excerpt = out.split("one per message); the first 3:\n")[1].splitlines()[:3]
    assert [line.startswith('  {"id": "msg_') for line in excerpt] == [True, True, True]
    assert '"role": "user", "message": "Hi, I was charged twice' in excerpt[0]
    assert re.search(r"242 lines, 228 of them tombstones", out)
    # audit trail
    audit = out.split("== 6. Audit trail")[1]
    assert re.search(r"  handoff\s+1\n", audit) and re.search(r"  tool_call\s+[4-9]\n", audit)
    assert audit.count(": prune ") == 2
    # approval: the refund above the limit waits (the run pauses), is approved, and the run resumes
    approval = out.split("== 7. Human approval")[1]
    assert "  (paused after " in approval
    waiting = approval.split("waiting for approval (1), as `agnt5 sessions pending --app acme_support`")[1]
    assert re.search(r'\n  \[call_\w+\] billing_specialist -> issue_refund\(charge_id="ch_1107"', waiting)
    assert "$290.00 is above the $100.00 limit" in waiting
    resumed = waiting.split("approved by maria (billing lead); the run resumes:\n")[1]
    assert '  billing_specialist -> issue_refund(charge_id="ch_1107"' in resumed
    assert '      <- {"refund_id":"re_5001","charge_id":"ch_1107","amount":290.0' in resumed
    assert re.search(r"\n  billing_specialist: .*(ch_1107|290)", resumed)  # the answer names the refund
    assert "  audit: approval_decided issue_refund approved by maria (billing lead)\n" in resumed
    # replayed, and progress bars on the long steps
    assert re.search(r"done in [\d.]+s \(\d+ chat model calls, \d+ recorded responses replayed\)", out)
    for label in ("writing 241 messages", "scoring importance", "summarising"):
        assert f"[####################] 100% {label}" in err


def test_demo_runs_offline_twice_on_one_database(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    code, out, err = _demo(capsys, "--database-url", url)
    assert code == EXIT_OK, err
    assert "offline: gpt-4o-mini and text-embedding-3-small responses are replayed from" in out
    note = json.loads(SHIPPED_CASSETTE.read_text()).get("note")
    assert note is None or f"  ({note})" in out  # an authored cassette says so when replayed
    _check_story(out, err)
    first_run = re.search(r"agnt5 demo \(run (\w+)\)", out).group(1)  # type: ignore[union-attr]

    code, out, err = _demo(capsys, "--database-url", url)
    assert code == EXIT_OK, err
    _check_story(out, err)
    second_run = re.search(r"agnt5 demo \(run (\w+)\)", out).group(1)  # type: ignore[union-attr]
    assert first_run != second_run

    assert main(["sessions", "list", "--app", "acme_support", "--json", "--database-url", url]) == EXIT_OK
    ids = {s["id"] for s in json.loads(capsys.readouterr().out)["sessions"]}
    assert ids == {
        f"demo-{run}-{part}"
        for run in (first_run, second_run)
        for part in ("support", "followup", "backlog", "approval")
    }


def test_demo_uses_the_default_database(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _demo(capsys)
    assert code == EXIT_OK, err
    assert "on sqlite:///.agnt5/agnt5.db" in out
    assert Path(".agnt5/agnt5.db").exists()  # in the test's own working directory


def test_demo_fails_clearly_when_the_cassette_does_not_match(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    document = json.loads(SHIPPED_CASSETTE.read_text())
    document["interactions"][0]["request"]["body"]["input"][0] = "something else"
    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps(document))
    code, _, err = _demo(
        capsys, "--cassette", str(changed), "--database-url", f"sqlite:///{tmp_path / 'd.db'}"
    )
    assert code == EXIT_ERROR
    assert "no recorded response" in err and "nearest recorded request" in err


def test_a_missing_cassette_fails_first_with_the_clis_flags(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    missing = tmp_path / "missing.json"
    database = tmp_path / "not-yet" / "d.db"
    code, out, err = _demo(capsys, "--cassette", str(missing), "--database-url", f"sqlite:///{database}")
    assert code == EXIT_ERROR
    assert out == ""  # failed before the banner: nothing opened, nothing printed
    assert f"cassette {missing} does not exist" in err
    assert f"agnt5 demo --live --record --cassette {missing}" in err and "OPENAI_API_KEY" in err
    assert "mode=" not in err and "AGNT5_RECORD" not in err
    assert not (tmp_path / "not-yet").exists()
    code, out, _ = _demo(capsys, "--cassette", str(missing))  # the default database: not created
    assert code == EXIT_ERROR and out == "" and not Path(".agnt5").exists()


CTRL_C = """
import os, signal, sys, threading, time
from agnt5 import _litellm
_litellm.get_litellm()
import litellm.main
real = litellm.main.embedding
entered = threading.Event()
def slow_embedding(*args, **kwargs):
    entered.set()
    time.sleep(1.0)  # Ctrl-C arrives while litellm's worker thread prepares the provider call
    return real(*args, **kwargs)
litellm.main.embedding = slow_embedding
def interrupt():
    entered.wait(120)
    time.sleep(0.2)
    os.kill(os.getpid(), signal.SIGINT)
threading.Thread(target=interrupt, daemon=True).start()
from agnt5.cli import main
sys.exit(main(["demo"]))
"""


def test_ctrl_c_exits_130_quietly(tmp_path: Path) -> None:
    """Ctrl-C during a provider call: exit 130 and one line, no 'coroutine was never awaited'."""
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    env.pop("AGNT5_CASSETTE", None)
    done = subprocess.run(
        [sys.executable, "-c", CTRL_C], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 130, done.stderr
    assert done.stderr.endswith("agnt5 demo: interrupted\n"), done.stderr
    assert "Warning" not in done.stderr and "never awaited" not in done.stderr
    assert "Traceback" not in done.stderr


def test_loading_litellm_shows_progress_on_stderr() -> None:
    """A cold start (a fresh process) says what it is waiting for, and when it is done."""
    script = "import asyncio, sys\nfrom agnt5.demo.loading import load_litellm\nasyncio.run(load_litellm(sys.stderr))"
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(rf"  {re.escape(LABEL)}\.\.\. done in \d+\.\ds\n", done.stderr), done.stderr
    assert done.stdout == ""


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


async def test_loading_progress_ticks_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_litellm, "is_loaded", lambda: False)
    monkeypatch.setattr(_litellm, "get_litellm", lambda: time.sleep(0.7))
    monkeypatch.setattr(loading, "TICK", 0.1)
    err = _Terminal()
    await loading.load_litellm(err)
    text = err.getvalue()
    assert text.startswith(f"  {LABEL}...") and text.endswith("s\n")
    assert text.count("\r") >= 3  # redrawn in place with the elapsed time
    assert re.search(r"\.\.\. 0\.[2-9]s", text) and " done in 0." in text.rsplit("\r", 1)[1]


async def test_a_failed_load_is_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> None:
        raise ImportError("no litellm")

    monkeypatch.setattr(_litellm, "is_loaded", lambda: False)
    monkeypatch.setattr(_litellm, "get_litellm", broken)
    with pytest.raises(ImportError, match="no litellm"):
        await loading.load_litellm(io.StringIO())


def _author_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "author_demo_cassette", ROOT / "scripts/author_demo_cassette.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_shipped_cassette_is_what_the_authoring_script_makes(tmp_path: Path) -> None:
    """Change the demo, re-run scripts/author_demo_cassette.py: this test says when it is due."""
    shipped = json.loads(SHIPPED_CASSETTE.read_text())
    if "note" not in shipped:
        pytest.skip(
            "the shipped cassette was re-recorded from the real provider (agnt5 demo --live --record)"
        )
    script = _author_script()
    output = tmp_path / "demo.json"
    asyncio.run(script.author(output))
    script.add_note(output)
    assert json.loads(output.read_text()) == shipped


def test_shipped_cassette_is_packaged() -> None:
    from importlib.resources import files

    assert files("agnt5").joinpath("demo/cassettes/demo.json").is_file()
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"**/*.json"' in pyproject  # package-data ships the cassette in wheels too


def test_a_recording_goes_to_the_working_directory_never_into_the_package() -> None:
    assert cassette_path(DemoOptions()) == SHIPPED_CASSETTE
    recorded = cassette_path(DemoOptions(live=True, record=True))
    assert recorded == RECORDED_CASSETTE and not recorded.is_absolute()
    assert cassette_path(DemoOptions(live=True, record=True, cassette="mine.json")) == Path("mine.json")
    assert cassette_path(DemoOptions(cassette="mine.json")) == Path("mine.json")
