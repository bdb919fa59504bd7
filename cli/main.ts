/**
 * The auxspec command line: `fuzz` and `replay`.
 *
 *   npm run fuzz -- [--backend model|host|vm:KERNEL] [--profile auto|seed|6.1|6.12|6.18|...]
 *                   [--runs N | --time SECONDS] [--seed N] [--workers K] [--guest-cpus N] [--repeat N]
 *                   [--bug ID] [--out DIR] [--json]
 *   npm run replay -- CASE.json|DIR ... [--backend ...] [--profile ...] [--json]
 *
 * Exit codes: 0 no reproducible unexplained divergence, 1 reproducible divergence, 2 usage or
 * set-up error, 3 the harness aborted more than ABORT_LIMIT of the programs; 130/143/129 when
 * stopped by SIGINT/SIGTERM/SIGHUP (after the partial summary).
 */
import { parseArgs } from "node:util";
import { existsSync, lstatSync, statSync } from "node:fs";
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
import { MIN_PARALLEL_RUNS, modelWorkers, runParallel } from "../fuzz/parallel.ts";
import { parseShard, slices, ShardError, type Shard } from "../fuzz/shard.ts";
import { campaignResult, writeResults } from "../fuzz/results.ts";
import { loadKnown, matchKnown, type KnownDivergence } from "../fuzz/known.ts";
import { loadCase, listCasesChecked, findingToCase, writeCase, checkOutDir, CaseError, rel } from "../fuzz/cases.ts";
import { replayCases } from "../fuzz/replay.ts";
import { removeOwnTempDirs, sweepStaleTempDirs } from "../backend/lifecycle.ts";
/** hwtest/host/backend.ts DEFAULT_HOST_WORKERS (not imported: model runs never load the host backend; a test holds them equal). */
export const DEFAULT_HOST_WORKERS = 2;

/** Repetitions of each par program on a kernel backend with runRepeated, races on, unless --repeat. */
export const DEFAULT_RACE_REPEAT = 20;
/** CPUs of a vm:KERNEL guest with races on, unless --guest-cpus: a par block's tasks on two CPUs at once. */
export const DEFAULT_RACE_GUEST_CPUS = 2;
export const MAX_GUEST_CPUS = 8;

/**
 * The race options a fuzz run settles on (issue 14): `guestCpus` for a vm:KERNEL backend
 * (--guest-cpus, else 2 with races on, 1 with --no-races; undefined for other backends, where
 * --guest-cpus is a usage error), and `repeat(canRepeat)` once the backend is open (--repeat,
 * else DEFAULT_RACE_REPEAT on the host or a guest that has runRepeated with races on, else 1).
 */
export function raceOptions(backend: string | undefined, a: { "guest-cpus"?: number; repeat?: number; "no-races": boolean }): { guestCpus: number | undefined; repeat: (info: { name: string }, canRepeat: boolean) => number } {
  const vm = backend?.startsWith("vm:") ?? false;
  if (a["guest-cpus"] !== undefined && !vm) throw new UsageError(`--guest-cpus applies to vm:KERNEL backends only (the backend is ${backend ?? "chosen automatically: never a VM"})`);
  const races = !a["no-races"];
  return {
    guestCpus: vm ? a["guest-cpus"] ?? (races ? DEFAULT_RACE_GUEST_CPUS : 1) : undefined,
    repeat: (info, canRepeat) => a.repeat ?? (canRepeat && races && (info.name === "host" || info.name.startsWith("vm:")) ? DEFAULT_RACE_REPEAT : 1),
  };
}

/** The CPU count most of the cases were made for (the larger on a tie; 1 for none). */
export function casesCpus(cpus: readonly number[]): number {
  const n = new Map<number, number>();
  for (const c of cpus) n.set(c, (n.get(c) ?? 0) + 1);
  let best = 1, most = 0;
  for (const [c, k] of n) if (k > most || (k === most && c > best)) [best, most] = [c, k];
  return best;
}

