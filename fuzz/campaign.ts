/**
 * A fuzzing campaign: generate -> run -> check -> shrink -> write, over one backend.
 *
 * Program i of seed s is always genesAt(s, i), so the same seed gives the same programs
 * and a divergence names the (seed, index) that produced it. Divergences are grouped by
 * signature (kind + rule): the first of each is shrunk, confirmed and written; later ones
 * only counted.
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
  known?: readonly KnownDivergence[];
  /** Re-runs of a shrunk divergence on a kernel backend to confirm it. */
  confirmRuns?: number;
  /** Skip shrinking (workers that only count). */
  noShrink?: boolean;
  onProgress?: (s: CampaignStats) => void;
  onDivergence?: (f: Finding) => void;
}

export interface CampaignStats {
  programs: number;
  ops: number;
  seconds: number;
  divergences: number;
  known: number;
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
  /** Further programs with the same signature. */
  count: number;
}

export const signatureOf = (d: Divergence): string => `${d.kind}:${d.rule}`;

export function genOptionsFor(backend: Backend, maxOps = 20, minOps = 1): GenOptions {
  return { config: backend.info.config, maxOps, minOps, unsupported: backend.info.unsupported };
}

/** Run one program and judge it: the divergence, or null when the spec accepts the trace. */
export async function runAndCheck(backend: Backend, program: Program, profile: ProfileId, config: Config): Promise<{ trace: Trace; divergence: Divergence | null }> {
  const [trace] = backend.runSync ? backend.runSync([program], config) : await backend.run([program], config);
  const v = checkTrace(program, config, profile, trace);
  return { trace, divergence: v.accepted ? null : v.divergence };
}

export async function runCampaign(o: CampaignOptions): Promise<{ stats: CampaignStats; findings: Finding[] }> {
  const { backend, profile, seed } = o;
  const config = backend.info.config;
  const gen = genOptionsFor(backend, o.maxOps ?? 20, o.minOps ?? 1);
  const stride = o.stride ?? 1;
  const offset = o.offset ?? 0;
  const batch = o.batch ?? (backend.runSync ? 256 : 16);
  const deadline = o.runs === undefined || o.seconds !== undefined ? performance.now() + (o.seconds ?? 60) * 1000 : Infinity;
  const maxRuns = o.runs ?? Infinity;
  const coverage = new Map<string, number>();
  const stats: CampaignStats = { programs: 0, ops: 0, seconds: 0, divergences: 0, known: 0, coverage };
  const findings = new Map<string, Finding>();
  const t0 = performance.now();
  let index = offset;
  let lastProgress = 0;

  while (stats.programs < maxRuns && performance.now() < deadline) {
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
    const traces = backend.runSync ? backend.runSync(programs, config) : await backend.run(programs, config);
    for (let k = 0; k < programs.length; k++) {
      stats.programs++;
      stats.ops += programs[k].length;
      const v = checkTrace(programs[k], config, profile, traces[k], coverage);
      if (v.accepted) continue;
      const sig = signatureOf(v.divergence);
      const seen = findings.get(sig);
      if (seen) {
        seen.count++;
        if (seen.known) stats.known++; else stats.divergences++;
        continue;
      }
      const f = await investigate(o, gen, genes[k], programs[k], traces[k], v.divergence, indices[k], config);
      findings.set(sig, f);
      if (f.known) stats.known++; else stats.divergences++;
      o.onDivergence?.(f);
    }
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
  divergence: Divergence, index: number, config: Config,
): Promise<Finding> {
  const sig = signatureOf(divergence);
  let shrunk = program;
  let shrinkRuns = 0;
  let last = { trace, divergence };
  if (!o.noShrink) {
    const r = await shrink(genes, gen, async (p) => {
      const res = await runAndCheck(o.backend, p, o.profile, config);
      return res.divergence !== null && signatureOf(res.divergence) === sig;
    });
    shrunk = r.program;
    shrinkRuns = r.runs;
    const again = await runAndCheck(o.backend, shrunk, o.profile, config);
    if (again.divergence && signatureOf(again.divergence) === sig) last = { trace: again.trace, divergence: again.divergence };
    else { shrunk = program; } // flaky on re-run: keep the original
  }
  let confirmed: Finding["confirmed"] = null;
  if (o.backend.info.kernel !== null) {
    const of = o.confirmRuns ?? 5;
    let reproduced = 0;
    for (let i = 0; i < of; i++) {
      const res = await runAndCheck(o.backend, shrunk, o.profile, config);
      if (res.divergence && signatureOf(res.divergence) === sig) reproduced++;
    }
    confirmed = { reproduced, of };
  }
  const fired = new Map<string, number>();
  checkTrace(shrunk, config, o.profile, last.trace, fired);
  const known = matchKnown(o.known ?? [], last.divergence, o.profile, o.backend.info, fired);
  return {
    signature: sig, divergence, seed: o.seed, index, original: program, shrunk, shrinkRuns,
    shrunkDivergence: last.divergence, trace: last.trace, confirmed, known, count: 1,
  };
}
