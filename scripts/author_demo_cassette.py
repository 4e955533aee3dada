"""Author the cassette `agnt5 demo` replays (agnt5/demo/cassettes/demo.json) from a scripted provider.

The machine agnt5 was built on has no provider access, so the shipped cassette was NOT recorded
from OpenAI: this script runs the very same demo code (`agnt5.demo.run.run_demo`) inside
`Cassette(mode="record", upstream=ScriptedOpenAI())`. `ScriptedOpenAI` answers each request in
OpenAI's wire format (chat.completions and embeddings), deciding from the request itself: the
router hands off, the specialist looks up charges, refunds, remembers and recalls, the scorer and
the summariser answer from the messages they were sent, and embeddings are hashed bags of words.
The requests in the cassette are exactly what agnt5 sends; only the responses are scripted.

To replace it with real responses (needs an OpenAI key; costs well under a cent):

    OPENAI_API_KEY=sk-... agnt5 demo --live --record

Re-run this script after changing the demo (tests/test_demo.py checks the shipped cassette is
what this script produces):

    .venv/bin/python scripts/author_demo_cassette.py [--output PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import itertools
import json
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

from agnt5.demo import approval, recall, support
from agnt5.demo.run import SHIPPED_CASSETTE, DemoOptions, run_demo
from agnt5.strategies.keep_important import SCORER_INSTRUCTIONS
from agnt5.strategies.summarize_old import PART_INSTRUCTIONS, SUMMARIZER_INSTRUCTIONS
from agnt5.tokens import count_text_tokens, count_tokens

NOTE = (
    "Authored by scripts/author_demo_cassette.py from a scripted OpenAI-format provider (the "
    "machine it was made on had no provider access): requests are agnt5's real ones, responses "
    "are scripted. Re-record from OpenAI with: OPENAI_API_KEY=... agnt5 demo --live --record "
    "--cassette agnt5/demo/cassettes/demo.json"
)
STOPWORDS = frozenset(
    "a an the to of in on for by be is are will from this that my your our as at it its and or "
    "than rather every never should which where what who how do does did i you me we s".split()
)
SYNONYMS = {"sent": "send", "refunds": "refund", "cards": "card"}


class ScriptedOpenAI:
    """A stand-in for api.openai.com: answers the demo's requests in the real wire format."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self.requests = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        body = json.loads(request.content)
        path = request.url.path
        if path.endswith("/embeddings"):
            return self._embeddings(body)
        if path.endswith("/chat/completions"):
            return self._chat(body)
        raise AssertionError(f"the scripted provider has no {request.method} {request.url}")

    # -- embeddings --

    def _embeddings(self, body: dict[str, Any]) -> httpx.Response:
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        dim = int(body.get("dimensions") or 1536)
        data = [
            {"object": "embedding", "index": i, "embedding": _vector(t, dim)} for i, t in enumerate(texts)
        ]
        tokens = sum(count_text_tokens(t) for t in texts)
        return httpx.Response(
            200,
            json={
                "object": "list",
                "data": data,
                "model": body["model"],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        )

    # -- chat --

    def _chat(self, body: dict[str, Any]) -> httpx.Response:
        messages: list[dict[str, Any]] = body["messages"]
        system = messages[0].get("content") if messages and messages[0]["role"] == "system" else ""
        if system == SCORER_INSTRUCTIONS:
            return self._reply(body, text=_scores(messages[-1]["content"]))
        if system in (SUMMARIZER_INSTRUCTIONS, PART_INSTRUCTIONS):
            return self._reply(body, text=_summary(messages[-1]["content"]))
        if system == support.ROUTER_INSTRUCTIONS:
            if messages[-1]["role"] == "user":
                return self._reply(body, call=("transfer_to_billing_specialist", {}))
            return self._reply(body, text="Is there anything else I can help you with?")
        if system == support.SPECIALIST_INSTRUCTIONS:
            return self._specialist(body, messages)
        raise AssertionError(f"the scripted provider has no answer for a request starting {system!r:.120}")

    def _specialist(self, body: dict[str, Any], messages: list[dict[str, Any]]) -> httpx.Response:
        last = messages[-1]
        handed_off = last["role"] == "tool" and str(_called(messages, last["tool_call_id"])).startswith(
            "transfer_to_"
        )
        if last["role"] == "user" or handed_off:
            text = next(str(m["content"]) for m in reversed(messages) if m["role"] == "user")
            if text == support.FIRST_QUESTION:
                return self._reply(body, call=("lookup_charges", {"month": "2025-11"}))
            if text == support.PREFERENCE:
                content = "Send refunds to the customer's Visa card ending in 4242, never as store credit."
                return self._reply(body, call=("remember", {"key": "refund_preference", "content": content}))
            if text == recall.FOLLOW_UP:
                return self._reply(body, call=("recall", {"query": "refund card preference"}))
            if text == approval.QUESTION:
                return self._reply(body, call=("lookup_charges", {"month": "2025-12"}))
        if last["role"] == "tool" and not handed_off:
            name = _called(messages, last["tool_call_id"])
            result = (
                json.loads(last["content"]) if last["content"].startswith(("[", "{")) else last["content"]
            )
            if name == "lookup_charges":
                seen: dict[tuple[str, float], str] = {}
                for charge in result:
                    duplicate = seen.get((charge["date"], charge["amount"]))
                    if duplicate:
                        return self._reply(
                            body,
                            call=("issue_refund", {"charge_id": charge["id"], "reason": "duplicate charge"}),
                        )
                    seen[(charge["date"], charge["amount"])] = charge["id"]
                upgrade = next((c for c in result if "annual upgrade" in c["description"]), None)
                if upgrade is not None and _question(messages) == approval.QUESTION:
                    reason = "annual upgrade not requested"
                    return self._reply(
                        body, call=("issue_refund", {"charge_id": upgrade["id"], "reason": reason})
                    )
            if name == "issue_refund" and _question(messages) == approval.QUESTION:
                return self._reply(
                    body,
                    text=f"Done: I've refunded the ${result['amount']:.2f} annual upgrade "
                    f"({result['charge_id']}) you didn't ask for; refund {result['refund_id']} reaches your "
                    f"card in {result['arrives_in']}.",
                )
            if name == "issue_refund":
                return self._reply(
                    body,
                    text=f"You were charged $29.00 twice on 3 November (ch_1001 and {result['charge_id']}). "
                    f"I've refunded the duplicate, {result['charge_id']}: refund {result['refund_id']} for "
                    f"${result['amount']:.2f} reaches your card in {result['arrives_in']}.",
                )
            if name == "remember":
                return self._reply(
                    body,
                    text="Noted: from now on refunds go to your Visa ending in 4242, never store credit.",
                )
            if name == "recall":
                best = next((r["content"] for r in result if "Visa" in r["content"]), None)
                text = (
                    "Your refunds go to your Visa card ending in 4242, never as store credit, as you asked "
                    "on your last ticket."
                    if best
                    else "I don't have a refund preference on file; which card would you like?"
                )
                return self._reply(body, text=text)
        raise AssertionError(f"the scripted specialist has no answer after {json.dumps(last)[:200]}")

    def _reply(
        self, body: dict[str, Any], *, text: str | None = None, call: tuple[str, dict[str, Any]] | None = None
    ) -> httpx.Response:
        n = next(self._ids)
        message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
        if call is not None:
            message["tool_calls"] = [
                {
                    "id": f"call_demo_{n:03d}",
                    "type": "function",
                    "function": {"name": call[0], "arguments": json.dumps(call[1])},
                }
            ]
        prompt = count_tokens(body["messages"])
        completion = count_text_tokens(text or json.dumps(call))
        return httpx.Response(
            200,
            json={
                "id": f"chatcmpl-demo{n:04d}",
                "object": "chat.completion",
                "created": 1765000000 + n,
                "model": "gpt-4o-mini-2024-07-18",
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "logprobs": None,
                        "finish_reason": "tool_calls" if call else "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "total_tokens": prompt + completion,
                },
                "system_fingerprint": "fp_scripted",
            },
        )


