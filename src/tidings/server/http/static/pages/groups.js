// Consumer groups: the list (from the snapshots), and one group's page. The page adds what the
// snapshot's summaries leave out (members, per-partition offsets, oldest unacked age, counters):
// one GET /api/groups/{group} per snapshot while the page is open, never two at once.

import { lineChart, sparkline } from "../charts.js";
import { api, fmt, html, link, raw, setHtml } from "../dom.js";

function delayText(d) {
  return d ? `${fmt.ms(d.p50_ms)} / ${fmt.ms(d.p99_ms)}` : "–";
}

export function mountList(root, _params, { store, navigate }) {
  root.addEventListener("click", (event) => {
    const row = event.target.closest("tr[data-href]");
    if (row) navigate(row.dataset.href);
  });
  const update = (snapshot) => {
    const rows = snapshot.groups.map((g) => {
      const reasons = store.trouble(g.group);
      return html`<tr data-href="${link("groups", g.group)}" class="clickable${reasons.length ? " red" : ""}" title="${reasons.join(", ")}">
<td><a href="${link("groups", g.group)}">${g.group}</a></td><td>${g.mode || "–"}</td><td>${g.topics.join(", ")}</td>
<td class="num">${g.members}</td><td class="num">${fmt.int(g.lag)}</td><td>${raw(sparkline(store.series("groups", g.group, "lag"), { cls: reasons.length ? "red" : "" }))}</td>
<td class="num">${delayText(g.processing_delay)}</td><td class="num">${fmt.int(g.redeliveries)}</td><td class="num">${fmt.int(g.dead_letters)}</td></tr>`;
    });
    setHtml(
      root,
      html`<section><div class="page-head"><h1>Consumer groups</h1><p class="hint">delay: event time → ack, p50 / p99 over the last minute</p></div>
<table class="grid"><thead><tr><th>group</th><th>mode</th><th>topics</th><th class="num">members</th><th class="num">lag</th><th>lag, last minutes</th><th class="num">delay p50 / p99</th><th class="num">redeliveries</th><th class="num">dead letters</th></tr></thead>
<tbody>${rows.length ? rows : html`<tr><td colspan="9" class="muted">no consumer groups yet</td></tr>`}</tbody></table></section>`,
    );
  };
  if (store.snapshot) update(store.snapshot);
  return { update };
}

export function mountGroup(root, [name], { store }) {
  let view = null;
  let error = null;
  let loading = false;
  const draw = () => {
    if (error && !view) {
      setHtml(root, html`<section><h1>${name}</h1><p class="error">${error}</p></section>`);
      return;
    }
    if (!view) {
      setHtml(root, html`<section><h1>${name}</h1><p class="muted">loading…</p></section>`);
      return;
    }
    const g = view;
    const reasons = store.trouble(name);
    const d = g.processing_delay;
    const lagChart = lineChart([{ label: "lag", points: store.series("groups", name, "lag"), cls: reasons.length ? "red" : "s1" }]);
    const delaySeen = store.series("groups", name, "p50").length > 1;
    const delayChart = !d && !delaySeen ? `<div class="chart empty">nothing acknowledged in the last minute</div>` : lineChart(
      [
        { label: "p50", points: store.series("groups", name, "p50"), cls: "s1" },
        { label: "p99", points: store.series("groups", name, "p99"), cls: "s2" },
      ],
      { unit: " ms" },
    );
    setHtml(
      root,
      html`<section><div class="page-head"><h1><span class="kind">group</span> ${name}</h1>
<p class="hint">${g.mode || "mode set by its first member"} · topics ${g.topics.map((t, i) => html`${i ? ", " : ""}<a href="${link("topics", t)}">${t}</a>`)}</p></div>
${reasons.length ? html`<p class="alert">${reasons.join(" · ")}</p>` : ""}
<div class="cards">
<div class="card${g.lag > 0 ? " warn" : ""}"><b id="group-lag">${fmt.int(g.lag)}</b><span>lag (messages)</span></div>
<div class="card"><b>${g.members}</b><span>members</span></div>
<div class="card"><b>${d ? fmt.ms(d.p50_ms) : "–"}</b><span>delay p50</span></div>
<div class="card"><b>${d ? fmt.ms(d.p99_ms) : "–"}</b><span>delay p99 (max ${d ? fmt.ms(d.max_ms) : "–"})</span></div>
<div class="card"><b>${fmt.int(g.redeliveries)}</b><span>redeliveries</span></div>
<div class="card${g.dead_letters ? " warn" : ""}"><b>${fmt.int(g.dead_letters)}</b><span><a href="${link("dlq")}">dead letters</a></span></div>
</div>
<div class="two"><div><h2>Lag over time</h2>${raw(lagChart)}</div><div><h2>Processing delay</h2>${raw(delayChart)}</div></div>
<h2>Partitions</h2>
<table class="grid" id="group-partitions"><thead><tr><th>topic</th><th class="num">partition</th><th class="num">committed</th><th class="num">end offset</th><th class="num">lag</th><th class="num">in flight</th><th class="num">oldest unacked</th></tr></thead>
<tbody>${g.partitions.map((p) => html`<tr class="${p.lag > 0 ? "warn" : ""}"><td>${p.topic}</td><td class="num">${p.partition}</td><td class="num">${fmt.int(p.committed)}</td><td class="num">${fmt.int(p.end_offset)}</td><td class="num">${fmt.int(p.lag)}</td><td class="num">${p.in_flight}</td><td class="num">${p.oldest_unacked_age_ms === null ? "–" : fmt.ms(p.oldest_unacked_age_ms)}</td></tr>`)}</tbody></table>
<h2>Members</h2>
${g.member_list.length
  ? html`<table class="grid"><thead><tr><th>member</th><th>service</th><th>client</th><th>topic</th><th>mode</th><th>assigned</th></tr></thead>
<tbody>${g.member_list.map((m) => html`<tr><td><code>${m.member_id}</code></td><td>${m.service}</td><td><code>${m.client_id}</code></td><td>${m.topic}</td><td>${m.mode}</td><td>${m.assigned.join(", ") || "–"}</td></tr>`)}</tbody></table>`
  : html`<p class="muted">no member connected</p>`}
<h2>Since the broker started</h2>
<table class="grid narrow"><tbody>${Object.entries(g.counters).map(([k, v]) => html`<tr><td>${k.replace("_", " ")}</td><td class="num">${fmt.int(v)}</td></tr>`)}</tbody></table>
${error ? html`<p class="error">last refresh failed: ${error}</p>` : ""}
</section>`,
    );
  };
  const refresh = async () => {
    if (loading) return;
    loading = true;
    try {
      view = await api(`/api/groups/${encodeURIComponent(name)}`);
      error = null;
    } catch (exc) {
      error = exc.message;
    } finally {
      loading = false;
    }
    draw();
  };
  draw();
  refresh();
  return { update: refresh };
}
