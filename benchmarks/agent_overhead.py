"""Agent overhead benchmark: Agent.run against hand-written litellm.acompletion calls, same mock.

Run: python benchmarks/agent_overhead.py [--quick]
Both sides make the same two-tool-call run (model → 2 tool calls → model → answer) against one
respx-mocked OpenAI transport in one process; the ratio is agnt5 time / hand-written time (target
<= 1.15x). The MCP rows run that agent with `get_weather` served by an MCP server over stdio
(tests/mcp/stdio_server.py, kept open) instead of the local function: the overhead per tool call
is half the paired difference of the two runs (target <= 5 ms). The "application" row is one
module-level agent run the way a web server runs it: a session and deps per run, a RunHooks and an
input guardrail. Also `import agnt5` against `import litellm`, each in a fresh interpreter.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("OPENAI_API_KEY", "sk-benchmark-not-a-real-key")
os.environ["AGNT5_DISABLE_NETWORK"] = "1"

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import respx  # noqa: E402
from _wire import openai_call, openai_chat  # noqa: E402

from agnt5 import Agent, GuardrailResult, RunContext, RunHooks, Session  # noqa: E402
from agnt5._litellm import get_litellm  # noqa: E402
from agnt5.models import ToolCall  # noqa: E402
from agnt5.store.sqlite import SqliteStore  # noqa: E402
from agnt5.tools import ToolResult  # noqa: E402

URL = "https://api.openai.com/v1/chat/completions"


def get_weather(city: str) -> str:
    """Current weather of a city.

    Args:
        city: The city name.
    """
    return f"sunny in {city}"


TOOL_SCHEMA = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather of a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "The city name."}},
            "required": ["city"],
        },
    },
}


def responder(request: Any) -> Any:
    body = json.loads(request.content)
    if body["messages"][-1]["role"] == "tool":
        return openai_chat("Sunny in both.")
    return openai_chat(
        tool_calls=[
            openai_call("get_weather", {"city": "Paris"}),
            openai_call("get_weather", {"city": "Tokyo"}),
        ]
    )


class Deps:
    def __init__(self, user_id: str) -> None:
        self.user_id = user_id


class CountingHooks(RunHooks[Deps]):
    """Hooks an application might keep: count requests and tool calls per user."""

    def __init__(self) -> None:
        self.requests = 0
        self.tool_calls = 0

    async def before_model_request(
        self, ctx: RunContext[Deps], agent: Agent[Deps, Any], messages: list[dict[str, Any]]
    ) -> list[dict[str, Any]] | None:
        self.requests += 1
        return None

    async def before_tool_call(
        self, ctx: RunContext[Deps], agent: Agent[Deps, Any], call: ToolCall
    ) -> ToolCall | ToolResult | str | None:
        self.tool_calls += 1
        return None


def no_secrets(ctx: RunContext[Deps], text: object) -> GuardrailResult:
    return GuardrailResult("password" in str(text).lower(), "contains a password")


async def hand_written() -> str:
    litellm = get_litellm()
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "You report the weather."},
        {"role": "user", "content": "Weather in Paris and Tokyo?"},
    ]
    while True:
        response = await litellm.acompletion(model="gpt-4o-mini", messages=messages, tools=[TOOL_SCHEMA])
        message = response.choices[0].message
        if not message.tool_calls:
            return str(message.content)
        messages.append(message.model_dump(exclude_none=True))
        for call in message.tool_calls:
            args = json.loads(call.function.arguments)
            messages.append({"role": "tool", "tool_call_id": call.id, "content": get_weather(**args)})


async def timed(fn: Any, runs: int) -> float:
    start = time.perf_counter()
    for _ in range(runs):
        await fn()
    return (time.perf_counter() - start) / runs


async def mcp_rows(quick: bool) -> list[tuple[str, str, str, str, str]]:
    """Per-call overhead of an MCP tool over stdio against the same local tool, paired rounds."""
    try:
        from agnt5.mcp import MCPServerStdio
    except ImportError:  # pragma: no cover - agnt5.mcp itself never needs the SDK to import
        return []
    import importlib.util

    if importlib.util.find_spec("mcp") is None:
        return [("MCP tool call over stdio", "skipped", "pip install 'agnt5[mcp]'", "", "<= 5 ms")]
    runs, rounds, calls = (10, 5, 50) if quick else (20, 15, 100)
    server = MCPServerStdio(sys.executable, [str(ROOT / "tests" / "mcp" / "stdio_server.py")])
    local = Agent("weather", instructions="You report the weather.", tools=[get_weather])
    remote = Agent("weather", instructions="You report the weather.", tools=[server])
    local_tool = local.tools[0]
    async with server:
        remote_tool = next(t for t in await server.list_tools() if t.name == "get_weather")

        async def run_local() -> str:
            return str((await local.run("Weather in Paris and Tokyo?")).output)

        async def run_remote() -> str:
            return str((await remote.run("Weather in Paris and Tokyo?")).output)

        async def call_local() -> None:
            assert (await local_tool.invoke('{"city": "Paris"}')).content == "sunny in Paris"

        async def call_remote() -> None:
            assert (await remote_tool.invoke('{"city": "Paris"}')).content == "sunny in Paris"

        with respx.mock:
            respx.post(URL).mock(side_effect=responder)
            for fn in (run_local, run_remote):
                assert await fn() == "Sunny in both."
            await timed(call_local, calls)
            await timed(call_remote, calls)
            run_diff, call_diff, run_remote_t, call_remote_t = [], [], [], []
            for _ in range(rounds):  # paired: each round's two sides see the same machine state
                a, b = await timed(run_local, runs), await timed(run_remote, runs)
                run_diff.append((b - a) / 2)  # two tool calls per run
                run_remote_t.append(b)
                c, d = await timed(call_local, calls), await timed(call_remote, calls)
                call_diff.append(d - c)
                call_remote_t.append(d)
    per_run = statistics.median(run_diff) * 1000
    per_call = statistics.median(call_diff) * 1000
    return [
        (
            "two-tool-call run, Agent.run with get_weather from an MCP server (stdio)",
            f"{statistics.median(run_remote_t) * 1000:.2f} ms",
            "same run with the local tool",
            f"+{per_run:.2f} ms per tool call",
            "<= 5 ms per call",
        ),
        (
            "one tool call: MCPTool.invoke over stdio vs the local Tool.invoke",
            f"{statistics.median(call_remote_t) * 1000:.2f} ms",
            "",
            f"+{per_call:.2f} ms per call",
            "<= 5 ms per call",
        ),
    ]


async def tracing_rows(quick: bool) -> list[tuple[str, str, str, str, str]]:
    """The two-tool-call run on a SQLite session, traced three ways in paired rounds: agnt5's
    tracing off; on with no OpenTelemetry SDK configured (the API alone: agnt5 records nothing);
    on with the SDK, a synchronous in-memory span exporter and an in-memory metric reader."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from agnt5 import tracing

    runs = 10 if quick else 20
    rounds = 5 if quick else 15
    store = SqliteStore(":memory:")
    counter = {"n": 0}
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    meters = MeterProvider(metric_readers=[InMemoryMetricReader()])

    async def one_run() -> str:
        counter["n"] += 1
        session = Session(f"traced-{counter['n']}", store=store)
        agent = Agent("weather", instructions="You report the weather.", tools=[get_weather], session=session)
        return str((await agent.run("Weather in Paris and Tokyo?")).output)

    modes = (
        lambda: tracing.configure(enabled=False),
        lambda: tracing.configure(),  # the global providers: none set, so OpenTelemetry's no-op
        lambda: tracing.configure(tracer_provider=provider, meter_provider=meters),
    )
    with respx.mock:
        respx.post(URL).mock(side_effect=responder)
        for mode in modes:  # warm up
            mode()
            exporter.clear()
            assert await one_run() == "Sunny in both."
        spans = len(exporter.get_finished_spans())  # of one run, by the last (SDK) mode
        times: list[list[float]] = [[] for _ in modes]
        for _ in range(rounds):  # paired: the three sides of a round see the same machine state
            for mode, measured in zip(modes, times, strict=True):
                mode()
                measured.append(await timed(one_run, runs))
                exporter.clear()
    tracing.reset()
    provider.shutdown()
    meters.shutdown()
    await store.close()
    off, no_sdk, sdk = times
    no_sdk_ratio = statistics.median(x / y for x, y in zip(no_sdk, off, strict=True))
    sdk_ratio = statistics.median(x / y for x, y in zip(sdk, off, strict=True))
    return [
        (
            "two-tool-call run + SQLite session, tracing off",
            f"{statistics.median(off) * 1000:.2f} ms",
            "",
            "1.00x",
            "",
        ),
        (
            "same, tracing on, no OpenTelemetry SDK configured",
            f"{statistics.median(no_sdk) * 1000:.2f} ms",
            "",
            f"{no_sdk_ratio:.3f}x",
            "<= 1.03x",
        ),
        (
            f"same, tracing on, SDK + in-memory exporter and metric reader ({spans} spans a run)",
            f"{statistics.median(sdk) * 1000:.2f} ms",
            "",
            f"{sdk_ratio:.3f}x",
            "<= 1.10x",
        ),
    ]


