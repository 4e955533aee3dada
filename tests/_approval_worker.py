"""The approval round trip's other processes: `python tests/_approval_worker.py DB SID LOG ask|approve|deny [CALL]`.

`ask` runs the refund agent with the journal's clock set a week back and prints the pending calls;
`approve CALL` / `deny CALL` resumes the session with that decision and prints the answer. The
refund tool appends a line to LOG each time it runs.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from agnt5 import Agent, Denial, Session, tool
from agnt5 import journal as journal_module
from agnt5.store.url import open_store
from agnt5.testing.function_model import FunctionModel

WEEK = 7 * 24 * 3600
LOG = ""


@tool(requires_approval=lambda ctx, args: args["amount"] > 100)
def refund(order: str, amount: int) -> str:
    """Refund an order (above 100 a person approves)."""
    with open(LOG, "a", encoding="utf-8") as f:
        f.write(f"{order} {amount}\n")
    return f"refunded {amount} on {order}"


def script(messages: list[dict[str, Any]], info: Any) -> Any:
    last = messages[-1]
    if last["role"] == "user":
        return FunctionModel.tool_call("refund", {"order": "o9", "amount": 250})
    return f"Result: {last['content']}"


async def main(db: str, sid: str, mode: str, call_id: str | None) -> Any:
    store = open_store(db)
    try:
        agent = Agent("support", model=FunctionModel(script), tools=[refund])
        session = Session(sid, store=store)
        if mode == "ask":
            journal_module.now = lambda: time.time() - WEEK  # the call was asked for a week ago
            result = await agent.run("Refund order o9, 250 EUR.", session=session)
            return [
                {"call_id": p.call_id, "tool": p.tool, "requested_at": p.requested_at.timestamp()}
                for p in result.pending
            ]
        assert call_id is not None
        decision = True if mode == "approve" else Denial("over the monthly limit")
        result = await agent.run(None, session=session, approvals={call_id: decision}, approved_by="maria")
        return {"answer": result.output}
    finally:
        await store.close()


if __name__ == "__main__":
    LOG = sys.argv[3]
    print(json.dumps(asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[4], (sys.argv[5:] or [None])[0]))))
