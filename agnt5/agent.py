"""Agent: instructions + history + tools around a LanguageModel, looping until a final answer.

Each run appends to the agent's session as it goes: the user input, every assistant message
(attributed by the agent's name) and every tool result. An assistant message that calls tools is
stored together with all its results in one transaction, so a run that fails midway never leaves
a call without its result in the history. Agents that share a session see each other's messages.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import re
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pydantic

from agnt5.agent_events import (
    FinalResult,
    HandoffEvent,
    RunEvent,
    TextDelta,
    ToolCallEvent,
    ToolResultEvent,
)
from agnt5.blocks import fit_to_budget
from agnt5.errors import InvalidInputError, InvalidTypeError, MaxTurnsExceeded, OutputValidationError
from agnt5.messages import Message, to_provider_messages, validate_message
from agnt5.models import LanguageModel, ModelResponse, ResponseComplete, ToolCall, Usage
from agnt5.models import TextDelta as ModelTextDelta
from agnt5.store.base import NewEvent
from agnt5.tokens import REPLY_PRIMER_TOKENS, counter_for
from agnt5.tools import RunContext, Tool, ToolResult, as_tool

if TYPE_CHECKING:
    from agnt5.session import Session

FINAL_RESULT_TOOL = "final_result"
_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


# --- result --------------------------------------------------------------------------------------


@dataclass
class AgentResult:
    """What a run produced: the output (text, or an `output_type` instance), the agent that
    answered, the messages this run added, summed usage and cost, and the number of model calls.

    Fields of a structured output read through: `result.category` is `result.output.category`.
    """

    output: Any
    agent_name: str
    messages: list[dict[str, Any]] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    turns: int = 0
    run_id: str = ""

    @property
    def cost(self) -> float | None:
        return self.usage.cost

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        output = self.__dict__.get("output")
        if isinstance(output, str):
            # A text answer that is a JSON object reads the same way (a router told to answer in JSON).
            fields = _json_object(output)
            if name in fields:
                return fields[name]
        elif output is not None and hasattr(output, name):
            return getattr(output, name)
        raise AttributeError(
            f"'AgentResult' has no attribute {name!r}: the output has no such field "
            "(give the Agent an output_type to get structured fields)"
        )

    def __str__(self) -> str:
        return str(self.output)


def _json_object(text: str) -> dict[str, Any]:
    stripped = text.strip()
    if not stripped.startswith("{"):
        return {}
    try:
        value = json.loads(stripped)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


# --- conversations: a session, or an agent's own memory ------------------------------------------


class _LocalHistory:
    """The history of an agent without a session: kept in memory for the agent's lifetime."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    async def read(self) -> list[dict[str, Any]]:
        return list(self.entries)

    async def append(
        self, items: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]], events: Sequence[NewEvent]
    ) -> list[dict[str, Any]]:
        out = []
        for message, metadata in items:
            entry = {**validate_message(message), "metadata": dict(metadata)}
            out.append(entry)
        self.entries.extend(out)
        return out


class _SessionHistory:
    def __init__(self, session: Session) -> None:
        self.session = session

    async def read(self) -> list[dict[str, Any]]:
        return list(await self.session.history())

    async def append(
        self, items: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]], events: Sequence[NewEvent]
    ) -> list[dict[str, Any]]:
        stored: list[Message] = await self.session._append(items, events)
        return list(stored)


@dataclass
class _Run:
    """State shared by the agents of one run (a handoff continues the same run)."""

    run_id: str
    conversation: _LocalHistory | _SessionHistory
    session: Session | None
    messages: list[dict[str, Any]] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    turns: int = 0
    handoff_to: Agent | None = None
    output: Any = None
    done: bool = False
    final: list[tuple[Mapping[str, Any], Mapping[str, Any]]] = field(default_factory=list)

    def event(self, type: str, **data: Any) -> NewEvent:
        return NewEvent(type, {"run_id": self.run_id, **data})

    async def append(
        self,
        items: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]],
        events: Sequence[NewEvent] = (),
    ) -> list[dict[str, Any]]:
        # Shielded: once the model has answered, its message and tool results are stored whole.
        stored = await asyncio.shield(self.conversation.append(items, events))
        self.messages.extend(stored)
        return stored


# --- agent ---------------------------------------------------------------------------------------


