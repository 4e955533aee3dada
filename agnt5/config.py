"""Process-wide settings: the default store (from `AGNT5_DATABASE_URL` or `configure`) and model."""

from __future__ import annotations

import os
import threading

from agnt5.errors import InvalidInputError
from agnt5.store.base import Store
from agnt5.store.url import DEFAULT_DATABASE_URL, open_store
from agnt5.values import reset_limits, set_limits

DEFAULT_MODEL = "gpt-4o-mini"

_lock = threading.Lock()
_database_url: str | None = None
_store: Store | None = None


def configure(
    *,
    database_url: str | None = None,
    store: Store | None = None,
    max_message_bytes: int | None = None,
    max_state_bytes: int | None = None,
) -> None:
    """Set the default store for Entity, Session and Memory created without `store=`, and the
    size limits of what they accept.

    The store takes effect for objects created afterwards; `database_url` overrides
    `AGNT5_DATABASE_URL`. `max_message_bytes` (one message's text and metadata) and
    `max_state_bytes` (one state value, Entity value, memory or event payload), in UTF-8 bytes,
    override `AGNT5_MAX_MESSAGE_BYTES` / `AGNT5_MAX_STATE_BYTES` (default 4 MiB each).
    """
    global _database_url, _store
    if database_url is not None and store is not None:
        raise InvalidInputError("pass database_url or store, not both")
    set_limits(max_message_bytes=max_message_bytes, max_state_bytes=max_state_bytes)
    with _lock:
        if database_url is not None:
            candidate = open_store(database_url)  # validates the URL before replacing anything
            _database_url, _store = database_url, candidate
        elif store is not None:
            _database_url, _store = store.url, store


def database_url() -> str:
    """The URL the default store uses: `configure(...)`, else `AGNT5_DATABASE_URL`, else the default."""
    return _database_url or os.environ.get("AGNT5_DATABASE_URL") or DEFAULT_DATABASE_URL


def default_store() -> Store:
    """The process-wide default store, opened on first use."""
    global _store
    with _lock:
        if _store is None:
            _store = open_store(database_url())
        return _store


def default_model() -> str:
    """The model used when none is given: `AGNT5_MODEL`, else gpt-4o-mini."""
    return os.environ.get("AGNT5_MODEL") or DEFAULT_MODEL


def reset() -> None:
    """Forget configured settings and the default store (tests; a new working directory)."""
    global _database_url, _store
    reset_limits()
    with _lock:
        store, _database_url, _store = _store, None, None
    close_sync = getattr(store, "close_sync", None)
    if callable(close_sync):
        close_sync()
