// The sessions list: filters (app, user, text), pages of 50, newest update first.
"use strict";

(() => {
  const {el, api, when, num} = A5;
  const list = document.getElementById("list");
  const form = document.getElementById("filters");
  const next = document.getElementById("next");
  const first = document.getElementById("first");
  const info = document.getElementById("page-info");
  const fields = ["app", "user", "q"];
  let cursors = [null];  // cursor of each page shown so far (the first has none)

  function filters() {
    const out = {};
    for (const name of fields) out[name] = document.getElementById("f-" + name).value.trim();
    return out;
  }

  function row(s) {
    const link = el("a", {href: "/session?id=" + encodeURIComponent(s.id), class: "session-link", text: s.id});
    return el("tr", {"data-id": s.id},
      el("td", {}, link),
      el("td", {text: s.app_name || "-"}),
      el("td", {text: s.user_id || "-"}),
      el("td", {class: "n", text: num(s.messages)}),
      el("td", {class: "n", text: num(s.tokens)}),
      el("td", {text: when(s.updated_at)}),
      el("td", {text: when(s.created_at)}));
  }

  async function load() {
    const f = filters();
    const cursor = cursors[cursors.length - 1];
    const search = new URLSearchParams();
    for (const name of fields) if (f[name]) search.set(name, f[name]);
    history.replaceState(null, "", "/" + (search.toString() ? "?" + search : ""));
    try {
      const page = await api("/api/sessions", {...f, cursor, limit: 50});
      if (!page.sessions.length) {
        list.replaceChildren(el("p", {class: "muted", id: "empty", text: "No sessions match."}));
      } else {
        const head = el("tr", {}, ...["Session", "App", "User", "Messages", "Tokens", "Updated (UTC)", "Created (UTC)"]
          .map((h, i) => el("th", {class: i === 3 || i === 4 ? "n" : null, text: h})));
        list.replaceChildren(el("table", {id: "sessions"}, el("thead", {}, head), el("tbody", {}, ...page.sessions.map(row))));
      }
      next.disabled = !page.next_cursor;
      next.dataset.cursor = page.next_cursor || "";
      first.disabled = cursors.length === 1;
      info.textContent = `page ${cursors.length} · ${page.sessions.length} session(s)`;
    } catch (error) {
      A5.showError(list, error);
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    cursors = [null];
    load();
  });
  document.getElementById("f-clear").addEventListener("click", () => {
    for (const name of fields) document.getElementById("f-" + name).value = "";
    cursors = [null];
    load();
  });
  next.addEventListener("click", () => {
    cursors.push(next.dataset.cursor);
    load();
  });
  first.addEventListener("click", () => {
    cursors = [null];
    load();
  });

  const given = new URLSearchParams(location.search);
  for (const name of fields) document.getElementById("f-" + name).value = given.get(name) || "";
  api("/api/info").then((i) => { document.getElementById("store").textContent = i.store; }).catch(() => {});
  load();
})();
