"""Provider failures map to agnt5.errors; retries, the network switch and the lazy import."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import respx
from _mocks import (
    ANTHROPIC_MODEL,
    ANTHROPIC_URL,
    FIXTURES,
    GEMINI_HOST,
    GEMINI_MODEL,
    OPENAI_MODEL,
    OPENAI_URL,
    fixture_json,
    json_response,
    sleeps,
    sse_response,
)

from agnt5 import _litellm, errors
from agnt5.models import LanguageModel, ResponseComplete

__all__ = ["sleeps"]  # the fixture, re-exported so pytest finds it here

USER = [{"role": "user", "content": "hi"}]
GROQ_URL = "https://api.groq.com/openai/v1/chat/completions"
GROQ_MODEL = "groq/llama-3.3-70b-versatile"
ROOT = Path(__file__).resolve().parent.parent


@respx.mock
async def test_401_is_authentication_error() -> None:
    route = respx.post(OPENAI_URL).mock(return_value=json_response("openai/error_401.json", 401))
    with pytest.raises(errors.AuthenticationError) as info:
        await LanguageModel(OPENAI_MODEL).generate(USER)
    assert route.call_count == 1  # never retried
    err = info.value
    assert (err.status_code, err.provider, err.model) == (401, "openai", OPENAI_MODEL)
    assert "OPENAI_API_KEY" in str(err) and "Incorrect API key" in str(err)
    assert isinstance(err, errors.Agnt5Error)


@respx.mock
async def test_anthropic_401_names_the_anthropic_key() -> None:
    respx.post(ANTHROPIC_URL).mock(return_value=json_response("anthropic/error_401.json", 401))
    with pytest.raises(errors.AuthenticationError, match="ANTHROPIC_API_KEY") as info:
        await LanguageModel(ANTHROPIC_MODEL).generate(USER)
    assert info.value.provider == "anthropic"


@respx.mock
async def test_429_then_200_succeeds_after_one_retry(sleeps: list[float]) -> None:
    route = respx.post(OPENAI_URL).mock(
        side_effect=[
            json_response("openai/error_429.json", 429, headers={"retry-after": "3"}),
            json_response("openai/chat_text.json"),
        ]
    )
    response = await LanguageModel(OPENAI_MODEL, num_retries=2).generate(USER)
    assert response.text == "The capital of France is Paris."
    assert route.call_count == 2
    assert sleeps == [3.0]  # the provider's Retry-After is honoured


@respx.mock
async def test_anthropic_overloaded_then_ok(sleeps: list[float]) -> None:
    route = respx.post(ANTHROPIC_URL).mock(
        side_effect=[
            json_response("anthropic/error_529.json", 529),
            json_response("anthropic/messages_text.json"),
        ]
    )
    response = await LanguageModel(ANTHROPIC_MODEL).generate(USER)
    assert response.text == "Bonjour! How can I help?"
    assert route.call_count == 2 and len(sleeps) == 1


@respx.mock
async def test_429_exhausted_is_rate_limit_error(sleeps: list[float]) -> None:
    route = respx.post(OPENAI_URL).mock(return_value=json_response("openai/error_429.json", 429))
    with pytest.raises(errors.RateLimitError) as info:
        await LanguageModel(OPENAI_MODEL, num_retries=2).generate(USER)
    assert route.call_count == 3
    assert info.value.status_code == 429
    assert len(sleeps) == 2 and sleeps[1] > sleeps[0] > 0  # exponential backoff


@respx.mock
async def test_500_is_provider_error(sleeps: list[float]) -> None:
    route = respx.post(OPENAI_URL).mock(return_value=json_response("openai/error_500.json", 500))
    with pytest.raises(errors.ProviderError) as info:
        await LanguageModel(OPENAI_MODEL, num_retries=1).generate(USER)
    assert route.call_count == 2
    assert info.value.status_code == 500
    assert "retry" in str(info.value)


@respx.mock
async def test_no_retries_when_num_retries_is_zero() -> None:
    route = respx.post(OPENAI_URL).mock(return_value=json_response("openai/error_500.json", 500))
    with pytest.raises(errors.ProviderError):
        await LanguageModel(OPENAI_MODEL, num_retries=0).generate(USER)
    assert route.call_count == 1


@pytest.mark.parametrize(("model", "url"), [(OPENAI_MODEL, OPENAI_URL), (ANTHROPIC_MODEL, ANTHROPIC_URL)])
@respx.mock
async def test_timeout_is_model_timeout_error(model: str, url: str) -> None:
    respx.post(url).mock(side_effect=httpx.ReadTimeout("read timed out"))
    with pytest.raises(errors.ModelTimeoutError) as info:
        await LanguageModel(model, num_retries=0).generate(USER)
    assert isinstance(info.value, TimeoutError)
    assert "timed out" in str(info.value)


@respx.mock
async def test_context_window_exceeded() -> None:
    respx.post(OPENAI_URL).mock(return_value=json_response("openai/error_context_length.json", 400))
    with pytest.raises(errors.ContextWindowExceededError, match="context window"):
        await LanguageModel(OPENAI_MODEL).generate(USER)


@respx.mock
async def test_malformed_body_is_provider_error() -> None:
    respx.post(OPENAI_URL).mock(return_value=httpx.Response(200, text='{"id": "chatcmpl-1", "choi'))
    with pytest.raises(errors.ProviderError):
        await LanguageModel(OPENAI_MODEL, num_retries=0).generate(USER)


@pytest.mark.parametrize(
    ("model", "url", "fixture"),
    [
        (OPENAI_MODEL, OPENAI_URL, "openai/stream_truncated.txt"),
        (ANTHROPIC_MODEL, ANTHROPIC_URL, "anthropic/stream_truncated.txt"),
    ],
)
@respx.mock
async def test_truncated_stream_is_provider_error(model: str, url: str, fixture: str) -> None:
    respx.post(url).mock(return_value=sse_response(fixture))
    seen = []
    with pytest.raises(errors.ProviderError):
        async for event in LanguageModel(model, num_retries=0).stream(USER):
            seen.append(event)
    assert seen and not any(isinstance(e, ResponseComplete) for e in seen)


# --- the network switch ---------------------------------------------------------------------------


async def test_unmocked_call_with_network_disabled_fails_loudly() -> None:
    with pytest.raises(errors.NetworkDisabledError) as info:
        await LanguageModel(OPENAI_MODEL).generate(USER)
    assert OPENAI_URL in str(info.value)
    assert info.value.model == OPENAI_MODEL


async def test_respx_pass_through_hits_the_network_block() -> None:
    with respx.mock:
        respx.post(ANTHROPIC_URL).pass_through()
        with pytest.raises(errors.NetworkDisabledError, match=r"api\.anthropic\.com"):
            await LanguageModel(ANTHROPIC_MODEL).generate(USER)


async def test_disable_network_function_overrides_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGNT5_DISABLE_NETWORK")
    assert not _litellm.network_disabled()
    _litellm.disable_network(True)
    try:
        assert _litellm.network_disabled()
        with pytest.raises(errors.NetworkDisabledError):
            await LanguageModel(OPENAI_MODEL).generate(USER)
    finally:
        _litellm.disable_network(None)
    assert not _litellm.network_disabled()


def test_network_block_also_guards_plain_httpx() -> None:
    _litellm.install_network_guard()
    with pytest.raises(errors.NetworkDisabledError, match=r"https://example\.invalid/x"):
        httpx.get("https://example.invalid/x")


def test_this_machine_is_not_the_network() -> None:
    """Loopback servers (an MCP server, `agnt5 inspect`) stay reachable with the network off."""
    import socket
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class Hello(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"local")

        def log_message(self, *args: object) -> None:
            return None

    _litellm.install_network_guard()
    assert _litellm.network_disabled()
    server = HTTPServer(("127.0.0.1", 0), Hello)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        for host in ("127.0.0.1", "localhost"):
            assert httpx.get(f"http://{host}:{port}/").text == "local"
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(errors.NetworkDisabledError):
        httpx.get(f"http://{socket.gethostname()}.invalid:{port}/")


# --- lazy import ----------------------------------------------------------------------------------


def test_import_agnt5_does_not_import_litellm() -> None:
    code = textwrap.dedent(
        """
        import sys
        import agnt5, agnt5.models, agnt5.tools, agnt5.providers, agnt5._litellm
        agnt5.LanguageModel, agnt5.tool, agnt5.Tool, agnt5.RunContext
        assert "litellm" not in sys.modules, "litellm was imported eagerly"
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=60)


