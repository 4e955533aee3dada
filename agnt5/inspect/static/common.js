// agnt5 inspect: helpers shared by both pages. Untrusted text only ever goes through textContent.
"use strict";

const A5 = {
  // el("div", {class: "x", title: "t"}, child, "text"): strings become text nodes, never HTML.
  el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "text") node.textContent = String(value);
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(typeof child === "string" || typeof child === "number" ? String(child) : child);
    }
    return node;
  },

  svg(tag, attrs) {
    const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, String(value));
    return node;
  },

  async api(path, params) {
    const url = new URL(path, location.origin);
    for (const [k, v] of Object.entries(params || {})) {
      if (v !== null && v !== undefined && v !== "") url.searchParams.set(k, String(v));
    }
    const response = await fetch(url, {credentials: "same-origin", headers: {Accept: "application/json"}});
    const body = await response.json().catch(() => ({error: response.statusText}));
    if (!response.ok) {
      const error = new Error(body.error || response.statusText);
      error.status = response.status;
      throw error;
    }
    return body;
  },

  when(iso) {
    if (!iso) return "-";
    return iso.replace("T", " ").replace(/\.\d+/, "").replace("+00:00", "Z");
  },

  num(n) {
    return n === null || n === undefined ? "-" : Number(n).toLocaleString("en-US");
  },

  clip(text, width) {
    const flat = String(text).split(/\s+/).join(" ").trim();
    return flat.length <= width ? flat : flat.slice(0, width - 1) + "…";
  },

  json(value, indent) {
    return JSON.stringify(value, null, indent === undefined ? 2 : indent);
  },

  showError(where, error) {
    where.replaceChildren(A5.el("p", {class: "error", role: "alert", text: String(error.message || error)}));
  },
};
