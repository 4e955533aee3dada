"""Cache-aware context budgets: stable cuts stored with the session, instructions rendered from state
sent last, provider caching hints in real request bodies, and cache tokens in usage."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from _convo import scores_for
from _mocks import ANTHROPIC_URL, GEMINI_HOST, OPENAI_URL, fixture_json, sse_response
from _wire import anthropic_message, gemini_content, openai_chat, sent, uncached

from agnt5 import Agent, ContextBudget, Session, tool
from agnt5.context import CUT_KEY, SUMMARY_NOTE, stable_window
from agnt5.errors import InvalidInputError, InvalidTypeError
from agnt5.models import LanguageModel, ResponseComplete
from agnt5.strategies.keep_important import SCORER_INSTRUCTIONS
from agnt5.strategies.summarize_old import SUMMARIZER_INSTRUCTIONS, SUMMARY_HEADER
from agnt5.tokens import count_tokens

ROOT = Path(__file__).resolve().parent.parent
BUDGET = ContextBudget(700, low_water=0.6)


def _words(turn: int, n: int = 10) -> str:
    return f"turn {turn}: " + " ".join(f"w{turn}x{i}" for i in range(n))


def _history_of(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The request's messages without the leading static system message."""
    messages: list[dict[str, Any]] = body["messages"]
    return messages[1:] if messages and messages[0]["role"] == "system" else messages


def _is_prefix(short: list[Any], long: list[Any]) -> bool:
    return long[: len(short)] == short


async def _converse(
    agent: Agent[Any, Any], session: Session, turns: range, route: Any
) -> list[dict[str, Any]]:
    bodies = []
    for turn in turns:
        await agent.run(_words(turn), session=session)
        bodies.append(sent(route))
    return bodies


# --- the cut --------------------------------------------------------------------------------------


def test_stable_window_keeps_its_cut_until_the_budget_is_reached() -> None:
    history = []
    for t in range(12):
        history += [
            {"id": f"u{t}", "role": "user", "content": "x"},
            {"id": f"a{t}", "role": "assistant", "content": "y"},
        ]
    count = lambda m: 10  # noqa: E731 - every message 10 tokens, a turn 20
    first = stable_window(history, 0, 200, 120, None, count)
    assert first.cut == "u6" and len(first.messages) == 12  # down to 120 of 200: six turns
    # Three more turns (60 tokens) fit under 200 from the same cut: nothing moves.
    more = history + [
        m for t in range(12, 14) for m in ({"id": f"u{t}", "role": "user"}, {"role": "assistant"})
    ]
    again = stable_window(more, 0, 200, 120, "u6", count)
    assert again.cut is None and again.messages[0]["id"] == "u6" and len(again.messages) == 16
    newer = [m for t in range(14, 16) for m in ({"id": f"u{t}", "role": "user"}, {"role": "assistant"})]
    almost = more + newer[:3]  # 190 tokens from u6: still fits
    assert stable_window(almost, 0, 200, 120, "u6", count).cut is None
    over = more + newer + [{"id": "u16", "role": "user"}]  # 210: cut again, down to 120
    moved = stable_window(over, 0, 200, 120, "u6", count)
    assert moved.cut == "u11" and sum(count(m) for m in moved.messages) == 110


def test_a_newest_turn_above_the_low_water_mark_is_sent_whole_within_the_budget() -> None:
    history = [
        {"id": "u0", "role": "user"},
        {"role": "assistant"},
        {"id": "u1", "role": "user"},
        {"role": "assistant", "tool_calls": [{"id": "c1"}]},
        {"role": "tool", "tool_call_id": "c1"},
        {"role": "assistant", "tool_calls": [{"id": "c2"}]},
        {"role": "tool", "tool_call_id": "c2"},
    ]
    count = lambda m: 40 if m.get("role") == "tool" else 10  # noqa: E731 - turn u1: 110 tokens
    window = stable_window(history, 0, 125, 50, None, count)
    assert window.cut == "u1" and len(window.messages) == 5


