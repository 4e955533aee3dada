"""Instructions that see state: `{key}` placeholders read the run's session state, callables see the run.

A string may hold `{key}` (session scope), `{user:key}`, `{app:key}`, `{temp:key}`; a trailing `?`
(`{key?}`) makes a key optional (empty when missing). `{{` and `}}` are literal braces, and any brace
that does not open a placeholder (a JSON example such as `{"category": "billing"}`, `{ x }`, `{1}`)
is kept as written. Values render JSON-safely: strings as they are, anything else as compact JSON.

Templates are parsed once (`compile_instructions`) and rendered for every model request.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias, cast

from agnt5.errors import InstructionsError, InvalidTypeError
from agnt5.run_context import RunContext

InstructionFn: TypeAlias = Callable[[RunContext[Any]], str | Awaitable[str]]
"""A callable that writes (part of) the instructions for each model request, sync or async."""
Instructions: TypeAlias = str | InstructionFn | Sequence[str | InstructionFn]
"""What an Agent's `instructions` may be: a template string, a callable, or a list of both."""

StateScope: TypeAlias = Literal["session", "user", "app", "temp"]
_PLACEHOLDER = re.compile(r"\{(?:(session|user|app|temp):)?([A-Za-z_][A-Za-z0-9_]*)(\?)?\}")
_MISSING = object()


@dataclass(frozen=True, slots=True)
class Placeholder:
    """One `{scope:key}` of a template; `optional` for `{key?}`; `text` as written."""

    scope: StateScope
    key: str
    optional: bool
    text: str


Segment: TypeAlias = "str | Placeholder"


def parse_template(template: str) -> list[Segment]:
    """Split a template into literal text and placeholders, resolving `{{`/`}}` escapes.

    A `}}` closes a `{{` escape; after a literal `{` (JSON and the like) it is two literal braces,
    so `{"a": {"b": 1}}` and `{{"a": 1}}` both come out as the JSON they show.
    """
    if "{" not in template and "}}" not in template:
        return [template] if template else []
    segments: list[Segment] = []
    text: list[str] = []
    opened: list[bool] = []  # per unclosed brace: True for a `{{` escape, False for a literal `{`
    i, n = 0, len(template)
    while i < n:
        ch = template[i]
        if ch == "{":
            if template.startswith("{{", i):
                text.append("{")
                opened.append(True)
                i += 2
                continue
            match = _PLACEHOLDER.match(template, i)
            if match is not None:
                if text:
                    segments.append("".join(text))
                    text = []
                scope, key, optional = match.groups()
                segments.append(
                    Placeholder(cast(StateScope, scope or "session"), key, optional == "?", match.group(0))
                )
                i = match.end()
                continue
            opened.append(False)
            text.append("{")
            i += 1
        elif ch == "}":
            escaped = opened.pop() if opened else template.startswith("}}", i)
            text.append("}")
            i += 2 if escaped and template.startswith("}}", i) else 1
        else:
            j = _next_brace(template, i)
            text.append(template[i:j])
            i = j
    if text:
        segments.append("".join(text))
    return segments


def _next_brace(text: str, start: int) -> int:
    open_at, close_at = text.find("{", start), text.find("}", start)
    found = [p for p in (open_at, close_at) if p != -1]
    return min(found) if found else len(text)


