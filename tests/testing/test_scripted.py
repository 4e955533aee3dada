"""ScriptedModel: scripted steps drive agents with no HTTP; leftovers and extra calls fail loudly."""

from __future__ import annotations

import pydantic
import pytest

from agnt5 import Agent, Session
from agnt5.agent_events import FinalResult, TextDelta
from agnt5.errors import RateLimitError, ScriptExhaustedError, ScriptIncompleteError
from agnt5.store.sqlite import SqliteStore
from agnt5.testing import ScriptedModel


def lookup(order_id: int) -> str:
    """Look an order up."""
    return f"order {order_id}: shipped"


class Verdict(pydantic.BaseModel):
    refund: bool
    reason: str


async def test_tool_calls_then_text_drive_an_agent() -> None:
    model = (
        ScriptedModel()
        .tool_calls([("lookup", {"order_id": 7}), ("lookup", {"order_id": 8})])
        .text("Both shipped.")
    )
    session = Session("s", store=SqliteStore(":memory:"))
    result = await Agent("support", model=model, tools=[lookup], session=session).run("where are my orders?")
    assert result.output == "Both shipped."
    model.assert_complete()
    assert model.calls[0].tools == ["lookup"]
    assert [m["content"] for m in model.calls[1].messages if m["role"] == "tool"] == [
        "order 7: shipped",
        "order 8: shipped",
    ]


async def test_structured_output_step() -> None:
    model = ScriptedModel().output(Verdict(refund=True, reason="double charge"))
    result = await Agent("judge", model=model, output_type=Verdict).run("decide")
    assert result.refund is True and result.reason == "double charge"
    assert model.calls[0].response_format is Verdict


async def test_scripted_error_is_raised_on_its_call() -> None:
    model = ScriptedModel().error(RateLimitError("slow down"))
    with pytest.raises(RateLimitError, match="slow down"):
        await Agent("a", model=model).run("hi")
    model.assert_complete()


async def test_an_extra_call_fails_loudly_and_unused_steps_are_reported() -> None:
    model = ScriptedModel().tool_call("lookup", {"order_id": 1})
    with pytest.raises(ScriptExhaustedError, match="call #2"):
        await Agent("a", model=model, tools=[lookup]).run("go")
    leftover = ScriptedModel().text("one").text("two")
    await Agent("a", model=leftover).run("hi")
    with pytest.raises(ScriptIncompleteError, match="1 scripted step") as unused:
        leftover.assert_complete()
    assert not isinstance(unused.value, ScriptExhaustedError)
    assert isinstance(unused.value, AssertionError)


async def test_streaming_from_a_scripted_model() -> None:
    model = ScriptedModel().text("hello there world")
    events = [e async for e in Agent("a", model=model).stream("hi")]
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "hello there world"
    assert isinstance(events[-1], FinalResult)


def test_scripted_model_never_imports_litellm() -> None:
    import subprocess
    import sys

    code = (
        "import sys, asyncio\n"
        "from agnt5.testing import ScriptedModel\n"
        "m = ScriptedModel().text('x')\n"
        "print(asyncio.run(m.generate([{'role': 'user', 'content': 'q'}])).text, m.context_window)\n"
        "assert 'litellm' not in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["x", "128000"]
