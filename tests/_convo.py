"""Random conversations (hypothesis) and the invariants every prune must keep; fake and
respx-mocked models for the LLM strategies."""

from __future__ import annotations

import copy
import json
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
from hypothesis import strategies as st

from agnt5.blocks import group_blocks, is_summary
from agnt5.models import LanguageModel, ModelResponse, ToolCall, Usage
from agnt5.store import Store
from agnt5.store.sqlite import SqliteStore

OPENAI_URL = "https://api.openai.com/v1/chat/completions"

_words = st.text(alphabet="abcdefgh ijklmnop", min_size=0, max_size=40)


@st.composite
def _content(draw: Any) -> Any:
    kind = draw(st.sampled_from(["str", "str", "parts"]))
    text = draw(_words) or "x"
    if kind == "str":
        return text
    parts: list[dict[str, Any]] = [{"type": "text", "text": text}]
    if draw(st.booleans()):
        parts.append({"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}})
    return parts


@st.composite
def conversations(draw: Any, max_turns: int = 12) -> list[dict[str, Any]]:
    """A history: optional system prompt, then turns of user messages, plain replies, (parallel)
    tool calls with all/some/no results, orphan tool results and the odd mid-history system note."""
    out: list[dict[str, Any]] = []
    if draw(st.booleans()):
        out.append({"role": "system", "content": draw(_words) or "be helpful"})
    n_call = 0
    if draw(st.integers(0, 4)) == 0:  # a history that does not start with a user message
        out.append({"role": "assistant", "content": draw(_words) or "hello"})
    for _ in range(draw(st.integers(0, max_turns))):
        out.append({"role": "user", "content": draw(_content())})
        for _ in range(draw(st.integers(0, 3))):
            step = draw(st.sampled_from(["reply", "calls", "calls", "orphan", "system"]))
            if step == "reply":
                out.append({"role": "assistant", "content": draw(_words) or "ok"})
            elif step == "system":
                out.append({"role": "system", "content": "note " + (draw(_words) or "n")})
            elif step == "orphan":
                out.append({"role": "tool", "tool_call_id": "gone", "content": "stale"})
            else:
                ids = []
                for _ in range(draw(st.integers(1, 3))):
                    n_call += 1
                    ids.append(f"call_{n_call}")
                content = draw(st.one_of(st.none(), _words.filter(bool)))
                calls = [
                    {"id": i, "type": "function", "function": {"name": "lookup", "arguments": '{"q": 1}'}}
                    for i in ids
                ]
                out.append({"role": "assistant", "content": content, "tool_calls": calls})
                answered = draw(st.sampled_from(["all", "all", "some", "none"]))
                for k, i in enumerate(ids):
                    if answered == "all" or (answered == "some" and k == 0):
                        out.append({"role": "tool", "tool_call_id": i, "content": draw(_content())})
    return out


async def make_session(
    messages: Sequence[Mapping[str, Any]], store: Store | None = None, *, session_id: str = "conv", **kw: Any
) -> Any:
    """A session holding `messages`, on `store` (default: the configured default store, which the
    pruning tests set to the `store` fixture, so they run on every store)."""
    from agnt5 import Session
    from agnt5.config import default_store

    session = Session(session_id, store=store or default_store(), **kw)
    if messages:
        await session.send_messages(list(messages))
    return session


def example_store(env: Any) -> tuple[Store, str]:
    """A store and a session id for one hypothesis example: a private in-memory SQLite database,
    or (postgres) the test's database with a session id of its own."""
    if env.kind == "sqlite":
        return SqliteStore(), "conv"
    return env.open(), f"conv-{uuid.uuid4().hex}"


def check_invariants(
    before: Sequence[Any], after: Sequence[Any], *, changed: bool, max_tokens: int | None = None
) -> None:
    """The invariants of every prune (history entries with ids, seq and tokens)."""
    ids_after = [m["id"] for m in after if not is_summary(m)]
    index = {m["id"]: i for i, m in enumerate(before)}
    # order preserved, nothing invented but summaries
    positions = [index[i] for i in ids_after]
    assert positions == sorted(positions), "order changed"
    # every system message (not a summary) kept, unchanged, in place
    for m in before:
        if m["role"] == "system" and not is_summary(m):
            assert m["id"] in ids_after, "a system message was removed"
    for m in after:
        if m["role"] == "system" and not is_summary(m):
            assert m["content"] == before[index[m["id"]]]["content"], "a system message was changed"
    # blocks whole
    kept = set(ids_after)
    for block in group_blocks(list(before)):
        members = {before[i]["id"] for i in block.indices}
        assert members <= kept or not (members & kept), f"block {block} split"
    if not changed:
        assert [m["id"] for m in after] == [m["id"] for m in before]
        return
    summaries = [m for m in after if is_summary(m)]
    assert len(summaries) <= 1
    rest = [m for m in after if m["role"] != "system"]
    if rest:
        assert rest[0]["role"] == "user", f"kept history starts at {rest[0]['role']}"
    if summaries:  # placed after the leading system prompt, before every kept message
        first_kept = next((i for i, m in enumerate(after) if m["role"] != "system"), len(after))
        assert after.index(summaries[0]) < first_kept
    if max_tokens is not None:
        assert sum(m.tokens for m in after) <= max_tokens


# --- models ------------------------------------------------------------------------------------


class SmallWindow(LanguageModel):
    """The real HTTP path with a tiny context window, to force batching and chunking."""

    def __init__(self, model: str, window: int) -> None:
        super().__init__(model)
        self.window = window

    @property
    def context_window(self) -> int:
        return self.window


class FakeModel(LanguageModel):
    """A deterministic LanguageModel: scores from message text, summaries from the prompt; records
    every request. No HTTP (the property tests); the main LLM tests use respx instead."""

    def __init__(self, window: int = 128_000, output: int = 4096, fail: bool = False) -> None:
        super().__init__("gpt-4o-mini")
        self.window, self.output, self.fail = window, output, fail
        self.requests: list[list[dict[str, Any]]] = []

    @property
    def context_window(self) -> int:
        return self.window

    @property
    def max_output_tokens(self) -> int:
        return self.output

    @property
    def supports_response_schema(self) -> bool:
        return True

    async def generate(
        self, messages: Any, tools: Any = None, tool_choice: Any = None, response_format: Any = None
    ) -> ModelResponse:
        messages = [dict(m) for m in messages]
        self.requests.append(messages)
        if self.fail:
            from agnt5.errors import ProviderError

            raise ProviderError("boom", model=self.model, status_code=500)
        body = messages[-1]["content"]
        usage = Usage(self.count_tokens(messages), 10, self.count_tokens(messages) + 10, 0.0001)
        if response_format is not None or tools:
            seqs = [int(s) for s in re.findall(r"^\[(\d+)\]", body, flags=re.M)]
            scores = {"scores": [{"seq": s, "score": (s * 7) % 11} for s in seqs]}
            if tools:
                return ModelResponse(
                    "", [ToolCall("c1", "record_importance_scores", json.dumps(scores))], "stop", usage
                )
            return ModelResponse(json.dumps(scores), [], "stop", usage)
        return ModelResponse(f"summary of {body.count(chr(10))} lines", [], "stop", usage)


def openai_reply(content: str, prompt_tokens: int = 100, completion_tokens: int = 20) -> httpx.Response:
    """A chat completion in OpenAI's wire format (the chat_text.json fixture, content replaced)."""
    from _mocks import fixture_json

    body = copy.deepcopy(fixture_json("openai/chat_text.json"))
    body["choices"][0]["message"]["content"] = content
    body["usage"].update(
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        total_tokens=prompt_tokens + completion_tokens,
    )
    return httpx.Response(200, json=body)


def scores_for(request: httpx.Request, score: Any = None) -> httpx.Response:
    """Answer a scoring request: each [seq] line gets `score` (or a score derived from its text)."""
    body = json.loads(request.content)
    text = body["messages"][-1]["content"]
    entries = []
    for seq, line in re.findall(r"^\[(\d+)\] (.*)$", text, flags=re.M):
        value = score if score is not None else (9 if "IMPORTANT" in line else 1)
        entries.append({"seq": int(seq), "score": value})
    return openai_reply(json.dumps({"scores": entries}))
