// Dead letters: every dead-letter topic (<topic>.dlq.<group>), its letters with why they were
// given up, and a redrive (one letter, or all of them) back to the original topic. A redrive
// copies: the letters stay in the dead-letter topic, which is append-only.

import { api, esc, fmt, html, link, prettyJson, raw, setHtml } from "../dom.js";

export function mount(root, [selected], { store, navigate }) {
  let letters = null;
  let error = null;
  let notice = null;
  let loadedAt = -1;
  let drawn = "";
  const dlqTopics = () => (store.snapshot ? store.snapshot.topics.filter((t) => t.dead_letter_topic) : []);

  const draw = () => {
    const grown = store.growingDeadLetters();
    const list = dlqTopics();
    const side = list.length
      ? list.map((t) => {
          const [source, group] = t.name.split(".dlq.");
          return html`<a class="dlq-topic${t.name === selected ? " active" : ""}${grown.has(t.name) ? " red" : ""}" href="${link("dlq", t.name)}">
<b>${t.name}</b><span>${fmt.int(t.messages)} letter${t.messages === 1 ? "" : "s"} · from ${source} · group ${group}${grown.has(t.name) ? " · growing" : ""}</span></a>`;
        })
      : html`<p class="muted">No dead letters. A message lands here when its handler gives up on it (after its retries, or term()).</p>`;
    let body = html`<p class="muted">Pick a dead-letter topic.</p>`;
    if (selected && error) body = html`<p class="error">${error}</p>`;
    else if (selected && !letters) body = html`<p class="muted">loading…</p>`;
    else if (selected) {
      body = html`<div class="toolbar"><h2>${selected}</h2>
<button id="redrive-all" class="danger" ${letters.letters.length ? "" : raw("disabled")}>Redrive all (${letters.letters.length})</button></div>
${notice ? html`<p class="notice" id="redrive-result">${notice}</p>` : ""}
<table class="grid" id="letters"><thead><tr><th class="num">offset</th><th>original</th><th>group</th><th class="num">deliveries</th><th>reason</th><th>time</th><th></th></tr></thead>
<tbody>${letters.letters.map((l) => html`<tr>
<td class="num">${l.event.offset}</td><td>${l.original_topic ?? "?"} <span class="muted">p${l.original_partition ?? "?"} #${l.original_offset ?? "?"}</span></td>
<td>${l.group ?? "–"}</td><td class="num">${l.deliveries ?? "–"}</td><td class="reason">${l.reason || "–"}</td><td>${fmt.time(l.event.timestamp)}</td>
<td><button class="redrive" data-offset="${l.event.offset}">Redrive</button></td></tr>
<tr class="detail"><td></td><td colspan="6"><details><summary>payload${l.event.key === null ? "" : html` · key <span class="key">${l.event.key}</span>`}</summary>
<pre class="json">${raw(l.event.encoding === "json" ? prettyJson(l.event.data) : esc(l.event.data))}</pre>
<table class="grid narrow"><tbody>${Object.entries(l.event.headers).map(([k, v]) => html`<tr><td>${k}</td><td><code>${v}</code></td></tr>`)}</tbody></table></details></td></tr>`)}</tbody></table>
${letters.letters.length ? "" : html`<p class="muted">empty</p>`}`;
    }
    setHtml(root, html`<section><div class="page-head"><h1>Dead letters</h1><p class="hint">Redrive republishes a letter to its original topic (same key, data and time).</p></div>
<div class="dlq"><nav class="dlq-list">${side}</nav><div class="dlq-body">${body}</div></div></section>`);
  };

  const load = async () => {
    if (!selected) return;
    try {
      letters = await api(`/api/dlq/${encodeURIComponent(selected)}?limit=200`);
      loadedAt = dlqTopics().find((t) => t.name === selected)?.messages ?? -1;
      error = null;
    } catch (exc) {
      error = exc.message;
    }
    draw();
  };

  const redrive = async (body, what) => {
    if (!window.confirm(`Redrive ${what} from ${selected} to the original topic?`)) return;
    try {
      const result = await api(`/api/dlq/${encodeURIComponent(selected)}/redrive`, { method: "POST", body });
      notice = `Redriven ${result.redriven} letter${result.redriven === 1 ? "" : "s"}: ${result.results.map((r) => `p${r.partition}#${r.offset}`).join(", ") || "none"}.`;
    } catch (exc) {
      notice = `Redrive failed: ${exc.message}`;
    }
    draw();
  };

  root.addEventListener("click", (event) => {
    const one = event.target.closest("button.redrive");
    if (one) redrive({ offsets: [Number(one.dataset.offset)] }, `letter #${one.dataset.offset}`);
    else if (event.target.closest("#redrive-all")) redrive({}, `all ${letters.letters.length} letters`);
  });

  // With one dead-letter topic there is nothing to choose: open it (once the first snapshot says so).
  const openTheOnlyOne = () => {
    if (selected || dlqTopics().length !== 1) return false;
    navigate(link("dlq", dlqTopics()[0].name), { replace: true });
    return true;
  };
  if (!openTheOnlyOne()) {
    draw();
    load();
  }
  return {
    update() {
      if (openTheOnlyOne()) return;
      const count = dlqTopics().find((t) => t.name === selected)?.messages ?? -1;
      const signature = JSON.stringify([dlqTopics().map((t) => [t.name, t.messages]), [...store.growingDeadLetters()]]);
      if (selected && letters && count !== loadedAt) load(); // new letters arrived
      else if (signature !== drawn && !root.querySelector("details[open]")) draw(); // keep an opened payload open
      drawn = signature;
    },
  };
}
