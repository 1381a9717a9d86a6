// Small DOM and formatting helpers shared by every page. No framework: pages build
// HTML strings with `html` (which escapes every interpolated value) or patch nodes in place.

const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

/** Text made safe for HTML (content and quoted attribute values). */
export function esc(value) {
  return String(value ?? "").replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

/** A trusted fragment: `html` leaves it as it is instead of escaping it. */
export class Raw {
  constructor(text) {
    this.text = text;
  }
  toString() {
    return this.text;
  }
}

/** Tagged template: interpolations are escaped unless Raw; arrays are joined. */
export function html(strings, ...values) {
  let out = strings[0];
  values.forEach((value, i) => {
    out += render(value) + strings[i + 1];
  });
  return new Raw(out);
}

function render(value) {
  if (value instanceof Raw) return value.text;
  if (Array.isArray(value)) return value.map(render).join("");
  if (value === null || value === undefined || value === false) return "";
  return esc(value);
}

export function setHtml(element, fragment) {
  element.innerHTML = render(fragment);
}

export const fmt = {
  int(n) {
    return n === null || n === undefined ? "–" : Math.round(n).toLocaleString("en-US");
  },
  rate(r) {
    if (r === null || r === undefined) return "–";
    if (r === 0) return "0/s";
    if (r < 10) return `${r.toFixed(1)}/s`;
    return `${fmt.int(r)}/s`;
  },
  ms(v) {
    if (v === null || v === undefined) return "–";
    if (v < 1000) return `${v < 10 ? v.toFixed(1) : Math.round(v)} ms`;
    if (v < 60_000) return `${(v / 1000).toFixed(1)} s`;
    if (v < 3_600_000) return `${(v / 60_000).toFixed(1)} min`;
    return `${(v / 3_600_000).toFixed(1)} h`;
  },
  bytes(n) {
    if (n === null || n === undefined) return "–";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) {
      n /= 1024;
      i += 1;
    }
    return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
  },
  time(ms) {
    if (!ms) return "–";
    const d = new Date(ms);
    return `${d.toLocaleDateString("sv-SE")} ${d.toLocaleTimeString("en-GB")}.${String(d.getMilliseconds()).padStart(3, "0")}`;
  },
  ago(ms, now = Date.now()) {
    return ms ? `${fmt.ms(Math.max(now - ms, 0))} ago` : "–";
  },
};

/** JSON pretty-printed, with spans for syntax colours; every piece of text escaped. */
export function prettyJson(value, indent = 0) {
  const pad = "  ".repeat(indent);
  const inner = "  ".repeat(indent + 1);
  if (value === null) return '<span class="j-null">null</span>';
  if (typeof value === "string") return `<span class="j-str">${esc(JSON.stringify(value))}</span>`;
  if (typeof value === "number") return `<span class="j-num">${esc(String(value))}</span>`;
  if (typeof value === "boolean") return `<span class="j-bool">${value}</span>`;
  if (Array.isArray(value)) {
    if (value.length === 0) return "[]";
    const items = value.map((v) => inner + prettyJson(v, indent + 1));
    return `[\n${items.join(",\n")}\n${pad}]`;
  }
  const keys = Object.keys(value);
  if (keys.length === 0) return "{}";
  const items = keys.map(
    (k) => `${inner}<span class="j-key">${esc(JSON.stringify(k))}</span>: ${prettyJson(value[k], indent + 1)}`,
  );
  return `{\n${items.join(",\n")}\n${pad}}`;
}

/** GET or POST JSON; throws an Error carrying the API's `detail` on a non-2xx answer. */
export async function api(path, { method = "GET", body } = {}) {
  const response = await fetch(path, {
    method,
    headers: body === undefined ? {} : { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const detail = data && (data.detail || data.error);
    throw new Error(`${response.status}: ${detail || response.statusText}`);
  }
  return data;
}

/** Parse `#/a/b?x=1` into {parts: ["a", "b"], query: URLSearchParams}. */
export function parseHash(hash) {
  const text = hash.replace(/^#\/?/, "");
  const [path, search = ""] = text.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { parts, query: new URLSearchParams(search) };
}

export function link(...parts) {
  return `#/${parts.map(encodeURIComponent).join("/")}`;
}

/** Mark trusted markup (an SVG string built with esc) for `html`. */
export function raw(text) {
  return new Raw(text);
}