/** Above this fraction of programs aborted by the harness (after one retry each), exit 3. */
export const ABORT_LIMIT = 0.05;
export const EXIT = { ok: 0, divergence: 1, usage: 2, harness: 3 } as const;
const SIGNAL_EXIT: Record<string, number> = { SIGHUP: 129, SIGINT: 130, SIGTERM: 143 };
/** After a signal, how long in-flight programs get before the run is cut short. */
const STOP_GRACE_MS = 2000;
const MAX_OPS = 256; // spec/program.ts: Program holds at most 256 ops

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const KNOWN_PATH = join(ROOT, "cases", "known-divergences.json");

class UsageError extends Error { override name = "UsageError"; }

const FUZZ_HELP = `usage: npm run fuzz -- [options]

Generates random programs of perf mmap/munmap/ioctl ops, runs them on a backend, judges
every trace with the spec, shrinks each divergence and writes it as a case (JSON) and a
C reproducer.

  --backend B    model | host | vm:6.1 | vm:6.12 | vm:<debian release>
                 (default: the best this machine has: the host kernel when perf works)
  --guest-cpus N CPUs of each vm guest (QEMU TCG, one host core per CPU; 1 .. ${MAX_GUEST_CPUS});
                 default ${DEFAULT_RACE_GUEST_CPUS} (a par block's tasks run on two CPUs at once), 1 with --no-races
  --profile P    auto | ${PROFILES.join(" | ")}  (default auto: the kernel's own; 6.18 for the model)
  --runs N       stop after N programs
  --time S       stop after S seconds (default 60 when --runs is not given)
  --seed N       program stream seed (default: random, printed); same seed, same programs
  --workers K    processes (model; at most cores - 1 and the cores the load leaves idle, 1
                 for --runs under ${MIN_PARALLEL_RUNS}: fewer than asked when more would be slower,
                 and it says why), executor agents (host; at most 2 per CPU, 1 when not
                 root) or guests of the kernel (vm; at most one host core per guest
                 CPU, as memory allows);
                 default 1 (model), ${DEFAULT_HOST_WORKERS} (host), 1 (vm)
  --bug ID       switch on a historic bug in the model (repeatable): ${BUGS.map((b) => b.id).join(", ")}
  --max-ops N    longest program (default 20, at most ${MAX_OPS})
  --repeat N     run every program with a par block N times on a kernel backend (host or vm
                 guest: the C agent's barrier, 0-50 us jitter, a fresh uid each time) and judge
                 every repetition against the spec's linearizations (default ${DEFAULT_RACE_REPEAT} on the host
                 and on vm guests, 1 with --no-races; the model's explorer runs every
                 interleaving instead)
  --no-races     generate no threads or par blocks
  --first        stop at the first unexplained divergence (once it is shrunk and written);
                 the report and --json give the seconds into the run it was found at
  --out DIR      where cases and reproducers go (default out/fuzz; checked before the first
                 program). Names are BACKEND-KIND-RULE-HASH (HASH of the program): runs into
                 one DIR keep every finding. Divergences a re-run does not reproduce go to DIR/flaky/.
  --shard i/N    run only shard i (0-based) of N: the programs whose index k has k % N == i,
                 of the --runs N programs of --seed S (both required). --shard auto[/N]
                 takes i and N from AUXSPEC_SHARD=i/N, a Kubernetes Indexed Job
                 (JOB_COMPLETION_INDEX; N from auto/N or AUXSPEC_SHARD_COUNT) or GitLab
                 parallel (CI_NODE_INDEX/CI_NODE_TOTAL). With --shard, DIR also gets
                 summary.json, coverage.json and findings.json; npm run merge -- DIR...
                 combines the shards' (same summary, coverage and findings as one run, which
                 is --shard 0/1).
  --json         print one JSON object instead of the report
  -h, --help     this text

Programs the harness aborts (agent or guest died, time-out, malformed reply) are run once
more, then counted as aborted: never shrunk or written as findings.
SIGINT/SIGTERM/SIGHUP stop the run: in-flight programs get ${STOP_GRACE_MS / 1000} s, then the partial summary.

Exit: 0 no reproducible unexplained divergence, 1 reproducible divergence, 2 usage or set-up
error, 3 the harness aborted more than ${ABORT_LIMIT * 100} % of the programs; 130/143/129 after SIGINT/SIGTERM/SIGHUP.`;

