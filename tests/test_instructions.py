"""Instructions: state placeholders in four scopes, escapes, JSON passthrough, callables, errors."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from agnt5 import Session
from agnt5.errors import InstructionsError, InvalidTypeError
from agnt5.instructions import (
    CompiledInstructions,
    Placeholder,
    compile_instructions,
    parse_template,
    render_instructions,
    render_value,
)
from agnt5.run_context import RunContext
from agnt5.store.sqlite import SqliteStore


@pytest.fixture
async def session(tmp_path: Path) -> Any:
    store = SqliteStore(str(tmp_path / "state.db"))
    yield Session("s1", app_name="shop", user_id="ana", store=store)
    await store.close()


def ctx_for(session: Session, deps: Any = None) -> RunContext[Any]:
    return RunContext(deps=deps, session=session, agent_name="a", run_id="run_1")


# --- placeholders and scopes --------------------------------------------------------------------


async def test_placeholders_read_each_scope(session: Session) -> None:
    session.set_state("topic", "refunds")
    session.set_state("name", "Ana", scope="user")
    session.set_state("brand", "Shopco", scope="app")
    session.set_state("mood", "calm", scope="temp")
    text = await render_instructions(
        "Topic: {topic}. Customer: {user:name}. Brand: {app:brand}. Mood: {temp:mood}. Same: {session:topic}",
        ctx_for(session),
    )
    assert text == "Topic: refunds. Customer: Ana. Brand: Shopco. Mood: calm. Same: refunds"


async def test_user_and_app_state_come_from_another_session_of_the_same_user(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "shared.db"))
    try:
        first = Session("first", app_name="shop", user_id="ana", store=store)
        first.set_state("plan", {"tier": "gold", "seats": 3}, scope="user")
        first.set_state("open", True, scope="app")
        other = Session("second", app_name="shop", user_id="ana", store=store)
        stranger = Session("third", app_name="shop", user_id="bob", store=store)
        template = "Plan {user:plan}; open={app:open}"
        assert (
            await render_instructions(template, ctx_for(other)) == 'Plan {"tier":"gold","seats":3}; open=true'
        )
        with pytest.raises(InstructionsError) as info:
            await render_instructions(template, ctx_for(stranger))
        assert (info.value.key, info.value.scope) == ("plan", "user")
    finally:
        await store.close()


async def test_state_on_both_stores_after_load(store: Any) -> None:
    writer = Session("w", app_name="shop", user_id="ana", store=store)
    writer.set_state("topic", "billing")
    writer.set_state("name", "Ana", scope="user")
    writer.set_state("brand", "Shopco", scope="app")
    await writer.flush()
    reader = await Session("w", app_name="shop", user_id="ana", store=store).load()
    compiled = compile_instructions("{topic} for {user:name} at {app:brand}")
    assert await compiled.render(ctx_for(reader)) == "billing for Ana at Shopco"


async def test_values_render_as_json_not_python_repr(session: Session) -> None:
    session.set_state("flag", True)
    session.set_state("nothing", None)
    session.set_state("nested", {"a": [1, 2.5, "é"], "b": False})
    session.set_state("count", 3)
    session.set_state("quote", 'say "hi"')
    text = await render_instructions("{flag} {nothing} {nested} {count} {quote}", ctx_for(session))
    assert text == 'true null {"a":[1,2.5,"é"],"b":false} 3 say "hi"'
    assert render_value(["x"]) == '["x"]'


async def test_state_changes_show_in_the_next_render(session: Session) -> None:
    compiled = compile_instructions("Step {step}")
    session.set_state("step", 1)
    assert await compiled.render(ctx_for(session)) == "Step 1"
    session.set_state("step", 2)
    assert await compiled.render(ctx_for(session)) == "Step 2"


# --- optional and missing keys --------------------------------------------------------------------


async def test_optional_keys_are_empty_when_missing(session: Session) -> None:
    session.set_state("tone", "warm")
    text = await render_instructions(
        "Hello{nick?}. Tone: {tone?}. VIP: {user:vip?}{app:x?}{temp:y?}", ctx_for(session)
    )
    assert text == "Hello. Tone: warm. VIP: "


async def test_a_missing_required_key_names_it_and_the_ways_out(session: Session) -> None:
    with pytest.raises(InstructionsError) as info:
        await render_instructions("Research {research_topic} now", ctx_for(session))
    error = info.value
    assert (error.key, error.scope, error.field) == ("research_topic", "session", "research_topic")
    message = str(error)
    assert "'research_topic'" in message and "'session'" in message
    assert "{research_topic?}" in message  # make it optional
    assert "{{research_topic}}" in message  # or escape it
    assert "set_state('research_topic'" in message


async def test_a_missing_scoped_key_shows_the_scoped_fixes(session: Session) -> None:
    with pytest.raises(InstructionsError) as info:
        await render_instructions("Hi {app:greeting}", ctx_for(session))
    assert (info.value.key, info.value.scope) == ("greeting", "app")
    assert "{app:greeting?}" in str(info.value) and "{{app:greeting}}" in str(info.value)


async def test_user_placeholders_without_a_user_id(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "anon.db"))
    try:
        anonymous = Session("anon", store=store)
        assert await render_instructions("Hi{user:name?}!", ctx_for(anonymous)) == "Hi!"
        with pytest.raises(InstructionsError, match="no user_id") as info:
            await render_instructions("Hi {user:name}", ctx_for(anonymous))
        assert info.value.scope == "user" and "{user:name?}" in str(info.value)
    finally:
        await store.close()


# --- braces that are not placeholders -------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        'Answer as {"category": "billing", "urgent": true}',
        'Nested: {"a": {"b": {"c": 1}}}',
        "Spaces { x }, digits {1}, unknown scope {foo:bar}, empty {} and lone } braces {",
        "Code: def f(): return {k: v for k, v in x}",
        "Dotted {a.b} and dashed {a-b} names",
    ],
)
async def test_text_that_is_not_a_placeholder_passes_through(session: Session, text: str) -> None:
    assert await render_instructions(text, ctx_for(session)) == text
    assert compile_instructions(text).static == text


async def test_double_braces_escape(session: Session) -> None:
    session.set_state("key", "v")
    cases = {
        "{{key}}": "{key}",
        "{{{key}}}": "{v}",
        '{{"a": 1}}': '{"a": 1}',
        '{{"a": {{"b": 1}}}}': '{"a": {"b": 1}}',
        '{{"a": {"b": 1}}}': '{"a": {"b": 1}}',
        "write {{ and }} for braces": "write { and } for braces",
        "a }} b": "a } b",
    }
    for template, expected in cases.items():
        assert await render_instructions(template, ctx_for(session)) == expected, template


async def test_placeholders_inside_a_json_example(session: Session) -> None:
    session.set_state("name", "Ana")
    text = await render_instructions('Reply {"to": "{name}", "tags": {"x": 1}}', ctx_for(session))
    assert text == 'Reply {"to": "Ana", "tags": {"x": 1}}'


def test_parse_template_segments() -> None:
    assert parse_template("a {user:k?} b") == ["a ", Placeholder("user", "k", True, "{user:k?}"), " b"]
    assert parse_template("") == []
    assert parse_template("plain") == ["plain"]


# --- callables and lists --------------------------------------------------------------------------


async def test_sync_and_async_callables_see_the_run(session: Session) -> None:
    def sync_part(ctx: RunContext[Any]) -> str:
        return f"agent {ctx.agent_name}, deps {ctx.deps['shop']}"

    async def async_part(ctx: RunContext[Any]) -> str:
        await asyncio.sleep(0)
        return f"run {ctx.run_id}"

    session.set_state("topic", "refunds")
    compiled = compile_instructions(["Topic: {topic}", sync_part, "", async_part])
    assert compiled.static is None
    text = await compiled.render(ctx_for(session, deps={"shop": "north"}))
    assert text == "Topic: refunds\n\nagent a, deps north\n\nrun run_1"


async def test_callable_output_is_not_templated_and_sync_callables_run_inline(session: Session) -> None:
    threads: list[int] = []

    def part(ctx: RunContext[Any]) -> str:
        threads.append(threading.get_ident())
        return "JSON like {missing} stays"

    assert await render_instructions(part, ctx_for(session)) == "JSON like {missing} stays"
    assert threads == [threading.get_ident()]


async def test_callables_are_called_again_on_every_render(session: Session) -> None:
    calls = []

    def part(ctx: RunContext[Any]) -> str:
        calls.append(1)
        return f"turn {len(calls)}"

    compiled = compile_instructions(part)
    assert [await compiled.render(ctx_for(session)) for _ in range(3)] == ["turn 1", "turn 2", "turn 3"]


async def test_a_failing_callable_raises_instructions_error_with_the_cause(session: Session) -> None:
    def broken(ctx: RunContext[Any]) -> str:
        raise KeyError("customer")

    with pytest.raises(InstructionsError, match="broken raised KeyError") as info:
        await render_instructions(["ok", broken], ctx_for(session))
    assert isinstance(info.value.__cause__, KeyError)

    async def broken_async(ctx: RunContext[Any]) -> str:
        raise RuntimeError("db down")

    with pytest.raises(InstructionsError, match="db down") as info:
        await render_instructions(broken_async, ctx_for(session))
    assert isinstance(info.value.__cause__, RuntimeError)


async def test_a_callable_returning_a_non_string_is_refused(session: Session) -> None:
    def returns_none(ctx: RunContext[Any]) -> Any:
        return None

    async def returns_list(ctx: RunContext[Any]) -> Any:
        return ["a"]

    with pytest.raises(InstructionsError, match="returned NoneType, not a string"):
        await render_instructions(returns_none, ctx_for(session))
    with pytest.raises(InstructionsError, match="returned list"):
        await render_instructions(returns_list, ctx_for(session))


# --- compiling --------------------------------------------------------------------------------------


async def test_static_instructions_never_read_state(session: Session) -> None:
    class NoState:
        id = "x"

        def get_state(self, *args: Any, **kwargs: Any) -> Any:
            raise AssertionError("static text must not read state")

    ctx = RunContext(deps=None, session=NoState())  # type: ignore[arg-type]
    compiled = compile_instructions(["Be brief.", 'JSON: {"a": 1}'])
    assert compiled.static == 'Be brief.\n\nJSON: {"a": 1}'
    assert await compiled.render(ctx) == compiled.static
    assert await render_instructions("Plain text, no braces.", ctx) == "Plain text, no braces."
    assert compile_instructions("").static == "" and compile_instructions(None).static == ""
    assert compile_instructions(compiled) is compiled


def test_placeholders_are_listed_once_compiled() -> None:
    compiled = compile_instructions(["{a} {user:b?}", "{{c}}"])
    assert [(p.scope, p.key, p.optional) for p in compiled.placeholders] == [
        ("session", "a", False),
        ("user", "b", True),
    ]
    assert isinstance(compiled, CompiledInstructions) and compiled.static is None


def test_wrong_types_are_refused() -> None:
    with pytest.raises(InvalidTypeError, match="instructions must be"):
        compile_instructions(42)  # type: ignore[arg-type]
    with pytest.raises(InvalidTypeError, match="hold strings and callables"):
        compile_instructions(["ok", 3])  # type: ignore[list-item]


async def test_each_stored_scope_is_read_once_per_render(session: Session) -> None:
    session.set_state("a", 1)
    session.set_state("b", 2)
    session.set_state("n", "Ana", scope="user")
    reads: list[tuple[str, str]] = []

    class Counting:
        id, user_id = session.id, session.user_id

        def get_state(self, key: str, default: Any = None, scope: str = "session") -> Any:
            reads.append(("key", scope))
            return session.get_state(key, default, scope=scope)  # type: ignore[arg-type]

        def state(self, scope: str = "session") -> dict[str, Any]:
            reads.append(("scope", scope))
            return session.state(scope)  # type: ignore[arg-type]

    ctx = RunContext(deps=None, session=Counting())  # type: ignore[arg-type]
    compiled = compile_instructions(["{a} {b} {user:n}", "{a?} {missing?}"])
    assert await compiled.render(ctx) == "1 2 Ana\n\n1 "
    assert sorted(reads) == [("key", "user"), ("scope", "session")]
