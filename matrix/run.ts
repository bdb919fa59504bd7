/**
 * The kernel matrix: one seeded program corpus, run on the host kernel and on each VM kernel
 * (Debian 6.1 and 6.12 under QEMU with the auxspec_pmu test module), every trace judged by the
 * spec under that kernel's profile, and a report (Markdown and a self-contained HTML page):
 * kernels x rules with hits and agreement, each divergence with its kernel, kind and program,
 * and how often the kernels observed the same outcomes.
 *
 *   npm run matrix -- [--seed N] [--programs N] [--max-ops N] [--kernels 6.1,6.12] [--no-host]
 *                     [--no-builtin] [--kernel bzImage --headers DIR] [--out DIR] [--strict]
 *
 * The corpus opens with the hand-written AUX programs of programs.ts (so the main AUX rules are
 * hit whatever the seed), then `--programs` random ones from fuzz/generate.ts.
 *
 * This file: the corpus and the runner (runMatrix, runColumn). The report model is report.ts,
 * its renderings markdown.ts and html.ts, the files write.ts; index.ts re-exports them all.
 *
 * Writes OUT/matrix.md, OUT/matrix.html, OUT/matrix.json and OUT/cases/*.json (each divergent
 * program as an auxspec-case/1, replayable with `npm run replay -- CASE --backend B`).
 * Exit status: 0 when the matrix ran (with --strict: and no unexplained divergence or aborted
 * trace), 1 for --strict failures, 2 for usage errors or when no backend could run.
 */
import fc from "fast-check";
import { BackendUnavailable, type Backend } from "../backend/contract.ts";
import { programArb } from "../fuzz/generate.ts";
import { matchKnown, type KnownDivergence } from "../fuzz/known.ts";
import { checkTrace } from "../spec/index.ts";
import type { Config, ProfileId, Program } from "../spec/program.ts";
import type { Trace, Verdict } from "../spec/trace.ts";
import { AUX_PROGRAMS } from "../hwtest/vm/programs.ts";

export interface MatrixOptions {
  seed: number;
  programs: number;
  maxOps: number;
  /** Put the hand-written AUX programs (programs.ts) ahead of the random ones (default true). */
  builtin?: boolean;
  log?: (msg: string) => void;
  /** Divergences already classified (cases/known-divergences.json). */
  known?: readonly KnownDivergence[];
  /** Run only the corpus programs whose index k has k % count === index (matrix/merge.ts merges the shards). */
  shard?: { index: number; count: number };
  /** Backends open at once (default: all). Beyond the first `concurrency` slots, a slot opens when an earlier one has run and closed. */
  concurrency?: number;
}

/** One kernel's column of the matrix. */
export interface Column {
  name: string;
  kernel: string | null;
  profile: ProfileId | null;
  config: Config | null;
  notes: string[];
  /** Why the backend could not run (then nothing else is set). */
  unavailable?: string;
  /** Indexes of corpus programs this backend ran (it skips programs with ops it cannot run). */
  ran: number[];
  skipped: Array<{ index: number; why: string }>;
  traces: Map<number, Trace>;
  verdicts: Map<number, Verdict>;
  known: Map<number, string>;
  /** rule id -> [hits, programs that hit it] */
  hits: Map<string, { hits: number; programs: number }>;
  seconds: number;
  /** Seconds to open the backend (provision + boot for VMs). */
  openSeconds: number;
  warnings: Array<{ index: number; lines: string[] }>;
}

export interface MatrixResult {
  options: { seed: number; programs: number; maxOps: number; shard?: { index: number; count: number } };
  /** Names of the hand-written programs at the start of the corpus (their index is their position). */
  builtin: string[];
  generatedWith: { backend: string; config: Config };
  corpus: Program[];
  columns: Column[];
  startedAt: string;
  seconds: number;
}

function optionsOf(opts: MatrixOptions): MatrixResult["options"] {
  return { seed: opts.seed, programs: opts.programs, maxOps: opts.maxOps, ...(opts.shard ? { shard: { index: opts.shard.index, count: opts.shard.count } } : {}) };
}

export interface BackendSlot {
  name: string;
  open: () => Promise<Backend>;
}

function emptyColumn(name: string): Column {
  return {
    name, kernel: null, profile: null, config: null, notes: [], ran: [], skipped: [], traces: new Map(), verdicts: new Map(),
    known: new Map(), hits: new Map(), seconds: 0, openSeconds: 0, warnings: [],
  };
}

/** The random corpus: `programs` programs from the lead's generator, seeded (same seed, same corpus). */
export function sampleCorpus(config: Config, seed: number, programs: number, maxOps: number): Program[] {
  return fc.sample(programArb({ config, maxOps }), { seed, numRuns: programs });
}

