"""Tools: schemas from signatures and docstrings, validation, invocation and RunContext injection."""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import pydantic
import pytest

import agnt5
from agnt5.errors import ToolDefinitionError
from agnt5.tools import RunContext, Tool, ToolResult, as_tool, tool


class Location(pydantic.BaseModel):
    city: str
    country: str = "FR"


@tool
def get_weather(city: str, unit: Literal["celsius", "fahrenheit"] = "celsius", days: int = 1) -> str:
    """Get the current weather for a city.

    Uses the forecast service; results are cached for a minute.

    Args:
        city: Name of the city, e.g. "Paris".
        unit: Temperature unit.
        days (int): How many days to forecast,
            counting today.

    Returns:
        A short description.
    """
    return f"{city}: 21 {unit} for {days} day(s)"


@tool(name="lookup", description="Look a user up.")
async def find_user(user_id: int, ctx: RunContext) -> dict[str, Any]:
    """Ignored docstring."""
    await asyncio.sleep(0)
    return {"id": user_id, "agent": ctx.agent_name, "has_session": ctx.session is not None}


def test_schema_from_signature_and_google_docstring() -> None:
    assert get_weather.schema() == {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the current weather for a city.\n\n"
            "Uses the forecast service; results are cached for a minute.",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string", "description": 'Name of the city, e.g. "Paris".'},
                    "unit": {
                        "type": "string",
                        "enum": ["celsius", "fahrenheit"],
                        "default": "celsius",
                        "description": "Temperature unit.",
                    },
                    "days": {
                        "type": "integer",
                        "default": 1,
                        "description": "How many days to forecast, counting today.",
                    },
                },
                "required": ["city"],
                "additionalProperties": False,
            },
        },
    }


def test_decorator_with_name_and_description_and_context_excluded() -> None:
    schema = find_user.schema()["function"]
    assert schema["name"] == "lookup"
    assert schema["description"] == "Look a user up."
    assert list(schema["parameters"]["properties"]) == ["user_id"]
    assert find_user.context_param == "ctx"


def test_sphinx_docstring_and_plain_function() -> None:
    def convert(amount: float, currency: str = "EUR") -> float:
        """Convert money.

        :param amount: How much to convert.
        :param str currency: Target currency code.
        :returns: The converted amount.
        """
        return amount

    t = Tool.from_function(convert)
    props = t.parameters["properties"]
    assert t.description == "Convert money."
    assert props["amount"]["description"] == "How much to convert."
    assert props["currency"]["description"] == "Target currency code."


def test_missing_annotation_is_any_and_nested_models_and_title_property() -> None:
    def f(anything, where: Location, title: str, tags: list[str] | None = None) -> None:  # type: ignore[no-untyped-def]
        """F."""

    params = Tool.from_function(f).parameters
    assert params["properties"]["anything"] == {}
    assert "title" in params["properties"]  # a property *named* title survives title stripping
    assert "$defs" in params and "Location" in params["$defs"]
    assert "title" not in params["$defs"]["Location"]
    assert params["required"] == ["anything", "where", "title"]


def test_annotated_field_descriptions() -> None:
    def f(n: Annotated[int, pydantic.Field(description="A count.", ge=0)]) -> int:
        return n

    assert Tool.from_function(f).parameters["properties"]["n"] == {
        "type": "integer",
        "minimum": 0,
        "description": "A count.",
    }


@pytest.mark.parametrize(
    "func",
    [lambda *args: None, lambda **kwargs: None],
    ids=["varargs", "varkwargs"],
)
def test_unsupported_signatures_raise(func: Any) -> None:
    with pytest.raises(ToolDefinitionError):
        Tool.from_function(func, name="bad")


def test_invalid_name_raises() -> None:
    with pytest.raises(ToolDefinitionError, match="name"):
        Tool.from_function(lambda: None)  # "<lambda>"
    with pytest.raises(ToolDefinitionError):
        tool(name="has space")(lambda: None)


async def test_sync_tool_runs_in_a_thread() -> None:
    main_thread = threading.get_ident()

    @tool
    def where() -> int:
        """Which thread runs me."""
        return threading.get_ident()

    result = await where.invoke("{}")
    assert result == ToolResult(str(json.loads(result.content)), is_error=False)
    assert int(result.content) != main_thread


