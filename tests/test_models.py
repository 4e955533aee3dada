"""LanguageModel against mocked provider wire formats (OpenAI, Anthropic, Gemini) via plain respx."""

from __future__ import annotations

import json
from typing import Any

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
    request_json,
    sse_response,
)

from agnt5.messages import PROVIDER_KEYS, to_provider_messages
from agnt5.models import (
    FALLBACK_CONTEXT_WINDOW,
    FALLBACK_MAX_OUTPUT_TOKENS,
    USER_FIRST_PLACEHOLDER,
    LanguageModel,
    ModelResponse,
    ResponseComplete,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from agnt5.providers import ANTHROPIC, GEMINI, OPENAI, profile_for
from agnt5.tokens import count_text_tokens
from agnt5.tools import tool

USER = [{"role": "user", "content": "What's the weather in Paris and Tokyo?"}]


@tool
def get_weather(city: str, unit: str = "celsius") -> str:
    """Current weather for a city.

    Args:
        city: City name.
        unit: "celsius" or "fahrenheit".
    """
    return f"sunny in {city}"


async def collect(lm: LanguageModel, messages: list[dict[str, Any]], **kw: Any) -> list[StreamEvent]:
    return [event async for event in lm.stream(messages, **kw)]


# --- plain respx interception ---------------------------------------------------------------------


@respx.mock
async def test_plain_respx_decorator_intercepts_openai() -> None:
    route = respx.post(OPENAI_URL).mock(return_value=json_response("openai/chat_text.json"))
    response = await LanguageModel(OPENAI_MODEL).generate(USER)
    assert route.call_count == 1
    assert response.text == "The capital of France is Paris."


async def test_plain_respx_context_manager_intercepts_anthropic() -> None:
    with respx.mock:
        route = respx.post(ANTHROPIC_URL).mock(return_value=json_response("anthropic/messages_text.json"))
        response = await LanguageModel(ANTHROPIC_MODEL).generate(USER)
    assert route.call_count == 1
    assert response.text == "Bonjour! How can I help?"


async def test_plain_respx_intercepts_gemini() -> None:
    with respx.mock:
        route = respx.post(host=GEMINI_HOST).mock(return_value=json_response("gemini/generate_text.json"))
        response = await LanguageModel(GEMINI_MODEL).generate(USER)
    assert route.call_count == 1
    assert ":generateContent" in str(route.calls[0].request.url)
    assert response.text == "Paris is the capital of France."


# --- OpenAI ---------------------------------------------------------------------------------------


@respx.mock
async def test_openai_text_response_and_usage() -> None:
    respx.post(OPENAI_URL).mock(return_value=json_response("openai/chat_text.json"))
    response = await LanguageModel().generate(USER)
    assert response.finish_reason == "stop"
    assert response.tool_calls == []
    assert response.model.startswith("gpt-4o-mini")
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (24, 8)
    assert response.usage.total_tokens == 32
    assert response.usage.cost is not None and response.usage.cost > 0
    assert response.message() == {"role": "assistant", "content": "The capital of France is Paris."}


@respx.mock
async def test_openai_parallel_tool_calls() -> None:
    route = respx.post(OPENAI_URL).mock(return_value=json_response("openai/chat_parallel_tool_calls.json"))
    response = await LanguageModel(OPENAI_MODEL).generate(USER, tools=[get_weather], tool_choice="auto")
    assert response.finish_reason == "tool_calls"
    assert response.tool_calls == [
        ToolCall("call_weather_paris", "get_weather", '{"city": "Paris"}'),
        ToolCall("call_weather_tokyo", "get_weather", '{"city": "Tokyo", "unit": "celsius"}'),
    ]
    assert response.message() == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_weather_paris",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            },
            {
                "id": "call_weather_tokyo",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Tokyo", "unit": "celsius"}'},
            },
        ],
    }
    body = request_json(route)
    assert body["tools"] == [get_weather.schema()]
    assert body["tool_choice"] == "auto"


