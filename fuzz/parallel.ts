/**
 * --workers K for the model backend: K processes, worker w fuzzing program indices
 * i = w, w+K, w+2K ... of the same seed, so the union is exactly the single-process
 * stream. Each worker shrinks its own findings; the parent merges by signature,
 * keeping the finding with the lowest program index (deterministic whatever the timing).
 * Kernel backends parallelise inside the backend instead (several executor workers).
 */
import { fork } from "node:child_process";
import { availableParallelism, loadavg } from "node:os";
import { fileURLToPath } from "node:url";
import type { ProfileId } from "../spec/program.ts";
import type { CampaignStats, Finding } from "./campaign.ts";
import type { KnownDivergence } from "./known.ts";
import { childEnv, underPdeathsig } from "../backend/lifecycle.ts";
import { slices } from "./shard.ts";

export interface WorkerJob {
  profile: ProfileId;
  bugs: string[];
  seed: number;
  runs?: number;
  seconds?: number;
  stride: number;
  offset: number;
  maxOps: number;
  minOps?: number;
  /** Generate threads and par blocks (default true). */
  races?: boolean;
  known: KnownDivergence[];
  /** `--first`: every worker stops generating once one has found an unexplained divergence. */
  stopAtFirst?: boolean;
}

export type WorkerMsg =
  | { t: "progress"; programs: number; ops: number; divergences: number; known: number }
  | { t: "finding"; finding: Finding }
  | { t: "done"; stats: Omit<CampaignStats, "coverage"> & { coverage: [string, number][] }; counts: [string, number][] }
  | { t: "error"; message: string };

/** Parent to worker: the job, then possibly a stop request (SIGINT/SIGTERM). */
export type ParentMsg = WorkerJob | { t: "stop" } | { t: "enough" };

/**
 * V8 flags for fuzz workers. The hot loop allocates fast: a 64 MiB young generation halves
 * the time spent in scavenges (measured: 15k -> 30k programs/s of 20 ops for one worker).
 * Several workers on few cores contend for V8's parallel GC helper threads, so each then
 * collects on its own thread (2 workers: 1.56x one worker, against 1.1x with parallel GC).
 */
export function workerFlags(workers: number): string[] {
  return ["--import", "tsx", "--max-semi-space-size=64", ...(workers > 1 ? ["--single-threaded-gc"] : [])];
}

/** Programs below which a second process cannot pay for itself: a worker's start-up (node +
 *  tsx, about 1 to 2 s) is longer than one worker takes for them (15k-30k programs/s). */
export const MIN_PARALLEL_RUNS = 20_000;

export interface ModelWorkerChoice {
  workers: number;
  /** Why fewer than asked for (null when as asked). */
  why: string | null;
}

/**
 * How many model worker processes can make a campaign faster than one, from facts checked
 * before starting: the host's cores, the load already on them (1-minute load average), and the
 * budget. Each worker keeps one core busy (its own GC thread with several workers); the parent,
 * the system and the other work on the host need the rest. So: at most cores - 1, at most the
 * cores the load leaves idle, and 1 for a --runs budget a worker's start-up would outlast.
 * On this project's 2-core machine that is 1: 2 workers measured 0.66-1.03x of one there.
 * AUXSPEC_WORKERS_AS_ASKED=1 keeps the number asked for (tests of the multi-process path).
 */
export function modelWorkers(requested: number, facts: { cores?: number; load1?: number; runs?: number; env?: NodeJS.ProcessEnv } = {}): ModelWorkerChoice {
  const want = Math.max(1, Math.floor(requested));
  if (want === 1 || (facts.env ?? process.env).AUXSPEC_WORKERS_AS_ASKED === "1") return { workers: want, why: null };
  const cores = facts.cores ?? availableParallelism();
  const load1 = facts.load1 ?? loadavg()[0];
  const byCores = Math.max(1, cores - 1);
  const idle = Math.max(1, Math.floor(cores - load1));
  const byRuns = facts.runs !== undefined && facts.runs < MIN_PARALLEL_RUNS ? 1 : want;
  const workers = Math.max(1, Math.min(want, byCores, idle, byRuns));
  if (workers === want) return { workers, why: null };
  const reasons: string[] = [];
  if (byCores < want) reasons.push(`${cores} core${cores === 1 ? "" : "s"}: each worker keeps one busy and the parent and the system need one (2 workers measured 0.66-1.03x of one on 2 cores)`);
  if (idle < want) reasons.push(`load average ${load1.toFixed(2)} leaves ${idle} of ${cores} cores idle`);
  if (byRuns < want) reasons.push(`--runs ${facts.runs} takes one worker less time than another worker's start-up (under ${MIN_PARALLEL_RUNS} programs)`);
  return { workers, why: `--workers ${want}: using ${workers} worker${workers === 1 ? "" : "s"}: ${reasons.join("; ")}` };
}

