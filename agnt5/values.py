"""What text and JSON values agnt5 accepts: encodable strings, bounded nesting and bounded size.

Checked before anything is stored, so a bad value raises a typed error naming the field instead of
failing (or hanging) inside a database driver. Strings must be valid Unicode (no lone surrogates:
no store can encode them); names and ids also refuse NUL. Sizes are UTF-8 bytes of the strings.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

from agnt5.errors import InputTooLargeError, InvalidInputError, InvalidTypeError

MAX_DEPTH = 64
"""Deepest nesting of lists and dicts in a stored value (JSON documents rarely pass 20)."""
DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024
"""Default limit of one message's text (content, parts, tool arguments, metadata), in UTF-8 bytes."""
DEFAULT_MAX_STATE_BYTES = 4 * 1024 * 1024
"""Default limit of one state value, Entity value, memory or event payload, in UTF-8 bytes."""
MAX_NAME_BYTES = 1024
"""Longest id, name or key (session id, app_name, user_id, Entity name and keys, state keys)."""
MAX_COUNT = 2**63 - 1
"""Largest `limit` (and other counts) a store can take: a signed 64-bit integer."""

_limits: dict[str, int] = {}


def set_limits(*, max_message_bytes: int | None = None, max_state_bytes: int | None = None) -> None:
    """Change the process-wide size limits (`agnt5.configure` calls this)."""
    for name, value in (("max_message_bytes", max_message_bytes), ("max_state_bytes", max_state_bytes)):
        if value is not None:
            _limits[name] = check_count(value, name, minimum=1)


def max_message_bytes() -> int:
    """`configure(max_message_bytes=)`, else `AGNT5_MAX_MESSAGE_BYTES`, else 4 MiB."""
    return _limit("max_message_bytes", "AGNT5_MAX_MESSAGE_BYTES", DEFAULT_MAX_MESSAGE_BYTES)


def max_state_bytes() -> int:
    """`configure(max_state_bytes=)`, else `AGNT5_MAX_STATE_BYTES`, else 4 MiB."""
    return _limit("max_state_bytes", "AGNT5_MAX_STATE_BYTES", DEFAULT_MAX_STATE_BYTES)


def _limit(name: str, variable: str, default: int) -> int:
    value = _limits.get(name)
    if value is not None:
        return value
    raw = os.environ.get(variable)
    if not raw:
        return default
    try:
        parsed = int(raw)
    except ValueError:
        parsed = 0
    if parsed < 1:
        from agnt5.errors import ConfigurationError

        raise ConfigurationError(f"{variable}={raw!r} is not a positive integer (bytes)")
    return parsed


def reset_limits() -> None:
    """Forget limits set in code (tests)."""
    _limits.clear()


def text_bytes(text: str, where: str) -> int:
    """UTF-8 size of `text`; a lone surrogate (not valid Unicode, unstorable) raises."""
    if text.isascii():
        return len(text)
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise InvalidInputError(
            f"{where}: contains a lone surrogate ({text[exc.start]!r} at index {exc.start}), which is not "
            "valid Unicode and cannot be stored; decode your input with errors='replace' (or fix its source)",
            field=where,
        ) from None


def check_name(value: Any, what: str) -> str:
    """An id, name or key: a non-empty string of valid Unicode without NUL, at most 1 KiB."""
    if not isinstance(value, str):
        raise InvalidTypeError(f"{what} must be a string, got {type(value).__name__}", field=what)
    if not value:
        raise InvalidInputError(f"{what} must be a non-empty string", field=what)
    size = text_bytes(value, what)
    if "\x00" in value:
        raise InvalidInputError(f"{what} must not contain NUL (\\x00), got {value!r}", field=what)
    if size > MAX_NAME_BYTES:
        raise InputTooLargeError(
            f"{what} is {size:,} bytes; ids, names and keys are at most {MAX_NAME_BYTES:,} bytes "
            "(store long text as a value instead)",
            field=what,
            limit=MAX_NAME_BYTES,
            size=size,
        )
    return value


def check_store(store: Any, owner: str) -> None:
    """`store=` is None or an agnt5 store (an object with the Store methods)."""
    if store is not None and not callable(getattr(store, "append_messages", None)):
        raise InvalidTypeError(
            f"{owner} store= must be an agnt5 store (e.g. agnt5.store.url.open_store(url)) or None, "
            f"got {type(store).__name__}",
            field="store",
        )


def check_count(value: Any, what: str, *, minimum: int = 0) -> int:
    """A count such as `limit`: an int from `minimum` to 2**63-1 (bool is refused)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidTypeError(f"{what} must be an integer, got {type(value).__name__}", field=what)
    if value < minimum:
        raise InvalidInputError(f"{what} must be at least {minimum}, got {value}", field=what)
    if value > MAX_COUNT:
        raise InvalidInputError(
            f"{what}={value} is larger than a store can count (at most 2**63-1); pass a smaller number"
            + (" or None for no limit" if what.endswith("limit") else ""),
            field=what,
        )
    return value


def json_size(value: Any, where: str, *, depth: int = 0) -> int:
    """Check that `value` round-trips through JSON and return the UTF-8 bytes of its strings.

    Accepts None, bool, int, finite float, str, lists/tuples and dicts with string keys, nested at
    most MAX_DEPTH deep; raises InvalidTypeError / InvalidInputError naming `where` otherwise.
    """
    if isinstance(value, str):
        return text_bytes(value, where)
    if value is None or isinstance(value, (bool, int)):
        return 8
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidTypeError(
                f"{where}: {value!r} is not JSON serialisable (NaN and infinity are not JSON numbers); "
                "store None or a string instead",
                field=where,
            )
        return 8
    if depth >= MAX_DEPTH:
        raise InputTooLargeError(
            f"{where}: nested more than {MAX_DEPTH} levels deep; flatten the value (store parts under "
            "separate keys)",
            field=where,
            limit=MAX_DEPTH,
            size=depth + 1,
        )
    total = 2
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            total += json_size(item, f"{where}[{i}]", depth=depth + 1) + 1
        return total
    if isinstance(value, Mapping):
        for k, item in value.items():
            if not isinstance(k, str):
                raise InvalidTypeError(
                    f"{where}: dict key {k!r} is a {type(k).__name__}; JSON object keys must be strings",
                    field=where,
                )
            total += text_bytes(k, f"{where} key") + json_size(item, f"{where}[{k!r}]", depth=depth + 1) + 2
        return total
    raise InvalidTypeError(
        f"{where}: value of type {type(value).__name__} is not JSON serialisable (use None, bool, int, "
        "float, str, list or dict)",
        field=where,
    )


def ensure_json(value: Any, where: str, *, limit: int | None = None) -> int:
    """`json_size`, plus the size limit (default: the state-value limit); returns the size."""
    size = json_size(value, where)
    bound = max_state_bytes() if limit is None else limit
    if size > bound:
        raise_too_large(where, size, bound, "max_state_bytes", "AGNT5_MAX_STATE_BYTES")
    return size


def raise_too_large(where: str, size: int, limit: int, setting: str, variable: str) -> None:
    raise InputTooLargeError(
        f"{where} is {size:,} bytes, over the {limit:,}-byte limit; split it, or raise the limit with "
        f"agnt5.configure({setting}=...) or the {variable} environment variable",
        field=where,
        limit=limit,
        size=size,
    )
