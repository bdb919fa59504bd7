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
import { BackendUnavailable, type Backend, type BackendInfo } from "../backend/contract.ts";
import { programArb } from "../fuzz/generate.ts";
import { matchKnown, type KnownDivergence } from "../fuzz/known.ts";
import { checkTrace } from "../spec/index.ts";
import type { Config, ProfileId, Program } from "../spec/program.ts";
import type { Trace, Verdict } from "../spec/trace.ts";
import { AUX_PROGRAMS } from "../hwtest/vm/programs.ts";
import type { MatrixJournal } from "./journal.ts";

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
  /** Programs per chunk (journal record and progress line; default CHUNK). */
  chunk?: number;
  /** Where the run journals its traces, and what an interrupted run left (journal.ts). */
  journal?: MatrixJournal;
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

/** The random corpus: `programs` programs from the lead's generator, seeded (same seed, same corpus).
 *  Never the model-only map_range() fault switch: no kernel column could run those programs. */
export function sampleCorpus(config: Config, seed: number, programs: number, maxOps: number): Program[] {
  return fc.sample(programArb({ config, maxOps, unsupported: MODEL_ONLY }), { seed, numRuns: programs });
}

const MODEL_ONLY: ReadonlySet<string> = new Set(["mapRangeFault"]);

/** Programs per chunk: each chunk is journaled and reported on the progress line. */
export const CHUNK = 200;

/** "1h02m", "3m05s", "42s". */
export function duration(s: number): string {
  if (!Number.isFinite(s) || s < 0) return "?";
  const t = Math.round(s);
  const h = Math.floor(t / 3600);
  const m = Math.floor((t % 3600) / 60);
  const sec = t % 60;
  return h ? `${h}h${String(m).padStart(2, "0")}m` : m ? `${m}m${String(sec).padStart(2, "0")}s` : `${sec}s`;
}

/** Judge one trace into the column. */
function judge(col: Column, i: number, program: Program, trace: Trace, info: BackendInfo, known: readonly KnownDivergence[] | undefined): Verdict {
  const cov = new Map<string, number>();
  const v = checkTrace(program, info.config, info.profile, trace, cov);
  col.traces.set(i, trace);
  col.verdicts.set(i, v);
  for (const [rule, n] of cov) {
    const h = col.hits.get(rule) ?? { hits: 0, programs: 0 };
    h.hits += n;
    h.programs += 1;
    col.hits.set(rule, h);
  }
  if (!v.accepted && known) {
    const k = matchKnown(known, v.divergence, v.profile, info, cov);
    if (k) col.known.set(i, k.id);
  }
  if (trace.audit?.warnings?.length) col.warnings.push({ index: i, lines: trace.audit.warnings });
  return v;
}

