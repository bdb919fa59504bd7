/**
 * Merging matrix shards: `npm run matrix -- --shard i/N` runs the corpus programs whose
 * index k has k % N === i on every kernel and writes its matrix.json; mergeMatrix() reads the
 * N shards' matrix.json back into MatrixResults and combines them into the report one run
 * with the same seed, corpus size and kernels writes (timings aside): per kernel column the
 * union of programs run, verdicts, traces and known divergences, rule hits summed.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Config, ProfileId, Program } from "../spec/program.ts";
import type { Trace, Verdict } from "../spec/trace.ts";
import type { Column, MatrixResult } from "./run.ts";

export class MatrixMergeError extends Error { override name = "MatrixMergeError"; }

interface ColumnJson {
  name: string; kernel: string | null; profile: ProfileId | null; config: Config | null; notes: string[]; unavailable?: string;
  seconds: number; openSeconds: number; hits: Record<string, { hits: number; programs: number }>;
  skipped: Array<{ index: number; why: string }>;
  results: Array<{ index: number; verdict: Verdict; known: string | null; trace: Trace }>;
}
interface MatrixJson {
  format: string; seed: number; programs: number; maxOps: number; shard?: { index: number; count: number };
  builtin: string[]; startedAt: string; seconds: number; generatedWith: MatrixResult["generatedWith"]; corpus: Program[]; columns: ColumnJson[];
}

/** A matrix.json (matrix/report.ts resultJson) back as a MatrixResult. */
export function fromResultJson(j: MatrixJson): MatrixResult {
  return {
    options: { seed: j.seed, programs: j.programs, maxOps: j.maxOps, ...(j.shard ? { shard: j.shard } : {}) },
    builtin: j.builtin, generatedWith: j.generatedWith, corpus: j.corpus, startedAt: j.startedAt, seconds: j.seconds,
    columns: j.columns.map((c): Column => ({
      name: c.name, kernel: c.kernel, profile: c.profile, config: c.config, notes: c.notes, ...(c.unavailable !== undefined ? { unavailable: c.unavailable } : {}),
      ran: c.results.map((x) => x.index), skipped: c.skipped,
      traces: new Map(c.results.map((x) => [x.index, x.trace])), verdicts: new Map(c.results.map((x) => [x.index, x.verdict])),
      known: new Map(c.results.filter((x) => x.known !== null).map((x) => [x.index, x.known!])),
      hits: new Map(Object.entries(c.hits)), seconds: c.seconds, openSeconds: c.openSeconds,
      warnings: c.results.filter((x) => x.trace.audit?.warnings?.length).map((x) => ({ index: x.index, lines: x.trace.audit!.warnings! })),
    })),
  };
}

export function readMatrix(dir: string): MatrixResult {
  const p = join(dir, "matrix.json");
  if (!existsSync(p)) throw new MatrixMergeError(`${p} is missing: not a matrix report directory`);
  const j = JSON.parse(readFileSync(p, "utf8")) as MatrixJson;
  if (j.format !== "auxspec-matrix/1") throw new MatrixMergeError(`${p}: format ${j.format}, expected auxspec-matrix/1`);
  return fromResultJson(j);
}

/** The N shards (any order) as the one matrix. */
export function mergeMatrix(parts: ReadonlyArray<{ dir: string; r: MatrixResult }>): MatrixResult {
  if (!parts.length) throw new MatrixMergeError("merge needs at least one matrix directory");
  const first = parts[0].r;
  const n = first.options.shard?.count;
  const seen = new Map<number, string>();
  for (const { dir, r } of parts) {
    const o = r.options;
    if (!o.shard) throw new MatrixMergeError(`${dir} is not a matrix shard (no shard in matrix.json)`);
    if (o.seed !== first.options.seed || o.programs !== first.options.programs || o.maxOps !== first.options.maxOps || o.shard.count !== n) {
      throw new MatrixMergeError(`${dir} is another matrix: seed ${o.seed}, ${o.programs} programs, max-ops ${o.maxOps}, ${o.shard.count} shards`);
    }
    if (JSON.stringify(r.corpus) !== JSON.stringify(first.corpus)) throw new MatrixMergeError(`${dir} has another corpus (generated for ${r.generatedWith.backend}'s config, not ${first.generatedWith.backend}'s)`);
    if (r.columns.map((c) => c.name).join(",") !== first.columns.map((c) => c.name).join(",")) throw new MatrixMergeError(`${dir} ran other kernels: ${r.columns.map((c) => c.name).join(", ")}`);
    if (seen.has(o.shard.index)) throw new MatrixMergeError(`shard ${o.shard.index}/${n} given twice: ${seen.get(o.shard.index)} and ${dir}`);
    seen.set(o.shard.index, dir);
  }
  const missing = [...Array(n).keys()].filter((i) => !seen.has(i));
  if (missing.length) throw new MatrixMergeError(`shards ${missing.map((i) => `${i}/${n}`).join(", ")} missing`);
  const columns = first.columns.map((c0, k): Column => {
    const cols = parts.map((p) => p.r.columns[k]);
    const up = cols.filter((c) => !c.unavailable);
    const base = up[0] ?? c0;
    const hits = new Map<string, { hits: number; programs: number }>();
    for (const c of cols) for (const [rule, h] of c.hits) { const t = hits.get(rule) ?? { hits: 0, programs: 0 }; hits.set(rule, { hits: t.hits + h.hits, programs: t.programs + h.programs }); }
    const byIndex = <T>(m: (c: Column) => Map<number, T>) => new Map([...cols.flatMap((c) => [...m(c)])].sort(([a], [b]) => a - b));
    return {
      name: c0.name, kernel: base.kernel, profile: base.profile, config: base.config, notes: base.notes,
      ...(up.length === 0 ? { unavailable: c0.unavailable } : up.length < cols.length ? { unavailable: `unavailable in shard(s): ${cols.filter((c) => c.unavailable).map((c) => c.unavailable!.split("\n")[0]).join("; ")}` } : {}),
      ran: cols.flatMap((c) => c.ran).sort((a, b) => a - b),
      skipped: cols.flatMap((c) => c.skipped).sort((a, b) => a.index - b.index),
      traces: byIndex((c) => c.traces), verdicts: byIndex((c) => c.verdicts), known: byIndex((c) => c.known), hits,
      seconds: cols.reduce((a, c) => a + c.seconds, 0), openSeconds: Math.max(...cols.map((c) => c.openSeconds)),
      warnings: cols.flatMap((c) => c.warnings).sort((a, b) => a.index - b.index),
    };
  });
  return {
    options: { seed: first.options.seed, programs: first.options.programs, maxOps: first.options.maxOps },
    builtin: first.builtin, generatedWith: first.generatedWith, corpus: first.corpus,
    startedAt: parts.map((p) => p.r.startedAt).sort()[0], seconds: Math.max(...parts.map((p) => p.r.seconds)),
    columns,
  };
}