async def test_missing_api_key_is_an_authentication_error_not_retried(
    monkeypatch: pytest.MonkeyPatch, sleeps: list[float]
) -> None:
    from agnt5.errors import AuthenticationError
    from agnt5.models import LanguageModel

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(AuthenticationError, match="OPENAI_API_KEY"):
        await LanguageModel("gpt-4o-mini").generate([{"role": "user", "content": "hi"}])
    assert sleeps == []


# --- missing API keys -----------------------------------------------------------------------------

KEY_VARS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY")
PROVIDER_NOISE = ("litellm", "exception -", "internalservererror", "traceback", "retry")
MISSING_KEY_CASES = [
    (OPENAI_MODEL, "api.openai.com", "OPENAI_API_KEY"),
    (ANTHROPIC_MODEL, "api.anthropic.com", "ANTHROPIC_API_KEY"),
    (GEMINI_MODEL, GEMINI_HOST, "GEMINI_API_KEY"),
]


@pytest.fixture
def no_api_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in KEY_VARS:
        monkeypatch.delenv(var, raising=False)


def assert_says_set_the_key(message: str, var: str) -> None:
    """The message names the variable to set and carries none of the provider library's noise."""
    assert var in message and "api_key=" in message, message
    lowered = message.lower()
    assert not [noise for noise in PROVIDER_NOISE if noise in lowered], message


