"""Cassettes: record real provider HTTP exchanges to a readable JSON file and replay them offline.

Built on respx, so it intercepts whatever litellm sends through httpx (OpenAI, Anthropic, Gemini,
embeddings...). Request headers are never written and API keys in URLs are redacted, so a
cassette is safe to commit. Replay is strict: a request must match a recorded one by method,
URL and body (`match_on="body"`, the default) or be the next one in order (`match_on="order"`);
otherwise it fails with CassetteMismatchError showing the request and the nearest recording.
"""

from __future__ import annotations

import atexit
import base64
import difflib
import functools
import importlib
import inspect
import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TypeVar, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

from agnt5.errors import CassetteError, CassetteMismatchError

Mode = Literal["replay", "record", "once"]
MatchOn = Literal["body", "order"]
RECORD_ENV = "AGNT5_RECORD"
CASSETTE_ENV = "AGNT5_CASSETTE"
UPSTREAM_ENV = "AGNT5_CASSETTE_UPSTREAM"
PLACEHOLDER_KEY = "sk-agnt5-cassette-placeholder"
PLACEHOLDER_KEY_ENVS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY")
FORMAT_VERSION = 1
SECRET_PARAMS = frozenset({"key", "api_key", "api-key", "apikey", "access_token", "token", "sig"})
KEPT_RESPONSE_HEADERS = ("content-type", "retry-after", "retry-after-ms")
F = TypeVar("F", bound=Callable[..., Any])


def default_mode() -> Mode:
    """`record` when AGNT5_RECORD is 1/true, else `replay`."""
    return "record" if os.environ.get(RECORD_ENV, "").strip().lower() in ("1", "true", "yes") else "replay"


