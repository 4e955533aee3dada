"""The inspector's HTTP API, endpoint by endpoint (httpx against the ASGI app, in-process):
pages, JSON, errors (404 / 400 / 405 / 401), paging of 10,000 sessions and 100,000 messages,
the token when served remotely, and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import StoreEnv

from agnt5.inspect import data
from agnt5.inspect.server import CSP, TOKEN_COOKIE, build_app
from agnt5.session import Session
from agnt5.store.base import Event
from agnt5.store.url import open_store
from inspector import _data

BASE = "http://127.0.0.1"
SESSION_ENDPOINTS = [
    "session",
    "session/messages",
    "session/events",
    "session/activity",
    "session/poll",
    "session/export",
]


@pytest.fixture(scope="module")
def small_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The demo's pruned backlog, a hostile session and a few small ones."""
    url = f"sqlite:///{tmp_path_factory.mktemp('inspect_http') / 'small.db'}"

    async def build() -> None:
        store = open_store(url)
        await _data.write_demo_backlog(store)
        await _data.write_injected(store)
        await _data.write_filler(store)
        await store.close()

    _data.run(build())
    return url


@pytest.fixture(scope="module")
def big_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """10,000 sessions and one of 100,000 messages (built once for the module)."""
    path = tmp_path_factory.mktemp("inspect_big") / "big.db"
    url = f"sqlite:///{path}"

    async def build() -> None:
        store = open_store(url)
        await _data.write_long_session(store, "long-100k", 100_000)
        await _data.write_many_sessions(store, str(path), 10_000)

    _data.run(build())
    return url


async def _client(url: str, **options: Any) -> AsyncIterator[httpx.AsyncClient]:
    store = open_store(url, create=False, read_only=url.startswith("sqlite"))
    app = build_app(store, **options)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        yield client
    await store.close()


@pytest.fixture
async def small(small_db: str) -> AsyncIterator[httpx.AsyncClient]:
    async for client in _client(small_db):
        yield client


@pytest.fixture
async def big(big_db: str) -> AsyncIterator[httpx.AsyncClient]:
    async for client in _client(big_db):
        yield client


async def _json(client: httpx.AsyncClient, path: str, status: int = 200, **params: Any) -> Any:
    response = await client.get(path, params=params)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    return response.json()


async def test_pages_and_static_files_carry_a_strict_content_security_policy(
    small: httpx.AsyncClient,
) -> None:
    for path in ["/", "/session?id=x", "/static/app.css", "/static/session.js", "/api/info"]:
        response = await small.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-security-policy"] == CSP
        assert "script-src 'self'" in CSP and "unsafe-inline" not in CSP
        assert response.headers["x-content-type-options"] == "nosniff"
    page = (await small.get("/session")).text
    assert 'id="approvals" hidden' in page  # the place left for pending approvals
    assert "<script>" not in page.replace("<script src=", "")  # no inline script


async def test_info_says_read_only(small: httpx.AsyncClient, small_db: str) -> None:
    info = await _json(small, "/api/info")
    assert info == {"store": small_db, "read_only": True}


async def test_sessions_list_filters_and_pages(small: httpx.AsyncClient) -> None:
    everything = await _json(small, "/api/sessions")
    ids = [s["id"] for s in everything["sessions"]]
    assert len(ids) == 5 and everything["next_cursor"] is None
    updated = [s["updated_at"] for s in everything["sessions"]]
    assert updated == sorted(updated, reverse=True)  # newest first
    backlog = next(s for s in everything["sessions"] if s["id"] == _data.BACKLOG_ID)
    assert backlog["messages"] == 61 and backlog["tokens"] > 0
    billing = await _json(small, "/api/sessions", app="billing")
    assert sorted(s["user_id"] for s in billing["sessions"]) == ["alice", "bob"]
    alice = await _json(small, "/api/sessions", user="alice")
    assert {s["app_name"] for s in alice["sessions"]} == {"billing", "search"}
    text = await _json(small, "/api/sessions", q="T1")  # metadata {"tag": "t1"}, case-insensitive
    assert [s["id"] for s in text["sessions"]] == ["filler-1-billing-bob"]
    first = await _json(small, "/api/sessions", limit=2)
    second = await _json(small, "/api/sessions", limit=2, cursor=first["next_cursor"])
    third = await _json(small, "/api/sessions", limit=2, cursor=second["next_cursor"])
    assert [s["id"] for s in first["sessions"] + second["sessions"] + third["sessions"]] == ids
    assert third["next_cursor"] is None


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/api/sessions", {"limit": "0"}, "limit"),
        ("/api/sessions", {"limit": "abc"}, "limit"),
        ("/api/sessions", {"limit": "501"}, "limit"),
        ("/api/sessions", {"cursor": "not-a-cursor"}, "cursor"),
        ("/api/session", {"id": _data.BACKLOG_ID, "limit": "-1"}, "limit"),
        ("/api/session/messages", {"id": _data.BACKLOG_ID, "before": "x"}, "before"),
        ("/api/session/messages", {"id": _data.BACKLOG_ID, "before": "0"}, "before"),
        ("/api/session/messages", {"id": _data.BACKLOG_ID, "before": "5", "after": "1"}, "before"),
        ("/api/session/events", {"id": _data.BACKLOG_ID, "limit": "1001"}, "limit"),
        ("/api/session/poll", {"id": _data.BACKLOG_ID, "after_event": "-1"}, "after_event"),
        ("/api/session/export", {"id": _data.BACKLOG_ID, "format": "xml"}, "format"),
        ("/api/session", {}, "id"),
    ],
)
async def test_bad_parameters_are_400_json(
    small: httpx.AsyncClient, path: str, params: dict[str, str], field: str
) -> None:
    body = await _json(small, path, 400, **params)
    assert body["status"] == 400 and (field in body["error"] or "cursor" in body["error"])