async def test_invoke_sync_and_coerce() -> None:
    result = await get_weather.invoke('{"city": "Paris", "days": "3"}')
    assert result == ToolResult("Paris: 21 celsius for 3 day(s)")


async def test_async_tool_gets_run_context() -> None:
    ctx = RunContext(deps=None, session=None, agent_name="support")  # type: ignore[arg-type]
    result = await find_user.invoke('{"user_id": 7}', ctx)
    assert not result.is_error
    assert json.loads(result.content) == {"id": 7, "agent": "support", "has_session": False}


async def test_run_context_defaults_when_not_given() -> None:
    result = await find_user.invoke({"user_id": 1})
    assert json.loads(result.content)["agent"] == ""


async def test_validation_errors_are_returned_listing_fields() -> None:
    result = await get_weather.invoke('{"unit": "kelvin", "days": "many"}')
    assert result.is_error
    assert result.content.startswith("Error: invalid arguments for tool 'get_weather': ")
    for field in ("city", "unit", "days"):
        assert f"{field}:" in result.content


async def test_unknown_arguments_are_rejected() -> None:
    result = await get_weather.invoke('{"city": "Paris", "country": "FR"}')
    assert result.is_error and "country" in result.content


@pytest.mark.parametrize("payload", ['{"city": "Par', "[1, 2]", "not json"])
async def test_malformed_json_is_returned_as_error(payload: str) -> None:
    result = await get_weather.invoke(payload)
    assert result.is_error
    assert "invalid arguments for tool 'get_weather'" in result.content


async def test_empty_arguments_mean_no_arguments() -> None:
    @tool
    def ping() -> str:
        """Ping."""
        return "pong"

    assert await ping.invoke("") == ToolResult("pong")


async def test_exceptions_are_returned_not_raised() -> None:
    @tool
    async def explode(x: int) -> str:
        """Always fails."""
        raise RuntimeError(f"boom {x}")

    result = await explode.invoke('{"x": 2}')
    assert result == ToolResult("Error: tool 'explode' failed: RuntimeError: boom 2", is_error=True)


async def test_non_string_results_are_json() -> None:
    @dataclass
    class Point:
        x: int
        y: int

    @tool
    def model() -> Location:
        """M."""
        return Location(city="Lyon")

    @tool
    def point() -> Point:
        """P."""
        return Point(1, 2)

    @tool
    def nothing() -> None:
        """N."""

    assert json.loads((await model.invoke("{}")).content) == {"city": "Lyon", "country": "FR"}
    assert json.loads((await point.invoke("{}")).content) == {"x": 1, "y": 2}
    assert (await nothing.invoke("{}")).content == "null"


async def test_pydantic_model_argument_is_validated_into_the_model() -> None:
    @tool
    def where(location: Location) -> str:
        """W."""
        assert isinstance(location, Location)
        return location.country

    assert (await where.invoke('{"location": {"city": "Paris"}}')).content == "FR"


def test_decorated_tool_is_still_callable_and_exported() -> None:
    assert get_weather("Nice") == "Nice: 21 celsius for 1 day(s)"
    assert as_tool(get_weather) is get_weather
    assert agnt5.tool is tool and agnt5.Tool is Tool and agnt5.RunContext is RunContext


async def test_bound_methods_and_positional_only_parameters() -> None:
    class Calculator:
        def __init__(self, base: int) -> None:
            self.base = base

        def add(self, x: int, /, y: int = 0) -> int:
            """Add to the base."""
            return self.base + x + y

    t = Tool.from_function(Calculator(10).add)
    assert t.parameters["required"] == ["x"]
    assert (await t.invoke('{"x": 1, "y": 2}')).content == "13"


def test_unresolvable_annotation_raises() -> None:
    def f(x: NoSuchType) -> None:  # type: ignore[name-defined]  # noqa: F821
        """F."""

    with pytest.raises(ToolDefinitionError, match="NoSuchType"):
        Tool.from_function(f)


def test_field_default_gets_docstring_description() -> None:
    limit_field = pydantic.Field(default=10, le=100)

    def search(query: str, limit: int = limit_field) -> list[str]:
        """Search.

        Args:
            query: Words to look for.
            limit: Max results.
        """
        return []

    props = Tool.from_function(search).parameters["properties"]
    assert props["limit"] == {"type": "integer", "default": 10, "maximum": 100, "description": "Max results."}
    assert limit_field.description is None  # the caller's FieldInfo is not mutated
