/**
 * A fuzz campaign's machine-readable result directory, and merging shards' directories into
 * the one campaign's (fuzz/shard.ts: shard i of N runs program indices k with k % N === i).
 *
 *   DIR/summary.json   seed, total runs, shard, backend, kernel, profile, counts
 *   DIR/coverage.json  rule id -> hits
 *   DIR/findings.json  one per divergence signature: the first program (lowest index) that
 *                      showed it, how many programs did, known or not, its case files
 *   DIR/cases/         the findings' auxspec-case/1 JSON and C reproducers
 *
 * mergeResults(): N shards with the same seed, runs, backend, profile, max-ops and bugs,
 * indices 0..N-1 each once -> the same summary, coverage and findings (by signature, each
 * with the lowest index and the summed count) as one run with that seed and total.
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { basename, join, relative } from "node:path";
import { z } from "zod";
import { ProfileId } from "../spec/program.ts";
import type { BackendInfo } from "../backend/contract.ts";
import type { CampaignStats, Finding } from "./campaign.ts";

export const RESULT_FORMAT = "auxspec-fuzz-result/1";

export const ResultFinding = z.object({
  signature: z.string(),
  kind: z.string(),
  rule: z.string(),
  seed: z.number().int(),
  index: z.number().int().min(0),
  count: z.number().int().min(1),
  known: z.string().nullable(),
  /** Relative to the result directory. */
  case: z.string(),
  reproducer: z.string().nullable(),
}).strict();
export type ResultFinding = z.infer<typeof ResultFinding>;

export const ResultSummary = z.object({
  format: z.literal(RESULT_FORMAT),
  seed: z.number().int(),
  /** The campaign's total programs (all shards together). */
  runs: z.number().int().min(0),
  shard: z.object({ index: z.number().int().min(0), count: z.number().int().min(1) }).nullable(),
  /** Shards merged into this result (0: a single run). */
  mergedShards: z.number().int().min(0),
  backend: z.string(),
  kernel: z.string().nullable(),
  profile: ProfileId,
  maxOps: z.number().int(),
  bugs: z.array(z.string()),
  programs: z.number().int().min(0),
  ops: z.number().int().min(0),
  /** Sum over shards of their run time; wallSeconds: the longest shard. */
  seconds: z.number().min(0),
  wallSeconds: z.number().min(0),
  divergences: z.number().int().min(0),
  known: z.number().int().min(0),
}).strict();
export type ResultSummary = z.infer<typeof ResultSummary>;

export interface FuzzResult {
  summary: ResultSummary;
  coverage: Record<string, number>;
  findings: ResultFinding[];
}

export class ResultError extends Error { override name = "ResultError"; }

const sortObj = (o: Record<string, number>) => Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));

/** Write DIR/summary.json, coverage.json and findings.json (the cases are written by the caller into DIR/cases). */
export function writeResults(dir: string, r: FuzzResult): void {
  mkdirSync(join(dir, "cases"), { recursive: true });
  writeFileSync(join(dir, "summary.json"), `${JSON.stringify(ResultSummary.parse(r.summary), null, 2)}\n`);
  writeFileSync(join(dir, "coverage.json"), `${JSON.stringify(sortObj(r.coverage), null, 2)}\n`);
  const findings = [...r.findings].sort((a, b) => (a.signature < b.signature ? -1 : a.signature > b.signature ? 1 : 0));
  writeFileSync(join(dir, "findings.json"), `${JSON.stringify(findings.map((f) => ResultFinding.parse(f)), null, 2)}\n`);
}

function readJson(path: string): unknown {
  if (!existsSync(path)) throw new ResultError(`${path} is missing: not a fuzz result directory (fuzz --shard ... --out DIR writes one)`);
  try {
    return JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new ResultError(`${path}: ${(e as Error).message}`);
  }
}

export function readResults(dir: string): FuzzResult {
  const s = ResultSummary.safeParse(readJson(join(dir, "summary.json")));
  if (!s.success) throw new ResultError(`${join(dir, "summary.json")} is not an ${RESULT_FORMAT} summary: ${s.error.message}`);
  const cov = z.record(z.string(), z.number().int().min(0)).safeParse(readJson(join(dir, "coverage.json")));
  if (!cov.success) throw new ResultError(`${join(dir, "coverage.json")}: ${cov.error.message}`);
  const f = z.array(ResultFinding).safeParse(readJson(join(dir, "findings.json")));
  if (!f.success) throw new ResultError(`${join(dir, "findings.json")}: ${f.error.message}`);
  return { summary: s.data, coverage: cov.data, findings: f.data };
}

/**
 * Merge shard results (read from `dirs`) into one; copies each kept finding's case files from
 * its shard into OUT/cases when `out` is given. Refuses shards of different campaigns, a
 * shard given twice, and a missing shard.
 */
