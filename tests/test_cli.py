"""The `agnt5` command line: every `sessions` subcommand, `--database-url`/AGNT5_DATABASE_URL, and
each error path with its documented exit code (0 ok, 1 runtime, 2 usage, 3 not found)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import respx
from _wire import openai_chat

from agnt5.cli import EXIT_ERROR, EXIT_NOT_FOUND, EXIT_OK, EXIT_USAGE, main
from agnt5.session import Session
from agnt5.store.sqlite import SqliteStore

CHAT_URL = "https://api.openai.com/v1/chat/completions"


def _turns(n: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"role": "system", "content": "You are helpful."}]
    for i in range(n):
        out += [{"role": "user", "content": f"question {i}"}, {"role": "assistant", "content": f"answer {i}"}]
    return out


async def _seed(path: Path) -> None:
    store = SqliteStore(str(path))
    try:
        chat = Session("chat-1", app_name="shop", user_id="u1", metadata={"k": "v"}, store=store)
        await chat.send_messages(_turns(10))
        await chat.send_message(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
                ],
            },
            metadata={"agent": "helper"},
        )
        await chat.send_message({"role": "tool", "tool_call_id": "call_1", "content": "found it"})
        chat.set_state("step", "checkout")
        other = Session("chat-2", app_name="shop", user_id="u2", store=store)
        await other.send_messages(_turns(2))
        blog = Session("blog-1", app_name="blog", store=store, retention={"ttl_days": 1})
        await blog.send_messages(_turns(1))
        frozen = Session("frozen", app_name="shop", store=store, retention={"immutable": True})
        await frozen.send_messages(_turns(3))
    finally:
        await store.close()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "cli.db"
    asyncio.run(_seed(path))
    return path


@pytest.fixture
def url(db: Path) -> str:
    return f"sqlite:///{db}"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --- help and usage ------------------------------------------------------------------------------


def test_help_documents_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == EXIT_OK
    for line in ("0    success", "1    runtime error", "2    usage error", "3    not found"):
        assert line in out
    assert "AGNT5_DATABASE_URL" in out


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["sessions"],
        ["sessions", "frobnicate"],
        ["sessions", "show"],
        ["sessions", "list", "--limit", "0"],
        ["sessions", "list", "--limit", "many"],
        ["sessions", "show", "chat-1", "--limit", "-1"],
        ["sessions", "export", "chat-1", "--format", "xml"],
        ["sessions", "prune", "chat-1"],
        ["sessions", "prune", "chat-1", "--strategy", "sliding_window", "--window-size", "0"],
    ],
)
def test_bad_command_lines_exit_2(capsys: pytest.CaptureFixture[str], url: str, argv: list[str]) -> None:
    code, _, err = run(capsys, *argv, *(["--database-url", url] if len(argv) > 1 else []))
    assert code == EXIT_USAGE
    assert "error:" in err


def test_bad_database_url_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "sessions", "list", "--database-url", "mysql://db/x")
    assert code == EXIT_USAGE
    assert "unsupported database URL" in err


# --- list ----------------------------------------------------------------------------------------


def test_list_filters_and_pages(capsys: pytest.CaptureFixture[str], url: str) -> None:
    code, out, _ = run(capsys, "sessions", "list", "--database-url", url)
    assert code == EXIT_OK
    assert out.splitlines()[0].split() == ["ID", "APP", "USER", "MESSAGES", "UPDATED", "(UTC)"]
    assert {"chat-1", "chat-2", "blog-1", "frozen"} <= {line.split()[0] for line in out.splitlines()[1:]}

    code, out, _ = run(capsys, "sessions", "list", "--app", "shop", "--user", "u1", "--database-url", url)
    rows = out.splitlines()[1:]
    assert code == EXIT_OK and len(rows) == 1
    assert rows[0].split()[:4] == ["chat-1", "shop", "u1", "23"]

    seen: list[str] = []
    cursor: list[str] = []
    while True:
        code, out, _ = run(capsys, "sessions", "list", "--limit", "3", *cursor, "--database-url", url)
        assert code == EXIT_OK
        lines = out.splitlines()
        more = [line for line in lines if line.startswith("more: ")]
        seen += [line.split()[0] for line in lines[1:] if not line.startswith("more: ")]
        if not more:
            break
        cursor = ["--cursor", more[0].rsplit(" ", 1)[1]]
    assert sorted(seen) == ["blog-1", "chat-1", "chat-2", "frozen"]


def test_list_json_and_empty(capsys: pytest.CaptureFixture[str], url: str, tmp_path: Path) -> None:
    code, out, _ = run(capsys, "sessions", "list", "--json", "--app", "blog", "--database-url", url)
    document = json.loads(out)
    assert code == EXIT_OK
    assert [s["id"] for s in document["sessions"]] == ["blog-1"]
    assert document["sessions"][0]["retention"] == {"ttl_days": 1}
    assert '"ttl_days": 1\n' in out  # not 1.0
    assert document["next_cursor"] is None

    empty = tmp_path / "empty.db"
    asyncio.run(_touch_database(empty))
    code, out, _ = run(capsys, "sessions", "list", "--database-url", f"sqlite:///{empty}")
    assert code == EXIT_OK and out == f"no sessions in sqlite:///{empty}\n"


async def _touch_database(path: Path) -> None:
    """An agnt5 database with no sessions (created by a store's first write)."""
    store = SqliteStore(str(path))
    await store.kv_set("ns", "k", 1)
    await store.close()


def test_list_bad_cursor_exits_2(capsys: pytest.CaptureFixture[str], url: str) -> None:
    code, _, err = run(capsys, "sessions", "list", "--cursor", "not-a-cursor", "--database-url", url)
    assert code == EXIT_USAGE
    assert "invalid cursor" in err


# --- show ----------------------------------------------------------------------------------------


def test_show_prints_header_state_and_transcript(capsys: pytest.CaptureFixture[str], url: str) -> None:
    code, out, _ = run(capsys, "sessions", "show", "chat-1", "--database-url", url)
    assert code == EXIT_OK
    assert out.startswith("Session chat-1\n")
    assert "app: shop   user: u1" in out
    assert "active messages: 23" in out
    assert 'state (session): {"step": "checkout"}' in out
    assert "  [1] system: You are helpful." in out
    assert "  [22] assistant (helper): → lookup({})" in out
    assert "  [23] tool [call_1]: found it" in out

    code, out, _ = run(capsys, "sessions", "show", "blog-1", "--database-url", url)
    assert '  retention: {"ttl_days": 1}\n' in out  # stored as 1.0: shown as given

    code, out, _ = run(capsys, "sessions", "show", "chat-1", "--limit", "2", "--database-url", url)
    lines = [line for line in out.splitlines() if line.startswith("  [")]
    assert code == EXIT_OK
    assert [line.split("]")[0] for line in lines] == ["  [22", "  [23"]


def test_show_include_pruned_after_a_cli_prune(capsys: pytest.CaptureFixture[str], url: str) -> None:
    code, out, _ = run(
        capsys, "sessions", "prune", "chat-2", "--strategy", "keep_last_2", "--database-url", url
    )
    assert code == EXIT_OK
    assert "removed 2 messages: 5 → 3 active" in out
    code, out, _ = run(capsys, "sessions", "show", "chat-2", "--database-url", url)
    assert "(pruned by" not in out
    code, out, _ = run(capsys, "sessions", "show", "chat-2", "--include-pruned", "--database-url", url)
    assert code == EXIT_OK
    assert out.count("(pruned by prune_") == 2


def test_show_missing_session_exits_3(capsys: pytest.CaptureFixture[str], url: str) -> None:
    code, out, err = run(capsys, "sessions", "show", "nope", "--database-url", url)
    assert code == EXIT_NOT_FOUND
    assert out == ""
    assert err.strip() == f"agnt5 sessions show: error: no session with id 'nope' in {url}"


# --- export --------------------------------------------------------------------------------------


def test_export_jsonl_json_and_file(capsys: pytest.CaptureFixture[str], url: str, tmp_path: Path) -> None:
    code, out, _ = run(capsys, "sessions", "export", "chat-1", "--database-url", url)
    records = [json.loads(line) for line in out.splitlines()]
    assert code == EXIT_OK
    assert len(records) == 23
    assert records[0]["role"] == "system" and records[-1]["tool_call_id"] == "call_1"

    code, out, _ = run(capsys, "sessions", "export", "chat-1", "--format", "json", "--database-url", url)
    document = json.loads(out)
    assert document["session"]["id"] == "chat-1" and len(document["messages"]) == 23

    target = tmp_path / "out.jsonl"
    code, out, _ = run(capsys, "sessions", "export", "chat-1", "-o", str(target), "--database-url", url)
    assert code == EXIT_OK
    assert out.strip() == f"wrote 23 messages of chat-1 to {target}"
    assert len(target.read_text().splitlines()) == 23


def test_export_pruned_flags(capsys: pytest.CaptureFixture[str], url: str) -> None:
    run(capsys, "sessions", "prune", "chat-2", "--strategy", "keep_last_2", "--database-url", url)
    _, out, _ = run(capsys, "sessions", "export", "chat-2", "--database-url", url)
    assert sum(1 for line in out.splitlines() if json.loads(line).get("pruned")) == 2
    _, out, _ = run(capsys, "sessions", "export", "chat-2", "--no-pruned", "--database-url", url)
    assert len(out.splitlines()) == 3


def test_export_errors(capsys: pytest.CaptureFixture[str], url: str, tmp_path: Path) -> None:
    code, _, err = run(capsys, "sessions", "export", "nope", "--database-url", url)
    assert code == EXIT_NOT_FOUND and "no session with id 'nope'" in err
    unwritable = tmp_path / "missing-dir" / "out.jsonl"
    code, _, err = run(capsys, "sessions", "export", "chat-1", "-o", str(unwritable), "--database-url", url)
    assert code == EXIT_ERROR
    assert "No such file or directory" in err


# --- prune ---------------------------------------------------------------------------------------


def test_prune_sliding_window(capsys: pytest.CaptureFixture[str], url: str) -> None:
    code, out, _ = run(
        capsys, "sessions", "prune", "chat-1", "--strategy", "sliding_window", "--window-size", "4",
        "--database-url", url,
    )  # fmt: skip
    assert code == EXIT_OK
    assert out.startswith('chat-1: pruned with sliding_window {"window_size": 4}')
    assert "removed 18 messages: 23 → 5 active" in out
    code, out, _ = run(
        capsys, "sessions", "prune", "chat-1", "--strategy", "sliding_window", "--window-size", "4",
        "--database-url", url,
    )  # fmt: skip
    assert code == EXIT_OK
    assert out.startswith("chat-1: unchanged (")


def test_prune_summarize_old_calls_the_model(
    capsys: pytest.CaptureFixture[str], url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(CHAT_URL).mock(return_value=openai_chat("They asked ten questions."))
        code, out, err = run(
            capsys, "sessions", "prune", "chat-2", "--strategy", "summarize_old", "--threshold", "2",
            "--keep-recent", "2", "--model", "gpt-4o-mini", "--database-url", url,
        )  # fmt: skip
    assert code == EXIT_OK, err
    assert route.call_count == 1
    assert "summary message: msg_" in out
    assert "model gpt-4o-mini: 50 prompt + 10 completion tokens" in out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--strategy", "keep_everything"], "unknown prune strategy 'keep_everything'; accepted:"),
        (["--strategy", "sliding_window", "--threshold", "3"], "sliding_window does not take threshold"),
        (["--strategy", "keep_last_5", "--window-size", "3"], "keep_last_5 takes no parameters"),
        (["--strategy", "summarize_old", "--threshold", "2", "--keep-recent", "5"], "must not exceed"),
    ],
)
def test_prune_bad_strategy_exits_2_even_for_a_missing_session(
    capsys: pytest.CaptureFixture[str], url: str, extra: list[str], message: str
) -> None:
    for session_id in ("chat-1", "nope"):
        code, _, err = run(capsys, "sessions", "prune", session_id, *extra, "--database-url", url)
        assert code == EXIT_USAGE
        assert message in err


