"""Entity: a durable key/value map with an atomic update (on each store: the `store` fixture)."""

from __future__ import annotations

import asyncio
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from conftest import StoreEnv

from agnt5 import Entity
from agnt5.errors import Agnt5Error, UpdateConflictError
from agnt5.store import Store


async def test_get_set_delete_keys(store: Store) -> None:
    e = Entity("profile", store=store)
    assert await e.get("name") is None
    assert await e.get("name", default="anon") == "anon"
    assert await e.keys() == []
    values: dict[str, Any] = {
        "name": "Ada",
        "age": 36,
        "score": 0.5,
        "active": True,
        "nothing": None,
        "tags": ["a", "b"],
        "nested": {"x": {"y": [1, {"z": None}]}},
    }
    for key, value in values.items():
        await e.set(key, value)
    for key, value in values.items():
        assert await e.get(key) == value
    assert await e.get("nothing", default="d") is None  # a stored None is not "missing"
    assert await e.keys() == sorted(values)
    await e.set("name", "Grace")
    assert await e.get("name") == "Grace"
    assert await e.delete("name") is True
    assert await e.delete("name") is False
    assert await e.get("name", "gone") == "gone"
    assert "name" not in await e.keys()


async def test_tuples_come_back_as_lists(store: Store) -> None:
    e = Entity("t", store=store)
    await e.set("pair", (1, 2))
    assert await e.get("pair") == [1, 2]


async def test_entities_are_separate_namespaces(store: Store) -> None:
    a, b = Entity("a", store=store), Entity("b", store=store)
    await a.set("k", 1)
    assert await b.get("k") is None
    assert await b.keys() == []
    assert await Entity("a", store=store).get("k") == 1


async def test_values_persist_across_stores(store_env: StoreEnv, store: Store) -> None:
    await Entity("durable", store=store).set("k", {"v": 1})
    other = store_env.open()
    try:
        assert await Entity("durable", store=other).get("k") == {"v": 1}
    finally:
        await other.close()


async def test_default_store_is_used_without_store_argument(tmp_path: Path) -> None:
    await Entity("defaults").set("k", 7)
    assert (tmp_path / ".agnt5" / "agnt5.db").exists()
    assert await Entity("defaults").get("k") == 7


@pytest.mark.parametrize(
    ("value", "type_name"),
    [
        (object(), "object"),
        ({1, 2}, "set"),
        (b"bytes", "bytes"),
        (date(2024, 1, 1), "date"),
        (Decimal("1.5"), "Decimal"),
        ({"inner": [1, object()]}, "object"),
        (float("nan"), "NaN"),
        ({1: "int key"}, "int"),
    ],
)
async def test_non_json_values_raise_type_error_and_write_nothing(
    store: Store, value: Any, type_name: str
) -> None:
    e = Entity("strict", store=store)
    await e.set("cfg", {"previous": True})
    with pytest.raises(TypeError, match=rf"'cfg'.*{type_name}|{type_name}.*'cfg'"):
        await e.set("cfg", value)
    assert await e.get("cfg") == {"previous": True}
    with pytest.raises(TypeError, match="'fresh'"):
        await e.set("fresh", value)
    assert await e.keys() == ["cfg"]
    with pytest.raises(TypeError, match="'cfg'"):
        await e.update("cfg", lambda _: value)
    assert await e.get("cfg") == {"previous": True}


async def test_bad_names_and_keys(store: Store) -> None:
    with pytest.raises(ValueError):
        Entity("")
    with pytest.raises(ValueError):
        Entity(5)  # type: ignore[arg-type]
    e = Entity("k", store=store)
    for bad in (1, None, ("a",)):
        with pytest.raises(TypeError):
            await e.set(bad, 1)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            await e.get(bad)  # type: ignore[arg-type]
    assert await e.keys() == []


async def test_update_returns_the_new_value(store: Store) -> None:
    e = Entity("u", store=store)
    assert await e.update("n", lambda v: (v or 0) + 1) == 1
    assert await e.update("n", lambda v: v * 10) == 10
    assert await e.update("list", lambda v: [*v, "x"], default=["start"]) == ["start", "x"]
    assert await e.get("list") == ["start", "x"]


async def test_update_accepts_an_async_function(store: Store) -> None:
    e = Entity("async-fn", store=store)
    await e.set("n", 1)

    async def double(v: int) -> int:
        await asyncio.sleep(0.001)
        return v * 2

    assert await e.update("n", double) == 2
    assert await e.get("n") == 2


async def test_update_exception_writes_nothing(store: Store) -> None:
    e = Entity("boom", store=store)
    await e.set("n", 1)

    def fail(_: Any) -> Any:
        raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        await e.update("n", fail)
    assert await e.get("n") == 1


async def test_concurrent_updates_lose_nothing(store: Store) -> None:
    e = Entity("counter", store=store)
    await asyncio.gather(*(e.update("n", lambda v: (v or 0) + 1) for _ in range(200)))
    assert await e.get("n") == 200


async def test_concurrent_async_updates_through_separate_objects_lose_nothing(
    store: Store, store_env: StoreEnv
) -> None:
    other = store_env.open()

    async def slow_increment(v: int | None) -> int:
        await asyncio.sleep(0)  # yield between read and write: other writers get in
        return (v or 0) + 1

    try:
        entities = [Entity("shared", store=store if i % 2 else other) for i in range(20)]
        await asyncio.gather(*(ent.update("n", slow_increment) for ent in entities for _ in range(10)))
        assert await Entity("shared", store=store).get("n") == 200
    finally:
        await other.close()


async def test_update_of_plain_set_values_sees_them(store: Store) -> None:
    e = Entity("mix", store=store)
    await e.set("n", 5)
    await e.update("n", lambda v: v + 1)
    await e.set("n", 100)
    assert await e.update("n", lambda v: v + 1) == 101


async def test_update_that_never_wins_gives_up_with_a_typed_error(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key rewritten by another writer on every attempt: update stops with UpdateConflictError."""
    import agnt5.entity

    monkeypatch.setattr(agnt5.entity, "_MAX_UPDATE_ATTEMPTS", 5)
    entity, rival = Entity("contended", store=store), Entity("contended", store=store)
    await entity.set("n", 0)
    attempts = 0

    async def bump(value: int) -> int:
        nonlocal attempts
        attempts += 1
        await rival.set("n", value + 100)  # another writer gets in first, every time
        return value + 1

    with pytest.raises(UpdateConflictError, match="lost the race") as caught:
        await entity.update("n", bump)
    assert isinstance(caught.value, Agnt5Error)
    assert attempts == 5
    assert await entity.get("n") == 500  # only the rival's writes landed
