"""Long-term memory: Memory over VectorMemoryService (respx-mocked OpenAI embeddings) and keywords.

The tests that take `store` (or `service`) run on both stores (tests/conftest.py).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from _memory_fakes import DIM, EMBEDDINGS_URL, MODEL, FakeEmbeddings, embeddings_body, fake_vector
from _mocks import fixture_json, sleeps
from conftest import StoreEnv

import agnt5
from agnt5 import InMemoryMemoryService, Memory, MemoryResult, VectorMemoryService, memory_tools
from agnt5.errors import (
    AuthenticationError,
    EmbeddingError,
    MemoryError_,
    MemoryTypeError,
    MemoryValidationError,
    ProviderError,
)
from agnt5.memory import MemoryNamespace, MemoryRecord
from agnt5.store import Store
from agnt5.store.sqlite import SqliteStore

TESTS = Path(__file__).parent
__all__ = ["sleeps"]  # fixture re-exported for pytest


@pytest.fixture
def fake() -> Iterator[FakeEmbeddings]:
    """Every embedding request answered by a FakeEmbeddings (plain respx, OpenAI wire format)."""
    embeddings = FakeEmbeddings()
    with respx.mock(assert_all_called=False) as router:
        router.post(EMBEDDINGS_URL).mock(side_effect=embeddings)
        yield embeddings


@pytest.fixture
def service(store: Store) -> VectorMemoryService:
    return VectorMemoryService(store=store)


def memory(service: Any, user_id: str | None = "user-456", app_name: str | None = "clinic") -> Memory:
    return Memory(service=service, user_id=user_id, app_name=app_name)


# --- wire format ---------------------------------------------------------------------------------


@respx.mock
async def test_plain_respx_intercepts_litellm_embedding_call() -> None:
    from agnt5 import _litellm

    body = embeddings_body([[0.1, 0.2, 0.3]])
    route = respx.post(EMBEDDINGS_URL).mock(return_value=httpx.Response(200, json=body))
    response = await _litellm.aembedding(model=MODEL, input=["hello"])
    assert route.call_count == 1
    sent = json.loads(route.calls[0].request.content)
    assert sent["model"] == MODEL and sent["input"] == ["hello"]
    assert route.calls[0].request.headers["authorization"].startswith("Bearer ")
    assert response.data[0]["embedding"] == [0.1, 0.2, 0.3]


async def test_spec_example_store_and_search(fake: FakeEmbeddings, service: VectorMemoryService) -> None:
    mem = Memory(service=service)
    await mem.store("patient_history", "Chronic migraines, diagnosed 2020")
    await mem.store("medication_allergies", "Penicillin, Sulfa drugs", {"source": "intake"})
    results = await mem.search("Is the patient allergic to penicillin or sulfa drugs?", limit=5)
    assert [r.key for r in results] == ["medication_allergies", "patient_history"]
    best = results[0]
    assert isinstance(best, MemoryResult)
    assert best.content == "Penicillin, Sulfa drugs"
    assert best.metadata == {"source": "intake"}
    assert 0 < best.score <= 1 and results[1].score < best.score
    expected = _cosine(
        fake_vector("Is the patient allergic to penicillin or sulfa drugs?"), fake_vector(best.content)
    )
    assert best.score == pytest.approx(expected, abs=1e-5)
    assert fake.bodies[0]["model"] == MODEL


async def test_get_list_and_records(fake: FakeEmbeddings, service: VectorMemoryService) -> None:
    mem = memory(service)
    await mem.store("b", "second fact")
    await mem.store("a", "first fact", {"n": 1})
    record = await mem.get("a")
    assert isinstance(record, MemoryRecord)
    assert (record.key, record.content, record.metadata) == ("a", "first fact", {"n": 1})
    assert record.created_at.tzinfo is not None and record.updated_at >= record.created_at
    assert await mem.get("missing") is None
    assert [r.key for r in await mem.list()] == ["a", "b"]


async def test_search_limit_and_empty_namespace(fake: FakeEmbeddings, service: VectorMemoryService) -> None:
    mem = memory(service)
    assert await mem.search("anything") == []
    assert fake.calls == []  # an empty namespace needs no query embedding
    await mem.store_many({f"k{i}": f"fact number {i} about apples" for i in range(8)})
    assert len(await mem.search("apples", limit=3)) == 3
    assert len(await mem.search("apples")) == 5
    assert len(await mem.search("apples", limit=100)) == 8
    calls = len(fake.calls)
    assert await mem.search("apples", limit=0) == []
    assert len(fake.calls) == calls


# --- replacement, deletion -------------------------------------------------------------------------


async def test_same_key_replaces(fake: FakeEmbeddings, service: VectorMemoryService) -> None:
    mem = memory(service)
    await mem.store("language", "The user prefers Python", {"v": 1})
    created = (await mem.get("language")).created_at  # type: ignore[union-attr]
    await mem.store("language", "The user prefers Rust", {"v": 2})
    records = await mem.list()
    assert len(records) == 1
    assert (records[0].content, records[0].metadata) == ("The user prefers Rust", {"v": 2})
    assert records[0].created_at == created and records[0].updated_at >= created
    results = await mem.search("Rust")
    assert [(r.key, r.content) for r in results] == [("language", "The user prefers Rust")]
    assert results[0].score == pytest.approx(
        _cosine(fake_vector("Rust"), fake_vector("The user prefers Rust"))
    )


async def test_delete_and_clear(fake: FakeEmbeddings, service: VectorMemoryService) -> None:
    mem = memory(service)
    await mem.store_many({"a": "alpha apples", "b": "beta apples", "c": "gamma apples"})
    assert {r.key for r in await mem.search("apples")} == {"a", "b", "c"}  # index cached
    assert await mem.delete("b") is True
    assert await mem.delete("b") is False
    assert await mem.get("b") is None
    assert {r.key for r in await mem.search("apples")} == {"a", "c"}
    assert [r.key for r in await mem.list()] == ["a", "c"]
    assert await mem.clear() == 2
    assert await mem.list() == [] and await mem.search("apples") == []


async def test_cached_index_follows_local_writes(fake: FakeEmbeddings, service: VectorMemoryService) -> None:
    mem = memory(service)
    await mem.store("one", "red apples")
    assert [r.key for r in await mem.search("apples")] == ["one"]
    await mem.store("two", "green apples and pears")
    await mem.store("one", "bananas only")
    keys = [r.key for r in await mem.search("pears")]
    assert keys[0] == "two"
    assert next(r.key for r in await mem.search("bananas")) == "one"
    fresh = VectorMemoryService(store=service.store)  # no cache: loads from the store
    assert next(r.key for r in await Memory(fresh, "user-456", "clinic").search("pears")) == "two"


# --- isolation -------------------------------------------------------------------------------------


async def test_users_and_apps_are_isolated(fake: FakeEmbeddings, service: VectorMemoryService) -> None:
    alice = memory(service, user_id="alice")
    bob = memory(service, user_id="bob")
    other_app = memory(service, user_id="alice", app_name="other")
    shared = memory(service, user_id=None)
    await alice.store("secret", "Alice is allergic to peanuts")
    await bob.store("note", "Bob likes hiking")
    await other_app.store("secret", "Alice in another app likes peanuts")
    await shared.store("faq", "Peanuts are legumes")

    for mem, visible in [(alice, {"secret"}), (bob, {"note"}), (other_app, {"secret"}), (shared, {"faq"})]:
        found = await mem.search("peanuts allergic hiking legumes", limit=10)
        assert {r.key for r in found} == visible
    assert (await alice.get("secret")).content == "Alice is allergic to peanuts"  # type: ignore[union-attr]
    assert (await other_app.get("secret")).content == "Alice in another app likes peanuts"  # type: ignore[union-attr]
    assert await bob.get("secret") is None
    assert await bob.delete("secret") is False
    assert await alice.get("secret") is not None
    assert [r.key for r in await bob.list()] == ["note"]


def test_namespace_keys_are_unambiguous() -> None:
    keys = {
        MemoryNamespace(None, None).key,
        MemoryNamespace("a", None).key,
        MemoryNamespace(None, "a").key,
        MemoryNamespace("a,b", "c").key,
        MemoryNamespace("a", "b,c").key,
        MemoryNamespace("null", None).key,
    }
    assert len(keys) == 6


async def test_for_user_scopes_to_another_user(fake: FakeEmbeddings, service: VectorMemoryService) -> None:
    base = memory(service, user_id=None)
    await base.for_user("u1").store("k", "u1 fact")
    assert await base.get("k") is None
    assert (await base.for_user("u1").get("k")).content == "u1 fact"  # type: ignore[union-attr]


# --- no re-embedding, batching ---------------------------------------------------------------------


async def test_unchanged_content_is_not_embedded_again(
    fake: FakeEmbeddings, service: VectorMemoryService
) -> None:
    mem = memory(service)
    await mem.store("k", "The user lives in Lisbon")
    assert len(fake.calls) == 1
    await mem.store("k", "The user lives in Lisbon")
    await mem.store("k", "The user lives in Lisbon", {"confidence": "high"})
    assert len(fake.calls) == 1
    assert (await mem.get("k")).metadata == {"confidence": "high"}  # type: ignore[union-attr]
    # Another service object (another process, say) also reuses the stored vector.
    other = Memory(VectorMemoryService(store=service.store), "user-456", "clinic")
    await other.store("k", "The user lives in Lisbon")
    assert len(fake.calls) == 1
    await mem.store("k", "The user lives in Porto")
    assert fake.calls[-1] == ["The user lives in Porto"]
    assert [r.content for r in await mem.search("Porto")] == ["The user lives in Porto"]
    # The same content under a new key is a new memory: it is embedded.
    await mem.store("k2", "The user lives in Porto")
    assert len(fake.calls) == 4  # Porto, search query, k2


async def test_store_many_is_batched(fake: FakeEmbeddings, store: Store) -> None:
    service = VectorMemoryService(store=store, batch_size=100)
    mem = memory(service)
    items = [(f"k{i}", f"fact {i}", {"i": i}) for i in range(250)]
    items.append(("dup", "fact 7", None))  # same content as k7: embedded once
    await mem.store_many(items)
    assert sorted(len(c) for c in fake.calls) == [50, 100, 100]
    assert len(fake.inputs) == len(set(fake.inputs)) == 250
    assert len(await mem.list()) == 251
    assert (await mem.get("k42")).metadata == {"i": 42}  # type: ignore[union-attr]
    await mem.store_many(items)  # nothing changed: no embedding at all
    assert len(fake.calls) == 3
    await mem.store_many([])
    assert len(fake.calls) == 3


async def test_store_many_last_value_of_a_key_wins(
    fake: FakeEmbeddings, service: VectorMemoryService
) -> None:
    mem = memory(service)
    await mem.store_many([("k", "first"), ("k", "second")])
    assert (await mem.get("k")).content == "second"  # type: ignore[union-attr]
    assert fake.inputs == ["second"]


async def test_dimensions_are_sent_and_enforced(fake: FakeEmbeddings, store: Store) -> None:
    service = VectorMemoryService(store=store, dimensions=64)
    mem = memory(service)
    await mem.store("k", "sixty four dims")
    assert fake.bodies[0]["dimensions"] == 64
    assert (await mem.search("sixty four"))[0].key == "k"


async def test_default_model_from_environment(
    fake: FakeEmbeddings, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGNT5_EMBEDDING_MODEL", "text-embedding-3-large")
    fake.dim = 3072
    service = VectorMemoryService(store=store)
    assert service.embedding_model == "text-embedding-3-large"
    await memory(service).store("k", "large model")
    assert fake.bodies[0]["model"] == "text-embedding-3-large"
    monkeypatch.delenv("AGNT5_EMBEDDING_MODEL")
    assert VectorMemoryService(store=store).embedding_model == "text-embedding-3-small"


async def test_changing_model_reembeds_on_next_search(fake: FakeEmbeddings, store: Store) -> None:
    old = memory(VectorMemoryService(store=store, dimensions=32))
    await old.store_many({"a": "apples and pears", "b": "cars and trucks"})
    new = memory(VectorMemoryService(store=store, dimensions=48))
    results = await new.search("trucks")
    assert results[0].key == "b"
    assert sorted(fake.calls[-2]) == ["apples and pears", "cars and trucks"]  # re-embedded once
    assert fake.bodies[-2]["dimensions"] == 48
    calls = len(fake.calls)
    await new.search("apples")
    assert len(fake.calls) == calls + 1  # only the query


async def test_default_service_uses_default_store(fake: FakeEmbeddings, tmp_path: Path) -> None:
    agnt5.configure(database_url=f"sqlite:///{tmp_path / 'configured.db'}")
    mem = Memory(user_id="u")
    assert isinstance(mem.service, VectorMemoryService)
    await mem.store("k", "stored in the configured database")
    check = SqliteStore(str(tmp_path / "configured.db"))
    try:
        assert [r.key for r in await check.memory_list(mem.namespace.key)] == ["k"]
    finally:
        await check.close()


# --- bad input -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "field", "is_type_error"),
    [
        (("k", ""), "content", False),
        (("k", "   \n"), "content", False),
        (("k", 42), "content", True),
        (("k", None), "content", True),
        (("k", b"bytes"), "content", True),
        (("k", ["a", "list"]), "content", True),
        (("", "content"), "key", False),
        ((" ", "content"), "key", False),
        ((7, "content"), "key", True),
        (("k", "content", "not a dict"), "metadata", True),
        (("k", "content", {"when": object()}), "metadata", True),
        (("k", "content", {1: "non-string key"}), "metadata", True),
        (("k", "content", {"x": math.nan}), "metadata", True),
    ],
)
async def test_bad_store_input_is_refused(
    fake: FakeEmbeddings, service: VectorMemoryService, args: tuple[Any, ...], field: str, is_type_error: bool
) -> None:
    mem = memory(service)
    with pytest.raises(MemoryValidationError) as info:
        await mem.store(*args)
    assert info.value.field == field
    assert isinstance(info.value, ValueError) and isinstance(info.value, MemoryError_)
    assert isinstance(info.value, TypeError) is is_type_error
    assert field in str(info.value)
    assert fake.calls == [] and await mem.list() == []


async def test_bad_store_many_input_stores_nothing(
    fake: FakeEmbeddings, service: VectorMemoryService
) -> None:
    mem = memory(service)
    with pytest.raises(MemoryValidationError, match="content"):
        await mem.store_many([("ok", "fine"), ("bad", "")])
    with pytest.raises(MemoryTypeError, match=r"items\[1\]"):
        await mem.store_many([("ok", "fine"), "not a tuple"])  # type: ignore[list-item]
    assert fake.calls == [] and await mem.list() == []


@pytest.mark.parametrize(
    ("query", "limit", "field"),
    [("", 5, "query"), ("  ", 5, "query"), (None, 5, "query"), ("q", -1, "limit"), ("q", "3", "limit"),
     ("q", 2.5, "limit"), ("q", True, "limit"), ("q", None, "limit")],
)  # fmt: skip
async def test_bad_search_input_is_refused(
    fake: FakeEmbeddings, service: VectorMemoryService, query: Any, limit: Any, field: str
) -> None:
    mem = memory(service)
    await mem.store("k", "something")
    with pytest.raises(MemoryValidationError) as info:
        await mem.search(query, limit)
    assert info.value.field == field


async def test_bad_get_delete_keys(fake: FakeEmbeddings, service: VectorMemoryService) -> None:
    mem = memory(service)
    with pytest.raises(MemoryValidationError):
        await mem.get("")
    with pytest.raises(MemoryTypeError):
        await mem.delete(None)  # type: ignore[arg-type]


def test_bad_constructor_arguments() -> None:
    with pytest.raises(MemoryValidationError, match="user_id"):
        Memory(InMemoryMemoryService(), user_id="")
    with pytest.raises(MemoryTypeError, match="app_name"):
        Memory(InMemoryMemoryService(), app_name=3)  # type: ignore[arg-type]
    with pytest.raises(MemoryTypeError, match="service"):
        Memory(service="vector")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="dimensions"):
        VectorMemoryService(dimensions=0)
    with pytest.raises(ValueError, match="batch_size"):
        VectorMemoryService(batch_size=0)


# --- provider errors and bad vectors ---------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::UserWarning")  # litellm's pydantic models warn on non-floats
@pytest.mark.parametrize(
    ("transform", "match"),
    [
        (lambda vs: [v[:100] for v in vs], "100 dimensions, expected 1536"),
        (lambda vs: [[*v, 0.5] for v in vs], "1537 dimensions, expected 1536"),
        (lambda vs: [], "returned 0 vectors for 1 inputs"),
        (lambda vs: [*vs, vs[0]], "returned 2 vectors for 1 inputs"),
        (lambda vs: [[1e39] * len(v) for v in vs], "NaN or infinity"),  # overflows float32
        (lambda vs: [["x"] * len(v) for v in vs], "not a list of numbers"),
    ],
)
async def test_unusable_vectors_raise_embedding_error(
    fake: FakeEmbeddings, service: VectorMemoryService, transform: Any, match: str
) -> None:
    mem = memory(service)
    await mem.store("kept", "an earlier memory")
    fake.transform = transform
    with pytest.raises(EmbeddingError, match=match) as info:
        await mem.store("kept", "a replacement that must not land")
    assert info.value.cause is None and "unchanged" in str(info.value)
    records = await mem.list()
    assert [(r.key, r.content) for r in records] == [("kept", "an earlier memory")]
    fake.transform = None
    assert (await mem.search("earlier memory"))[0].content == "an earlier memory"


async def test_wrong_size_within_a_batch(fake: FakeEmbeddings, service: VectorMemoryService) -> None:
    mem = memory(service)
    fake.transform = lambda vs: [vs[0], vs[1][:10]]
    with pytest.raises(EmbeddingError, match="different sizes"):
        await mem.store_many({"a": "one", "b": "two"})
    assert await mem.list() == []  # not even the first, well-sized one
    fake.transform = None
    await mem.store_many({"a": "one", "b": "two"})
    # A later bad batch that would replace one memory and add another changes nothing either.
    fake.transform = lambda vs: [vs[0], vs[1][:10]]
    with pytest.raises(EmbeddingError):
        await mem.store_many({"a": "replaced", "c": "three"})
    assert sorted((r.key, r.content) for r in await mem.list()) == [("a", "one"), ("b", "two")]
    fake.transform = None
    assert (await mem.search("one"))[0].content == "one"


async def test_unknown_model_size_is_learned_then_enforced(fake: FakeEmbeddings, store: Store) -> None:
    fake.dim = 12
    with respx.mock(assert_all_called=False) as router:
        router.post("https://example.test/v1/embeddings").mock(side_effect=fake)
        service = VectorMemoryService("openai/my-embedder", store=store, api_base="https://example.test/v1")
        mem = memory(service)
        await mem.store("a", "first")
        fake.dim = 13
        with pytest.raises(EmbeddingError, match="13 dimensions, expected 12"):
            await mem.store("b", "second")
        assert [r.key for r in await mem.list()] == ["a"]


async def test_server_error_is_typed_and_memories_intact(store: Store, sleeps: list[float]) -> None:
    fake = FakeEmbeddings()
    mem = memory(VectorMemoryService(store=store))
    with respx.mock:
        route = respx.post(EMBEDDINGS_URL).mock(side_effect=fake)
        await mem.store("k", "original content")
        route.mock(return_value=httpx.Response(500, json=fixture_json("openai/error_500.json")))
        with pytest.raises(EmbeddingError) as info:
            await mem.store("k", "new content")
        assert route.call_count == 1 + 3  # first store, then the call and its two retries
    error = info.value
    assert isinstance(error.cause, ProviderError) and error.status_code == 500
    assert error.model == MODEL and "unchanged" in str(error)
    assert len(sleeps) == 2
    assert [(r.key, r.content) for r in await mem.list()] == [("k", "original content")]


async def test_authentication_error_is_not_retried(store: Store, sleeps: list[float]) -> None:
    mem = memory(VectorMemoryService(store=store))
    with respx.mock:
        route = respx.post(EMBEDDINGS_URL).mock(
            return_value=httpx.Response(401, json=fixture_json("openai/error_401.json"))
        )
        with pytest.raises(EmbeddingError) as info:
            await mem.store("k", "content")
        assert route.call_count == 1
    assert isinstance(info.value.cause, AuthenticationError) and info.value.status_code == 401
    assert sleeps == []
    assert await mem.list() == []


async def test_search_embedding_error_is_typed(fake: FakeEmbeddings, service: VectorMemoryService) -> None:
    mem = memory(service)
    await mem.store("k", "content")
    fake.transform = lambda vs: [v[:3] for v in vs]
    with pytest.raises(EmbeddingError, match="3 dimensions"):
        await mem.search("a new query")


async def test_unmocked_call_fails_offline(service: VectorMemoryService) -> None:
    with pytest.raises(EmbeddingError) as info:
        await memory(service).store("k", "content")
    assert type(info.value.cause).__name__ == "NetworkDisabledError"


# --- persistence across processes ------------------------------------------------------------------


_CHILD = textwrap.dedent(
    """
    import asyncio, json, sys
    sys.path.insert(0, {tests!r})
    import respx
    from _memory_fakes import EMBEDDINGS_URL, FakeEmbeddings
    from agnt5 import Memory, VectorMemoryService
    from agnt5.store.url import open_store

    async def main():
        fake = FakeEmbeddings()
        store = open_store({db!r})
        mem = Memory(service=VectorMemoryService(store=store), user_id="u1", app_name="app")
        with respx.mock:
            respx.post(EMBEDDINGS_URL).mock(side_effect=fake)
            {body}
        await store.close()
        print(json.dumps({{"calls": len(fake.calls), "out": out}}))

    asyncio.run(main())
    """
)


def run_child(db: str, *lines: str) -> dict[str, Any]:
    """Run `lines` (which set `out`) in a fresh interpreter on the database URL `db`, with mocked embeddings."""
    code = _CHILD.format(tests=str(TESTS), db=db, body="\n        ".join(lines))
    env = {**os.environ, "AGNT5_DISABLE_NETWORK": "1"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


async def test_memories_persist_across_processes(fake: FakeEmbeddings, store_env: StoreEnv) -> None:
    child = run_child(
        store_env.url,
        "await mem.store_many({'city': 'The user lives in Lisbon', 'pet': 'The user has a cat named Miso'})",
        "out = None",
    )
    assert child["calls"] == 1
    store = store_env.open()
    try:
        mem = Memory(service=VectorMemoryService(store=store), user_id="u1", app_name="app")
        assert [r.key for r in await mem.list()] == ["city", "pet"]
        results = await mem.search("what is the cat called")
        assert results[0].key == "pet"
        assert fake.inputs == ["what is the cat called"]  # vectors came from the database

        # Our index is now cached; another process writes and deletes: the next search sees it.
        child = run_child(
            store_env.url,
            "await mem.store('job', 'The user works as a nurse')",
            "await mem.delete('pet')",
            "out = [r.key for r in await mem.search('nurse job')]",
        )
        assert child["out"][0] == "job"
        keys = [r.key for r in await mem.search("what is the cat called", limit=10)]
        assert sorted(keys) == ["city", "job"]
        # Unchanged content stored again here reuses the vector the other process made.
        await mem.store("city", "The user lives in Lisbon", {"checked": True})
        assert fake.calls == [["what is the cat called"]]  # only the query (embedded once, then cached)
    finally:
        await store.close()


def test_import_agnt5_and_memory_do_not_load_litellm() -> None:
    code = (
        "import sys, agnt5\n"
        "agnt5.Memory(agnt5.InMemoryMemoryService())\n"
        "agnt5.VectorMemoryService\n"
        "assert 'litellm' not in sys.modules, 'litellm imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


# --- keyword service -------------------------------------------------------------------------------


async def test_in_memory_service_keyword_search() -> None:
    service = InMemoryMemoryService()
    mem = memory(service)
    await mem.store("patient_history", "Chronic migraines, diagnosed 2020")
    await mem.store("medication_allergies", "Penicillin, Sulfa drugs", {"source": "intake"})
    await mem.store("diet", "Vegetarian; no drugs needed for diet")
    results = await mem.search("penicillin drugs")
    assert [r.key for r in results] == ["medication_allergies", "diet"]
    assert results[0].score == 1.0 and results[1].score == 0.5
    assert results[0].metadata == {"source": "intake"}
    assert [r.key for r in await mem.search("medication")] == ["medication_allergies"]  # key words count
    assert await mem.search("unrelated words") == []
    assert await mem.search("!!!") == []


async def test_in_memory_service_replace_delete_isolate() -> None:
    service = InMemoryMemoryService()
    alice, bob = memory(service, "alice"), memory(service, "bob")
    await alice.store("k", "old apples")
    created = (await alice.get("k")).created_at  # type: ignore[union-attr]
    await alice.store("k", "new pears", {"v": 2})
    assert [(r.key, r.content) for r in await alice.list()] == [("k", "new pears")]
    assert (await alice.get("k")).created_at == created  # type: ignore[union-attr]
    assert await alice.search("apples") == []
    assert await bob.search("pears") == [] and await bob.get("k") is None
    await bob.store_many({"x": "pears", "y": "plums"})
    assert await bob.delete("x") is True and await bob.delete("x") is False
    assert [r.key for r in await bob.list()] == ["y"]
    assert await alice.clear() == 1 and await alice.list() == []
    assert [r.key for r in await bob.list()] == ["y"]
    with pytest.raises(MemoryValidationError):
        await alice.store("k", "")


# --- agent tools -----------------------------------------------------------------------------------


async def test_memory_tools_remember_and_recall(fake: FakeEmbeddings, service: VectorMemoryService) -> None:
    mem = memory(service)
    remember, recall = memory_tools(mem)
    assert (remember.name, recall.name) == ("remember", "recall")
    assert remember.parameters["required"] == ["key", "content"]
    assert "key" in remember.parameters["properties"] and "long-term memory" in remember.description
    assert recall.parameters["properties"]["limit"]["maximum"] == 50
    assert recall.parameters["required"] == ["query"]

    result = await remember.invoke(json.dumps({"key": "city", "content": "The user lives in Lisbon"}))
    assert not result.is_error and "city" in result.content
    await remember.invoke({"key": "pet", "content": "The user has a cat"})
    found = await recall.invoke(json.dumps({"query": "where does the user live", "limit": 1}))
    assert not found.is_error
    hits = json.loads(found.content)
    assert [h["key"] for h in hits] == ["city"]
    assert set(hits[0]) == {"key", "content", "score", "metadata"}

    bad = await remember.invoke({"key": "x", "content": ""})
    assert bad.is_error and "content" in bad.content
    bad = await recall.invoke({"query": "x", "limit": 0})
    assert bad.is_error and "limit" in bad.content
    assert [r.key for r in await mem.list()] == ["city", "pet"]


async def test_memory_tools_over_keyword_service() -> None:
    remember, recall = memory_tools(Memory(InMemoryMemoryService(), user_id="u"))
    await remember.invoke({"key": "tea", "content": "prefers green tea"})
    hits = json.loads((await recall.invoke({"query": "tea"})).content)
    assert hits[0]["content"] == "prefers green tea"


def _cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


assert DIM == 1536