@pytest.mark.parametrize(("model", "host", "var"), MISSING_KEY_CASES)
async def test_missing_key_names_the_variable_to_set(
    no_api_keys: None, sleeps: list[float], model: str, host: str, var: str
) -> None:
    with respx.mock:
        route = respx.route(host=host).mock(return_value=json_response("openai/error_500.json", 500))
        with pytest.raises(errors.AuthenticationError) as info:
            await LanguageModel(model, num_retries=2).generate(USER)
    assert route.call_count == 0 and sleeps == []  # nothing sent, never retried
    assert info.value.provider == var.split("_")[0].lower()
    assert_says_set_the_key(str(info.value), var)


async def test_missing_key_for_a_provider_without_a_profile(
    monkeypatch: pytest.MonkeyPatch, sleeps: list[float]
) -> None:
    """litellm sends the request keyless; the provider's 401 then says which variable is unset."""
    monkeypatch.delenv("GROQ_API_KEY", raising=False)
    body = {
        "error": {"message": "Invalid API Key", "type": "invalid_request_error", "code": "invalid_api_key"}
    }
    with respx.mock:
        route = respx.post(GROQ_URL).mock(return_value=httpx.Response(401, json=body))
        with pytest.raises(errors.AuthenticationError) as info:
            await LanguageModel(GROQ_MODEL, num_retries=2).generate(USER)
    assert route.call_count == 1 and sleeps == []
    assert "GROQ_API_KEY is not set" in str(info.value)
    assert_says_set_the_key(str(info.value), "GROQ_API_KEY")


async def test_agent_run_without_a_key_names_the_variable(no_api_keys: None, sleeps: list[float]) -> None:
    from agnt5 import Agent

    agent = Agent("helper", model=LanguageModel(ANTHROPIC_MODEL), instructions="Be brief.")
    with respx.mock:
        route = respx.post(ANTHROPIC_URL).mock(return_value=json_response("anthropic/messages_text.json"))
        with pytest.raises(errors.AuthenticationError) as info:
            await agent.run("hello")
    assert route.call_count == 0 and sleeps == []
    assert_says_set_the_key(str(info.value), "ANTHROPIC_API_KEY")


async def test_llm_prune_without_a_key_does_not_advise_a_retry(
    no_api_keys: None, sleeps: list[float]
) -> None:
    from _convo import make_session

    chat = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"message {i}"} for i in range(30)]
    session = await make_session(chat)
    with respx.mock:
        route = respx.post(OPENAI_URL).mock(return_value=json_response("openai/chat_text.json"))
        with pytest.raises(errors.PruneModelError) as info:
            await session.prune(strategy="summarize_old", threshold=10, model=OPENAI_MODEL)
    assert route.call_count == 0 and sleeps == []
    assert isinstance(info.value.__cause__, errors.AuthenticationError)
    assert "the history is unchanged" in str(info.value)
    assert_says_set_the_key(str(info.value), "OPENAI_API_KEY")
    assert len(await session.history()) == 30


async def test_llm_prune_after_a_transient_failure_advises_a_retry(sleeps: list[float]) -> None:
    from _convo import make_session

    chat = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"message {i}"} for i in range(30)]
    session = await make_session(chat)
    with respx.mock:
        route = respx.post(OPENAI_URL).mock(return_value=json_response("openai/error_500.json", 500))
        with pytest.raises(errors.PruneModelError, match="retry the prune later") as info:
            await session.prune(strategy="summarize_old", threshold=10, model=LanguageModel(OPENAI_MODEL))
    assert route.call_count == 3 and len(sleeps) == 2  # num_retries=2 by default
    assert isinstance(info.value.__cause__, errors.ProviderError)


@respx.mock
async def test_bad_request_gives_no_retry_advice() -> None:
    respx.post(OPENAI_URL).mock(return_value=json_response("openai/error_context_length.json", 400))
    with pytest.raises(errors.ContextWindowExceededError) as info:
        await LanguageModel(OPENAI_MODEL).generate(USER)
    assert "retry" not in str(info.value).lower() and "litellm" not in str(info.value).lower()


# --- answers litellm cannot parse -------------------------------------------------------------------


def litellm_version() -> str:
    from importlib.metadata import version

    return version("litellm")