@pytest.mark.parametrize("endpoint", SESSION_ENDPOINTS)
async def test_an_unknown_session_is_404_json(small: httpx.AsyncClient, endpoint: str) -> None:
    body = await _json(small, f"/api/{endpoint}", 404, id="no-such-session")
    assert "no session with id 'no-such-session'" in body["error"]


async def test_unknown_endpoints_and_writes_are_refused(small: httpx.AsyncClient) -> None:
    assert (await _json(small, "/api/nope", 404))["error"] == "no such endpoint: /api/nope"
    for method in ["POST", "PUT", "DELETE", "PATCH"]:
        response = await small.request(method, "/api/session", params={"id": _data.BACKLOG_ID})
        assert response.status_code == 405 and "read-only" in response.json()["error"]


async def test_a_foreign_host_header_is_refused_on_loopback(small: httpx.AsyncClient) -> None:
    response = await small.get("/api/info", headers={"Host": "attacker.example:8080"})
    assert response.status_code == 400
    assert (await small.get("/api/info", headers={"Host": "localhost:8080"})).status_code == 200


async def test_session_timeline_state_activity_events_and_export(
    small: httpx.AsyncClient, small_db: str
) -> None:
    s = await _json(small, "/api/session", id=_data.BACKLOG_ID)
    assert s["session"]["app_name"] == "acme_support"
    messages = s["messages"]
    assert len(messages) == 200 and s["older"] is True  # 241 with the tombstones: newest 200
    pruned = [m for m in messages if m["pruned"]]
    assert pruned and all(m["content"] is None and m["pruned_by"].startswith("prune_") for m in pruned)
    calls = [m for m in messages if m["tool_calls"]]
    assert calls and any(m["agent"] == "support_assistant" for m in messages)
    assert s["state"]["temp"] is None and s["state"]["user"] == {}
    older = await _json(
        small, "/api/session/messages", id=_data.BACKLOG_ID, before=messages[0]["seq"], limit=200
    )
    assert [m["seq"] for m in older["messages"]] == list(range(1, messages[0]["seq"])) and older[
        "more"
    ] is False
    activity = await _json(small, "/api/session/activity", id=_data.BACKLOG_ID)
    [prune] = activity["prunes"]
    assert prune["strategy"] == "sliding_window" and prune["removed"] == 180
    assert prune["tokens_before"] > prune["tokens_after"] == activity["active"]["tokens"]
    assert activity["points"][-1] == [241, prune["tokens_after"]]
    events = await _json(small, "/api/session/events", id=_data.BACKLOG_ID, type="prune")
    assert [e["type"] for e in events["events"]] == ["prune"] and events["counts"]["message_appended"] == 241
    for fmt, media in [("jsonl", "application/x-ndjson"), ("json", "application/json")]:
        response = await small.get("/api/session/export", params={"id": _data.BACKLOG_ID, "format": fmt})
        assert response.status_code == 200 and response.headers["content-type"].startswith(media)
        assert response.headers["content-disposition"] == f'attachment; filename="{_data.BACKLOG_ID}.{fmt}"'
        store = open_store(small_db, create=False, read_only=True)
        try:
            expected = await (await Session.get(_data.BACKLOG_ID, store=store)).export(format=fmt)
        finally:
            await store.close()
        assert response.text == expected  # the same export as `agnt5 sessions export`


