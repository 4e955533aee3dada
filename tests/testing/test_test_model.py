"""TestModel: every tool called once with schema-made arguments, then a summary or a valid output."""

from __future__ import annotations

import datetime
import enum
import json
import uuid
from typing import Any, Literal

import pydantic
import pytest

from agnt5 import Agent, RunContext
from agnt5.agent_events import FinalResult, TextDelta, ToolCallEvent
from agnt5.errors import InvalidInputError
from agnt5.testing import TestModel
from agnt5.testing.test_model import NO_TOOL_CALLS_TEXT, OUTPUT_TOOL, generate

# --- tools of every shape ----------------------------------------------------------------------------


class Priority(enum.Enum):
    low = "low"
    high = "high"


class Address(pydantic.BaseModel):
    city: str
    zip_code: str = pydantic.Field(min_length=5, max_length=5)


received: dict[str, Any] = {}


def search(query: str, limit: int = 10) -> list[str]:
    """Search the knowledge base."""
    received["search"] = (query, limit)
    return [f"hit for {query}"]


def ship(address: Address, priority: Priority, items: list[int], express: bool) -> dict[str, Any]:
    """Ship items."""
    received["ship"] = (address, priority, items, express)
    return {"tracking": "T-1", "items": len(items)}


def whoami(ctx: RunContext[Any]) -> str:
    """Name the agent."""
    return f"I am {ctx.agent_name}"


class Report(pydantic.BaseModel):
    title: str
    score: float = pydantic.Field(gt=0, le=1)
    tags: list[str]
    status: Literal["open", "closed"]
    due: datetime.date
    owner: uuid.UUID
    note: str | None = None


# --- driven directly --------------------------------------------------------------------------------


def schema(name: str, parameters: dict[str, Any]) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "description": "", "parameters": parameters}}


TOOLS = [
    schema("lookup", {"type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"]}),
    schema("transfer_to_billing", {"type": "object", "properties": {}}),
    schema(OUTPUT_TOOL, Report.model_json_schema()),
    schema(
        "notify", {"type": "object", "properties": {"who": {"type": "string"}, "loud": {"type": "boolean"}}}
    ),
]


async def test_first_request_calls_every_tool_but_handoffs_and_the_output_tool() -> None:
    model = TestModel()
    response = await model.generate([{"role": "user", "content": "go"}], tools=TOOLS)
    assert [(c.name, json.loads(c.arguments)) for c in response.tool_calls] == [
        ("lookup", {"id": 0}),
        ("notify", {}),
    ]
    assert len({c.id for c in response.tool_calls}) == 2


async def test_after_the_results_it_sums_them_up() -> None:
    model = TestModel()
    first = await model.generate([{"role": "user", "content": "go"}], tools=TOOLS[:2])
    history = [
        {"role": "user", "content": "go"},
        first.message(),
        {"role": "tool", "tool_call_id": first.tool_calls[0].id, "content": '{"status": "shipped"}'},
    ]
    answer = await model.generate(history, tools=TOOLS[:2])
    assert answer.tool_calls == [] and json.loads(answer.text) == {"lookup": {"status": "shipped"}}
    plain = [*history[:2], {"role": "tool", "tool_call_id": first.tool_calls[0].id, "content": "not json"}]
    assert json.loads((await model.generate(plain, tools=TOOLS[:2])).text) == {"lookup": "not json"}


async def test_without_tools_it_answers_at_once() -> None:
    assert (await TestModel().generate([{"role": "user", "content": "hi"}])).text == NO_TOOL_CALLS_TEXT
    custom = TestModel(custom_output_text="All good.")
    assert (await custom.generate([{"role": "user", "content": "hi"}])).text == "All good."


async def test_structured_output_natively_or_through_the_output_tool() -> None:
    native = await TestModel().generate([{"role": "user", "content": "rate"}], response_format=Report)
    report = Report.model_validate_json(native.text)
    assert report.status == "open" and report.score > 0 and report.tags == ["a"]
    by_tool = await TestModel().generate([{"role": "user", "content": "rate"}], tools=[TOOLS[2]])
    assert by_tool.tool_calls[0].name == OUTPUT_TOOL
    Report.model_validate_json(by_tool.tool_calls[0].arguments)


async def test_call_tools_names_which_tools_and_may_name_a_handoff() -> None:
    model = TestModel(call_tools=["transfer_to_billing", "absent"])
    response = await model.generate([{"role": "user", "content": "go"}], tools=TOOLS)
    assert [c.name for c in response.tool_calls] == ["transfer_to_billing"]
    with pytest.raises(InvalidInputError, match="call_tools"):
        TestModel(call_tools="lookup")


def test_output_tool_name_matches_the_agent() -> None:
    from agnt5.agent import FINAL_RESULT_TOOL

    assert OUTPUT_TOOL == FINAL_RESULT_TOOL


# --- values from schemas ------------------------------------------------------------------------------


