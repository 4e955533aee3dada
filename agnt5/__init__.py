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
    "RunContext": "agnt5.run_context",
    "Usage": "agnt5.usage",
    "UsageLimits": "agnt5.usage",
    "Agent": "agnt5.agent",
    "AgentResult": "agnt5.agent",
    "ContextBudget": "agnt5.context",
    "RunHooks": "agnt5.hooks",
    "Guardrail": "agnt5.guardrails",
    "GuardrailResult": "agnt5.guardrails",
    "UsageLimitExceeded": "agnt5.errors",
    "GuardrailTripped": "agnt5.errors",
    "HookError": "agnt5.errors",
    "InstructionsError": "agnt5.errors",
    "ApprovalError": "agnt5.errors",
    "ApprovalConflictError": "agnt5.errors",
    "ApprovalNotPendingError": "agnt5.errors",
    "PendingApprovalError": "agnt5.errors",
    "StepInProgressError": "agnt5.errors",
    "Denial": "agnt5.approvals",
    "PendingCall": "agnt5.approvals",
    "pending_approvals": "agnt5.journal",
    "Memory": "agnt5.memory",
    "MemoryResult": "agnt5.memory",
    "memory_tools": "agnt5.memory",
    "InMemoryMemoryService": "agnt5.memory_keyword",
    "VectorMemoryService": "agnt5.memory_vector",
}

if TYPE_CHECKING:
    # `X as X`: explicit re-exports, so `from agnt5 import Session` passes `mypy --strict` in user code.
    from agnt5.agent import Agent as Agent
    from agnt5.agent import AgentResult as AgentResult
    from agnt5.approvals import Denial as Denial
    from agnt5.approvals import PendingCall as PendingCall
    from agnt5.config import configure as configure
    from agnt5.context import ContextBudget as ContextBudget
    from agnt5.entity import Entity as Entity
    from agnt5.errors import ApprovalConflictError as ApprovalConflictError
    from agnt5.errors import ApprovalError as ApprovalError
    from agnt5.errors import ApprovalNotPendingError as ApprovalNotPendingError
    from agnt5.errors import GuardrailTripped as GuardrailTripped
    from agnt5.errors import HookError as HookError
    from agnt5.errors import InstructionsError as InstructionsError
    from agnt5.errors import PendingApprovalError as PendingApprovalError
    from agnt5.errors import StepInProgressError as StepInProgressError
    from agnt5.errors import UsageLimitExceeded as UsageLimitExceeded
    from agnt5.guardrails import Guardrail as Guardrail
    from agnt5.guardrails import GuardrailResult as GuardrailResult
    from agnt5.hooks import RunHooks as RunHooks
    from agnt5.journal import pending_approvals as pending_approvals
    from agnt5.memory import Memory as Memory
    from agnt5.memory import MemoryResult as MemoryResult
    from agnt5.memory import memory_tools as memory_tools
    from agnt5.memory_keyword import InMemoryMemoryService as InMemoryMemoryService
    from agnt5.memory_vector import VectorMemoryService as VectorMemoryService
    from agnt5.messages import Message as Message
    from agnt5.messages import to_provider_messages as to_provider_messages
    from agnt5.models import LanguageModel as LanguageModel
    from agnt5.run_context import RunContext as RunContext
    from agnt5.session import Session as Session
    from agnt5.session import purge_expired as purge_expired
    from agnt5.store.base import Event as Event
    from agnt5.tokens import count_tokens as count_tokens
    from agnt5.tools import Tool as Tool
    from agnt5.tools import tool as tool
    from agnt5.usage import Usage as Usage
    from agnt5.usage import UsageLimits as UsageLimits


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'agnt5' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


__all__ = ["Agnt5Error", "errors", *_LAZY]
