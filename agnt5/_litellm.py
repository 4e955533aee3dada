"""The one door to litellm: lazy import, offline switches, a network guard, retries and error mapping.

Nothing else in agnt5 imports litellm. It loads on the first model call, configured so that a plain
`respx.mock()` intercepts every provider call (httpx transport, no aiohttp, no cached clients).
litellm's own `num_retries` needs `tenacity`, which litellm does not install, and sleeps with a
fixed backoff; so agnt5 retries here instead, and passes `num_retries=0, max_retries=0` down.
"""

from __future__ import annotations

import asyncio
import contextvars
import email.utils
import importlib
import importlib.metadata
import ipaddress
import json
import os
import random
import re
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from types import ModuleType
from typing import Any

from agnt5 import _otel_models, errors, tokens

NETWORK_ENV = "AGNT5_DISABLE_NETWORK"
RETRY_BASE_DELAY = 0.5
"""Seconds before the first retry; doubles each attempt (with jitter), capped at `RETRY_MAX_DELAY`."""
RETRY_MAX_DELAY = 8.0
"""Upper bound of one backoff sleep, also applied to a provider's `Retry-After` header."""

_module: ModuleType | None = None
_import_lock = threading.Lock()
_network_override: bool | None = None
_guard_installed = False
_guard_lock = threading.Lock()
_answers: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar(
    "agnt5_http_answers", default=None
)
"""HTTP statuses received during the current model call (set per attempt by `_call_with_retries`)."""

# Indirection so tests can make backoff instant: `monkeypatch.setattr(agnt5._litellm, "_sleep", ...)`.
_sleep: Callable[[float], Awaitable[None]] = asyncio.sleep


# --- lazy import ---------------------------------------------------------------------------------


def get_litellm() -> ModuleType:
    """Import and configure litellm once per process (offline cost map, httpx transport, guard)."""
    global _module
    if _module is not None:
        return _module
    with _import_lock:
        if _module is None:
            os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
            tokens._point_tiktoken_at_litellm_cache()
            module = importlib.import_module("litellm")
            # httpx (not aiohttp) carries every request, so respx's default httpcore mocker sees it.
            setattr(module, "disable_aiohttp_transport", True)  # noqa: B010
            setattr(module, "suppress_debug_info", True)  # noqa: B010
            cache = getattr(module, "in_memory_llm_clients_cache", None)
            flush = getattr(cache, "flush_cache", None)
            if callable(flush):
                flush()  # drop any client built before the transport switch
            install_network_guard()
            _module = module
        if os.environ.get("AGNT5_CASSETTE"):
            # A notebook kernel or demo told by its environment to replay recorded responses.
            from agnt5.testing.cassette import activate_from_environment

            activate_from_environment()
    assert _module is not None
    return _module


def is_loaded() -> bool:
    """Whether litellm has been imported through agnt5 in this process."""
    return _module is not None


# --- network guard -------------------------------------------------------------------------------