def render_value(value: Any) -> str:
    """A state value as prompt text: a string as it is, anything else as compact JSON (true, null, {"a":1})."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError):
        return str(value)


# --- compiled instructions -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Template:
    segments: tuple[Segment, ...]


_Part: TypeAlias = "str | _Template | Callable[..., Any]"


class CompiledInstructions:
    """Instructions parsed once; `await render(ctx)` gives the text for one model request.

    `static` is the whole text when nothing depends on the run (no placeholder, no callable), so a
    caller can skip rendering; None otherwise.
    """

    __slots__ = ("_bulk", "_parts", "placeholders", "static")

    def __init__(self, parts: Sequence[_Part]) -> None:
        self._parts = tuple(parts)
        self.placeholders: tuple[Placeholder, ...] = tuple(
            s
            for p in self._parts
            if isinstance(p, _Template)
            for s in p.segments
            if isinstance(s, Placeholder)
        )
        self.static: str | None = (
            "\n\n".join(p for p in self._parts if isinstance(p, str))
            if all(isinstance(p, str) for p in self._parts)
            else None
        )
        # Stored scopes used more than once are read whole, once per render (one query, not one per key).
        used = [p.scope for p in self.placeholders if p.scope != "temp"]
        self._bulk = frozenset(scope for scope in used if used.count(scope) > 1)

    def __repr__(self) -> str:
        kind = "static" if self.static is not None else "dynamic"
        return f"CompiledInstructions({kind}, {len(self._parts)} parts)"

    async def render(self, ctx: RunContext[Any]) -> str:
        """The instructions for this request: parts rendered in order, joined with blank lines."""
        if self.static is not None:
            return self.static
        out: list[str] = []
        reader = _StateReader(ctx, self._bulk)
        for part in self._parts:
            if isinstance(part, str):
                text = part
            elif isinstance(part, _Template):
                text = _fill(part.segments, reader)
            else:
                text = await _call(part, ctx)
            if text:
                out.append(text)
        return "\n\n".join(out)


def compile_instructions(instructions: Instructions | CompiledInstructions | None) -> CompiledInstructions:
    """Parse instructions once (an Agent does this when built). Raises InvalidTypeError for other types."""
    if isinstance(instructions, CompiledInstructions):
        return instructions
    if instructions is None:
        return CompiledInstructions([])
    items: Sequence[Any] = (
        [instructions] if isinstance(instructions, str) or callable(instructions) else instructions
    )
    if not isinstance(items, Sequence):
        raise InvalidTypeError(
            "instructions must be a string, a callable (ctx) -> str, or a list of them, "
            f"got {type(instructions).__name__}",
            field="instructions",
        )
    parts: list[_Part] = []
    for item in items:
        if isinstance(item, str):
            segments = parse_template(item)
            if all(isinstance(s, str) for s in segments):
                if segments:
                    parts.append("".join(s for s in segments if isinstance(s, str)))
            else:
                parts.append(_Template(tuple(segments)))
        elif callable(item):
            parts.append(item)
        else:
            raise InvalidTypeError(
                f"instructions lists hold strings and callables (ctx) -> str, got {type(item).__name__}",
                field="instructions",
            )
    return CompiledInstructions(parts)


async def render_instructions(
    instructions: Instructions | CompiledInstructions | None, ctx: RunContext[Any]
) -> str:
    """Render instructions for one request (compile them once with `compile_instructions` when reused)."""
    if isinstance(instructions, str) and "{" not in instructions and "}}" not in instructions:
        return instructions
    return await compile_instructions(instructions).render(ctx)


# --- rendering -----------------------------------------------------------------------------------


def _fill(segments: Sequence[Segment], reader: _StateReader) -> str:
    out: list[str] = []
    for segment in segments:
        if isinstance(segment, str):
            out.append(segment)
            continue
        value = reader.get(segment)
        if value is _MISSING:
            if segment.optional:
                continue
            raise _missing(segment, reader.ctx)
        out.append(render_value(value))
    return "".join(out)


class _StateReader:
    """State lookups of one render: through the session's sync API; `bulk` scopes read whole once."""

    __slots__ = ("bulk", "ctx", "scopes")

    def __init__(self, ctx: RunContext[Any], bulk: frozenset[str]) -> None:
        self.ctx = ctx
        self.bulk = bulk
        self.scopes: dict[str, dict[str, Any]] = {}

    def get(self, placeholder: Placeholder) -> Any:
        session = self.ctx.session
        scope = placeholder.scope
        if scope == "user" and session.user_id is None:
            if placeholder.optional:
                return _MISSING
            raise InstructionsError(
                f"instructions use {placeholder.text} but session {session.id!r} has no user_id, so it "
                f"has no 'user' state; create the Session with user_id=..., or write "
                f"{{user:{placeholder.key}?}} to make it optional (empty when missing)",
                key=placeholder.key,
                scope="user",
            )
        if scope not in self.bulk:
            return session.get_state(placeholder.key, _MISSING, scope=scope)
        state = self.scopes.get(scope)
        if state is None:
            state = self.scopes[scope] = session.state(scope)
        return state.get(placeholder.key, _MISSING)


def _missing(placeholder: Placeholder, ctx: RunContext[Any]) -> InstructionsError:
    key, scope = placeholder.key, placeholder.scope
    prefix = "" if scope == "session" else f"{scope}:"
    return InstructionsError(
        f"instructions need state key {key!r} (scope {scope!r}) for {placeholder.text}, but session "
        f"{ctx.session.id!r} has no such key. Set it first (session.set_state({key!r}, ..., "
        f"scope={scope!r})), write {{{prefix}{key}?}} to make it optional (empty when missing), or write "
        f"{{{{{prefix}{key}}}}} if you meant the literal text {placeholder.text}",
        key=key,
        scope=scope,
    )


async def _call(fn: Callable[..., Any], ctx: RunContext[Any]) -> str:
    name = getattr(fn, "__qualname__", None) or repr(fn)
    try:
        result = fn(ctx)
        if inspect.isawaitable(result):
            result = await result
    except InstructionsError:
        raise
    except Exception as exc:
        raise InstructionsError(
            f"instructions callable {name} raised {type(exc).__name__}: {exc}; fix the callable "
            "(it runs before every model request of the run)"
        ) from exc
    if not isinstance(result, str):
        raise InstructionsError(
            f"instructions callable {name} returned {type(result).__name__}, not a string; "
            "return the instruction text (str)"
        )
    return result


__all__ = [
    "CompiledInstructions",
    "InstructionFn",
    "Instructions",
    "Placeholder",
    "StateScope",
    "compile_instructions",
    "parse_template",
    "render_instructions",
    "render_value",
]