def test_prune_errors(capsys: pytest.CaptureFixture[str], url: str) -> None:
    code, _, err = run(
        capsys, "sessions", "prune", "nope", "--strategy", "keep_last_2", "--database-url", url
    )
    assert code == EXIT_NOT_FOUND
    code, _, err = run(
        capsys, "sessions", "prune", "chat-1", "--strategy", "sliding_window", "--max-tokens", "3",
        "--database-url", url,
    )  # fmt: skip
    assert code == EXIT_USAGE
    assert "raise max_tokens" in err
    code, _, err = run(
        capsys, "sessions", "prune", "frozen", "--strategy", "keep_last_2", "--database-url", url
    )
    assert code == EXIT_ERROR
    assert "immutable" in err
    # An LLM strategy with the network disabled (conftest sets AGNT5_DISABLE_NETWORK=1): runtime error.
    code, _, err = run(
        capsys, "sessions", "prune", "chat-1", "--strategy", "summarize_old", "--threshold", "2",
        "--database-url", url,
    )  # fmt: skip
    assert code == EXIT_ERROR
    assert "network access is disabled" in err
    code, out, _ = run(capsys, "sessions", "show", "chat-1", "--database-url", url)
    assert "active messages: 23" in out  # nothing changed


# --- purge-expired -------------------------------------------------------------------------------


