/**
 * The auxspec command line: `fuzz` and `replay`.
 *
 *   npm run fuzz -- [--backend model|host|vm:KERNEL] [--profile auto|seed|6.1|6.12|6.18|...]
 *                   [--runs N | --time SECONDS] [--seed N] [--workers K] [--bug ID] [--out DIR] [--json]
 *   npm run replay -- CASE.json|DIR ... [--backend ...] [--profile ...] [--json]
 *
 * Exit codes: 0 no unexplained divergence, 1 divergence found, 2 usage or setup error.
 */
import { parseArgs } from "node:util";
import { existsSync, statSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { RULES, NON_DECIDING } from "../spec/index.ts";
import { PROFILES, ProfileId, formatZodError, type Case, type Config } from "../spec/program.ts";
import { showOutcome, sameOutcome, type Divergence, type Trace } from "../spec/trace.ts";
import { BUGS } from "../reference/index.ts";
import { BackendUnavailable, type Backend } from "../backend/contract.ts";
import { openBackend, bestBackend } from "./backends.ts";
import { runCampaign, type CampaignStats, type Finding } from "../fuzz/campaign.ts";
import { runParallel } from "../fuzz/parallel.ts";
import { loadKnown, matchKnown, type KnownDivergence } from "../fuzz/known.ts";
import { loadCase, listCases, findingToCase, writeCase, CaseError, rel } from "../fuzz/cases.ts";
import { replayCases } from "../fuzz/replay.ts";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const KNOWN_PATH = join(ROOT, "cases", "known-divergences.json");

class UsageError extends Error { override name = "UsageError"; }

const FUZZ_HELP = `usage: npm run fuzz -- [options]

Generates random programs of perf mmap/munmap/ioctl ops, runs them on a backend, judges
every trace with the spec, shrinks each divergence and writes it as a case (JSON) and a
C reproducer.

  --backend B    model | host | vm:6.1 | vm:6.12 | vm:<debian release>
                 (default: the best this machine has: the host kernel when perf works)
  --profile P    auto | ${PROFILES.join(" | ")}  (default auto: the kernel's own; 6.18 for the model)
  --runs N       stop after N programs
  --time S       stop after S seconds (default 60 when --runs is not given)
  --seed N       program stream seed (default: random, printed); same seed, same programs
  --workers K    processes (model) or executor workers (host); default 1 (model), 4 (host)
  --bug ID       switch on a historic bug in the model (repeatable): ${BUGS.map((b) => b.id).join(", ")}
  --max-ops N    longest program (default 20)
  --out DIR      where cases and reproducers go (default out/fuzz)
  --json         print one JSON object instead of the report
  -h, --help     this text

Exit: 0 no unexplained divergence, 1 divergence found, 2 usage or setup error.`;

const REPLAY_HELP = `usage: npm run replay -- CASE.json|DIR ... [options]

Replays auxspec-case/1 cases on a backend and judges them with the spec. A case's
\`expect\` is checked too (a mismatch is a divergence of kind expect). A case with
\`bugs\` replays on the model with those bugs switched on, and must still be caught.

  --backend B    model (default) | host | vm:KERNEL
  --profile P    auto | ${PROFILES.join(" | ")} (default: the case's profile, else the backend's)
  --json         one JSON object
  -h, --help     this text

Exit: 0 every case agrees (or matches a known divergence), 1 divergence, 2 usage or setup error.`;

const Int = (name: string, min: number) => z.coerce.number({ error: `${name} must be a number` }).int(`${name} must be an integer`).min(min, `${name} must be at least ${min}`);

const FuzzArgs = z.object({
  backend: z.string().optional(),
  profile: z.union([z.literal("auto"), ProfileId]).default("auto"),
  runs: Int("--runs", 1).optional(),
  time: z.coerce.number().positive("--time must be positive").optional(),
  seed: Int("--seed", 0).optional(),
  workers: Int("--workers", 1).optional(),
  bug: z.array(z.string()).default([]),
  "max-ops": Int("--max-ops", 1).default(20),
  out: z.string().default("out/fuzz"),
  json: z.boolean().default(false),
});

const ReplayArgs = z.object({
  backend: z.string().default("model"),
  profile: z.union([z.literal("auto"), ProfileId]).default("auto"),
  json: z.boolean().default(false),
});

function parse<T extends z.ZodTypeAny>(schema: T, values: unknown): z.infer<T> {
  const r = schema.safeParse(values);
  if (!r.success) throw new UsageError(`bad option:\n${formatZodError(r.error).replace(/^ {2}(\w)/gm, "  --$1")}`);
  return r.data;
}

const tty = process.stderr.isTTY;
const log = (s: string) => process.stderr.write(s + "\n");

function progressLine(s: { programs: number; ops: number; divergences: number; known: number; seconds: number; covered?: number }, total: number) {
  if (!tty) return;
  const rate = s.seconds > 0 ? Math.round(s.programs / s.seconds) : 0;
  const cov = s.covered !== undefined ? `  rules ${s.covered}/${total}` : "";
  process.stderr.write(`\r\x1b[K  ${s.programs} programs (${rate}/s)  ${s.ops} ops  ${s.divergences} divergences  ${s.known} known${cov}  ${s.seconds.toFixed(1)}s`);
}

/** Rules x hits on this backend; rules that never decide an outcome (side-effect clauses,
 *  unreachable with this op set: spec/rules/index.ts NON_DECIDING) are listed apart. */
function coverageTable(coverage: Map<string, number>, profile: ProfileId): string[] {
  const rules = RULES.filter((r) => r.profiles.includes(profile));
  const deciding = rules.filter((r) => !NON_DECIDING.has(r.id));
  const w = Math.max(...rules.map((r) => r.id.length), 4);
  const lines = [`  ${"rule".padEnd(w)}  hits`];
  for (const r of deciding) lines.push(`  ${r.id.padEnd(w)}  ${coverage.get(r.id) ?? 0}`);
  const hit = deciding.filter((r) => (coverage.get(r.id) ?? 0) > 0).length;
  const missed = deciding.filter((r) => !coverage.get(r.id)).map((r) => r.id);
  lines.push(`  ${hit}/${deciding.length} deciding rules of profile ${profile} hit${missed.length ? `; not hit: ${missed.join(", ")}` : ""}`);
  lines.push(`  (${rules.length - deciding.length} more never decide an outcome here: side effects or unreachable)`);
  return lines;
}

function divergenceJson(f: Finding, paths: { json: string; c?: string }) {
  const d = f.shrunkDivergence;
  return {
    kind: d.kind, rule: d.rule, opIndex: d.opIndex, expected: d.expected, observed: d.observed, detail: d.detail,
    count: f.count, seed: f.seed, index: f.index, case: rel(paths.json), reproducer: paths.c ? rel(paths.c) : null,
    shrunk: f.shrunk, shrinkRuns: f.shrinkRuns, confirmed: f.confirmed, known: f.known?.id ?? null,
  };
}

async function cmdFuzz(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv, allowPositionals: false, strict: true,
    options: {
      backend: { type: "string" }, profile: { type: "string" }, runs: { type: "string" }, time: { type: "string" },
      seed: { type: "string" }, workers: { type: "string" }, bug: { type: "string", multiple: true },
      "max-ops": { type: "string" }, out: { type: "string" }, json: { type: "boolean" }, help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) { console.log(FUZZ_HELP); return 0; }
  const a = parse(FuzzArgs, values);
  const seed = a.seed ?? Math.floor(Math.random() * 2 ** 31);
  const known = loadKnown(KNOWN_PATH);

  let backend: Backend;
  let why: string;
  if (a.backend) {
    backend = await openBackend(a.backend, { profile: a.profile, bugs: a.bug, workers: a.workers, log });
    why = "chosen with --backend";
  } else if (a.bug.length) {
    backend = await openBackend("model", { profile: a.profile, bugs: a.bug });
    why = "--bug applies to the model";
  } else {
    ({ backend, why } = await bestBackend({ profile: a.profile, workers: a.workers, log }));
  }
  try {
    const info = backend.info;
    const profile: ProfileId = a.profile === "auto" ? info.profile : a.profile;
    const seconds = a.runs === undefined ? (a.time ?? 60) : a.time;
    const total = RULES.filter((r) => r.profiles.includes(profile) && !NON_DECIDING.has(r.id)).length;
    if (!a.json) {
      log(`auxspec fuzz: backend ${info.name}${info.kernel ? ` (kernel ${info.kernel})` : ""}, profile ${profile}, seed ${seed}`);
      log(`  why this backend: ${why}`);
      for (const n of info.notes) log(`  note: ${n}`);
      log(`  budget: ${a.runs !== undefined ? `${a.runs} programs` : ""}${a.runs !== undefined && seconds ? " or " : ""}${seconds ? `${seconds} s` : ""}; programs up to ${a["max-ops"]} ops`);
    }
    const written = new Map<string, { json: string; c?: string }>();
    const onFinding = (f: Finding) => {
      const c: Case = findingToCase(f, info, profile, info.config, a.bug);
      const paths = writeCase(a.out, c);
      written.set(f.signature, paths);
      if (!a.json) {
        if (tty) process.stderr.write("\r\x1b[K");
        const d = f.shrunkDivergence;
        log(`${f.known ? "known divergence" : "DIVERGENCE"} ${d.kind} at ${d.opIndex >= 0 ? `op ${d.opIndex}` : "audit"} (rule ${d.rule}): spec allows ${d.expected.join(" | ")}, observed ${d.observed}`);
        if (f.known) log(`  known: ${f.known.id}: ${f.known.explanation}`);
        log(`  shrunk ${f.original.length} -> ${f.shrunk.length} ops in ${f.shrinkRuns} runs${f.confirmed ? `; reproduced ${f.confirmed.reproduced}/${f.confirmed.of}` : ""}`);
        log(`  case ${rel(paths.json)}   reproducer ${paths.c ? rel(paths.c) : "-"}`);
        log(`  replay: npm run replay -- ${rel(paths.json)} --backend ${a.backend ?? info.name.split("+")[0]} --profile ${profile}`);
      }
    };
    let result: { stats: CampaignStats; findings: Finding[] };
    const workers = a.workers ?? 1;
    if (info.kernel === null && workers > 1) {
      result = await runParallel({ profile, bugs: a.bug, seed, runs: a.runs, seconds, maxOps: a["max-ops"], known }, workers,
        (s) => progressLine(s, total), onFinding);
    } else {
      result = await runCampaign({
        backend, profile, seed, runs: a.runs, seconds, maxOps: a["max-ops"], known,
        onProgress: (s) => progressLine({ ...s, covered: [...s.coverage.keys()].filter((k) => !NON_DECIDING.has(k)).length }, total),
        onDivergence: onFinding,
      });
    }
    if (tty && !a.json) process.stderr.write("\r\x1b[K");
    const { stats, findings } = result;
    // Write (again) what the run settled on: with several workers the finding kept for a
    // signature is the one with the lowest program index, whatever arrived first.
    for (const f of findings) written.set(f.signature, writeCase(a.out, findingToCase(f, info, profile, info.config, a.bug)));
    const unexplained = findings.filter((f) => !f.known);
    if (a.json) {
      console.log(JSON.stringify({
        backend: info.name, profile, kernel: info.kernel, seed, workers, programs: stats.programs, ops: stats.ops,
        seconds: Number(stats.seconds.toFixed(3)),
        divergences: unexplained.map((f) => divergenceJson(f, written.get(f.signature)!)),
        known: findings.filter((f) => f.known).map((f) => divergenceJson(f, written.get(f.signature)!)),
        coverage: Object.fromEntries([...stats.coverage].sort()),
      }, null, 2));
    } else {
      log(`\n${stats.programs} programs, ${stats.ops} ops in ${stats.seconds.toFixed(1)} s (${Math.round(stats.programs / Math.max(stats.seconds, 1e-9))} programs/s)`);
      log(`${stats.divergences} divergent programs in ${unexplained.length} distinct divergences; ${stats.known} known`);
      log("\nrule coverage on this backend:");
      for (const l of coverageTable(stats.coverage, profile)) log(l);
      if (written.size) {
        log("\ncases written:");
        for (const f of findings) { const p = written.get(f.signature)!; log(`  ${rel(p.json)}${p.c ? `  ${rel(p.c)}` : ""}${f.known ? "  (known)" : ""}`); }
      }
    }
    return unexplained.length ? 1 : 0;
  } finally {
    await backend.close();
  }
}

async function cmdReplay(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv, allowPositionals: true, strict: true,
    options: { backend: { type: "string" }, profile: { type: "string" }, json: { type: "boolean" }, help: { type: "boolean", short: "h" } },
  });
  if (values.help) { console.log(REPLAY_HELP); return 0; }
  const a = parse(ReplayArgs, values);
  if (!positionals.length) throw new UsageError("replay needs at least one case file or directory");
  const files: string[] = [];
  for (const p of positionals) {
    if (!existsSync(p)) throw new UsageError(`no such file or directory: ${p}`);
    if (statSync(p).isDirectory()) files.push(...listCases(p)); else files.push(p);
  }
  const cases = files.map((f) => ({ file: f, c: loadCase(f) })); // all parsed before anything runs
  const known = loadKnown(KNOWN_PATH);
  const kernel = a.backend === "model" ? null : await openBackend(a.backend, { log });
  let results;
  try {
    results = await replayCases(cases, kernel, a.profile, known, (r) => {
      if (a.json) return;
      const d = r.divergence;
      log(`${r.status.toUpperCase().padEnd(10)} ${r.case} [${r.backend}, ${r.profile}]${d ? ` ${d.kind} at ${d.opIndex >= 0 ? `op ${d.opIndex}` : "audit"} (${d.rule}): spec allows ${d.expected.join(" | ")}, observed ${d.observed}` : ""}${r.reason ? ` -- ${r.reason}` : ""}`);
    });
  } finally {
    await kernel?.close();
  }
  const failed = results.filter((r) => r.status === "divergence" || r.status === "bug-missed");
  if (a.json) console.log(JSON.stringify({ results, failed: failed.length }, null, 2));
  else log(`${results.length} cases: ${results.filter((r) => r.status === "agrees").length} agree, ${results.filter((r) => r.status === "bug-caught").length} bugs caught, ${results.filter((r) => r.status === "known").length} known, ${results.filter((r) => r.status === "skipped").length} skipped, ${failed.length} failed`);
  return failed.length ? 1 : 0;
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    if (cmd === "fuzz") return await cmdFuzz(rest);
    if (cmd === "replay") return await cmdReplay(rest);
    console.error(`usage: cli.ts fuzz|replay [options]  (npm run fuzz -- --help, npm run replay -- --help)`);
    return 2;
  } catch (e) {
    if (e instanceof UsageError || e instanceof CaseError || e instanceof BackendUnavailable || (e as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")) {
      console.error(`auxspec: ${(e as Error).message}`);
      return 2;
    }
    throw e;
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (e) => { console.error(e); process.exitCode = 2; });
}