const REPLAY_HELP = `usage: npm run replay -- CASE.json|DIR ... [options]

Replays auxspec-case/1 cases on a backend and judges them with the spec. A case's
\`expect\` is checked too (a mismatch is a divergence of kind expect). A case with
\`bugs\` replays on the model with those bugs switched on, and must still be caught.

  --backend B    model (default) | host | vm:KERNEL
  --guest-cpus N CPUs of the vm guest (default: the cpus most of the cases were made for; a
                 case made for another count is skipped, as on any kernel)
  --repeat N     run each case with a par block N times (host and vm backends: the fuzzer's
                 barrier and jitter) and judge every repetition: the first the spec rejects
                 stands for the case, and the line says how many of the N diverged
  --profile P    auto | ${PROFILES.join(" | ")} (default: the case's profile, else the backend's)
  --json         one JSON object
  -h, --help     this text

A directory is searched recursively (symlinks followed); every unusable entry (dangling
symlink, loop, unreadable, invalid case) is listed before anything runs.

Exit: 0 every case agrees (or matches a known divergence), 1 divergence, 2 usage or setup error,
3 the harness aborted a run (and nothing diverged).`;

const Int = (name: string, min: number) => z.coerce.number({ error: `${name} must be a number` }).int(`${name} must be an integer`).min(min, `${name} must be at least ${min}`);

const Profile = z.union([z.literal("auto"), ProfileId], { error: (i) => `--profile must be one of auto, ${PROFILES.join(", ")} (got ${JSON.stringify(i.input)})` });

const FuzzArgs = z.object({
  backend: z.string().optional(),
  profile: Profile.default("auto"),
  runs: Int("--runs", 1).optional(),
  time: z.coerce.number().positive("--time must be positive").optional(),
  seed: Int("--seed", 0).optional(),
  workers: Int("--workers", 1).optional(),
  "guest-cpus": Int("--guest-cpus", 1).max(MAX_GUEST_CPUS, `--guest-cpus must be at most ${MAX_GUEST_CPUS}`).optional(),
  bug: z.array(z.string()).default([]),
  "max-ops": Int("--max-ops", 1).max(MAX_OPS, `--max-ops must be at most ${MAX_OPS} (a case holds at most ${MAX_OPS} ops)`).default(20),
  repeat: Int("--repeat", 1).max(10000, "--repeat must be at most 10000").optional(),
  "no-races": z.boolean().default(false),
  first: z.boolean().default(false),
  out: z.string().default("out/fuzz"),
  shard: z.string().optional(),
  json: z.boolean().default(false),
});

const ReplayArgs = z.object({
  backend: z.string().default("model"),
  "guest-cpus": Int("--guest-cpus", 1).max(MAX_GUEST_CPUS, `--guest-cpus must be at most ${MAX_GUEST_CPUS}`).optional(),
  profile: Profile.default("auto"),
  repeat: Int("--repeat", 1).max(100000, "--repeat must be at most 100000").default(1),
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
    count: f.count, seed: f.seed, index: f.index, atSeconds: Math.round(f.atSeconds * 1000) / 1000, case: rel(paths.json), reproducer: paths.c ? rel(paths.c) : null,
    shrunk: f.shrunk, shrinkRuns: f.shrinkRuns, confirmed: f.confirmed, known: f.known?.id ?? null,
  };
}