def test_purge_expired(capsys: pytest.CaptureFixture[str], url: str, db: Path) -> None:
    code, out, _ = run(capsys, "sessions", "purge-expired", "--database-url", url)
    assert code == EXIT_OK
    assert out.strip() == f"purged 0 expired session(s) from {url}"
    with sqlite3.connect(db) as conn:  # blog-1 (ttl_days=1) as if its day had passed
        conn.execute("UPDATE sessions SET expires_at = 1.0 WHERE id = 'blog-1'")
    code, out, _ = run(capsys, "sessions", "purge-expired", "--database-url", url)
    assert code == EXIT_OK
    assert out.splitlines() == ["blog-1", f"purged 1 expired session(s) from {url}"]
    assert run(capsys, "sessions", "show", "blog-1", "--database-url", url)[0] == EXIT_NOT_FOUND


# --- database selection --------------------------------------------------------------------------


def test_database_url_from_environment_and_either_position(
    capsys: pytest.CaptureFixture[str], url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGNT5_DATABASE_URL", url)
    assert run(capsys, "sessions", "show", "chat-1")[0] == EXIT_OK
    monkeypatch.setenv("AGNT5_DATABASE_URL", "sqlite:///elsewhere.db")
    assert run(capsys, "sessions", "show", "chat-1")[0] == EXIT_NOT_FOUND
    assert run(capsys, "--database-url", url, "sessions", "show", "chat-1")[0] == EXIT_OK
    assert run(capsys, "sessions", "--database-url", url, "show", "chat-1")[0] == EXIT_OK


def test_default_database_is_the_working_directorys(capsys: pytest.CaptureFixture[str], db: Path) -> None:
    local = Path(".agnt5")
    local.mkdir()
    (local / "agnt5.db").write_bytes(db.read_bytes())
    code, out, _ = run(capsys, "sessions", "list", "--app", "blog")
    assert code == EXIT_OK and "blog-1" in out


# --- a missing or read-only database ------------------------------------------------------------

SESSION_COMMANDS = [
    ["sessions", "list"],
    ["sessions", "show", "chat-1"],
    ["sessions", "export", "chat-1"],
    ["sessions", "prune", "chat-1", "--strategy", "keep_last_2"],
    ["sessions", "purge-expired"],
]


@pytest.mark.parametrize("argv", SESSION_COMMANDS, ids=lambda argv: argv[1])
def test_a_mistyped_sqlite_path_creates_nothing_and_exits_3(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str]
) -> None:
    typo = tmp_path / "typo" / "dir" / "agnt5.db"
    code, out, err = run(capsys, *argv, "--database-url", f"sqlite:///{typo}")
    assert code == EXIT_NOT_FOUND
    assert out == ""
    assert f"no database at {typo}" in err and "nothing was created" in err and "--database-url" in err
    assert not (tmp_path / "typo").exists()
    # the default database (none in this working directory) is not created either
    code, _, err = run(capsys, *argv)
    assert code == EXIT_NOT_FOUND and "no database at .agnt5/agnt5.db" in err
    assert "AGNT5_DATABASE_URL" in err
    assert list(Path.cwd().iterdir()) == []


