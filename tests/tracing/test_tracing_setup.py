"""How tracing is switched on: nothing without an SDK, the global providers by default, litellm's
own OpenTelemetry callback instead of agnt5's model spans. Each case runs in a fresh interpreter,
since OpenTelemetry's global providers can be set only once per process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

PRELUDE = """
import asyncio, json, os, sys
import httpx, respx
os.environ["AGNT5_DISABLE_NETWORK"] = "1"
os.environ.setdefault("OPENAI_API_KEY", "sk-test-not-a-real-key")
sys.path.insert(0, "tests")
from _mocks import OPENAI_URL, json_response
"""


def _run(code: str, tmp_path: Path) -> Any:
    """Run `code` (after PRELUDE) in a fresh interpreter; it prints one JSON value, returned here."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["AGNT5_DATABASE_URL"] = f"sqlite:///{tmp_path / 'db.sqlite'}"
    done = subprocess.run(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(code)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_without_an_sdk_nothing_is_recorded_and_opentelemetry_is_not_imported(tmp_path: Path) -> None:
    result = _run(
        """
        import agnt5
        from agnt5 import Session
        from agnt5.models import LanguageModel

        async def main():
            with respx.mock() as router:
                router.post(OPENAI_URL).mock(return_value=json_response("openai/chat_text.json"))
                reply = await LanguageModel("gpt-4o-mini").generate([{"role": "user", "content": "hi"}])
            session = Session("s1")
            await session.send_message({"role": "user", "content": "hi"})
            await session.history()
            await session.prune(strategy="sliding_window", window_size=1)
            events = await session.events()
            return reply.text, [e.data for e in events if e.type == "prune"]

        text, prune_events = asyncio.run(main())
        otel = sorted(m for m in sys.modules if m.startswith("opentelemetry"))
        print(json.dumps({"text": text, "otel": otel, "prune_events": len(prune_events)}))
        """,
        tmp_path,
    )
    assert result == {"text": "The capital of France is Paris.", "otel": [], "prune_events": 0}


def test_the_global_providers_are_used_even_when_set_after_import(tmp_path: Path) -> None:
    result = _run(
        """
        from agnt5.models import LanguageModel   # imported before any provider is set
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        async def call():
            with respx.mock() as router:
                router.post(OPENAI_URL).mock(return_value=json_response("openai/chat_text.json"))
                await LanguageModel("gpt-4o-mini").generate([{"role": "user", "content": "hi"}])

        asyncio.run(call())  # no SDK yet: nothing
        exporter, reader = InMemorySpanExporter(), InMemoryMetricReader()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
        asyncio.run(call())
        names = [s.name for s in exporter.get_finished_spans()]
        metric_names = sorted(
            m.name
            for r in reader.get_metrics_data().resource_metrics
            for s in r.scope_metrics
            for m in s.metrics
        )
        print(json.dumps({"spans": names, "metrics": metric_names}))
        """,
        tmp_path,
    )
    assert result == {
        "spans": ["chat gpt-4o-mini"],
        "metrics": ["gen_ai.client.operation.duration", "gen_ai.client.token.usage"],
    }


def test_litellm_otel_callback_makes_the_model_spans_instead_of_agnt5(tmp_path: Path) -> None:
    """With litellm's `otel` callback on, agnt5 leaves model spans (and their metrics) to it, so
    there is one span per model request; litellm's span nests under the span current in agnt5."""
    result = _run(
        """
        import litellm
        from litellm.integrations.opentelemetry import OpenTelemetry, OpenTelemetryConfig
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from agnt5 import _litellm, tracing
        from agnt5.models import LanguageModel

        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracing.configure(tracer_provider=provider)
        _litellm.get_litellm()
        litellm.callbacks = [
            OpenTelemetry(config=OpenTelemetryConfig(exporter=exporter, skip_set_global=True), tracer_provider=provider)
        ]

        async def main():
            with respx.mock() as router:
                router.post(OPENAI_URL).mock(return_value=json_response("openai/chat_text.json"))
                with provider.get_tracer("app").start_as_current_span("app work"):
                    await LanguageModel("gpt-4o-mini").generate([{"role": "user", "content": "hi"}])
            await asyncio.sleep(0.5)  # litellm logs success in the background

        asyncio.run(main())
        spans = exporter.get_finished_spans()
        app = next(s for s in spans if s.name == "app work")
        print(json.dumps({
            "agnt5_chat": [s.name for s in spans if s.instrumentation_scope.name == "agnt5"],
            "litellm": sorted({s.name for s in spans if s.name != "app work"}),
            "under_app": sorted({s.name for s in spans if s.parent is not None and s.parent.span_id == app.context.span_id}),
        }))
        """,
        tmp_path,
    )
    assert result["agnt5_chat"] == []
    assert result["litellm"] and result["under_app"]
    assert set(result["under_app"]) <= set(result["litellm"])
