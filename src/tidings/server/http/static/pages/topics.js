// Topics: the list, and one topic's page (partitions, offsets, rate over time, who writes and reads).
// Everything here comes from the live snapshots: no request of its own.

import { lineChart, sparkline } from "../charts.js";
import { fmt, html, link, raw, setHtml } from "../dom.js";

export function mountList(root, _params, { store, navigate }) {
  root.addEventListener("click", (event) => {
    const row = event.target.closest("tr[data-href]");
    if (row) navigate(row.dataset.href);
  });
  const update = (snapshot) => {
    const rows = snapshot.topics.map(
      (t) => html`<tr data-href="${link("topics", t.name)}" class="clickable">
<td><a href="${link("topics", t.name)}">${t.name}</a>${t.dead_letter_topic ? html` <span class="badge">dead letters</span>` : ""}</td>
<td class="num">${t.partitions}</td><td class="num">${fmt.int(t.messages)}</td><td class="num">${fmt.bytes(t.size_bytes)}</td>
<td class="num">${fmt.rate(t.publish_rate)}</td><td>${raw(sparkline(store.series("topics", t.name, "rate")))}</td></tr>`,
    );
    setHtml(
      root,
      html`<section><div class="page-head"><h1>Topics</h1><p class="hint">${snapshot.topics.length} topics · rates over the last 10 s</p></div>
<table class="grid"><thead><tr><th>topic</th><th class="num">partitions</th><th class="num">messages</th><th class="num">size</th><th class="num">publish rate</th><th>rate, last minutes</th></tr></thead>
<tbody>${rows.length ? rows : html`<tr><td colspan="6" class="muted">no topics yet</td></tr>`}</tbody></table></section>`,
    );
  };
  if (store.snapshot) update(store.snapshot);
  return { update };
}

export function mountTopic(root, [name], { store }) {
  const update = (snapshot) => {
    const t = snapshot.topics.find((x) => x.name === name);
    if (!t) {
      setHtml(root, html`<section><h1>${name}</h1><p class="muted">No such topic (yet).</p></section>`);
      return;
    }
    const consumers = snapshot.groups.filter((g) => g.topics.includes(name));
    const publishers = snapshot.flow.edges.filter((e) => e.kind === "publish" && e.topic === name);
    const retention = t.retention;
    const chart = lineChart([{ label: "msg/s", points: store.series("topics", name, "rate"), cls: "s1" }], { unit: "/s" });
    setHtml(
      root,
      html`<section><div class="page-head"><h1><span class="kind">topic</span> ${name}</h1>
<p class="hint"><a href="${link("events")}?topic=${encodeURIComponent(name)}">browse its events →</a></p></div>
<div class="cards">
<div class="card"><b id="topic-messages">${fmt.int(t.messages)}</b><span>messages retained</span></div>
<div class="card"><b>${fmt.bytes(t.size_bytes)}</b><span>on disk</span></div>
<div class="card"><b>${fmt.rate(t.publish_rate)}</b><span>published (${fmt.bytes(t.byte_rate)}/s)</span></div>
<div class="card"><b>${fmt.int(t.published_total)}</b><span>published since start</span></div>
<div class="card"><b>${retention.retention_ms === null ? "forever" : fmt.ms(retention.retention_ms)}</b><span>retention${retention.retention_bytes === null ? "" : ` · ${fmt.bytes(retention.retention_bytes)}`}</span></div>
<div class="card"><b>${retention.fsync || "–"}</b><span>fsync</span></div>
</div>
<h2>Publish rate</h2>${raw(chart)}
<h2>Partitions</h2>
<table class="grid" id="partitions"><thead><tr><th class="num">partition</th><th class="num">start offset</th><th class="num">end offset</th><th class="num">messages</th><th class="num">size</th></tr></thead>
<tbody>${t.partition_list.map((p) => html`<tr><td class="num">${p.partition}</td><td class="num">${fmt.int(p.start_offset)}</td><td class="num">${fmt.int(p.end_offset)}</td><td class="num">${fmt.int(p.messages)}</td><td class="num">${fmt.bytes(p.size_bytes)}</td></tr>`)}</tbody></table>
<div class="two">
<div><h2>Written by</h2><ul class="plain">${publishers.length ? publishers.map((e) => html`<li>${e.service} <span class="muted">${fmt.rate(e.rate)}</span></li>`) : html`<li class="muted">nobody yet</li>`}</ul></div>
<div><h2>Read by</h2><ul class="plain">${consumers.length ? consumers.map((g) => html`<li><a href="${link("groups", g.group)}">${g.group}</a> <span class="muted">lag ${fmt.int(g.lag)}</span></li>`) : html`<li class="muted">no group yet</li>`}</ul></div>
</div>
<h2>Settings</h2>
<table class="grid narrow"><tbody>${Object.entries(t.config).sort().map(([k, v]) => html`<tr><td>${k}</td><td>${v}</td></tr>`)}</tbody></table>
</section>`,
    );
  };
  if (store.snapshot) update(store.snapshot);
  return { update };
}
