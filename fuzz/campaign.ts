/**
 * A fuzzing campaign: generate -> run -> check -> shrink -> write, over one backend.
 *
 * Program i of seed s is always genesAt(s, i), so the same seed gives the same programs
 * and a divergence names the (seed, index) that produced it. Divergences are grouped by
 * signature (kind + rule): the first of each is shrunk, confirmed and written; later ones
 * only counted.
 *
 * Harness failures are not kernel findings: a trace the backend `aborted` (agent or guest
 * death, time-out, malformed reply) is run once more (on a fresh agent: the pool replaces a
 * worker that died or misbehaved), and when it aborts again it is counted as aborted, never
 * shrunk or written. On kernel backends a divergence must show again on a re-run before it
 * is shrunk; one that does not (or that no confirmation run reproduces) is flaky: reported
 * and written apart, not a finding. A trace may carry the config it actually ran under
 * (trace.config: the non-root host measures the user's locked_vm at the start); it is
 * judged under that config.
 */
import { checkTrace } from "../spec/index.ts";
import type { Config, ProfileId, Program } from "../spec/program.ts";
import type { Divergence, Trace } from "../spec/trace.ts";
import type { Backend } from "../backend/contract.ts";
import { decode, genesAt, type Gene, type GenOptions } from "./generate.ts";
import { shrink } from "./shrink.ts";
import { matchKnown, type KnownDivergence } from "./known.ts";

export interface CampaignOptions {
  backend: Backend;
  profile: ProfileId;
  seed: number;
  /** Stop after this many programs ... */
  runs?: number;
  /** ... or after this many seconds (whichever comes first; default 60 s when neither). */
  seconds?: number;
  /** Generate only indices i with i % stride === offset (process workers). */
  stride?: number;
  offset?: number;
  /** Programs handed to the backend at once. */
  batch?: number;
  maxOps?: number;
  minOps?: number;
  /** Generate multi-process/multi-user programs (default true; never where the backend lists
   *  `fork` as unsupported). See GenOptions.processes. */
  processes?: boolean;
  /** Generate threads and par blocks (issue 14; default true; never where the backend lists
   *  `par` as unsupported). See GenOptions.races. */
  races?: boolean;
  known?: readonly KnownDivergence[];
  /** Re-runs of a shrunk divergence on a kernel backend to confirm it. */
  confirmRuns?: number;
  /** Programs with a par block run this many times on a backend with runRepeated (each
   *  repetition judged; the first the spec rejects stands for the program). Default 1. */
  repeat?: number;
  /** Skip shrinking (workers that only count). */
  noShrink?: boolean;
  onProgress?: (s: CampaignStats) => void;
  onDivergence?: (f: Finding) => void;
  /** Set (SIGINT/SIGTERM) to stop generating; shrinking and confirmation stop early too. */
  stop?: { readonly aborted: boolean };
  /** Stop generating after the first unexplained divergence (shrunk and confirmed first), or
   *  once `enough.done` is set (another worker found one): `--first`. */
  stopAtFirst?: boolean;
  enough?: { readonly done: boolean };
}

export interface CampaignStats {
  programs: number;
  ops: number;
  seconds: number;
  divergences: number;
  known: number;
  /** Programs whose trace was aborted by the harness (after one retry): not judged. */
  aborted: number;
  /** Programs whose first trace was aborted and that were run again. */
  retried: number;
  /** Divergent programs whose divergence a re-run did not reproduce. */
  flaky: number;
  /** The first few abort reasons (first line each), for the report. */
  abortReasons: string[];
  coverage: Map<string, number>;
}

export interface Finding {
  signature: string;
  divergence: Divergence;
  seed: number;
  index: number;
  /** The program as generated, and as shrunk. */
  original: Program;
  shrunk: Program;
  shrinkRuns: number;
  /** Divergence of the shrunk program (its op index refers to the shrunk program). */
  shrunkDivergence: Divergence;
  /** Observed trace of the shrunk program. */
  trace: Trace;
  /** How many of `of` re-runs reproduced it (kernel backends). */
  confirmed: { reproduced: number; of: number } | null;
  known: KnownDivergence | null;
  /** A re-run did not reproduce it (kernel backends): not a finding; written under flaky/. */
  flaky: boolean;
  /** Further programs with the same signature. */
  count: number;
  /** Seconds into the campaign (this process's) when the program that first showed it was judged. */
  atSeconds: number;
}

/** The config a trace is judged under: the one it says it ran under, else the one asked for. */
export const judgedConfig = (trace: Trace, config: Config): Config => trace.config ?? config;

