"""The scripted provider the notebooks' cassettes were authored against (this machine has no provider access).

It answers litellm's HTTP requests in OpenAI's wire format (`/v1/chat/completions`,
`/v1/embeddings`), so a cassette recorded from it has the same shape as one recorded from
api.openai.com. `author_cassettes.py` names one function per notebook in
AGNT5_CASSETTE_UPSTREAM (`scripted_provider:quickstart`, ...):

- Agent calls are answered from that notebook's script, in order (`SCRIPTS`); each step checks
  that the request is the one it was written for, so a changed notebook fails loudly. A notebook
  with concurrent runs takes the first unused step that matches instead (`any_order`).
- keep_important's scoring calls get heuristic scores (facts high, small talk low).
- summarize_old's calls get an extractive summary of the fact-bearing lines.
- Embeddings are hashed bags of words (with a few synonyms), so similar texts are near.

To record against the real provider instead, see README.md in this folder.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from agnt5.strategies.keep_important import SCORER_INSTRUCTIONS
from agnt5.strategies.summarize_old import PART_INSTRUCTIONS, SUMMARIZER_INSTRUCTIONS
from agnt5.tokens import count_text_tokens

CHAT_MODEL = "gpt-4o-mini-2024-07-18"


# --- script steps --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One agent reply: text, or tool calls [(name, arguments)]. `expect` must occur in the newest
    message of the request (the user input or a tool result) — a guard against a changed notebook."""

    text: str | None = None
    calls: tuple[tuple[str, dict[str, Any]], ...] = ()
    expect: str = ""


def say(text: str, expect: str = "") -> Step:
    return Step(text=text, expect=expect)


def call(name: str, arguments: Mapping[str, Any] | None = None, expect: str = "") -> Step:
    return Step(calls=((name, dict(arguments or {})),), expect=expect)


SCRIPTS: dict[str, list[Step]] = {
    "quickstart": [
        call("find_flights", {"destination": "Lisbon"}, expect="Which flights"),
        say(
            "Two direct flights from BER to Lisbon on Friday: TP 541 at 07:05 for €129, and "
            "FR 1893 at 17:40 for €84.",
            expect="TP 541",
        ),
        say("FR 1893 at 17:40 is the cheaper one: €84, which is €45 less than TP 541.", expect="cheaper"),
    ],
    "multi_agent": [
        # 1. a pipeline of agents on one shared session
        call("paper_search", {"query": "quantum error correction"}, expect="quantum error correction"),
        say(
            "Two recent papers: Google Quantum AI's surface-code experiment (Nature, 2023), where a "
            "larger logical qubit made fewer errors, and Harvard/QuEra's logical processor on "
            "reconfigurable atom arrays (Nature, 2024), which ran algorithms on 48 logical qubits.",
            expect="Suppressing quantum errors",
        ),
        say(
            "Error correction has crossed the break-even point: growing a surface code now lowers the "
            "logical error rate (2023). Neutral-atom arrays add flexible connectivity and ran the first "
            "algorithms on dozens of logical qubits (2024), so scaling is now an engineering question.",
            expect="Synthesize",
        ),
        # 2. the router pattern: a structured classification, then a specialist in Python
        say(
            json.dumps(
                {"category": "billing", "reason": "Upgrading changes the subscription plan and its price."}
            ),
            expect="upgrade my subscription",
        ),
        call("get_subscription", expect="Continue from coordinator"),
        say(
            "You're on Starter at €9/month, renewing on 1 April. Pro is €29/month and adds team seats and "
            "priority support; upgrading now charges €20 for the rest of this month. Shall I switch you?",
            expect="Starter",
        ),
        # 3. handoffs inside one run
        call("transfer_to_billing_specialist", expect="charged twice"),
        call("list_charges", {"month": "2024-03"}, expect="Transferred to billing_specialist"),
        call("refund_charge", {"charge_id": "ch_1002"}, expect="ch_1002"),
        say(
            "You were charged €29 twice on 3 March (ch_1001 and ch_1002). I've refunded the duplicate, "
            "ch_1002; the €29 will be back on your card within 5 business days.",
            expect="refunded",
        ),
    ],
    "memory": [
        call(
            "remember",
            {"key": "ibuprofen_allergy", "content": "Allergic to ibuprofen (reported by their doctor)"},
            expect="ibuprofen",
        ),
        say("Noted: I've added your ibuprofen allergy to your record.", expect="Remembered"),
        call("recall", {"query": "drug allergies, painkillers, headaches", "limit": 3}, expect="headache"),
        say(
            "Your record lists allergies to ibuprofen and to penicillin and sulfa drugs, so avoid ibuprofen "
            "and other NSAIDs. Paracetamol is usually the safe choice for a headache; with your history of "
            "migraines, tell your doctor if this one feels different. Check the dose with your pharmacist.",
            expect="ibuprofen",
        ),
    ],
    "pruning": [],  # only keep_important and summarize_old call the model there
    "agents_in_an_app": [
        # 1. instructions that see state (the system message carries the rendered state)
        say(
            "O estado da arte: em 2023 a Google Quantum AI mostrou (Nature) que um código de superfície "
            "maior comete menos erros lógicos, e em 2024 a Harvard/QuEra executou algoritmos em 48 qubits "
            "lógicos com átomos neutros (Nature).",
            expect="state of the art",
        ),
        say(
            'Start with Bluvstein et al., "Logical quantum processor based on reconfigurable atom arrays" '
            "(Nature, 2024), the clearest account of what neutral atoms already do with logical qubits. "
            "Then read a PRX Quantum review of Rydberg-atom gates for the physics behind it.",
            expect="read first",
        ),
        # 2. the output guardrail's case: the answer passes on the staff note's internal link
        say(
            "Declined payments are listed with their reason under Account → Payments. For the full "
            "details, see https://billing.acme.internal/declines.",
            expect="payment was declined",
        ),
        # 3. two users' runs of one agent, concurrently (any order: see ScriptedProvider.any_order)
        call("list_orders", expect="my orders"),
        call("list_orders", expect="my orders"),
        say("Your order A-1001 (headphones) shipped on 2 May.", expect="A-1001"),
        say(
            "You have two orders: B-2001, the kettle, was delivered, and B-2002, four mugs, is being packed.",
            expect="B-2001",
        ),
    ],
    "mcp": [
        # 1. a run that opens the MCP server itself
        call("stock", {"item": "pears"}, expect="out of pears"),
        call("reorder", {"item": "pears", "quantity": 30}, expect="0"),
        say(
            "Yes, we were out of pears, so I reordered 30; they will be in stock after delivery.", expect="30"
        ),
        # 2. two runs on one open connection: the second sees what the first ordered
        call("reorder", {"item": "plums", "quantity": 20}, expect="20 more plums"),
        say("Done: 20 plums are on order, which makes 60 once they arrive.", expect="60 in stock"),
        call("stock", {"item": "plums"}, expect="How many plums"),
        say("We have 60 plums.", expect="60"),
    ],
    "approvals": [
        # 1. one turn: the lookup runs, the €120 refund waits; approved, the model answers
        Step(
            calls=(
                ("lookup_order", {"order_id": "A-1001"}),
                ("refund", {"order_id": "A-1001", "amount_eur": 120}),
            ),
            expect="A-1001",
        ),
        say(
            "Sorry about the broken espresso machine. I've refunded €120.00 for order A-1001; it reaches "
            "your card in 3-5 days.",
            expect="Refunded €120.00",
        ),
        # 2. the €80 refund waits and is denied: the model tells the customer why
        Step(
            calls=(
                ("lookup_order", {"order_id": "B-2002"}),
                ("refund", {"order_id": "B-2002", "amount_eur": 80}),
            ),
            expect="B-2002",
        ),
        say(
            "I'm sorry, I can't refund order B-2002: the milk frother was delivered 5 weeks ago, which is "
            "outside our 30-day return window.",
            expect="Denied",
        ),
    ],
}


