"""Shared helpers for model tests: provider URLs, fixture responses and instant retries."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

FIXTURES = Path(__file__).parent / "fixtures"

OPENAI_URL = "https://api.openai.com/v1/chat/completions"
ANTHROPIC_URL = "https://api.anthropic.com/v1/messages"
GEMINI_HOST = "generativelanguage.googleapis.com"

OPENAI_MODEL = "gpt-4o-mini"
ANTHROPIC_MODEL = "anthropic/claude-sonnet-4-5"
GEMINI_MODEL = "gemini/gemini-2.0-flash"


def fixture_json(name: str) -> Any:
    """A JSON fixture, e.g. fixture_json("openai/chat_text.json")."""
    return json.loads((FIXTURES / name).read_text())


def json_response(name: str, status: int = 200, headers: dict[str, str] | None = None) -> httpx.Response:
    """An httpx response carrying a JSON fixture verbatim."""
    return httpx.Response(status, json=fixture_json(name), headers=headers)


def sse_response(name: str) -> httpx.Response:
    """An httpx text/event-stream response carrying an SSE fixture verbatim."""
    return httpx.Response(
        200, content=(FIXTURES / name).read_bytes(), headers={"content-type": "text/event-stream"}
    )


def request_json(route: Any, index: int = -1) -> Any:
    """The JSON body of a call recorded by a respx route."""
    return json.loads(route.calls[index].request.content)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Make agnt5's retry backoff instant; the list records each requested delay."""
    from agnt5 import _litellm

    recorded: list[float] = []

    async def fake_sleep(delay: float) -> None:
        recorded.append(delay)

    monkeypatch.setattr(_litellm, "_sleep", fake_sleep)
    return recorded