export const signatureOf = (d: Divergence): string => `${d.kind}:${d.rule}`;

export function genOptionsFor(backend: Backend, maxOps = 20, minOps = 1, processes = true, races = true): GenOptions {
  return { config: backend.info.config, maxOps, minOps, unsupported: backend.info.unsupported, processes, races };
}

/** Run one program and judge it: the divergence, or null when the spec accepts the trace. With
 *  `repeat` > 1 a par program runs that many times (runRepeated) and the first repetition the
 *  spec rejects answers (a racy divergence shrinks only while some repetition still shows it). */
export async function runAndCheck(backend: Backend, program: Program, profile: ProfileId, config: Config, repeat = 1): Promise<{ trace: Trace; divergence: Divergence | null }> {
  const [trace] = await runJudged(backend, [program], config, profile, repeat);
  const v = checkTrace(program, judgedConfig(trace, config), profile, trace);
  return { trace, divergence: v.accepted ? null : v.divergence };
}

const hasPar = (p: Program): boolean => p.some((op) => op.op === "par");

/** Traces of `programs`; with repeat > 1 on a repeating backend, each par program's first
 *  rejected repetition (else its first). */
async function runJudged(backend: Backend, programs: Program[], config: Config, profile: ProfileId, repeat: number): Promise<Trace[]> {
  if (backend.runSync) return backend.runSync(programs, config);
  if (repeat <= 1 || backend.runRepeated === undefined || !programs.some(hasPar)) return backend.run(programs, config);
  const reps = await backend.runRepeated(programs, config, repeat);
  return reps.map((ts, k) => {
    if (!hasPar(programs[k]) || ts.length <= 1) return ts[0];
    for (const t of ts) {
      if (t.aborted !== undefined) return t;
      if (!checkTrace(programs[k], judgedConfig(t, config), profile, t).accepted) return t;
    }
    return ts[0];
  });
}

export async function runCampaign(o: CampaignOptions): Promise<{ stats: CampaignStats; findings: Finding[] }> {
  const { backend, profile, seed } = o;
  const config = backend.info.config;
  const gen = genOptionsFor(backend, o.maxOps ?? 20, o.minOps ?? 1, o.processes ?? true, o.races ?? true);
  const stride = o.stride ?? 1;
  const offset = o.offset ?? 0;
  const batch = o.batch ?? (backend.runSync ? 256 : 16);
  const deadline = o.runs === undefined || o.seconds !== undefined ? performance.now() + (o.seconds ?? 60) * 1000 : Infinity;
  const maxRuns = o.runs ?? Infinity;
  const coverage = new Map<string, number>();
  const stats: CampaignStats = { programs: 0, ops: 0, seconds: 0, divergences: 0, known: 0, aborted: 0, retried: 0, flaky: 0, abortReasons: [], coverage };
  const findings = new Map<string, Finding>();
  const flakyTries = new Map<string, number>();
  const t0 = performance.now();
  let index = offset;
  let lastProgress = 0;

  let first = false; // --first: an unexplained divergence was found
  const enough = () => first || (o.enough?.done ?? false);
  while (stats.programs < maxRuns && performance.now() < deadline && !o.stop?.aborted && !enough()) {
    const n = Math.min(batch, maxRuns - stats.programs);
    const genes: Gene[][] = [];
    const programs: Program[] = [];
    const indices: number[] = [];
    for (let k = 0; k < n; k++, index += stride) {
      const g = genesAt(seed, index, gen);
      genes.push(g);
      programs.push(decode(g, gen));
      indices.push(index);
    }
    const traces = await runJudged(backend, programs, config, profile, o.repeat ?? 1);
    const again = traces.flatMap((t, k) => (t.aborted !== undefined ? [k] : []));
    if (again.length && !o.stop?.aborted) {
      stats.retried += again.length;
      const retried = await backend.run(again.map((k) => programs[k]), config);
      again.forEach((k, j) => { traces[k] = retried[j]; });
    }
    for (let k = 0; k < programs.length && !enough(); k++) {
      stats.programs++;
      stats.ops += programs[k].length;
      if (traces[k].aborted !== undefined) {
        stats.aborted++;
        if (stats.abortReasons.length < 5) stats.abortReasons.push(`program #${indices[k]}: ${traces[k].aborted!.split("\n")[0].slice(0, 300)}`);
        continue;
      }
      const v = checkTrace(programs[k], judgedConfig(traces[k], config), profile, traces[k], coverage);
      if (v.accepted) continue;
      const sig = signatureOf(v.divergence);
      const seen = findings.get(sig);
      if (seen) {
        seen.count++;
        if (seen.known) stats.known++; else stats.divergences++;
        continue;
      }
      if ((flakyTries.get(sig) ?? 0) >= 3 || o.stop?.aborted) { stats.flaky++; continue; } // seen flaky 3 times: count only
      const f = await investigate(o, gen, genes[k], programs[k], traces[k], v.divergence, indices[k], config, (performance.now() - t0) / 1000);
      if (f.flaky) {
        stats.flaky++;
        flakyTries.set(sig, (flakyTries.get(sig) ?? 0) + 1);
        o.onDivergence?.(f);
        continue;
      }
      findings.set(sig, f);
      if (f.known) stats.known++; else stats.divergences++;
      if (!f.known && o.stopAtFirst) first = true;
      o.onDivergence?.(f);
    }
    // Let signals, IPC (a stop request) and timers in between batches (the model's loop is synchronous).
    await new Promise((r) => setImmediate(r));
    stats.seconds = (performance.now() - t0) / 1000;
    if (o.onProgress && performance.now() - lastProgress > 250) {
      lastProgress = performance.now();
      o.onProgress(stats);
    }
  }
  stats.seconds = (performance.now() - t0) / 1000;
  o.onProgress?.(stats);
  return { stats, findings: [...findings.values()] };
}

