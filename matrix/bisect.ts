/**
 * Where a case's verdict changes along the kernel timeline: the search, with the kernel runner
 * injected (cli/bisect.ts opens `vm:RELEASE` backends; test/bisect.test.ts uses fake kernels).
 *
 * Order of runs:
 *   1. the newest available build of every series, oldest series first;
 *   2. the oldest available build of every series with more than one build (a series can change
 *      inside itself: 5.10.0-32 predates the Aug 2025 fixes, 5.10.0-46 has them);
 *   3. a binary search between two runs of one series whose verdicts differ, down to two
 *      adjacent available builds.
 * Between series nothing is left to search: the change lies between the newest build of the
 * one and the oldest of the next. The search assumes one change per series (as any bisect);
 * a verdict that flips back and forth inside a series is reported where the search met it.
 * A kernel that cannot run (not provisionable, no headers for the test PMU, boot failure) is
 * skipped and reported; the search then uses its nearest available neighbours.
 */

/** What one kernel said about the case. `key` decides "same or changed"; `label` is for people. */
export interface KernelVerdict {
  key: string;
  label: string;
  /** e.g. the profile that judged, the observed outcomes */
  detail?: string;
}

/** The kernel could not run the case; the search skips it. */
export class KernelUnavailable extends Error {
  constructor(message: string) {
    super(message);
    this.name = "KernelUnavailable";
  }
}

export type KernelRunner = (release: string) => Promise<KernelVerdict>;

export interface SeriesBuilds {
  series: string;
  /** Releases of the series, oldest first. */
  releases: readonly string[];
}

export interface BisectRun { release: string; series: string; verdict: KernelVerdict }
export interface BisectSkip { release: string; series: string; why: string }
export interface BisectSegment { from: string; to: string; verdict: KernelVerdict; runs: number }
export interface BisectChange {
  /** the last run with the old verdict and the first with the new (adjacent among available builds) */
  last: string;
  first: string;
  from: KernelVerdict;
  to: KernelVerdict;
  /** "series": between two series; "build": inside one */
  where: "series" | "build";
  /** builds between the two that could not be run */
  unavailableBetween: string[];
}

export interface BisectResult {
  /** runs in the order they were made */
  runs: BisectRun[];
  skipped: BisectSkip[];
  /** runs in version order, equal neighbours merged */
  segments: BisectSegment[];
  changes: BisectChange[];
  /** series with no available build */
  seriesUnavailable: string[];
  summary: string;
}

export interface BisectOptions {
  log?: (msg: string) => void;
}

/**
 * Run the search. `series` in version order, each with its releases oldest first (the caller
 * sorts: hwtest/vm/release.ts compareReleases).
 */
