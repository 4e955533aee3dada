"""Tool calls that wait for approval: pause, durable pending calls, resume in another process,
denial, concurrent resumes, bad approvals, handoffs, streaming, structured output, deps."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pydantic
import pytest
from conftest import StoreEnv
from test_pending_calls import PROVIDERS, send

from agnt5 import Agent, Denial, RunContext, Session, tool
from agnt5 import pending_approvals as pending_calls
from agnt5.agent_events import FinalResult, RunPaused, ToolResultEvent
from agnt5.agent_run import Run
from agnt5.approvals import DENIED_TEXT, INTERRUPTED_TEXT
from agnt5.errors import (
    Agnt5Error,
    ApprovalConflictError,
    ApprovalError,
    ApprovalNotPendingError,
    ImmutableSessionError,
    InvalidTypeError,
    PendingApprovalError,
    StepInProgressError,
    ToolDefinitionError,
)
from agnt5.journal import NAMESPACE
from agnt5.store.base import Store
from agnt5.testing.function_model import FunctionModel

WORKER = Path(__file__).parent / "_approval_worker.py"
call = FunctionModel.tool_call


class Log:
    """What the tools did, in order."""

    def __init__(self) -> None:
        self.ran: list[str] = []


def shop(log: Log, approve_above: int = 100) -> tuple[Any, Any]:
    @tool(requires_approval=lambda ctx, args: args.get("amount", 0) > approve_above)
    async def refund(order: str, amount: int) -> str:
        """Refund an order."""
        log.ran.append(f"refund {order} {amount}")
        return f"refunded {amount} on {order}"

    @tool
    def lookup(order: str) -> str:
        """Read an order."""
        log.ran.append(f"lookup {order}")
        return f"{order}: paid"

    return refund, lookup


def refund_then_answer(amount: int = 250, with_lookup: bool = True) -> Any:
    """Asks for a refund (and a lookup in the same turn), then answers with what the tools said."""

    def fn(messages: list[dict[str, Any]], info: Any) -> Any:
        if messages[-1]["role"] == "user":
            calls = [call("refund", {"order": "o1", "amount": amount})]
            return [*calls, call("lookup", {"order": "o1"})] if with_lookup else calls
        return "answer: " + " / ".join(str(m["content"]) for m in messages if m["role"] == "tool")

    return fn


def strict_model(fn: Any) -> FunctionModel:
    """A FunctionModel that fails the test if a request carries a call without its result."""

    def checked(messages: list[dict[str, Any]], info: Any) -> Any:
        for i, m in enumerate(messages):
            if m.get("role") == "assistant" and m.get("tool_calls"):
                ids = [c["id"] for c in m["tool_calls"]]
                answers = [x.get("tool_call_id") for x in messages[i + 1 : i + 1 + len(ids)]]
                assert answers == ids, f"request carries calls {ids} answered by {answers}"
        return fn(messages, info)

    return FunctionModel(checked)


# --- pause and resume ----------------------------------------------------------------------------


async def test_a_call_needing_approval_pauses_the_run_and_the_other_calls_run(store: Store) -> None:
    log = Log()
    agent = Agent("support", model=strict_model(refund_then_answer()), tools=list(shop(log)))
    result = await agent.run("refund o1", session=Session("s", store=store))
    assert result.paused and result.output is None
    [pending] = result.pending
    assert (pending.tool, pending.arguments, pending.agent, pending.session_id) == (
        "refund",
        {"order": "o1", "amount": 250},
        "support",
        "s",
    )
    assert log.ran == ["lookup o1"]  # the call needing no approval ran
    fresh = Session("s", store=store)  # as another process sees it
    assert [m["role"] for m in await fresh.history()] == ["user"]  # no unanswered call in the history
    assert await pending_calls(fresh) == result.pending
    types = [e.type for e in await fresh.events()]
    assert types[-2:] == ["approval_requested", "agent_run_paused"]

    done = await agent.run(None, session=fresh, approvals={pending.call_id: True}, approved_by="maria")
    assert not done.paused
    assert done.output == "answer: refunded 250 on o1 / o1: paid"
    assert log.ran == ["lookup o1", "refund o1 250"]  # the lookup's stored result was reused
    history = await Session("s", store=store).history()
    assert [m["role"] for m in history] == ["user", "assistant", "tool", "tool", "assistant"]
    assert await pending_calls(fresh) == []
    decided = [e.data for e in await fresh.events() if e.type == "approval_decided"]
    assert len(decided) == 1
    assert decided[0]["decision"] == "approved" and decided[0]["approved_by"] == "maria"
    assert decided[0]["call_id"] == pending.call_id and decided[0]["decided_at"] >= decided[0]["requested_at"]


async def test_a_denied_call_never_runs_and_the_model_reads_the_denial(store: Store) -> None:
    log = Log()
    agent = Agent("support", model=strict_model(refund_then_answer(with_lookup=False)), tools=list(shop(log)))
    paused = await agent.run("refund o1", session=Session("d", store=store))
    call_id = paused.pending[0].call_id
    done = await agent.run(
        None, session=Session("d", store=store), approvals={call_id: Denial("over the limit")}
    )
    assert log.ran == []
    assert done.output == "answer: " + DENIED_TEXT.format(reason=" (over the limit)")
    [event] = [e.data for e in await Session("d", store=store).events() if e.type == "approval_decided"]
    assert (
        event["decision"] == "denied" and event["reason"] == "over the limit" and event["approved_by"] is None
    )
    plain = await agent.run("refund o1 again", session=Session("d2", store=store))
    done = await agent.run(
        None, session=Session("d2", store=store), approvals={plain.pending[0].call_id: False}
    )
    assert done.output == "answer: " + DENIED_TEXT.format(reason="")


async def test_small_amounts_need_no_approval_and_async_rules_work() -> None:
    log = Log()

    async def above(ctx: RunContext[int], args: dict[str, Any]) -> bool:
        await asyncio.sleep(0)
        return int(args["amount"]) > ctx.deps

    @tool(requires_approval=above)
    def refund(order: str, amount: int) -> str:
        """Refund."""
        log.ran.append(f"refund {amount}")
        return "ok"

    agent: Agent[int, str] = Agent(
        "support", model=FunctionModel(refund_then_answer(50, False)), tools=[refund], deps_type=int
    )
    assert not (await agent.run("small", deps=100)).paused
    assert (await agent.run("small", deps=10)).paused
    assert log.ran == ["refund 50"]


async def test_a_failing_approval_rule_stops_the_turn_before_any_tool_runs(store: Store) -> None:
    log = Log()

    def broken(ctx: RunContext[Any], args: dict[str, Any]) -> bool:
        raise KeyError("limit")

    @tool(requires_approval=broken)
    def refund(order: str, amount: int) -> str:
        """Refund."""
        log.ran.append("refund")
        return "ok"

    _, lookup = shop(log)
    agent = Agent("support", model=FunctionModel(refund_then_answer()), tools=[refund, lookup])
    with pytest.raises(ApprovalError, match="requires_approval check of tool 'refund' raised KeyError"):
        await agent.run("refund", session=Session("b", store=store))
    assert log.ran == []
    assert [m["role"] for m in await Session("b", store=store).history()] == ["user"]
    assert await pending_calls(Session("b", store=store)) == []


def ping() -> str:
    """A tool."""
    return "pong"


def test_bad_tool_flags_are_refused() -> None:
    with pytest.raises(ToolDefinitionError, match="requires_approval must be True, False or a function"):
        tool(requires_approval="yes")(ping)  # type: ignore[call-overload]
    with pytest.raises(ToolDefinitionError, match="idempotent must be True or False"):
        tool(idempotent=1)(ping)


# --- resuming wrongly ----------------------------------------------------------------------------


async def test_approvals_for_unknown_or_decided_calls_are_refused_before_anything_runs(store: Store) -> None:
    log = Log()
    agent = Agent(
        "support", model=FunctionModel(refund_then_answer(with_lookup=False)), tools=list(shop(log))
    )
    session = Session("u", store=store)
    with pytest.raises(ApprovalNotPendingError, match="no call waits for approval under id 'nope'"):
        await agent.run(None, session=session, approvals={"nope": True})
    paused = await agent.run("refund", session=session)
    call_id = paused.pending[0].call_id
    with pytest.raises(ApprovalNotPendingError, match="'nope'") as caught:
        await agent.run(None, session=session, approvals={call_id: True, "nope": True})
    assert caught.value.call_ids == ["nope"] and isinstance(caught.value, ValueError)
    assert log.ran == [] and await pending_calls(session) == paused.pending  # nothing decided
    await agent.run(None, session=session, approvals={call_id: True})
    with pytest.raises(ApprovalNotPendingError, match="already decided or ran"):
        await agent.run(None, session=session, approvals={call_id: False})
    assert log.ran == ["refund o1 250"]
    for bad in ([call_id], {call_id: "yes"}, {1: True}):
        with pytest.raises(InvalidTypeError, match="approvals"):
            await agent.run(None, session=session, approvals=bad)  # type: ignore[arg-type]


async def test_new_input_while_calls_wait_is_refused_and_nothing_is_stored(store: Store) -> None:
    log = Log()
    agent = Agent(
        "support", model=FunctionModel(refund_then_answer(with_lookup=False)), tools=list(shop(log))
    )
    session = Session("n", store=store)
    paused = await agent.run("refund", session=session)
    before = await session.history()
    with pytest.raises(PendingApprovalError, match="waiting for approval") as caught:
        await agent.run("hello?", session=Session("n", store=store))
    assert caught.value.pending == paused.pending
    assert await Session("n", store=store).history() == before
    # Resuming without a decision leaves the run paused, nothing run.
    again = await agent.run(None, session=Session("n", store=store))
    assert again.paused and again.pending == paused.pending and log.ran == []


async def test_concurrent_resumes_of_the_same_call_run_the_tool_once(store_env: StoreEnv) -> None:
    log = Log()
    agent = Agent(
        "support", model=FunctionModel(refund_then_answer(with_lookup=False)), tools=list(shop(log))
    )
    first = store_env.open()
    try:
        paused = await agent.run("refund", session=Session("c", store=first))
        call_id = paused.pending[0].call_id
        stores = [store_env.open() for _ in range(4)]  # four "processes"
        try:
            outcomes = await asyncio.gather(
                *(agent.run(None, session=Session("c", store=s), approvals={call_id: True}) for s in stores),
                return_exceptions=True,
            )
        finally:
            for s in stores:
                await s.close()
        wins = [o for o in outcomes if not isinstance(o, BaseException)]
        losses = [o for o in outcomes if isinstance(o, BaseException)]
        assert len(wins) == 1 and wins[0].output == "answer: refunded 250 on o1", outcomes
        # A resume that read the call as waiting loses the claim; one that starts after the
        # winner stored the step finds it decided. Both are typed; neither ran anything.
        assert all(
            isinstance(o, ApprovalConflictError)
            or (isinstance(o, ApprovalNotPendingError) and "already decided" in str(o))
            for o in losses
        ), losses
        assert log.ran == ["refund o1 250"]
        history = await Session("c", store=first).history()
        assert [m["role"] for m in history] == ["user", "assistant", "tool", "assistant"]
    finally:
        await first.close()


async def test_an_immutable_session_keeps_its_waiting_calls_until_they_are_decided(store: Store) -> None:
    log = Log()
    agent = Agent(
        "support", model=FunctionModel(refund_then_answer(with_lookup=False)), tools=list(shop(log))
    )
    session = Session("i", retention={"immutable": True}, store=store)
    paused = await agent.run("refund", session=session)
    with pytest.raises(ImmutableSessionError):
        await Session("i", store=store).delete()
    assert await pending_calls(Session("i", store=store)) == paused.pending  # the journal survived
    done = await agent.run(
        None, session=Session("i", store=store), approvals={paused.pending[0].call_id: True}
    )
    assert done.output == "answer: refunded 250 on o1" and log.ran == ["refund o1 250"]


async def test_deleting_a_session_drops_its_waiting_calls(store: Store) -> None:
    agent = Agent("support", model=FunctionModel(refund_then_answer()), tools=list(shop(Log())))
    await agent.run("refund", session=Session("x", store=store))
    assert await store.kv_get(NAMESPACE, "x") is not None
    await Session("x", store=store).delete()
    assert await store.kv_get(NAMESPACE, "x") is None
    assert await pending_calls(Session("x", store=store)) == []


# --- across processes ----------------------------------------------------------------------------


def _worker(env: StoreEnv, log: Path, *args: str) -> Any:
    root = str(Path(__file__).resolve().parents[1])
    done = subprocess.run(
        [sys.executable, str(WORKER), env.url, "p", str(log), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": root, "PATH": "/usr/bin:/bin", "AGNT5_DISABLE_NETWORK": "1"},
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize("decision", ["approve", "deny"])
async def test_a_week_old_pending_call_is_decided_from_another_process(
    store_env: StoreEnv, tmp_path: Path, decision: str
) -> None:
    log = tmp_path / "refunds.log"
    [pending] = _worker(store_env, log, "ask")
    assert time.time() - pending["requested_at"] > 6.9 * 24 * 3600  # the worker's clock was a week back
    store = store_env.open()
    try:
        [listed] = await pending_calls(Session("p", store=store))
        assert (
            listed.call_id == pending["call_id"]
            and listed.requested_at.timestamp() == pending["requested_at"]
        )
    finally:
        await store.close()
    answer = _worker(store_env, log, decision, pending["call_id"])["answer"]
    if decision == "approve":
        assert answer == "Result: refunded 250 on o9"
        assert log.read_text() == "o9 250\n"
    else:
        assert answer == "Result: " + DENIED_TEXT.format(reason=" (over the monthly limit)")
        assert not log.exists()
    store = store_env.open()
    try:
        events = [e.data for e in await Session("p", store=store).events() if e.type == "approval_decided"]
        assert [(e["approved_by"], e["decision"]) for e in events] == [
            ("maria", "approved" if decision == "approve" else "denied")
        ]
        assert events[0]["decided_at"] - events[0]["requested_at"] > 6.9 * 24 * 3600
    finally:
        await store.close()


# --- handoffs, streaming, structured output, run-local sessions ----------------------------------


async def test_a_pending_call_of_a_specialist_resumes_in_that_specialist(store: Store) -> None:
    log = Log()
    seen: list[str] = []

    def specialist_model(messages: list[dict[str, Any]], info: Any) -> Any:
        seen.append("billing")
        if "Transferred" in str(messages[-1]["content"]):  # the handoff's result: its first turn
            return call("refund", {"order": "o1", "amount": 250})
        return f"answer: {messages[-1]['content']}"

    def router_model(messages: list[dict[str, Any]], info: Any) -> Any:
        seen.append("router")
        return call("transfer_to_billing")

    billing = Agent("billing", model=FunctionModel(specialist_model), tools=list(shop(log)))
    router = Agent("router", model=FunctionModel(router_model), handoffs=[billing])
    paused = await router.run("refund please", session=Session("h", store=store))
    assert paused.pending[0].agent == "billing" and paused.agent_name == "billing"
    done = await router.run(
        None, session=Session("h", store=store), approvals={paused.pending[0].call_id: True}
    )
    assert done.agent_name == "billing" and done.output == "answer: refunded 250 on o1"
    assert seen == ["router", "billing", "billing"]  # the router was not asked again
    assert log.ran == ["refund o1 250"]


async def test_streaming_ends_with_a_run_paused_event(store: Store) -> None:
    agent = Agent("support", model=FunctionModel(refund_then_answer()), tools=list(shop(Log())))
    events = [e async for e in agent.stream("refund", session=Session("st", store=store))]
    assert isinstance(events[-1], RunPaused) and not any(isinstance(e, FinalResult) for e in events)
    assert [e.name for e in events if isinstance(e, ToolResultEvent)] == ["lookup"]
    call_id = events[-1].result.pending[0].call_id
    resumed = [
        e async for e in agent.stream(None, session=Session("st", store=store), approvals={call_id: True})
    ]
    assert isinstance(resumed[-1], FinalResult)
    assert [e.name for e in resumed if isinstance(e, ToolResultEvent)] == ["refund"]


class Refund(pydantic.BaseModel):
    order: str
    refunded: bool


async def test_structured_output_after_an_approval(store: Store) -> None:
    def fn(messages: list[dict[str, Any]], info: Any) -> Any:
        if messages[-1]["role"] == "user":
            return call("refund", {"order": "o1", "amount": 500})
        return Refund(order="o1", refunded="refunded" in str(messages[-1]["content"]))

    agent = Agent("support", model=FunctionModel(fn), tools=list(shop(Log())), output_type=Refund)
    paused = await agent.run("refund", session=Session("so", store=store))
    done = await agent.run(
        None, session=Session("so", store=store), approvals={paused.pending[0].call_id: True}
    )
    assert done.output == Refund(order="o1", refunded=True)


async def test_a_run_without_a_session_resumes_on_its_result_session() -> None:
    log = Log()
    agent = Agent("support", model=FunctionModel(refund_then_answer()), tools=list(shop(log)))
    paused = await agent.run("refund")
    assert paused.session is not None
    done = await agent.run(None, session=paused.session, approvals={paused.pending[0].call_id: True})
    assert done.output == "answer: refunded 250 on o1 / o1: paid"


# --- the journal as a crash leaves it ------------------------------------------------------------


async def test_results_are_journalled_as_each_completes_and_reused_after_a_stop(store: Store) -> None:
    log = Log()
    release = asyncio.Event()

    @tool
    async def charge(order: str) -> str:
        """Charge (not safe to repeat)."""
        log.ran.append("charge")
        return "charged"

    @tool
    async def ship(order: str) -> str:
        """Ship (not safe to repeat)."""
        log.ran.append("ship started")
        await release.wait()
        return "shipped"

    @tool(idempotent=True)
    async def track(order: str) -> str:
        """Tracking (safe to repeat)."""
        log.ran.append("track started")
        await release.wait()
        return "on its way"

    def fn(messages: list[dict[str, Any]], info: Any) -> Any:
        if messages[-1]["role"] == "user":
            return [
                call("charge", {"order": "o"}),
                call("ship", {"order": "o"}),
                call("track", {"order": "o"}),
            ]
        return " / ".join(str(m["content"]) for m in messages if m["role"] == "tool")

    agent = Agent("ops", model=strict_model(fn), tools=[charge, ship, track])
    task = asyncio.create_task(agent.run("go", session=Session("j", store=store)))
    while len(log.ran) < 3:  # noqa: ASYNC110 (polls what the tools did)
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)  # charge's result reaches the journal
    task.cancel()  # the process "dies" while ship and track run
    with pytest.raises(asyncio.CancelledError):
        await task
    release.set()
    done = await agent.run(None, session=Session("j", store=store))
    assert done.output == f"charged / {INTERRUPTED_TEXT} / on its way"
    assert log.ran.count("charge") == 1 and log.ran.count("ship started") == 1  # neither ran again
    assert log.ran.count("track started") == 2  # the idempotent one did
    events = [
        e.data["name"] for e in await Session("j", store=store).events() if e.type == "tool_call_interrupted"
    ]
    assert events == ["ship"]


@pytest.mark.parametrize(
    ("model", "url", "reply", "problems"), PROVIDERS, ids=["openai", "anthropic", "gemini"]
)
async def test_the_resumed_history_is_valid_for_each_provider(
    store: Store, model: str, url: str, reply: Any, problems: Any
) -> None:
    agent = Agent("support", model=FunctionModel(refund_then_answer()), tools=list(shop(Log())))
    paused = await agent.run("refund", session=Session("w", store=store))
    waiting = [dict(m) for m in await Session("w", store=store).history()]
    assert (
        problems(
            await send(model, url, reply, [{"role": m["role"], "content": m["content"]} for m in waiting])
        )
        == []
    )
    await agent.run(None, session=Session("w", store=store), approvals={paused.pending[0].call_id: True})
    from agnt5.messages import to_provider_messages

    history = to_provider_messages(await Session("w", store=store).history())
    assert problems(await send(model, url, reply, history)) == []


def test_approval_errors_are_agnt5_errors() -> None:
    for cls in (ApprovalError, ApprovalConflictError, ApprovalNotPendingError, PendingApprovalError):
        assert issubclass(cls, Agnt5Error)


async def test_a_call_written_elsewhere_to_a_tool_needing_approval_never_runs_unasked(store: Store) -> None:
    log = Log()
    session = Session("e", store=store)
    asked = {
        "id": "c9",
        "type": "function",
        "function": {"name": "refund", "arguments": '{"order": "o1", "amount": 900}'},
    }
    await session.send_messages(
        [{"role": "user", "content": "refund"}, {"role": "assistant", "content": None, "tool_calls": [asked]}]
    )
    agent = Agent("support", model=strict_model(lambda m, i: f"{len(m)} messages"), tools=list(shop(log)))
    result = await agent.run("status?", session=Session("e", store=store))
    assert log.ran == [] and not result.paused
    assert result.output == "2 messages"  # the unanswered call was left out of the prompt


async def test_resuming_with_an_agent_that_cannot_reach_the_waiting_one_is_refused(store: Store) -> None:
    log = Log()
    billing = Agent(
        "billing", model=FunctionModel(refund_then_answer(with_lookup=False)), tools=list(shop(log))
    )
    paused = await billing.run("refund", session=Session("r", store=store))
    stranger = Agent("stranger", model=FunctionModel(lambda m, i: "hello"))
    with pytest.raises(
        ApprovalError, match="belongs to agent 'billing', which agent 'stranger' cannot reach"
    ):
        await stranger.run(
            None, session=Session("r", store=store), approvals={paused.pending[0].call_id: True}
        )
    assert log.ran == [] and await pending_calls(Session("r", store=store)) == paused.pending


async def test_approved_by_must_be_text() -> None:
    agent = Agent("support", model=FunctionModel(refund_then_answer()), tools=list(shop(Log())))
    with pytest.raises(InvalidTypeError, match="approved_by must be a string"):
        await agent.run(None, approvals={}, approved_by=7)  # type: ignore[arg-type]


# --- leases: steps another run is executing ------------------------------------------------------


async def test_a_step_another_run_executes_is_left_to_it_until_its_lease_expires(
    store_env: StoreEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agnt5 import journal

    monkeypatch.setattr(journal, "LEASE_SECONDS", 0.6)  # renewed every 0.2 s while the tool runs
    release, started = asyncio.Event(), asyncio.Event()
    ran: list[str] = []

    @tool
    async def charge(order: str) -> str:
        """Charge (not safe to repeat)."""
        ran.append(order)
        started.set()
        await release.wait()
        return "charged"

    def fn(messages: list[dict[str, Any]], info: Any) -> Any:
        if messages[-1]["role"] == "user" and messages[-1]["content"] == "charge o1":
            return call("charge", {"order": "o1"})
        return f"seen: {messages[-1]['content']}"

    agent = Agent("ops", model=FunctionModel(fn), tools=[charge])
    first, second = store_env.open(), store_env.open()
    try:
        task = asyncio.create_task(agent.run("charge o1", session=Session("l", store=first)))
        await started.wait()
        with pytest.raises(StepInProgressError, match="in this process") as in_process:
            await agent.run(None, session=Session("l", store=second))
        assert in_process.value.lease_until == 0.0
        [step_id] = journal.LIVE
        journal.LIVE.discard(step_id)  # as a run of another process sees it: only the lease tells
        await asyncio.sleep(0.5)  # beyond the first lease: the renewals keep it
        with pytest.raises(StepInProgressError, match="UTC at least") as elsewhere:
            await agent.run(None, session=Session("l", store=second))
        assert (
            isinstance(elsewhere.value, ApprovalConflictError) and elsewhere.value.lease_until > time.time()
        )
        other = await agent.run("hello", session=Session("l", store=second))  # new input goes on
        assert other.output == "seen: hello" and ran == ["o1"]
        release.set()
        assert (await task).output == "seen: charged"
    finally:
        await first.close()
        await second.close()


async def test_a_stopped_runs_lease_expires_and_the_step_is_resumed(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agnt5 import journal

    monkeypatch.setattr(journal, "LEASE_SECONDS", 0.3)
    ran: list[str] = []

    @tool
    async def charge(order: str) -> str:
        """Charge (not safe to repeat)."""
        ran.append(order)
        await asyncio.sleep(30)
        return "charged"

    def fn(messages: list[dict[str, Any]], info: Any) -> Any:
        return (
            call("charge", {"order": "o1"})
            if messages[-1]["role"] == "user"
            else str(messages[-1]["content"])
        )

    agent = Agent("ops", model=FunctionModel(fn), tools=[charge])
    task = asyncio.create_task(agent.run("charge o1", session=Session("x", store=store)))
    while not ran:  # noqa: ASYNC110 (polls what the tool did)
        await asyncio.sleep(0.01)
    step_id = next(iter(journal.LIVE))
    journal.LIVE.discard(step_id)  # the process "dies": nothing renews the lease any more...
    task.get_loop().call_soon(task.cancel)
    monkeypatch.setattr(Run, "drop_leases", _keep_leases)  # ...and nothing releases it
    with pytest.raises(asyncio.CancelledError):
        await task
    with pytest.raises(StepInProgressError):
        await agent.run(None, session=Session("x", store=store))
    await asyncio.sleep(0.35)
    done = await agent.run(None, session=Session("x", store=store))
    assert done.output == INTERRUPTED_TEXT and ran == ["o1"]


async def _keep_leases(self: Any) -> None:
    return None