/** Run the corpus on one opened backend and judge every trace. */
export async function runColumn(col: Column, b: Backend, corpus: readonly Program[], opts: MatrixOptions): Promise<void> {
  const info = b.info;
  col.kernel = info.kernel;
  col.profile = info.profile;
  col.config = info.config;
  col.notes = [...info.notes];
  const runnable: number[] = [];
  corpus.forEach((p, i) => {
    if (opts.shard && i % opts.shard.count !== opts.shard.index) return; // another shard's
    const bad = p.find((op) => info.unsupported.has(op.op));
    if (bad) col.skipped.push({ index: i, why: `${info.name} cannot run ${bad.op}` });
    else runnable.push(i);
  });
  const t0 = performance.now();
  const traces = await b.run(runnable.map((i) => corpus[i]), info.config);
  col.seconds = (performance.now() - t0) / 1000;
  runnable.forEach((i, k) => {
    const trace = traces[k];
    const cov = new Map<string, number>();
    const v = checkTrace(corpus[i], info.config, info.profile, trace, cov);
    col.ran.push(i);
    col.traces.set(i, trace);
    col.verdicts.set(i, v);
    for (const [rule, n] of cov) {
      const h = col.hits.get(rule) ?? { hits: 0, programs: 0 };
      h.hits += n;
      h.programs += 1;
      col.hits.set(rule, h);
    }
    if (!v.accepted && opts.known) {
      const k = matchKnown(opts.known, v.divergence, v.profile, info, cov);
      if (k) col.known.set(i, k.id);
    }
    if (trace.audit?.warnings?.length) col.warnings.push({ index: i, lines: trace.audit.warnings });
  });
}

/**
 * Open each backend, run the corpus on it and judge. Up to `concurrency` backends are open and
 * running at once (each VM is one QEMU thread; the rest wait for a lane); one that cannot open
 * becomes a column that says why.
 * The corpus is generated with the config of the first backend whose config has an AUX PMU
 * (else the first one), so AUX paths are exercised; every backend runs it under its own config.
 */
export async function runMatrix(slots: readonly BackendSlot[], opts: MatrixOptions): Promise<MatrixResult> {
  const log = opts.log ?? (() => {});
  const startedAt = new Date().toISOString();
  const t0 = performance.now();
  const limit = Math.max(1, Math.min(opts.concurrency ?? slots.length, slots.length));
  const columns = slots.map((s) => emptyColumn(s.name));
  const backends: Array<Backend | null> = slots.map(() => null);
  const open = async (k: number): Promise<Backend | null> => {
    const s = slots[k];
    const t = performance.now();
    try {
      const b = await s.open();
      backends[k] = b;
      columns[k].openSeconds = (performance.now() - t) / 1000;
      log(`${s.name}: up (${b.info.kernel}, profile ${b.info.profile}) in ${columns[k].openSeconds.toFixed(1)} s`);
      return b;
    } catch (e) {
      const why = e instanceof BackendUnavailable ? e.message : `${(e as Error).message}`;
      columns[k].openSeconds = (performance.now() - t) / 1000;
      columns[k].unavailable = why;
      log(`${s.name}: unavailable: ${why.split("\n")[0]}`);
      return null;
    }
  };
  // The first `limit` slots open together (more, one batch at a time, until one is up); the
  // corpus is generated for the first of them (slot order) with an AUX PMU.
  let next = 0;
  while (next < slots.length && !backends.some((b) => b)) {
    const batch = Array.from({ length: Math.min(limit, slots.length - next) }, (_, j) => next + j);
    next += batch.length;
    await Promise.all(batch.map(open));
  }
  const up = backends.map((b, k) => ({ b, k })).filter((x) => x.b);
  const gen = up.find((x) => x.b!.info.config.pmus.aux !== null) ?? up[0];
  if (!gen) {
    return { options: optionsOf(opts), builtin: [], generatedWith: { backend: "none", config: null as unknown as Config }, corpus: [], columns, startedAt, seconds: (performance.now() - t0) / 1000 };
  }
  const genConfig = gen.b!.info.config;
  const builtin = opts.builtin === false ? [] : Object.keys(AUX_PROGRAMS);
  const corpus = [
    ...builtin.map((n) => AUX_PROGRAMS[n as keyof typeof AUX_PROGRAMS]),
    ...sampleCorpus(genConfig, opts.seed, opts.programs, opts.maxOps),
  ];
  log(`corpus: ${builtin.length} hand-written AUX programs + ${opts.programs} random (seed ${opts.seed}, up to ${opts.maxOps} ops) generated for ${slots[gen.k].name}'s config`);
  const runAndClose = async (k: number) => {
    const b = backends[k];
    if (!b) return;
    try {
      await runColumn(columns[k], b, corpus, opts);
      const c = columns[k];
      const div = [...c.verdicts.values()].filter((v) => !v.accepted).length;
      log(`${slots[k].name}: ${c.ran.length} programs in ${c.seconds.toFixed(1)} s, ${div} divergent, ${c.skipped.length} skipped`);
    } finally {
      backends[k] = null;
      await b.close();
    }
  };
  // A pool of `limit` lanes: the opened slots run first, then each lane opens the next slot.
  const lane = async (first: number | null) => {
    if (first !== null) await runAndClose(first);
    while (next < slots.length) {
      const k = next++;
      if (await open(k)) await runAndClose(k);
    }
  };
  const opened = backends.map((b, k) => (b ? k : -1)).filter((k) => k >= 0);
  try {
    await Promise.all(Array.from({ length: limit }, (_, j) => lane(opened[j] ?? null)));
  } finally {
    await Promise.all(backends.map((b) => b?.close()));
  }
  return {
    options: optionsOf(opts),
    builtin,
    generatedWith: { backend: slots[gen.k].name, config: genConfig },
    corpus, columns, startedAt, seconds: (performance.now() - t0) / 1000,
  };
}