@dataclass
class Interaction:
    """One recorded exchange: the request as sent (no headers) and the response as received."""

    method: str
    url: str
    body: Any
    status: int
    headers: dict[str, str]
    response: Any
    encoding: Literal["json", "text", "base64"]

    def to_json(self) -> dict[str, Any]:
        return {
            "request": {"method": self.method, "url": self.url, "body": self.body},
            "response": {
                "status": self.status,
                "headers": self.headers,
                "encoding": self.encoding,
                "body": self.response,
            },
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Interaction:
        request, response = data["request"], data["response"]
        return cls(
            method=request["method"],
            url=request["url"],
            body=request.get("body"),
            status=int(response["status"]),
            headers=dict(response.get("headers") or {}),
            response=response.get("body"),
            encoding=response.get("encoding", "json"),
        )

    def to_response(self) -> httpx.Response:
        if self.encoding == "json":
            content = json.dumps(self.response).encode()
        elif self.encoding == "text":
            content = str(self.response).encode()
        else:
            content = base64.b64decode(self.response)
        return httpx.Response(self.status, headers=self.headers, content=content)


def redact_url(url: str) -> str:
    """`url` with secret query parameters (Gemini's `key=`, tokens) replaced by REDACTED."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    query = [
        (k, "REDACTED" if k.lower() in SECRET_PARAMS else v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _request_body(request: httpx.Request) -> Any:
    raw = request.content
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", errors="replace")


def _canonical(method: str, url: str, body: Any) -> str:
    return f"{method} {url}\n" + json.dumps(body, sort_keys=True, indent=1, ensure_ascii=False)


class Cassette:
    """Recorded provider responses in one JSON file; use as a (async) context manager or decorator.

    Modes: `replay` (default; offline, the file must exist), `record` (real requests, the file is
    rewritten on exit) and `once` (record if the file does not exist yet, else replay). The
    default mode is `record` when AGNT5_RECORD=1, so a suite is re-recorded without code changes.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        mode: Mode | None = None,
        match_on: MatchOn = "body",
        *,
        upstream: Callable[[httpx.Request], httpx.Response] | None = None,
    ) -> None:
        """`upstream`, when recording, answers each request instead of the network: a scripted
        provider (in the provider's wire format) for authoring cassettes of demos and docs."""
        self.path = Path(path)
        self.upstream = upstream
        chosen = mode or default_mode()
        if chosen == "once":
            chosen = "replay" if self.path.exists() else "record"
        if chosen not in ("replay", "record"):
            raise CassetteError(f"unknown cassette mode {mode!r}; use 'replay', 'record' or 'once'")
        if match_on not in ("body", "order"):
            raise CassetteError(f"unknown match_on {match_on!r}; use 'body' or 'order'")
        self.mode: Literal["replay", "record"] = chosen
        self.match_on = match_on
        self.interactions: list[Interaction] = []
        self._used: set[int] = set()
        self._lock = threading.Lock()
        self._router: Any = None
        self._network_before: bool | None = None
        self.errors: list[CassetteMismatchError] = []

    def __repr__(self) -> str:
        return f"Cassette({str(self.path)!r}, mode={self.mode!r})"

    # -- file --

    def _load(self) -> list[Interaction]:
        if not self.path.exists():
            raise CassetteError(
                f"cassette {self.path} does not exist; record it once with mode='record' "
                f"(or {RECORD_ENV}=1) against the real provider"
            )
        try:
            data = json.loads(self.path.read_text())
            if data.get("version") != FORMAT_VERSION:
                raise CassetteError(
                    f"cassette {self.path} has format version {data.get('version')!r}, expected {FORMAT_VERSION}"
                )
            return [Interaction.from_json(item) for item in data["interactions"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise CassetteError(f"cassette {self.path} is not a valid agnt5 cassette: {exc}") from exc

    def save(self) -> None:
        """Write the recorded interactions (readable JSON, no headers or keys)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        document = {"version": FORMAT_VERSION, "interactions": [i.to_json() for i in self.interactions]}
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        tmp.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
        tmp.replace(self.path)

    @property
    def unused(self) -> list[Interaction]:
        """Recorded interactions that this replay has not served (yet)."""
        return [i for n, i in enumerate(self.interactions) if n not in self._used]

    # -- lifecycle --

    def start(self) -> Cassette:
        """Begin intercepting provider HTTP (prefer `with cassette:`)."""
        import respx

        from agnt5 import _litellm

        if self._router is not None:
            raise CassetteError(f"{self!r} is already active")
        self._used, self.errors = set(), []
        self.interactions = self._load() if self.mode == "replay" else []
        if self.mode == "replay":
            router = respx.mock(assert_all_called=False, assert_all_mocked=True)
            router.route().mock(side_effect=self._replay)
        else:
            # Recording sends real requests below httpx's transport, so patch httpx (not httpcore).
            router = respx.mock(assert_all_called=False, using="httpx")
            router.route().mock(side_effect=self._record)
            self._network_before = _litellm.network_override()
            _litellm.disable_network(False)
        router.start()
        self._router = router
        return self

    def stop(self) -> None:
        """Stop intercepting; a recording cassette writes its file."""
        from agnt5 import _litellm

        router, self._router = self._router, None
        if router is None:
            return
        router.stop()
        if self.mode == "record":
            _litellm.disable_network(self._network_before)
            self.save()

    def __enter__(self) -> Cassette:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
        if exc is None and self.errors:
            raise self.errors[0]

    async def __aenter__(self) -> Cassette:
        return self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def __call__(self, function: F) -> F:
        """Use as a decorator on a sync or async test function."""
        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                async with self:
                    return await function(*args, **kwargs)

            return cast(F, async_wrapper)

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self:
                return function(*args, **kwargs)

        return cast(F, wrapper)

    # -- replay --

    def _replay(self, request: httpx.Request) -> httpx.Response:
        method, url, body = request.method, redact_url(str(request.url)), _request_body(request)
        with self._lock:
            candidates = [n for n in range(len(self.interactions)) if n not in self._used]
            if self.match_on == "order":
                candidates = candidates[:1]
            for n in candidates:
                recorded = self.interactions[n]
                if (
                    recorded.method == method
                    and recorded.url == url
                    and (self.match_on == "order" or recorded.body == body)
                ):
                    self._used.add(n)
                    return recorded.to_response()
            error = CassetteMismatchError(self._mismatch(method, url, body))
            self.errors.append(error)
        raise error

    def _mismatch(self, method: str, url: str, body: Any) -> str:
        wanted = _canonical(method, url, body)
        lines = [f"no recorded response in {self.path} matches this request:", _indent(wanted, 1200)]
        remaining = self.unused
        if not remaining:
            lines.append(
                f"every one of the {len(self.interactions)} recorded interactions was already used; "
                f"re-record the cassette ({RECORD_ENV}=1) if the code now makes more calls"
            )
            return "\n".join(lines)
        nearest = max(
            remaining,
            key=lambda i: difflib.SequenceMatcher(None, _canonical(i.method, i.url, i.body), wanted).ratio(),
        )
        diff = difflib.unified_diff(
            _canonical(nearest.method, nearest.url, nearest.body).splitlines(),
            wanted.splitlines(),
            "recorded",
            "requested",
            lineterm="",
            n=1,
        )
        lines.append("nearest recorded request (diff recorded → requested):")
        lines.append(_indent("\n".join(diff), 2000))
        lines.append(f"re-record the cassette ({RECORD_ENV}=1) if the change is intended")
        return "\n".join(lines)

    # -- record --

    async def _record(self, request: httpx.Request) -> httpx.Response:
        status, headers, content = await self._send_upstream(request)
        kept = {k: headers[k] for k in KEPT_RESPONSE_HEADERS if k in headers}
        payload: Any
        encoding: Literal["json", "text", "base64"]
        try:
            if "json" in headers.get("content-type", ""):
                payload, encoding = json.loads(content), "json"
            else:
                payload, encoding = content.decode("utf-8"), "text"
        except ValueError:
            payload, encoding = base64.b64encode(content).decode(), "base64"
        interaction = Interaction(
            request.method,
            redact_url(str(request.url)),
            _request_body(request),
            status,
            kept,
            payload,
            encoding,
        )
        with self._lock:
            self.interactions.append(interaction)
        return httpx.Response(status, headers=kept, content=content)

    async def _send_upstream(self, request: httpx.Request) -> tuple[int, dict[str, str], bytes]:
        """The response to `request` from `upstream`, else from the real network (below respx)."""
        if self.upstream is not None:
            response = self.upstream(request)
            body = await response.aread()
            return response.status_code, {k.lower(): v for k, v in response.headers.items()}, body
        import httpcore

        skip = (b"content-length", b"host")
        async with httpcore.AsyncConnectionPool() as pool:
            raw = await pool.request(
                request.method,
                str(request.url),
                headers=[(k, v) for k, v in request.headers.raw if k.lower() not in skip],
                content=request.content,
            )
        return raw.status, {k.decode().lower(): v.decode() for k, v in raw.headers}, raw.content


def _indent(text: str, limit: int) -> str:
    if len(text) > limit:
        text = text[:limit] + " …"
    return "\n".join("    " + line for line in text.splitlines())


def cassette(
    path: str | os.PathLike[str],
    mode: Mode | None = None,
    match_on: MatchOn = "body",
    *,
    upstream: Callable[[httpx.Request], httpx.Response] | None = None,
) -> Cassette:
    """A Cassette for `path`: `with cassette("tests/cassettes/x.json"): ...` or as a decorator."""
    return Cassette(path, mode, match_on, upstream=upstream)


_ambient: Cassette | None = None


def resolve_upstream(spec: str) -> Callable[[httpx.Request], httpx.Response]:
    """The callable named by `module:function` (AGNT5_CASSETTE_UPSTREAM); CassetteError if none."""
    module_name, sep, attribute = spec.strip().partition(":")
    if not sep or not module_name or not attribute:
        raise CassetteError(f"{UPSTREAM_ENV} must look like 'module:function', got {spec!r}")
    try:
        target: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise CassetteError(f"{UPSTREAM_ENV}={spec!r} names nothing importable: {exc}") from exc
    if not callable(target):
        raise CassetteError(f"{UPSTREAM_ENV}={spec!r} is not callable")
    return cast(Callable[[httpx.Request], httpx.Response], target)


def activate_from_environment() -> Cassette | None:
    """Start the cassette named by AGNT5_CASSETTE for the whole process (notebook kernels, demos).

    Called when agnt5 first loads litellm, so a notebook's own code needs no change. When
    recording, AGNT5_CASSETTE_UPSTREAM=`module:function` names the scripted provider (see
    `Cassette(upstream=...)`) that answers instead of the network. When no real provider is
    reached (replay, or a scripted upstream), provider SDKs that insist on an API key before
    sending get a placeholder (only where none is set); it is never sent anywhere nor written.
    """
    global _ambient
    path = os.environ.get(CASSETTE_ENV)
    if not path or _ambient is not None:
        return _ambient
    spec = os.environ.get(UPSTREAM_ENV, "").strip()
    ambient = Cassette(path, upstream=resolve_upstream(spec) if spec else None)
    if ambient.mode == "replay" or ambient.upstream is not None:
        for variable in PLACEHOLDER_KEY_ENVS:
            os.environ.setdefault(variable, PLACEHOLDER_KEY)
    _ambient = ambient.start()
    atexit.register(_ambient.stop)  # a recording ambient cassette is written when the process ends
    return _ambient
