"""agnt5: durable, well-managed conversations for AI agents.

Heavy parts (litellm) load lazily: `import agnt5` stays fast and offline.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agnt5 import errors
from agnt5.errors import Agnt5Error

__version__ = "0.1.0"

_LAZY = {
    "Session": "agnt5.session",
    "Entity": "agnt5.entity",
    "Message": "agnt5.messages",
    "to_provider_messages": "agnt5.messages",
    "configure": "agnt5.config",
    "purge_expired": "agnt5.session",
    "Event": "agnt5.store.base",
    "count_tokens": "agnt5.tokens",
    "LanguageModel": "agnt5.models",
    "tool": "agnt5.tools",
    "Tool": "agnt5.tools",
    "RunContext": "agnt5.tools",
    "Agent": "agnt5.agent",
    "AgentResult": "agnt5.agent",
    "Memory": "agnt5.memory",
    "MemoryResult": "agnt5.memory",
    "memory_tools": "agnt5.memory",
    "InMemoryMemoryService": "agnt5.memory_keyword",
    "VectorMemoryService": "agnt5.memory_vector",
}

if TYPE_CHECKING:
    from agnt5.agent import Agent, AgentResult
    from agnt5.config import configure
    from agnt5.entity import Entity
    from agnt5.memory import Memory, MemoryResult, memory_tools
    from agnt5.memory_keyword import InMemoryMemoryService
    from agnt5.memory_vector import VectorMemoryService
    from agnt5.messages import Message, to_provider_messages
    from agnt5.models import LanguageModel
    from agnt5.session import Session, purge_expired
    from agnt5.store.base import Event
    from agnt5.tokens import count_tokens
    from agnt5.tools import RunContext, Tool, tool


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'agnt5' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


__all__ = ["Agnt5Error", "errors", *_LAZY]
