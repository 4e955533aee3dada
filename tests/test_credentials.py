"""Database passwords never reach output: every credential form (URL user-info, `?password=` query
parameters, libpq `key=value` DSNs, quoted or not) is masked in the CLI's messages, the stores'
errors and reprs, and `PostgresStore.url`; only the private DSN used to connect keeps the secret."""

from __future__ import annotations

import asyncio
import socket
from urllib.parse import urlsplit

import pytest
from conftest import StoreEnv

from agnt5.cli import EXIT_ERROR, EXIT_NOT_FOUND, EXIT_USAGE, main
from agnt5.errors import ConfigurationError, StoreConnectionError
from agnt5.session import Session
from agnt5.store.postgres import PostgresStore
from agnt5.store.url import mask_credentials, mask_password, open_store

SECRET = "hunter2-Xq9"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("postgresql://u:hunter2-Xq9@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u:hun@ter/2?x@h:5432/db", "postgresql://u:***@h:5432/db"),  # raw @, / and ?
        ("postgresql://u:hunter 2@h/db", "postgresql://u:***@h/db"),  # a raw space
        ("postgresql://:hunter2-Xq9@h/db", "postgresql://:***@h/db"),
        ("postgresql://h/db?password=hunter2-Xq9&x=1", "postgresql://h/db?password=***&x=1"),
        ("postgres://h/db?SSLPASSWORD=hunter2-Xq9#f", "postgres://h/db?SSLPASSWORD=***#f"),
        ("host=127.0.0.1 password=hunter2-Xq9 dbname=x", "host=127.0.0.1 password=*** dbname=x"),
        ("host=h password = hunter2-Xq9 dbname=x", "host=h password = *** dbname=x"),
        ("host=h password='hunter 2 \\' Xq9' dbname=x", "host=h password=*** dbname=x"),
        ("host=h password=hun\\'ter2-Xq9 dbname=x", "host=h password=*** dbname=x"),
        ("host=h password='hunter2-Xq9", "host=h password=***"),  # unterminated quote
        ("host=h sslpassword=hunter2-Xq9", "host=h sslpassword=***"),
        # inside messages and reprs
        (
            "cannot connect to postgresql://u:hunter2-Xq9@h:5432/db: refused",
            "cannot connect to postgresql://u:***@h:5432/db: refused",
        ),
        ("Store('postgresql://u:hunter2-Xq9@h/db')", "Store('postgresql://u:***@h/db')"),
        (repr("host=h password=hun\\'ter2-Xq9 x=1"), '"host=h password=*** x=1"'),
        # nothing to mask
        ("sqlite:///a/b.db", "sqlite:///a/b.db"),
        ("postgresql://u@h/db?sslmode=require", "postgresql://u@h/db?sslmode=require"),
        ('password authentication failed for user "u"', 'password authentication failed for user "u"'),
    ],
)
def test_every_credential_form_is_masked(text: str, masked: str) -> None:
    assert mask_password(text) == masked
    assert mask_credentials(text) == masked
    for secret in ("hunter2", "Xq9", "hun@ter", "hunter 2"):
        assert secret not in mask_password(text)


@pytest.mark.parametrize(
    "url",
    [
        f"host=127.0.0.1 password={SECRET} dbname=x",
        f"host=127.0.0.1 password='{SECRET} x' dbname=x",
        f"mysql://u:{SECRET}@h/db",
        f"mysql://h/db?password={SECRET}",
    ],
)
def test_cli_never_prints_the_password_of_an_unsupported_url(
    capsys: pytest.CaptureFixture[str], url: str
) -> None:
    code = main(["--database-url", url, "sessions", "list"])
    out, err = capsys.readouterr()
    assert code == EXIT_USAGE
    assert "unsupported database URL" in err and "***" in err
    assert SECRET not in out + err
    if "://" not in url:
        assert "key=value connection strings are not supported" in err
    with pytest.raises(ConfigurationError) as info:
        open_store(url)
    assert SECRET not in str(info.value)


@pytest.mark.parametrize(
    "template",
    [
        "postgresql://agnt5:{secret}@127.0.0.1:{port}/agnt5",
        "postgresql://agnt5@127.0.0.1:{port}/agnt5?password={secret}",
        "postgres://agnt5:{secret}@127.0.0.1:{port}/agnt5?sslpassword={secret}&schema=s1",
    ],
)
def test_cli_connection_error_masks_the_password(capsys: pytest.CaptureFixture[str], template: str) -> None:
    url = template.format(secret=SECRET, port=_free_port())
    code = main(["sessions", "list", "--database-url", url])
    _, err = capsys.readouterr()
    assert code == EXIT_ERROR
    assert "cannot connect to PostgreSQL at postgres" in err and "***" in err
    assert SECRET not in err


async def test_postgres_store_keeps_the_password_out_of_public_attributes_and_errors() -> None:
    port = _free_port()
    store = PostgresStore(f"postgresql://agnt5:{SECRET}@127.0.0.1:{port}/agnt5?password={SECRET}")
    assert store.url == f"postgresql://agnt5:***@127.0.0.1:{port}/agnt5?password=***"
    assert SECRET not in repr(store) and SECRET not in str(vars(store).get("url"))
    public = {k: v for k, v in vars(store).items() if not k.startswith("_")}
    assert SECRET not in repr(public)
    assert SECRET in store._dsn  # the one private place, used to connect
    with pytest.raises(StoreConnectionError) as info:
        await store.kv_get("ns", "k")
    assert SECRET not in str(info.value) and info.value.url == store.url
    # A driver message that echoed the secret (any form) is redacted too.
    for echoed in (OSError(f"bad {SECRET}"), OSError(f"dsn password={SECRET} host=h")):
        error = store._error(echoed, "connecting")
        assert SECRET not in str(error), str(error)
    await store.close()


async def test_session_not_found_on_postgres_names_the_masked_url(
    capsys: pytest.CaptureFixture[str], pg_env: StoreEnv
) -> None:
    url = pg_env.url
    password = urlsplit(url).password
    assert password, "the test server's URL has a password"
    code = await _run_main(["sessions", "show", "nope", "--database-url", url])
    _, err = capsys.readouterr()
    assert code == EXIT_NOT_FOUND  # an empty database: a read-only command creates nothing
    assert "no agnt5 database at PostgreSQL at postgresql://" in err and ":***@" in err
    assert password not in err
    writer = pg_env.open()
    try:
        await Session("other", store=writer).send_message({"role": "user", "content": "hi"})
    finally:
        await writer.close()
    code = await _run_main(["sessions", "show", "nope", "--database-url", url])
    _, err = capsys.readouterr()
    assert code == EXIT_NOT_FOUND
    assert "no session with id 'nope' in postgresql://" in err and ":***@" in err
    assert password not in err


async def _run_main(argv: list[str]) -> int:
    return await asyncio.to_thread(main, argv)  # main runs its own event loop