@respx.mock
async def test_history_entries_are_stripped_to_provider_keys() -> None:
    route = respx.post(OPENAI_URL).mock(return_value=json_response("openai/chat_text.json"))
    history = [
        {"role": "system", "content": "Be brief.", "id": "m1", "timestamp": "2025-01-01T00:00:00Z"},
        {"role": "user", "content": "hi", "id": "m2", "metadata": {"k": 1}, "name": None},
        {
            "role": "assistant",
            "content": None,
            "id": "m3",
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
        },
        {"role": "tool", "content": "ok", "tool_call_id": "c1", "id": "m4"},
    ]
    await LanguageModel(OPENAI_MODEL).generate(history)
    sent = request_json(route)["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "tool"]
    assert all(set(m) <= set(PROVIDER_KEYS) for m in sent)
    assert sent[2]["tool_calls"] == history[2]["tool_calls"]
    assert sent[3] == {"role": "tool", "content": "ok", "tool_call_id": "c1"}
    assert to_provider_messages(history)[1] == {"role": "user", "content": "hi"}
    assert to_provider_messages(history)[2] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
    }


@respx.mock
async def test_params_pass_through_to_the_request() -> None:
    route = respx.post(OPENAI_URL).mock(return_value=json_response("openai/chat_text.json"))
    lm = LanguageModel(OPENAI_MODEL, temperature=0.2, max_tokens=50, seed=7)
    await lm.generate(USER, response_format={"type": "json_object"})
    body = request_json(route)
    assert (body["temperature"], body["max_tokens"], body["seed"]) == (0.2, 50, 7)
    assert body["response_format"] == {"type": "json_object"}


@respx.mock
async def test_openai_stream_text_with_usage() -> None:
    route = respx.post(OPENAI_URL).mock(return_value=sse_response("openai/stream_text.txt"))
    events = await collect(LanguageModel(OPENAI_MODEL), USER)
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Hello", ", world", "!"]
    final = events[-1]
    assert isinstance(final, ResponseComplete)
    assert final.response.text == "Hello, world!"
    assert final.response.finish_reason == "stop"
    assert (final.response.usage.prompt_tokens, final.response.usage.completion_tokens) == (9, 4)
    assert request_json(route)["stream_options"] == {"include_usage": True}


@respx.mock
async def test_openai_stream_assembles_parallel_tool_calls() -> None:
    respx.post(OPENAI_URL).mock(return_value=sse_response("openai/stream_tool_calls.txt"))
    events = await collect(LanguageModel(OPENAI_MODEL), USER, tools=[get_weather])
    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    assert {d.index for d in deltas} == {0, 1}
    final = events[-1]
    assert isinstance(final, ResponseComplete)
    assert final.response.tool_calls == [
        ToolCall("call_a", "get_weather", '{"city": "Paris"}'),
        ToolCall("call_b", "get_time", '{"tz": "CET"}'),
    ]
    assert final.response.finish_reason == "tool_calls"
    assert final.response.usage.total_tokens == 110


# --- Anthropic ------------------------------------------------------------------------------------


@respx.mock
async def test_anthropic_tool_use_blocks() -> None:
    route = respx.post(ANTHROPIC_URL).mock(return_value=json_response("anthropic/messages_tool_use.json"))
    response = await LanguageModel(ANTHROPIC_MODEL).generate(
        [{"role": "system", "content": "Be helpful."}, *USER], tools=[get_weather]
    )
    assert response.text == "I'll check the weather in both cities."
    assert [(c.id, c.name, json.loads(c.arguments)) for c in response.tool_calls] == [
        ("toolu_01A09q90qw90lq917835lq9", "get_weather", {"city": "Paris"}),
        ("toolu_01B19r01rx01mr028946mr0", "get_weather", {"city": "Tokyo", "unit": "celsius"}),
    ]
    assert response.finish_reason == "tool_calls"
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (412, 96)
    body = request_json(route)
    assert body["system"][0]["text"] == "Be helpful." if isinstance(body["system"], list) else body["system"]
    assert body["tools"][0]["name"] == "get_weather"
    assert body["tools"][0]["input_schema"]["required"] == ["city"]


@respx.mock
async def test_anthropic_history_starting_with_assistant_gets_a_user_turn() -> None:
    route = respx.post(ANTHROPIC_URL).mock(return_value=json_response("anthropic/messages_text.json"))
    await LanguageModel(ANTHROPIC_MODEL).generate(
        [{"role": "system", "content": "s"}, {"role": "assistant", "content": "earlier reply"}, *USER]
    )
    messages = request_json(route)["messages"]
    assert messages[0]["role"] == "user"
    assert USER_FIRST_PLACEHOLDER in json.dumps(messages[0])


