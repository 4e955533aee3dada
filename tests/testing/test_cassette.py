"""Cassettes: record against a local fake provider, replay offline, strict matching, redaction."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from agnt5 import Agent, LanguageModel
from agnt5.errors import CassetteError, CassetteMismatchError
from agnt5.testing import Cassette, cassette

SECRET = "sk-live-SECRET-do-not-write-me"


class FakeOpenAI(BaseHTTPRequestHandler):
    """A local stand-in for api.openai.com: answers chat completions with the request's last message."""

    seen: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        FakeOpenAI.seen.append({"path": self.path, "auth": self.headers.get("authorization"), "body": body})
        last = body["messages"][-1]["content"]
        reply = {
            "id": "chatcmpl-local",
            "object": "chat.completion",
            "created": 1727000000,
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": f"echo: {last}"},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12},
        }
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("set-cookie", "session=abc")
        self.send_header("openai-organization", "org-private")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture
def fake_openai() -> Iterator[str]:
    FakeOpenAI.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAI)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def local_model(base: str) -> LanguageModel:
    return LanguageModel("openai/gpt-4o-mini", api_base=base, api_key=SECRET, num_retries=0)


async def test_record_then_replay_offline(fake_openai: str, tmp_path: Path) -> None:
    path = tmp_path / "cassettes" / "echo.json"
    async with cassette(path, mode="record"):
        recorded = await Agent("a", model=local_model(fake_openai)).run("hello")
    assert recorded.output == "echo: hello"
    assert FakeOpenAI.seen[0]["auth"] == f"Bearer {SECRET}"  # the real request carried the key

    text = path.read_text()
    document = json.loads(text)
    assert SECRET not in text and "authorization" not in text.lower()
    assert "set-cookie" not in text and "org-private" not in text
    interaction = document["interactions"][0]
    assert interaction["request"]["body"]["messages"] == [{"role": "user", "content": "hello"}]
    assert interaction["response"]["body"]["choices"][0]["message"]["content"] == "echo: hello"

    calls_before = len(FakeOpenAI.seen)
    with cassette(path):  # replay: nothing reaches the server
        replayed = await Agent("a", model=local_model(fake_openai)).run("hello")
    assert replayed.output == "echo: hello" and len(FakeOpenAI.seen) == calls_before


async def test_unmatched_request_shows_the_request_and_the_nearest_recording(
    fake_openai: str, tmp_path: Path
) -> None:
    path = tmp_path / "c.json"
    async with cassette(path, mode="record"):
        await local_model(fake_openai).generate(
            [{"role": "user", "content": "what is the capital of France?"}]
        )
    with pytest.raises(CassetteMismatchError) as caught:
        with cassette(path):
            await local_model(fake_openai).generate(
                [{"role": "user", "content": "what is the capital of Spain?"}]
            )
    message = str(caught.value)
    assert "no recorded response" in message and "Spain" in message
    assert "nearest recorded request" in message and "-" in message and "France" in message


