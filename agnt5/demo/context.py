"""What every part of the demo shares: the store, the run's ids, the models and the printer."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

from agnt5.cli.render import ProgressBar
from agnt5.models import LanguageModel
from agnt5.providers import CacheHint

if TYPE_CHECKING:
    from agnt5.memory_vector import VectorMemoryService
    from agnt5.models import ModelResponse
    from agnt5.store.base import Store
    from agnt5.tools import Tool

MODEL = "gpt-4o-mini"
"""The demo's chat model, pinned (not AGNT5_MODEL) so replayed requests match the cassette."""
EMBEDDING_MODEL = "text-embedding-3-small"
EMBEDDING_DIMENSIONS = 256
APP = "acme_support"
OFFLINE_PARAMS: dict[str, Any] = {
    "api_key": "sk-agnt5-offline-demo",  # never sent anywhere: the cassette answers every request
    "api_base": "https://api.openai.com/v1",  # pinned so OPENAI_BASE_URL cannot change the URLs
}


@dataclass
class Demo:
    """One run of the demo. Session and user ids carry `run_id`, so runs never collide on one
    database; nothing run-specific ever reaches a request body, so the cassette still matches."""

    store: Store
    run_id: str
    out: TextIO
    err: TextIO
    offline: bool
    model_calls: int = 0
    bar: ProgressBar | None = None
    """The progress bar a long step shows; every model call advances it."""
    facts: dict[str, Any] = field(default_factory=dict)
    """Figures gathered on the way (tokens before/after...), printed at the end and used by tests."""

    def say(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def heading(self, number: int, title: str) -> None:
        self.say()
        self.say(f"== {number}. {title}")

    def session_id(self, name: str) -> str:
        return f"demo-{self.run_id}-{name}"

    @property
    def user_id(self) -> str:
        return f"customer-{self.run_id}"

    def model(self) -> LanguageModel:
        """The chat model: temperature 0 (steadier live runs); a dummy key offline."""
        params = OFFLINE_PARAMS if self.offline else {}
        return DemoModel(self, temperature=0, **params)

    def memory_service(self) -> VectorMemoryService:
        from agnt5.memory_vector import VectorMemoryService

        params = OFFLINE_PARAMS if self.offline else {}
        return VectorMemoryService(EMBEDDING_MODEL, self.store, dimensions=EMBEDDING_DIMENSIONS, **params)

    def progress(self, total: int, label: str) -> ProgressBar:
        """A progress bar on stderr, advanced by model calls until `bar.finish()`."""
        self.bar = ProgressBar(total, label, stream=self.err)
        return self.bar

    def finish(self) -> None:
        if self.bar is not None:
            self.bar.finish()
            self.bar = None


class DemoModel(LanguageModel):
    """The demo's chat model: counts its calls and advances the demo's progress bar."""

    def __init__(self, demo: Demo, **params: Any) -> None:
        super().__init__(MODEL, **params)
        self._demo = demo

    async def generate(
        self,
        messages: Iterable[Mapping[str, Any]],
        tools: Sequence[Tool | Mapping[str, Any]] | None = None,
        tool_choice: str | Mapping[str, Any] | None = None,
        response_format: Any = None,
        *,
        cache: CacheHint | None = None,
    ) -> ModelResponse:
        response = await super().generate(messages, tools, tool_choice, response_format, cache=cache)
        self._demo.model_calls += 1
        if self._demo.bar is not None:
            self._demo.bar.advance()
        return response
