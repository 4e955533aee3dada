"""Fixtures of the inspector's tests: a real headless browser (the system Chromium driven by
Playwright; skipped locally without them, a failure when AGNT5_REQUIRE_BROWSER=1 as in CI) and
the inspector served by uvicorn on a background thread."""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("AGNT5_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
REQUIRE_BROWSER = os.environ.get("AGNT5_REQUIRE_BROWSER", "") not in ("", "0")
SCREENS = Path(__file__).parent / "_screens"


def _browser_problem() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[dev]')"
    if not (os.path.isfile(CHROMIUM) or shutil.which(CHROMIUM)):
        return f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run installs it)"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium per module (Playwright's sync API keeps an event loop running in this
    thread while it is open, which the suite's async tests cannot share)."""
    problem = _browser_problem()
    if problem is not None:
        if REQUIRE_BROWSER:
            pytest.fail(f"AGNT5_REQUIRE_BROWSER=1 but {problem}")
        pytest.skip(problem)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh page; scripts' errors and dialogs are collected (a test asserts there are none)."""
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    p = context.new_page()
    p.errors = []
    p.on("pageerror", lambda e: p.errors.append(str(e)))
    p.on("dialog", lambda d: (p.errors.append(f"dialog: {d.message}"), d.dismiss()))
    yield p
    context.close()


def screenshot(page: Any, name: str) -> Path:
    """Save the page into tests/inspector/_screens/ (git-ignored) and print where."""
    SCREENS.mkdir(exist_ok=True)
    path = SCREENS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path


class LiveServer:
    """`agnt5 inspect`'s app on 127.0.0.1 (a free port), served from a background thread."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.base = ""
        self._server: Any = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    def __enter__(self) -> LiveServer:
        self._thread.start()
        assert self._ready.wait(15), "the inspector did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(15)

    async def _main(self) -> None:
        import uvicorn

        from agnt5.inspect.command import listen
        from agnt5.inspect.server import build_app
        from agnt5.store.url import open_store

        store = open_store(self.url, create=False, read_only=True)
        sock = listen("127.0.0.1", 0)
        self.base = f"http://127.0.0.1:{sock.getsockname()[1]}"
        config = uvicorn.Config(build_app(store), log_level="warning", access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._ready.set()
        try:
            await self._server.serve(sockets=[sock])
        finally:
            await store.close()
