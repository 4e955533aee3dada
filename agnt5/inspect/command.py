"""`agnt5 inspect`: serve the read-only inspector for the configured database until Ctrl-C."""

from __future__ import annotations

import argparse
import contextlib
import errno
import ipaddress
import secrets
import socket
from collections.abc import Iterator
from typing import Any, TextIO

from agnt5.cli.errors import EPILOG, UsageError
from agnt5.errors import ConfigurationError, DatabaseNotFoundError
from agnt5.store.url import mask_credentials

EXTRA_HINT = "pip install 'agnt5[inspect]'"


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register `agnt5 inspect` on the top-level subparsers."""
    p = commands.add_parser(
        "inspect",
        help="a read-only web page to look at the stored sessions",
        parents=[common],
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Serve a read-only web page for the database: sessions, their conversation, "
        f"state, audit trail and prunes. Needs the inspect extra: {EXTRA_HINT}.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=_port, default=0, help="port (default 0: a free one)")
    p.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a non-loopback --host; every request then needs the token printed in the URL",
    )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be from 0 to 65535, got {value}")
    return value


def listen(host: str, port: int) -> socket.socket:
    """A listening socket, or an error saying what to do when the port is taken."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise UsageError(
                f"port {port} on {host} is already in use: choose another with --port, "
                "or --port 0 for a free one"
            ) from None
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.setblocking(False)
    return sock


async def run_inspect(args: argparse.Namespace, url: str | None, out: TextIO) -> int:
    """Check the options, open the database read-only, serve until SIGINT/SIGTERM; returns 0."""
    loopback = is_loopback(args.host)
    if not loopback and not args.allow_remote:
        raise UsageError(
            f"refusing to serve on {args.host}, which is not a loopback address: the page shows "
            "every session in the database; pass --allow-remote to serve it there anyway (a token "
            "is then required, printed in the URL)"
        )
    try:
        import uvicorn

        from agnt5.inspect.server import build_app
    except ImportError as exc:
        raise ConfigurationError(
            f"agnt5 inspect needs the web server packages ({exc.name} is missing): {EXTRA_HINT}"
        ) from None
    from agnt5.config import database_url
    from agnt5.store.url import open_store

    try:
        store = open_store(url or database_url(), create=False, read_only=True)
    except DatabaseNotFoundError as exc:
        where = "--database-url" if url else "AGNT5_DATABASE_URL or --database-url"
        raise DatabaseNotFoundError(f"{exc}; choose the database with {where}") from None
    # SQLite answers on one thread per store: a second one reads whole audit trails (slow on long
    # sessions) without holding up the timeline's reads.
    trail_store = (
        open_store(store.url, create=False, read_only=True)
        if store.supports_sync and not store.url.endswith(":memory:")
        else None
    )
    try:
        token = None if loopback else secrets.token_urlsafe(24)
        sock = listen(args.host, args.port)
        port = sock.getsockname()[1]
        shown = f"[{args.host.strip('[]')}]" if ":" in args.host.strip("[]") else args.host
        address = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
        app = build_app(store, token=token, loopback=loopback, trail_store=trail_store)
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        server = _server(config)
        out.write(f"agnt5 inspect: {address}\n")
        out.write(f"  {mask_credentials(store.url)} (read-only); Ctrl-C to stop\n")
        out.flush()
        await server.serve(sockets=[sock])
        out.write("agnt5 inspect: stopped\n")
        return 0
    finally:
        await store.close()
        if trail_store is not None:
            await trail_store.close()


def _server(config: Any) -> Any:
    """uvicorn's server, except that Ctrl-C is a normal way to stop (exit 0, no re-raised signal)."""
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            with super().capture_signals():
                yield
                self._captured_signals.clear()

    return Server(config)