class Node(pydantic.BaseModel):
    name: str
    children: list[Node]
    parent: Node | None


class Everything(pydantic.BaseModel):
    id: uuid.UUID
    when: datetime.datetime
    day: datetime.date
    at: datetime.time
    span: datetime.timedelta
    url: pydantic.AnyUrl
    priority: Priority
    kind: Literal["x", "y"]
    addresses: list[Address] = pydantic.Field(min_length=2)
    unique: set[int] = pydantic.Field(min_length=3)
    pair: tuple[int, str]
    counts: dict[str, int]
    note: str | None
    qty: int = pydantic.Field(ge=3, le=9, multiple_of=2)
    ratio: float = pydantic.Field(lt=0)
    short: str = pydantic.Field(min_length=3, max_length=4)
    tree: Node
    optional_field: int = 5


@pytest.mark.parametrize("seed", [0, 1, 7, 30])
def test_generated_values_validate(seed: int) -> None:
    value = generate(Everything.model_json_schema(), seed)
    parsed = Everything.model_validate(value)
    assert "optional_field" not in value and parsed.optional_field == 5  # required fields only
    assert parsed.tree.parent is None and parsed.tree.children == []  # recursion ends
    assert len(parsed.addresses) == 2 and len(parsed.unique) == 3


def test_seed_zero_values_are_the_documented_ones() -> None:
    value = generate(Everything.model_json_schema())
    assert value["priority"] == "low" and value["kind"] == "x" and value["pair"] == [0, "b"]
    assert value["addresses"][0] == {"city": "a", "zip_code": "aaaaa"}
    assert (value["qty"], value["ratio"], value["short"]) == (4, -0.5, "aaa")
    assert generate({"type": "boolean"}) is False and generate({"const": 3}) == 3
    assert generate(
        {"allOf": [{"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}]}
    ) == {"a": 0}
    assert generate({"type": ["null", "string"]}) == "a" and generate({"type": "null"}) is None
    assert generate(Everything.model_json_schema(), seed=1)["priority"] == "high"


def test_schemas_that_cannot_be_satisfied_are_reported() -> None:
    with pytest.raises(InvalidInputError, match="unsupported \\$ref"):
        generate({"$ref": "https://example.com/schema"})
    loop = {"$defs": {"A": {"type": "object", "properties": {"a": {"$ref": "#/$defs/A"}}, "required": ["a"]}}}
    with pytest.raises(InvalidInputError, match="nests deeper"):
        generate({**loop, "$ref": "#/$defs/A"})


# --- driving an Agent -----------------------------------------------------------------------------------


async def test_an_agent_calls_every_tool_once_and_sums_up() -> None:
    received.clear()
    model = TestModel()
    billing = Agent("billing", model=TestModel())
    agent = Agent("support", model=model, tools=[search, ship, whoami], handoffs=[billing])
    result = await agent.run("help")
    assert result.agent_name == "support"
    assert json.loads(result.output) == {
        "search": ["hit for a"],
        "ship": {"tracking": "T-1", "items": 1},
        "whoami": "I am support",
    }
    assert received["search"] == ("a", 10)  # optional arguments keep their defaults
    assert received["ship"] == (Address(city="a", zip_code="aaaaa"), Priority.low, [0], False)
    assert len(model.requests) == 2
    assert model.requests[0].tools == ["search", "ship", "whoami", "transfer_to_billing"]


async def test_a_named_handoff_hands_over() -> None:
    billing_model = TestModel(custom_output_text="Billing here.")
    billing = Agent("billing", model=billing_model, tools=[search])
    front = Agent("front", model=TestModel(call_tools=["transfer_to_billing"]), handoffs=[billing])
    result = await front.run("refund")
    assert (result.agent_name, result.output) == ("billing", "Billing here.")
    # The billing agent had not called its own tool in this turn, so it did first.
    assert billing_model.requests[0].tools == ["search"] and len(billing_model.requests) == 2
    last = billing_model.requests[1].messages[-1]
    assert last["role"] == "tool" and last["content"] == '["hit for a"]'


@pytest.mark.parametrize("native", [True, False], ids=["response_format", "final_result_tool"])
async def test_an_agent_with_an_output_type_gets_a_valid_instance(native: bool) -> None:
    model = TestModel(supports_response_schema=native)
    result = await Agent("rater", model=model, tools=[search], output_type=Report).run("rate")
    assert isinstance(result.output, Report) and result.output.status == "open"
    assert len(model.requests) == 2
    assert (model.requests[0].response_format is Report) is native
    assert (OUTPUT_TOOL in model.requests[0].tools) is not native


async def test_streaming_an_agent_run() -> None:
    events = [e async for e in Agent("a", model=TestModel(), tools=[search]).stream("go")]
    assert [e.name for e in events if isinstance(e, ToolCallEvent)] == ["search"]
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert json.loads(text) == {"search": ["hit for a"]}
    assert isinstance(events[-1], FinalResult)