def is_agent_request(body: Mapping[str, Any]) -> bool:
    """Whether a chat request comes from an Agent (scripted) rather than a pruning strategy."""
    messages = body["messages"]
    system = messages[0]["content"] if messages and messages[0]["role"] == "system" else ""
    return system not in (SCORER_INSTRUCTIONS, SUMMARIZER_INSTRUCTIONS, PART_INSTRUCTIONS)


# --- the provider --------------------------------------------------------------------------------


@dataclass
class ScriptedProvider:
    """An httpx request → response function, usable as `Cassette(upstream=...)`."""

    name: str
    steps: list[Step]
    any_order: bool = False
    """False: steps answer requests in order. True (concurrent runs): a request takes the first
    unused step whose `expect` it matches."""
    used: int = 0
    taken: set[int] = field(default_factory=set)
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if request.url.path.endswith("/embeddings"):
            return _embeddings(body)
        if not request.url.path.endswith("/chat/completions"):
            raise AssertionError(f"the scripted provider does not serve {request.url}")
        if body.get("stream"):
            raise AssertionError("the scripted provider does not stream; use agent.run, not agent.stream")
        if is_agent_request(body):
            return self._agent(body)
        prompt = body["messages"][-1]["content"]
        if body["messages"][0]["content"] == SCORER_INSTRUCTIONS:
            return self._chat(body, json.dumps({"scores": _scores(prompt)}))
        return self._chat(body, _summary(prompt))

    def _agent(self, body: dict[str, Any]) -> httpx.Response:
        newest = json.dumps(body["messages"][-1], ensure_ascii=False)
        left = [i for i in range(len(self.steps)) if i not in self.taken]
        if self.any_order:
            left = [i for i in left if self.steps[i].expect in newest] or left
        if not left:
            raise AssertionError(
                f"{self.name}: the script has no step left for this request: {body['messages'][-1]}"
            )
        self.taken.add(left[0])
        step = self.steps[left[0]]
        self.used += 1
        if step.expect not in newest:
            raise AssertionError(f"{self.name} step {self.used}: expected {step.expect!r} in {newest[:400]}")
        offered = {t["function"]["name"] for t in body.get("tools") or ()}
        for name, _ in step.calls:
            if name not in offered:
                raise AssertionError(
                    f"{self.name} step {self.used}: tool {name!r} is not offered ({offered})"
                )
        calls = [
            {
                "id": f"call_{self.name}_{next(self.ids):03d}",
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(arguments)},
            }
            for name, arguments in step.calls
        ]
        return self._chat(body, step.text, calls)

    def _chat(
        self, body: dict[str, Any], text: str | None, calls: list[dict[str, Any]] | None = None
    ) -> httpx.Response:
        prompt = count_text_tokens(json.dumps(body["messages"], ensure_ascii=False))
        completion = count_text_tokens(text or json.dumps(calls))
        message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
        if calls:
            message["tool_calls"] = calls
        return httpx.Response(
            200,
            json={
                "id": f"chatcmpl-{self.name}-{next(self.ids):04d}",
                "object": "chat.completion",
                "created": 1727000000,
                "model": CHAT_MODEL,
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "logprobs": None,
                        "finish_reason": "tool_calls" if calls else "stop",
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


# --- keep_important scores and summarize_old summaries ------------------------------------------

_LINE = re.compile(r"^\[(\d+)\] (\w+)[^:]*: (.*)$")
_FACT = re.compile(r"budget|deadline|allergic|important|must|never|prefer|decid|agreed|owns", re.IGNORECASE)
_SMALL_TALK = re.compile(
    r"^(hi|hello|thanks|thank you|haha|great|you're welcome|all good|ok)\b", re.IGNORECASE
)


def _importance(text: str) -> int:
    if _FACT.search(text) and not text.rstrip().endswith("?"):
        return 9
    if _SMALL_TALK.match(text.strip()) or len(text) < 40:
        return 1
    return 5


def _scores(request: str) -> list[dict[str, int]]:
    """Importance 0-10 for each `[seq] role: text` line of a keep_important request."""
    out = []
    for line in request.splitlines():
        match = _LINE.match(line)
        if match:
            out.append({"seq": int(match.group(1)), "score": _importance(match.group(3))})
    return out


def _summary(request: str) -> str:
    """An extractive summary: the previous summary's points plus every new fact-bearing user line."""
    points: list[str] = []
    previous, _, new = request.partition("New messages:\n")
    for line in previous.removeprefix("Previous summary:\n").splitlines():
        if line.startswith("- "):
            points.append(line)
    for line in new.splitlines():
        speaker, _, text = line.partition(": ")
        if speaker.startswith(("user", "Part")) and _FACT.search(text) and not text.rstrip().endswith("?"):
            point = f"- {text.strip()}"
            if point not in points:
                points.append(point)
    return "Key facts so far:\n" + "\n".join(points or ["- small talk only"])


# --- embeddings ----------------------------------------------------------------------------------

_SYNONYMS = {
    "antibiotics": "penicillin",
    "antibiotic": "penicillin",
    "amoxicillin": "penicillin",
    "painkiller": "ibuprofen",
    "painkillers": "ibuprofen",
    "allergies": "allergic",
    "allergy": "allergic",
    "drugs": "drug",
    "medication": "drug",
    "medications": "drug",
    "headache": "migraines",
    "headaches": "migraines",
    "food": "diet",
    "eat": "diet",
}


def _vector(text: str, dimensions: int) -> list[float]:
    vector = [0.0] * dimensions
    for word in re.findall(r"[a-z]+", text.lower()):
        word = _SYNONYMS.get(word, word)
        bucket = int(hashlib.sha256(word.encode()).hexdigest(), 16) % dimensions
        vector[bucket] += 1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [round(v / norm, 4) for v in vector]


def _embeddings(body: dict[str, Any]) -> httpx.Response:
    inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
    dimensions = int(body.get("dimensions") or 1536)
    tokens = sum(count_text_tokens(text) for text in inputs)
    return httpx.Response(
        200,
        json={
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": _vector(text, dimensions)}
                for i, text in enumerate(inputs)
            ],
            "model": body.get("model", "text-embedding-3-small"),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        },
    )


# --- one upstream per notebook (AGNT5_CASSETTE_UPSTREAM=scripted_provider:<name>) ----------------

quickstart = ScriptedProvider("quickstart", SCRIPTS["quickstart"])
multi_agent = ScriptedProvider("multi_agent", SCRIPTS["multi_agent"])
memory = ScriptedProvider("memory", SCRIPTS["memory"])
pruning = ScriptedProvider("pruning", SCRIPTS["pruning"])
agents_in_an_app = ScriptedProvider("agents_in_an_app", SCRIPTS["agents_in_an_app"], any_order=True)
mcp = ScriptedProvider("mcp", SCRIPTS["mcp"])
approvals = ScriptedProvider("approvals", SCRIPTS["approvals"])
