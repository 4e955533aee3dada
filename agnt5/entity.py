"""Entity: a durable, named key/value map, consistent under concurrent writers."""

from __future__ import annotations

import asyncio
import inspect
import random
from collections.abc import Awaitable, Callable
from typing import Any

from agnt5.config import default_store
from agnt5.errors import UpdateConflictError
from agnt5.store.base import Store
from agnt5.values import check_name, check_store, ensure_json

_MAX_UPDATE_ATTEMPTS = 10_000


class Entity:
    """A durable key/value map named `name`, in the default store unless `store=` is given.

    Values are JSON: None, bool, int, float, str, lists and dicts with string keys (tuples come
    back as lists), nested at most 64 deep and at most `max_state_bytes` (4 MiB) of text. Anything
    else raises InvalidTypeError / InputTooLargeError naming the key, and nothing is written.
    Names and keys are non-empty strings without NUL, at most 1 KiB.
    """

    def __init__(self, name: str, *, store: Store | None = None) -> None:
        self.name = check_name(name, "Entity name")
        check_store(store, "Entity")
        self._store = store

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = default_store()
        return self._store

    def __repr__(self) -> str:
        return f"Entity({self.name!r})"

    async def get(self, key: str, default: Any = None) -> Any:
        """The value of `key`, or `default` when it is not set."""
        found = await self.store.kv_get(self.name, _key(key))
        return default if found is None else found[0]

    async def set(self, key: str, value: Any) -> None:
        """Store `value` under `key`, durably when this returns."""
        ensure_json(value, f"Entity {self.name!r} key {key!r}")
        await self.store.kv_set(self.name, _key(key), value)

    async def delete(self, key: str) -> bool:
        """Remove `key`; True if it existed."""
        return await self.store.kv_delete(self.name, _key(key))

    async def keys(self) -> list[str]:
        """Every key of this entity, sorted."""
        return await self.store.kv_keys(self.name)

    async def update(
        self, key: str, fn: Callable[[Any], Any] | Callable[[Any], Awaitable[Any]], default: Any = None
    ) -> Any:
        """Atomically replace the value of `key` with `fn(current)` and return the new value.

        Optimistic concurrency: `fn` gets the current value (`default` when unset); the write
        applies only if no other writer changed the key meanwhile, otherwise `fn` runs again on
        the newer value. So no update is lost across tasks or processes, and `fn` should be a
        pure function (it may run more than once). `fn` may be async.
        """
        k = _key(key)
        for attempt in range(_MAX_UPDATE_ATTEMPTS):
            found = await self.store.kv_get(self.name, k)
            current, version = (default, 0) if found is None else found
            new = fn(current)
            if inspect.isawaitable(new):
                new = await new
            ensure_json(new, f"Entity {self.name!r} key {key!r}")
            if await self.store.kv_compare_and_set(self.name, k, new, version):
                return new
            # Lost a race: back off a little (jittered) so contending writers spread out.
            await asyncio.sleep(random.uniform(0, 0.0005 * min(attempt + 1, 20)))
        raise UpdateConflictError(
            f"Entity {self.name!r} key {key!r}: update lost the race to other writers "
            f"{_MAX_UPDATE_ATTEMPTS} times in a row; nothing was written. Retry later, or have fewer "
            "writers update this key at once"
        )


def _key(key: Any) -> str:
    return check_name(key, "Entity key")