export async function runParallel(
  job: Omit<WorkerJob, "stride" | "offset"> & { shard?: { index: number; count: number } }, workers: number,
  onProgress: (s: { programs: number; ops: number; divergences: number; known: number; seconds: number }) => void,
  onFinding: (f: Finding) => void,
  stop?: { readonly aborted: boolean; addEventListener?(type: "abort", fn: () => void): void },
): Promise<{ stats: CampaignStats; findings: Finding[]; busySeconds: number }> {
  const workerPath = fileURLToPath(new URL("./worker.ts", import.meta.url));
  const t0 = performance.now();
  const per: Array<{ programs: number; ops: number; divergences: number; known: number }> = [];
  let busySeconds = 0; // the longest worker's own campaign time (process start-up excluded)
  const counts = new Map<string, number>();
  const coverage = new Map<string, number>();
  const findings = new Map<string, Finding>();
  const extra = { aborted: 0, retried: 0, flaky: 0 };
  // Worker w: indices shard.index + shard.count * w, stepping shard.count * workers; with --runs T
  // exactly the k < T of the shard (fuzz/shard.ts slices), each once.
  const { shard: sh = { index: 0, count: 1 }, ...plain } = job;
  const sl = slices(job.runs ?? 0, sh, workers);
  const done: Promise<void>[] = [];
  const children: ReturnType<typeof fork>[] = [];
  for (let w = 0; w < workers; w++) {
    per.push({ programs: 0, ops: 0, divergences: 0, known: 0 });
    // Workers die with the parent: PR_SET_PDEATHSIG (worker.ts) and, while the parent lives on
    // but goes away from them, the IPC channel's disconnect.
    // setpriv --pdeathsig KILL in front of node (fork runs execPath + execArgv + module): armed
    // before the worker has loaded anything.
    const armed = underPdeathsig(process.execPath, workerFlags(workers));
    const child = fork(workerPath, [], { execPath: armed.file, execArgv: armed.args, stdio: ["ignore", "inherit", "inherit", "ipc"], env: childEnv() });
    children.push(child);
    const runs = job.runs === undefined ? undefined : sl[w].runs;
    child.send({ ...plain, runs, stride: sl[w].stride, offset: sl[w].offset } satisfies WorkerJob);
    const sendStop = () => { if (child.connected) child.send({ t: "stop" } satisfies ParentMsg); };
    if (stop?.aborted) sendStop(); else stop?.addEventListener?.("abort", sendStop);
    done.push(new Promise((resolve, reject) => {
      child.on("message", (m: WorkerMsg) => {
        if (m.t === "progress") {
          per[w] = m;
          const sum = per.reduce((a, b) => ({ programs: a.programs + b.programs, ops: a.ops + b.ops, divergences: a.divergences + b.divergences, known: a.known + b.known }));
          onProgress({ ...sum, seconds: (performance.now() - t0) / 1000 });
        } else if (m.t === "finding") {
          if (m.finding.flaky) { onFinding(m.finding); return; }
          const prev = findings.get(m.finding.signature);
          if (!prev) {
            findings.set(m.finding.signature, m.finding); onFinding(m.finding);
            // --first: the others stop generating (the one that found it already has)
            if (job.stopAtFirst && !m.finding.known) for (const c of children) if (c.connected) c.send({ t: "enough" } satisfies ParentMsg);
          }
          else if (m.finding.index < prev.index) findings.set(m.finding.signature, { ...m.finding, count: prev.count });
          // counts come with "done" (a finding is sent when first seen, before later ones are counted)
        } else if (m.t === "done") {
          per[w] = { programs: m.stats.programs, ops: m.stats.ops, divergences: m.stats.divergences, known: m.stats.known };
          extra.aborted += m.stats.aborted; extra.retried += m.stats.retried; extra.flaky += m.stats.flaky;
          busySeconds = Math.max(busySeconds, m.stats.seconds);
          for (const [sig, n] of m.counts) counts.set(sig, (counts.get(sig) ?? 0) + n);
          for (const [k, v] of m.stats.coverage) coverage.set(k, (coverage.get(k) ?? 0) + v);
          child.disconnect();
        } else if (m.t === "error") reject(new Error(`worker ${w}: ${m.message}`));
      });
      child.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`worker ${w} exited with ${code}`))));
    }));
  }
  await Promise.all(done);
  const sum = per.reduce((a, b) => ({ programs: a.programs + b.programs, ops: a.ops + b.ops, divergences: a.divergences + b.divergences, known: a.known + b.known }));
  for (const f of findings.values()) f.count = counts.get(f.signature) ?? f.count;
  return { stats: { ...sum, ...extra, abortReasons: [], seconds: (performance.now() - t0) / 1000, coverage }, findings: [...findings.values()], busySeconds };
}