export async function bisect(series: readonly SeriesBuilds[], run: KernelRunner, opts: BisectOptions = {}): Promise<BisectResult> {
  const log = opts.log ?? (() => {});
  const runs: BisectRun[] = [];
  const skipped: BisectSkip[] = [];
  const done = new Map<string, KernelVerdict | null>(); // null: unavailable

  const seriesOfRelease = new Map<string, string>();
  for (const s of series) for (const r of s.releases) seriesOfRelease.set(r, s.series);

  async function at(release: string): Promise<KernelVerdict | null> {
    if (done.has(release)) return done.get(release)!;
    const s = seriesOfRelease.get(release)!;
    log(`running ${release}`);
    try {
      const v = await run(release);
      done.set(release, v);
      runs.push({ release, series: s, verdict: v });
      log(`  ${release}: ${v.label}`);
      return v;
    } catch (e) {
      if (!(e instanceof KernelUnavailable)) throw e;
      done.set(release, null);
      skipped.push({ release, series: s, why: e.message });
      log(`  ${release}: unavailable (${e.message})`);
      return null;
    }
  }

  /** The first available build scanning `idx` in order, or -1. */
  async function firstAvailable(rels: readonly string[], idx: readonly number[]): Promise<number> {
    for (const i of idx) if ((await at(rels[i])) !== null) return i;
    return -1;
  }

  // 1. newest available build per series
  const newest = new Map<string, number>();
  for (const s of series) {
    const n = s.releases.length;
    const i = await firstAvailable(s.releases, [...Array(n).keys()].reverse());
    if (i >= 0) newest.set(s.series, i);
  }
  // 2. oldest available build below the newest
  const oldest = new Map<string, number>();
  for (const s of series) {
    const hi = newest.get(s.series);
    if (hi === undefined) continue;
    const i = hi > 0 ? await firstAvailable(s.releases, [...Array(hi).keys()]) : -1;
    oldest.set(s.series, i >= 0 ? i : hi);
  }
  // 3. binary search inside a series where its two ends differ
  for (const s of series) {
    const rels = s.releases;
    let lo = oldest.get(s.series);
    let hi = newest.get(s.series);
    if (lo === undefined || hi === undefined || lo === hi) continue;
    let vlo = done.get(rels[lo])!;
    const vhi = done.get(rels[hi])!;
    if (vlo.key === vhi.key) continue;
    // invariant: rels[lo] has vlo (!= vhi), rels[hi] has vhi; find adjacent available builds
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      // the nearest available build to mid inside (lo, hi), alternating outwards
      const order: number[] = [];
      for (let d = 0; mid - d > lo || mid + d < hi; d++) {
        if (mid + d < hi) order.push(mid + d);
        if (d > 0 && mid - d > lo) order.push(mid - d);
      }
      const m = await firstAvailable(rels, order);
      if (m < 0) break; // nothing between lo and hi can run
      const vm = done.get(rels[m])!;
      if (vm.key === vhi.key) {
        hi = m;
      } else {
        lo = m;
        vlo = vm;
      }
    }
  }

  // the runs in version order, merged
  const ordered: BisectRun[] = [];
  for (const s of series) for (const r of s.releases) {
    const v = done.get(r);
    if (v) ordered.push({ release: r, series: s.series, verdict: v });
  }
  const segments: BisectSegment[] = [];
  for (const r of ordered) {
    const last = segments[segments.length - 1];
    if (last && last.verdict.key === r.verdict.key) { last.to = r.release; last.runs++; } else segments.push({ from: r.release, to: r.release, verdict: r.verdict, runs: 1 });
  }
  const allReleases = series.flatMap((s) => s.releases);
  const changes: BisectChange[] = [];
  for (let i = 1; i < segments.length; i++) {
    const a = segments[i - 1], b = segments[i];
    const ia = allReleases.indexOf(a.to), ib = allReleases.indexOf(b.from);
    const between = allReleases.slice(ia + 1, ib).filter((r) => done.get(r) === null);
    changes.push({
      last: a.to, first: b.from, from: a.verdict, to: b.verdict,
      where: seriesOfRelease.get(a.to) === seriesOfRelease.get(b.from) ? "build" : "series",
      unavailableBetween: between,
    });
  }
  const seriesUnavailable = series.filter((s) => !newest.has(s.series)).map((s) => s.series);
  return { runs, skipped, segments, changes, seriesUnavailable, summary: summarize(segments, skipped, seriesUnavailable) };
}

/** "accepted up to X; known divergence D from Y on" */
export function summarize(segments: readonly BisectSegment[], skipped: readonly BisectSkip[] = [], seriesUnavailable: readonly string[] = []): string {
  const parts: string[] = [];
  if (segments.length === 0) parts.push("no kernel could run the case");
  else if (segments.length === 1) {
    const s = segments[0];
    parts.push(`${s.verdict.label} on every kernel run (${s.from}${s.from !== s.to ? ` .. ${s.to}` : ""})`);
  } else {
    segments.forEach((s, i) => {
      if (i === 0) parts.push(`${s.verdict.label} up to ${s.to}`);
      else if (i === segments.length - 1) parts.push(`${s.verdict.label} from ${s.from} on`);
      else parts.push(`${s.verdict.label} from ${s.from} to ${s.to}`);
    });
  }
  let out = parts.join("; ");
  if (skipped.length) out += ` (skipped, unavailable: ${skipped.map((s) => s.release).join(", ")})`;
  if (seriesUnavailable.length) out += ` (series with no runnable build: ${seriesUnavailable.join(", ")})`;
  return out;
}

/** Parse "--kernels 5.10..7.3" (or "6.1,6.12,7.3", or "6.18"): a predicate on series. */
export function seriesFilter(spec: string | undefined): (series: string) => boolean {
  if (!spec) return () => true;
  const key = (s: string) => s.split(".").map(Number);
  const cmp = (a: string, b: string) => { const x = key(a), y = key(b); return x[0] - y[0] || x[1] - y[1]; };
  if (spec.includes("..")) {
    const [lo, hi] = spec.split("..");
    return (s) => (!lo || cmp(s, lo) >= 0) && (!hi || cmp(s, hi) <= 0);
  }
  const set = new Set(spec.split(",").map((x) => x.trim()));
  return (s) => set.has(s);
}
