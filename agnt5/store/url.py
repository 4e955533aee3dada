"""Database URLs: `sqlite:///relative.db`, `sqlite:////absolute.db`, `sqlite:///:memory:`, and
`postgresql://user:password@host:port/database` (also `postgres://`; needs `agnt5[postgres]`)."""

from __future__ import annotations

import re

from agnt5.errors import ConfigurationError
from agnt5.store.base import Store

DEFAULT_DATABASE_URL = "sqlite:///.agnt5/agnt5.db"
SCHEMES = ("sqlite", "postgresql", "postgres")


def sqlite_path(url: str) -> str:
    """The file path of a `sqlite:///` URL (relative to the working directory unless it has 4 slashes)."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or len(url) == len(prefix):
        raise ConfigurationError(
            f"invalid SQLite URL {mask_password(url)!r}: use sqlite:///path/to.db, sqlite:////absolute/path.db "
            "or sqlite:///:memory:"
        )
    return url[len(prefix) :]


def open_store(url: str, *, create: bool = True, read_only: bool = False) -> Store:
    """A store for `url`. Opening is lazy: the database is created or migrated on first use.

    For SQLite files, `create=False` refuses a missing file (DatabaseNotFoundError, nothing is
    created) and `read_only=True` also opens it read-only (writes raise ReadOnlyStoreError). On
    PostgreSQL `read_only=True` makes every transaction read-only and refuses a database without
    agnt5's tables (DatabaseNotFoundError) instead of creating them.
    """
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "sqlite":
        from agnt5.store.sqlite import SqliteStore

        path = sqlite_path(url)
        if path == ":memory:":  # a private, empty database: nothing to find or protect
            return SqliteStore(path)
        return SqliteStore(path, create=create, read_only=read_only)
    if scheme in ("postgresql", "postgres"):
        from agnt5.store.postgres import PostgresStore

        return PostgresStore(url, read_only=read_only)
    if "=" in url and "://" not in url:
        raise ConfigurationError(
            f"unsupported database URL {mask_password(url)!r}: key=value connection strings are not "
            "supported; use postgresql://user:password@host:port/database (or sqlite:///path.db)"
        )
    raise ConfigurationError(
        f"unsupported database URL {mask_password(url)!r}: supported schemes are {', '.join(SCHEMES)} "
        f"(e.g. {DEFAULT_DATABASE_URL})"
    )


_SECRET_KEYS = r"(?:ssl)?password"
_URL = re.compile(r"(?i)\b[a-z][a-z0-9+.-]*://\S*")
# `?password=...` / `&sslpassword=...` in a URL's query string (up to the next & or #).
_QUERY_SECRET = re.compile(rf"(?i)([?&;]{_SECRET_KEYS}=)[^&#\s]*")
# `password=...` in a libpq key=value DSN: spaces around =, 'quoted values', \' escapes (also as
# repr() doubles them); an unterminated quote masks to the end.
_DSN_SECRET = re.compile(
    rf"(?i)(?<![\w?&;])({_SECRET_KEYS}\s*=\s*)(?:'(?:[^'\\]|\\+.)*'?|(?:[^\s'\"\\]|\\+.)+)"
)


def mask_password(text: str) -> str:
    """`text` (a database URL or DSN, or a message or log line holding one) with every password
    replaced by ***: URL user-info (`scheme://user:***@host`, also when the raw password holds @,
    / or ?), `password=` / `sslpassword=` query parameters, and libpq `key=value` DSNs (quoted
    values and escapes included). Errs on the side of masking more than the password."""
    if _URL.match(text):  # a URL given whole: even a raw space in its password stays masked
        text = _mask_userinfo(text)
    else:
        text = _URL.sub(lambda m: _mask_userinfo(m.group()), text)
    text = _QUERY_SECRET.sub(r"\1***", text)
    return _DSN_SECRET.sub(r"\1***", text)


mask_credentials = mask_password
"""The same masking, named for what it does to a whole message or log line."""


def _mask_userinfo(url: str) -> str:
    """One URL: its user-info ends at the last @ (a raw @, / or ? in a password stays masked)."""
    scheme, rest = url.split("://", 1)
    if "@" not in rest:
        return url
    at = rest.rindex("@")
    credentials = rest[:at]
    if ":" not in credentials:
        return url
    return f"{scheme}://{credentials.split(':', 1)[0]}:***{rest[at:]}"
