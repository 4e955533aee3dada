"""Tools: Python functions the model may call, with a JSON schema built from the signature.

Arguments are validated by pydantic before the call. `Tool.invoke` never raises for a bad call:
malformed JSON, invalid arguments and exceptions in the tool come back as an error `ToolResult`,
so the model can read what went wrong and try again.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import re
import types
import typing
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, cast, overload

import pydantic
import pydantic_core
from pydantic.fields import FieldInfo
from typing_extensions import ParamSpec, TypeVar

from agnt5.errors import InvalidTypeError, ToolDefinitionError
from agnt5.run_context import RunContext as RunContext  # re-exported: tools ask for it by annotation

P = ParamSpec("P", default=...)
"""A tool function's parameters (so calling a `@tool` function directly stays type-checked)."""
R = TypeVar("R", default=Any)
"""A tool function's return type."""

ApprovalRule = bool | Callable[[RunContext[Any], dict[str, Any]], Any]
"""`requires_approval`: True/False, or `(ctx, args) -> bool` (sync or async) deciding per call."""

_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SECTION_RE = re.compile(
    r"^(Args|Arguments|Parameters|Params|Returns?|Yields?|Raises|Examples?|Notes?|Attributes|See Also|"
    r"Warnings?|Todo)\s*:\s*$",
    re.IGNORECASE,
)
_ARG_SECTIONS = {"args", "arguments", "parameters", "params"}
_GOOGLE_ARG_RE = re.compile(r"^\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
_SPHINX_PARAM_RE = re.compile(r"^:param\s+(?:[^:]*\s)?(\w+)\s*:\s*(.*)$")


@dataclass(frozen=True, slots=True)
class ToolResult:
    """The text sent back to the model for one tool call; `is_error` when the call failed."""

    content: str
    is_error: bool = False


# --- docstrings ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Doc:
    description: str
    params: dict[str, str]


def _parse_docstring(doc: str | None) -> _Doc:
    """Description (prose before any section) and parameter descriptions (Google `Args:` or Sphinx)."""
    if not doc:
        return _Doc("", {})
    lines = inspect.cleandoc(doc).splitlines()
    prose: list[str] = []
    params: dict[str, str] = {}
    section: str | None = None
    current: str | None = None
    arg_indent: int | None = None
    for line in lines:
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        header = _SECTION_RE.match(stripped)
        if header and indent == 0:
            section, current, arg_indent = header.group(1).lower(), None, None
            continue
        sphinx = _SPHINX_PARAM_RE.match(stripped)
        if sphinx:
            section, current = "sphinx", sphinx.group(1)
            params[current] = sphinx.group(2).strip()
            continue
        if stripped.startswith(":") and indent == 0:
            section, current = "sphinx-other", None
            continue
        if section is None:
            prose.append(stripped)
        elif section in _ARG_SECTIONS and stripped:
            if arg_indent is None:
                arg_indent = indent
            entry = _GOOGLE_ARG_RE.match(stripped) if indent <= arg_indent else None
            if entry:
                current = entry.group(1)
                params[current] = entry.group(2).strip()
            elif current is not None:
                params[current] = f"{params[current]} {stripped}".strip()
        elif section == "sphinx" and stripped and current is not None and indent > 0:
            params[current] = f"{params[current]} {stripped}".strip()
    paragraphs: list[list[str]] = [[]]
    for line in prose:
        if line:
            paragraphs[-1].append(line)
        elif paragraphs[-1]:
            paragraphs.append([])
    description = "\n\n".join(" ".join(p) for p in paragraphs if p)
    return _Doc(description, params)


# --- schema --------------------------------------------------------------------------------------


def _strip_titles(schema: Any) -> Any:
    """Drop pydantic's "title" keywords (noise for the model), keeping properties named "title"."""
    if isinstance(schema, list):
        return [_strip_titles(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "title" and isinstance(value, str):
            continue
        if key in ("properties", "$defs", "definitions") and isinstance(value, dict):
            out[key] = {name: _strip_titles(sub) for name, sub in value.items()}
        else:
            out[key] = _strip_titles(value)
    return out


def _parameter_hints(function: Callable[..., Any]) -> dict[str, Any]:
    """Resolved parameter annotations (the return annotation is ignored: it may be any local type)."""
    target = inspect.unwrap(function)
    if not inspect.isfunction(target) and not inspect.ismethod(target):
        target = getattr(target, "__call__", target)  # noqa: B004 - callable objects
    annotations = dict(getattr(target, "__annotations__", None) or {})
    annotations.pop("return", None)
    globalns = getattr(target, "__globals__", {})
    func = getattr(target, "__func__", target)
    localns = dict(inspect.getclosurevars(func).nonlocals) if inspect.isfunction(func) else {}
    holder = types.SimpleNamespace(__annotations__=annotations)
    return typing.get_type_hints(holder, globalns=globalns, localns=localns, include_extras=True)


def _is_run_context(annotation: Any) -> bool:
    """`RunContext`, `RunContext[MyDeps]`, or either inside `Annotated[...]`."""
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    annotation = typing.get_origin(annotation) or annotation
    return isinstance(annotation, type) and issubclass(annotation, RunContext)


def _validation_message(error: pydantic.ValidationError) -> str:
    parts = []
    for item in error.errors(include_url=False):
        where = ".".join(str(p) for p in item["loc"]) or "arguments"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


# --- Tool ----------------------------------------------------------------------------------------


class Tool(Generic[P, R]):
    """A function the model can call: name, description, JSON schema, validation and invocation.

    Generic over the function's parameters and return type (a bare `Tool` is `Tool[..., Any]`).
    """

    def __init__(
        self,
        function: Callable[P, R],
        *,
        name: str,
        description: str,
        args_model: type[pydantic.BaseModel],
        context_param: str | None = None,
        positional: tuple[str, ...] = (),
        requires_approval: ApprovalRule = False,
        idempotent: bool = False,
    ) -> None:
        _check_flags(name, requires_approval, idempotent)
        self.requires_approval = requires_approval
        self.idempotent = idempotent
        self.function: Callable[..., Any] = function
        self.name = name
        self.description = description
        self.args_model = args_model
        self.context_param = context_param
        self._positional = positional
        self.parameters: dict[str, Any] = _strip_titles(args_model.model_json_schema())
        self.is_async = inspect.iscoroutinefunction(function)

    @classmethod
    def from_function(
        cls,
        function: Callable[P, R],
        *,
        name: str | None = None,
        description: str | None = None,
        requires_approval: ApprovalRule = False,
        idempotent: bool = False,
    ) -> Tool[P, R]:
        """Build a Tool from a sync or async function's signature, type hints and docstring.

        `requires_approval` makes a call wait for a person's decision (`agnt5.approvals`);
        `idempotent` says a call may run again safely, so a run resumed after a crash re-runs it
        when its result was never stored (otherwise the model is told it was interrupted)."""
        if isinstance(function, Tool):
            return function
        if not callable(function):
            raise ToolDefinitionError(f"a tool must be a function, got {type(function).__name__}")
        for label, given in (("name", name), ("description", description)):
            if given is not None and not isinstance(given, str):
                raise ToolDefinitionError(f"tool {label} must be a string, got {type(given).__name__}")
        tool_name = str(name or getattr(function, "__name__", ""))
        if not _NAME_RE.match(tool_name):
            raise ToolDefinitionError(
                f"invalid tool name {tool_name!r}: use 1-64 letters, digits, '_' or '-' (pass name=...)"
            )
        try:
            signature = inspect.signature(function)
        except (TypeError, ValueError) as exc:
            raise ToolDefinitionError(f"cannot read the signature of tool {tool_name!r}: {exc}") from exc
        try:
            hints = _parameter_hints(function)
        except Exception as exc:
            raise ToolDefinitionError(
                f"cannot resolve the type hints of tool {tool_name!r}: {exc}. "
                "Define the annotated types at module level."
            ) from exc
        doc = _parse_docstring(inspect.getdoc(function))

        fields: dict[str, Any] = {}
        context_param: str | None = None
        positional: list[str] = []
        for param in signature.parameters.values():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise ToolDefinitionError(
                    f"tool {tool_name!r} has *{param.name} or **{param.name}: tools need named, "
                    "fixed parameters so the model gets a schema"
                )
            annotation = hints.get(param.name, Any)
            if _is_run_context(annotation):
                if context_param is not None:
                    raise ToolDefinitionError(f"tool {tool_name!r} asks for RunContext twice")
                context_param = param.name
                if param.kind == param.POSITIONAL_ONLY:
                    positional.append(param.name)
                continue
            if param.name.startswith("_"):
                raise ToolDefinitionError(
                    f"tool {tool_name!r}: parameter {param.name!r} starts with '_', which pydantic "
                    "cannot use as a field name; rename it"
                )
            default = param.default
            if isinstance(default, FieldInfo):
                info = default
                if info.description is None and param.name in doc.params:
                    info = FieldInfo.merge_field_infos(default, description=doc.params[param.name])
            else:
                value = ... if default is param.empty else default
                # Pass description only when documented, so an Annotated Field's description survives.
                if param.name in doc.params:
                    info = FieldInfo(default=value, description=doc.params[param.name])
                else:
                    info = FieldInfo(default=value)
            fields[param.name] = (annotation, info)
            if param.kind == param.POSITIONAL_ONLY:
                positional.append(param.name)
        try:
            args_model = pydantic.create_model(
                f"{tool_name}_arguments",
                __config__=pydantic.ConfigDict(extra="forbid", arbitrary_types_allowed=False),
                **fields,
            )
            args_model.model_json_schema()
        except Exception as exc:
            raise ToolDefinitionError(
                f"tool {tool_name!r} has a parameter type pydantic cannot describe as JSON: {exc}"
            ) from exc
        return cls(
            function,
            name=tool_name,
            description=description if description is not None else doc.description,
            args_model=args_model,
            context_param=context_param,
            positional=tuple(positional),
            requires_approval=requires_approval,
            idempotent=idempotent,
        )

    def __repr__(self) -> str:
        return f"Tool({self.name!r})"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call the underlying function directly (no validation), so decorated functions stay usable."""
        return cast(R, self.function(*args, **kwargs))

    def schema(self) -> dict[str, Any]:
        """The OpenAI tool definition: {"type": "function", "function": {name, description, parameters}}."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }

    async def invoke(
        self, arguments: str | Mapping[str, Any], ctx: RunContext[Any] | None = None
    ) -> ToolResult:
        """Validate `arguments` (the model's JSON text) and run the tool; failures become error results.

        A tool that asks for a RunContext and is invoked without one (outside a run) gets one with
        no deps and a fresh in-memory session."""
        if isinstance(arguments, str):
            try:
                parsed = json.loads(arguments) if arguments.strip() else {}
            except json.JSONDecodeError as exc:
                return self._error(f"arguments are not valid JSON ({exc.msg} at position {exc.pos})")
            except (ValueError, RecursionError) as exc:  # a number too long to convert; nesting too deep
                return self._error(f"arguments cannot be read ({type(exc).__name__}: {str(exc)[:200]})")
        elif isinstance(arguments, Mapping):
            parsed = dict(arguments)
        else:
            raise InvalidTypeError(
                f"tool arguments must be JSON text or a mapping, got {type(arguments).__name__}",
                field="arguments",
            )
        if not isinstance(parsed, dict):
            return self._error(f"arguments must be a JSON object, got {type(parsed).__name__}")
        try:
            validated = self.args_model.model_validate(parsed)
        except pydantic.ValidationError as exc:
            return self._error(_validation_message(exc))

        values = {name: getattr(validated, name) for name in type(validated).model_fields}
        if self.context_param is not None:
            values[self.context_param] = ctx if ctx is not None else _detached_context()
        args = [values.pop(name) for name in self._positional]
        try:
            if self.is_async:
                result = await self.function(*args, **values)
            else:
                result = await asyncio.to_thread(self.function, *args, **values)
            if not isinstance(result, str) and inspect.isawaitable(result):
                result = await result
        except Exception as exc:
            return ToolResult(f"Error: tool '{self.name}' failed: {type(exc).__name__}: {exc}", is_error=True)
        return ToolResult(_serialise(result))

    def _error(self, problem: str) -> ToolResult:
        return ToolResult(f"Error: invalid arguments for tool '{self.name}': {problem}", is_error=True)


def _detached_context() -> RunContext[Any]:
    from agnt5.agent_run import run_local_session
    from agnt5.config import default_model

    return RunContext(deps=None, session=run_local_session(default_model()))


def _serialise(value: Any) -> str:
    """Strings as-is; pydantic models, dataclasses and other values as JSON (str() as a last resort)."""
    if isinstance(value, str):
        return value
    if isinstance(value, pydantic.BaseModel):
        return value.model_dump_json()
    try:
        return pydantic_core.to_json(value, fallback=str).decode()
    except Exception:
        return str(value)


@overload
def tool(function: Callable[P, R], /) -> Tool[P, R]: ...


@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    requires_approval: ApprovalRule = False,
    idempotent: bool = False,
) -> Callable[[Callable[P, R]], Tool[P, R]]: ...


def tool(
    function: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    requires_approval: ApprovalRule = False,
    idempotent: bool = False,
) -> Tool[..., Any] | Callable[[Callable[..., Any]], Tool[..., Any]]:
    """Make a function a Tool: `@tool` or `@tool(name=..., description=..., requires_approval=...,
    idempotent=...)` (see `Tool.from_function`).

    The Tool keeps the function's signature for type checkers: `add(1, 2)` on a `@tool` function is
    checked like the function itself.
    """
    if function is not None:
        return Tool.from_function(function, name=name, description=description)

    def decorate(func: Callable[..., Any]) -> Tool[..., Any]:
        return Tool.from_function(
            func,
            name=name,
            description=description,
            requires_approval=requires_approval,
            idempotent=idempotent,
        )

    return decorate


def _check_flags(name: str, requires_approval: Any, idempotent: Any) -> None:
    if not isinstance(requires_approval, bool) and not callable(requires_approval):
        raise ToolDefinitionError(
            f"tool {name!r}: requires_approval must be True, False or a function (ctx, args) -> bool, "
            f"got {requires_approval!r}"
        )
    if not isinstance(idempotent, bool):
        raise ToolDefinitionError(f"tool {name!r}: idempotent must be True or False, got {idempotent!r}")


_built: weakref.WeakKeyDictionary[Callable[..., Any], Tool] = weakref.WeakKeyDictionary()


def as_tool(value: Tool | Callable[..., Any]) -> Tool:
    """`value` itself if already a Tool, else `Tool.from_function(value)`, built once per function
    (agents are often created per request; building the pydantic model is the costly part)."""
    if isinstance(value, Tool):
        return value
    try:
        cached = _built.get(value)
    except TypeError:  # not weak-referenceable (e.g. a bound method object is, a builtin may not be)
        return Tool.from_function(value)
    if cached is None:
        cached = Tool.from_function(value)
        _built[value] = cached
    return cached


__all__ = ["RunContext", "Tool", "ToolResult", "as_tool", "tool"]
