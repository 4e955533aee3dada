"""Running the demo: offline replay (default), live, live + record, or authoring from a scripted
provider; then the tour itself, part by part."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from agnt5 import _litellm, config
from agnt5.cli.render import clip
from agnt5.demo import approval, backlog, recall, support
from agnt5.demo.context import APP, EMBEDDING_MODEL, MODEL, Demo
from agnt5.demo.loading import load_litellm
from agnt5.errors import CassetteError, ConfigurationError
from agnt5.providers import profile_for
from agnt5.store.url import mask_credentials, open_store
from agnt5.testing.cassette import CASSETTE_ENV, Cassette

if TYPE_CHECKING:
    import httpx

    from agnt5.session import Session

SHIPPED_CASSETTE = Path(__file__).parent / "cassettes" / "demo.json"
RECORDED_CASSETTE = Path("agnt5-demo-cassette.json")  # --live --record, in the working directory


@dataclass
class DemoOptions:
    """How to run the demo. `upstream` (a scripted provider) authors the cassette instead of the
    network (scripts/author_demo_cassette.py); `run_id` fixes the ids of one run."""

    database_url: str | None = None
    live: bool = False
    record: bool = False
    cassette: str | os.PathLike[str] | None = None  # default: see cassette_path
    upstream: Callable[[httpx.Request], httpx.Response] | None = None
    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)
    run_id: str | None = None


def cassette_path(options: DemoOptions) -> Path:
    """The cassette given, else: replay the shipped one; record into the working directory
    (never into the installed package, which may be read-only or shared)."""
    if options.cassette is not None:
        return Path(options.cassette)
    return RECORDED_CASSETTE if options.live or options.upstream is not None else SHIPPED_CASSETTE


def _cassette(options: DemoOptions) -> Cassette | None:
    path = cassette_path(options)
    if options.upstream is not None:
        return Cassette(path, mode="record", upstream=options.upstream)
    if options.live:
        return Cassette(path, mode="record") if options.record else None
    return Cassette(path, mode="replay")


def _check_options(options: DemoOptions) -> None:
    ambient = os.environ.get(CASSETTE_ENV)
    if ambient:
        raise ConfigurationError(
            f"{CASSETTE_ENV} is set ({ambient}): the demo replays or records its own cassette "
            f"(--cassette) and would mix the two; unset {CASSETTE_ENV} to run it"
        )
    if not options.live:
        if options.record:
            raise ConfigurationError("--record needs --live: cassettes are recorded from the real provider")
        return
    key = _api_key_env()
    if not os.environ.get(key):
        raise ConfigurationError(
            f"agnt5 demo --live calls {MODEL} and {EMBEDDING_MODEL} and needs {key} to be set; "
            "without a key, run `agnt5 demo` (offline, from recorded responses)"
        )


async def run_demo(options: DemoOptions) -> int:
    """Run the whole demo; returns 0. Errors (a missing key or cassette, a cassette mismatch)
    raise, before anything is opened or printed when they can be known up front."""
    _check_options(options)
    _check_cassette(options)
    offline = not options.live
    cassette = _cassette(options)
    store = open_store(options.database_url or config.database_url())
    demo = Demo(store, options.run_id or uuid.uuid4().hex[:8], options.out, options.err, offline)
    network_before = _litellm._network_override  # restored exactly (None defers to the environment)
    if offline and options.upstream is None:
        _litellm.disable_network(True)  # replay only: anything not in the cassette fails loudly
    started = time.perf_counter()
    try:
        _banner(demo, options, cassette, store.url)
        await load_litellm(demo.err)
        if cassette is None:
            await tour(demo)
        else:
            with cassette:
                await tour(demo)
    except (asyncio.CancelledError, KeyboardInterrupt):
        _abandon_calls_in_flight()
        raise
    finally:
        _litellm.disable_network(network_before)
        await store.close()
    elapsed = time.perf_counter() - started
    demo.facts["seconds"] = elapsed
    _footer(demo, cassette, elapsed)
    return 0


def _check_cassette(options: DemoOptions) -> None:
    """A cassette to replay must exist: say so with the CLI's own flags to record one."""
    if options.live or options.upstream is not None:
        return
    path = cassette_path(options)
    if not path.is_file():
        raise CassetteError(
            f"cassette {path} does not exist: check the path, leave out --cassette to replay the "
            f"recorded responses shipped with agnt5, or record this one from the real provider "
            f"with `agnt5 demo --live --record --cassette {path}` (needs {_api_key_env()})"
        )


def _api_key_env() -> str:
    return profile_for(MODEL).api_key_env


