// Meridian's search page: the HTTP API of this node, nothing from elsewhere.
// The state of a search lives in the page's URL, so a search can be shared,
// bookmarked and walked back and forth with the browser's buttons.
"use strict";

const LIST_PARAMS = { discipline: "disciplines", origin: "origins", access: "access", license: "licenses", format: "formats" };
const PAGE_SIZE = 20;

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  for (const child of children) node.append(child);
  return node;
}

// The server sends escaped text with matches in <b>…</b> (a peer's snippet
// is made so too). It is rebuilt here as text and <b> elements, never
// parsed as HTML: the entities are read back as the characters they stand
// for, and any other markup stays text.
function snippet(html) {
  const span = el("span", { class: "snippet" });
  const text = (part) => part
    .replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&quot;/g, '"').replace(/&#39;/g, "'")
    .replace(/&amp;/g, "&");
  let bold = false;
  for (const part of html.split(/(<b>|<\/b>)/)) {
    if (part === "<b>") bold = true;
    else if (part === "</b>") bold = false;
    else if (part) span.append(bold ? el("b", { text: text(part) }) : text(part));
  }
  return span;
}

function accessName(value) {
  return String(value || "").replace(/^ACCESS_/, "").toLowerCase();
}

function current() {
  return new URLSearchParams(window.location.search);
}

function go(params, replace) {
  const url = "/?" + params.toString();
  if (replace) history.replaceState(null, "", url);
  else history.pushState(null, "", url);
  run();
}

function formToParams() {
  const params = current();
  params.delete("after");
  params.set("query", $("q").value.trim());
  for (const [id, name] of [["year-from", "yearFrom"], ["year-to", "yearTo"]]) {
    const value = $(id).value.trim();
    if (value) params.set(name, value); else params.delete(name);
  }
  const box = ["west", "south", "east", "north"].map((id) => $(id).value.trim());
  if (box.every((v) => v !== "")) params.set("bbox", box.join(",")); else params.delete("bbox");
  if ($("live").checked) params.set("scope", "SCOPE_LIVE"); else params.delete("scope");
  return params;
}

function paramsToForm(params) {
  $("q").value = params.get("query") || "";
  $("year-from").value = params.get("yearFrom") || "";
  $("year-to").value = params.get("yearTo") || "";
  const box = (params.get("bbox") || "").split(",");
  ["west", "south", "east", "north"].forEach((id, i) => { $(id).value = box.length === 4 ? box[i] : ""; });
  $("live").checked = params.get("scope") === "SCOPE_LIVE";
}

function apiQuery(params) {
  const api = new URLSearchParams();
  for (const [name, value] of params) {
    if (value !== "") api.append(name, value);
  }
  api.set("facets", "true");
  api.set("highlight", "true");
  api.set("limit", String(PAGE_SIZE));
  return api;
}

function toggle(facet, value) {
  const params = current();
  params.delete("after");
  if (facet === "year") {
    if (params.get("yearFrom") === value && params.get("yearTo") === value) {
      params.delete("yearFrom"); params.delete("yearTo");
    } else {
      params.set("yearFrom", value); params.set("yearTo", value);
    }
  } else {
    const name = LIST_PARAMS[facet];
    const wire = facet === "access" ? "ACCESS_" + value.toUpperCase() : value;
    const values = params.getAll(name);
    params.delete(name);
    const next = values.includes(wire) ? values.filter((v) => v !== wire) : values.concat(wire);
    next.forEach((v) => params.append(name, v));
  }
  go(params);
}

function chosen(facet, value) {
  const params = current();
  if (facet === "year") return params.get("yearFrom") === value && params.get("yearTo") === value;
  const wire = facet === "access" ? "ACCESS_" + value.toUpperCase() : value;
  return params.getAll(LIST_PARAMS[facet]).includes(wire);
}

function renderFacets(facets) {
  const aside = $("facets");
  aside.replaceChildren();
  for (const facet of facets || []) {
    if (!facet.values || facet.values.length === 0) continue;
    const list = el("ul");
    for (const v of facet.values) {
      const on = chosen(facet.name, v.value);
      list.append(el("li", {}, el("button", {
        type: "button", class: "link", "aria-pressed": String(on),
        "data-facet": facet.name, "data-value": v.value,
        onclick: () => toggle(facet.name, v.value),
      }, (on ? "✓ " : "") + v.value + " ", el("span", { class: "count", text: "(" + v.count + ")" }))));
    }
    aside.append(el("h2", { text: facet.name }), list);
  }
}