/**
 * Signals: the first SIGINT/SIGTERM/SIGHUP stops generation (the campaign and the model workers
 * see `stop`), in-flight programs get STOP_GRACE_MS; then the partial summary is printed and the
 * process exits 128+signal. A second signal (1 s or more after the first: wrappers relay the
 * first one) exits at once. Children die with us either way
 * (PR_SET_PDEATHSIG, setpriv --pdeathsig for QEMU), temp dirs are removed on exit.
 */
const DUPLICATE_MS = 1000;

class Stopper {
  readonly controller = new AbortController();
  signal: NodeJS.Signals | null = null;
  private onForce: (() => void) | null = null;
  private timer: NodeJS.Timeout | null = null;
  private readonly handlers: Array<[NodeJS.Signals, () => void]> = [];
  constructor(private readonly quiet: boolean) {
    for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
      const h = () => this.fire(sig);
      this.handlers.push([sig, h]);
      process.on(sig, h);
    }
  }
  get stop() { return this.controller.signal; }
  get exitCode(): number | null { return this.signal ? SIGNAL_EXIT[this.signal] : null; }
  /** What to do when the grace period is over and the run has not wound down. */
  force(fn: () => void) { this.onForce = fn; }
  private firstAt = 0;
  private fire(sig: NodeJS.Signals) {
    // One Ctrl-C reaches this process more than once when it runs under wrappers (npm run,
    // npx, tsx): the terminal signals the whole process group and each wrapper relays it too.
    // A second signal within DUPLICATE_MS is that same keypress, not a user insisting.
    if (this.signal && performance.now() - this.firstAt < DUPLICATE_MS) return;
    if (this.signal) { removeOwnTempDirs(); process.exit(SIGNAL_EXIT[this.signal]); }
    this.signal = sig;
    this.firstAt = performance.now();
    if (!this.quiet) log(`\n${sig}: stopping (in-flight programs get ${STOP_GRACE_MS / 1000} s)`);
    this.controller.abort();
    this.timer = setTimeout(() => { this.onForce?.(); removeOwnTempDirs(); process.exit(SIGNAL_EXIT[sig]); }, STOP_GRACE_MS);
    this.timer.unref();
  }
  dispose() {
    if (this.timer) clearTimeout(this.timer);
    for (const [sig, h] of this.handlers) process.off(sig, h);
  }
}

