"""The notebook view of a Session (`_repr_html_`) shows each state scope's keys with short values:
escaped, cut when long, and only the first keys of a large scope."""

from __future__ import annotations

import html as html_module
import re

from agnt5.session import Session
from agnt5.store.base import Store


async def test_notebook_view_shows_state_keys_and_short_values_per_scope(store: Store) -> None:
    s = Session("view", app_name="app", user_id="u", store=store)
    await s.send_message({"role": "user", "content": "hi"})
    s.set_state("ticket_status", "open")
    s.set_state("refund", {"amount": 29.0, "id": "re_1"})
    s.set_state("plan", "Pro", scope="user")
    s.set_state("window_days", 30, scope="app")
    s.set_state("hint", "<script>alert(1)</script>", scope="temp")
    s.set_state("essay", "x" * 500)
    await s.flush()
    html = s._repr_html_()
    session_line = re.search(r"<div>state · session: 3 keys · (.*)</div>", html)
    assert session_line, html
    assert "<code>ticket_status</code>=<code>&quot;open&quot;</code>" in session_line.group(1)
    assert (
        "<code>refund</code>=<code>{&quot;amount&quot;: 29.0, &quot;id&quot;: &quot;re_1&quot;}</code>"
        in html
    )
    assert "<code>plan</code>=<code>&quot;Pro&quot;</code>" in html  # user scope
    assert "<code>window_days</code>=<code>30</code>" in html  # app scope
    assert "&lt;script&gt;" in html and "<script>" not in html  # temp scope, escaped
    essay = re.search(r"<code>essay</code>=<code>(.*?)</code>", html)
    assert essay and essay.group(1).endswith("…") and len(html_module.unescape(essay.group(1))) == 60


async def test_notebook_view_of_empty_and_large_scopes(store: Store) -> None:
    s = Session("view-many", store=store)  # no user: no user scope
    s.set_state("k<&>", 1)
    for i in range(25):
        s.set_state(f"key{i:02d}", i, scope="app")
    await s.flush()
    html = s._repr_html_()
    assert "state · session: 1 key · <code>k&lt;&amp;&gt;</code>=<code>1</code>" in html
    assert "state · user" not in html
    assert "state · temp: 0 keys</div>" in html
    app = re.search(r"<div>state · app: 25 keys · (.*)</div>", html)
    assert app and app.group(1).count("<code>key") == 20 and app.group(1).endswith(", … 5 more")
