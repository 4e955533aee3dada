"""The one door to litellm: lazy import, offline switches, a network guard, retries and error mapping.

Nothing else in agnt5 imports litellm. It loads on the first model call, configured so that a plain
`respx.mock()` intercepts every provider call (httpx transport, no aiohttp, no cached clients).
litellm's own `num_retries` needs `tenacity`, which litellm does not install, and sleeps with a
fixed backoff; so agnt5 retries here instead, and passes `num_retries=0, max_retries=0` down.
"""

from __future__ import annotations

import asyncio
import email.utils
import importlib
import os
import random
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from types import ModuleType
from typing import Any

from agnt5 import errors, tokens

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
        _guard_installed = True


def _wrap_async_connect(cls: type) -> None:
    original = cls.__dict__.get("_connect")
    if original is None or getattr(original, "__agnt5_guard__", False):
        return

    async def _connect(self: Any, request: Any) -> Any:
        if network_disabled():
            raise _refusal(request)
        return await original(self, request)

    _connect.__agnt5_guard__ = True  # type: ignore[attr-defined]
    cls._connect = _connect  # type: ignore[attr-defined]


def _wrap_sync_connect(cls: type) -> None:
    original = cls.__dict__.get("_connect")
    if original is None or getattr(original, "__agnt5_guard__", False):
        return

    def _connect(self: Any, request: Any) -> Any:
        if network_disabled():
            raise _refusal(request)
        return original(self, request)

    _connect.__agnt5_guard__ = True  # type: ignore[attr-defined]
    cls._connect = _connect  # type: ignore[attr-defined]


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
    call = getattr(get_litellm(), function)
    kwargs.setdefault("num_retries", 0)
    model = str(kwargs.get("model", ""))
    attempt = 0
    while True:
        try:
            return await call(**kwargs)
        except Exception as exc:
            mapped = map_exception(exc, model)
            if attempt >= num_retries or not is_retryable(mapped):
                raise mapped from exc
            await _sleep(backoff_delay(attempt, exc))
            attempt += 1


async def iterate_stream(stream: Any, model: str) -> AsyncIterator[Any]:
    """Yield the chunks of a litellm stream, mapping errors raised mid-stream to agnt5 errors."""
    try:
        async for chunk in stream:
            yield chunk
    except errors.Agnt5Error:
        raise
    except Exception as exc:
        raise map_exception(exc, model) from exc


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


_MISSING_KEY_PHRASES = ("missing credentials", "api_key client option must be set", "no api key provided")


def _missing_credentials(detail: str) -> bool:
    lowered = detail.lower()
    return any(phrase in lowered for phrase in _MISSING_KEY_PHRASES)


def provider_name(model: str) -> str | None:
    """litellm's provider name for `model` ("openai", "anthropic", "gemini"...), None if unknown."""
    try:
        return str(get_litellm().get_llm_provider(model)[1])
    except Exception:
        return None


def map_exception(exc: BaseException, model: str) -> errors.ModelError:
    """Translate a litellm/openai/httpx exception into the matching `agnt5.errors.ModelError`."""
    if isinstance(exc, errors.ModelError):
        return exc
    # Our own errors raised below litellm (network guard, cassette replay) come through as themselves.
    ours = _find_cause(exc, errors.ModelError)
    if isinstance(ours, errors.ModelError):
        ours.model = ours.model or model
        return ours

    litellm = get_litellm()
    exc_model = getattr(exc, "model", None)
    model = str(exc_model) if isinstance(exc_model, str) and exc_model else model
    provider = getattr(exc, "llm_provider", None) or provider_name(model)
    status = getattr(exc, "status_code", None)
    status_code = status if isinstance(status, int) else None
    detail = _detail(exc)
    where = f"{model} ({provider})" if provider else model
    key_var = _api_key_env(model, provider)
    ctx: dict[str, Any] = {"model": model, "provider": provider, "status_code": status_code}
    lx = litellm.exceptions

    if isinstance(exc, lx.ContextWindowExceededError):
        return errors.ContextWindowExceededError(
            f"the prompt does not fit the context window of {where}: {detail}. "
            "Prune the session history or use a model with a larger window.",
            **ctx,
        )
    if _missing_credentials(detail):
        # Raised by the SDK before any request; litellm reports it as a 500.
        return errors.AuthenticationError(
            f"{where} has no API key: {detail}. Set {key_var} or pass api_key= to LanguageModel.",
            **{**ctx, "status_code": None},
        )
    if isinstance(exc, lx.AuthenticationError | lx.PermissionDeniedError) or status_code in (401, 403):
        return errors.AuthenticationError(
            f"{where} refused the credentials (HTTP {status_code or 401}): {detail}. "
            f"Check {key_var} or pass api_key= to LanguageModel.",
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


def _api_key_env(model: str, provider: str | None) -> str:
    from agnt5.providers import profile_for

    profile = profile_for(model)
    if provider is None or profile.name == provider:
        return profile.api_key_env
    return f"{provider.upper()}_API_KEY"


def _is_httpx_timeout(exc: BaseException) -> bool:
    try:
        import httpx
    except ImportError:  # pragma: no cover - httpx is a litellm dependency
        return False
    return _find_cause(exc, httpx.TimeoutException) is not None


def _detail(exc: BaseException) -> str:
    message = getattr(exc, "message", None)
    text = message if isinstance(message, str) and message else str(exc)
    text = " ".join(text.split())
    return text[:500] + ("..." if len(text) > 500 else "") if text else type(exc).__name__