export function mergeResults(dirs: readonly string[], out?: string): FuzzResult {
  if (dirs.length === 0) throw new ResultError("merge needs at least one result directory");
  const parts = dirs.map((d) => ({ dir: d, r: readResults(d) }));
  const first = parts[0].r.summary;
  const same = ["seed", "runs", "backend", "profile", "maxOps"] as const;
  for (const { dir, r } of parts) {
    for (const k of same) {
      if (r.summary[k] !== first[k]) throw new ResultError(`${dir} is another campaign: ${k} ${JSON.stringify(r.summary[k])}, ${parts[0].dir} has ${JSON.stringify(first[k])}`);
    }
    if (r.summary.bugs.join(",") !== first.bugs.join(",")) throw new ResultError(`${dir} is another campaign: bugs ${r.summary.bugs.join(",")}`);
    if (!r.summary.shard) throw new ResultError(`${dir} is not a shard (no summary.shard): nothing to merge it with`);
    if (r.summary.shard.count !== first.shard?.count) throw new ResultError(`${dir} is shard ${r.summary.shard.index}/${r.summary.shard.count}, ${parts[0].dir} is of ${first.shard?.count}`);
  }
  const n = first.shard!.count;
  const seen = new Map<number, string>();
  for (const { dir, r } of parts) {
    const i = r.summary.shard!.index;
    if (seen.has(i)) throw new ResultError(`shard ${i}/${n} given twice: ${seen.get(i)} and ${dir}`);
    seen.set(i, dir);
  }
  const missing = [...Array(n).keys()].filter((i) => !seen.has(i));
  if (missing.length) throw new ResultError(`shards ${missing.map((i) => `${i}/${n}`).join(", ")} missing: the merge would not be the whole campaign`);

  const coverage: Record<string, number> = {};
  for (const { r } of parts) for (const [rule, hits] of Object.entries(r.coverage)) coverage[rule] = (coverage[rule] ?? 0) + hits;
  const bySig = new Map<string, { f: ResultFinding; dir: string }>();
  for (const { dir, r } of parts) {
    for (const f of r.findings) {
      const had = bySig.get(f.signature);
      if (!had) bySig.set(f.signature, { f: { ...f }, dir });
      else {
        const count = had.f.count + f.count;
        if (f.index < had.f.index) bySig.set(f.signature, { f: { ...f, count }, dir });
        else had.f.count = count;
      }
    }
  }
  const sum = (k: "programs" | "ops" | "divergences" | "known" | "seconds") => parts.reduce((a, p) => a + p.r.summary[k], 0);
  const kernels = [...new Set(parts.map((p) => p.r.summary.kernel))];
  const merged: FuzzResult = {
    summary: {
      ...first,
      shard: null,
      mergedShards: n,
      kernel: kernels.length === 1 ? kernels[0] : kernels.join(" | "),
      programs: sum("programs"), ops: sum("ops"), divergences: sum("divergences"), known: sum("known"),
      seconds: Number(sum("seconds").toFixed(3)),
      wallSeconds: Math.max(...parts.map((p) => p.r.summary.wallSeconds)),
    },
    coverage,
    findings: [...bySig.values()].map(({ f }) => f),
  };
  if (out) {
    mkdirSync(join(out, "cases"), { recursive: true });
    for (const { f, dir } of bySig.values()) {
      if (f.case && existsSync(join(dir, f.case))) { copyFileSync(join(dir, f.case), join(out, "cases", basename(f.case))); f.case = `cases/${basename(f.case)}`; }
      if (f.reproducer && existsSync(join(dir, f.reproducer))) { copyFileSync(join(dir, f.reproducer), join(out, "cases", basename(f.reproducer))); f.reproducer = `cases/${basename(f.reproducer)}`; }
    }
    writeResults(out, merged);
  }
  return merged;
}

/** A campaign's result, its findings' case files (written under dir/cases) named relative to dir. */
export function campaignResult(o: {
  dir: string; seed: number; runs: number; shard: { index: number; count: number } | null; info: BackendInfo;
  profile: ProfileId; maxOps: number; bugs: readonly string[]; stats: CampaignStats; findings: readonly Finding[];
  paths: ReadonlyMap<string, { json: string; c?: string }>;
}): FuzzResult {
  const { stats } = o;
  return {
    summary: {
      format: RESULT_FORMAT, seed: o.seed, runs: o.runs, shard: o.shard, mergedShards: 0,
      backend: o.info.name, kernel: o.info.kernel, profile: o.profile, maxOps: o.maxOps, bugs: [...o.bugs],
      programs: stats.programs, ops: stats.ops, seconds: Number(stats.seconds.toFixed(3)), wallSeconds: Number(stats.seconds.toFixed(3)),
      divergences: stats.divergences, known: stats.known,
    },
    coverage: Object.fromEntries(stats.coverage),
    findings: o.findings.map((f) => {
      const p = o.paths.get(f.signature);
      return {
        signature: f.signature, kind: f.divergence.kind, rule: f.divergence.rule, seed: f.seed, index: f.index, count: f.count,
        known: f.known?.id ?? null, case: p ? relative(o.dir, p.json) : "", reproducer: p?.c ? relative(o.dir, p.c) : null,
      };
    }),
  };
}