def _words(text: str) -> list[str]:
    words = [w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in STOPWORDS]
    return [SYNONYMS.get(w, w) for w in words]


def _vector(text: str, dim: int) -> list[float]:
    """A hashed bag of words: texts sharing words are close, as real embeddings of them would be."""
    vector = [0.0] * dim
    for word in _words(text):
        vector[int(hashlib.sha1(word.encode()).hexdigest(), 16) % dim] += 1.0
    return vector


def _question(messages: list[dict[str, Any]]) -> str:
    """The customer's newest message."""
    return next(str(m["content"]) for m in reversed(messages) if m["role"] == "user")


def _called(messages: list[dict[str, Any]], call_id: str) -> str | None:
    for m in reversed(messages):
        for call in m.get("tool_calls") or ():
            if call["id"] == call_id:
                return str(call["function"]["name"])
    return None


def _scores(prompt: str) -> str:
    """Importance 0-10 for each `[seq] role: text` line: order problems matter, small talk does not."""
    scores = []
    for line in prompt.splitlines():
        match = re.match(r"\[(\d+)\] (\w+)", line)
        if not match:
            continue
        important = "#A-" in line or "order_id" in line or "lookup_order" in line
        score = (9 if match.group(2) == "user" else 7) if important else 1
        scores.append({"seq": int(match.group(1)), "score": score})
    return json.dumps({"scores": scores})


