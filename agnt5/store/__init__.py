"""Storage backends behind one protocol; `open_store(url)` picks one from a database URL."""

from agnt5.store.base import Event, SessionHeader, Store
from agnt5.store.url import DEFAULT_DATABASE_URL, open_store

__all__ = ["DEFAULT_DATABASE_URL", "Event", "SessionHeader", "Store", "open_store"]