async function cmdFuzz(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv, allowPositionals: false, strict: true,
    options: {
      backend: { type: "string" }, profile: { type: "string" }, runs: { type: "string" }, time: { type: "string" },
      seed: { type: "string" }, workers: { type: "string" }, "guest-cpus": { type: "string" }, bug: { type: "string", multiple: true },
      "max-ops": { type: "string" }, repeat: { type: "string" }, "no-races": { type: "boolean" }, first: { type: "boolean" }, out: { type: "string" }, shard: { type: "string" }, json: { type: "boolean" }, help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) { console.log(FUZZ_HELP); return 0; }
  const a = parse(FuzzArgs, values);
  let shard: Shard | null = null;
  if (a.shard !== undefined) {
    try {
      shard = parseShard(a.shard);
    } catch (e) {
      if (e instanceof ShardError) throw new UsageError(e.message);
      throw e;
    }
    if (a.seed === undefined || a.runs === undefined) throw new UsageError("--shard needs --seed and --runs (the whole campaign's program count): every shard must run the same program stream");
    if (a.time !== undefined) throw new UsageError("--shard runs a fixed share of --runs programs; --time would make the shards' union depend on timing");
    if (a.first) throw new UsageError("--shard runs a fixed share of --runs programs; --first would make the shards' union depend on timing");
  }
  const race = raceOptions(a.backend, a);
  const seed = a.seed ?? Math.floor(Math.random() * 2 ** 31);
  const known = loadKnown(KNOWN_PATH);
  checkOutDir(a.out); // before anything starts: a bad --out is a usage error, not a late stack trace
  const swept = sweepStaleTempDirs();
  if (swept.length && !a.json) log(`removed ${swept.length} temp dir(s) left by runs that were killed: ${swept.join(", ")}`);
  const stopper = new Stopper(a.json);

  let backend: Backend;
  let why: string;
  try {
    if (a.backend) {
      backend = await openBackend(a.backend, { profile: a.profile, bugs: a.bug, workers: a.workers, cpus: race.guestCpus, repeat: a.repeat ?? (a["no-races"] ? 1 : DEFAULT_RACE_REPEAT), log });
      why = "chosen with --backend";
    } else if (a.bug.length) {
      backend = await openBackend("model", { profile: a.profile, bugs: a.bug });
      why = "--bug applies to the model";
    } else {
      ({ backend, why } = await bestBackend({ profile: a.profile, workers: a.workers, log }));
    }
  } catch (e) {
    stopper.dispose();
    throw e;
  }
  if (stopper.signal) { await backend.close(); stopper.dispose(); return stopper.exitCode!; }
  try {
    const info = backend.info;
    const profile: ProfileId = a.profile === "auto" ? info.profile : a.profile;
    const seconds = a.runs === undefined ? (a.time ?? 60) : a.time;
    const repeat = race.repeat(info, backend.runRepeated !== undefined);
    const total = RULES.filter((r) => r.profiles.includes(profile) && !NON_DECIDING.has(r.id)).length;
    if (!a.json) {
      log(`auxspec fuzz: backend ${info.name}${info.kernel ? ` (kernel ${info.kernel})` : ""}, profile ${profile}, seed ${seed}`);
      log(`  why this backend: ${why}`);
      for (const n of info.notes) log(`  note: ${n}`);
      log(`  budget: ${a.runs !== undefined ? `${a.runs} programs` : ""}${a.runs !== undefined && seconds ? " or " : ""}${seconds ? `${seconds} s` : ""}; programs up to ${a["max-ops"]} ops`);
      if (info.kernel !== null) {
        log(`  races: ${a["no-races"] ? "off (--no-races)" : `par blocks on; each par program runs ${repeat} time${repeat === 1 ? "" : "s"}${a.repeat === undefined ? ` (default${repeat > 1 ? "" : ": this backend cannot repeat"})` : " (--repeat)"}`}${race.guestCpus !== undefined ? `; guests of ${info.config.cpus} CPU${info.config.cpus === 1 ? "" : "s"}${a["guest-cpus"] === undefined ? " (default)" : " (--guest-cpus)"}` : ""}`);
      }
    }
    const written = new Map<string, { json: string; c?: string }>();
    const flakyWritten: Array<{ f: Finding; paths: { json: string; c?: string } }> = [];
    const write = (f: Finding) => {
      const c: Case = findingToCase(f, info, profile, info.config, a.bug);
      return writeCase(f.flaky ? join(a.out, "flaky") : a.out, c);
    };
    const onFinding = (f: Finding) => {
      const paths = write(f);
      if (f.flaky) flakyWritten.push({ f, paths }); else written.set(f.signature, paths);
      if (!a.json) {
        if (tty) process.stderr.write("\r\x1b[K");
        const d = f.shrunkDivergence;
        const what = f.flaky ? "flaky (not reproduced on a re-run)" : f.known ? "known divergence" : "DIVERGENCE";
        log(`${what} ${d.kind} at ${d.opIndex >= 0 ? `op ${d.opIndex}` : "audit"} (rule ${d.rule}): spec allows ${d.expected.join(" | ")}, observed ${d.observed}`);
        if (f.known) log(`  known: ${f.known.id}: ${f.known.explanation}`);
        if (!f.flaky) log(`  shrunk ${f.original.length} -> ${f.shrunk.length} ops in ${f.shrinkRuns} runs${f.confirmed ? `; reproduced ${f.confirmed.reproduced}/${f.confirmed.of}` : ""}; first seen in program #${f.index} at ${f.atSeconds.toFixed(2)} s`);
        log(`  ${f.flaky ? "program" : "case"} ${rel(paths.json)}   reproducer ${paths.c ? rel(paths.c) : `- (${"noRepro" in paths && paths.noRepro ? paths.noRepro : "none"})`}`);
        if (!f.flaky) log(`  replay: npm run replay -- ${rel(paths.json)} --backend ${a.backend ?? info.name.split("+")[0]} --profile ${profile}`);
      }
    };
    // What the summary is made of, kept current so that a signal can print it part-way.
    let live: Partial<CampaignStats> & { programs: number; ops: number; divergences: number; known: number; seconds: number } = { programs: 0, ops: 0, divergences: 0, known: 0, seconds: 0 };
    let settled: { stats: CampaignStats; findings: Finding[] } | null = null;
    let reported = false; // once per run: by the signal's grace timer or at the end, whichever is first
    const summary = (partial: boolean) => !reported && (reported = true) && report({ a, info, profile, seed, workers, live, settled, written, flakyWritten, partial, signal: stopper.signal });
    stopper.force(() => summary(true));
    let workers = a.workers ?? 1;
    if (info.kernel === null && workers > 1) {
      // The model's workers are processes: more than the idle cores (or a budget shorter than
      // their start-up) only slows the campaign down. The tool picks, and says why.
      const choice = modelWorkers(workers, { runs: shard && a.runs !== undefined ? slices(a.runs, shard, 1)[0].runs : a.runs });
      if (choice.why && !a.json) log(`  ${choice.why}`);
      workers = choice.workers;
    }
    if (shard && !a.json) log(`  shard ${shard.index}/${shard.count} (from ${shard.source}): programs k < ${a.runs} with k % ${shard.count} == ${shard.index}, ${slices(a.runs!, shard, 1)[0].runs} of them`);
    if (info.kernel === null && workers > 1) {
      settled = await runParallel({ profile, bugs: a.bug, seed, runs: a.runs, seconds, maxOps: a["max-ops"], races: !a["no-races"], known, stopAtFirst: a.first, ...(shard ? { shard } : {}) }, workers,
        (s) => { live = s; progressLine(s, total); }, onFinding, stopper.stop);
    } else {
      const sl = shard ? slices(a.runs!, shard, 1)[0] : null;
      settled = await runCampaign({
        backend, profile, seed, runs: sl ? sl.runs : a.runs, ...(sl ? { offset: sl.offset, stride: sl.stride } : {}), seconds, maxOps: a["max-ops"], known, stop: stopper.stop,
        repeat, races: !a["no-races"], stopAtFirst: a.first,
        onProgress: (s) => { live = s; progressLine({ ...s, covered: [...s.coverage.keys()].filter((k) => !NON_DECIDING.has(k)).length }, total); },
        onDivergence: onFinding,
      });
    }
    if (tty && !a.json) process.stderr.write("\r\x1b[K");
    // Write (again) what the run settled on: with several workers the finding kept for a
    // signature is the one with the lowest program index, whatever arrived first.
    for (const f of settled.findings) written.set(f.signature, write(f));
    if (!stopper.signal && shard) {
      // The machine-readable result directory (npm run merge combines shards' ones).
      writeResults(a.out, campaignResult({
        dir: a.out, seed, runs: a.runs!, shard: shard ? { index: shard.index, count: shard.count } : null, info, profile,
        maxOps: a["max-ops"], bugs: a.bug, stats: settled.stats, findings: settled.findings.filter((f) => !f.flaky), paths: written,
      }));
    }
    summary(stopper.signal !== null);
    if (stopper.signal) return stopper.exitCode!;
    const { stats, findings } = settled;
    if (findings.some((f) => !f.known && !f.flaky)) return EXIT.divergence;
    if (stats.programs > 0 && stats.aborted / stats.programs > ABORT_LIMIT) return EXIT.harness;
    return EXIT.ok;
  } finally {
    await backend.close();
    stopper.dispose();
  }
}

