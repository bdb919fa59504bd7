/**
 * `npm run matrix`: the kernel matrix's command line (the runner and the report are matrix/).
 * The composition root for the matrix: it picks the backends (host, vm:K, vm:custom).
 */
import { join, relative, resolve } from "node:path";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { loadKnown } from "../fuzz/known.ts";
import { PROJECT_ROOT } from "../hwtest/vm/provision.ts";
import { columnSummary, renderSummary, runMatrix, writeReport, type BackendSlot } from "../matrix/index.ts";
import { CHUNK } from "../matrix/run.ts";
import { JournalMismatch, MatrixJournal } from "../matrix/journal.ts";

const SIGNAL_EXIT: Record<string, number> = { SIGHUP: 129, SIGINT: 130, SIGTERM: 143 };

const HELP = `usage: npm run matrix -- [options]

Runs one seeded program corpus on the host kernel and on Debian kernels under QEMU (with the
auxspec_pmu test PMU), judges every trace with the spec and writes a report.

  --seed N          corpus seed (default 1)
  --programs N      corpus size (default 200)
  --max-ops N       longest program (default 20)
  --kernels LIST    VM kernels, comma-separated: 6.1, 6.12, a Debian release (default 6.1,6.12);
                    "all": the newest build of every series Debian has (5.10 ... 7.3); "" for none
  --kernel FILE     also boot this bzImage (needs --headers DIR, a configured tree of it)
  --headers DIR
  --only-custom     only the --kernel bzImage (no host, no Debian kernels)
  --jobs N          backends open at once (default 2; each VM is one QEMU TCG guest keeping one
                    core busy per guest CPU: at most the host's cores, it says so when it uses fewer)
  --guest-cpus N    CPUs of each guest (default 1; config.cpus of its column; 1 .. 8)
  --no-record       do not write kernelsSeen/kernelsAbsent into cases/known-divergences.json
  --no-host         leave the host kernel out
  --model           add a column for the reference model (profile 6.18; a check of the harness:
                    every program should be accepted)
  --no-builtin      leave out the hand-written AUX programs that open the corpus
  --out DIR         report folder (default out/matrix); the run journals its traces in
                    DIR/journal as it goes (a progress line per kernel on stderr every
                    ${CHUNK} programs: done/total, programs/s, divergences, ETA)
  --chunk N         programs per journal record and progress line (default ${CHUNK})
  --fresh           discard an unfinished run journaled in --out instead of continuing it
  --strict          exit 1 when a divergence is not known or a trace was aborted
  --shard i/N       run only the corpus programs whose index k has k % N == i (0-based i), on
                    every kernel; --shard auto[/N] takes i and N from AUXSPEC_SHARD=i/N,
                    JOB_COMPLETION_INDEX (Kubernetes Indexed Job) or CI_NODE_INDEX/CI_NODE_TOTAL
                    (GitLab). npm run merge -- DIR... combines the shards' report folders into
                    the report of one run.

Long runs resume: a run stopped by Ctrl-C, SIGTERM or kill -9 continues where it stopped when
the same command runs again (same --out, --seed, --programs, --max-ops, --no-builtin, --shard;
other options are refused until --fresh): programs already journaled are not run again, kernels
whose every program is journaled are not booted, and the report is that of an uninterrupted run.
`;