async def test_poll_returns_what_is_new(small_db: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'live.db'}"
    writer = open_store(url)
    session = Session("live", store=writer)
    await session.send_message({"role": "user", "content": "one"})
    async for client in _client(url):
        first = await _json(client, "/api/session/activity", id="live")
        cursor = first["last_event"]
        nothing = await _json(client, "/api/session/poll", id="live", after=1, after_event=cursor["id"])
        assert nothing["messages"] == [] and nothing["events"] == [] and nothing["reload"] is False
        await session.send_message({"role": "assistant", "content": "two"})
        await session.record_event("checkpoint", {"n": 1})
        new = await _json(client, "/api/session/poll", id="live", after=1, after_event=cursor["id"])
        assert [m["content"] for m in new["messages"]] == ["two"]
        assert [e["type"] for e in new["events"]] == ["checkpoint"] and new["last_event"]["id"] == 3
        again = await _json(client, "/api/session/activity", id="live")  # the cached trail, extended
        assert again["points"] == [[1, first["points"][0][1]], [2, again["active"]["tokens"]]]
        assert again["counts"] == {"checkpoint": 1, "message_appended": 2}
        await session.send_message({"role": "user", "content": "three"})
        assert (await session.prune("keep_last_1")).removed == 2
        pruned = await _json(client, "/api/session/poll", id="live", after=2, after_event=3)
        assert pruned["reload"] is True
    await writer.close()


async def test_untrusted_text_is_json_data_never_markup(small: httpx.AsyncClient) -> None:
    s = await _json(small, "/api/session", id=_data.EVIL_ID)
    assert s["messages"][0]["content"] == _data.INJECTED and s["messages"][0]["agent"] == _data.INJECTED
    raw = (await small.get("/api/session", params={"id": _data.EVIL_ID})).headers["content-type"]
    assert raw == "application/json"  # never text/html


async def test_token_required_when_served_remotely(small_db: str) -> None:
    async for client in _client(small_db, token="s3cret-token", loopback=False):
        for path in ["/", "/api/sessions", "/static/app.css"]:
            response = await client.get(path)
            assert response.status_code == 401 and "token" in response.json()["error"]
        assert (await client.get("/api/sessions", params={"token": "wrong"})).status_code == 401
        ok = await client.get("/", params={"token": "s3cret-token"})
        assert ok.status_code == 200 and ok.cookies.get(TOKEN_COOKIE) == "s3cret-token"
        assert (
            "httponly" in ok.headers["set-cookie"].lower()
            and "samesite=strict" in ok.headers["set-cookie"].lower()
        )
        assert (await client.get("/api/sessions")).status_code == 200  # the cookie now
        other = await client.get("/api/info", headers={"Host": "inspector.example:9000"})
        assert other.status_code == 200  # remote: any Host, the token protects


