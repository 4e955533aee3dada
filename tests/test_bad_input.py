"""Every public entry point, given bad input, raises an agnt5 error (and the builtin it replaces).

`CASES` is the walk: each case is one call with one bad argument. Each must raise an `Agnt5Error`
within a few seconds (never hang, never an untyped error) and store nothing; the store keeps
working afterwards. Input errors are also `ValueError` (type errors also `TypeError`), so code
written against the builtins still catches them.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import agnt5
from agnt5 import (
    Agent,
    Entity,
    Guardrail,
    LanguageModel,
    Memory,
    Session,
    UsageLimits,
    count_tokens,
    to_provider_messages,
    tool,
)
from agnt5.errors import Agnt5Error, InputTooLargeError, InvalidInputError, InvalidTypeError
from agnt5.memory_keyword import InMemoryMemoryService
from agnt5.store import Store
from agnt5.testing import FunctionModel

SURROGATE = "x\ud800"
DEEP: Any = []
for _ in range(5000):
    DEEP = [DEEP]


def _deep_dict(n: int) -> Any:
    value: Any = 1
    for _ in range(n):
        value = {"k": value}
    return value


Case = tuple[str, Callable[[Store], Any]]


def _session(store: Store, **kwargs: Any) -> Session:
    return Session(id="bad-input", user_id="u", app_name="app", store=store, **kwargs)


def _agent(instructions: str = "") -> Agent[None, str]:
    return Agent("a", instructions=instructions, model=FunctionModel(lambda messages, info: "hi"))


async def _pop_immutable(store: Store) -> Any:
    session = Session(id="immutable", retention={"immutable": True}, store=store)
    await session.send_message(_msg("kept"))
    return await session.pop()


def _msg(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


CASES: list[Case] = [
    # Session construction
    ("Session(id='')", lambda s: Session(id="", store=s)),
    ("Session(id=123)", lambda s: Session(id=123, store=s)),  # type: ignore[arg-type]
    ("Session(id=surrogate)", lambda s: Session(id=SURROGATE, store=s)),
    ("Session(id with NUL)", lambda s: Session(id="a\x00b", store=s)),
    ("Session(id 2 KB)", lambda s: Session(id="x" * 2048, store=s)),
    ("Session(app_name=surrogate)", lambda s: Session(id="a", app_name=SURROGATE, store=s)),
    ("Session(user_id=surrogate)", lambda s: Session(id="a", user_id=SURROGATE, store=s)),
    ("Session(user_id='')", lambda s: Session(id="a", user_id="", store=s)),
    ("Session(metadata=list)", lambda s: Session(id="a", metadata=[1], store=s)),  # type: ignore[arg-type]
    ("Session(metadata=NaN)", lambda s: Session(id="a", metadata={"x": math.nan}, store=s)),
    ("Session(metadata=surrogate)", lambda s: Session(id="a", metadata={"x": SURROGATE}, store=s)),
    ("Session(metadata=deep)", lambda s: Session(id="a", metadata={"x": DEEP}, store=s)),
    ("Session(retention=bad key)", lambda s: Session(id="a", retention={"nope": 1}, store=s)),
    ("Session(retention ttl=-1)", lambda s: Session(id="a", retention={"ttl_days": -1}, store=s)),
    ("Session(retention ttl=1e308)", lambda s: Session(id="a", retention={"ttl_days": 1e308}, store=s)),
    (
        "Session(retention max_messages=10**30)",
        lambda s: Session(id="a", retention={"max_messages": 10**30}, store=s),
    ),
    (
        "Session(retention keep_last_huge)",
        lambda s: Session(id="a", retention={"prune_strategy": "keep_last_99999999999999999999"}, store=s),
    ),
    ("Session(store=5)", lambda s: Session(id="a", store=5)),  # type: ignore[arg-type]
    ("Entity(store='x')", lambda s: Entity("e", store="sqlite://")),  # type: ignore[arg-type]
    # messages
    ("send_message(surrogate content)", lambda s: _session(s).send_message(_msg(SURROGATE))),
    ("send_message(surrogate metadata)", lambda s: _session(s).send_message(_msg("x"), {"k": SURROGATE})),
    ("send_message(surrogate metadata key)", lambda s: _session(s).send_message(_msg("x"), {SURROGATE: 1})),
    ("send_message(surrogate name)", lambda s: _session(s).send_message({**_msg("x"), "name": SURROGATE})),
    ("send_message(deep metadata)", lambda s: _session(s).send_message(_msg("x"), {"k": DEEP})),
    ("send_message(deep part)", lambda s: _session(s).send_message(_msg([{"type": "x", "d": DEEP}]))),
    ("send_message(NaN metadata)", lambda s: _session(s).send_message(_msg("x"), {"k": math.inf})),
    ("send_message(set metadata)", lambda s: _session(s).send_message(_msg("x"), {"k": {1}})),
    ("send_message(str)", lambda s: _session(s).send_message("hello")),  # type: ignore[arg-type]
    ("send_message(None)", lambda s: _session(s).send_message(None)),  # type: ignore[arg-type]
    ("send_message(role)", lambda s: _session(s).send_message({"role": "robot", "content": "x"})),
    ("send_message(int content)", lambda s: _session(s).send_message(_msg(5))),
    ("send_message(5 MB)", lambda s: _session(s).send_message(_msg("a" * (5 * 1024 * 1024)))),
    ("send_messages(dict)", lambda s: _session(s).send_messages(_msg("x"))),  # type: ignore[arg-type]
    ("send_messages(str)", lambda s: _session(s).send_messages("hello")),  # type: ignore[arg-type]
    ("send_messages([str])", lambda s: _session(s).send_messages(["hello"])),  # type: ignore[list-item]
    ("send_messages(one bad)", lambda s: _session(s).send_messages([_msg("a"), _msg(SURROGATE)])),
    # history and events
    ("history(limit=-1)", lambda s: _session(s).history(limit=-1)),
    ("history(limit=2**63)", lambda s: _session(s).history(limit=2**63)),
    ("history(limit='5')", lambda s: _session(s).history(limit="5")),  # type: ignore[arg-type]
    ("history(limit=1.5)", lambda s: _session(s).history(limit=1.5)),  # type: ignore[arg-type]
    ("events(limit=10**20)", lambda s: _session(s).events(limit=10**20)),
    ("events(limit=-3)", lambda s: _session(s).events(limit=-3)),
    ("events(since='garbage')", lambda s: _session(s).events(since="garbage")),
    ("events(since=5)", lambda s: _session(s).events(since=5)),  # type: ignore[arg-type]
    ("export(format='xml')", lambda s: _session(s).export(format="xml")),
    ("export(format=None)", lambda s: _session(s).export(format=None)),  # type: ignore[arg-type]
    ("record_event('')", lambda s: _session(s).record_event("")),
    ("record_event(data=NaN)", lambda s: _session(s).record_event("x", {"v": math.nan})),
    ("record_event(data=deep)", lambda s: _session(s).record_event("x", {"v": DEEP})),
    ("Session.list(limit=0)", lambda s: Session.list(limit=0, store=s)),
    ("Session.list(limit=2**64)", lambda s: Session.list(limit=2**64, store=s)),
    ("Session.list(cursor=garbage)", lambda s: Session.list(cursor="garbage!", store=s)),
    ("Session.get(missing)", lambda s: Session.get("no-such-session", store=s)),
    ("Session.get('')", lambda s: Session.get("", store=s)),
    # state
    ("set_state(None, 1)", lambda s: _session(s).set_state(None, 1)),  # type: ignore[arg-type]
    ("set_state('', 1)", lambda s: _session(s).set_state("", 1)),
    ("set_state(key surrogate)", lambda s: _session(s).set_state(SURROGATE, 1)),
    ("set_state(value surrogate)", lambda s: _session(s).set_state("k", SURROGATE)),
    ("set_state(user value surrogate)", lambda s: _session(s).set_state("k", [SURROGATE], scope="user")),
    ("set_state(NaN)", lambda s: _session(s).set_state("k", math.nan)),
    ("set_state(object)", lambda s: _session(s).set_state("k", object())),
    ("set_state(deep 5000)", lambda s: _session(s).set_state("k", DEEP)),
    ("set_state(deep dict)", lambda s: _session(s).set_state("k", _deep_dict(100))),
    ("set_state(5 MB)", lambda s: _session(s).set_state("k", "a" * (5 * 1024 * 1024))),
    ("set_state(scope='global')", lambda s: _session(s).set_state("k", 1, scope="global")),  # type: ignore[arg-type]
    ("set_state(user, no user_id)", lambda s: Session(id="n", store=s).set_state("k", 1, scope="user")),
    ("get_state(None)", lambda s: _session(s).get_state(None)),  # type: ignore[arg-type]
    ("get_state(scope=bad)", lambda s: _session(s).get_state("k", scope="bad")),  # type: ignore[arg-type]
    ("state(scope=bad)", lambda s: _session(s).state("bad")),  # type: ignore[arg-type]
    ("delete_state(5)", lambda s: _session(s).delete_state(5)),  # type: ignore[arg-type]
    # pruning
    ("prune('nope')", lambda s: _session(s).prune("nope")),
    ("prune('keep_last_0')", lambda s: _session(s).prune("keep_last_0")),
    ("prune(keep_last_huge)", lambda s: _session(s).prune("keep_last_99999999999999999999999")),
    ("prune(window_size=10**30)", lambda s: _session(s).prune("sliding_window", window_size=10**30)),
    ("prune(window_size=-1)", lambda s: _session(s).prune("sliding_window", window_size=-1)),
    ("prune(max_tokens=-5)", lambda s: _session(s).prune("keep_last_5", max_tokens=-5)),
    ("prune(unknown param)", lambda s: _session(s).prune("keep_last_5", bogus=1)),
    ("prune(strategy=5)", lambda s: _session(s).prune(5)),  # type: ignore[arg-type]
    # Entity
    ("Entity('')", lambda s: Entity("", store=s)),
    ("Entity(None)", lambda s: Entity(None, store=s)),  # type: ignore[arg-type]
    ("Entity(surrogate)", lambda s: Entity(SURROGATE, store=s)),
    ("Entity.set(key=3)", lambda s: Entity("e", store=s).set(3, 1)),  # type: ignore[arg-type]
    ("Entity.set(key='')", lambda s: Entity("e", store=s).set("", 1)),
    ("Entity.set(deep)", lambda s: Entity("e", store=s).set("k", DEEP)),
    ("Entity.set(NaN)", lambda s: Entity("e", store=s).set("k", math.nan)),
    ("Entity.set(surrogate)", lambda s: Entity("e", store=s).set("k", {"a": SURROGATE})),
    ("Entity.set(bytes)", lambda s: Entity("e", store=s).set("k", b"x")),
    ("Entity.set(5 MB)", lambda s: Entity("e", store=s).set("k", "a" * (5 * 1024 * 1024))),
    ("Entity.get(key=None)", lambda s: Entity("e", store=s).get(None)),  # type: ignore[arg-type]
    ("Entity.delete(key=1)", lambda s: Entity("e", store=s).delete(1)),  # type: ignore[arg-type]
    ("Entity.update(fn -> NaN)", lambda s: Entity("e", store=s).update("k", lambda v: math.nan)),
    ("Entity.update(fn -> deep)", lambda s: Entity("e", store=s).update("k", lambda v: DEEP)),
    # Memory
    ("Memory.store(key='')", lambda s: Memory(InMemoryMemoryService()).store("", "x")),
    ("Memory.store(content=5)", lambda s: Memory(InMemoryMemoryService()).store("k", 5)),  # type: ignore[arg-type]
    ("Memory.store(content surrogate)", lambda s: Memory(InMemoryMemoryService()).store("k", SURROGATE)),
    (
        "Memory.store(metadata NaN)",
        lambda s: Memory(InMemoryMemoryService()).store("k", "x", {"a": math.nan}),
    ),
    ("Memory.store(metadata deep)", lambda s: Memory(InMemoryMemoryService()).store("k", "x", {"a": DEEP})),
    ("Memory.search(limit=-1)", lambda s: Memory(InMemoryMemoryService()).search("q", limit=-1)),
    ("Memory.search(limit=2**64)", lambda s: Memory(InMemoryMemoryService()).search("q", limit=2**64)),
    ("Memory(user_id=surrogate)", lambda s: Memory(InMemoryMemoryService(), user_id=SURROGATE)),
    # agents, tools, models
    ("Agent(name='bad name')", lambda s: Agent("bad name")),
    ("Agent(max_turns=0)", lambda s: Agent("a", max_turns=0)),
    ("Agent(output_type=int)", lambda s: Agent("a", output_type=int)),  # type: ignore[arg-type]
    ("Agent.run(input=5)", lambda s: Agent("a").run(5)),  # type: ignore[arg-type]
    ("Agent.run([str])", lambda s: Agent("a").run(["hi"])),  # type: ignore[list-item]
    ("tool(non-callable)", lambda s: tool(5)),  # type: ignore[call-overload]
    ("Agent(instructions=5)", lambda s: Agent("a", instructions=5)),  # type: ignore[arg-type]
    ("Agent(hooks=5)", lambda s: Agent("a", hooks=5)),  # type: ignore[arg-type]
    ("Agent(handoffs=[5])", lambda s: Agent("a", handoffs=[5])),  # type: ignore[list-item]
    ("Agent(session=5)", lambda s: Agent("a", session=5)),  # type: ignore[arg-type]
    ("Agent(input_guardrails=[5])", lambda s: Agent("a", input_guardrails=[5])),  # type: ignore[list-item]
    ("Guardrail(5)", lambda s: Guardrail(5)),  # type: ignore[arg-type]
    ("UsageLimits(requests=-1)", lambda s: UsageLimits(requests=-1)),
    ("UsageLimits(cost='x')", lambda s: UsageLimits(cost="x")),  # type: ignore[arg-type]
    ("run(usage_limits='x')", lambda s: _agent().run("x", usage_limits="x")),  # type: ignore[arg-type]
    ("run(hooks=5)", lambda s: _agent().run("x", hooks=5)),  # type: ignore[arg-type]
    ("run(session=5)", lambda s: _agent().run("x", session=5)),  # type: ignore[arg-type]
    ("run(missing state key)", lambda s: _agent("Topic: {topic}").run("x", session=_session(s))),
    ("FunctionModel(5)", lambda s: FunctionModel(5)),  # type: ignore[arg-type]
    ("override(model=5)", lambda s: _agent().override(model=5).__enter__()),  # type: ignore[arg-type]
    ("pop() on immutable", lambda s: _pop_immutable(s)),
    ("rewind(to=5)", lambda s: _session(s).rewind(5)),  # type: ignore[arg-type]
    ("rewind(to=unknown id)", lambda s: _session(s).rewind("msg_nope")),
    ("LanguageModel(model=5)", lambda s: LanguageModel(5)),  # type: ignore[arg-type]
    # module functions
    ("to_provider_messages('hello')", lambda s: to_provider_messages("hello")),
    ("count_tokens('hello')", lambda s: count_tokens("hello")),  # type: ignore[arg-type]
    ("purge_expired(now='x')", lambda s: agnt5.purge_expired(store=s, now="x")),  # type: ignore[arg-type]
    ("configure(both)", lambda s: agnt5.configure(database_url="sqlite:///:memory:", store=s)),
    ("configure(bad url)", lambda s: agnt5.configure(database_url="mysql://x")),
]


async def _call(fn: Callable[[Store], Any], store: Store) -> Any:
    value = fn(store)
    if isinstance(value, Awaitable):
        return await value
    return value


@pytest.mark.parametrize(("name", "fn"), CASES, ids=[c[0] for c in CASES])
async def test_bad_input_raises_an_agnt5_error(store: Store, name: str, fn: Callable[[Store], Any]) -> None:
    with pytest.raises(Agnt5Error) as caught:
        await asyncio.wait_for(_call(fn, store), timeout=30)
    error = caught.value
    assert str(error), f"{name}: empty error message"
    if isinstance(error, InvalidInputError):
        assert isinstance(error, ValueError)
    if isinstance(error, InvalidTypeError):
        assert isinstance(error, TypeError)
    # nothing half written, and the store still works
    session = Session(id="bad-input", store=store)
    assert [m["content"] for m in await session.history()] == []
    await session.send_message(_msg("still works"))
    assert [m["content"] for m in await session.history()] == ["still works"]


def test_input_errors_are_also_the_builtins() -> None:
    assert issubclass(InvalidInputError, ValueError)
    assert issubclass(InvalidTypeError, TypeError) and issubclass(InvalidTypeError, ValueError)
    assert issubclass(InputTooLargeError, InvalidInputError)
    with pytest.raises(TypeError):
        Session(id=5)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Session(id="")


async def test_size_errors_name_the_limit_and_how_to_raise_it(store: Store) -> None:
    session = _session(store)
    with pytest.raises(InputTooLargeError) as caught:
        await session.send_message(_msg("a" * (5 * 1024 * 1024)))
    assert caught.value.limit == 4 * 1024 * 1024
    assert "max_message_bytes" in str(caught.value) and "AGNT5_MAX_MESSAGE_BYTES" in str(caught.value)
    agnt5.configure(max_message_bytes=6 * 1024 * 1024)
    try:
        stored = await session.send_message(_msg("a" * (5 * 1024 * 1024)))
        assert stored.tokens > 600_000
    finally:
        agnt5.configure(max_message_bytes=4 * 1024 * 1024)
    with pytest.raises(InputTooLargeError) as deep:
        session.set_state("k", DEEP)
    assert deep.value.limit == 64 and "nested" in str(deep.value)


async def test_huge_messages_keep_the_event_loop_free(store: Store) -> None:
    """Counting a 4 MB run of one character takes a while; the loop keeps serving other tasks."""
    session = _session(store)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    started = asyncio.get_running_loop().time()
    await session.send_message(_msg("a" * (4 * 1024 * 1024 - 16)))
    elapsed = asyncio.get_running_loop().time() - started
    task.cancel()
    # the loop ran the ticker throughout (at least a third of the 10 ms slots)
    assert ticks >= max(1, int(elapsed / 0.01 / 3)), (ticks, elapsed)
