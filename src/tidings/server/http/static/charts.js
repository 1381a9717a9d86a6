// Charts as SVG strings: polylines over the store's history. At a few hundred points a
// full redraw per snapshot costs less than any diffing would.

import { esc } from "./dom.js";

function scale(points, width, height, pad, floorZero = true) {
  const times = points.map((p) => p[0]);
  const values = points.map((p) => p[1]);
  const t0 = Math.min(...times);
  const t1 = Math.max(...times);
  const v0 = floorZero ? 0 : Math.min(...values);
  const v1 = Math.max(...values, v0 + 1e-9);
  const x = (t) => pad + ((t - t0) / Math.max(t1 - t0, 1)) * (width - 2 * pad);
  const y = (v) => height - pad - ((v - v0) / (v1 - v0)) * (height - 2 * pad);
  return { x, y, v1 };
}

function polyline(points, x, y) {
  return points.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
}

/** A small line of `points` ([[time, value], ...]) for a table cell. */
export function sparkline(points, { width = 110, height = 24, cls = "" } = {}) {
  if (points.length < 2) return `<svg class="spark" width="${width}" height="${height}"></svg>`;
  const { x, y } = scale(points, width, height, 2);
  return `<svg class="spark ${esc(cls)}" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" aria-hidden="true"><polyline points="${polyline(points, x, y)}"/></svg>`;
}

/**
 * A chart of one or more series [{label, points, cls}], sharing one scale from zero,
 * with the maximum and the time span written on it.
 */
export function lineChart(series, { width = 640, height = 160, unit = "" } = {}) {
  const all = series.flatMap((s) => s.points);
  if (all.length < 2) {
    return `<div class="chart empty">collecting… (one point per second while this page is open)</div>`;
  }
  const pad = 6;
  const { x, y, v1 } = scale(all, width, height, pad);
  const span = Math.round((Math.max(...all.map((p) => p[0])) - Math.min(...all.map((p) => p[0]))) / 1000);
  const lines = series
    .filter((s) => s.points.length > 1)
    .map((s) => `<polyline class="${esc(s.cls || "")}" points="${polyline(s.points, x, y)}"><title>${esc(s.label)}</title></polyline>`)
    .join("");
  const legend = series
    .map((s) => `<span class="legend ${esc(s.cls || "")}">${esc(s.label)}</span>`)
    .join(" ");
  const top = v1 < 1e-6 ? 0 : Number.isInteger(v1) ? v1 : v1.toFixed(1);
  return `<div class="chart"><svg viewBox="0 0 ${width} ${height}" preserveAspectRatio="none" role="img">
<line class="axis" x1="${pad}" y1="${height - pad}" x2="${width - pad}" y2="${height - pad}"/>
${lines}</svg><div class="chart-meta"><span>max ${esc(top)}${esc(unit)}</span> ${legend} <span>last ${span} s</span></div></div>`;
}