def import_time(module: str) -> float:
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    samples = [float(subprocess.check_output([sys.executable, "-c", code], env=env)) for _ in range(3)]
    return statistics.median(samples)


async def run(quick: bool) -> list[tuple[str, str, str, str, str]]:
    runs = 10 if quick else 20
    rounds = 5 if quick else 15
    store = SqliteStore(":memory:")
    counter = {"n": 0}

    async def agnt5_plain() -> str:
        agent = Agent("weather", instructions="You report the weather.", tools=[get_weather])
        return str((await agent.run("Weather in Paris and Tokyo?")).output)

    async def agnt5_session() -> str:
        counter["n"] += 1
        session = Session(f"bench-{counter['n']}", store=store)
        agent = Agent("weather", instructions="You report the weather.", tools=[get_weather], session=session)
        return str((await agent.run("Weather in Paris and Tokyo?")).output)

    hooks = CountingHooks()
    app_agent = Agent(
        "weather",
        instructions="You report the weather.",
        tools=[get_weather],
        deps_type=Deps,
        hooks=hooks,
        input_guardrails=[no_secrets],
    )

    async def agnt5_app() -> str:
        counter["n"] += 1
        session = Session(f"app-{counter['n']}", user_id=f"user-{counter['n'] % 10}", store=store)
        result = await app_agent.run("Weather in Paris and Tokyo?", session=session, deps=Deps("u"))
        return str(result.output)

    async def agnt5_app_local() -> str:
        result = await app_agent.run("Weather in Paris and Tokyo?", deps=Deps("u"))
        return str(result.output)

    sides = (hand_written, agnt5_plain, agnt5_session, agnt5_app_local, agnt5_app)
    with respx.mock:
        respx.post(URL).mock(side_effect=responder)
        for fn in sides:  # warm up litellm's clients and caches
            assert await fn() == "Sunny in both."
        times: list[list[float]] = [[] for _ in sides]
        for _ in range(rounds):  # interleaved, so all see the same machine state
            for fn, measured in zip(sides, times, strict=True):
                measured.append(await timed(fn, runs))
    await store.close()
    assert hooks.requests == hooks.tool_calls > 0  # the hooks ran (two requests, two calls a run)
    base, plain, durable, app_local, app = times
    b, p, d, al, a = (statistics.median(x) for x in times)
    # The ratio of each round's neighbouring measurements, then the median: drift cancels out.
    plain_ratio = statistics.median(x / y for x, y in zip(plain, base, strict=True))
    durable_ratio = statistics.median(x / y for x, y in zip(durable, base, strict=True))
    app_local_ratio = statistics.median(x / y for x, y in zip(app_local, base, strict=True))
    app_ratio = statistics.median(x / y for x, y in zip(app, base, strict=True))
    rows = [
        ("two-tool-call run, hand-written litellm", f"{b * 1000:.2f} ms", "", "1.00x", ""),
        (
            "two-tool-call run, Agent.run (no session)",
            f"{p * 1000:.2f} ms",
            "",
            f"{plain_ratio:.2f}x",
            "<= 1.15x",
        ),
        (
            "two-tool-call run, Agent.run + SQLite session",
            f"{d * 1000:.2f} ms",
            "",
            f"{durable_ratio:.2f}x",
            "",
        ),
        (
            "two-tool-call run, application: deps, hooks, guardrail (run-local session)",
            f"{al * 1000:.2f} ms",
            "",
            f"{app_local_ratio:.2f}x",
            "<= 1.15x",
        ),
        (
            "two-tool-call run, application: per-run SQLite session + deps, hooks, guardrail",
            f"{a * 1000:.2f} ms",
            "",
            f"{app_ratio:.2f}x",
            "<= 1.15x",
        ),
    ]
    rows += await mcp_rows(quick)
    rows += await tracing_rows(quick)
    agnt5_import, litellm_import = import_time("agnt5"), import_time("litellm")
    rows.append(
        (
            "import agnt5",
            f"{agnt5_import:.3f} s",
            f"import litellm: {litellm_import:.3f} s",
            f"{agnt5_import / litellm_import:.2f}x",
            "agnt5 < 0.3 s",
        )
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer runs (a smoke run)")
    args = parser.parse_args()
    rows = asyncio.run(run(args.quick))
    header = ("measure", "time", "beside", "ratio", "target")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