@pytest.fixture
def read_only_db(db: Path, tmp_path: Path) -> Iterator[Path]:
    """The seeded database on a read-only filesystem: a read-only bind mount as root (who ignores
    permissions), a read-only file in a read-only directory otherwise. Writes really fail."""
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(db, src / "cli.db")
    with sqlite3.connect(src / "cli.db") as conn:  # blog-1 has expired: purge-expired must write
        conn.execute("UPDATE sessions SET expires_at = 1.0 WHERE id = 'blog-1'")
    conn.close()
    if os.geteuid() != 0:
        os.chmod(src / "cli.db", 0o444)
        os.chmod(src, 0o555)
        yield src / "cli.db"
        os.chmod(src, 0o755)
        return
    ro = tmp_path / "ro"
    ro.mkdir()
    mount = shutil.which("mount")
    if mount is None:
        pytest.skip("running as root without mount(8): cannot make a read-only filesystem")
    if subprocess.run([mount, "--bind", str(src), str(ro)], capture_output=True).returncode != 0:
        pytest.skip("running as root and cannot bind-mount here: cannot make a read-only filesystem")
    try:
        if subprocess.run([mount, "-o", "remount,ro,bind", str(ro)], capture_output=True).returncode:
            pytest.skip("running as root and cannot remount read-only here")
        yield ro / "cli.db"
    finally:
        subprocess.run(["umount", str(ro)], check=False)