/** Shrink a fresh divergence, confirm it on kernels, and match it against the known list. */
async function investigate(
  o: CampaignOptions, gen: GenOptions, genes: Gene[], program: Program, trace: Trace,
  divergence: Divergence, index: number, config: Config, atSeconds: number,
): Promise<Finding> {
  const sig = signatureOf(divergence);
  let shrunk = program;
  let shrinkRuns = 0;
  let last = { trace, divergence };
  const kernel = o.backend.info.kernel !== null;
  const base = { signature: sig, divergence, seed: o.seed, index, original: program, count: 1, atSeconds };
  const judge = (t: Trace, prog: Program, fired?: Map<string, number>) => {
    const v = checkTrace(prog, judgedConfig(t, config), o.profile, t, fired);
    return v.accepted ? null : v.divergence;
  };
  if (kernel) {
    // A kernel divergence must show again before anything is spent on it.
    const again = await runAndCheck(o.backend, program, o.profile, config, o.repeat ?? 1);
    if (!again.divergence || signatureOf(again.divergence) !== sig) {
      const fired = new Map<string, number>();
      judge(trace, program, fired);
      return {
        ...base, shrunk: program, shrinkRuns: 0, shrunkDivergence: divergence, trace,
        confirmed: { reproduced: 0, of: 1 }, known: matchKnown(o.known ?? [], divergence, o.profile, o.backend.info, fired), flaky: true,
      };
    }
  }
  if (!o.noShrink) {
    const r = await shrink(genes, gen, async (p) => {
      if (o.stop?.aborted) return false;
      const res = await runAndCheck(o.backend, p, o.profile, config, o.repeat ?? 1);
      return res.divergence !== null && signatureOf(res.divergence) === sig;
    });
    shrunk = r.program;
    shrinkRuns = r.runs;
    const again = await runAndCheck(o.backend, shrunk, o.profile, config, o.repeat ?? 1);
    if (again.divergence && signatureOf(again.divergence) === sig) last = { trace: again.trace, divergence: again.divergence };
    else { shrunk = program; } // flaky on re-run: keep the original
  }
  let confirmed: Finding["confirmed"] = null;
  if (kernel) {
    const want = o.confirmRuns ?? 5;
    let reproduced = 0, of = 0;
    for (let i = 0; i < want && !o.stop?.aborted; i++) {
      const res = await runAndCheck(o.backend, shrunk, o.profile, config, o.repeat ?? 1);
      if (res.trace.aborted !== undefined) continue; // a harness failure is no evidence either way
      of++;
      if (res.divergence && signatureOf(res.divergence) === sig) reproduced++;
    }
    confirmed = { reproduced, of };
  }
  const fired = new Map<string, number>();
  judge(last.trace, shrunk, fired);
  const known = matchKnown(o.known ?? [], last.divergence, o.profile, o.backend.info, fired);
  return {
    ...base, shrunk, shrinkRuns, shrunkDivergence: last.divergence, trace: last.trace, confirmed, known,
    flaky: confirmed !== null && confirmed.of > 0 && confirmed.reproduced === 0,
  };
}