interface ReportIn {
  a: z.infer<typeof FuzzArgs>;
  info: Backend["info"];
  profile: ProfileId;
  seed: number;
  workers: number;
  live: Partial<CampaignStats> & { programs: number; ops: number; divergences: number; known: number; seconds: number };
  settled: { stats: CampaignStats; findings: Finding[] } | null;
  written: Map<string, { json: string; c?: string }>;
  flakyWritten: Array<{ f: Finding; paths: { json: string; c?: string } }>;
  partial: boolean;
  signal: NodeJS.Signals | null;
}

function report(r: ReportIn): void {
  const { a, info, profile, seed, workers, written, flakyWritten } = r;
  const stats = r.settled?.stats ?? { aborted: 0, retried: 0, flaky: 0, abortReasons: [], coverage: new Map<string, number>(), ...r.live };
  const findings = r.settled?.findings ?? [];
  const unexplained = findings.filter((f) => !f.known);
  const aborted = stats.aborted ?? 0;
  const entry = (f: Finding) => divergenceJson(f, written.get(f.signature) ?? { json: "(not written)" });
  if (tty && !a.json) process.stderr.write("\r\x1b[K");
  if (a.json) {
    console.log(JSON.stringify({
      backend: info.name, profile, kernel: info.kernel, seed, workers, programs: stats.programs, ops: stats.ops,
      seconds: Number(stats.seconds.toFixed(3)), partial: r.partial, ...(r.signal ? { signal: r.signal } : {}),
      aborted, retried: stats.retried ?? 0, abortLimit: ABORT_LIMIT, abortReasons: stats.abortReasons ?? [],
      divergences: unexplained.map(entry),
      known: findings.filter((f) => f.known).map(entry),
      flaky: flakyWritten.map(({ f, paths }) => divergenceJson(f, paths)),
      casesWritten: [...written.values()].map((p) => rel(p.json)),
      coverage: Object.fromEntries([...(stats.coverage ?? new Map())].sort()),
    }, null, 2));
    return;
  }
  if (r.partial) log(`\nstopped by ${r.signal}: partial summary`);
  log(`\n${stats.programs} programs, ${stats.ops} ops in ${stats.seconds.toFixed(1)} s (${Math.round(stats.programs / Math.max(stats.seconds, 1e-9))} programs/s)`);
  log(`${stats.divergences} divergent programs in ${r.settled ? unexplained.length : written.size} distinct divergences; ${stats.known} known; ${stats.flaky ?? flakyWritten.length} flaky (not reproduced)`);
  log(`${aborted} programs aborted by the harness after a retry (${stats.retried ?? 0} retried; limit ${ABORT_LIMIT * 100} %)${aborted ? ":" : ""}`);
  for (const why of stats.abortReasons ?? []) log(`  ${why}`);
  if (r.settled && !r.partial) {
    log("\nrule coverage on this backend:");
    for (const l of coverageTable(stats.coverage, profile)) log(l);
  }
  if (written.size || flakyWritten.length) {
    log("\ncases written:");
    const byPath = new Map(findings.map((f) => [f.signature, f]));
    for (const [sig, p] of written) log(`  ${rel(p.json)}${p.c ? `  ${rel(p.c)}` : ""}${byPath.get(sig)?.known ? "  (known)" : ""}`);
    for (const { paths } of flakyWritten) log(`  ${rel(paths.json)}  (flaky)`);
  }
}