async def test_unparseable_groq_answer_is_response_parse_error_sent_once(sleeps: list[float]) -> None:
    """A recorded Groq chat completion (no `service_tier`) that this litellm fails to convert."""
    with respx.mock:
        route = respx.post(GROQ_URL).mock(return_value=json_response("groq/chat_text.json"))
        with pytest.raises(errors.ResponseParseError) as info:
            await LanguageModel(GROQ_MODEL, num_retries=2, api_key="gsk-test").generate(USER)
    assert route.call_count == 1 and sleeps == []  # sent once: never retried (a retry is billed)
    err = info.value
    assert (err.provider, err.model, err.status_code) == ("groq", GROQ_MODEL, 200)
    assert err.litellm_version == litellm_version()
    message = str(err)
    assert f"litellm {litellm_version()}" in message and "service_tier" in message
    assert "groq" in message and GROQ_MODEL in message
    assert "transient" not in message and "retry later" not in message
    assert not isinstance(err, errors.ProviderError)


async def test_local_conversion_failure_of_an_openai_answer(
    monkeypatch: pytest.MonkeyPatch, sleeps: list[float]
) -> None:
    """The HTTP exchange is real (respx); litellm's response converter fails locally."""
    import litellm.llms.openai.openai as openai_handler

    def broken(*args: object, **kwargs: object) -> object:
        raise AttributeError("'Message' object has no attribute 'annotations'")

    monkeypatch.setattr(openai_handler, "convert_to_model_response_object", broken)
    with respx.mock:
        route = respx.post(OPENAI_URL).mock(return_value=json_response("openai/chat_text.json"))
        with pytest.raises(errors.ResponseParseError, match="has no attribute 'annotations'") as info:
            await LanguageModel(OPENAI_MODEL, num_retries=2).generate(USER)
    assert route.call_count == 1 and sleeps == []
    assert info.value.provider == "openai" and info.value.litellm_version == litellm_version()


async def test_local_conversion_failure_mid_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    from litellm.llms.anthropic.chat.handler import ModelResponseIterator

    def broken(self: object, chunk: object) -> object:
        raise KeyError("content_block")

    monkeypatch.setattr(ModelResponseIterator, "chunk_parser", broken)
    with respx.mock:
        route = respx.post(ANTHROPIC_URL).mock(return_value=sse_response("anthropic/stream_tool_use.txt"))
        with pytest.raises(errors.ResponseParseError, match="KeyError"):
            async for _ in LanguageModel(ANTHROPIC_MODEL, num_retries=2).stream(USER):
                pass
    assert route.call_count == 1


@respx.mock
async def test_http_error_bodies_stay_provider_errors_and_are_retried(sleeps: list[float]) -> None:
    """A transport-level failure is not a parse failure: 5xx and broken JSON are still retried."""
    route = respx.post(OPENAI_URL).mock(
        side_effect=[
            httpx.Response(200, text='{"id": "chatcmpl-1", "choi'),
            json_response("openai/error_500.json", 500),
            json_response("openai/chat_text.json"),
        ]
    )
    response = await LanguageModel(OPENAI_MODEL, num_retries=2).generate(USER)
    assert response.text == "The capital of France is Paris." and route.call_count == 3


async def test_gemini_answer_litellm_refuses_to_convert(sleeps: list[float]) -> None:
    """litellm refuses a Gemini 200 without usageMetadata ("Error converting to valid response
    block"); that used to read as a rejected request (HTTP 422) asking to check the model name."""
    body = fixture_json("gemini/generate_text.json")
    del body["usageMetadata"]
    with respx.mock:
        route = respx.post(host=GEMINI_HOST).mock(return_value=httpx.Response(200, json=body))
        with pytest.raises(errors.ResponseParseError, match="usageMetadata not found") as info:
            await LanguageModel(GEMINI_MODEL, num_retries=2).generate(USER)
    assert route.call_count == 1 and sleeps == []
    assert info.value.provider == "gemini" and "check the model name" not in str(info.value).lower()


class _DroppedStream(httpx.AsyncByteStream):
    """An SSE body whose connection drops after the first chunk."""

    def __init__(self, first: bytes) -> None:
        self.first = first

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.first
        raise httpx.RemoteProtocolError("peer closed connection without sending complete message body")


async def test_connection_dropped_mid_stream_is_a_provider_error_not_a_parse_error() -> None:
    first = (FIXTURES / "openai/stream_text.txt").read_text().split("\n\n")[0] + "\n\n"
    dropped = httpx.Response(
        200, stream=_DroppedStream(first.encode()), headers={"content-type": "text/event-stream"}
    )
    with respx.mock:
        respx.post(OPENAI_URL).mock(return_value=dropped)
        with pytest.raises(errors.ModelError) as info:
            async for _ in LanguageModel(OPENAI_MODEL, num_retries=0).stream(USER):
                pass
    assert isinstance(info.value, errors.ProviderError), repr(info.value)
