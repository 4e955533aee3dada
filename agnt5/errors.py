"""The one exception hierarchy of agnt5: every error agnt5 raises derives from `Agnt5Error`.

Errors that describe bad input also derive from the matching builtin (`ValueError`, `TypeError`,
`KeyError`), so code written against the builtins keeps working.
"""

from __future__ import annotations

from typing import Any


class Agnt5Error(Exception):
    """Base class of every agnt5 error."""


# --- bad input -----------------------------------------------------------------------------------


class InvalidInputError(Agnt5Error, ValueError):
    """An argument has a bad value (empty id, negative limit, NaN, unknown format...); also a
    ValueError. Nothing was stored. `field` names the argument when known."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.field = field
        super().__init__(message)


class InvalidTypeError(InvalidInputError, TypeError):
    """An argument has the wrong type (a non-string key, a set as a JSON value...); also a
    TypeError (and a ValueError, as every input error)."""


class InputTooLargeError(InvalidInputError):
    """A value is over a documented size limit (message or state value bytes, nesting depth).

    `limit` is the limit that applies and `size` what was given; the message says how to raise it.
    """

    def __init__(self, message: str, *, field: str | None = None, limit: int, size: int) -> None:
        self.limit = limit
        self.size = size
        super().__init__(message, field=field)


# --- configuration and storage -------------------------------------------------------------------


class ConfigurationError(InvalidInputError):
    """A setting (database URL, model name, environment variable) is invalid."""


class StoreError(Agnt5Error):
    """The storage backend failed (I/O error, locked database, lost connection)."""


class SchemaVersionError(StoreError):
    """The database was written by a newer agnt5 whose schema this version does not know."""


class ReadOnlyStoreError(StoreError):
    """A write was refused because the database is read-only (file permissions, read-only
    filesystem, or a store opened read-only)."""


class DatabaseNotFoundError(StoreError):
    """A read-only command named a database file that does not exist (nothing was created)."""


class UpdateConflictError(StoreError):
    """`Entity.update` kept losing the race to other writers and gave up; nothing was written.
    Retry later, or reduce the number of writers updating that key at once."""


class StoreConnectionError(StoreError):
    """The database server cannot be reached (connection refused, unknown host, timeout).

    `url` is the database URL with its password masked (it is also in the message).
    """

    def __init__(self, message: str, *, url: str | None = None) -> None:
        self.url = url
        super().__init__(message)


class StoreAuthenticationError(StoreConnectionError):
    """The database server refused the credentials of the URL (wrong user or password)."""


class StoreConnectionLostError(StoreConnectionError):
    """The connection dropped during an operation. Writes are transactions, so nothing was
    half written: the operation applied whole or not at all (when the drop hit the commit
    itself, re-read before retrying). The next call uses a new connection."""


# --- sessions ------------------------------------------------------------------------------------


class SessionError(Agnt5Error):
    """Base class of session errors."""


class SessionNotFoundError(SessionError, KeyError):
    """No session with that id exists in the store."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class MessageNotFoundError(SessionError, KeyError):
    """No active message with that id in the session (`Session.rewind(to=...)`)."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class SessionConflictError(SessionError, InvalidInputError):
    """A Session object disagrees with the stored session of the same id (app or user)."""


class ImmutableSessionError(SessionError):
    """The session's retention policy makes it immutable: it cannot be pruned, cleared or deleted."""


class MessageValidationError(SessionError, InvalidInputError):
    """A message is malformed; `field` names the offending field (dotted path)."""

    def __init__(self, field: str, problem: str) -> None:
        self.problem = problem
        super().__init__(f"invalid message: {field}: {problem}", field=field)


class StateScopeError(SessionError, InvalidInputError):
    """An unknown state scope, or `user` scope on a session that has no user_id."""


class RetentionPolicyError(SessionError, InvalidInputError):
    """A retention policy has an unknown key or an invalid value."""


# --- models and agents ---------------------------------------------------------------------------


class ModelError(Agnt5Error):
    """A language-model call failed. `model` and `provider` say which; `status_code` when known."""

    def __init__(
        self,
        message: str,
        *,
        model: str | None = None,
        provider: str | None = None,
        status_code: int | None = None,
    ) -> None:
        self.model = model
        self.provider = provider
        self.status_code = status_code
        super().__init__(message)


class AuthenticationError(ModelError):
    """The provider refused the API key (HTTP 401/403). Set the provider's API key variable."""


class RateLimitError(ModelError):
    """The provider rate-limited the request (HTTP 429) and retries were exhausted."""


