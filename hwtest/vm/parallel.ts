/**
 * Several guests of one kernel for one VM backend (`--workers K`): each guest is a GuestRunner
 * (its own QEMU, its own kernel, so its own uids, user->locked_vm and kernel log: the fresh-uid
 * isolation and the warning attribution of one guest hold in each), and the programs of a
 * run() are spread over them in small batches from one queue, so that a slow guest takes fewer.
 * Traces come back in the order of the programs.
 *
 * A TCG guest keeps about one host core busy per vCPU (one by default; two for race campaigns):
 * more vCPUs than host cores (or guests than memory allows) cannot make a backend faster, only
 * slower, so `vmWorkers` picks the number that can help and says why when it is less than asked for.
 */
import { availableParallelism, freemem, totalmem } from "node:os";
import type { Config, Program } from "../../spec/program.ts";
import type { Trace } from "../../spec/trace.ts";

/** What a guest runner does (GuestRunner in backend.ts). */
export interface RunnerLike {
  run(programs: readonly Program[], cfg: Config): Promise<Trace[]>;
  /** Per program, the traces of its repetitions (GuestRunner.runRepeated). */
  runRepeated?(programs: readonly Program[], cfg: Config, repeat: number, jitterUs?: number): Promise<Trace[][]>;
  close(): Promise<void>;
}

export interface WorkerChoice {
  workers: number;
  /** Why fewer than asked for (null when as asked). */
  why: string | null;
}

/**
 * How many guests to boot for `requested` workers: at most the host's cores (one TCG vCPU
 * each) and what memory holds (memMb per guest plus QEMU's own, from the memory free now).
 */
export function vmWorkers(requested: number, opts: { cores?: number; freeMb?: number; memMb?: number; cpus?: number } = {}): WorkerChoice {
  const want = Math.max(1, Math.floor(requested));
  const cores = opts.cores ?? availableParallelism();
  // QEMU runs each vCPU of a TCG guest on a host thread of its own (MTTCG): a guest of `cpus`
  // CPUs keeps that many host cores busy while its par tasks run.
  const cpus = Math.max(1, Math.floor(opts.cpus ?? 1));
  const byCores = Math.max(1, Math.floor(cores / cpus));
  const memMb = (opts.memMb ?? 1024) + 256;
  const freeMb = opts.freeMb ?? Math.max(freemem(), totalmem() / 4) / 2 ** 20;
  const byMem = Math.max(1, Math.floor(freeMb / memMb));
  const workers = Math.max(1, Math.min(want, byCores, byMem));
  if (workers === want) return { workers, why: null };
  const reasons: string[] = [];
  if (byCores < want) {
    reasons.push(cpus === 1
      ? `${cores} host core${cores === 1 ? "" : "s"} (a TCG guest keeps one busy; more guests than cores only slow each other down)`
      : `${cores} host core${cores === 1 ? "" : "s"} for guests of ${cpus} CPUs (each vCPU keeps a host core busy; more vCPUs than cores only slow each other down)`);
  }
  if (byMem < want) reasons.push(`memory for ${byMem} guest${byMem === 1 ? "" : "s"} of ${memMb} MB (${Math.round(freeMb)} MB free)`);
  return { workers, why: `--workers ${want}: using ${workers}: ${reasons.join("; ")}` };
}

/** Programs of one batch a guest takes from the queue at a time. */
export const BATCH = 16;

/** Runs programs on several runners, in batches from one queue; traces in program order. */
export class ParallelRunner {
  private chain: Promise<unknown> = Promise.resolve();

  constructor(private readonly runners: readonly RunnerLike[], private readonly batch = BATCH) {
    if (runners.length === 0) throw new Error("ParallelRunner needs a runner");
  }

  get size(): number {
    return this.runners.length;
  }

  run(programs: readonly Program[], cfg: Config): Promise<Trace[]> {
    return this.queued(programs, (r, ps) => r.run(ps, cfg));
  }

  /** Per program, its repetitions' traces (RunnerLike.runRepeated), spread as run() spreads. */
  runRepeated(programs: readonly Program[], cfg: Config, repeat: number, jitterUs?: number): Promise<Trace[][]> {
    const missing = this.runners.findIndex((r) => r.runRepeated === undefined);
    if (missing >= 0) return Promise.reject(new Error(`guest runner ${missing} cannot repeat programs`));
    return this.queued(programs, (r, ps) => r.runRepeated!(ps, cfg, repeat, jitterUs));
  }

  private queued<T>(programs: readonly Program[], runOn: (r: RunnerLike, ps: readonly Program[]) => Promise<T[]>): Promise<T[]> {
    const p = this.chain.then(() => this.runAll(programs, runOn));
    this.chain = p.catch(() => {});
    return p;
  }

  private async runAll<T>(programs: readonly Program[], runOn: (r: RunnerLike, ps: readonly Program[]) => Promise<T[]>): Promise<T[]> {
    if (this.runners.length === 1) return runOn(this.runners[0], programs);
    const out: T[] = new Array(programs.length);
    // Batches small enough to balance, large enough to keep each guest's request window full.
    const size = Math.max(1, Math.min(this.batch, Math.ceil(programs.length / this.runners.length)));
    let next = 0;
    const worker = async (r: RunnerLike) => {
      while (next < programs.length) {
        const from = next;
        next = Math.min(programs.length, next + size);
        const got = await runOn(r, programs.slice(from, next));
        got.forEach((t, i) => (out[from + i] = t));
      }
    };
    await Promise.all(this.runners.map(worker));
    return out;
  }

  async close(): Promise<void> {
    await this.chain;
    await Promise.all(this.runners.map((r) => r.close()));
  }
}