@respx.mock
async def test_anthropic_stream_events_assemble_tool_call() -> None:
    respx.post(ANTHROPIC_URL).mock(return_value=sse_response("anthropic/stream_tool_use.txt"))
    events = await collect(LanguageModel(ANTHROPIC_MODEL), USER, tools=[get_weather])
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Let me check the weather."
    final = events[-1]
    assert isinstance(final, ResponseComplete)
    assert final.response.tool_calls == [ToolCall("toolu_01A", "get_weather", '{"city": "Paris"}')]
    assert final.response.finish_reason == "tool_calls"
    assert (final.response.usage.prompt_tokens, final.response.usage.completion_tokens) == (120, 45)


# --- Gemini ---------------------------------------------------------------------------------------


@respx.mock
async def test_gemini_function_call_parts() -> None:
    route = respx.post(host=GEMINI_HOST).mock(
        return_value=json_response("gemini/generate_function_call.json")
    )
    response = await LanguageModel(GEMINI_MODEL).generate(USER, tools=[get_weather])
    assert [(c.name, json.loads(c.arguments)) for c in response.tool_calls] == [
        ("get_weather", {"city": "Paris"}),
        ("get_weather", {"city": "Tokyo", "unit": "celsius"}),
    ]
    assert all(c.id for c in response.tool_calls)
    assert response.usage.total_tokens == 75
    declarations = request_json(route)["tools"][0]["function_declarations"]
    assert declarations[0]["name"] == "get_weather"


# --- tokens, limits, profiles ---------------------------------------------------------------------


def test_default_model_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    assert LanguageModel().model == "gpt-4o-mini"
    monkeypatch.setenv("AGNT5_MODEL", "anthropic/claude-sonnet-4-5")
    assert LanguageModel().model == "anthropic/claude-sonnet-4-5"
    assert LanguageModel("gpt-4o").model == "gpt-4o"


def test_count_tokens_matches_tokens_module_and_counts_tools() -> None:
    from agnt5.tokens import count_tokens

    lm = LanguageModel(OPENAI_MODEL)
    history = [{"role": "user", "content": "hello there", "id": "x", "metadata": {"a": "b" * 50}}]
    plain = lm.count_tokens(history)
    assert plain == count_tokens([{"role": "user", "content": "hello there"}], OPENAI_MODEL)
    assert lm.count_tokens(history, tools=[get_weather]) > plain + 10


def test_limits_from_litellm_and_fallbacks() -> None:
    lm = LanguageModel(OPENAI_MODEL)
    assert lm.context_window == 128_000
    assert lm.max_output_tokens == 16_384
    assert lm.supports_response_schema is True
    unknown = LanguageModel("openai/no-such-model-xyz")
    assert unknown.context_window == FALLBACK_CONTEXT_WINDOW
    assert unknown.max_output_tokens == FALLBACK_MAX_OUTPUT_TOKENS
    assert unknown.supports_response_schema is False


def test_profile_registry() -> None:
    assert profile_for("gpt-4o-mini") is OPENAI
    assert profile_for("anthropic/claude-sonnet-4-5") is ANTHROPIC
    assert profile_for("claude-3-5-haiku-latest") is ANTHROPIC
    assert profile_for("gemini/gemini-2.0-flash") is GEMINI
    assert profile_for("ollama/llama3") is OPENAI
    assert ANTHROPIC.requires_user_first and not OPENAI.requires_user_first


def test_message_of_empty_response_has_string_content() -> None:
    assert ModelResponse(text="", usage=Usage()).message() == {"role": "assistant", "content": ""}


def test_usages_add_up_and_cost_stays_unknown_only_when_both_are() -> None:
    a, b = Usage(10, 2, 12, None), Usage(5, 1, 6, 0.25)
    assert a + b == Usage(15, 3, 18, 0.25)
    assert a + a == Usage(20, 4, 24, None)
    assert b + b == Usage(10, 2, 12, 0.5)


# --- usage: cached prompt tokens and estimates ----------------------------------------------------

