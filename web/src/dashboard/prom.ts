/**
 * A parser for the Prometheus text format (version 0.0.4) as `GET /metrics` writes it, and
 * the readings the dashboard takes from it: a family's samples, sums over labels,
 * histograms (cumulative buckets turned into per-bucket counts), and rates between two
 * scrapes (a counter that went down restarted: its rate counts from zero).
 */

export type Labels = Record<string, string>;

export interface Sample {
  /** The sample's own name (`…_bucket`, `…_sum`, `…_count` for histograms). */
  name: string;
  labels: Labels;
  value: number;
}

export interface Family {
  name: string;
  type: string;
  help: string;
  samples: Sample[];
}

export type Metrics = Map<string, Family>;

const SUFFIXES = ["_bucket", "_sum", "_count", "_total", "_created"];

/** Parses an exposition. Malformed lines are skipped (a scrape must not break the page). */
export function parseMetrics(text: string): Metrics {
  const families: Metrics = new Map();
  const family = (name: string): Family => {
    let f = families.get(name);
    if (!f) {
      f = { name, type: "untyped", help: "", samples: [] };
      families.set(name, f);
    }
    return f;
  };
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "") continue;
    if (line.startsWith("#")) {
      const m = /^#\s+(HELP|TYPE)\s+([A-Za-z_:][A-Za-z0-9_:]*)\s*(.*)$/.exec(line);
      if (!m) continue;
      const f = family(m[2]!);
      if (m[1] === "TYPE") f.type = m[3]!.trim();
      else f.help = unescapeHelp(m[3]!);
      continue;
    }
    const sample = parseSample(line);
    if (!sample) continue;
    family(familyOf(sample.name, families)).samples.push(sample);
  }
  return families;
}

/** The family a sample belongs to: its own name if declared, else the name without a known suffix. */
function familyOf(name: string, families: Metrics): string {
  if (families.has(name)) return name;
  for (const s of SUFFIXES) {
    if (name.endsWith(s)) {
      const base = name.slice(0, -s.length);
      if (families.has(base)) return base;
    }
  }
  return name;
}

function unescapeHelp(s: string): string {
  return s.replace(/\\(\\|n)/g, (_, c: string) => (c === "n" ? "\n" : "\\"));
}

/** One sample line: `name{l="v",…} value [timestamp]`. */
export function parseSample(line: string): Sample | null {
  const nameMatch = /^[A-Za-z_:][A-Za-z0-9_:]*/.exec(line);
  if (!nameMatch) return null;
  const name = nameMatch[0];
  let i = name.length;
  const labels: Labels = {};
  if (line[i] === "{") {
    i += 1;
    for (;;) {
      while (line[i] === " " || line[i] === ",") i += 1;
      if (line[i] === "}") {
        i += 1;
        break;
      }
      const key = /^[A-Za-z_][A-Za-z0-9_]*/.exec(line.slice(i));
      if (!key) return null;
      i += key[0].length;
      while (line[i] === " ") i += 1;
      if (line[i] !== "=") return null;
      i += 1;
      while (line[i] === " ") i += 1;
      if (line[i] !== '"') return null;
      i += 1;
      let value = "";
      for (;;) {
        const c = line[i];
        if (c === undefined) return null;
        i += 1;
        if (c === '"') break;
        if (c === "\\") {
          const next = line[i];
          i += 1;
          value += next === "n" ? "\n" : (next ?? "");
        } else {
          value += c;
        }
      }
      labels[key[0]] = value;
    }
  }
  const rest = line.slice(i).trim().split(/\s+/);
  const value = parseValue(rest[0] ?? "");
  if (value === null) return null;
  return { name, labels, value };
}

function parseValue(s: string): number | null {
  switch (s) {
    case "+Inf":
    case "Inf":
      return Infinity;
    case "-Inf":
      return -Infinity;
    case "NaN":
      return NaN;
    case "":
      return null;
  }
  const n = Number(s);
  return Number.isNaN(n) ? null : n;
}

function matches(labels: Labels, want: Labels | undefined): boolean {
  if (!want) return true;
  return Object.entries(want).every(([k, v]) => labels[k] === v);
}

/** The sum of a family's samples named `name` (default: the family's name) whose labels include `want`; `null` when it has none. */
export function total(m: Metrics, family: string, want?: Labels, sampleName = family): number | null {
  const f = m.get(family);
  if (!f) return null;
  let sum = 0;
  let found = false;
  for (const s of f.samples) {
    if (s.name === sampleName && matches(s.labels, want)) {
      sum += s.value;
      found = true;
    }
  }
  return found ? sum : null;
}

/** A family's samples split by one label: `{labelValue: value}` (summed over other labels). */
export function byLabel(m: Metrics, family: string, label: string, sampleName = family): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of m.get(family)?.samples ?? []) {
    if (s.name !== sampleName) continue;
    const key = s.labels[label] ?? "";
    out[key] = (out[key] ?? 0) + s.value;
  }
  return out;
}

export interface Histogram {
  /** Upper bounds, ascending, `Infinity` last. */
  le: number[];
  /** Cumulative counts per upper bound. */
  cumulative: number[];
  count: number;
  sum: number;
}

/** A histogram family (`<name>_bucket`, `_sum`, `_count`), or `null` when absent. */
export function histogram(m: Metrics, family: string): Histogram | null {
  const f = m.get(family);
  if (!f) return null;
  const buckets = new Map<number, number>();
  for (const s of f.samples) {
    if (s.name !== `${family}_bucket`) continue;
    const le = parseValue(s.labels.le ?? "");
    if (le === null) continue;
    buckets.set(le, (buckets.get(le) ?? 0) + s.value);
  }
  if (buckets.size === 0) return null;
  const le = [...buckets.keys()].sort((a, b) => a - b);
  return {
    le,
    cumulative: le.map((b) => buckets.get(b) ?? 0),
    count: total(m, family, undefined, `${family}_count`) ?? 0,
    sum: total(m, family, undefined, `${family}_sum`) ?? 0,
  };
}

/** Per-bucket counts of `now` minus `before` (both cumulative, same bounds); `before` null: since start. */
export function bucketCounts(now: Histogram, before: Histogram | null): number[] {
  const cum = now.cumulative.map((c, i) => {
    const prev = before && before.le.length === now.le.length ? (before.cumulative[i] ?? 0) : 0;
    return c >= prev ? c - prev : c;
  });
  return cum.map((c, i) => Math.max(0, c - (i > 0 ? cum[i - 1]! : 0)));
}

/** The value under which a fraction `q` of the counted values lie (an upper bound, as buckets allow). */
export function quantile(le: number[], counts: number[], q: number): number | null {
  const n = counts.reduce((a, b) => a + b, 0);
  if (n === 0) return null;
  const target = q * n;
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    seen += counts[i]!;
    if (seen >= target) return le[i] ?? null;
  }
  return le.at(-1) ?? null;
}

/** The per-second rate of a counter between two readings `secs` apart (a reset counts from zero). */
export function rate(now: number | null, before: number | null, secs: number): number | null {
  if (now === null || before === null || secs <= 0) return null;
  const delta = now >= before ? now - before : now;
  return delta / secs;
}