async function main(): Promise<number> {
  let args;
  try {
    args = parseArgs({
      options: {
        seed: { type: "string", default: "1" }, programs: { type: "string", default: "200" }, "max-ops": { type: "string", default: "20" },
        kernels: { type: "string", default: "6.1,6.12" }, kernel: { type: "string" }, headers: { type: "string" },
        "only-custom": { type: "boolean", default: false }, jobs: { type: "string", default: "2" }, "guest-cpus": { type: "string", default: "1" }, "no-record": { type: "boolean", default: false },
        "no-host": { type: "boolean", default: false }, "no-builtin": { type: "boolean", default: false }, out: { type: "string", default: "out/matrix" }, fresh: { type: "boolean", default: false }, model: { type: "boolean", default: false }, chunk: { type: "string" }, strict: { type: "boolean", default: false },
        shard: { type: "string" },
        help: { type: "boolean", short: "h", default: false },
      },
    });
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n${HELP}`);
    return 2;
  }
  const v = args.values;
  if (v.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const num = (s: string, name: string, min: number) => {
    const n = Number(s);
    if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer >= ${min}`);
    return n;
  };
  let seed: number, programs: number, maxOps: number, jobs: number, chunk: number, cpus: number;
  let shard: { index: number; count: number } | undefined;
  try {
    if (v.shard !== undefined) {
      const { parseShard } = await import("../fuzz/shard.ts");
      const s = parseShard(v.shard);
      shard = { index: s.index, count: s.count };
    }
    seed = num(v.seed!, "seed", 0);
    programs = num(v.programs!, "programs", 1);
    maxOps = num(v["max-ops"]!, "max-ops", 1);
    jobs = num(v.jobs!, "jobs", 1);
    cpus = num(v["guest-cpus"]!, "guest-cpus", 1);
    if (cpus > 8) throw new Error("--guest-cpus must be at most 8");
    chunk = num(v.chunk ?? String(CHUNK), "chunk", 1);
    if (v["only-custom"] && !v.kernel) throw new Error("--only-custom needs --kernel and --headers");
    if (!!v.kernel !== !!v.headers) throw new Error("--kernel and --headers go together");
    if (v.kernel) {
      const { checkBzImage } = await import("../hwtest/vm/provision.ts");
      const why = checkBzImage(v.kernel); // before anything is copied into the kernel cache
      if (why) throw new Error(`--kernel: ${why}`);
    }
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n${HELP}`);
    return 2;
  }
  const log = (m: string) => process.stderr.write(`matrix: ${m}\n`);
  const outDir = resolve(v.out!);
  let journal: MatrixJournal;
  try {
    journal = MatrixJournal.open(outDir, { seed, programs, maxOps, builtin: !v["no-builtin"], shard: shard ?? null }, { fresh: v.fresh });
  } catch (e) {
    if (e instanceof JournalMismatch) {
      process.stderr.write(`matrix: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
  if (journal.resumed) log(`continuing the unfinished run in ${relative(process.cwd(), journal.dir) || journal.dir} (--fresh to start over)`);
  // Every chunk is journaled as it completes: a signal ends the run at once (QEMU dies with us,
  // setpriv --pdeathsig), and the same command continues it.
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.once(sig, () => {
      log(`${sig}: stopped; what ran is journaled in ${relative(process.cwd(), journal.dir) || journal.dir}: run the same command again to continue`);
      process.exit(SIGNAL_EXIT[sig]);
    });
  }
  const slots: BackendSlot[] = [];
  if (!v["no-host"] && !v["only-custom"]) {
    slots.push({ name: "host", open: async () => (await import("../hwtest/host/backend.ts")).hostBackend({ log }) });
  }
  const { vmBackend } = await import("../hwtest/vm/backend.ts");
  const { DEBIAN_SERIES } = await import("../hwtest/vm/release.ts");
  const kernels = v["only-custom"] ? [] : v.kernels!.split(",").map((s) => s.trim()).filter(Boolean).flatMap((k) => (k === "all" ? [...DEBIAN_SERIES] : [k]));
  for (const k of [...new Set(kernels)]) {
    slots.push({ name: `vm:${k}`, open: () => vmBackend(k, { log, cpus }) });
  }
  if (v.model) slots.push({ name: "model", open: async () => (await import("../backend/model.ts")).modelBackend("6.18") });
  if (v.kernel) slots.push({ name: "vm:custom", open: () => vmBackend("custom", { bzImage: v.kernel, headers: v.headers, log, cpus }) });
  const knownPath = join(PROJECT_ROOT, "cases", "known-divergences.json");
  const known = loadKnown(knownPath);
  if (shard) log(`shard ${shard.index}/${shard.count}: corpus programs k with k % ${shard.count} == ${shard.index}`);
  // More guests than cores only slow each other down (hwtest/vm/parallel.ts vmWorkers).
  const { vmWorkers } = await import("../hwtest/vm/parallel.ts");
  const lanes = vmWorkers(jobs, { cpus });
  if (lanes.why) log(lanes.why.replace(/^--workers/, "--jobs"));
  jobs = lanes.workers;
  const r = await runMatrix(slots, { seed, programs, maxOps, log, known, builtin: !v["no-builtin"], concurrency: jobs, chunk, journal, ...(shard ? { shard } : {}) });
  // The kernels this run saw each known divergence on, or checked it absent on (matrix/record.ts).
  // A shard sees part of the corpus only: it records nothing (merge the shards, then run unsharded to record).
  const { recordKnown } = await import("../matrix/record.ts");
  if (!v["no-record"] && !shard && r.corpus.length) {
    const added = recordKnown(r, knownPath);
    log(added.length ? `recorded in cases/known-divergences.json: ${added.map((a) => `${a.id} ${a.mark} on ${a.kernel}`).join("; ")}` : "cases/known-divergences.json: nothing new");
  }
  const files = writeReport(r, outDir, loadKnown(knownPath));
  // The report is written: the next run with this --out starts afresh. A run where no backend
  // came up stays open (nothing ran; a later run fills it in).
  if (!r.columns.every((c) => c.unavailable)) journal.finish();
  const rel = (p: string) => relative(process.cwd(), p) || p;
  process.stdout.write(`${renderSummary(r)}\nreport: ${rel(files.md)}, ${rel(files.html)} (${files.cases.length} divergence cases in ${rel(join(outDir, "cases"))})\n`);
  if (r.columns.every((c) => c.unavailable)) return 2;
  if (v.strict) {
    const bad = r.columns.some((c) => {
      if (c.unavailable) return false;
      const s = columnSummary(c);
      return s.diverged > 0 || s.aborted > 0;
    });
    return bad ? 1 : 0;
  }
  return 0;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().then((code) => process.exit(code), (e) => {
    process.stderr.write(`matrix: ${(e as Error).stack ?? e}\n`);
    process.exit(2);
  });
}
