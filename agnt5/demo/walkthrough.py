"""A short, offline tour of the Session API: history, the four state scopes, audit, export, retention."""

from __future__ import annotations

import json
import uuid

from agnt5 import config
from agnt5.entity import Entity
from agnt5.messages import to_provider_messages
from agnt5.session import Session, purge_expired


def _say(text: str = "") -> None:
    print(text, flush=True)


async def run(database_url: str | None = None) -> int:
    if database_url:
        config.configure(database_url=database_url)
    store = config.default_store()
    _say(f"agnt5 demo — store: {store.url}")
    run_id = uuid.uuid4().hex[:8]

    session = Session(
        id=f"demo-{run_id}",
        app_name="support_desk",
        user_id="customer-789",
        metadata={"ticket_type": "billing"},
        retention={"ttl_days": 30},
    )
    _say(f"\n== Session {session.id} (app support_desk, user customer-789)")
    await session.send_message({"role": "system", "content": "You are a helpful support agent."})
    await session.send_message({"role": "user", "content": "I was charged twice this month."})
    await session.send_message(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "lookup_charges", "arguments": json.dumps({"month": "2026-11"})},
                }
            ],
        },
        metadata={"agent": "support_agent"},
    )
    await session.send_message(
        {"role": "tool", "tool_call_id": "call_1", "content": json.dumps([{"amount": 20}, {"amount": 20}])}
    )
    await session.send_message(
        {"role": "assistant", "content": "I see two charges of $20; I have refunded one."},
        metadata={"agent": "support_agent"},
    )
    for m in await session.history():
        text = m.get("content") or ", ".join(c["function"]["name"] + "(...)" for c in m.get("tool_calls", []))
        _say(f"  [{m.seq}] {m['role']:>9}: {text}  ({m.tokens} tokens)")
    _say(f"  provider-format messages ready for litellm: {len(to_provider_messages(await session.history()))}")

    _say("\n== State in four scopes")
    session.set_state("current_step", "refund_issued")
    session.set_state("language", "English", scope="user")
    session.set_state("api_version", "v2", scope="app")
    session.set_state("processing_step", "validation", scope="temp")
    other = Session(id=f"demo-{run_id}-followup", app_name="support_desk", user_id="customer-789")
    _say(f"  session: current_step = {session.get_state('current_step')!r}")
    _say(f"  user:    language = {other.get_state('language', scope='user')!r} (seen from another session)")
    _say(f"  app:     api_version = {other.get_state('api_version', scope='app')!r}")
    _say(f"  temp:    processing_step = {session.get_state('processing_step', scope='temp')!r}")
    session.clear_temp()
    _say(f"  temp after clear_temp(): {session.get_state('processing_step', scope='temp')!r}")

    reopened = Session(id=session.id)
    _say(f"\n== Reopened by id: {len(await reopened.history())} messages, user {reopened.user_id}")

    _say("\n== Audit trail")
    for event in await session.events(limit=20):
        _say(f"  #{event.id} {event.type} {json.dumps(event.data)}")

    _say("\n== Export (jsonl, first line)")
    _say("  " + (await session.export(format="jsonl")).splitlines()[0][:160])

    visits = Entity("demo_counters")
    count = await visits.update("runs", lambda n: n + 1, default=0)
    _say(f"\n== Entity: this demo has run {count} time(s) against this database")

    purged = await purge_expired()
    _say(f"== Retention: purge_expired() removed {len(purged)} expired session(s)")
    page = await Session.list(app_name="support_desk", limit=5)
    _say(f"== Session.list(app_name='support_desk'): {[s.id for s in page]}")
    await store.close()
    config.reset()
    return 0