class ContextWindowExceededError(ModelError):
    """The prompt does not fit the model's context window."""


class ModelTimeoutError(ModelError, TimeoutError):
    """The model call timed out."""


class ProviderError(ModelError):
    """The provider failed (5xx, malformed or truncated response, connection error)."""


class ResponseParseError(ModelError):
    """The provider answered (HTTP 200) but litellm could not parse the response locally.

    Never retried (a retry is billed and fails the same way); `litellm_version` says which
    litellm failed — upgrading it, or reporting the response, is the way out.
    """

    def __init__(
        self,
        message: str,
        *,
        model: str | None = None,
        provider: str | None = None,
        litellm_version: str | None = None,
    ) -> None:
        self.litellm_version = litellm_version
        super().__init__(message, model=model, provider=provider, status_code=200)


class NetworkDisabledError(ModelError):
    """A real model request was attempted while network access is disabled (tests, offline mode)."""


class CassetteError(Agnt5Error):
    """A recorded-responses cassette is missing, malformed, or used in the wrong mode."""


class CassetteMismatchError(CassetteError, ModelError):
    """A model request has no recorded response; the message shows it and the nearest recording."""


class ScriptExhaustedError(Agnt5Error, AssertionError):
    """A ScriptedModel was called more times than steps were queued: script another step."""


class ScriptIncompleteError(Agnt5Error, AssertionError):
    """`ScriptedModel.assert_complete()`: some queued steps were never used (the code under test
    made fewer model calls than scripted)."""


class AgentError(Agnt5Error):
    """Base class of agent-run errors."""


class MaxTurnsExceeded(AgentError):
    """The agent used `max_turns` model calls without a final answer; `partial` holds the run so far."""

    def __init__(self, message: str, partial: Any = None) -> None:
        self.partial = partial
        super().__init__(message)


class UsageLimitExceeded(AgentError):
    """A run reached one of its `UsageLimits`; `limit` names it (e.g. "input_tokens"), `value` is
    the limit, `actual` what the run used or would have used; `partial` holds the run so far."""

    def __init__(self, message: str, *, limit: str, value: float, actual: float, partial: Any = None) -> None:
        self.limit = limit
        self.value = value
        self.actual = actual
        self.partial = partial
        super().__init__(message)


class GuardrailTripped(AgentError):
    """A guardrail stopped the run: `guardrail` names it, `kind` is "input" or "output",
    `reason` says why and `info` carries what the guardrail returned."""

    def __init__(self, message: str, *, guardrail: str, kind: str, reason: str, info: Any = None) -> None:
        self.guardrail = guardrail
        self.kind = kind
        self.reason = reason
        self.info = info
        super().__init__(message)


class HookError(AgentError):
    """A lifecycle hook raised; `hook` names it and `__cause__` is the original exception. What
    the run had stored stays consistent (no tool call without its result)."""

    def __init__(self, message: str, *, hook: str) -> None:
        self.hook = hook
        super().__init__(message)


class InstructionsError(AgentError, InvalidInputError):
    """Instructions could not be rendered: a required `{key}` placeholder has no state value
    (`key`, `scope` say which), or an instructions callable failed or returned a non-string."""

    def __init__(self, message: str, *, key: str | None = None, scope: str | None = None) -> None:
        self.key = key
        self.scope = scope
        super().__init__(message, field=key)


class OutputValidationError(AgentError, ValueError):
    """The model's structured output did not validate against `output_type`, even after one retry."""


class ToolDefinitionError(AgentError, InvalidTypeError):
    """A function cannot be used as a tool (unsupported signature or annotation)."""


# --- approvals and resumed runs (agnt5.approvals, agnt5.journal) ---------------------------------


class ApprovalError(AgentError):
    """Base class of errors about tool calls waiting for approval and resumed runs."""


class ApprovalNotPendingError(ApprovalError, InvalidInputError):
    """`approvals=` names calls that are not waiting for a decision (unknown, or already decided)."""

    def __init__(self, message: str, *, call_ids: list[str]) -> None:
        self.call_ids = call_ids
        super().__init__(message, field="approvals")


class ApprovalConflictError(ApprovalError):
    """Another resume of the same session decided or ran these calls first; nothing was executed here."""

    def __init__(self, message: str, *, call_ids: list[str]) -> None:
        self.call_ids = call_ids
        super().__init__(message)


class StepInProgressError(ApprovalConflictError):
    """Another run (in this process, or one in another process whose lease on the calls has not
    expired) is executing tool calls of this session: nothing was done here; retry after it
    (`lease_until`, seconds since the epoch; 0 when it runs in this process)."""

    def __init__(self, message: str, *, call_ids: list[str], lease_until: float) -> None:
        self.lease_until = lease_until
        super().__init__(message, call_ids=call_ids)


