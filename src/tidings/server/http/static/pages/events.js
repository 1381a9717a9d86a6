// The event browser: a topic's events by partition and offset or time, filtered by key, each
// with its payload pretty-printed and its headers. The form lives in the URL (#/events?topic=...),
// so a view can be bookmarked or sent to a colleague.

import { api, esc, fmt, html, link, prettyJson, raw, setHtml } from "../dom.js";

const FIELDS = ["topic", "partition", "offset", "time", "key", "limit"];

function toLocalInput(ms) {
  if (!ms) return "";
  const d = new Date(Number(ms));
  const local = new Date(d.getTime() - d.getTimezoneOffset() * 60_000);
  return local.toISOString().slice(0, 19);
}

function eventRow(e) {
  const headers = Object.entries(e.headers);
  return html`<details class="event" data-offset="${e.offset}">
<summary><span class="pill">p${e.partition}</span> <b>#${e.offset}</b> <span class="muted">${fmt.time(e.timestamp)}</span>
${e.key === null ? "" : html`<span class="key" title="key">${e.key}</span>`} <span class="muted">${fmt.bytes(e.size)} · ${e.encoding}</span>
<span class="preview">${JSON.stringify(e.data).slice(0, 120)}</span></summary>
<div class="event-body">
<pre class="json">${raw(e.encoding === "json" ? prettyJson(e.data) : esc(e.data))}</pre>
<table class="grid narrow"><tbody>
<tr><td>appended</td><td>${fmt.time(e.append_time)}</td></tr>
${headers.map(([k, v]) => html`<tr><td>${k}</td><td><code>${v}</code></td></tr>`)}
</tbody></table></div></details>`;
}

export function mount(root, _params, { store, navigate, query }) {
  const ask = Object.fromEntries(FIELDS.map((f) => [f, query.get(f) || ""]));
  const topics = () => (store.snapshot ? store.snapshot.topics.map((t) => t.name) : []);
  const form = () => html`<form id="browse" class="browse">
<label>topic <select name="topic" required>${[ask.topic && !topics().includes(ask.topic) ? [ask.topic] : [], ...topics()].flat().map((t) => html`<option ${t === ask.topic ? raw("selected") : ""}>${t}</option>`)}</select></label>
<label>partition <input name="partition" type="number" min="0" placeholder="all" value="${ask.partition}"></label>
<label>offset <input name="offset" type="number" min="0" placeholder="latest" value="${ask.offset}"></label>
<label>or time <input name="time" type="datetime-local" step="1" value="${toLocalInput(ask.time)}"></label>
<label>key <input name="key" placeholder="any" value="${ask.key}"></label>
<label>limit <input name="limit" type="number" min="1" max="500" value="${ask.limit || 50}"></label>
<button type="submit">Browse</button></form>`;
  setHtml(root, html`<section><div class="page-head"><h1>Events</h1><p class="hint">Default: the last events of each partition. Click an event for its payload and headers.</p></div>
<div id="form-box">${form()}</div><div id="results"></div></section>`);
  const results = root.querySelector("#results");
  root.querySelector("#form-box").addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(event.target);
    const params = new URLSearchParams();
    for (const f of FIELDS) {
      let value = String(data.get(f) || "").trim();
      if (f === "time" && value) value = String(new Date(value).getTime());
      if (value) params.set(f, value);
    }
    navigate(`${link("events")}?${params}`);
  });
  const load = async () => {
    if (!ask.topic) {
      setHtml(results, html`<p class="muted">Pick a topic.</p>`);
      return;
    }
    const params = new URLSearchParams();
    for (const f of FIELDS.slice(1)) if (ask[f]) params.set(f, ask[f]);
    setHtml(results, html`<p class="muted">loading…</p>`);
    try {
      const page = await api(`/api/topics/${encodeURIComponent(ask.topic)}/events?${params}`);
      const next = ask.partition !== "" && page.next_offsets[ask.partition] !== undefined
        ? `${link("events")}?${new URLSearchParams({ ...ask, offset: page.next_offsets[ask.partition], time: "" })}`
        : null;
      setHtml(
        results,
        html`<p class="hint">${page.events.length} events${page.truncated ? " (scan budget reached: continue from the next offsets)" : ""}
· next offsets ${Object.entries(page.next_offsets).map(([p, o]) => `p${p}: ${o}`).join(", ")}
${next ? html` · <a href="${next}">next page →</a>` : ""}</p>
<div class="events">${page.events.length ? page.events.map(eventRow) : html`<p class="muted">no events here</p>`}</div>`,
      );
    } catch (exc) {
      setHtml(results, html`<p class="error">${exc.message}</p>`);
    }
  };
  load();
  let known = topics().join("\n");
  return {
    update() {
      const now = topics().join("\n"); // keep the topic list fresh without touching what is typed
      if (now !== known && !root.querySelector("#browse select:focus")) {
        known = now;
        const select = root.querySelector("#browse select");
        const chosen = select.value || ask.topic;
        const names = [...new Set([...(chosen ? [chosen] : []), ...topics()])];
        setHtml(select, html`${names.map((t) => html`<option ${t === chosen ? raw("selected") : ""}>${t}</option>`)}`);
      }
    },
  };
}
