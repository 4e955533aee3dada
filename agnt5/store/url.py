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
            f"invalid SQLite URL {url!r}: use sqlite:///path/to.db, sqlite:////absolute/path.db "
            "or sqlite:///:memory:"
        )
    return url[len(prefix) :]


def open_store(url: str) -> Store:
    """A store for `url`. Opening is lazy: the database is created or migrated on first use."""
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "sqlite":
        from agnt5.store.sqlite import SqliteStore

        return SqliteStore(sqlite_path(url))
    if scheme in ("postgresql", "postgres"):
        from agnt5.store.postgres import PostgresStore

        return PostgresStore(url)
    raise ConfigurationError(
        f"unsupported database URL {mask_password(url)!r}: supported schemes are {', '.join(SCHEMES)} "
        f"(e.g. {DEFAULT_DATABASE_URL})"
    )


_QUERY_PASSWORD = re.compile(r"(?i)([?&](?:ssl)?password=)[^&#]*")


def mask_password(url: str) -> str:
    """`url` with any password replaced by ***, for error messages and logs: the one in the
    user-info part and `password=` / `sslpassword=` query parameters (libpq style)."""
    if "://" not in url:
        return url
    if "@" in url:
        scheme, rest = url.split("://", 1)
        credentials, host = rest.rsplit("@", 1)  # the last @: a raw @ in a password stays masked
        if ":" in credentials:
            credentials = credentials.split(":", 1)[0] + ":***"
        url = f"{scheme}://{credentials}@{host}"
    return _QUERY_PASSWORD.sub(r"\1***", url)