def test_a_database_on_a_read_only_filesystem_is_listable_and_writes_say_read_only(
    capsys: pytest.CaptureFixture[str], read_only_db: Path, tmp_path: Path
) -> None:
    with pytest.raises(OSError):  # really read-only, whoever runs the test
        (read_only_db.parent / "probe").write_text("x")
    url = f"sqlite:///{read_only_db}"
    before = sorted(p.name for p in read_only_db.parent.iterdir())
    code, out, err = run(capsys, "sessions", "list", "--database-url", url)
    assert code == EXIT_OK, err
    assert {"chat-1", "chat-2", "blog-1", "frozen"} <= {line.split()[0] for line in out.splitlines()[1:]}
    code, out, err = run(capsys, "sessions", "show", "chat-1", "--database-url", url)
    assert code == EXIT_OK, err
    assert 'state (session): {"step": "checkout"}' in out and "  [23] tool [call_1]: found it" in out
    code, out, err = run(capsys, "sessions", "pending", "--database-url", url)
    assert code == EXIT_OK, err
    assert out.startswith("no session waits for approval")
    target = tmp_path / "out.jsonl"
    code, out, err = run(capsys, "sessions", "export", "chat-1", "-o", str(target), "--database-url", url)
    assert code == EXIT_OK, err
    assert len(target.read_text().splitlines()) == 23
    for argv in (["prune", "chat-1", "--strategy", "keep_last_2"], ["purge-expired"]):
        code, out, err = run(capsys, "sessions", *argv, "--database-url", url)
        assert code == EXIT_ERROR, (argv, out, err)
        assert "read-only" in err
    code, out, _ = run(capsys, "sessions", "show", "chat-1", "--database-url", url)
    assert "active messages: 23" in out  # nothing changed
    assert run(capsys, "sessions", "show", "blog-1", "--database-url", url)[0] == EXIT_OK
    assert sorted(p.name for p in read_only_db.parent.iterdir()) == before


# --- demo arguments (the demo itself: tests/test_demo.py) ----------------------------------------


def test_demo_usage_errors(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, err = run(capsys, "demo", "--record")
    assert code == EXIT_USAGE
    assert "--record needs --live" in err
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    code, _, err = run(capsys, "demo", "--live")
    assert code == EXIT_USAGE
    assert "needs OPENAI_API_KEY" in err
    monkeypatch.setenv("AGNT5_CASSETTE", "notebook.json")
    code, _, err = run(capsys, "demo")
    assert code == EXIT_USAGE
    assert "AGNT5_CASSETTE is set (notebook.json)" in err and "unset AGNT5_CASSETTE" in err


# --- the installed console script ----------------------------------------------------------------


def test_console_script_exit_codes(url: str) -> None:
    script = Path(sys.executable).with_name("agnt5")
    env = {**os.environ, "AGNT5_DATABASE_URL": url}
    found = subprocess.run(
        [str(script), "sessions", "show", "chat-1"], env=env, capture_output=True, text=True
    )
    assert found.returncode == EXIT_OK, found.stderr
    assert found.stdout.startswith("Session chat-1")
    missing = subprocess.run(
        [str(script), "sessions", "show", "nope"], env=env, capture_output=True, text=True
    )
    assert missing.returncode == EXIT_NOT_FOUND
    assert "no session with id 'nope'" in missing.stderr
    module = subprocess.run(
        [sys.executable, "-m", "agnt5", "sessions", "list", "--limit", "0"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert module.returncode == EXIT_USAGE
