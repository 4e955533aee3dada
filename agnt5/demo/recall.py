"""Part 3 of the demo: long-term memory. Facts stored directly and by the agent (`remember`) are
recalled a week later in a new session, by the agent (`recall`) and by a direct search."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agnt5.demo.context import APP, MODEL, Demo
from agnt5.demo.output import show_run, show_state
from agnt5.demo.support import billing_specialist
from agnt5.memory import Memory
from agnt5.session import Session

if TYPE_CHECKING:
    from agnt5.memory_vector import VectorMemoryService

KNOWN_FACTS = {
    "billing_day": "The customer's Pro plan renews on the 3rd of every month.",
    "contact_channel": "The customer prefers to be contacted by email rather than by phone.",
    "timezone": "The customer lives in Lisbon, Portugal (Western European Time).",
}
FOLLOW_UP = "Hello again! Which card will my refunds go to from now on?"
SEARCH = "Where should refunds for this customer be sent?"


def customer_memory(demo: Demo, service: VectorMemoryService) -> Memory:
    """The long-term memory of this run's customer (its own namespace in the shared store)."""
    return Memory(service, user_id=demo.user_id, app_name=APP)


async def seed(demo: Demo, memory: Memory) -> None:
    """Facts the CRM already knows, embedded in one batch."""
    await memory.store_many(KNOWN_FACTS)
    demo.say(f"stored {len(KNOWN_FACTS)} facts in {APP}/{demo.user_id}'s long-term memory:")
    for key, content in KNOWN_FACTS.items():
        demo.say(f"  {key}: {content}")


async def follow_up(demo: Demo, memory: Memory) -> Session:
    """A new session for the same user: user and app state carry over, memory is recalled."""
    session = Session(
        demo.session_id("followup"),
        app_name=APP,
        user_id=demo.user_id,
        metadata={"channel": "email", "ticket": "T-1077"},
        store=demo.store,
        model=MODEL,
    )
    demo.say(f"a week later, new session {session.id}:")
    show_state(demo, session, "seen from the new session (user and app scopes carry over)")
    specialist = billing_specialist(session, memory, demo)
    demo.say()
    result = await specialist.run(FOLLOW_UP)
    show_run(demo, result)
    recalled = any(
        call.get("function", {}).get("name") == "recall"
        for m in result.messages
        for call in m.get("tool_calls") or ()
    )
    demo.facts["agent_recalled"] = recalled
    demo.facts["follow_up_answer"] = str(result.output)

    demo.say()
    demo.say(f'direct search: memory.search("{SEARCH}", limit=3)')
    hits = await memory.search(SEARCH, limit=3)
    for hit in hits:
        demo.say(f"  {hit.score:.3f}  {hit.key}: {hit.content}")
    demo.facts["top_memory"] = hits[0].key if hits else None
    return session
