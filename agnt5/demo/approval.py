"""Part 7 of the demo: a refund above the limit waits for a person's approval; the run pauses, the
pending call is stored with the session, and a run in "another process" (a fresh Session and
Agent on the same database) approves it and finishes."""

from __future__ import annotations

import json
from typing import Any

from agnt5.agent import Agent, AgentResult
from agnt5.approvals import PendingCall
from agnt5.cli.render import clip
from agnt5.demo.context import APP, MODEL, Demo
from agnt5.demo.output import run_lines
from agnt5.demo.support import CHARGES, SPECIALIST_INSTRUCTIONS, issue_refund, lookup_charges
from agnt5.journal import pending_calls
from agnt5.session import Session
from agnt5.tools import RunContext, Tool

REFUND_LIMIT = 100.00
"""Refunds above this many dollars wait for a person's approval."""
QUESTION = (
    "I was also charged $290.00 for an annual plan upgrade in December that I never asked for. "
    "Please refund it."
)
APPROVER = "maria (billing lead)"


def charge_amount(charge_id: Any) -> float:
    """The amount of a charge of the demo's account (0.0 for an unknown id)."""
    charge = next((c for charges in CHARGES.values() for c in charges if c["id"] == charge_id), None)
    return float(charge["amount"]) if charge else 0.0


def above_limit(ctx: RunContext, args: dict[str, Any]) -> bool:
    """The `requires_approval` rule of refunds: only those above REFUND_LIMIT wait."""
    return charge_amount(args.get("charge_id")) > REFUND_LIMIT


def specialist(session: Session, demo: Demo) -> Agent:
    """The billing specialist, with refunds above the limit gated by approval."""
    refund = Tool.from_function(issue_refund, requires_approval=above_limit)
    return Agent(
        "billing_specialist",
        model=demo.model(),
        instructions=SPECIALIST_INSTRUCTIONS,
        tools=[lookup_charges, refund],
        session=session,
    )


def _pending_line(call: PendingCall) -> str:
    arguments = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in call.arguments.items())
    amount = charge_amount(call.arguments.get("charge_id"))
    return (
        f"  [{call.call_id}] {call.agent} -> {call.tool}({clip(arguments, 80)}): "
        f"${amount:.2f} is above the ${REFUND_LIMIT:.2f} limit"
    )


def _calls(n: int) -> str:
    return f"{n} model call" + ("" if n == 1 else "s")


def _show(demo: Demo, result: AgentResult) -> None:
    for line in run_lines(result.messages):
        demo.say(line)


async def refund_with_approval(demo: Demo) -> None:
    """Ask for a large refund (the run pauses), list what waits, approve it from a fresh Session."""
    session_id = demo.session_id("approval")
    session = Session(session_id, app_name=APP, user_id=demo.user_id, store=demo.store, model=MODEL)
    demo.say(f"session {session.id}: refunds above ${REFUND_LIMIT:.2f} need a person's approval")
    demo.say()
    paused = await specialist(session, demo).run(QUESTION)
    _show(demo, paused)
    demo.facts["approval_paused"] = paused.paused
    if not paused.paused:  # a live model may answer without asking for the refund
        demo.say(f"  (not paused: {paused.agent_name} asked for no refund above the limit this time)")
        return
    demo.say(f"  (paused after {_calls(paused.turns)}: result.output is None, result.pending lists the call)")
    demo.say()

    # Hours later, in another process: a fresh Session on the same database finds what waits.
    later = await Session.get(session_id, store=demo.store)
    waiting = await pending_calls(later)
    demo.say(f"waiting for approval ({len(waiting)}), as `agnt5 sessions pending --app {APP}` lists it:")
    for call in waiting:
        demo.say(_pending_line(call))
    demo.facts["approval_pending"] = [c.tool for c in waiting]
    demo.say(f"approved by {APPROVER}; the run resumes:")
    approvals: dict[str, bool] = {c.call_id: True for c in waiting}
    resumed = await specialist(later, demo).run(None, approvals=approvals, approved_by=APPROVER)
    _show(demo, resumed)
    demo.say(f"  ({_calls(resumed.turns)} after the approval, answered by {resumed.agent_name})")
    decided = [e.data for e in await later.events() if e.type == "approval_decided"]
    for data in decided:
        demo.say(f"  audit: approval_decided {data['name']} {data['decision']} by {data['approved_by']}")
    demo.facts["approval_decided"] = [(d["decision"], d["approved_by"]) for d in decided]
    demo.facts["approval_answer"] = resumed.output