/** The column's lists in corpus order, whatever order the chunks (and sessions) came in. */
function canonical(col: Column): void {
  col.ran = [...col.traces.keys()].sort((a, b) => a - b);
  col.warnings.sort((a, b) => a.index - b.index);
  col.hits = new Map([...col.hits].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  col.verdicts = new Map(col.ran.map((i) => [i, col.verdicts.get(i)!]));
  col.traces = new Map(col.ran.map((i) => [i, col.traces.get(i)!]));
  col.known = new Map(col.ran.filter((i) => col.known.has(i)).map((i) => [i, col.known.get(i)!]));
}

/** What runColumn needs of a backend: its info, and run() unless every program is journaled. */
export interface ColumnBackend {
  info: BackendInfo;
  run?: Backend["run"];
}

/**
 * Run the corpus on one backend and judge every trace: the programs `done` already has (a
 * resumed run's journal) are judged, the others run in chunks of `opts.chunk`, each chunk
 * journaled (`onChunk`) and reported on a progress line.
 */
export async function runColumn(col: Column, b: ColumnBackend, corpus: readonly Program[], opts: MatrixOptions, done?: { traces: Map<number, Trace>; seconds: number }, onChunk?: (traces: Array<[number, Trace]>, seconds: number) => void): Promise<void> {
  const info = b.info;
  const log = opts.log ?? (() => {});
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
  let divergent = 0;
  let knownDiv = 0;
  const count = (i: number, v: Verdict) => {
    if (v.accepted) return;
    if (col.known.has(i)) knownDiv++;
    else divergent++;
  };
  const journaled = runnable.filter((i) => done?.traces.has(i));
  for (const i of journaled) count(i, judge(col, i, corpus[i], done!.traces.get(i)!, info, opts.known));
  const todo = runnable.filter((i) => !done?.traces.has(i));
  const total = runnable.length;
  const chunk = Math.max(1, opts.chunk ?? CHUNK);
  let seconds = done?.seconds ?? 0;
  if (journaled.length) log(`${col.name}: ${journaled.length}/${total} programs from the journal (${divergent} divergent, ${knownDiv} known); ${todo.length} to run`);
  if (todo.length && !b.run) throw new Error(`${col.name}: ${todo.length} programs to run and no backend`);
  const t0 = performance.now();
  for (let from = 0; from < todo.length; from += chunk) {
    const idx = todo.slice(from, from + chunk);
    const tc = performance.now();
    const traces = await b.run!(idx.map((i) => corpus[i]), info.config);
    const dt = (performance.now() - tc) / 1000;
    seconds += dt;
    onChunk?.(idx.map((i, k) => [i, traces[k]]), dt);
    idx.forEach((i, k) => count(i, judge(col, i, corpus[i], traces[k], info, opts.known)));
    const ranNow = from + idx.length;
    const elapsed = (performance.now() - t0) / 1000;
    const rate = ranNow / elapsed;
    const doneAll = journaled.length + ranNow;
    log(`${col.name}: ${doneAll}/${total} programs, ${rate.toFixed(1)}/s, ${divergent} divergent + ${knownDiv} known, ` +
      (doneAll < total ? `ETA ${duration((total - doneAll) / rate)}` : `done in ${duration(elapsed)}`));
  }
  col.seconds = seconds;
  canonical(col);
}

/**
 * Open each backend, run the corpus on it and judge. Up to `concurrency` backends are open and
 * running at once (each VM is one QEMU thread; the rest wait for a lane); one that cannot open
 * becomes a column that says why.
 * The corpus is generated with the config of the first backend whose config has an AUX PMU
 * (else the first one), so AUX paths are exercised; every backend runs it under its own config.
 * With a journal (opts.journal): every chunk of traces is journaled; a resumed run takes the
 * corpus config from the journal, runs on each backend only the programs the journal lacks,
 * and does not open a backend whose programs are all journaled.
 */
export async function runMatrix(slots: readonly BackendSlot[], opts: MatrixOptions): Promise<MatrixResult> {
  const log = opts.log ?? (() => {});
  const journal = opts.journal;
  const startedAt = new Date().toISOString();
  const t0 = performance.now();
  const limit = Math.max(1, Math.min(opts.concurrency ?? slots.length, slots.length));
  const columns = slots.map((s) => emptyColumn(s.name));
  const backends: Array<Backend | null> = slots.map(() => null);
  const fromJournal = slots.map((s) => journal?.read(s.name) ?? null);
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
  let next = 0;
  let gen: { backend: string; config: Config } | null = journal?.generatedWith ?? null;
  if (gen) {
    log(`resuming the run journaled in ${journal!.dir} (corpus generated for ${gen.backend}'s config)`);
  } else {
    // The first `limit` slots open together (more, one batch at a time, until one is up); the
    // corpus is generated for the first of them (slot order) with an AUX PMU.
    while (next < slots.length && !backends.some((b) => b)) {
      const batch = Array.from({ length: Math.min(limit, slots.length - next) }, (_, j) => next + j);
      next += batch.length;
      await Promise.all(batch.map(open));
    }
    const up = backends.map((b, k) => ({ b, k })).filter((x) => x.b);
    const g = up.find((x) => x.b!.info.config.pmus.aux !== null) ?? up[0];
    if (!g) {
      return { options: optionsOf(opts), builtin: [], generatedWith: { backend: "none", config: null as unknown as Config }, corpus: [], columns, startedAt, seconds: (performance.now() - t0) / 1000 };
    }
    gen = { backend: slots[g.k].name, config: g.b!.info.config };
    journal?.setGeneratedWith(gen);
  }
  const genConfig = gen.config;
  const builtin = opts.builtin === false ? [] : Object.keys(AUX_PROGRAMS);
  const corpus = [
    ...builtin.map((n) => AUX_PROGRAMS[n as keyof typeof AUX_PROGRAMS]),
    ...sampleCorpus(genConfig, opts.seed, opts.programs, opts.maxOps),
  ];
  log(`corpus: ${builtin.length} hand-written AUX programs + ${opts.programs} random (seed ${opts.seed}, up to ${opts.maxOps} ops) generated for ${gen.backend}'s config`);
  /** A slot whose every program the journal has: its column comes from the journal alone. */
  const journaledInfo = (k: number): ColumnBackend | null => {
    const j = fromJournal[k];
    if (!j?.info) return null;
    const info = { name: slots[k].name, ...j.info, unsupported: new Set(j.info.unsupported) };
    const missing = corpus.some((p, i) => (!opts.shard || i % opts.shard.count === opts.shard.index) && !p.some((op) => info.unsupported.has(op.op)) && !j.traces.has(i));
    return missing ? null : { info };
  };
  const runSlot = async (k: number, b: ColumnBackend) => {
    const name = slots[k].name;
    const j = fromJournal[k];
    const col = columns[k];
    if (j?.info) col.openSeconds = j.info.openSeconds; // the first session's boot
    else if (journal) {
      journal.writeInfo(name, {
        kernel: b.info.kernel, profile: b.info.profile, config: b.info.config, notes: [...b.info.notes],
        unsupported: [...b.info.unsupported].sort(), openSeconds: col.openSeconds,
      });
    }
    // A resumed kernel keeps the info (notes, config) of the session that first ran it.
    const cb: ColumnBackend = {
      info: j?.info ? { ...b.info, kernel: j.info.kernel, profile: j.info.profile, config: j.info.config, notes: j.info.notes } : b.info,
      ...(b.run ? { run: (ps: readonly Program[], c?: Config) => b.run!(ps, c) } : {}),
    };
    if (j?.info && b.run && j.info.kernel !== b.info.kernel) log(`${name}: warning: the journal's programs ran on ${j.info.kernel}, this session's on ${b.info.kernel}`);
    await runColumn(col, cb, corpus, opts, j ?? undefined, journal ? (traces, s) => journal.writeChunk(name, traces, s) : undefined);
    const div = [...col.verdicts.values()].filter((v) => !v.accepted).length;
    log(`${name}: ${col.ran.length} programs in ${col.seconds.toFixed(1)} s, ${div} divergent, ${col.skipped.length} skipped`);
  };
  const runAndClose = async (k: number) => {
    const b = backends[k];
    if (!b) return;
    try {
      await runSlot(k, b);
    } finally {
      backends[k] = null;
      await b.close();
    }
  };
  // A pool of `limit` lanes: the opened slots run first, then each lane opens the next slot
  // (or, when the journal has all its programs, takes its column from the journal).
  const lane = async (first: number | null) => {
    if (first !== null) await runAndClose(first);
    while (next < slots.length) {
      const k = next++;
      const j = journaledInfo(k);
      if (j) await runSlot(k, j);
      else if (await open(k)) await runAndClose(k);
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
    generatedWith: gen,
    corpus, columns, startedAt, seconds: (performance.now() - t0) / 1000,
  };
}
