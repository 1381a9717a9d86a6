// The live state: one EventSource on /api/stream, the latest snapshot, and a short history
// of the figures the charts draw (kept here, client-side: the broker keeps no time series).
// Pages subscribe with `store.addEventListener("snapshot", ...)`; nothing else polls.

export const HISTORY_SECONDS = 600;
/** A group is red when its lag is above this many messages... */
export const LAG_LIMIT = 1000;
/** ...or when its lag grew in each of this many snapshots in a row. */
export const GROWING_STEPS = 5;

export function isDeadLetterTopic(name) {
  return name.includes(".dlq.");
}

/** Figures kept per snapshot: small, so ten minutes of history stay cheap. */
function sample(snapshot) {
  const topics = {};
  for (const t of snapshot.topics) {
    topics[t.name] = { rate: t.publish_rate, messages: t.messages, dlq: t.dead_letter_topic };
  }
  const groups = {};
  for (const g of snapshot.groups) {
    const d = g.processing_delay;
    groups[g.group] = {
      lag: g.lag,
      dead_letters: g.dead_letters,
      redeliveries: g.redeliveries,
      p50: d ? d.p50_ms : null,
      p99: d ? d.p99_ms : null,
    };
  }
  return { time: snapshot.time, topics, groups };
}

export class Store extends EventTarget {
  constructor(url = "/api/stream") {
    super();
    this.url = url;
    this.snapshot = null;
    this.history = [];
    this.status = "connecting";
    this.source = null;
  }

  connect() {
    this.source = new EventSource(this.url);
    this.source.addEventListener("snapshot", (event) => this.receive(JSON.parse(event.data)));
    this.source.addEventListener("open", () => this.setStatus("live"));
    this.source.addEventListener("error", () => this.setStatus("reconnecting")); // EventSource retries by itself
  }

  receive(snapshot) {
    this.snapshot = snapshot;
    this.history.push(sample(snapshot));
    const oldest = snapshot.time - HISTORY_SECONDS * 1000;
    while (this.history.length && this.history[0].time < oldest) this.history.shift();
    this.setStatus("live");
    this.dispatchEvent(new CustomEvent("snapshot", { detail: snapshot }));
  }

  setStatus(status) {
    if (status === this.status) return;
    this.status = status;
    this.dispatchEvent(new CustomEvent("status", { detail: status }));
  }

  /** [[time, value], ...] of `field` of topic or group `name` over the kept history. */
  series(kind, name, field) {
    const points = [];
    for (const s of this.history) {
      const item = s[kind][name];
      if (item && item[field] !== null && item[field] !== undefined) points.push([s.time, item[field]]);
    }
    return points;
  }

  /** Why group `name` is red (empty when it is fine): see troubleOf. */
  trouble(name) {
    return troubleOf(this.series("groups", name, "lag"), this.series("groups", name, "dead_letters"));
  }

  /** Dead-letter topics whose count grew within the history. */
  growingDeadLetters() {
    const first = this.history[0];
    const last = this.history[this.history.length - 1];
    if (!first || !last) return new Set();
    const grown = new Set();
    for (const [name, t] of Object.entries(last.topics)) {
      if (!t.dlq) continue;
      const before = first.topics[name];
      if (t.messages > (before ? before.messages : 0) && this.history.length > 1) grown.add(name);
    }
    return grown;
  }
}

/**
 * The reasons a group is red, from its lag and dead-letter series ([[time, value], ...]):
 * lag above LAG_LIMIT, lag that grew GROWING_STEPS snapshots in a row, dead letters that grew.
 * A pure function, so the rule is one place and easy to read.
 */
export function troubleOf(lags, deadLetters) {
  const reasons = [];
  const lag = lags.length ? lags[lags.length - 1][1] : 0;
  if (lag > LAG_LIMIT) reasons.push(`lag ${lag} > ${LAG_LIMIT}`);
  if (lags.length > GROWING_STEPS) {
    const tail = lags.slice(-GROWING_STEPS - 1).map((p) => p[1]);
    if (tail.every((v, i) => i === 0 || v > tail[i - 1])) reasons.push("lag growing");
  }
  if (deadLetters.length > 1 && deadLetters[deadLetters.length - 1][1] > deadLetters[0][1]) {
    reasons.push("dead letters growing");
  }
  return reasons;
}