def _abandon_calls_in_flight() -> None:
    """After Ctrl-C, provider calls cut short leave coroutines that litellm created on a worker
    thread and nobody will await; Python would warn about each as the process exits."""
    warnings.filterwarnings("ignore", message=r"coroutine '.*' was never awaited", category=RuntimeWarning)


def _banner(demo: Demo, options: DemoOptions, cassette: Cassette | None, url: str) -> None:
    demo.say(f"agnt5 demo (run {demo.run_id}) on {url}")
    if options.upstream is not None:
        demo.say(f"authoring {cassette_path(options)} from a scripted provider")
    elif not options.live and cassette is not None:
        demo.say(f"offline: {MODEL} and {EMBEDDING_MODEL} responses are replayed from {cassette.path}")
        note = _note(cassette.path)
        if note:
            demo.say(f"  ({note})")
    elif cassette is not None:
        demo.say(f"live: calling {MODEL} and {EMBEDDING_MODEL}; recording to {cassette.path}")
    else:
        demo.say(f"live: calling {MODEL} and {EMBEDDING_MODEL}")


def _note(path: Path) -> str | None:
    try:
        note = json.loads(path.read_text()).get("note")
    except (OSError, ValueError):
        return None
    return note if isinstance(note, str) else None


def _footer(demo: Demo, cassette: Cassette | None, elapsed: float) -> None:
    demo.say()
    how = ""
    if cassette is not None and cassette.mode == "replay":
        how = f", {len(cassette.interactions) - len(cassette.unused)} recorded responses replayed"
    elif cassette is not None:
        how = f", {len(cassette.interactions)} exchanges recorded to {cassette.path}"
    demo.say(f"done in {elapsed:.1f}s ({demo.model_calls} chat model calls{how})")
    if cassette is not None and cassette.mode == "record":
        demo.say(f"replay it offline: agnt5 demo --cassette {cassette.path}")
    demo.say("explore what the demo stored:")
    demo.say(f"  agnt5 sessions list --app {APP}")
    demo.say(f"  agnt5 sessions show {demo.session_id('support')}")
    demo.say(f"  agnt5 sessions show {demo.session_id('backlog')} --include-pruned --limit 20")
    demo.say(f"  agnt5 sessions export {demo.session_id('support')} --format jsonl")
    demo.say(f"look at it in a browser: agnt5 inspect --database-url {mask_credentials(demo.store.url)}")


async def tour(demo: Demo) -> None:
    """The demo's parts, in order."""
    memory = recall.customer_memory(demo, demo.memory_service())

    demo.heading(1, "Long-term memory: what the CRM already knows")
    await recall.seed(demo, memory)

    demo.heading(2, "Support conversation: a router hands off to a billing specialist with tools")
    outcome = await support.support_conversation(demo, memory)

    demo.heading(3, "A week later: a new session, memory recalled")
    await recall.follow_up(demo, memory)

    demo.heading(4, "A long session, pruned: keep_important, then summarize_old")
    long_session = await backlog.write_backlog(demo)
    await backlog.prune_backlog(demo, long_session)

    demo.heading(5, "Export")
    await _export(demo, outcome.session, long_session)

    demo.heading(6, "Audit trail")
    await _audit(demo, outcome.session, long_session)

    demo.heading(7, "Human approval: a refund above the limit waits, is approved, and the run resumes")
    await approval.refund_with_approval(demo)


async def _export(demo: Demo, session: Session, long_session: Session) -> None:
    lines = (await session.export(format="jsonl")).splitlines()
    demo.say(f"{session.id} as jsonl ({len(lines)} lines, one per message); the first 3:")
    for line in lines[:3]:
        demo.say(f"  {clip(line, 180)}")
    demo.facts["export_lines"] = len(lines)
    records = [json.loads(line) for line in (await long_session.export(format="jsonl")).splitlines()]
    pruned = sum(1 for r in records if r.get("pruned"))
    demo.say(f'{long_session.id}: {len(records)} lines, {pruned} of them tombstones marked "pruned": true')


async def _audit(demo: Demo, session: Session, long_session: Session) -> None:
    events = await session.events()
    counts = Counter(e.type for e in events)
    demo.say(f"{session.id}: {len(events)} events")
    for kind, n in sorted(counts.items()):
        demo.say(f"  {kind:<22} {n}")
    demo.facts["event_types"] = dict(counts)
    for event in await long_session.events():
        if event.type == "prune":
            data = event.data
            demo.say(
                f"{long_session.id}: prune {data['strategy']} removed seqs {clip(json.dumps(data['removed_seqs']), 60)}"
                f", model {data['model']}, {data['usage']['prompt_tokens']} prompt tokens"
            )
