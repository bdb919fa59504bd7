/**
 * `npm run merge -- DIR... [--out DIR] [--json]`: combine the result directories of a sharded
 * campaign (`npm run fuzz -- --seed S --runs T --shard i/N --out DIR`, one per shard) into the
 * one campaign's: summary, rule coverage, findings by signature (the lowest program index,
 * the summed count) and their cases (fuzz/results.ts). Exit: 0 merged with no unexplained
 * divergence, 1 merged with some, 2 the directories do not make one whole campaign.
 */
import { parseArgs } from "node:util";
import { RULES, NON_DECIDING } from "../spec/index.ts";
import { existsSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { mergeResults, ResultError, type FuzzResult } from "../fuzz/results.ts";
import { mergeMatrix, readMatrix, renderSummary, writeReport, MatrixMergeError } from "../matrix/index.ts";

const HELP = `usage: npm run merge -- DIR... [--out DIR] [--json]

Merges the result directories of the N shards of one fuzz campaign (same seed, --runs,
backend, profile, --max-ops, bugs; shards 0..N-1 each once) into one: OUT/summary.json,
OUT/coverage.json, OUT/findings.json and OUT/cases/ (default OUT: out/merged).
Matrix shards (npm run matrix -- --shard i/N; their folders hold matrix.json) merge into one
matrix report: OUT/matrix.md, matrix.html, matrix.json, cases/.`;

function coverageLines(r: FuzzResult): string[] {
  const profile = r.summary.profile;
  const deciding = RULES.filter((x) => x.profiles.includes(profile) && !NON_DECIDING.has(x.id));
  const w = Math.max(4, ...deciding.map((x) => x.id.length));
  const lines = [`  ${"rule".padEnd(w)}  hits`, ...deciding.map((x) => `  ${x.id.padEnd(w)}  ${r.coverage[x.id] ?? 0}`)];
  const hit = deciding.filter((x) => (r.coverage[x.id] ?? 0) > 0).length;
  lines.push(`  ${hit}/${deciding.length} deciding rules of profile ${profile} hit`);
  return lines;
}

export function main(argv: string[]): number {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, strict: true, options: { out: { type: "string" }, json: { type: "boolean" }, help: { type: "boolean", short: "h" } } });
  } catch (e) {
    console.error(`${(e as Error).message}\n\n${HELP}`);
    return 2;
  }
  if (parsed.values.help) { console.log(HELP); return 0; }
  const out = parsed.values.out ?? "out/merged";
  if (parsed.positionals.length && parsed.positionals.every((d) => existsSync(join(d, "matrix.json")))) {
    try {
      const m = mergeMatrix(parsed.positionals.map((d) => ({ dir: d, r: readMatrix(d) })));
      const files = writeReport(m, resolve(out));
      const rel = (p: string) => relative(process.cwd(), p) || p;
      console.log(`merged ${parsed.positionals.length} matrix shards\n${renderSummary(m)}\nreport: ${rel(files.md)}, ${rel(files.html)} (${files.cases.length} divergence cases)`);
      return 0;
    } catch (e) {
      if (e instanceof MatrixMergeError) { console.error(`merge: ${e.message}`); return 2; }
      throw e;
    }
  }
  let r: FuzzResult;
  try {
    r = mergeResults(parsed.positionals, out);
  } catch (e) {
    if (e instanceof ResultError) { console.error(`merge: ${e.message}`); return 2; }
    throw e;
  }
  const s = r.summary;
  const unexplained = r.findings.filter((f) => !f.known);
  if (parsed.values.json) console.log(JSON.stringify(r, null, 2));
  else {
    console.log(`merged ${s.mergedShards} shards of seed ${s.seed} x ${s.runs} programs on ${s.backend}${s.kernel ? ` (${s.kernel})` : ""}, profile ${s.profile} into ${out}`);
    console.log(`${s.programs} programs, ${s.ops} ops, ${s.seconds} s of shard time (longest shard ${s.wallSeconds} s); ${s.divergences} divergent programs in ${unexplained.length} distinct divergences; ${s.known} known`);
    console.log("\nrule coverage:");
    for (const l of coverageLines(r)) console.log(l);
    if (r.findings.length) {
      console.log("\nfindings:");
      for (const f of r.findings) console.log(`  ${f.signature}  program #${f.index} (x${f.count})${f.known ? `  known: ${f.known}` : ""}  ${out}/${f.case}`);
    }
  }
  return unexplained.length ? 1 : 0;
}

if (import.meta.url === `file://${process.argv[1]}`) process.exitCode = main(process.argv.slice(2));
