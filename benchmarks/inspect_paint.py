"""`agnt5 inspect` first paint in a real browser: the session page of a 100,000-message session
and the sessions list over 10,000 sessions (target < 1 s each).

Run: python benchmarks/inspect_paint.py [--rounds 7] [--screenshot docs/inspect_session.png]
Builds a temporary SQLite database (one 100,000-message session written in one append, 10,000
sessions, and with --screenshot also `agnt5 demo`'s sessions), starts `agnt5 inspect` on it as a
subprocess, and opens each page in the system Chromium (Playwright) `--rounds` times, each in a
fresh browser context (no cache). First paint is the page's own clock (performance.now(), from
navigation start) when the timeline's first message, or the list's first row, is in the DOM and
visible. The chart row is when the 100,000-message session's tokens chart is drawn (read from the
whole audit trail: read once, uncached, before the rounds and timed apart; cached afterwards).
--screenshot saves the demo's pruned session, as the README shows it.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from inspector import _data  # noqa: E402
from inspector.conftest import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

from agnt5.store.url import open_store  # noqa: E402

LONG_ID = "long-100k"


async def build(path: Path, demo: bool) -> str | None:
    """The database; returns the demo's backlog session id when the demo was run."""
    url = f"sqlite:///{path}"
    store = open_store(url)
    await _data.write_long_session(store, LONG_ID, 100_000)
    await _data.write_many_sessions(store, str(path), 10_000)
    if not demo:
        return None
    from agnt5.demo.run import DemoOptions, run_demo

    await run_demo(DemoOptions(database_url=url, run_id="readme", out=io.StringIO(), err=io.StringIO()))
    return "demo-readme-backlog"


def serve(url: str) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "agnt5", "inspect", "--database-url", url],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    match = re.search(r"http://\S+", process.stdout.readline())
    if not match:
        process.kill()
        raise SystemExit("agnt5 inspect did not start")
    return process, match.group()


def first_paint(browser: Any, url: str, selector: str) -> float:
    """Milliseconds from navigation start until `selector` is visible, by the page's clock."""
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    page = context.new_page()
    page.goto(url, wait_until="commit")
    handle = page.wait_for_function(
        f"() => {{ const e = document.querySelector({selector!r}); "
        "return e && e.getClientRects().length > 0 && performance.now(); }",
        polling="raf",
        timeout=60_000,
    )
    ms = float(handle.json_value())
    context.close()
    return ms


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--screenshot", type=Path, help="save the demo's pruned session page here (PNG)")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "inspect_bench.db"
        backlog = asyncio.run(build(path, demo=args.screenshot is not None))
        process, base = serve(f"sqlite:///{path}")
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                session_url = f"{base}session?id={LONG_ID}"
                rows = {
                    "session page, 100,000 messages: first messages": (session_url, "#timeline .msg"),
                    "sessions list, 10,000 sessions: first rows": (base, "#sessions tbody tr"),
                    "session page, 100,000 messages: tokens chart": (session_url, "svg.chart"),
                }
                started = time.perf_counter()
                httpx.get(
                    f"{base}api/session/activity", params={"id": LONG_ID}, timeout=120
                ).raise_for_status()
                cold = (time.perf_counter() - started) * 1000
                results: dict[str, list[float]] = {}
                for name, (url, selector) in rows.items():
                    results[name] = [first_paint(browser, url, selector) for _ in range(args.rounds)]
                if args.screenshot is not None and backlog is not None:
                    shoot(browser, f"{base}session?id={backlog}", args.screenshot)
                browser.close()
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(10)
    print(f"\n| page (system Chromium, {args.rounds} rounds) | median | min | max |")
    print("|---|---:|---:|---:|")
    for name, times in results.items():
        print(f"| {name} | {statistics.median(times):.0f} ms | {min(times):.0f} ms | {max(times):.0f} ms |")
    print(f"(the chart's data, the whole 100,000-event audit trail read uncached: {cold:.0f} ms)")


def shoot(browser: Any, url: str, path: Path) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 860}, device_scale_factor=1)
    page = context.new_page()
    page.goto(url)
    page.wait_for_selector("#prune-table .prune-row")
    page.locator("details.call").last.locator("summary").click()
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path))
    context.close()
    print(f"screenshot: {path} ({path.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
