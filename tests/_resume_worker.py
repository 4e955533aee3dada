"""An agent run with side-effecting tools, in processes of its own, for the kill-and-resume tests.

`python tests/_resume_worker.py` serves jobs (see `serve`): each runs the agent on a new session
in a forked child, which is SIGKILLed at the given moment, and the session is then resumed in
another child, which runs the agent on it again. Every tool appends `{"call": id, "tool": name}`
to the job's log, flushed and fsynced, before returning: the side-effect log the test compares
with the stored history.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from typing import Any

from agnt5 import Agent, RunContext, Session, tool
from agnt5 import journal as journal_module
from agnt5.errors import StepInProgressError
from agnt5.store.sqlite import SqliteStore
from agnt5.store.url import open_store
from agnt5.testing.function_model import FunctionModel

INPUT = "Process order o7."
LOG = ""


def _effect(ctx: RunContext[Any], name: str) -> None:
    with open(LOG, "a", encoding="utf-8") as f:
        f.write(json.dumps({"call": ctx.tool_call_id, "tool": name}) + "\n")
        f.flush()
        os.fsync(f.fileno())


@tool
async def charge(ctx: RunContext[Any], order: str, amount: int) -> str:
    """Charge the customer (not safe to repeat)."""
    await asyncio.sleep(0.004)
    _effect(ctx, "charge")
    return f"charged {amount} for {order}"


@tool(idempotent=True)
async def lookup(ctx: RunContext[Any], order: str) -> str:
    """Read the order (safe to repeat)."""
    await asyncio.sleep(0.002)
    _effect(ctx, "lookup")
    return f"{order}: 2 items"


@tool
async def ship(ctx: RunContext[Any], order: str) -> str:
    """Ship the order (not safe to repeat)."""
    await asyncio.sleep(0.006)
    _effect(ctx, "ship")
    return f"shipped {order}"


@tool
def email(ctx: RunContext[Any], to: str) -> str:
    """Email the customer (not safe to repeat)."""
    time.sleep(0.002)
    _effect(ctx, "email")
    return f"emailed {to}"


def script(messages: list[dict[str, Any]], info: Any) -> Any:
    """Three tool turns (parallel calls in two of them), then an answer quoting the results."""
    turns = sum(1 for m in messages if m.get("role") == "assistant" and m.get("tool_calls"))
    call = FunctionModel.tool_call
    if turns == 0:
        return [call("charge", {"order": "o7", "amount": 30}), call("lookup", {"order": "o7"})]
    if turns == 1:
        return [call("ship", {"order": "o7"}), call("email", {"to": "ana@example.com"})]
    if turns == 2:
        return call("lookup", {"order": "o7"})
    results = [str(m.get("content")) for m in messages if m.get("role") == "tool"]
    return "done: " + " | ".join(results)


def agent() -> Agent[None, str]:
    return Agent("orders", model=FunctionModel(script), tools=[charge, lookup, ship, email])


async def run_job(db: str, session_id: str, mode: str, ready: int | None = None) -> tuple[str | None, int]:
    """`start`: signal `ready` (a pipe) and run the agent on a new session; `resume`: finish what
    the session holds (with the input if it was never stored), waiting out the lease of a killed
    run's step; returns the final answer and how many times it had to wait."""
    store = open_store(db) if "://" in db else SqliteStore(db)
    try:
        session = Session(session_id, store=store)
        if mode == "start":
            if ready is not None:
                os.write(ready, b"R")
            return (await agent().run(INPUT, session=session)).output, 0
        waits = 0
        while True:
            history = await session.history()
            last = history[-1] if history else None
            if last is not None and last["role"] == "assistant" and not last.get("tool_calls"):
                return str(last["content"]), waits  # the run had finished before it was killed
            try:
                return (await agent().run(None if history else INPUT, session=session)).output, waits
            except StepInProgressError as busy:  # the killed run's lease has not expired yet
                waits += 1
                await asyncio.sleep(max(0.0, busy.lease_until - time.time()) + 0.01)
    finally:
        await store.close()


def _child(job: Any, write: int) -> None:
    """In a forked child: run the job, report the answer on `write`, and leave at once."""
    global LOG
    LOG = job["log"]
    try:
        answer, waits = asyncio.run(
            run_job(job["db"], job["sid"], job["mode"], write if job["mode"] == "start" else None)
        )
        os.write(write, json.dumps({"answer": answer, "waits": waits}).encode())
        code = 0
    except BaseException as exc:  # reported to the parent, which fails the test
        os.write(write, json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode())
        code = 1
    os._exit(code)


def _fork(job: Any) -> tuple[int, int]:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        _child(job, write)
    os.close(write)
    return pid, read


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks)


def _wait_for_effects(log: str, count: int, pid: int) -> None:
    """Until `log` holds `count` side effects (or the child ended, or 10 s passed)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with open(log, encoding="utf-8") as f:
                if sum(1 for _ in f) >= count:
                    return
        except FileNotFoundError:
            pass
        if os.waitpid(pid, os.WNOHANG) != (0, 0):
            return
        time.sleep(0.0003)


def serve() -> None:
    """Jobs as JSON lines on stdin, answers as JSON lines on stdout. Each job runs in a child
    forked from this warmed-up process (cheap); a `start` job with `kill_after` is SIGKILLed that
    many seconds after it signalled ready (or after its `on_effect`-th tool side effect), and its
    session then resumed in a second child."""
    journal_module.LEASE_SECONDS = 0.2  # a killed run's steps are resumable 0.2 s after it last renewed
    asyncio.run(agent().run("warm up"))  # imports and first-use costs paid once, before forking
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        job = json.loads(line)
        pid, read = _fork({**job, "mode": "start"})
        assert os.read(read, 1) == b"R"
        started = time.perf_counter()
        kill_after = job.get("kill_after")
        if kill_after is None:
            first = json.loads(_read_all(read) or b"{}")
            os.waitpid(pid, 0)
            print(json.dumps({**first, "ran_for": time.perf_counter() - started}), flush=True)
            continue
        if "on_effect" in job:  # right after the `on_effect`-th tool side effect: mid-step
            _wait_for_effects(job["log"], int(job["on_effect"]), pid)
        time.sleep(kill_after)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(read)
        pid, read = _fork({**job, "mode": "resume"})
        second = json.loads(_read_all(read) or b"{}")
        os.waitpid(pid, 0)
        print(json.dumps(second), flush=True)


if __name__ == "__main__":
    serve()
