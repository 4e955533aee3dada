"""Database URLs: `sqlite:///relative.db`, `sqlite:////absolute.db`, `sqlite:///:memory:`, and
`postgresql://user:password@host:port/database` (also `postgres://`; needs `agnt5[postgres]`)."""

from __future__ import annotations

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


def mask_password(url: str) -> str:
    """`url` with any password replaced by ***, for error messages and logs."""
    if "://" not in url or "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    credentials, host = rest.rsplit("@", 1)
    if ":" in credentials:
        credentials = credentials.split(":", 1)[0] + ":***"
    return f"{scheme}://{credentials}@{host}"
