"""Part 1 of the demo: a router agent hands a billing question to a specialist that uses tools,
with state written in all four scopes on the way."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agnt5.agent import Agent, AgentResult
from agnt5.demo.context import APP, MODEL, Demo
from agnt5.demo.output import show_run, show_state
from agnt5.session import Session
from agnt5.tools import RunContext

if TYPE_CHECKING:
    from agnt5.memory import Memory

ROUTER_INSTRUCTIONS = (
    "You are the front desk of Acme's customer support chat. For anything about charges, invoices "
    "or refunds, call transfer_to_billing_specialist right away without answering yourself. "
    "Answer anything else yourself in one or two sentences."
)
SPECIALIST_INSTRUCTIONS = (
    "You are Acme's billing specialist. It is December 2025; the customer is on the Pro plan "
    "($29.00 a month). Look up charges with lookup_charges before answering a billing question, "
    "refund duplicate charges with issue_refund, and answer briefly with amounts, dates and ids. "
    "Save lasting customer preferences with remember; use recall when the customer asks about "
    "something they told us before."
)
FIRST_QUESTION = "Hi, I was charged twice for my Pro plan in November. Can you sort it out?"
PREFERENCE = (
    "Thanks! For the future: please always send refunds to my Visa ending in 4242, never as store credit."
)

CHARGES: dict[str, list[dict[str, Any]]] = {
    "2025-11": [
        {"id": "ch_1001", "date": "2025-11-03", "amount": 29.00, "description": "Pro plan, monthly"},
        {"id": "ch_1002", "date": "2025-11-03", "amount": 29.00, "description": "Pro plan, monthly"},
    ],
    "2025-10": [
        {"id": "ch_0931", "date": "2025-10-03", "amount": 29.00, "description": "Pro plan, monthly"},
    ],
    "2025-12": [  # part 7 (agnt5.demo.approval): a refund above the limit waits for approval
        {"id": "ch_1106", "date": "2025-12-03", "amount": 29.00, "description": "Pro plan, monthly"},
        {"id": "ch_1107", "date": "2025-12-09", "amount": 290.00, "description": "Pro plan, annual upgrade"},
    ],
}


async def lookup_charges(month: str, ctx: RunContext) -> list[dict[str, Any]]:
    """List the card charges on the customer's account in one month.

    Args:
        month: The month as YYYY-MM, e.g. 2025-11.
    """
    if ctx.session is not None:
        ctx.session.set_state("last_lookup", month)  # session scope: this conversation only
    return CHARGES.get(month, [])


async def issue_refund(charge_id: str, reason: str, ctx: RunContext) -> dict[str, Any]:
    """Refund one charge in full to the card it was paid with.

    Args:
        charge_id: The id of the charge, e.g. ch_1002.
        reason: Why it is refunded, in a few words.
    """
    charge = next((c for charges in CHARGES.values() for c in charges if c["id"] == charge_id), None)
    if charge is None:
        return {"error": f"no charge {charge_id}"}
    refund = {"refund_id": "re_5001", "charge_id": charge_id, "amount": charge["amount"], "reason": reason}
    if ctx.session is not None:
        session = ctx.session
        session.set_state("refund", refund)
        session.set_state("ticket_status", "refunded")
        count = session.get_state("refunds_issued", 0, scope="user")
        session.set_state("refunds_issued", count + 1, scope="user")  # across the user's sessions
    return {**refund, "status": "succeeded", "arrives_in": "5-10 business days"}


def billing_specialist(session: Session, memory: Memory, demo: Demo) -> Agent:
    """The agent that looks up charges, refunds, and remembers the customer's preferences."""
    return Agent(
        "billing_specialist",
        model=demo.model(),
        instructions=SPECIALIST_INSTRUCTIONS,
        tools=[lookup_charges, issue_refund],
        session=session,
        memory=memory,
    )


def agents(session: Session, memory: Memory, demo: Demo) -> tuple[Agent, Agent]:
    """The router and the billing specialist it can hand off to, on one shared session."""
    specialist = billing_specialist(session, memory, demo)
    router = Agent(
        "router",
        model=demo.model(),
        instructions=ROUTER_INSTRUCTIONS,
        session=session,
        handoffs=[specialist],
    )
    return router, specialist


@dataclass
class SupportOutcome:
    session: Session
    first: AgentResult
    second: AgentResult


async def support_conversation(demo: Demo, memory: Memory) -> SupportOutcome:
    """Two turns: the router hands off and the specialist refunds; then a preference is remembered."""
    session = Session(
        demo.session_id("support"),
        app_name=APP,
        user_id=demo.user_id,
        metadata={"channel": "web-chat", "ticket": "T-1042"},
        retention={"ttl_days": 30},
        store=demo.store,
        model=MODEL,
    )
    demo.say(f"session {session.id} (app {APP}, user {demo.user_id}, ttl 30 days)")
    session.set_state("ticket_status", "open")  # session scope
    session.set_state("plan", "Pro (monthly, $29.00)", scope="user")  # every session of this user
    session.set_state("refund_window_days", 30, scope="app")  # every user of this app
    session.set_state("routing_hint", "billing", scope="temp")  # this run only, never stored
    show_state(demo, session, "before the run")

    router, specialist = agents(session, memory, demo)
    demo.say()
    first = await router.run(FIRST_QUESTION)
    show_run(demo, first)
    demo.facts["handoff"] = first.agent_name == specialist.name
    demo.facts["answered_by"] = first.agent_name

    # The conversation continues with whoever answered (the specialist after a handoff).
    demo.say()
    next_agent = specialist if first.agent_name == specialist.name else router
    second = await next_agent.run(PREFERENCE)
    show_run(demo, second)
    demo.say()
    show_state(demo, session, "after the runs (agents clear temp at the end of every run)")
    demo.facts["temp_after"] = session.state("temp")
    return SupportOutcome(session, first, second)