def test_context_budget_is_checked() -> None:
    with pytest.raises(InvalidInputError, match="low_water"):
        ContextBudget(1000, low_water=1.5)
    with pytest.raises(InvalidInputError, match="positive"):
        Agent("a", context_budget=0)
    with pytest.raises(InvalidTypeError, match="ContextBudget"):
        Agent("a", context_budget="big")  # type: ignore[arg-type]


@respx.mock
async def test_requests_stay_in_budget_and_share_their_prefix_between_cuts(store: Any) -> None:
    route = respx.post(OPENAI_URL).mock(return_value=openai_chat("noted " * 20))
    agent = Agent("helper", instructions="You are a patient helper.", context_budget=BUDGET)
    session = Session("long", store=store)
    bodies = await _converse(agent, session, range(30), route)
    cuts = 0
    for before, after in itertools.pairwise(bodies):
        assert count_tokens(after["messages"], "gpt-4o-mini") <= BUDGET.tokens  # primer included
        assert after["messages"][-1]["content"].startswith("turn ")  # the newest user turn, whole
        if not _is_prefix(before["messages"], after["messages"]):
            cuts += 1
            assert count_tokens(after["messages"], "gpt-4o-mini") <= BUDGET.tokens * BUDGET.low_water
    assert 2 <= cuts <= 7  # a cut every few turns, not every turn
    assert len(await session.history()) == 60  # non-destructive
    stored = session.get_state(CUT_KEY) if store.supports_sync else (await session.load()).get_state(CUT_KEY)
    first_sent = _history_of(bodies[-1])[0]["content"]
    by_id = {m.id: m for m in await session.history()}
    assert by_id[stored["helper"]]["content"] == first_sent


