"""The inspector in a real headless browser (the system Chromium, driven by Playwright): the list
and its filters, the demo's session (tool calls fold, the prune shows, older pages load), a
session followed live while it is written, and hostile content that must stay inert."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from agnt5.session import Session
from agnt5.store.url import open_store
from inspector import _data
from inspector.conftest import LiveServer, screenshot

LIVE_ID = "live-session"


@pytest.fixture(scope="module")
def db_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('inspect_browser') / 'browser.db'}"

    async def build() -> None:
        store = open_store(url)
        await _data.write_demo_backlog(store)
        await _data.write_injected(store)
        await _data.write_filler(store)
        await Session(LIVE_ID, app_name="live_app", store=store).send_message(
            {"role": "user", "content": "first"}
        )
        await store.close()

    _data.run(build())
    return url


@pytest.fixture(scope="module")
def server(db_url: str) -> Iterator[LiveServer]:
    with LiveServer(db_url) as live:
        yield live


def _rows(page: Any) -> int:
    return int(page.locator("#sessions tbody tr").count())


def test_list_filters_and_opens_a_session(page: Any, server: LiveServer) -> None:
    page.goto(server.base + "/")
    page.wait_for_selector("#sessions tbody tr")
    assert _rows(page) == 6
    screenshot(page, "sessions_list")
    page.fill("#f-app", "billing")
    page.click("#f-go")
    page.wait_for_function("() => document.querySelectorAll('#sessions tbody tr').length === 2")
    assert "app=billing" in page.url  # the filter is in the address, to share or reload
    page.fill("#f-q", "BOB")
    page.click("#f-go")
    page.wait_for_function("() => document.querySelectorAll('#sessions tbody tr').length === 1")
    assert page.locator("#sessions tbody tr td").first.inner_text() == "filler-1-billing-bob"
    page.fill("#f-app", "nothing-here")
    page.click("#f-go")
    page.wait_for_selector("#empty")
    page.click("#f-clear")
    page.wait_for_function("() => document.querySelectorAll('#sessions tbody tr').length === 6")
    page.click(f"a.session-link:text-is('{_data.BACKLOG_ID}')")
    page.wait_for_selector("#timeline .msg")
    assert page.locator("#title").inner_text() == _data.BACKLOG_ID
    assert page.errors == []


def test_the_demos_session_folds_tool_calls_and_shows_its_prune(page: Any, server: LiveServer) -> None:
    page.goto(f"{server.base}/session?id={_data.BACKLOG_ID}")
    page.wait_for_selector("#timeline .msg")
    page.wait_for_selector("#prune-table .prune-row")
    assert page.locator("#timeline .msg").first.is_visible()
    # a tool call folded with its result: closed, then open, then closed again
    call = page.locator("details.call").last
    result = call.locator(".result-text")
    assert call.evaluate("d => d.open") is False and not result.is_visible()
    assert "→" in call.locator("summary").inner_text() and "order_id" in call.locator("summary").inner_text()
    call.locator("summary").click()
    assert call.evaluate("d => d.open") is True and result.is_visible()
    assert json.loads(result.inner_text())["status"] == "delivered"
    call.locator("summary").click()
    assert call.evaluate("d => d.open") is False and not result.is_visible()
    # results are inside their calls, not separate messages (a pruned call keeps no tool_calls:
    # its pruned result stands alone)
    assert page.locator("#timeline .msg.tool:not(.pruned)").count() == 0
    # agent attribution, tombstones, the prune in its table and on the chart
    assert "support_assistant" in page.locator("#timeline .msg.assistant .agent").first.inner_text()
    tombstones = page.locator("#timeline .msg.pruned")
    assert tombstones.count() > 0 and "pruned by prune_" in tombstones.first.inner_text()
    activity = page.request.get(f"{server.base}/api/session/activity?id={_data.BACKLOG_ID}").json()
    prune = activity["prunes"][0]
    row = page.locator("#prune-table .prune-row")
    assert row.count() == 1 and "sliding_window" in row.inner_text()
    assert row.locator(".tokens").inner_text() == f"{prune['tokens_before']:,} → {prune['tokens_after']:,}"
    assert page.locator("svg.chart line.prune").count() == 1
    assert page.locator("svg.chart polyline.line").count() == 1
    # tokens per message
    assert page.locator("#timeline .msg .tokens").first.inner_text().endswith(" tok")
    # audit events filtered by type
    page.select_option("#event-type", "prune")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#events li')].every(li => li.dataset.type === 'prune')"
    )
    assert page.locator("#events li").count() == 1
    screenshot(page, "session_backlog")
    # older messages load on demand (the newest 200 are shown first)
    before = page.locator("#timeline .msg").count()
    page.click("#load-older")
    page.wait_for_function(f"() => document.querySelectorAll('#timeline .msg').length > {before}")
    assert page.locator("#timeline .msg").first.get_attribute("data-seq") == "1"
    assert page.locator("#load-older").is_hidden()
    # export buttons download what `agnt5 sessions export` writes
    href = page.locator("#export-jsonl").get_attribute("href")
    exported = page.request.get(server.base + href)
    assert exported.ok and json.loads(exported.text().splitlines()[0])["seq"] == 1
    assert page.errors == []


def _write_later(url: str) -> threading.Thread:
    """Append to the live session from another thread (another writer, as an agent would)."""

    async def write() -> None:
        store = open_store(url)
        session = await Session.get(LIVE_ID, store=store)
        for i in range(1, 4):
            await asyncio.sleep(0.3)
            await session.send_message(
                {"role": "assistant", "content": f"live message {i}"}, metadata={"agent": "writer"}
            )
        call = {
            "id": "call_live",
            "type": "function",
            "function": {"name": "lookup", "arguments": '{"k": 1}'},
        }
        await session.send_message({"role": "assistant", "content": None, "tool_calls": [call]})
        await session.send_message({"role": "tool", "tool_call_id": "call_live", "content": "found it"})
        await session.record_event("checkpoint", {"step": 3})
        await store.close()

    thread = threading.Thread(target=lambda: asyncio.run(write()))
    thread.start()
    return thread


def test_follows_a_session_live(page: Any, server: LiveServer, db_url: str) -> None:
    page.goto(f"{server.base}/session?id={LIVE_ID}")
    page.wait_for_selector("#timeline .msg")
    page.wait_for_selector("#live.on")
    assert page.locator("#timeline .msg").count() == 1
    writer = _write_later(db_url)
    try:
        page.wait_for_selector("#timeline .msg:has-text('live message 3')", timeout=10_000)
        page.wait_for_selector("details.call[data-done='1']", timeout=10_000)
        page.wait_for_selector("#events li[data-type='checkpoint']", timeout=10_000)
    finally:
        writer.join(10)
    texts = page.locator("#timeline .msg .text").all_inner_texts()
    assert texts == ["first", "live message 1", "live message 2", "live message 3"]
    assert page.locator("details.call summary").inner_text().endswith("→ found it")
    page.wait_for_function("() => document.querySelector('[data-key=messages] b').textContent === '6'")
    screenshot(page, "session_live")
    assert page.errors == []


def test_injected_script_does_not_run(page: Any, server: LiveServer) -> None:
    response = page.goto(f"{server.base}/session?id={_data.EVIL_ID.replace('<', '%3C').replace('>', '%3E')}")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    page.wait_for_selector("#timeline .msg")
    page.wait_for_selector("#state table")
    page.wait_for_selector("#events li")
    page.locator("details.call summary").click()
    page.wait_for_timeout(300)
    assert page.evaluate("window.__pwned") is None
    assert page.locator("#timeline img, #state img, #events img, #meta img, #title img").count() == 0
    assert page.locator("#timeline script, #state script, #events script").count() == 0
    first = page.locator("#timeline .msg").first
    assert _data.INJECTED in first.inner_text()  # shown as text
    assert _data.INJECTED in first.locator(".agent").inner_text()
    assert page.locator("#title").inner_text() == _data.EVIL_ID
    assert "window.__pwned=5" in page.locator("details.call .args").inner_text()
    screenshot(page, "session_injected")
    page.goto(server.base + "/?q=evil")
    page.wait_for_selector("#sessions tbody tr")
    assert page.locator("#sessions img").count() == 0 and page.evaluate("window.__pwned") is None
    assert page.errors == []


def test_an_unknown_session_says_so(page: Any, server: LiveServer) -> None:
    page.goto(f"{server.base}/session?id=no-such-session")
    page.wait_for_selector("#timeline .error")
    assert page.locator("#title").inner_text() == "Session not found"
    assert "no session with id 'no-such-session'" in page.locator("#timeline .error").inner_text()


def test_a_paused_run_shows_its_waiting_call_until_it_is_approved(
    page: Any, server: LiveServer, db_url: str
) -> None:
    call_id = _data.run(_with_store(db_url, _data.write_paused))
    page.goto(f"{server.base}/session?id={_data.PAUSED_ID}")
    page.wait_for_selector("#approvals:not([hidden]) .pending")
    row = page.locator(f"#approvals .pending[data-call='{call_id}']")
    assert row.locator("b").inner_text() == "refund"
    assert '"order":"o-<b>1</b>"' in row.locator("code").inner_text()  # arguments shown as text
    assert "billing" in row.inner_text()
    screenshot(page, "session_pending_approval")

    async def approve(store: Any) -> None:
        agent = _data.refund_agent([])
        await agent.run(None, session=Session(_data.PAUSED_ID, store=store), approvals={call_id: True})

    _data.run(_with_store(db_url, approve))
    page.wait_for_selector("#approvals[hidden]", state="attached", timeout=10_000)
    page.wait_for_selector("#timeline .msg:has-text('Done: refunded 250')", timeout=10_000)
    assert page.errors == []


async def _with_store(url: str, fn: Any) -> Any:
    store = open_store(url)
    try:
        return await fn(store)
    finally:
        await store.close()