class Agent:
    """An LLM agent: `await agent.run(input)` loops model → tools → model until a final answer.

    `model` is a LanguageModel or a litellm model string (default: $AGNT5_MODEL or gpt-4o-mini).
    `tools` are functions or `Tool`s (lists of them are flattened). `handoffs` are agents this
    one may transfer the conversation to (the model gets a `transfer_to_<name>` tool each).
    `output_type` is a pydantic model for structured output. `memory` (a Memory) gives the
    model `remember` and `recall` tools. Without a session the agent keeps its own history.
    """

    def __init__(
        self,
        name: str,
        model: LanguageModel | str | None = None,
        instructions: str = "",
        tools: Iterable[Any] = (),
        session: Session | None = None,
        output_type: type[pydantic.BaseModel] | None = None,
        max_turns: int = 10,
        handoffs: Iterable[Agent] = (),
        memory: Any = None,
    ) -> None:
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise InvalidInputError(
                f"agent name must be 1-64 letters, digits, '_' or '-' (it names tools and messages), got {name!r}"
            )
        if isinstance(max_turns, bool) or not isinstance(max_turns, int) or max_turns < 1:
            raise InvalidInputError(f"max_turns must be a positive integer, got {max_turns!r}")
        if output_type is not None and not (
            isinstance(output_type, type) and issubclass(output_type, pydantic.BaseModel)
        ):
            raise InvalidTypeError(f"output_type must be a pydantic BaseModel subclass, got {output_type!r}")
        self.name = name
        self.model = model if isinstance(model, LanguageModel) else LanguageModel(model)
        self.instructions = instructions
        self.tools: list[Tool] = [as_tool(t) for t in _flatten(tools)]
        self.session = session
        self.output_type = output_type
        self.max_turns = max_turns
        self.handoffs: list[Agent] = list(handoffs)
        self.memory = memory
        if memory is not None:
            from agnt5.memory import memory_tools

            self.tools.extend(memory_tools(memory))
        self._local = _LocalHistory()
        names = [t.name for t in self.tools] + [_handoff_tool_name(a) for a in self.handoffs]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise InvalidInputError(
                f"agent {name!r} has several tools named {', '.join(duplicates)}; rename one"
            )

    def __repr__(self) -> str:
        return f"Agent({self.name!r}, model={self.model.model!r})"

    # -- public entry points --

    async def run(
        self, input: str | Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None
    ) -> AgentResult:
        """Run until a final answer; raises MaxTurnsExceeded (with `.partial`) after `max_turns` calls."""
        result: AgentResult | None = None
        async for event in self._events(input, stream=False):
            if isinstance(event, FinalResult):
                result = event.result
        assert result is not None
        return result

    def stream(
        self, input: str | Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None
    ) -> AsyncIterator[RunEvent]:
        """Run with streaming: yields text deltas, tool calls, tool results, handoffs, then FinalResult."""
        return self._events(input, stream=True)

    def run_sync(
        self, input: str | Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None
    ) -> AgentResult:
        """`run` for scripts. Inside a running event loop (Jupyter) the run goes to a worker thread
        with its own loop and this call blocks until it ends; prefer `await agent.run(...)` there."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.run(input))
        with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="agnt5-run-sync") as pool:
            return pool.submit(asyncio.run, self.run(input)).result()

    # -- the loop --

    async def _events(
        self, input: str | Mapping[str, Any] | Sequence[Mapping[str, Any]] | None, stream: bool
    ) -> AsyncIterator[RunEvent]:
        inputs = _input_messages(input)
        session = self.session
        run = _Run(
            run_id=f"run_{os.urandom(8).hex()}",
            conversation=_SessionHistory(session) if session is not None else self._local,
            session=session,
        )
        agent: Agent = self
        start = run.event("agent_run_started", agent=self.name, model=self.model.model)
        try:
            if inputs:
                await run.append([(m, {"agent": self.name}) for m in inputs], [start])
            elif session is not None:
                await session._append([], [start])
            while True:
                async for event in agent._turns(run, stream):
                    yield event
                if run.done:
                    break
                target = run.handoff_to
                assert target is not None
                run.handoff_to = None
                yield HandoffEvent(agent.name, target.name)
                agent = target
            # The final answer and the run's end are stored in one transaction.
            await run.append(run.final, [_finished(run, agent)] if session is not None else [])
            result = AgentResult(run.output, agent.name, run.messages, run.usage, run.turns, run.run_id)
            yield FinalResult(result)
        except BaseException as exc:
            if session is not None and not isinstance(exc, GeneratorExit):
                failed = run.event(
                    "agent_run_failed", agent=agent.name, error=type(exc).__name__, message=str(exc)[:500]
                )
                try:
                    await asyncio.shield(session._append([], [failed]))
                except Exception:
                    pass  # the original error matters more than its audit record
            raise
        finally:
            if session is not None:
                session.clear_temp()

    async def _turns(self, run: _Run, stream: bool) -> AsyncIterator[RunEvent]:
        """Model calls of this agent until it answers, hands off, or runs out of turns."""
        history = await run.conversation.read()
        tools = {t.name: t for t in self.tools}
        handoffs = {_handoff_tool_name(a): a for a in self.handoffs}
        schemas = [t.schema() for t in self.tools] + [_handoff_schema(a) for a in self.handoffs]
        native_output = self.output_type is not None and self.model.supports_response_schema
        if self.output_type is not None and not native_output:
            schemas.append(_final_result_schema(self.output_type))
        response_format = self.output_type if native_output else None
        corrected = False
        meta = {"agent": self.name}
        budget = self._budget(schemas)
        for _ in range(self.max_turns):
            prompt, history = await self._prompt(run, history, budget)
            response: ModelResponse | None = None
            if stream:
                async for delta in self.model.stream(
                    prompt, tools=schemas or None, response_format=response_format
                ):
                    if isinstance(delta, ModelTextDelta):
                        yield TextDelta(self.name, delta.text)
                    elif isinstance(delta, ResponseComplete):
                        response = delta.response
            else:
                response = await self.model.generate(
                    prompt, tools=schemas or None, response_format=response_format
                )
            assert response is not None
            run.turns += 1
            run.usage += response.usage
            assistant = response.message()
            assistant["name"] = self.name

            if response.tool_calls:
                for call in response.tool_calls:
                    yield ToolCallEvent(self.name, call.id, call.name, call.arguments)
                results = await asyncio.gather(
                    *(self._call_tool(call, tools, handoffs, run) for call in response.tool_calls)
                )
                events = []
                for call, (result, duration) in zip(response.tool_calls, results, strict=True):
                    events.append(
                        run.event(
                            "tool_call",
                            agent=self.name,
                            call_id=call.id,
                            name=call.name,
                            arguments=call.arguments,
                        )
                    )
                    events.append(
                        run.event(
                            "tool_result",
                            agent=self.name,
                            call_id=call.id,
                            name=call.name,
                            is_error=result.is_error,
                            duration_ms=round(duration * 1000, 3),
                        )
                    )
                target = next((handoffs[c.name] for c in response.tool_calls if c.name in handoffs), None)
                if target is not None:
                    events.append(run.event("handoff", from_agent=self.name, to_agent=target.name))
                final = self._final_from_tool(response.tool_calls, results)
                items = [(assistant, meta)] + [
                    ({"role": "tool", "tool_call_id": call.id, "content": result.content}, meta)
                    for call, (result, _) in zip(response.tool_calls, results, strict=True)
                ]
                stored = await run.append(items, events)
                history.extend(stored)
                for call, (result, _) in zip(response.tool_calls, results, strict=True):
                    yield ToolResultEvent(self.name, call.id, call.name, result.content, result.is_error)
                if final is not None:
                    run.output, run.done = final, True
                    return
                if target is not None:
                    run.handoff_to = target
                    return
                continue

            if self.output_type is None:
                run.final = [(assistant, meta)]
                run.output, run.done = response.text, True
                return
            try:
                output = self.output_type.model_validate_json(response.text)
            except pydantic.ValidationError as exc:
                if corrected:
                    raise OutputValidationError(
                        f"agent {self.name!r}: the model's answer does not match {self.output_type.__name__} "
                        f"even after one correction: {_errors(exc)}"
                    ) from exc
                corrected = True
                how = "call the final_result tool" if not native_output else "reply with only a JSON object"
                correction = {
                    "role": "user",
                    "content": f"Your answer did not match the required schema ({_errors(exc)}). "
                    f"Please {how} that matches the schema.",
                }
                stored = await run.append([(assistant, meta), (correction, {**meta, "correction": True})])
                history.extend(stored)
                continue
            run.final = [(assistant, meta)]
            run.output, run.done = output, True
            return
        partial = AgentResult(None, self.name, run.messages, run.usage, run.turns, run.run_id)
        raise MaxTurnsExceeded(
            f"agent {self.name!r} made {self.max_turns} model calls without a final answer; raise max_turns "
            "or check the tools' results (the partial run is on .partial)",
            partial=partial,
        )

    def _budget(self, schemas: Sequence[Mapping[str, Any]]) -> int:
        """Prompt tokens available to the messages: the context window less the output reserve
        (`max_tokens` if set, else a quarter of the window up to the model's output limit), the
        tools' schemas and the reply primer."""
        lm = self.model
        counter = counter_for(lm.model)
        window = lm.context_window
        reserve = lm.params.get("max_tokens") or min(lm.max_output_tokens, window // 4)
        tools_tokens = sum(counter.text(json.dumps(schema, separators=(",", ":"))) for schema in schemas)
        return window - int(reserve) - tools_tokens - REPLY_PRIMER_TOKENS

    async def _prompt(
        self, run: _Run, history: list[dict[str, Any]], budget: int
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Instructions + history fitted to `budget` tokens; returns (prompt, history).

        Over budget, a session whose retention names a `prune_strategy` is pruned
        with it (`agnt5.pruning.prune_to_fit`); otherwise — and if that is still not enough —
        system messages stay and the newest whole blocks that fit are sent, starting at a user
        message, without deleting anything (`agnt5.blocks.fit_to_budget`).
        """
        lm = self.model
        counter = counter_for(lm.model)
        instructions = [{"role": "system", "content": self.instructions}] if self.instructions else []

        def count(message: Mapping[str, Any]) -> int:
            stored = getattr(message, "tokens", None)
            return stored if isinstance(stored, int) else counter.message(message)

        own = sum(count(m) for m in instructions)
        if own + sum(count(m) for m in history) > budget and run.session is not None:
            from agnt5.pruning import prune_to_fit

            pruned = await prune_to_fit(run.session, budget - own, model=lm)
            if pruned is not None and pruned.changed:
                history = await run.conversation.read()
        messages: list[Mapping[str, Any]] = [*instructions, *history]
        if own + sum(count(m) for m in history) > budget:
            messages = fit_to_budget(messages, budget, count)
        return to_provider_messages(messages), history

    async def _call_tool(
        self, call: ToolCall, tools: Mapping[str, Tool], handoffs: Mapping[str, Agent], run: _Run
    ) -> tuple[ToolResult, float]:
        started = time.perf_counter()
        if call.name in handoffs:
            result = ToolResult(f"Transferred to {handoffs[call.name].name}.")
        elif call.name == FINAL_RESULT_TOOL and self.output_type is not None:
            result = self._check_final(call)
        elif call.name in tools:
            ctx = RunContext(session=run.session, agent_name=self.name)
            result = await tools[call.name].invoke(call.arguments, ctx)
        else:
            known = ", ".join(sorted([*tools, *handoffs])) or "none"
            result = ToolResult(f"Error: unknown tool {call.name!r}; available tools: {known}", is_error=True)
        return result, time.perf_counter() - started

    def _check_final(self, call: ToolCall) -> ToolResult:
        assert self.output_type is not None
        try:
            self.output_type.model_validate_json(call.arguments or "{}")
        except pydantic.ValidationError as exc:
            return ToolResult(
                f"Error: invalid final_result: {_errors(exc)}; call final_result again", is_error=True
            )
        return ToolResult("Final result received.")

    def _final_from_tool(
        self, calls: Sequence[ToolCall], results: Sequence[tuple[ToolResult, float]]
    ) -> pydantic.BaseModel | None:
        if self.output_type is None:
            return None
        for call, (result, _) in zip(calls, results, strict=True):
            if call.name == FINAL_RESULT_TOOL and not result.is_error:
                return self.output_type.model_validate_json(call.arguments or "{}")
        return None


# --- helpers -------------------------------------------------------------------------------------


def _flatten(items: Iterable[Any]) -> Iterable[Any]:
    for item in items:
        if isinstance(item, (list, tuple)):
            yield from _flatten(item)
        else:
            yield item


def _input_messages(
    input: str | Mapping[str, Any] | Sequence[Mapping[str, Any]] | None,
) -> list[Mapping[str, Any]]:
    if input is None:
        return []
    if isinstance(input, str):
        return [{"role": "user", "content": input}]
    if isinstance(input, Mapping):
        return [input]
    if isinstance(input, Sequence):
        messages: list[Mapping[str, Any]] = []
        for item in input:
            if not isinstance(item, Mapping):
                raise InvalidTypeError(f"agent input lists hold message dicts, got {type(item).__name__}")
            messages.append(item)
        return messages
    raise InvalidTypeError(
        f"agent input must be a string, a message dict or a list of them, got {type(input).__name__}"
    )


def _handoff_tool_name(agent: Agent) -> str:
    return f"transfer_to_{agent.name}"[:64]


def _handoff_schema(agent: Agent) -> dict[str, Any]:
    about = agent.instructions.strip().splitlines()[0] if agent.instructions.strip() else ""
    description = f"Hand the conversation over to the agent {agent.name!r}." + (
        f" It: {about}" if about else ""
    )
    return {
        "type": "function",
        "function": {
            "name": _handoff_tool_name(agent),
            "description": description,
            "parameters": {"type": "object", "properties": {}, "additionalProperties": False},
        },
    }


def _final_result_schema(output_type: type[pydantic.BaseModel]) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": FINAL_RESULT_TOOL,
            "description": f"Give your final answer as a {output_type.__name__}. Call this once, when done.",
            "parameters": output_type.model_json_schema(),
        },
    }


def _errors(exc: pydantic.ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'output'}: {e['msg']}" for e in exc.errors())


def _finished(run: _Run, agent: Agent) -> NewEvent:
    return run.event(
        "agent_run_finished",
        agent=agent.name,
        turns=run.turns,
        prompt_tokens=run.usage.prompt_tokens,
        completion_tokens=run.usage.completion_tokens,
        cost=run.usage.cost,
    )


__all__ = ["Agent", "AgentResult"]