@respx.mock
async def test_the_cut_holds_across_runs_and_processes(store_env: Any) -> None:
    """Another process (a fresh interpreter on the same database) sends the same prefix."""
    route = respx.post(OPENAI_URL).mock(return_value=openai_chat("noted " * 20))
    store = store_env.open()
    try:
        agent = Agent("helper", instructions="You are a patient helper.", context_budget=BUDGET)
        session = Session("shared", store=store)
        bodies = await _converse(agent, session, range(6), route)
        while _is_prefix(bodies[-2]["messages"], bodies[-1]["messages"]):  # until a cut was just made
            bodies += await _converse(agent, session, range(len(bodies), len(bodies) + 1), route)
    finally:
        await store.close()
    last = bodies[-1]["messages"]
    script = textwrap.dedent(
        f"""
        import asyncio, json, sys, respx, httpx
        sys.path.insert(0, {str(ROOT / "tests")!r})
        from _wire import openai_chat
        from agnt5 import Agent, Session
        from agnt5.context import ContextBudget
        from agnt5.store.url import open_store

        async def main():
            store = open_store({store_env.url!r})
            agent = Agent("helper", instructions="You are a patient helper.",
                          context_budget=ContextBudget({BUDGET.tokens}, low_water={BUDGET.low_water}))
            with respx.mock:
                route = respx.post({OPENAI_URL!r}).mock(return_value=openai_chat("ok"))
                await agent.run("one more", session=Session("shared", store=store))
                print(route.calls[-1].request.content.decode())
            await store.close()

        asyncio.run(main())
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr
    other = json.loads(out.stdout.strip().splitlines()[-1])["messages"]
    # The other process's request extends this one's last request: same cut, same prefix.
    assert _is_prefix(last, other) and other[-1]["content"] == "one more"


@respx.mock
async def test_a_state_change_does_not_move_the_cut_or_the_prefix(sqlite_store: Any) -> None:
    route = respx.post(OPENAI_URL).mock(return_value=openai_chat("noted " * 20))
    agent = Agent(
        "helper",
        instructions=["You are a patient helper.", "The user's topic is {topic}."],
        context_budget=BUDGET,
    )
    session = Session("topics", store=sqlite_store)
    session.set_state("topic", "gardening")
    bodies = await _converse(agent, session, range(12), route)
    cut = session.get_state(CUT_KEY)["helper"]
    before = bodies[-1]["messages"]
    assert before[0] == {"role": "system", "content": "You are a patient helper."}
    assert before[-1] == {"role": "system", "content": "The user's topic is gardening."}  # sent last
    session.set_state("topic", "astronomy")
    await agent.run("and now?", session=session)
    after = sent(route)["messages"]
    assert after[-1] == {"role": "system", "content": "The user's topic is astronomy."}
    assert _is_prefix(before[:-1], after)  # everything but the rendered state is the same prefix
    assert session.get_state(CUT_KEY)["helper"] == cut


@respx.mock
async def test_a_run_local_session_works_without_storing_anything(tmp_path: Path) -> None:
    respx.post(OPENAI_URL).mock(return_value=openai_chat("hello"))
    agent = Agent("helper", instructions="Be brief.", context_budget=300)
    result = await agent.run(_words(1, 10))
    assert result.output == "hello"


# --- provider hints in request bodies ------------------------------------------------------------


@tool
def lookup(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


@respx.mock
async def test_openai_body_carries_prompt_cache_key_from_the_session(sqlite_store: Any) -> None:
    route = respx.post(OPENAI_URL).mock(return_value=openai_chat("hi"))
    session = Session("user-42-chat", store=sqlite_store)
    await Agent("helper", context_budget=2000).run("hello", session=session)
    assert sent(route)["prompt_cache_key"] == "user-42-chat"
    await Agent("plain").run("hello", session=session)  # no context budget: no hint
    assert "prompt_cache_key" not in sent(route)


@respx.mock
async def test_other_openai_compatible_providers_get_no_cache_key(
    sqlite_store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEEPSEEK_API_KEY", "sk-test-not-a-real-key")
    route = respx.post(host="api.deepseek.com").mock(return_value=openai_chat("hi", model="deepseek-chat"))
    agent = Agent("helper", model="deepseek/deepseek-chat", context_budget=2000)
    assert (await agent.run("hello", session=Session("ds", store=sqlite_store))).output == "hi"
    assert "prompt_cache_key" not in sent(route)


def _marks(body: dict[str, Any]) -> list[str]:
    """Where an Anthropic request body carries cache_control: tools, system blocks, message blocks."""
    found = [f"tool:{t['name']}" for t in body.get("tools", []) if "cache_control" in t]
    found += [f"system:{i}" for i, b in enumerate(body.get("system", [])) if "cache_control" in b]
    for i, m in enumerate(body["messages"]):
        blocks = m["content"] if isinstance(m["content"], list) else []
        found += [f"message:{i}:{b['type']}" for b in blocks if "cache_control" in b]
        for b in blocks:
            for inner in b.get("content", []) if isinstance(b.get("content"), list) else []:
                if "cache_control" in inner:
                    found.append(f"message:{i}:tool_result")
    return found


@respx.mock
async def test_anthropic_body_has_breakpoints_on_tools_system_and_the_stable_messages(
    sqlite_store: Any,
) -> None:
    route = respx.post(ANTHROPIC_URL).mock(
        side_effect=[
            anthropic_message("first answer"),
            anthropic_message(tool_uses=[("lookup", {"city": "Oslo"})]),
            anthropic_message("Sunny."),
        ]
    )
    agent = Agent(
        "helper",
        model="anthropic/claude-sonnet-4-5",
        instructions=["You are a weather helper.", "The user lives in {city}."],
        tools=[lookup],
        context_budget=4000,
    )
    session = Session("weather", store=sqlite_store)
    session.set_state("city", "Oslo")
    await agent.run("hello", session=session)
    await agent.run("weather?", session=session)
    body = sent(route)
    marks = _marks(body)
    assert len(marks) <= 4
    assert "tool:lookup" in marks and "system:0" in marks
    assert body["system"][0]["text"] == "You are a weather helper."
    # The state-rendered part is the last user content (not in `system`), and never marked.
    last = body["messages"][-1]
    assert last["role"] == "user"
    assert last["content"][-1] == {"type": "text", "text": "The user lives in Oslo."}
    assert "The user lives in" not in json.dumps(body["system"])
    # The stable end (the tool result) and the end of the previous turn ("first answer") are marked.
    assert any(m.startswith(f"message:{len(body['messages']) - 1}:") for m in marks)
    answer = next(i for i, m in enumerate(body["messages"]) if "first answer" in json.dumps(m))
    assert f"message:{answer}:text" in marks


@respx.mock
async def test_gemini_body_has_no_cache_fields(sqlite_store: Any) -> None:
    route = respx.post(host=GEMINI_HOST).mock(return_value=gemini_content("hi"))
    await Agent("helper", model="gemini/gemini-2.0-flash", instructions="Be brief.", context_budget=2000).run(
        "hello", session=Session("g", store=sqlite_store)
    )
    text = route.calls[-1].request.content.decode()
    assert "cache_control" not in text and "prompt_cache_key" not in text and "cachedContent" not in text


# --- usage: cache reads and writes ---------------------------------------------------------------


def _anthropic_with_writes() -> dict[str, Any]:
    body = fixture_json("anthropic/messages_cache_read.json")
    body["usage"].update(cache_creation_input_tokens=2048, cache_read_input_tokens=1111)
    body["usage"]["cache_creation"]["ephemeral_5m_input_tokens"] = 2048
    return dict(body)


@respx.mock
async def test_anthropic_cache_writes_and_reads_in_usage_and_cost() -> None:
    respx.post(ANTHROPIC_URL).mock(return_value=httpx.Response(200, json=_anthropic_with_writes()))
    usage = (
        await LanguageModel("anthropic/claude-sonnet-4-5").generate([{"role": "user", "content": "hi"}])
    ).usage
    assert (usage.cached_tokens, usage.cache_write_tokens) == (1111, 2048)
    assert usage.prompt_tokens == 3 + 1111 + 2048
    import litellm

    info = litellm.get_model_info("anthropic/claude-sonnet-4-5")
    expected = (
        3 * info["input_cost_per_token"]
        + 1111 * info["cache_read_input_token_cost"]
        + 2048 * info["cache_creation_input_token_cost"]
        + 406 * info["output_cost_per_token"]
    )
    assert usage.cost == pytest.approx(expected, rel=1e-6)
    assert (usage + usage).cache_write_tokens == 4096


@pytest.mark.parametrize(
    ("model", "url", "stream", "cached"),
    [
        ("gpt-4o-mini", OPENAI_URL, "openai/stream_cached_prompt.txt", 4012),
        ("anthropic/claude-sonnet-4-5", ANTHROPIC_URL, "anthropic/stream_cache_read.txt", 1111),
    ],
)
async def test_streamed_cached_usage_is_priced_at_cache_prices(
    model: str, url: str | None, stream: str, cached: int
) -> None:
    with respx.mock:
        (respx.post(url) if url else respx.post(host=GEMINI_HOST)).mock(return_value=sse_response(stream))
        events = [e async for e in LanguageModel(model).stream([{"role": "user", "content": "hi"}])]
    final = events[-1]
    assert isinstance(final, ResponseComplete)
    usage = final.response.usage
    assert usage.cached_tokens == cached and usage.cache_write_tokens == 0
    import litellm

    full, out = litellm.cost_per_token(
        model=model, prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens
    )
    assert usage.cost is not None and usage.cost < full + out  # cached tokens cost less


def _summary_or_scores(request: httpx.Request, answer: httpx.Response) -> httpx.Response:
    """A scripted OpenAI model: scores for keep_important's scorer, a summary for summarize_old's
    summariser, else `answer`."""
    body = json.loads(request.content)
    first = body["messages"][0]
    if first["role"] == "system" and first["content"] == SUMMARIZER_INSTRUCTIONS:
        return openai_chat(
            f"The user went through {len(body['messages'][-1]['content'])} characters of turns."
        )
    if first["role"] == "system" and first["content"] == SCORER_INSTRUCTIONS:
        return scores_for(request)
    return answer


def _important_words(turn: int, n: int) -> str:
    """Turns 3 and 4 say IMPORTANT, so keep_important keeps them past later prunes."""
    return _words(turn, n) + (" IMPORTANT" if turn in (3, 4) else "")


@pytest.mark.parametrize(
    ("strategy", "budget", "words"),
    [
        ("sliding_window", BUDGET, 10),
        ("keep_important", BUDGET, 10),
        # summarize_old reserves summary_max_tokens (512) for the summary: a larger budget.
        ("summarize_old", ContextBudget(2400, low_water=0.6), 40),
    ],
)
@respx.mock
async def test_a_prune_strategy_prunes_down_to_the_low_water_mark_in_big_steps(
    store: Any, strategy: str, budget: ContextBudget, words: int
) -> None:
    answer = openai_chat("noted " * 20)
    route = respx.post(OPENAI_URL).mock(side_effect=lambda r: _summary_or_scores(r, answer))
    agent = Agent("helper", instructions="You are a patient helper.", context_budget=budget)
    session = Session("pruned", retention={"prune_strategy": strategy}, store=store)
    bodies = []
    for turn in range(30):
        await agent.run(_important_words(turn, words), session=session)
        bodies.append(sent(route))
    prunes = [e for e in await session.events() if e.type == "prune"]
    assert all(e.data["strategy"] == strategy for e in prunes)
    assert 2 <= len(prunes) <= 7  # every few turns, not every turn
    breaks = sum(not _is_prefix(a["messages"], b["messages"]) for a, b in itertools.pairwise(bodies))
    assert breaks == len(prunes)  # between prunes, each request extends the one before
    for body in bodies:
        assert count_tokens(body["messages"], "gpt-4o-mini") <= budget.tokens
        assert body["messages"][0] == {"role": "system", "content": "You are a patient helper."}
    active = await session.history()
    # What is sent is the whole active history (pruning did the cutting), newest turn included.
    assert [m["content"] for m in _history_of(bodies[-1])] == [m["content"] for m in active[:-1]]
    assert len(await session.history(include_pruned=True)) == 60 + (
        len(prunes) if strategy == "summarize_old" else 0
    )
    if strategy == "keep_important":  # the important old turns survived every prune
        assert any("IMPORTANT" in str(m["content"]) for m in _history_of(bodies[-1]))
    if strategy == "summarize_old":  # OpenAI keeps a system message in place: right after the instructions
        summary = bodies[-1]["messages"][1]
        assert summary["role"] == "system" and summary["content"].startswith(SUMMARY_HEADER)


# --- summaries where they change the prefix least ------------------------------------------------

SUMMARY_BUDGET = ContextBudget(2400, low_water=0.6)


def _anthropic_model(request: httpx.Request) -> httpx.Response:
    """A scripted Anthropic model: a summary for summarize_old's summariser, else a short answer."""
    body = json.loads(request.content)
    if SUMMARIZER_INSTRUCTIONS in json.dumps(body.get("system")):
        return anthropic_message(f"The user went through {len(request.content)} bytes of turns.")
    return anthropic_message("noted " * 20)


def _opens_with_summary(body: dict[str, Any]) -> bool:
    first = body["messages"][0]["content"]
    return isinstance(first, list) and first[0]["text"].startswith(SUMMARY_NOTE + SUMMARY_HEADER)


@respx.mock
async def test_an_anthropic_summary_is_sent_in_the_history_and_leaves_the_system_prompt_alone(
    sqlite_store: Any,
) -> None:
    route = respx.post(ANTHROPIC_URL).mock(side_effect=_anthropic_model)
    agent = Agent(
        "helper",
        model="anthropic/claude-sonnet-4-5",
        instructions=["You are a patient helper.", "The user's topic is {topic}."],
        tools=[lookup],
        context_budget=SUMMARY_BUDGET,
    )
    session = Session("summarised", retention={"prune_strategy": "summarize_old"}, store=sqlite_store)
    session.set_state("topic", "gardening")
    bodies = []
    for turn in range(30):
        await agent.run(_words(turn, 40), session=session)
        bodies.append(sent(route))
    prunes = [e for e in await session.events() if e.type == "prune"]
    assert 2 <= len(prunes) <= 7 and all(e.data["summary_id"] for e in prunes)
    first, breaks = bodies[0], 0
    for before, after in itertools.pairwise(bodies):
        # Byte for byte, every request opens with the same tools and system prompt, summaries or not.
        assert json.dumps(after["tools"]) == json.dumps(first["tools"])
        assert json.dumps(after["system"]) == json.dumps(first["system"])
        assert after["system"] == [
            {"type": "text", "text": "You are a patient helper.", "cache_control": {"type": "ephemeral"}}
        ]
        assert after["messages"][0]["role"] == "user"
        roles = [m["role"] for m in after["messages"]]
        assert all(a != b for a, b in itertools.pairwise(roles))  # consecutive user messages merged
        kept = uncached(before["messages"][:-1])
        if uncached(after["messages"][: len(kept)]) != kept:
            breaks += 1  # a prune: a new summary opens the messages
            assert _opens_with_summary(after) and after["messages"][0] != before["messages"][0]
    assert breaks == len(prunes)  # between prunes each request extends the one before
    summarised = [i for i, b in enumerate(bodies) if _opens_with_summary(b)]
    assert summarised and summarised == list(range(summarised[0], len(bodies)))
    # The summary is the first user message, framed, with the newest kept turn merged after it.
    opening = bodies[-1]["messages"][0]["content"]
    assert opening[0]["text"].startswith(SUMMARY_NOTE + SUMMARY_HEADER + "The user went through")
    assert opening[1]["text"].startswith("turn ")
    assert SUMMARY_HEADER not in json.dumps(bodies[-1]["system"])
    # A state change alters only the end: no cut moves, no prune, the same prefix.
    cut = session.get_state(CUT_KEY)["helper"]
    before = bodies[-1]
    session.set_state("topic", "astronomy")
    await agent.run("and now?", session=session)
    after = sent(route)
    assert session.get_state(CUT_KEY)["helper"] == cut
    assert len([e for e in await session.events() if e.type == "prune"]) == len(prunes)
    assert json.dumps(after["system"]) == json.dumps(before["system"])
    kept = uncached(before["messages"][:-1])
    assert uncached(after["messages"][: len(kept)]) == kept
    newest = uncached(before["messages"][-1]["content"])
    assert newest[-1] == {"type": "text", "text": "The user's topic is gardening."}
    assert uncached(after["messages"][len(kept)]["content"]) == newest[:-1]  # the turn, without the state
    assert after["messages"][-1]["content"][-1] == {"type": "text", "text": "The user's topic is astronomy."}


@respx.mock
async def test_a_gemini_summary_is_sent_as_user_parts_ahead_of_the_kept_turns(sqlite_store: Any) -> None:
    def gemini_model(request: httpx.Request) -> httpx.Response:
        if SUMMARIZER_INSTRUCTIONS in request.content.decode():
            return gemini_content("The user counted words.")
        return gemini_content("noted " * 20)

    route = respx.post(host=GEMINI_HOST).mock(side_effect=gemini_model)
    agent = Agent(
        "helper", model="gemini/gemini-2.5-flash", instructions="Be brief.", context_budget=SUMMARY_BUDGET
    )
    session = Session("g-sum", retention={"prune_strategy": "summarize_old"}, store=sqlite_store)
    for turn in range(24):
        await agent.run(_words(turn, 40), session=session)
    assert any(e.type == "prune" for e in await session.events())
    body = sent(route)
    texts = [p.get("text", "") for p in body["contents"][0]["parts"]]
    summary = next(i for i, t in enumerate(texts) if t.startswith(SUMMARY_NOTE))
    assert texts[summary].endswith("The user counted words.") and texts[summary + 1].startswith("turn ")
    roles = [c["role"] for c in body["contents"]]
    assert all(a != b for a, b in itertools.pairwise(roles))  # one user content, valid for Gemini
    assert body["system_instruction"] == {"parts": [{"text": "Be brief."}]}  # the instructions alone


@respx.mock
async def test_a_streamed_anthropic_request_carries_the_breakpoints_and_reports_cache_reads(
    sqlite_store: Any,
) -> None:
    route = respx.post(ANTHROPIC_URL).mock(return_value=sse_response("anthropic/stream_cache_read.txt"))
    agent = Agent(
        "helper", model="anthropic/claude-sonnet-4-5", instructions="Be brief.", context_budget=4000
    )
    events = [e async for e in agent.stream("hello", session=Session("s", store=sqlite_store))]
    body = sent(route)
    assert body["stream"] is True
    assert _marks(body) == ["system:0", "message:0:text"]
    assert events[-1].result.usage.cached_tokens == 1111  # type: ignore[attr-defined]