async function cmdReplay(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv, allowPositionals: true, strict: true,
    options: { backend: { type: "string" }, "guest-cpus": { type: "string" }, repeat: { type: "string" }, profile: { type: "string" }, json: { type: "boolean" }, help: { type: "boolean", short: "h" } },
  });
  if (values.help) { console.log(REPLAY_HELP); return 0; }
  const a = parse(ReplayArgs, values);
  if (!positionals.length) throw new UsageError("replay needs at least one case file or directory");
  if (a["guest-cpus"] !== undefined && !a.backend.startsWith("vm:")) throw new UsageError(`--guest-cpus applies to vm:KERNEL backends only (the backend is ${a.backend})`);
  if (a.repeat > 1 && a.backend === "model") throw new UsageError("--repeat applies to kernel backends (host, vm:KERNEL); the model's explorer runs every interleaving of a par block instead");
  // Everything is listed and parsed before anything runs, and every problem is named.
  const files: string[] = [];
  const problems: string[] = [];
  for (const p of positionals) {
    let isLink = false;
    try { isLink = lstatSync(p).isSymbolicLink(); } catch { /* does not exist at all */ }
    if (!existsSync(p)) {
      if (isLink) {
        let why = "a symlink that dangles (its target does not exist)";
        try { statSync(p); } catch (e) { if ((e as NodeJS.ErrnoException).code === "ELOOP") why = "a symlink loop"; }
        problems.push(`${p}: ${why}`);
      } else problems.push(`${p}: no such file or directory`);
      continue;
    }
    if (statSync(p).isDirectory()) {
      const l = listCasesChecked(p);
      files.push(...l.files);
      problems.push(...l.problems);
    } else files.push(p);
  }
  const cases: { file: string; c: Case }[] = [];
  for (const f of files) {
    try { cases.push({ file: f, c: loadCase(f) }); } catch (e) {
      if (!(e instanceof CaseError)) throw e;
      problems.push(e.message);
    }
  }
  if (problems.length) {
    throw new CaseError(`${problems.length} unusable case file${problems.length === 1 ? "" : "s"} (nothing was run):\n${problems.map((m) => `  ${m.replace(/\n/g, "\n    ")}`).join("\n")}`);
  }
  const known = loadKnown(KNOWN_PATH);
  // A guest gets the CPU count the cases were made for (fuzz on a vm backend makes 2-CPU cases
  // with races on): a case's config.cpus must be the machine's (fuzz/replay.ts skips others).
  const cpus = a.backend.startsWith("vm:") ? a["guest-cpus"] ?? Math.min(MAX_GUEST_CPUS, casesCpus(cases.map((x) => x.c.config.cpus))) : undefined;
  const kernel = a.backend === "model" ? null : await openBackend(a.backend, { log, cpus });
  let results;
  try {
    results = await replayCases(cases, kernel, a.profile, known, (r) => {
      if (a.json) return;
      const d = r.divergence;
      log(`${r.status.toUpperCase().padEnd(10)} ${r.case} [${r.backend}, ${r.profile}]${r.repetitions ? ` ${r.repetitions.diverged} of ${r.repetitions.of} repetitions diverged;` : ""}${d ? ` ${d.kind} at ${d.opIndex >= 0 ? `op ${d.opIndex}` : "audit"} (${d.rule}): spec allows ${d.expected.join(" | ")}, observed ${d.observed}` : ""}${r.reason ? ` -- ${r.reason}` : ""}`);
      for (const o of r.repetitions?.outcomes ?? []) log(`           ${String(o.count).padStart(6)} x ${o.what}${o.known ? ` (known: ${o.known})` : o.what === "accepted" ? "" : " (UNEXPLAINED)"}`);
    }, a.repeat);
  } finally {
    await kernel?.close();
  }
  const failed = results.filter((r) => r.status === "divergence" || r.status === "bug-missed");
  const aborted = results.filter((r) => r.status === "aborted").length;
  if (a.json) console.log(JSON.stringify({ results, failed: failed.length, aborted }, null, 2));
  else log(`${results.length} cases: ${results.filter((r) => r.status === "agrees").length} agree, ${results.filter((r) => r.status === "bug-caught").length} bugs caught, ${results.filter((r) => r.status === "known").length} known, ${results.filter((r) => r.status === "skipped").length} skipped, ${aborted} aborted by the harness, ${failed.length} failed`);
  return failed.length ? EXIT.divergence : aborted ? EXIT.harness : EXIT.ok;
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
