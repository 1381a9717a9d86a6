// The dashboard's entry point: one Store (one EventSource), a hash router, and the header.
// Each page is a module with mount(root, params, ctx) -> {update(snapshot)}; the router gives
// it a fresh element, so a page's listeners leave with it.

import { api, fmt, parseHash, setHtml, html } from "./dom.js";
import * as flowPage from "./flow.js";
import * as dlq from "./pages/dlq.js";
import * as events from "./pages/events.js";
import * as groups from "./pages/groups.js";
import * as topics from "./pages/topics.js";
import { Store } from "./store.js";

const ROUTES = {
  "": { nav: "flow", mount: flowPage.mount },
  flow: { nav: "flow", mount: flowPage.mount },
  topics: { nav: "topics", mount: (root, params, ctx) => (params.length ? topics.mountTopic : topics.mountList)(root, params, ctx) },
  groups: { nav: "groups", mount: (root, params, ctx) => (params.length ? groups.mountGroup : groups.mountList)(root, params, ctx) },
  events: { nav: "events", mount: events.mount },
  dlq: { nav: "dlq", mount: dlq.mount },
};

const store = new Store();
const view = document.getElementById("view");
let page = null;

function navigate(hash, { replace = false } = {}) {
  if (replace) {
    window.history.replaceState(null, "", hash);
    setTimeout(show, 0); // not now: a page may navigate while it mounts
  } else {
    window.location.hash = hash;
  }
}

function show() {
  const { parts, query } = parseHash(window.location.hash);
  const route = ROUTES[parts[0] || ""];
  const root = document.createElement("div");
  root.className = "page";
  view.replaceChildren(root);
  for (const a of document.querySelectorAll("header nav a")) a.classList.toggle("active", route && a.dataset.nav === route.nav);
  if (!route) {
    setHtml(root, html`<section><h1>Not found</h1><p><a href="#/">the flow map</a></p></section>`);
    page = null;
    return;
  }
  page = route.mount(root, parts.slice(1), { store, navigate, query });
  document.title = `Tidings · ${parts.length ? parts.join(" / ") : "flow"}`;
}

function updateHeader(snapshot) {
  const troubled = snapshot.groups.filter((g) => store.trouble(g.group).length).length;
  const letters = snapshot.topics.filter((t) => t.dead_letter_topic).reduce((n, t) => n + t.messages, 0);
  const grown = store.growingDeadLetters().size > 0;
  const groupsBadge = document.getElementById("badge-groups");
  groupsBadge.textContent = troubled ? String(troubled) : "";
  groupsBadge.className = troubled ? "count red" : "count";
  const dlqBadge = document.getElementById("badge-dlq");
  dlqBadge.textContent = letters ? fmt.int(letters) : "";
  dlqBadge.className = grown ? "count red" : "count";
}

store.addEventListener("snapshot", (event) => {
  updateHeader(event.detail);
  if (page && page.update) page.update(event.detail);
});
store.addEventListener("status", (event) => {
  const status = document.getElementById("status");
  status.textContent = event.detail;
  status.className = `status ${event.detail}`;
});
window.addEventListener("hashchange", show);

api("/healthz")
  .then((health) => {
    document.getElementById("broker").textContent = `broker ${health.broker_id.slice(0, 8)} · v${health.version}`;
  })
  .catch(() => {});
show();
store.connect();