def _summary(prompt: str) -> str:
    """A summary written from the transcript it was sent (and the previous summary, if any)."""
    orders = sorted(set(re.findall(r"#(A-\d+)", prompt)))
    items = sorted(set(re.findall(r"\(([a-z0-9 ]+)\)", prompt)) & {p for p, _ in _products()})
    previous = "Previous summary:" in prompt
    text = (
        f"The customer reported problems with {len(orders)} orders"
        + (f" (#{orders[0]} to #{orders[-1]})" if orders else "")
        + (f" involving: {', '.join(items)}" if items else "")
        + ". Each time the assistant looked the order up and shipped a free replacement arriving "
        "within 3 days; the customer may keep or recycle the faulty item. Nothing is outstanding."
    )
    return text + (" (Merged with the earlier summary.)" if previous else "")


def _products() -> list[tuple[str, float]]:
    from agnt5.demo.backlog import PRODUCTS

    return PRODUCTS


async def author(output: Path) -> ScriptedOpenAI:
    """Run the demo against the scripted provider, recording every exchange to `output`."""
    provider = ScriptedOpenAI()
    with tempfile.TemporaryDirectory() as tmp:
        options = DemoOptions(
            database_url=f"sqlite:///{tmp}/author.db",
            cassette=output,
            upstream=provider,
            run_id="author",
            out=io.StringIO(),
            err=io.StringIO(),
        )
        await run_demo(options)
    return provider


def add_note(path: Path) -> None:
    """Say in the cassette itself that its responses are scripted (`agnt5 demo` prints the note)."""
    document = json.loads(path.read_text())
    noted = {"version": document.pop("version"), "note": NOTE, **document}
    path.write_text(json.dumps(noted, indent=2, ensure_ascii=False) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--output", type=Path, default=SHIPPED_CASSETTE, help=f"default {SHIPPED_CASSETTE}")
    args = parser.parse_args(argv)
    provider = asyncio.run(author(args.output))
    add_note(args.output)
    size = args.output.stat().st_size
    print(f"wrote {args.output}: {provider.requests} scripted exchanges, {size / 1024:.0f} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