CACHED_CASES = [
    # (model, url or None for Gemini, recorded answer, stream fixture, prompt, cached, completion)
    (
        OPENAI_MODEL,
        OPENAI_URL,
        "openai/chat_cached_prompt.json",
        "openai/stream_cached_prompt.txt",
        4020,
        4012,
        4,
    ),
    # Anthropic reports input_tokens without the cache; litellm adds cache reads into prompt_tokens.
    (
        ANTHROPIC_MODEL,
        ANTHROPIC_URL,
        "anthropic/messages_cache_read.json",
        "anthropic/stream_cache_read.txt",
        1114,
        1111,
        406,
    ),
    # Gemini's candidatesTokenCount excludes thoughtsTokenCount; completion counts both.
    (GEMINI_MODEL, None, "gemini/generate_cached.json", "gemini/stream_cached.txt", 17713, 17379, 889),
]


def _route(url: str | None, response: Any) -> Any:
    return (respx.post(url) if url else respx.post(host=GEMINI_HOST)).mock(return_value=response)


@pytest.mark.parametrize(("model", "url", "answer", "stream", "prompt", "cached", "completion"), CACHED_CASES)
async def test_cached_prompt_tokens_from_recorded_answers(
    model: str, url: str | None, answer: str, stream: str, prompt: int, cached: int, completion: int
) -> None:
    """Recorded answers that hit the provider's prompt cache: OpenAI prompt_tokens_details.cached_tokens,
    Anthropic cache_read_input_tokens, Gemini usageMetadata.cachedContentTokenCount."""
    with respx.mock:
        _route(url, json_response(answer))
        usage = (await LanguageModel(model).generate(USER)).usage
    assert (usage.prompt_tokens, usage.cached_tokens, usage.completion_tokens) == (prompt, cached, completion)
    assert usage.requests == 1 and not usage.estimated
    assert usage.cost is not None and usage.cost > 0

    with respx.mock:
        _route(url, sse_response(stream))
        events = await collect(LanguageModel(model), USER)
    final = events[-1]
    assert isinstance(final, ResponseComplete)
    streamed = final.response.usage
    assert (streamed.prompt_tokens, streamed.cached_tokens, streamed.completion_tokens) == (
        prompt,
        cached,
        completion,
    )
    assert streamed.requests == 1 and not streamed.estimated


@respx.mock
async def test_answer_without_usage_is_estimated_and_marked() -> None:
    body = fixture_json("openai/chat_text.json")
    del body["usage"]
    respx.post(OPENAI_URL).mock(return_value=httpx.Response(200, json=body))
    lm = LanguageModel(OPENAI_MODEL)
    usage = (await lm.generate(USER)).usage
    assert usage.estimated and usage.requests == 1
    assert usage.prompt_tokens == lm.count_tokens(USER)
    assert usage.completion_tokens == count_text_tokens("The capital of France is Paris.", OPENAI_MODEL)
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.cost is not None and usage.cost > 0


@respx.mock
async def test_tool_call_answer_without_usage_counts_the_calls() -> None:
    body = fixture_json("openai/chat_parallel_tool_calls.json")
    del body["usage"]
    respx.post(OPENAI_URL).mock(return_value=httpx.Response(200, json=body))
    lm = LanguageModel(OPENAI_MODEL)
    response = await lm.generate(USER, tools=[get_weather])
    assert response.usage.estimated
    assert response.usage.prompt_tokens == lm.count_tokens(USER, tools=[get_weather])
    assert response.usage.completion_tokens >= sum(
        count_text_tokens(call.arguments, OPENAI_MODEL) for call in response.tool_calls
    )


@respx.mock
async def test_stream_without_usage_is_marked_estimated() -> None:
    """litellm counts the tokens itself when the stream carries no usage chunk; the stream with one is not."""
    chunks = (FIXTURES / "openai/stream_text.txt").read_text().split("\n\n")
    without = "\n\n".join(chunk for chunk in chunks if '"usage":{' not in chunk)
    respx.post(OPENAI_URL).mock(
        return_value=httpx.Response(
            200, content=without.encode(), headers={"content-type": "text/event-stream"}
        )
    )
    final = (await collect(LanguageModel(OPENAI_MODEL), USER))[-1]
    assert isinstance(final, ResponseComplete)
    assert final.response.usage.estimated
    assert final.response.usage.prompt_tokens > 0 and final.response.usage.completion_tokens > 0

    respx.post(OPENAI_URL).mock(return_value=sse_response("openai/stream_text.txt"))
    final = (await collect(LanguageModel(OPENAI_MODEL), USER))[-1]
    assert isinstance(final, ResponseComplete)
    assert not final.response.usage.estimated
    assert (final.response.usage.prompt_tokens, final.response.usage.completion_tokens) == (9, 4)
