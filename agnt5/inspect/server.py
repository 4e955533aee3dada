"""The inspector's web application (Starlette): static pages, a read-only JSON API, and the
headers that keep untrusted message content inert (a strict Content-Security-Policy).

Needs the `agnt5[inspect]` extra; nothing else in agnt5 imports this module.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from agnt5.errors import InvalidInputError, SessionNotFoundError
from agnt5.inspect import data
from agnt5.session import EXPORT_FORMATS
from agnt5.store.base import Store
from agnt5.store.url import mask_credentials

STATIC = Path(__file__).parent / "static"
TOKEN_COOKIE = "agnt5_inspect_token"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})

Handler = Callable[[Request], Awaitable[Response]]


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": mask_credentials(message), "status": status}, status_code=status)


def _host_of(header: str) -> str:
    if header.startswith("["):
        return header.split("]", 1)[0] + "]"
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class _Guard(BaseHTTPMiddleware):
    """Read-only, token (when serving remotely), Host check (on loopback: no DNS rebinding), headers."""

    def __init__(self, app: Any, token: str | None, loopback: bool) -> None:
        super().__init__(app)
        self.token = token
        self.loopback = loopback

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await self._check(request, call_next)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    async def _check(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        if request.method not in ("GET", "HEAD"):
            return _error(405, f"{request.method} is not allowed: agnt5 inspect is read-only")
        if self.loopback and _host_of(request.headers.get("host", "")) not in LOOPBACK_HOSTS:
            return _error(400, "unexpected Host header: open the address agnt5 inspect printed")
        given = None
        if self.token is not None:
            given = request.query_params.get("token")
            presented = given or request.cookies.get(TOKEN_COOKIE) or ""
            if not secrets.compare_digest(presented.encode(), self.token.encode()):
                return _error(
                    401, "a token is required: open the URL agnt5 inspect printed (it ends with ?token=...)"
                )
        response = await call_next(request)
        if given is not None:
            response.set_cookie(TOKEN_COOKIE, given, httponly=True, samesite="strict")
        return response


def _api(fn: Handler) -> Handler:
    """JSON errors: 404 for an unknown session, 400 for a bad parameter."""

    async def endpoint(request: Request) -> Response:
        try:
            return await fn(request)
        except SessionNotFoundError as exc:
            return _error(404, str(exc.args[0]) if exc.args else str(exc))
        except InvalidInputError as exc:
            return _error(400, str(exc))

    return endpoint


def _session_id(request: Request) -> str:
    value = request.query_params.get("id")
    if not value:
        raise InvalidInputError("id is required: the session id, e.g. ?id=support-1234", field="id")
    return value


def build_app(
    store: Store, *, token: str | None = None, loopback: bool = True, trail_store: Store | None = None
) -> Starlette:
    """The inspector for `store`; with `token`, every request must present it (query or cookie).

    `trail_store` (another store on the same database) reads whole audit trails, which takes
    seconds for a 100,000-message session: on SQLite's one connection thread that read would hold
    up the timeline's small reads."""
    trails = trail_store if trail_store is not None else store

    cache = data.EventCache()

    def page(name: str) -> Handler:
        async def endpoint(request: Request) -> Response:
            return FileResponse(STATIC / name, media_type="text/html; charset=utf-8")

        return endpoint

    async def info(request: Request) -> Response:
        read_only = getattr(store, "read_only", None)
        return JSONResponse({"store": mask_credentials(store.url), "read_only": read_only})

    async def sessions(request: Request) -> Response:
        q = request.query_params
        limit = data.positive(q.get("limit"), "limit", 50, data.MAX_SESSIONS)
        body = await data.list_sessions(
            store,
            app=q.get("app") or None,
            user=q.get("user") or None,
            text=q.get("q") or None,
            limit=limit,
            cursor=q.get("cursor") or None,
        )
        return JSONResponse(body)

    async def session(request: Request) -> Response:
        limit = data.positive(request.query_params.get("limit"), "limit", data.PAGE, data.MAX_PAGE)
        return JSONResponse(await data.session(store, _session_id(request), limit=limit))

    async def messages(request: Request) -> Response:
        q = request.query_params
        before = data.optional_int(q.get("before"), "before", 1)
        after = data.optional_int(q.get("after"), "after", 0)
        if before is not None and after is not None:
            raise InvalidInputError("give before or after, not both", field="before")
        limit = data.positive(q.get("limit"), "limit", data.PAGE, data.MAX_PAGE)
        body = await data.messages(store, _session_id(request), before=before, after=after, limit=limit)
        return JSONResponse(body)

    async def events(request: Request) -> Response:
        q = request.query_params
        before = data.optional_int(q.get("before"), "before", 1)
        limit = data.positive(q.get("limit"), "limit", data.PAGE, data.MAX_PAGE)
        body = await data.events(
            trails, cache, _session_id(request), type=q.get("type") or None, before=before, limit=limit
        )
        return JSONResponse(body)

    async def activity(request: Request) -> Response:
        return JSONResponse(await data.activity(trails, cache, _session_id(request)))

    async def poll(request: Request) -> Response:
        q = request.query_params
        after = data.optional_int(q.get("after"), "after", 0) or 0
        after_event = data.optional_int(q.get("after_event"), "after_event", 0) or 0
        session_id = _session_id(request)
        body = await data.poll(store, trails, cache, session_id, after=after, after_event=after_event)
        return JSONResponse(body)

    async def export(request: Request) -> Response:
        fmt = request.query_params.get("format") or "jsonl"
        if fmt not in EXPORT_FORMATS:
            raise InvalidInputError(
                f"format must be one of {', '.join(EXPORT_FORMATS)}, got {fmt!r}", field="format"
            )
        session_id = _session_id(request)
        text = await data.export(store, session_id, fmt)
        filename = (re.sub(r"[^A-Za-z0-9._-]", "_", session_id) or "session") + "." + fmt
        media = "application/x-ndjson" if fmt == "jsonl" else "application/json"
        return Response(
            text,
            media_type=f"{media}; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )

    async def not_found(request: Request) -> Response:
        return _error(404, f"no such endpoint: {request.url.path}")

    routes = [
        Route("/", page("sessions.html")),
        Route("/session", page("session.html")),
        Route("/api/info", _api(info)),
        Route("/api/sessions", _api(sessions)),
        Route("/api/session", _api(session)),
        Route("/api/session/messages", _api(messages)),
        Route("/api/session/events", _api(events)),
        Route("/api/session/activity", _api(activity)),
        Route("/api/session/poll", _api(poll)),
        Route("/api/session/export", _api(export)),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
        Route("/{path:path}", not_found),
    ]
    return Starlette(routes=routes, middleware=[Middleware(_Guard, token=token, loopback=loopback)])
