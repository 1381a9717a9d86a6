// The flow map as an SVG graph, laid out by hand: services and topics in layers, the way events
// move (checkout -> orders.placed -> inventory -> stock.reserved -> shipping -> ...).
//
// layoutFlow is pure (flow map in, coordinates out). Layers are longest paths from the nodes
// nothing feeds, with edges that close a cycle set aside (drawn as a loop below); nodes within
// a layer are ordered by the mean position of their neighbours (a few barycenter sweeps), which
// keeps most edges short and uncrossed. Edge width grows with the rate (log scale); a consuming
// edge carries its group's lag and processing delay, red when the group is in trouble.

import { esc, fmt, link } from "./dom.js";
import { isDeadLetterTopic } from "./store.js";

const NODE_W = 168;
const NODE_H = 46;
const GAP_X = 190;
const GAP_Y = 34;
const PAD = 24;

export function edgeWidth(rate) {
  return 1.5 + Math.min(9, 2 * Math.log2(1 + (rate || 0)));
}

function edgeKey(e) {
  return `${e.kind}:${e.source}>${e.target}:${e.group ?? ""}`;
}

/** Node and edge positions for `flow` (the /api/flow body). */
export function layoutFlow(flow) {
  const nodes = new Map();
  for (const s of flow.services) nodes.set(`service:${s.name}`, { id: `service:${s.name}`, kind: "service", name: s.name, data: s });
  const edges = flow.edges.filter((e) => !isDeadLetterTopic(e.topic));
  const linked = new Set(edges.flatMap((e) => [e.source, e.target]));
  for (const t of flow.topics) {
    const id = `topic:${t.name}`;
    if (isDeadLetterTopic(t.name) && !linked.has(id)) continue; // shown on the consuming edge instead
    nodes.set(id, { id, kind: "topic", name: t.name, data: t });
  }
  const out = new Map([...nodes.keys()].map((id) => [id, []]));
  const inn = new Map([...nodes.keys()].map((id) => [id, []]));
  for (const e of edges) {
    if (!nodes.has(e.source) || !nodes.has(e.target)) continue;
    out.get(e.source).push(e.target);
    inn.get(e.target).push(e.source);
  }
  // Depth-first from the roots: an edge to a node still on the stack closes a cycle.
  const back = new Set();
  const state = new Map();
  const order = [];
  const visit = (id) => {
    state.set(id, 1);
    for (const next of out.get(id)) {
      if (state.get(next) === 1) back.add(`${id}>${next}`);
      else if (!state.has(next)) visit(next);
    }
    state.set(id, 2);
    order.push(id);
  };
  const ids = [...nodes.keys()].sort();
  for (const id of ids) if (inn.get(id).length === 0 && !state.has(id)) visit(id);
  for (const id of ids) if (!state.has(id)) visit(id);
  order.reverse(); // a topological order of the forward edges
  const layer = new Map(ids.map((id) => [id, 0]));
  for (const id of order) {
    for (const next of out.get(id)) {
      if (!back.has(`${id}>${next}`)) layer.set(next, Math.max(layer.get(next), layer.get(id) + 1));
    }
  }
  const layers = [];
  for (const id of ids) {
    const l = layer.get(id);
    (layers[l] ||= []).push(id);
  }
  for (let i = 0; i < layers.length; i += 1) layers[i] ||= [];
  // Barycenter sweeps: down by predecessors, up by successors.
  const position = new Map();
  const place = () => layers.forEach((ids) => ids.forEach((id, i) => position.set(id, i)));
  place();
  const mean = (list, own) => (list.length ? list.reduce((a, id) => a + position.get(id), 0) / list.length : own);
  for (let sweep = 0; sweep < 4; sweep += 1) {
    const down = sweep % 2 === 0;
    const range = down ? layers.keys() : [...layers.keys()].reverse();
    for (const l of range) {
      const key = (id) => mean(down ? inn.get(id) : out.get(id), position.get(id));
      layers[l].sort((a, b) => key(a) - key(b) || a.localeCompare(b));
      layers[l].forEach((id, i) => position.set(id, i));
    }
  }
  const tallest = Math.max(1, ...layers.map((ids) => ids.length));
  const height = PAD * 2 + tallest * NODE_H + (tallest - 1) * GAP_Y;
  for (const [l, ids] of layers.entries()) {
    const column = ids.length * NODE_H + (ids.length - 1) * GAP_Y;
    ids.forEach((id, i) => {
      const node = nodes.get(id);
      node.layer = l;
      node.x = PAD + l * (NODE_W + GAP_X);
      node.y = (height - column) / 2 + i * (NODE_H + GAP_Y);
      node.w = NODE_W;
      node.h = NODE_H;
    });
  }
  const width = PAD * 2 + layers.length * NODE_W + Math.max(layers.length - 1, 0) * GAP_X;
  const seen = new Map();
  const placed = [];
  let lanes = 0;
  for (const e of edges) {
    const a = nodes.get(e.source);
    const b = nodes.get(e.target);
    if (!a || !b) continue;
    const pair = `${e.source}>${e.target}`;
    const nth = seen.get(pair) || 0;
    seen.set(pair, nth + 1);
    const x1 = a.x + a.w;
    const y1 = a.y + a.h / 2 + nth * 6;
    const x2 = b.x;
    const y2 = b.y + b.h / 2 + nth * 6;
    const isBack = back.has(pair) || b.layer <= a.layer;
    let path;
    let lx;
    let ly;
    if (isBack) {
      // Against the flow: a U below every node, in a lane of its own, so it crosses nothing.
      const lane = height + 14 + lanes * 30;
      lanes += 1;
      path = `M${x1},${y1} C${x1 + 50},${y1} ${x1 + 50},${lane} ${x1},${lane} L${x2},${lane} C${x2 - 50},${lane} ${x2 - 50},${y2} ${x2},${y2}`;
      lx = (x1 + x2) / 2;
      ly = lane;
    } else {
      const dx = Math.max((x2 - x1) / 2, 40);
      const c1 = [x1 + dx, y1];
      const c2 = [x2 - dx, y2];
      path = `M${x1},${y1} C${c1[0]},${c1[1]} ${c2[0]},${c2[1]} ${x2},${y2}`;
      // The label sits past the middle, where edges fanning out of one topic have moved apart.
      const t = 0.62;
      const bez = (p0, p1, p2, p3) => (1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * p1 + 3 * (1 - t) * t ** 2 * p2 + t ** 3 * p3;
      lx = bez(x1, c1[0], c2[0], x2);
      ly = bez(y1, c1[1], c2[1], y2) + nth * 26;
    }
    placed.push({ ...e, key: edgeKey(e), path, lx, ly, back: isBack, width: edgeWidth(e.rate) });
  }
  const hasBack = placed.some((e) => e.back);
  return { nodes: [...nodes.values()], edges: placed, width, height: height + lanes * 30 + (hasBack ? 20 : 0) };
}

function nodeSvg(node, troubled) {
  const d = node.data;
  const sub =
    node.kind === "service"
      ? `${d.instances.length} instance${d.instances.length === 1 ? "" : "s"} · ${fmt.rate(d.publish_rate + d.deliver_rate)}`
      : `${d.partitions} part. · ${fmt.int(d.messages)} msgs · ${fmt.rate(d.publish_rate)}`;
  const href = node.kind === "topic" ? link("topics", node.name) : "";
  const offline = node.kind === "service" && d.instances.length === 0 ? " offline" : "";
  const missing = node.kind === "topic" && !d.exists ? " missing" : "";
  const red = troubled ? " red" : "";
  const title = node.kind === "service"
    ? `service ${d.name}\npublishes: ${d.publishes.join(", ") || "–"}\nsubscribes: ${d.subscribes.join(", ") || "–"}\nlast seen ${fmt.time(d.last_seen)}`
    : `topic ${d.name}${d.exists ? "" : " (not created yet)"}`;
  return `<g class="node ${node.kind}${offline}${missing}${red}" data-key="${esc(node.id)}" data-name="${esc(node.name)}"${href ? ` data-href="${esc(href)}"` : ""} transform="translate(${node.x},${node.y})">
<title>${esc(title)}</title>
<rect width="${node.w}" height="${node.h}" rx="${node.kind === "topic" ? 4 : 12}"/>
<text class="name" x="10" y="19">${esc(clip(node.name, 22))}</text>
<text class="sub" x="10" y="36">${esc(sub)}</text>
</g>`;
}

function clip(text, n) {
  return text.length > n ? `${text.slice(0, n - 1)}…` : text;
}

function edgeLabel(e, deadLetters) {
  if (e.kind !== "consume") return "";
  const d = e.processing_delay;
  const lines = [];
  if (e.group && e.group !== e.service) lines.push(clip(e.group, 28));
  lines.push(`lag ${fmt.int(e.lag)} · ${d ? `${fmt.ms(d.p50_ms)} / ${fmt.ms(d.p99_ms)}` : "no delay yet"}`);
  if (deadLetters) lines.push(`${fmt.int(deadLetters)} dead letter${deadLetters === 1 ? "" : "s"}`);
  return lines;
}

/** The whole SVG for `flow`; `troubleOf(group)` and `deadLettersOf(group)` come from the store. */
export function flowSvg(flow, { troubleOf = () => [], deadLettersOf = () => 0 } = {}) {
  const layout = layoutFlow(flow);
  const redTopics = new Set();
  const edges = [];
  const labels = [];
  for (const e of layout.edges) {
    const reasons = e.group ? troubleOf(e.group) : [];
    const red = reasons.length > 0;
    if (red) redTopics.add(e.source);
    const moving = e.rate > 0 ? " moving" : "";
    const href = e.group ? ` data-href="${esc(link("groups", e.group))}"` : "";
    const tip = `${e.source} → ${e.target}${e.group ? ` (group ${e.group})` : ""}\n${fmt.rate(e.rate)} · ${fmt.bytes(e.byte_rate)}/s${reasons.length ? `\n${reasons.join(", ")}` : ""}`;
    edges.push(`<path class="edge ${e.kind}${moving}${red ? " red" : ""}${e.back ? " back" : ""}" data-key="${esc(e.key)}"${href} d="${e.path}" stroke-width="${e.width.toFixed(1)}" marker-end="url(#arrow${red ? "-red" : ""})"><title>${esc(tip)}</title></path>`);
    const lines = edgeLabel(e, e.group ? deadLettersOf(e.group) : 0);
    if (lines) {
      const h = lines.length * 14 + 6;
      const w = Math.max(...lines.map((l) => l.length)) * 6.6 + 12;
      const tspans = lines.map((l, i) => `<tspan x="${(w / 2).toFixed(1)}" y="${14 + i * 14}">${esc(l)}</tspan>`).join("");
      labels.push(`<g class="label${red ? " red" : ""}" data-key="label:${esc(e.key)}"${href} transform="translate(${(e.lx - w / 2).toFixed(1)},${(e.ly - h / 2).toFixed(1)})"><rect width="${w.toFixed(1)}" height="${h}" rx="4"/><text>${tspans}</text></g>`);
    }
  }
  const nodes = layout.nodes.map((n) => nodeSvg(n, redTopics.has(n.id) && n.kind === "topic"));
  return `<svg id="flow-svg" xmlns="http://www.w3.org/2000/svg" style="max-width:${layout.width}px" viewBox="0 0 ${layout.width} ${layout.height}" role="img" aria-label="flow map">
<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerUnits="userSpaceOnUse" markerWidth="11" markerHeight="11" orient="auto"><path d="M0,0 L10,5 L0,10 z" class="arrow"/></marker>
<marker id="arrow-red" viewBox="0 0 10 10" refX="9" refY="5" markerUnits="userSpaceOnUse" markerWidth="11" markerHeight="11" orient="auto"><path d="M0,0 L10,5 L0,10 z" class="arrow red"/></marker></defs>
<g class="edges" data-key="edges">${edges.join("")}</g>
<g class="nodes" data-key="nodes">${nodes.join("")}</g>
<g class="labels" data-key="labels">${labels.join("")}</g>
</svg>`;
}

/**
 * Make `old` look like `fresh` touching only what changed: keyed children are matched by
 * data-key and patched attribute by attribute, so a running CSS animation (the dashes that
 * move along a busy edge) is not restarted every second.
 */
export function morph(old, fresh) {
  if (old.tagName !== fresh.tagName) {
    old.replaceWith(fresh);
    return;
  }
  for (const { name, value } of fresh.attributes) if (old.getAttribute(name) !== value) old.setAttribute(name, value);
  for (const { name } of [...old.attributes]) if (!fresh.hasAttribute(name)) old.removeAttribute(name);
  const freshKids = [...fresh.children];
  if (freshKids.length === 0 || freshKids.some((k) => !k.dataset.key)) {
    if (old.innerHTML !== fresh.innerHTML) old.innerHTML = fresh.innerHTML;
    return;
  }
  const byKey = new Map([...old.children].map((k) => [k.dataset.key, k]));
  let previous = null;
  for (const kid of freshKids) {
    const match = byKey.get(kid.dataset.key);
    byKey.delete(kid.dataset.key);
    const node = match || kid;
    if (match) morph(match, kid);
    const expected = previous ? previous.nextElementSibling : old.firstElementChild;
    if (expected !== node) old.insertBefore(node, expected);
    previous = node;
  }
  for (const gone of byKey.values()) gone.remove();
}

/** The flow page: the map, redrawn from every snapshot. */
export function mount(root, _params, { store, navigate }) {
  root.innerHTML = `<section class="flow-page"><div class="page-head"><h1>Flow map</h1>
<p class="hint">Services → topics → services. Width: rate. Consuming edges: group lag · processing delay p50 / p99. Red: lag above limit or growing, dead letters growing.</p></div>
<div id="flow" class="flow"><p class="muted">waiting for the first snapshot…</p></div></section>`;
  const box = root.querySelector("#flow");
  box.addEventListener("click", (event) => {
    const target = event.target.closest("[data-href]");
    if (target) navigate(target.dataset.href);
  });
  const deadLettersOf = (group) => store.snapshot?.groups.find((g) => g.group === group)?.dead_letters || 0;
  const update = (snapshot) => {
    const flow = snapshot.flow;
    if (flow.services.length === 0 && flow.topics.length === 0) {
      box.innerHTML = `<p class="muted">No services or topics yet: connect a service (<code>tidings.connect(url, service="name")</code>) or publish to a topic.</p>`;
      return;
    }
    const template = document.createElement("template");
    template.innerHTML = flowSvg(flow, { troubleOf: (g) => store.trouble(g), deadLettersOf });
    const fresh = template.content.firstElementChild;
    const current = box.querySelector("#flow-svg");
    if (current) morph(current, fresh);
    else box.replaceChildren(fresh);
  };
  if (store.snapshot) update(store.snapshot);
  return { update };
}
