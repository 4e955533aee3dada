"""MCPServerStdio: an MCP server run as a subprocess, spoken to over its stdin and stdout.

The process gets exactly the environment given (`env=`) on top of a minimal default
(`DEFAULT_ENV_VARS`: PATH, HOME, locale...), never the whole parent environment with its API keys,
unless `inherit_env=True`. Its stderr is kept in a temporary file whose tail is quoted in errors.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from agnt5.errors import InvalidInputError, InvalidTypeError, MCPConnectionLostError, MCPError, MCPStartError
from agnt5.mcp._connection import excerpt
from agnt5.mcp._server import MCPServer, ServerApprovalRule, string_map

if TYPE_CHECKING:
    from agnt5.mcp._connection import Connection

DEFAULT_ENV_VARS: tuple[str, ...] = (
    (
        "APPDATA", "HOMEDRIVE", "HOMEPATH", "LOCALAPPDATA", "PATH", "PATHEXT", "PROCESSOR_ARCHITECTURE",
        "SYSTEMDRIVE", "SYSTEMROOT", "TEMP", "TMP", "USERNAME", "USERPROFILE",
    )
    if sys.platform == "win32"
    else ("HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "TZ")
)  # fmt: skip
"""Variables copied from this process into a stdio server's environment (when set)."""

_TAIL_BYTES = 2000


def _strings(value: object, field: str) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise InvalidTypeError(f"{field} must be a list of strings, got {type(value).__name__}", field=field)
    items = tuple(value)
    for item in items:
        if not isinstance(item, str):
            raise InvalidTypeError(f"{field} must hold strings, got {type(item).__name__}", field=field)
    return items


class MCPServerStdio(MCPServer):
    """An MCP server started as `command args...`: `Agent(tools=[MCPServerStdio("uvx", ["mcp-server-fetch"])])`.

    `env` is added to the minimal default environment (`DEFAULT_ENV_VARS`); `inherit_env=True`
    passes this process's whole environment instead (API keys included). `cwd` is the working
    directory. `stderr` (a file with a fileno) receives the server's logs; by default they are
    kept aside and quoted in errors. See `MCPServer` for `tool_prefix`, `allowed_tools`,
    `timeout`, `connect_timeout`, `requires_approval` and `idempotent_tools`; `name` names the server in errors (default: the command).
    """

    def __init__(
        self,
        command: str,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
        *,
        name: str | None = None,
        tool_prefix: str | None = None,
        allowed_tools: Iterable[str] | None = None,
        timeout: float | None = 60.0,
        connect_timeout: float | None = 30.0,
        requires_approval: ServerApprovalRule = False,
        idempotent_tools: Iterable[str] | None = None,
        inherit_env: bool = False,
        stderr: TextIO | None = None,
    ) -> None:
        if not isinstance(command, str) or not command.strip():
            raise InvalidInputError(f"command must be a non-empty string, got {command!r}", field="command")
        env_given = string_map(env, "env")
        super().__init__(
            name=name,
            tool_prefix=tool_prefix,
            allowed_tools=allowed_tools,
            timeout=timeout,
            connect_timeout=connect_timeout,
            requires_approval=requires_approval,
            idempotent_tools=idempotent_tools,
        )
        self.command = command
        self.args = _strings(args, "args")
        self._env = env_given
        self.cwd = cwd
        self.inherit_env = bool(inherit_env)
        self._stderr = stderr

    def __repr__(self) -> str:
        keys = f", env={sorted(self._env)}" if self._env else ""  # names only, never values
        return f"MCPServerStdio({self.name!r}{keys})"

    def default_name(self) -> str:
        """The command's file name and its first argument that is not an option (a script,
        a package): arguments may carry secrets, so the rest is left out."""
        words = [Path(self.command).name]
        first = next((a for a in self.args if not a.startswith("-")), None)
        if first:
            words.append(first if first.startswith("@") else Path(first).name)  # npm scopes stay
        return " ".join(words)[:80]

    def environment(self) -> dict[str, str]:
        """The environment the server process gets."""
        if self.inherit_env:
            base = dict(os.environ)
        else:
            base = {
                k: v
                for k in DEFAULT_ENV_VARS
                if (v := os.environ.get(k)) is not None and not v.startswith("()")
            }
        return base | self._env

    # -- MCPServer hooks --

    def transport(self, connection: Connection) -> AbstractAsyncContextManager[Any]:
        from mcp.client.stdio import StdioServerParameters, stdio_client

        if self._stderr is not None:
            connection.errlog = self._stderr
        else:
            connection.errlog = tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace")
            connection.owns_errlog = True
        parameters = StdioServerParameters(
            command=self.command, args=list(self.args), env=self.environment(), cwd=self.cwd
        )
        return stdio_client(parameters, errlog=connection.errlog)

    def start_error(self, connection: Connection, exc: BaseException) -> MCPError:
        stderr = self.stderr_tail(connection)
        hint = self.stderr_hint(connection)
        if isinstance(exc, FileNotFoundError):
            where = f" in {self.cwd}" if self.cwd and os.sep in self.command else ""
            return MCPStartError(
                f"{self.label} cannot start: command {self.command!r} not found{where} (it is looked up on "
                "the server's PATH; give a full path or check env=)",
                server=self.name,
                stderr=stderr,
            )
        if isinstance(exc, PermissionError):
            return MCPStartError(
                f"{self.label} cannot start: {self.command!r} is not executable ({exc.strerror})",
                server=self.name,
                stderr=stderr,
            )
        if isinstance(exc, OSError):
            return MCPStartError(
                f"{self.label} cannot start: {type(exc).__name__}: {excerpt(exc)}",
                server=self.name,
                stderr=stderr,
            )
        if getattr(exc, "code", None) == -32000:  # connection closed during the handshake
            return MCPStartError(
                f"{self.label} exited before completing the MCP handshake{hint or ' (no stderr output)'}",
                server=self.name,
                stderr=stderr,
            )
        return super().start_error(connection, exc)

    def transport_error(self, connection: Connection, exc: BaseException, during: str) -> MCPError | None:
        import anyio

        if isinstance(exc, (OSError, EOFError, anyio.ClosedResourceError, anyio.BrokenResourceError)):
            return MCPConnectionLostError(
                f"{self.label} closed the connection during {during} (it crashed or exited)"
                f"{self.stderr_hint(connection)}; the next run reconnects",
                server=self.name,
                stderr=self.stderr_tail(connection),
            )
        return super().transport_error(connection, exc, during)

    def stderr_tail(self, connection: Connection) -> str:
        """The last lines the server wrote to stderr, with the values of `env` masked."""
        errlog = connection.errlog
        if errlog is None or not connection.owns_errlog or errlog.closed:
            return ""
        try:
            fd = errlog.fileno()
            size = os.fstat(fd).st_size
            raw = os.pread(fd, _TAIL_BYTES, max(0, size - _TAIL_BYTES))  # pread: the child shares the offset
        except (OSError, ValueError, AttributeError):
            return ""
        text = raw.decode("utf-8", errors="replace")
        for value in self._env.values():
            if len(value) >= 4:
                text = text.replace(value, "***")
        lines = [line for line in text.splitlines() if line.strip()]
        return "\n".join(lines[-8:])[-1000:]


__all__ = ["DEFAULT_ENV_VARS", "MCPServerStdio"]
