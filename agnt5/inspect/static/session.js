// One session: the timeline (newest page first, older pages on demand), tokens chart, prunes,
// state, audit events and export; follows the session live by polling /api/session/poll.
"use strict";

(() => {
  const {el, svg, api, when, num, clip, json} = A5;
  const id = new URLSearchParams(location.search).get("id") || "";
  const timeline = document.getElementById("timeline");
  const follow = document.getElementById("follow");
  const calls = new Map();    // tool call id -> its <details> in the timeline
  const orphans = new Map();  // tool call id -> a result shown alone (its call is on an older page)
  let oldestSeq = null;       // seq of the first message shown (timeline order)
  let lastSeq = null;         // seq of the last message shown (timeline order)
  let lastEvent = null;       // {id, ts} of the newest audit event seen
  let olderButton = null;
  let activityDue = 0;
  let polling = false;

  // --- messages ------------------------------------------------------------------------------

  function textOf(content) {
    if (content === null || content === undefined) return "";
    if (typeof content === "string") return content;
    if (Array.isArray(content)) {
      return content.map((p) => (p && typeof p === "object" && "text" in p ? String(p.text) : `[${(p && p.type) || "part"}]`)).join(" ");
    }
    return json(content);
  }

  function contentNode(m) {
    if (m.pruned) return el("div", {class: "text", text: `(pruned by ${m.pruned_by || "a prune"}; content removed)`});
    const text = textOf(m.content);
    return text ? el("div", {class: "text", text}) : null;
  }

  function head(m) {
    return el("div", {class: "head"},
      el("span", {class: "seq", text: "#" + m.seq}),
      el("span", {class: "role", text: m.role}),
      m.agent ? el("span", {class: "agent", text: m.agent}) : null,
      m.summary ? el("span", {class: "badge summary", text: "summary"}) : null,
      m.pruned ? el("span", {class: "badge pruned", text: "pruned"}) : null,
      el("span", {class: "time", text: when(m.timestamp)}),
      el("span", {class: "tokens", text: num(m.tokens) + " tok"}));
  }

  function attachResult(details, m) {
    const result = details.querySelector(".result");
    result.replaceChildren(
      el("div", {class: "muted", text: `result #${m.seq} · ${num(m.tokens)} tok${m.pruned ? " · pruned" : ""}`}),
      m.pruned ? el("pre", {text: `(pruned by ${m.pruned_by || "a prune"})`}) : el("pre", {class: "result-text", text: textOf(m.content)}));
    const summary = details.querySelector("summary .outcome");
    summary.textContent = " → " + (m.pruned ? "(pruned)" : clip(textOf(m.content), 70));
    details.dataset.done = "1";
  }

  function callNode(call) {
    const fn = call.function || {};
    let args = fn.arguments || "";
    try { args = json(JSON.parse(args)); } catch (_) { /* shown as given */ }
    const details = el("details", {class: "call", "data-call-id": call.id || ""},
      el("summary", {}, el("span", {text: `${fn.name || "?"}(${clip(fn.arguments || "", 60)})`}), el("span", {class: "outcome", text: " → …"})),
      el("div", {class: "body"},
        el("div", {class: "muted", text: "arguments"}), el("pre", {class: "args", text: args}),
        el("div", {class: "result"}, el("div", {class: "muted", text: "no result yet"}))));
    if (call.id) {
      calls.set(call.id, details);
      const orphan = orphans.get(call.id);
      if (orphan) {
        attachResult(details, orphan.message);
        orphan.node.remove();
        orphans.delete(call.id);
      }
    }
    return details;
  }

  function messageNode(m) {
    if (m.role === "tool" && m.tool_call_id && calls.has(m.tool_call_id)) {
      attachResult(calls.get(m.tool_call_id), m);
      return null;  // folded into its call
    }
    const classes = ["msg", m.role, m.summary ? "summary" : "", m.pruned ? "pruned" : ""].filter(Boolean).join(" ");
    const node = el("div", {class: classes, "data-seq": m.seq}, head(m), contentNode(m));
    for (const call of m.tool_calls || []) node.append(callNode(call));
    if (m.role === "tool" && m.tool_call_id) {
      node.dataset.toolCallId = m.tool_call_id;
      orphans.set(m.tool_call_id, {node, message: m});
    }
    return node;
  }

  function nodes(messages) {
    const fragment = document.createDocumentFragment();
    for (const m of messages) {
      const node = messageNode(m);
      if (node) fragment.append(node);
    }
    return fragment;
  }

  function setOlder(more) {
    olderButton.hidden = !more;
    olderButton.disabled = false;
  }

  async function loadOlder() {
    if (olderButton.disabled || olderButton.hidden || oldestSeq === null) return;
    olderButton.disabled = true;
    const page = await api("/api/session/messages", {id, before: oldestSeq, limit: 200});
    const height = timeline.scrollHeight;
    if (page.messages.length) {
      oldestSeq = page.messages[0].seq;
      olderButton.after(nodes(page.messages));
    }
    timeline.scrollTop += timeline.scrollHeight - height;
    setOlder(page.more);
  }

  function showTimeline(messages, older) {
    calls.clear();
    orphans.clear();
    olderButton = el("button", {type: "button", id: "load-older", text: "Load older messages"});
    olderButton.addEventListener("click", () => loadOlder().catch((e) => A5.showError(timeline, e)));
    const wrap = el("div", {class: "older"}, olderButton);
    timeline.replaceChildren(wrap, nodes(messages));
    if (!messages.length) timeline.append(el("p", {class: "muted", id: "no-messages", text: "No messages yet."}));
    oldestSeq = messages.length ? messages[0].seq : null;
    lastSeq = messages.length ? messages[messages.length - 1].seq : 0;
    setOlder(older);
    timeline.scrollTop = timeline.scrollHeight;
    new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting) && timeline.scrollTop > 0) loadOlder().catch(() => {});
    }, {root: timeline}).observe(wrap);
  }

  function appendMessages(messages) {
    const fresh = messages.filter((m) => !timeline.querySelector(`.msg[data-seq="${Number(m.seq)}"]`) || m.role === "tool");
    if (!fresh.length) return;
    const atBottom = timeline.scrollHeight - timeline.scrollTop - timeline.clientHeight < 40;
    document.getElementById("no-messages")?.remove();
    timeline.append(nodes(fresh));
    if (oldestSeq === null) oldestSeq = fresh[0].seq;
    lastSeq = fresh[fresh.length - 1].seq;
    if (atBottom) timeline.scrollTop = timeline.scrollHeight;
  }

  // --- overview, state ---------------------------------------------------------------------------

  function showOverview(s, active) {
    document.getElementById("title").textContent = s.id;
    document.title = `${s.id} · agnt5 inspect`;
    const item = (label, value, key) => el("span", {"data-key": key}, label + " ", el("b", {text: value}));
    const meta = document.getElementById("meta");
    meta.replaceChildren(...[
      item("app", s.app_name || "-", "app"),
      item("user", s.user_id || "-", "user"),
      item("messages", num(active ? active.messages : s.messages), "messages"),
      item("active tokens", active ? num(active.tokens) : "…", "tokens"),
      item("created", when(s.created_at), "created"),
      item("updated", when(s.updated_at), "updated"),
      s.expires_at ? item("expires", when(s.expires_at), "expires") : null,
      Object.keys(s.metadata || {}).length ? item("metadata", json(s.metadata, 0), "metadata") : null,
      Object.keys(s.retention || {}).length ? item("retention", json(s.retention, 0), "retention") : null,
    ].filter(Boolean));
  }

  function showPending(calls) {
    const box = document.getElementById("approvals");
    box.hidden = !calls.length;
    document.getElementById("approvals-list").replaceChildren(...calls.map((c) =>
      el("div", {class: "pending", "data-call": c.call_id},
        el("b", {text: c.tool}), " ",
        el("code", {text: json(c.arguments, 0)}),
        el("span", {class: "muted", text: ` · ${c.agent} · asked ${when(c.requested_at)} · call ${c.call_id}`}))));
  }

  function showState(state) {
    const box = document.getElementById("state");
    box.replaceChildren();
    for (const scope of ["session", "user", "app", "temp"]) {
      const values = state[scope];
      box.append(el("h3", {class: "muted", text: scope}));
      if (values === null || values === undefined) {
        const why = scope === "temp" ? "not stored: temp state lives in the process that set it" : "no user_id: no user scope";
        box.append(el("p", {class: "muted", text: why}));
      } else if (!Object.keys(values).length) {
        box.append(el("p", {class: "muted", text: "(empty)"}));
      } else {
        box.append(el("table", {"data-scope": scope}, el("tbody", {}, ...Object.entries(values).map(([k, v]) =>
          el("tr", {}, el("td", {text: k}), el("td", {}, el("pre", {text: json(v)})))))));
      }
    }
  }

  // --- activity: chart, prunes ---------------------------------------------------------------

  function showChart(points, prunes) {
    const box = document.getElementById("chart");
    if (!points.length) {
      box.replaceChildren(el("p", {class: "muted", text: "No messages yet."}));
      return;
    }
    const W = 600, H = 170, L = 44, R = 8, T = 8, B = 20;
    const maxX = Math.max(1, ...points.map((p) => p[0]));
    const maxY = Math.max(1, ...points.map((p) => p[1]));
    const x = (v) => L + (v / maxX) * (W - L - R);
    const y = (v) => T + (1 - v / maxY) * (H - T - B);
    const chart = svg("svg", {class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "active tokens after each message"});
    const line = points.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" ");
    chart.append(svg("polygon", {class: "area", points: `${x(points[0][0])},${y(0)} ${line} ${x(points[points.length - 1][0])},${y(0)}`}));
    chart.append(svg("line", {class: "axis", x1: L, y1: y(0), x2: W - R, y2: y(0)}));
    chart.append(svg("line", {class: "axis", x1: L, y1: T, x2: L, y2: y(0)}));
    for (const p of prunes) {
      const mark = svg("line", {class: "prune", x1: x(p.x), y1: T, x2: x(p.x), y2: y(0)});
      const title = svg("title", {});
      title.textContent = `prune ${p.strategy}: ${num(p.tokens_before)} → ${num(p.tokens_after)} tokens`;
      mark.append(title);
      chart.append(mark);
    }
    chart.append(svg("polyline", {class: "line", points: line}));
    const label = (text, attrs) => { const t = svg("text", attrs); t.textContent = text; chart.append(t); };
    label(num(maxY), {x: L - 4, y: T + 8, "text-anchor": "end"});
    label("0", {x: L - 4, y: y(0), "text-anchor": "end"});
    label(`${num(maxX)} messages appended`, {x: W - R, y: H - 4, "text-anchor": "end"});
    label(prunes.length ? "dashed: prunes" : "", {x: L + 4, y: H - 4});
    box.replaceChildren(chart);
  }

  function showPrunes(prunes) {
    const box = document.getElementById("prunes");
    if (!prunes.length) {
      box.replaceChildren(el("p", {class: "muted", id: "no-prunes", text: "Never pruned."}));
      return;
    }
    const head = el("tr", {}, ...["When (UTC)", "Strategy", "Removed", "Messages", "Tokens"].map((h) => el("th", {text: h})));
    const rows = prunes.map((p) => el("tr", {class: "prune-row"},
      el("td", {text: when(p.timestamp)}),
      el("td", {text: p.strategy + (p.auto ? " (auto)" : "") + (p.model ? ` · ${p.model}` : "")}),
      el("td", {class: "n", text: num(p.removed)}),
      el("td", {text: `${num(p.messages_before)} → ${num(p.messages_after)}`}),
      el("td", {class: "tokens", text: `${num(p.tokens_before)} → ${num(p.tokens_after)}`})));
    box.replaceChildren(el("table", {id: "prune-table"}, el("thead", {}, head), el("tbody", {}, ...rows)));
  }

  let header = null;

  async function loadActivity() {
    const a = await api("/api/session/activity", {id});
    showChart(a.points, a.prunes);
    showPrunes(a.prunes);
    if (header) showOverview(header, a.active);
    showTypes(a.counts);
    if (lastEvent === null) lastEvent = a.last_event || {id: 0, ts: null};
    return a;
  }

  function refreshActivitySoon() {
    const now = Date.now();
    if (now < activityDue) return;
    activityDue = now + 3000;
    setTimeout(() => loadActivity().catch(() => {}), 300);
  }

  // --- audit events ----------------------------------------------------------------------------

  const typeSelect = document.getElementById("event-type");
  const eventList = document.getElementById("events");
  const moreEvents = document.getElementById("more-events");

  function showTypes(counts) {
    const chosen = typeSelect.value;
    typeSelect.replaceChildren(el("option", {value: "", text: "all types"}),
      ...Object.entries(counts).map(([t, n]) => el("option", {value: t, text: `${t} (${num(n)})`})));
    typeSelect.value = chosen;
  }

  function eventNode(e) {
    return el("li", {"data-type": e.type, "data-id": e.id},
      el("span", {class: "muted", text: `#${e.id} ${when(e.timestamp)} `}),
      el("span", {class: "type", text: e.type}),
      el("pre", {text: clip(json(e.data, 0), 400)}));
  }

  async function loadEvents(before) {
    const page = await api("/api/session/events", {id, type: typeSelect.value, before, limit: 100});
    if (!before) eventList.replaceChildren();
    eventList.append(...page.events.map(eventNode));
    moreEvents.hidden = !page.more;
    moreEvents.dataset.before = page.events.length ? page.events[page.events.length - 1].id : "";
    showTypes(page.counts);
  }

  typeSelect.addEventListener("change", () => loadEvents().catch((e) => A5.showError(eventList, e)));
  moreEvents.addEventListener("click", () => loadEvents(moreEvents.dataset.before).catch(() => {}));

  // --- live --------------------------------------------------------------------------------------

  async function poll() {
    if (polling || !follow.checked || lastEvent === null || lastSeq === null) return;
    polling = true;
    try {
      const p = await api("/api/session/poll", {id, after: lastSeq, after_event: lastEvent.id});
      header = p.session;
      showPending(p.pending);
      if (p.last_event) lastEvent = p.last_event;
      if (p.reload) {
        await reload();
        return;
      }
      appendMessages(p.messages);
      const shown = typeSelect.value;
      for (const e of p.events) if (!shown || e.type === shown) eventList.prepend(eventNode(e));
      if (p.messages.length || p.events.length) refreshActivitySoon();
      document.getElementById("live").classList.add("on");
    } catch (error) {
      document.getElementById("live").classList.remove("on");
    } finally {
      polling = false;
    }
  }

  async function reload() {
    const s = await api("/api/session", {id});
    header = s.session;
    showOverview(s.session, null);
    showPending(s.pending);
    showState(s.state);
    showTimeline(s.messages, s.older);
    await Promise.all([loadActivity(), loadEvents()]);
  }

  async function start() {
    if (!id) {
      A5.showError(timeline, "no session id: open a session from the list");
      return;
    }
    for (const format of ["jsonl", "json"]) {
      const a = document.getElementById("export-" + format);
      a.href = `/api/session/export?id=${encodeURIComponent(id)}&format=${format}`;
    }
    try {
      const s = await api("/api/session", {id});
      header = s.session;
      document.getElementById("store").textContent = s.store;
      showOverview(s.session, null);
      showPending(s.pending);
      showTimeline(s.messages, s.older);
      showState(s.state);
    } catch (error) {
      A5.showError(timeline, error);
      document.getElementById("title").textContent = error.status === 404 ? "Session not found" : "Error";
      return;
    }
    loadActivity().catch((e) => A5.showError(document.getElementById("chart"), e));
    loadEvents().catch((e) => A5.showError(eventList, e));
    setInterval(poll, 1000);
    follow.addEventListener("change", () => document.getElementById("live").classList.toggle("on", follow.checked));
    document.getElementById("live").classList.add("on");
  }

  start();
})();
