"""Loading litellm (several seconds on a cold start) with progress on stderr, so the demo is never
silent while it waits; the import runs on a daemon thread so Ctrl-C is not held up by it."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import TextIO

from agnt5 import _litellm

LABEL = "loading litellm, the model library (a few seconds, once per process)"
TICK = 0.25
"""Seconds between redraws of the elapsed time on a terminal."""


async def load_litellm(err: TextIO) -> None:
    """Import litellm now, showing `LABEL` and the elapsed seconds (redrawn in place on a
    terminal; one line when done otherwise). Nothing is shown when it is already loaded."""
    if _litellm.is_loaded():
        return
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def load() -> None:
        try:
            _litellm.get_litellm()
        except BaseException as exc:  # delivered to the awaiting demo
            loop.call_soon_threadsafe(_settle, done, exc)
        else:
            loop.call_soon_threadsafe(_settle, done, None)

    tty = bool(getattr(err, "isatty", lambda: False)())
    started = time.perf_counter()
    err.write(f"  {LABEL}...")
    err.flush()
    threading.Thread(target=load, name="agnt5-load-litellm", daemon=True).start()
    try:
        while not done.done():
            await asyncio.wait({done}, timeout=TICK)
            if tty and not done.done():
                err.write(f"\r  {LABEL}... {time.perf_counter() - started:.1f}s")
                err.flush()
    except asyncio.CancelledError:  # Ctrl-C: end the line, so "interrupted" gets its own
        err.write("\n")
        err.flush()
        raise
    prefix = f"\r  {LABEL}..." if tty else ""
    err.write(f"{prefix} done in {time.perf_counter() - started:.1f}s\n")
    err.flush()
    done.result()


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():  # the demo was interrupted meanwhile
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(None)