def network_disabled() -> bool:
    """True when real HTTP requests must fail: `disable_network(True)` or AGNT5_DISABLE_NETWORK=1/true."""
    if _network_override is not None:
        return _network_override
    return os.environ.get(NETWORK_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def network_override() -> bool | None:
    """What `disable_network` last set (None: follow AGNT5_DISABLE_NETWORK), to restore it later."""
    return _network_override


def disable_network(disabled: bool | None = True) -> None:
    """Refuse (True) or allow (False) real HTTP requests; None defers to the environment variable again."""
    global _network_override
    _network_override = disabled
    install_network_guard()


def _request_url(request: Any) -> str:
    url = getattr(request, "url", None)
    if url is None:
        return "<unknown url>"

    def text(value: Any) -> str:
        return value.decode("ascii", "replace") if isinstance(value, bytes) else str(value or "")

    port = getattr(url, "port", None)
    netloc = text(getattr(url, "host", b"")) + (f":{port}" if isinstance(port, int) else "")
    return f"{text(getattr(url, 'scheme', b''))}://{netloc}{text(getattr(url, 'target', b''))}"


def _loopback(request: Any) -> bool:
    """A request to this machine (localhost, 127.0.0.0/8, ::1): a local server (an MCP server,
    `agnt5 inspect`) is not the network a disabled network keeps out."""
    host = getattr(getattr(request, "url", None), "host", b"")
    name = host.decode("ascii", "replace") if isinstance(host, bytes) else str(host)
    if name.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(name.strip("[]")).is_loopback
    except ValueError:
        return False


def _refusal(request: Any) -> errors.NetworkDisabledError:
    url = _request_url(request)
    return errors.NetworkDisabledError(
        f"network access is disabled ({NETWORK_ENV}=1 or agnt5._litellm.disable_network()), "
        f"but a real HTTP request was attempted: {url}. Mock it (e.g. with respx) or enable the network."
    )


def install_network_guard() -> None:
    """Wrap httpcore's connection opening so a disabled network fails loudly, naming the URL.

    The guard sits on `HTTPConnection._connect`, below the methods respx patches, so it works in
    any order with respx: mocked routes never open a connection; pass-through routes hit the guard.
    """
    global _guard_installed
    with _guard_lock:
        if _guard_installed:
            return
        for package in ("httpcore", "httpcore2"):
            try:
                async_mod = importlib.import_module(f"{package}._async.connection")
                sync_mod = importlib.import_module(f"{package}._sync.connection")
            except ImportError:
                continue
            _wrap_async_connect(async_mod.AsyncHTTPConnection)
            _wrap_sync_connect(sync_mod.HTTPConnection)
        _track_answers()
        _guard_installed = True


def _wrap_async_connect(cls: type) -> None:
    original = cls.__dict__.get("_connect")
    if original is None or getattr(original, "__agnt5_guard__", False):
        return

    async def _connect(self: Any, request: Any) -> Any:
        if network_disabled() and not _loopback(request):
            raise _refusal(request)
        return await original(self, request)

    _connect.__agnt5_guard__ = True  # type: ignore[attr-defined]
    cls._connect = _connect  # type: ignore[attr-defined]


def _wrap_sync_connect(cls: type) -> None:
    original = cls.__dict__.get("_connect")
    if original is None or getattr(original, "__agnt5_guard__", False):
        return

    def _connect(self: Any, request: Any) -> Any:
        if network_disabled() and not _loopback(request):
            raise _refusal(request)
        return original(self, request)

    _connect.__agnt5_guard__ = True  # type: ignore[attr-defined]
    cls._connect = _connect  # type: ignore[attr-defined]


def _track_answers() -> None:
    """Record the status of every httpx response received inside a model call (see `_answers`).

    It sits on `httpx.AsyncClient.send`, above respx and the network guard, so mocked and real
    answers alike tell a failure after an HTTP 200 (litellm could not read the answer) from a
    failure to get one.
    """
    try:
        import httpx
    except ImportError:  # pragma: no cover - httpx is a litellm dependency
        return
    original = httpx.AsyncClient.__dict__.get("send")
    if original is None or getattr(original, "__agnt5_answers__", False):
        return

    async def send(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        response = await original(self, request, *args, **kwargs)
        answers = _answers.get()
        if answers is not None:
            answers.append(response.status_code)
        return response

    send.__agnt5_answers__ = True  # type: ignore[attr-defined]
    httpx.AsyncClient.send = send  # type: ignore[method-assign]


# --- calls with retries --------------------------------------------------------------------------


async def acompletion(*, num_retries: int = 2, **kwargs: Any) -> Any:
    """`litellm.acompletion(**kwargs)` retried on 429/5xx/connection errors; errors mapped to agnt5's.

    With `stream=True` this returns litellm's stream wrapper; iterate it with `iterate_stream`.
    """
    kwargs.setdefault("max_retries", 0)
    return await _call_with_retries("acompletion", num_retries, kwargs)


class _NoRetries(int):
    """Zero retries that is truthy: litellm's OpenAI embedding path reads `max_retries or 2`, so a
    plain 0 would turn into two hidden SDK retries under agnt5's own."""

    def __new__(cls) -> _NoRetries:
        return super().__new__(cls, 0)

    def __bool__(self) -> bool:
        return True


async def aembedding(*, num_retries: int = 2, **kwargs: Any) -> Any:
    """`litellm.aembedding(**kwargs)` with the same retries and error mapping as `acompletion`."""
    kwargs.setdefault("max_retries", _NoRetries())
    return await _call_with_retries("aembedding", num_retries, kwargs)


async def _call_with_retries(function: str, num_retries: int, kwargs: dict[str, Any]) -> Any:
    """Call `litellm.<function>(**kwargs)`; agnt5 retries (litellm's and the SDK's own are off)."""
    litellm = get_litellm()
    call = getattr(litellm, function)
    if getattr(litellm, "num_retries", None) is not None:
        # Only an application-wide `litellm.num_retries` would make litellm retry; passing 0
        # on every call costs litellm ~0.2 ms of argument handling, so it goes only then.
        kwargs.setdefault("num_retries", 0)
    model = str(kwargs.get("model", ""))
    key_given = bool(kwargs.get("api_key"))
    attempt = 0
    while True:
        answers: list[int] = []
        token = _answers.set(answers)
        try:
            return await call(**kwargs)
        except Exception as exc:
            answered = bool(answers) and 200 <= answers[-1] < 300
            mapped = map_exception(exc, model, answered=answered, api_key_given=key_given)
            if attempt >= num_retries or not is_retryable(mapped):
                raise mapped from exc
            delay = backoff_delay(attempt, exc)
            _otel_models.retrying(attempt + 1, mapped, delay)
        finally:
            _answers.reset(token)
        await _sleep(delay)
        attempt += 1


async def iterate_stream(stream: Any, model: str) -> AsyncIterator[Any]:
    """Yield the chunks of a litellm stream, mapping errors raised mid-stream to agnt5 errors."""
    try:
        async for chunk in stream:
            yield chunk
    except errors.Agnt5Error:
        raise
    except Exception as exc:
        raise map_exception(exc, model, answered=True) from exc


def stream_usage_reported(stream: Any) -> bool | None:
    """Whether the provider's own stream chunks carried usage; False when litellm estimated it.

    litellm appends a usage chunk to every stream, counting tokens itself when the provider sent
    none; its record of the provider's chunks (`stream.chunks`) tells the two apart. None when
    this litellm keeps no such record.
    """
    chunks = getattr(stream, "chunks", None)
    if not isinstance(chunks, list):
        return None
    for chunk in chunks:
        usage = chunk.get("usage") if isinstance(chunk, Mapping) else getattr(chunk, "usage", None)
        if usage is not None and type(usage).__name__ != "UnreportedUsage":
            return True
    return False


def is_retryable(error: errors.ModelError) -> bool:
    """Rate limits, timeouts, 5xx and connection failures are worth another try; the rest are not."""
    if isinstance(error, errors.NetworkDisabledError | errors.CassetteMismatchError):
        return False
    if isinstance(error, errors.RateLimitError | errors.ModelTimeoutError):
        return True
    if isinstance(error, errors.ProviderError):
        return error.status_code is None or error.status_code >= 500
    return False


def backoff_delay(attempt: int, exc: BaseException | None = None) -> float:
    """Seconds to wait before retry `attempt` (0-based): the provider's Retry-After, else jittered 2^n."""
    retry_after = _retry_after(exc)
    if retry_after is not None:
        return min(max(retry_after, 0.0), RETRY_MAX_DELAY)
    delay = min(RETRY_BASE_DELAY * (2.0**attempt), RETRY_MAX_DELAY)
    return delay * (0.75 + random.random() / 2)


def _retry_after(exc: BaseException | None) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if not isinstance(headers, Mapping):
        return None
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return None if parsed is None else parsed.timestamp() - time.time()


# --- error mapping -------------------------------------------------------------------------------


def _find_cause(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


_MISSING_KEY = re.compile(
    r"missing credentials|missing (?:\w+ )?api key|api_key client option must be set|no api key provided",
    re.IGNORECASE,
)


def _missing_credentials(detail: str) -> bool:
    """litellm or the provider SDK refused to send the request because no API key was found."""
    return _MISSING_KEY.search(detail) is not None


def provider_name(model: str) -> str | None:
    """litellm's provider name for `model` ("openai", "anthropic", "gemini"...), None if unknown."""
    try:
        return str(get_litellm().get_llm_provider(model)[1])
    except Exception:
        return None


def map_exception(
    exc: BaseException, model: str, *, answered: bool = False, api_key_given: bool = True
) -> errors.ModelError:
    """Translate a litellm/openai/httpx exception into the matching `agnt5.errors.ModelError`.

    `answered`: the provider's HTTP 200 arrived before the failure (so litellm failed reading it).
    `api_key_given`: the call passed `api_key=` (else an HTTP 401 may mean the variable is unset).
    """
    if isinstance(exc, errors.ModelError):
        return exc
    # Our own errors raised below litellm (network guard, cassette replay) come through as themselves.
    ours = _find_cause(exc, errors.ModelError)
    if isinstance(ours, errors.ModelError):
        ours.model = ours.model or model
        return ours

    litellm = get_litellm()
    if not model:
        exc_model = getattr(exc, "model", None)
        model = str(exc_model) if isinstance(exc_model, str) else ""
    provider = getattr(exc, "llm_provider", None) or provider_name(model)
    status = getattr(exc, "status_code", None)
    status_code = status if isinstance(status, int) else None
    detail = _detail(exc)
    where = f"{model} ({provider})" if provider else model
    key_vars = _api_key_vars(model, provider)
    key_hint = key_vars[0] + (f" (or {', '.join(key_vars[1:])})" if len(key_vars) > 1 else "")
    ctx: dict[str, Any] = {"model": model, "provider": provider, "status_code": status_code}
    lx = litellm.exceptions

    if isinstance(exc, lx.ContextWindowExceededError):
        return errors.ContextWindowExceededError(
            f"the prompt does not fit the context window of {where}: {detail}. "
            "Prune the session history or use a model with a larger window.",
            **ctx,
        )
    if _missing_credentials(detail):
        # Raised by litellm or the SDK before any request (litellm reports some of them as a 500).
        return errors.AuthenticationError(
            f"{where} has no API key: set the {key_hint} environment variable, or pass api_key= "
            "to LanguageModel. Nothing was sent to the provider.",
            **{**ctx, "status_code": None},
        )
    failure = _parse_failure(exc, answered)
    if failure is not None:
        version = litellm_version()
        return errors.ResponseParseError(
            f"{where} answered (HTTP 200) but litellm {version} could not parse the answer: {failure}. "
            "It was sent once and not retried: the provider has billed it and a retry would fail the "
            "same way. Upgrade litellm (pip install -U litellm) or use a litellm version that reads "
            "this provider's answers.",
            model=model,
            provider=provider,
            litellm_version=version,
        )
    if isinstance(exc, lx.AuthenticationError | lx.PermissionDeniedError) or status_code in (401, 403):
        if status_code in (None, 401) and not api_key_given and not any(os.environ.get(v) for v in key_vars):
            return errors.AuthenticationError(
                f"{where} refused the request (HTTP 401): no API key was sent because {key_vars[0]} "
                f"is not set. Set {key_hint}, or pass api_key= to LanguageModel.",
                **ctx,
            )
        return errors.AuthenticationError(
            f"{where} refused the credentials (HTTP {status_code or 401}): {detail}. "
            f"Check {key_hint}, or pass api_key= to LanguageModel.",
            **ctx,
        )
    if isinstance(exc, lx.RateLimitError) or status_code == 429:
        return errors.RateLimitError(
            f"{where} rate-limited the request (HTTP 429) and retries ran out: {detail}. "
            "Wait and retry, lower the request rate, or raise num_retries.",
            **ctx,
        )
    if isinstance(exc, lx.Timeout | TimeoutError) or _find_cause(exc, TimeoutError) is not None:
        return errors.ModelTimeoutError(
            f"the call to {where} timed out: {detail}. Raise timeout= on LanguageModel or retry later.",
            **ctx,
        )
    if _is_httpx_timeout(exc):
        return errors.ModelTimeoutError(
            f"the call to {where} timed out: {detail}. Raise timeout= on LanguageModel or retry later.",
            **ctx,
        )
    if isinstance(exc, lx.APIConnectionError) or (status_code is not None and status_code >= 500):
        return errors.ProviderError(
            f"{where} failed (HTTP {status_code or 'connection error'}): {detail}. "
            "This is usually transient on the provider's side; retry later.",
            **ctx,
        )
    if isinstance(exc, lx.BadRequestError | lx.NotFoundError | lx.UnprocessableEntityError):
        return errors.ProviderError(
            f"{where} rejected the request (HTTP {status_code or 400}): {detail}. "
            "Check the model name and the request parameters.",
            **ctx,
        )
    return errors.ProviderError(
        f"the call to {where} failed with a malformed or unexpected response "
        f"({type(exc).__name__}): {detail}.",
        **ctx,
    )


def litellm_version() -> str:
    """The installed litellm's version ("unknown" when its metadata is missing)."""
    try:
        return importlib.metadata.version("litellm")
    except importlib.metadata.PackageNotFoundError:
        return str(getattr(get_litellm(), "version", "unknown"))


def _chain(exc: BaseException) -> list[BaseException]:
    """`exc` and the exceptions it was raised from or while handling, outermost first."""
    out: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not seen for seen in out):
        out.append(current)
        current = current.__cause__ or current.__context__
    return out


_LOCAL_DEFECTS = (AttributeError, TypeError, KeyError, IndexError, ValueError)
"""What litellm's own code raises when an answer has a shape it does not expect."""
_CONVERSION_FAILED = ("error converting to valid response block", "invalid response object")
"""litellm's words for "the provider answered, but I could not turn it into a ModelResponse"."""


def _parse_failure(exc: BaseException, answered: bool) -> str | None:
    """What litellm failed on while reading an answer the provider gave, else None.

    A failure to get an answer (transport error, HTTP error status, timeout) or an answer that is
    not JSON at all (cut off, an HTML error page) is the provider's side and is not one of these.
    """
    import httpx

    chain = _chain(exc)
    if any(
        isinstance(e, httpx.HTTPError | TimeoutError | json.JSONDecodeError | UnicodeDecodeError)
        for e in chain
    ):
        return None
    text = " ".join(str(e) for e in chain).lower()
    if "empty or invalid response" in text:  # litellm: the body was not JSON
        return None
    local = next((e for e in reversed(chain) if isinstance(e, _LOCAL_DEFECTS)), None)
    if not (any(marker in text for marker in _CONVERSION_FAILED) or (answered and local is not None)):
        return None
    if local is None:
        return _detail(exc)
    reason = " ".join(str(local).split())
    return f"{type(local).__name__}: {reason[:300]}{'...' if len(reason) > 300 else ''}"


def _api_key_vars(model: str, provider: str | None) -> list[str]:
    """Environment variables that hold `model`'s API key, the one agnt5 documents first."""
    from agnt5.providers import profile_for

    profile = profile_for(model)
    primary = (
        profile.api_key_env if provider is None or profile.name == provider else f"{provider.upper()}_API_KEY"
    )
    names = [primary]
    try:
        missing = get_litellm().validate_environment(model).get("missing_keys") or []
    except Exception:
        missing = []
    names += [
        name for name in missing if isinstance(name, str) and name.endswith("_KEY") and name not in names
    ]
    return names


def _is_httpx_timeout(exc: BaseException) -> bool:
    try:
        import httpx
    except ImportError:  # pragma: no cover - httpx is a litellm dependency
        return False
    return _find_cause(exc, httpx.TimeoutException) is not None


_LITELLM_PREFIX = re.compile(r"^(?:litellm\.\w+:\s*)+(?:\w+Error:\s*)?(?:\w+Exception\s*-\s*)?")
_LITELLM_TRAILERS = (
    "Traceback (most recent call last)",
    "File an issue if litellm error",
    "Received Model Group=",
    "LiteLLM Retried:",
)


def _detail(exc: BaseException) -> str:
    """The provider's own words from `exc`, without litellm's class-name prefixes and tracebacks."""
    message = getattr(exc, "message", None)
    text = message if isinstance(message, str) and message else str(exc)
    for trailer in _LITELLM_TRAILERS:
        text = text.split(trailer, 1)[0]
    text = _LITELLM_PREFIX.sub("", " ".join(text.split())).strip().rstrip(".").strip()
    return text[:500] + ("..." if len(text) > 500 else "") if text else type(exc).__name__