async def test_paging_through_ten_thousand_sessions(big: httpx.AsyncClient) -> None:
    seen: list[str] = []
    cursor = None
    while True:
        page = await _json(big, "/api/sessions", app="many", limit=500, cursor=cursor)
        seen += [s["id"] for s in page["sessions"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 10_000
    found = await _json(big, "/api/sessions", q="MANY-04242")
    assert [s["id"] for s in found["sessions"]] == ["many-04242"] and found["next_cursor"] is None
    users = await _json(big, "/api/sessions", app="many", user="user-3", limit=50)
    assert len(users["sessions"]) == 50 and {s["user_id"] for s in users["sessions"]} == {"user-3"}
    texts = await _json(big, "/api/sessions", q='"i": 1', limit=3)  # metadata text, paged
    more = await _json(big, "/api/sessions", q='"i": 1', limit=3, cursor=texts["next_cursor"])
    assert not {s["id"] for s in texts["sessions"]} & {s["id"] for s in more["sessions"]}


async def test_a_hundred_thousand_message_session_is_paged(big: httpx.AsyncClient) -> None:
    s = await _json(big, "/api/session", id="long-100k")
    assert [m["seq"] for m in s["messages"]] == list(range(99_801, 100_001)) and s["older"] is True
    older = await _json(big, "/api/session/messages", id="long-100k", before=99_801, limit=1000)
    assert [m["seq"] for m in older["messages"]] == list(range(98_801, 99_801)) and older["more"] is True
    start = await _json(big, "/api/session/messages", id="long-100k", after=0, limit=3)
    assert [m["content"] for m in start["messages"]] == [
        "message number 1",
        "message number 2",
        "message number 3",
    ]


def test_the_token_chart_of_a_hundred_thousand_messages_is_downsampled() -> None:
    """The chart's series replayed from a 100,000-message trail with prunes and a pop."""
    t = datetime.now(UTC)
    trail = [Event(i, "s", "message_appended", t, {"seq": i, "tokens": 5}) for i in range(1, 100_001)]
    prune = {"strategy": "keep_last_10", "tokens_before": 250_000, "tokens_after": 50, "removed": 49_990}
    trail.insert(50_000, Event(0, "s", "prune", t, prune))
    trail.append(Event(0, "s", "message_popped", t, {"seqs": [100_000, 99_999]}))
    points, prunes = data.token_series(trail)
    assert points[49_999:50_001] == [(50_000, 250_000), (50_000, 50)]
    assert points[-2:] == [(100_000, 250_050), (100_000, 250_040)]
    assert [p["x"] for p in prunes] == [50_000] and prunes[0]["tokens_after"] == 50
    chart = data.downsample(points, [50_000])
    assert 200 <= len(chart) <= 410
    assert [50_000, 250_000] in chart and [50_000, 50] in chart  # the prune's drop stays sharp
    assert chart[0] == [1, 5] and chart[-1] == [100_000, 250_040]
    assert [p[0] for p in chart] == sorted(p[0] for p in chart)


async def test_postgresql(pg_env: StoreEnv) -> None:
    writer = pg_env.open()
    session = Session("pg-1", app_name="pg_app", user_id="ann", store=writer)
    await session.send_messages([{"role": "user", "content": f"q{i}"} for i in range(6)])
    session.set_state("plan", "pro", scope="user")
    await session.flush()
    await session.prune("keep_last_2")
    await writer.close()
    password = pg_env.url.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
    async for client in _client(pg_env.url):
        bodies = []
        for path, params in [
            ("/api/info", {}),
            ("/api/sessions", {"app": "pg_app"}),
            ("/api/session", {"id": "pg-1"}),
            ("/api/session/messages", {"id": "pg-1", "before": 5, "limit": 2}),
            ("/api/session/activity", {"id": "pg-1"}),
            ("/api/session/events", {"id": "pg-1"}),
            ("/api/session/poll", {"id": "pg-1", "after": 6}),
            ("/api/session/export", {"id": "pg-1"}),
            ("/api/session", {"id": "missing"}),
        ]:
            response = await client.get(path, params=params)
            bodies.append(response.text)
        assert all(password not in body for body in bodies)
        info, listed, s, older, activity = (json.loads(b) for b in bodies[:5])
        assert ":***@" in info["store"] and s["store"] == info["store"]
        assert [x["id"] for x in listed["sessions"]] == ["pg-1"] and listed["sessions"][0]["tokens"] > 0
        assert [m["pruned"] for m in s["messages"]] == [True] * 4 + [False] * 2
        assert s["state"]["user"] == {"plan": "pro"}
        assert [m["seq"] for m in older["messages"]] == [3, 4] and older["more"] is True
        assert activity["prunes"][0]["strategy"] == "keep_last_2" and activity["prunes"][0]["removed"] == 4
        assert json.loads(bodies[8])["status"] == 404


async def test_the_session_and_poll_endpoints_list_calls_waiting_for_approval(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'paused.db'}"
    store = open_store(url)
    try:
        call_id = await _data.write_paused(store)
        await Session("plain", store=store).send_message({"role": "user", "content": "hi"})
        async for client in _client(url):
            body = (await client.get("/api/session", params={"id": _data.PAUSED_ID})).json()
            [waiting] = body["pending"]
            assert (waiting["call_id"], waiting["tool"], waiting["agent"]) == (call_id, "refund", "billing")
            assert waiting["arguments"] == {"order": "o-<b>1</b>", "amount": 250}
            assert (await client.get("/api/session", params={"id": "plain"})).json()["pending"] == []
            await _data.refund_agent([]).run(
                None, session=Session(_data.PAUSED_ID, store=store), approvals={call_id: True}
            )
            params = {"id": _data.PAUSED_ID, "after": 0, "after_event": 0}
            polled = (await client.get("/api/session/poll", params=params)).json()
            assert polled["pending"] == []
    finally:
        await store.close()