async def test_every_recording_used_once(fake_openai: str, tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    messages = [{"role": "user", "content": "once"}]
    async with cassette(path, mode="record"):
        await local_model(fake_openai).generate(messages)
    with pytest.raises(CassetteMismatchError, match="already used"):
        with cassette(path):
            await local_model(fake_openai).generate(messages)
            await local_model(fake_openai).generate(messages)


async def test_match_on_order_ignores_bodies(fake_openai: str, tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    async with cassette(path, mode="record"):
        await local_model(fake_openai).generate([{"role": "user", "content": "first"}])
    with Cassette(path, match_on="order") as active:
        response = await local_model(fake_openai).generate([{"role": "user", "content": "different"}])
    assert response.text == "echo: first" and active.unused == []


def test_missing_cassette_and_bad_arguments_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(CassetteError, match="record it once"):
        Cassette(tmp_path / "nope.json").start()
    with pytest.raises(CassetteError, match="mode"):
        Cassette(tmp_path / "x.json", mode="rewind")  # type: ignore[arg-type]
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(CassetteError, match="not a valid agnt5 cassette"):
        Cassette(bad).start()


def test_once_mode_records_only_when_the_file_is_missing(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    assert Cassette(path, mode="once").mode == "record"
    path.write_text(json.dumps({"version": 1, "interactions": []}))
    assert Cassette(path, mode="once").mode == "replay"


def test_gemini_api_key_in_the_url_is_redacted() -> None:
    from agnt5.testing.cassette import redact_url

    url = "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.0-flash:generateContent?key=AIzaSECRET"
    assert redact_url(url).endswith("?key=REDACTED") and "AIzaSECRET" not in redact_url(url)


async def test_decorator_on_an_async_function(fake_openai: str, tmp_path: Path) -> None:
    path = tmp_path / "d.json"

    @cassette(path, mode="record")
    async def record() -> str:
        return (await local_model(fake_openai).generate([{"role": "user", "content": "deco"}])).text

    @cassette(path)
    async def replay() -> str:
        return (await local_model(fake_openai).generate([{"role": "user", "content": "deco"}])).text

    assert await record() == "echo: deco"
    assert await replay() == "echo: deco"


def test_environment_variable_reaches_a_separate_process(fake_openai: str, tmp_path: Path) -> None:
    """A notebook kernel is another process: AGNT5_CASSETTE makes its unchanged code replay."""
    path = tmp_path / "kernel.json"
    script = textwrap.dedent(
        f"""
        import asyncio
        from agnt5 import LanguageModel
        lm = LanguageModel("openai/gpt-4o-mini", api_base={fake_openai!r}, api_key="k", num_retries=0)
        print(asyncio.run(lm.generate([{{"role": "user", "content": "from the kernel"}}])).text)
        """
    )
    env = {
        "AGNT5_CASSETTE": str(path),
        "AGNT5_DISABLE_NETWORK": "1",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "PATH": "/usr/bin:/bin",
    }
    recorded = subprocess.run(
        [sys.executable, "-c", script],
        env={**env, "AGNT5_RECORD": "1", "AGNT5_DISABLE_NETWORK": "0"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert recorded.returncode == 0, recorded.stderr[-2000:]
    served = len(FakeOpenAI.seen)
    replayed = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert replayed.returncode == 0, replayed.stderr[-2000:]
    assert replayed.stdout.strip() == "echo: from the kernel" and len(FakeOpenAI.seen) == served


def test_pytest_fixture_replays_a_users_test(pytester: pytest.Pytester, fake_openai: str) -> None:
    pytester.makepyfile(
        test_user=f"""
        import asyncio
        from agnt5 import LanguageModel

        def test_flow(agnt5_cassette):
            lm = LanguageModel("openai/gpt-4o-mini", api_base={fake_openai!r}, api_key="k", num_retries=0)
            text = asyncio.run(lm.generate([{{"role": "user", "content": "fixture"}}])).text
            assert text == "echo: fixture"
        """
    )
    recorded = pytester.runpytest_subprocess("--agnt5-record", "-p", "no:cacheprovider")
    recorded.assert_outcomes(passed=1)
    assert (pytester.path / "cassettes" / "test_user" / "test_flow.json").exists()
    served = len(FakeOpenAI.seen)
    replayed = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    replayed.assert_outcomes(passed=1)
    assert len(FakeOpenAI.seen) == served


async def test_authoring_a_cassette_from_a_scripted_upstream(tmp_path: Path) -> None:
    """Demos and docs ship cassettes authored against a scripted provider in its wire format."""
    import httpx

    def upstream(request: httpx.Request) -> httpx.Response:
        asked = json.loads(request.content)["messages"][-1]["content"]
        return httpx.Response(
            200,
            json={
                "id": "chatcmpl-authored",
                "object": "chat.completion",
                "created": 1727000000,
                "model": "gpt-4o-mini",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": f"scripted: {asked}"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
            },
        )

    path = tmp_path / "authored.json"
    async with cassette(path, mode="record", upstream=upstream):
        assert (await Agent("a").run("ping")).output == "scripted: ping"
    recorded = json.loads(path.read_text())["interactions"][0]
    assert recorded["request"]["url"] == "https://api.openai.com/v1/chat/completions"
    async with cassette(path):
        assert (await Agent("a").run("ping")).output == "scripted: ping"


async def test_recording_restores_the_network_switch_to_following_the_environment(
    fake_openai: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agnt5 import _litellm

    assert _litellm.network_override() is None
    async with cassette(tmp_path / "r.json", mode="record"):
        assert _litellm.network_disabled() is False  # recording reaches the provider
        await local_model(fake_openai).generate([{"role": "user", "content": "x"}])
    assert _litellm.network_override() is None
    monkeypatch.setenv("AGNT5_DISABLE_NETWORK", "0")
    assert _litellm.network_disabled() is False
    monkeypatch.setenv("AGNT5_DISABLE_NETWORK", "1")
    assert _litellm.network_disabled() is True
