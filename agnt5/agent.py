"""Agent: instructions + history + tools around a LanguageModel, looping until a final answer.

An Agent is a definition; each `run` holds its own state (`agnt5.agent_run.Run`), so one agent
serves any number of concurrent runs. A run appends to its session as it goes: the user input,
every assistant message (attributed by the agent's name) and every tool result. An assistant
message that calls tools is stored together with all its results in one transaction, so a run
that fails midway never leaves a call without its result. Agents that share a session see each
other's messages.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import json
import os
import re
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Generic

import pydantic

from agnt5 import overrides, tracing
from agnt5.agent_events import (
    FinalResult,
    HandoffEvent,
    RunEvent,
    RunPaused,
    TextDelta,
    ToolCallEvent,
    ToolResultEvent,
)
from agnt5.agent_result import AgentResult, OutputT, partial_result
from agnt5.agent_run import Run, gather_or_cancel, input_messages, run_local_session
from agnt5.agent_tools import (
    FINAL_RESULT_TOOL,
    final_result_schema,
    handoff_schema,
    handoff_tool_name,
    tool_message,
    unknown_tool,
    validation_errors,
)
from agnt5.approvals import Decision, check_decisions
from agnt5.context import ContextBudget, as_context_budget, build_prompt, split_instructions
from agnt5.errors import (
    InvalidInputError,
    InvalidTypeError,
    MaxTurnsExceeded,
    OutputValidationError,
    UsageLimitExceeded,
)
from agnt5.guardrails import Guardrail, GuardrailFunction, as_guardrails, first_tripped
from agnt5.hooks import HookChain, RunHooks
from agnt5.instructions import Instructions, compile_instructions
from agnt5.models import LanguageModel, ModelResponse, ResponseComplete, ToolCall
from agnt5.models import TextDelta as ModelTextDelta
from agnt5.pending_calls import unanswered_calls
from agnt5.resume import check_decisions as check_stray_decisions
from agnt5.resume import finish_steps
from agnt5.run_audit import finished_event, record_failure, tool_events
from agnt5.run_context import DepsT, RunContext
from agnt5.steps import OnResult, run_step, step_meta
from agnt5.store.base import NewEvent
from agnt5.tokens import REPLY_PRIMER_TOKENS, counter_for
from agnt5.tools import Tool, ToolResult, as_tool
from agnt5.toolsets import RunSources, ToolSource, is_tool_source, list_all
from agnt5.usage import UsageLimits

if TYPE_CHECKING:
    from agnt5.session import Session

_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


AgentInput = str | Mapping[str, Any] | Sequence[Mapping[str, Any]] | None


# --- agent ---------------------------------------------------------------------------------------


class Agent(Generic[DepsT, OutputT]):
    """An LLM agent: `await agent.run(input)` loops model → tools → model until a final answer.

    `model` is a LanguageModel or a litellm model string (default: $AGNT5_MODEL or gpt-4o-mini).
    `instructions` is a string with `{key}` state placeholders, a callable `(ctx) -> str` (sync or
    async), or a list of both, rendered for every model request (`agnt5.instructions`).
    `tools` are functions, `Tool`s or tool sources such as MCP servers (`agnt5.mcp`, listed at
    every turn); lists of them are flattened. `handoffs` are agents this one may transfer the
    conversation to (the model gets a `transfer_to_<name>` tool each).
    `output_type` is a pydantic model for structured output. `memory` (a Memory) gives the
    model `remember` and `recall` tools. `session` is the conversation of runs given none; a run
    without either gets a fresh in-memory session of its own. `deps_type` types `run(deps=...)`;
    `hooks` (a RunHooks) and the guardrails apply to every run of this agent. `context_budget`
    (tokens, or a `ContextBudget`) makes prompts cache-aware: stable cuts, instructions rendered
    from state sent last, provider caching hints (`agnt5.context`).
    """

    def __init__(
        self,
        name: str,
        model: LanguageModel | str | None = None,
        instructions: Instructions = "",
        tools: Iterable[Any] = (),
        session: Session | None = None,
        output_type: type[OutputT] | None = None,
        max_turns: int = 10,
        handoffs: Iterable[Agent[Any, Any]] = (),
        memory: Any = None,
        *,
        deps_type: type[DepsT] | None = None,
        hooks: RunHooks[DepsT] | None = None,
        input_guardrails: Sequence[Guardrail[DepsT] | GuardrailFunction[DepsT]] = (),
        output_guardrails: Sequence[Guardrail[DepsT] | GuardrailFunction[DepsT]] = (),
        context_budget: int | ContextBudget | None = None,
    ) -> None:
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise InvalidInputError(
                f"agent name must be 1-64 letters, digits, '_' or '-' (it names tools and messages), got {name!r}"
            )
        if isinstance(max_turns, bool) or not isinstance(max_turns, int) or max_turns < 1:
            raise InvalidInputError(f"max_turns must be a positive integer, got {max_turns!r}")
        if output_type is not None and output_type is not str:
            if not (isinstance(output_type, type) and issubclass(output_type, pydantic.BaseModel)):
                raise InvalidTypeError(
                    f"output_type must be a pydantic BaseModel subclass (or str), got {output_type!r}"
                )
        if hooks is not None and not isinstance(hooks, RunHooks):
            raise InvalidTypeError(f"hooks must be a RunHooks instance, got {hooks!r}")
        self.name = name
        self.model = model if isinstance(model, LanguageModel) else LanguageModel(model)
        self.instructions = instructions
        self._instructions = compile_instructions(instructions)
        self.context_budget = as_context_budget(context_budget)
        self._split = split_instructions(self._instructions)
        given = list(_flatten(tools))
        # Tool sources (MCP servers) are listed at every turn of a run; the rest are Tools.
        self.tool_sources: list[ToolSource] = [t for t in given if is_tool_source(t)]
        self.tools: list[Tool] = [as_tool(t) for t in given if not is_tool_source(t)]
        self.session = _check_session(session, "Agent(session=...)")
        # None for text output; the pydantic model otherwise.
        self.output_type: type[pydantic.BaseModel] | None = (
            None if output_type is None or output_type is str else output_type  # type: ignore[assignment]
        )
        self.max_turns = max_turns
        self.handoffs: list[Agent[Any, Any]] = list(handoffs)
        for target in self.handoffs:
            if not isinstance(target, Agent):
                raise InvalidTypeError(f"handoffs are Agents, got {type(target).__name__}")
        self.memory = memory
        self.deps_type = deps_type
        self.hooks = hooks
        self.input_guardrails = as_guardrails(input_guardrails)
        self.output_guardrails = as_guardrails(output_guardrails)
        if memory is not None:
            from agnt5.memory import memory_tools

            self.tools.extend(memory_tools(memory))
        names = [t.name for t in self.tools] + [handoff_tool_name(a) for a in self.handoffs]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise InvalidInputError(
                f"agent {name!r} has several tools named {', '.join(duplicates)}; rename one"
            )

    def __repr__(self) -> str:
        return f"Agent({self.name!r}, model={self.model.model!r})"

    # -- public entry points --

    async def run(
        self,
        input: AgentInput = None,
        *,
        session: Session | None = None,
        deps: DepsT = None,  # type: ignore[assignment]
        usage_limits: UsageLimits | None = None,
        hooks: RunHooks[DepsT] | None = None,
        approvals: Mapping[str, Decision] | None = None,
        approved_by: str | None = None,
    ) -> AgentResult[OutputT]:
        """Run until a final answer. The conversation is `session`, else the agent's own session,
        else a fresh in-memory one for this run alone. Raises MaxTurnsExceeded after `max_turns`
        model calls and UsageLimitExceeded past `usage_limits` (both carry `.partial`).

        A call of a tool that requires approval pauses the run: the result's `pending` lists the
        waiting calls. `approvals={call_id: True | False | Denial(reason)}` (with `approved_by=`,
        recorded in the audit trail) resumes them; `input=None` then continues the conversation.
        A run also first finishes any tool step a stopped run left on the session (`agnt5.resume`)."""
        result: AgentResult[OutputT] | None = None
        events = self._events(input, False, session, deps, usage_limits, hooks, approvals, approved_by)
        async for event in tracing.agent_run(self.name, overrides.model_for(self), events):
            if isinstance(event, (FinalResult, RunPaused)):
                result = event.result
        assert result is not None
        return result

    def stream(
        self,
        input: AgentInput = None,
        *,
        session: Session | None = None,
        deps: DepsT = None,  # type: ignore[assignment]
        usage_limits: UsageLimits | None = None,
        hooks: RunHooks[DepsT] | None = None,
        approvals: Mapping[str, Decision] | None = None,
        approved_by: str | None = None,
    ) -> AsyncIterator[RunEvent]:
        """Run with streaming: yields text deltas, tool calls, tool results, handoffs, then
        FinalResult — or RunPaused when calls wait for approval."""
        events = self._events(input, True, session, deps, usage_limits, hooks, approvals, approved_by)
        return tracing.agent_run(self.name, overrides.model_for(self), events)

    def run_sync(
        self,
        input: AgentInput = None,
        *,
        session: Session | None = None,
        deps: DepsT = None,  # type: ignore[assignment]
        usage_limits: UsageLimits | None = None,
        hooks: RunHooks[DepsT] | None = None,
        approvals: Mapping[str, Decision] | None = None,
        approved_by: str | None = None,
    ) -> AgentResult[OutputT]:
        """`run` for scripts. Inside a running event loop (Jupyter) the run goes to a worker thread
        with its own loop and this call blocks until it ends; prefer `await agent.run(...)` there."""
        run = self.run(
            input,
            session=session,
            deps=deps,
            usage_limits=usage_limits,
            hooks=hooks,
            approvals=approvals,
            approved_by=approved_by,
        )
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(run)
        context = contextvars.copy_context()  # overrides active here apply on the worker too
        with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="agnt5-run-sync") as pool:
            return pool.submit(context.run, asyncio.run, run).result()

    def override(
        self, *, model: LanguageModel | str | Any = overrides._UNSET, deps: Any = overrides._UNSET
    ) -> AbstractContextManager[None]:
        """`with agent.override(model=..., deps=...):` runs of this agent and the agents it hands
        off to use that model (and deps) inside the block only; other tasks are unaffected."""
        return overrides.override(self, model=model, deps=deps)

    # -- the loop --

    async def _events(
        self,
        input: AgentInput,
        stream: bool,
        session: Session | None,
        deps: Any,
        limits: UsageLimits | None,
        hooks: RunHooks[Any] | None,
        approvals: Mapping[str, Decision] | None = None,
        approved_by: str | None = None,
    ) -> AsyncIterator[RunEvent]:
        inputs = input_messages(input)
        decisions = check_decisions(approvals)
        if approved_by is not None and not isinstance(approved_by, str):
            raise InvalidTypeError(f"approved_by must be a string, got {type(approved_by).__name__}")
        if hooks is not None and not isinstance(hooks, RunHooks):
            raise InvalidTypeError(f"hooks must be a RunHooks instance, got {hooks!r}")
        if limits is not None and not isinstance(limits, UsageLimits):
            raise InvalidTypeError(f"usage_limits must be a UsageLimits, got {type(limits).__name__}")
        chosen = _check_session(session, "run(session=...)") if session is not None else self.session
        conversation = chosen if chosen is not None else run_local_session(self.model.model)
        run_id = f"run_{os.urandom(8).hex()}"
        ctx: RunContext[Any] = RunContext(overrides.deps_for(self, deps), conversation, self.name, run_id)
        run = Run(run_id, conversation, ctx, chosen is not None, limits, hooks)
        sources = RunSources()  # tool sources (MCP servers) the run's agents open, closed at its end
        tracing.run_started(run_id, conversation.id)
        agent: Agent[Any, Any] = self
        came_from = self.name
        try:
            reads_state = self._instructions.static is None or self.context_budget is not None
            if reads_state and not conversation.store.supports_sync:
                await conversation.load()  # placeholders and the stored cut read state synchronously
            if inputs:
                tripped = await first_tripped(
                    self.input_guardrails, ctx, input if isinstance(input, str) else inputs, "input"
                )
                if tripped is not None:
                    raise tripped
            await HookChain.of(self.hooks, hooks).run_start(ctx, self)
            run.started = True
            meta = {"agent": self.name}
            items: list[tuple[Mapping[str, Any], Mapping[str, Any]]] = [(m, meta) for m in inputs]
            events = [run.event("agent_run_started", agent=self.name, model=overrides.model_for(self).model)]
            if self._instructions.static is None:  # a missing state key fails before anything is stored
                run.rendered = await self._instructions.render(ctx)
            # A run-local session starts empty. An application's is read with the input stored after
            # it (one store call), unless it ends with calls never answered: those are run first.
            history, opened = (
                await run.open(items, events, hold=bool(decisions)) if run.durable else ([], False)
            )
            if run.steps or decisions or run.busy:  # steps a paused or stopped run left: first
                check_stray_decisions(decisions, run.steps, history, bool(inputs), conversation.id, run.busy)
                resumed = await finish_steps(self, run, decisions, approved_by, sources)
                for event in resumed.events:
                    yield event
                agent = resumed.agent
                if resumed.final is not None and not inputs:  # new input still wants its answer
                    run.output, run.done = resumed.final, True
                history = await run.read()
            dangling = unanswered_calls(history) if history and not opened and not run.pending else []
            own = await self._tools_for(run, sources) if dangling and not run.done else []
            pending = self._resumable(dangling, own)
            answers = await self._run_tools(run, pending, {}, own) if pending else []
            if not opened and not run.pending:
                if (
                    pending or run.steps
                ) and self._instructions.static is None:  # what the tools changed shows
                    run.rendered = await self._instructions.render(ctx)
                done = [tool_message(c, a, self.name) for c, (a, _) in zip(pending, answers, strict=True)]
                events += tool_events(run, self, pending, answers, None)
                history += run.append_soon(done + items, events)  # stored during the first request
            for call, (answer, _) in zip(pending, answers, strict=True):
                yield ToolResultEvent(self.name, call.id, call.name, answer.content, answer.is_error)
            while not run.done and not run.pending:
                turns = agent._turns(run, stream, history, sources)
                if agent is not self:  # a handoff target's turns: a child invoke_agent span
                    turns = tracing.agent_run(
                        agent.name, overrides.model_for(agent), turns, handoff_from=came_from
                    )
                async for event in turns:
                    yield event
                if run.done or run.pending:
                    break
                target = run.handoff_to
                assert target is not None
                run.handoff_to = None
                await HookChain.of(agent.hooks, hooks).handoff(ctx, agent, target)
                yield HandoffEvent(agent.name, target.name)
                came_from, agent = agent.name, target
                ctx.agent_name = agent.name
                history = await run.read()
            if run.pending:
                yield RunPaused(await self._pause(run, agent, events if not opened else [], hooks))
                return
            tripped = await first_tripped(agent.output_guardrails, ctx, run.output, "output")
            if tripped is not None:
                raise tripped
            # The final answer and the run's end are stored in one transaction.
            await run.append(run.final, [finished_event(run, agent)])
            run.started = False  # finished: a failing on_run_end hook is not a failed run
            result = AgentResult(
                run.output, agent.name, run.messages, run.usage, run.turns, run.run_id, session=conversation
            )
            await HookChain.of(agent.hooks, hooks).run_end(ctx, agent, result)
            yield FinalResult(result)
        except BaseException as exc:
            if not isinstance(exc, GeneratorExit):
                await record_failure(run, agent, exc)  # after the step being stored, if any
                with contextlib.suppress(Exception):
                    await run.drop_leases()
            if isinstance(exc, UsageLimitExceeded) and exc.partial is None:
                exc.partial = partial_result(run, agent.name)
            raise
        finally:
            conversation.clear_temp()
            with contextlib.suppress(Exception):
                await run.settle()  # a step still being stored (its error, if any, was raised above)
            run.release()
            with contextlib.suppress(Exception):
                await sources.aclose()  # the tool sources this run opened (MCP servers) close

    async def _turns(
        self, run: Run, stream: bool, history: list[dict[str, Any]], sources: RunSources
    ) -> AsyncIterator[RunEvent]:
        """Model calls of this agent until it answers, hands off, or runs out of turns."""
        model = overrides.model_for(self)
        chain = HookChain.of(self.hooks, run.hooks)
        ctx = run.ctx
        handoffs = {handoff_tool_name(a): a for a in self.handoffs}
        native_output = self.output_type is not None and model.supports_response_schema
        response_format = self.output_type if native_output else None
        corrected = False
        meta = {"agent": self.name}
        counter = counter_for(model.model)
        tools: list[Tool] = []
        listed: list[Tool] | None = None
        if self.tool_sources:
            await sources.enter(self.tool_sources)
        for _ in range(self.max_turns):
            # The turn starts by listing every source's tools (cached by the sources themselves).
            found = await list_all(self.tool_sources, ctx, self._taken_names()) if self.tool_sources else []
            if listed is None or [id(t) for t in found] != [id(t) for t in listed]:
                listed, tools = found, [*self.tools, *found]
                schemas = [t.schema() for t in tools] + [handoff_schema(a) for a in self.handoffs]
                if self.output_type is not None and not native_output:
                    schemas.append(final_result_schema(self.output_type))
                tools_tokens = sum(counter.text(json.dumps(s, separators=(",", ":"))) for s in schemas)
                budget = _budget(model, tools_tokens)
            prompt, history, hint = await build_prompt(run, self, model, history, budget, tools_tokens)
            # Only cache-aware requests pass `cache=` (LanguageModel subclasses may not take it).
            cache: dict[str, Any] = {"cache": hint} if hint is not None else {}
            if chain:
                prompt = await chain.model_request(ctx, self, prompt)
            if run.limits is not None:
                prompt_tokens = counter.messages(prompt) + tools_tokens
                run.limits.check_before_request(run.usage, run.turns, prompt_tokens)
            response: ModelResponse | None = None
            if stream:
                async for delta in model.stream(
                    prompt, tools=schemas or None, response_format=response_format, **cache
                ):
                    if isinstance(delta, ModelTextDelta):
                        yield TextDelta(self.name, delta.text)
                    elif isinstance(delta, ResponseComplete):
                        response = delta.response
            else:
                response = await model.generate(
                    prompt, tools=schemas or None, response_format=response_format, **cache
                )
            assert response is not None
            run.add_usage(response.usage)
            await run.settle()  # the previous step is stored before this response is acted on
            if chain:
                await chain.model_response(ctx, self, response)
            if run.limits is not None:
                run.limits.check_after_response(run.usage, response.usage, model.model)
            assistant = response.message()
            assistant["name"] = self.name

            if response.tool_calls:
                calls = response.tool_calls
                for call in calls:
                    yield ToolCallEvent(self.name, call.id, call.name, call.arguments)
                outcome = await run_step(self, run, assistant, calls, handoffs, tools)
                for call, (result, _) in outcome.ran():
                    yield ToolResultEvent(self.name, call.id, call.name, result.content, result.is_error)
                if outcome.waiting:
                    assert outcome.step is not None
                    run.pending = outcome.step.pending(run.session.id)
                    return
                results = [r for r in outcome.results if r is not None]
                target = next((handoffs[c.name] for c in calls if c.name in handoffs), None)
                final = self._final_from_tool(calls, results)
                items = [(assistant, step_meta(self.name, outcome.step))] + [
                    tool_message(call, result, self.name)
                    for call, (result, _) in zip(calls, results, strict=True)
                ]
                finish = outcome.step.id if outcome.step is not None else None
                history += await run.store_step(items, tool_events(run, self, calls, results, target), finish)
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
                        f"even after one correction: {validation_errors(exc)}"
                    ) from exc
                corrected = True
                how = "call the final_result tool" if not native_output else "reply with only a JSON object"
                correction = {
                    "role": "user",
                    "content": f"Your answer did not match the required schema ({validation_errors(exc)}). "
                    f"Please {how} that matches the schema.",
                }
                stored = await run.append([(assistant, meta), (correction, {**meta, "correction": True})])
                history.extend(stored)
                continue
            run.final = [(assistant, meta)]
            run.output, run.done = output, True
            return
        raise MaxTurnsExceeded(
            f"agent {self.name!r} made {self.max_turns} model calls without a final answer; raise max_turns "
            "or check the tools' results (the partial run is on .partial)",
            partial=partial_result(run, self.name),
        )

    def _taken_names(self) -> dict[str, str]:
        """The tool names this agent defines itself, and whose they are (for clash errors)."""
        own = f"agent {self.name!r} (its own tools)"
        taken = {t.name: own for t in self.tools}
        taken.update(
            {handoff_tool_name(a): f"agent {self.name!r} (handoff to {a.name!r})" for a in self.handoffs}
        )
        if self.output_type is not None:
            taken[FINAL_RESULT_TOOL] = f"agent {self.name!r} (its output tool)"
        return taken

    def _resumable(self, calls: Sequence[Mapping[str, Any]], available: Sequence[Tool]) -> list[ToolCall]:
        """Unanswered stored calls this agent can run itself (all name its tools, none of which
        requires approval: a history written elsewhere decided nothing), else none: those are
        then left out of the prompt (`agnt5.pending_calls`)."""
        tools = {t.name for t in available if getattr(t, "requires_approval", False) is False}
        parsed = [
            ToolCall(
                str(c.get("id")), str(c["function"].get("name")), str(c["function"].get("arguments") or "{}")
            )
            for c in calls
        ]
        return parsed if parsed and all(c.name in tools for c in parsed) else []

    async def _run_tools(
        self,
        run: Run,
        calls: Sequence[ToolCall],
        handoffs: Mapping[str, Agent[Any, Any]],
        available: Sequence[Tool],
        on_result: OnResult | None = None,
    ) -> list[tuple[ToolResult, float]]:
        """Run one step's tool calls concurrently (after the tool-call limit is checked), awaiting
        `on_result` after each (it journals the result)."""
        tools = {t.name: t for t in available}
        count = sum(c.name in tools for c in calls)
        if run.limits is not None:
            run.limits.check_tool_calls(run.tool_calls, count)
        run.tool_calls += count
        chain = HookChain.of(self.hooks, run.hooks)

        async def call(c: ToolCall) -> tuple[ToolResult, float]:
            ran = await self._call_tool(c, tools, handoffs, run.ctx, chain)
            if on_result is not None:
                await on_result(c, *ran)
            return ran

        return await gather_or_cancel(call(c) for c in calls)

    async def _tools_for(self, run: Run, sources: RunSources) -> list[Tool]:
        """This agent's tools with those its tool sources list now (opened for the run)."""
        if not self.tool_sources:
            return list(self.tools)
        await sources.enter(self.tool_sources)
        return [*self.tools, *await list_all(self.tool_sources, run.ctx, self._taken_names())]

    async def _pause(
        self, run: Run, agent: Agent[Any, Any], unstored: list[NewEvent], hooks: RunHooks[Any] | None
    ) -> AgentResult[Any]:
        """End a run that waits for approval: audit what was asked, and the result listing it."""
        events = list(unstored)
        for call in run.pending:
            if call.run_id == run.run_id:  # asked in this run (a resumed one may still wait)
                events.append(
                    run.event(
                        "approval_requested",
                        agent=call.agent,
                        call_id=call.call_id,
                        name=call.tool,
                        arguments=call.arguments,
                    )
                )
        events.append(
            run.event(
                "agent_run_paused",
                agent=agent.name,
                turns=run.turns,
                pending=[p.call_id for p in run.pending],
            )
        )
        await run.audit(events)
        run.started = False
        result: AgentResult[Any] = AgentResult(
            None, agent.name, run.messages, run.usage, run.turns, run.run_id, list(run.pending), run.session
        )
        await HookChain.of(agent.hooks, hooks).run_end(run.ctx, agent, result)
        return result

    @tracing.traced_tool_call
    async def _call_tool(
        self,
        call: ToolCall,
        tools: Mapping[str, Tool],
        handoffs: Mapping[str, Agent[Any, Any]],
        ctx: RunContext[Any],
        chain: HookChain,
    ) -> tuple[ToolResult, float]:
        started = time.perf_counter()
        if call.name in handoffs:
            result = ToolResult(f"Transferred to {handoffs[call.name].name}.")
        elif call.name == FINAL_RESULT_TOOL and self.output_type is not None:
            result = self._check_final(call)
        elif call.name in tools:
            tool_ctx = ctx.for_tool(call.id)
            planned = await chain.tool_call(tool_ctx, self, call) if chain else call
            if isinstance(planned, ToolResult):
                result = planned  # blocked by a hook
            elif planned.name in tools:
                result = await tools[planned.name].invoke(planned.arguments, tool_ctx)
            else:
                result = unknown_tool(planned, tools, handoffs)
            if chain:
                result = await chain.tool_result(tool_ctx, self, call, result)
        else:
            result = unknown_tool(call, tools, handoffs)
        return result, time.perf_counter() - started

    def _check_final(self, call: ToolCall) -> ToolResult:
        assert self.output_type is not None
        try:
            self.output_type.model_validate_json(call.arguments or "{}")
        except pydantic.ValidationError as exc:
            return ToolResult(
                f"Error: invalid final_result: {validation_errors(exc)}; call final_result again",
                is_error=True,
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


def _check_session(session: Any, where: str) -> Session | None:
    from agnt5.session import Session

    if session is not None and not isinstance(session, Session):
        raise InvalidTypeError(f"{where} takes a Session or None, got {type(session).__name__}")
    return session


def _flatten(items: Iterable[Any]) -> Iterable[Any]:
    for item in items:
        if isinstance(item, (list, tuple)):
            yield from _flatten(item)
        else:
            yield item


def _budget(model: LanguageModel, tools_tokens: int) -> int:
    """Prompt tokens available to the messages: the context window less the output reserve
    (`max_tokens` if set, else a quarter of the window up to the model's output limit), the
    tools' schemas and the reply primer."""
    window = model.context_window
    reserve = model.params.get("max_tokens") or min(model.max_output_tokens, window // 4)
    return window - int(reserve) - tools_tokens - REPLY_PRIMER_TOKENS


__all__ = ["Agent", "AgentResult", "OutputT"]