function renderChosen() {
  const list = $("chosen");
  list.replaceChildren();
  const params = current();
  for (const [facet, name] of Object.entries(LIST_PARAMS)) {
    for (const wire of params.getAll(name)) {
      const value = facet === "access" ? accessName(wire) : wire;
      list.append(el("li", {}, el("button", {
        type: "button", "aria-label": "Remove filter " + facet + " " + value,
        onclick: () => toggle(facet, value),
      }, facet + ": " + value + " ✕")));
    }
  }
}

function recordUrl(hit) {
  return "/records/" + encodeURIComponent(hit.origin) + "/" + encodeURIComponent(hit.id);
}

function renderHits(answer) {
  const hits = $("hits");
  hits.replaceChildren();
  for (const hit of answer.hits || []) {
    const meta = el("p", { class: "meta" },
      hit.origin + " · " + (hit.publicationYear || "undated") + " · " + accessName(hit.access));
    if (hit.doi) {
      meta.append(" · ", el("a", { href: "https://doi.org/" + hit.doi, text: "doi:" + hit.doi }));
    }
    const item = el("li", { class: "hit" },
      el("h3", {}, el("a", { href: recordUrl(hit), text: hit.title })), meta);
    if (hit.snippet) item.append(snippet(hit.snippet));
    if (hit.alsoAt && hit.alsoAt.length) {
      item.append(el("p", { class: "meta also-at" }, "Also at: " +
        hit.alsoAt.map((a) => a.origin + " (" + a.id + ")").join(", ")));
    }
    hits.append(item);
  }
}

function renderPager(answer) {
  const pager = $("pager");
  pager.replaceChildren();
  const params = current();
  if (params.get("after")) {
    pager.append(el("button", { type: "button", id: "prev", onclick: () => history.back() }, "Previous page"));
  }
  if (answer.nextCursor) {
    pager.append(el("button", {
      type: "button", id: "next",
      onclick: () => { const next = current(); next.set("after", answer.nextCursor); go(next); },
    }, "Next page"));
  }
}

function renderCompleteness(lines) {
  const parts = (lines || []).map((c, i) => {
    const status = String(c.status || "").replace(/^COMPLETENESS_STATUS_/, "").toLowerCase();
    const who = c.origin || (c.peers + " peer" + (c.peers === 1 ? "" : "s"));
    // The first line is always this node's own holdings.
    if (status === "ok" && i === 0) return who + ": this node's own holdings";
    if (status === "ok") return who + ": asked now" + (c.answeredBy ? " (answered by " + c.answeredBy + ")" : "");
    if (status === "replica") return who + ": copy as of " + (c.asOf || "never synced");
    if (status === "stale") return who + ": stale (its key set expired; searched, not vouched for)";
    // A live search that missed a peer used this node's copy instead.
    return who + ": " + status + (c.asOf ? ", copy as of " + c.asOf + " used" : "");
  });
  $("completeness").textContent = parts.length ? "Searched — " + parts.join("; ") + "." : "";
}

async function run() {
  const params = current();
  paramsToForm(params);
  renderChosen();
  const summary = $("summary");
  summary.className = "";
  summary.textContent = "Searching…";
  let answer;
  try {
    const response = await fetch("/api/v1/search?" + apiQuery(params).toString(), { headers: { accept: "application/json" } });
    answer = await response.json();
    if (!response.ok) throw new Error((answer.field ? answer.field + ": " : "") + (answer.message || response.statusText));
  } catch (e) {
    summary.className = "error";
    summary.textContent = "The search failed: " + e.message;
    $("hits").replaceChildren(); $("facets").replaceChildren(); $("pager").replaceChildren();
    return;
  }
  const total = Number(answer.total || 0);
  summary.textContent = total === 0 ? "No dataset matches."
    : answer.totalIsEstimate ? "About " + total.toLocaleString("en") + " datasets (counted in a sample; peers may hold more)."
    : (total === 1 ? "1 dataset" : total.toLocaleString("en") + " datasets") + " (at least: peers may hold more).";
  renderHits(answer);
  renderFacets(answer.facets);
  renderPager(answer);
  renderCompleteness(answer.completeness);
}

async function nodeName() {
  try {
    const response = await fetch("/api/v1/node");
    if (response.ok) $("node-name").textContent = "at " + (await response.json()).nodeId;
  } catch (_) { /* the name is a courtesy */ }
}

document.addEventListener("DOMContentLoaded", () => {
  $("search").addEventListener("submit", (event) => { event.preventDefault(); go(formToParams()); });
  window.addEventListener("popstate", run);
  nodeName();
  run();
});