class PendingApprovalError(ApprovalError):
    """The session has tool calls waiting for a decision: resume with `approvals=` before new input."""

    def __init__(self, message: str, *, pending: list[Any]) -> None:
        self.pending = pending
        super().__init__(message)


# --- MCP servers (agnt5.mcp) ---------------------------------------------------------------------


class MCPError(Agnt5Error):
    """An MCP server failed; `server` names it (never with headers, tokens or environment values)."""

    def __init__(self, message: str, *, server: str | None = None) -> None:
        self.server = server
        super().__init__(message)


class MCPStartError(MCPError):
    """The server could not be started or connected to (bad command, exited at once, refused the
    connection, failed the handshake). `stderr` holds the tail of a stdio server's error output."""

    def __init__(self, message: str, *, server: str | None = None, stderr: str = "") -> None:
        self.stderr = stderr
        super().__init__(message, server=server)


class MCPConnectionLostError(MCPError):
    """The connection ended while in use (the server process crashed or closed it); the next
    run reconnects."""

    def __init__(self, message: str, *, server: str | None = None, stderr: str = "") -> None:
        self.stderr = stderr
        super().__init__(message, server=server)


class MCPTimeoutError(MCPError, TimeoutError):
    """The server did not answer within the timeout (`timeout`, seconds)."""

    def __init__(self, message: str, *, server: str | None = None, timeout: float | None = None) -> None:
        self.timeout = timeout
        super().__init__(message, server=server)


class MCPHTTPError(MCPError):
    """An HTTP MCP server answered with an error status (`status_code`, e.g. 500 or 503)."""

    def __init__(self, message: str, *, server: str | None = None, status_code: int | None = None) -> None:
        self.status_code = status_code
        super().__init__(message, server=server)


class MCPAuthenticationError(MCPHTTPError):
    """An HTTP MCP server refused the credentials (401/403): check the headers given."""


class MCPProtocolError(MCPError):
    """The server sent something that is not valid MCP (unparseable output, a malformed result)."""


class ToolNameClashError(MCPError, InvalidInputError):
    """Two tool sources (an MCP server, the agent's own tools) offer the same tool name; `name`
    is the name and `sources` the two. Give one source a `tool_prefix=` or filter its tools."""

    def __init__(self, message: str, *, name: str, sources: tuple[str, str]) -> None:
        self.name = name
        self.sources = sources
        MCPError.__init__(self, message, server=sources[1])
        self.field = "tools"


# --- pruning -------------------------------------------------------------------------------------


class PruneError(SessionError):
    """A prune could not be applied; the history is unchanged."""


class StrategyError(PruneError, InvalidInputError):
    """Unknown strategy name or invalid strategy parameters."""


class TokenBudgetError(PruneError, InvalidInputError):
    """The protected messages alone (system prompt, newest turn) exceed the token budget."""


class PruneModelError(PruneError):
    """The model call a prune needs (scoring, summarising) failed or gave an unusable answer
    (HTTP error, timeout, malformed JSON); the history is unchanged. `__cause__` has the details."""


class PruneConflictError(PruneError):
    """The history changed under a prune (another prune removed the same messages); nothing was
    applied. Run the prune again."""


# --- memory --------------------------------------------------------------------------------------


class MemoryError_(Agnt5Error):
    """Base class of long-term memory errors (named so it does not shadow the builtin MemoryError)."""


class EmbeddingError(MemoryError_):
    """The embedding call failed or returned vectors of the wrong shape; stored memories are intact.

    `cause` is the mapped model error (RateLimitError, AuthenticationError...) when the call
    itself failed; None when the provider answered with unusable vectors.
    """

    def __init__(self, message: str, *, model: str | None = None, cause: ModelError | None = None) -> None:
        self.model = model
        self.cause = cause
        self.status_code = None if cause is None else cause.status_code
        super().__init__(message)


class MemoryValidationError(MemoryError_, InvalidInputError):
    """Bad input to Memory (empty key or content, bad metadata, limit or query); nothing was stored.

    `field` names the offending argument.
    """

    def __init__(self, field: str, problem: str) -> None:
        self.problem = problem
        super().__init__(f"invalid memory {field}: {problem}", field=field)


class MemoryTypeError(MemoryValidationError, InvalidTypeError):
    """An argument to Memory has the wrong type (e.g. non-string content); also a TypeError."""
