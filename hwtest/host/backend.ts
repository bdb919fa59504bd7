/**
 * The `host` backend: programs run on this machine's kernel, each in a worker process under
 * a fresh uid (pool.ts, agent.ts, executor.ts).
 */
import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { isMultiProcess, type Config, type Op, type Program } from "../../spec/program.ts";
import type { Trace } from "../../spec/trace.ts";
import { BackendUnavailable, type Backend, type BackendInfo } from "../../backend/contract.ts";
import { discoverHost, type HostFacts } from "./discover.ts";
import { configProblem } from "./executor.ts";
import { HostPool } from "./pool.ts";
import { cagentPath } from "./native/build.ts";

/** The ops only the C agent runs (several processes and users, spec/notes/processes.md; tasks and
 *  par blocks, spec/notes/races.md). */
export const MULTI_PROCESS_OPS = ["fork", "exit", "setuid", "sendFd", "thread", "par"] as const;

/** Whether a program has a par block (the programs a backend `repeat` repeats). */
export function hasPar(program: readonly Op[]): boolean {
  return program.some((op) => op.op === "par");
}

/**
 * A backend that can run each program several times (issue 14: a par block's outcome depends on
 * the interleaving, so a race campaign judges every repetition against the linearizations).
 * `runRepeated` answers, per program, the traces of its repetitions in order: `repeat` of them
 * for a program with a par block (fewer when one aborted or left the worker dirty: that one is
 * the last), one for any other program. The contract's `run` answers the first repetition only.
 * Proposed for backend/contract.ts as an optional method (NOTES-for-lead.md).
 */
export interface RepeatingBackend extends Backend {
  runRepeated(programs: readonly Program[], config?: Config, repeat?: number): Promise<Trace[][]>;
}

export function isRepeating(b: Backend): b is RepeatingBackend {
  return typeof (b as Partial<RepeatingBackend>).runRepeated === "function";
}

/** The C agent's path, or why it cannot be had (no gcc, a build error). */
export function cAgent(log?: (m: string) => void): { path: string } | { error: string } {
  try {
    return { path: cagentPath(log) };
  } catch (e) {
    return { error: (e as Error).message.split("\n")[0] };
  }
}

export interface HostBackendOptions {
  /** Worker processes (programs in flight). Default 2. */
  workers?: number;
  /** Per-program time-out in ms (default 5 s + 100 ms per op). */
  timeoutMs?: number;
  /** Allow sysctlMlock and configs with another perf_event_mlock_kb (global sysctl: VM guests). */
  allowSysctl?: boolean;
  /** How touch/setAux/readUserPage reach memory that may fault: in-process signal handlers
   *  (default here: 10-30x cheaper, and a worker that dies is only an aborted trace) or a
   *  CLONE_VM child (see native/auxprobe.c). */
  touchMode?: "child" | "inproc";
  /** Repetitions of every program with a par block (issue 14), each from scratch under its own
   *  fresh uid, in one C agent request; `runRepeated` returns them all, `run` the first. Default 1. */
  repeat?: number;
  /** Upper bound of the random spin each par task does after the release, us (default 50). */
  jitterUs?: number;
  log?: (msg: string) => void;
}

/** RLIMIT_MEMLOCK hard limit in pages from /proc/self/limits ("unlimited" or a number). */
function hardMemlock(): number | "unlimited" | null {
  try {
    const m = /^Max locked memory\s+\S+\s+(\S+)/m.exec(readFileSync("/proc/self/limits", "utf8"));
    if (!m) return null;
    return m[1] === "unlimited" ? "unlimited" : Math.floor(Number(m[1]) / 4096);
  } catch {
    return null;
  }
}

function capSysResource(): boolean {
  try {
    const m = /^CapEff:\s*([0-9a-f]+)/m.exec(readFileSync("/proc/self/status", "utf8"));
    return m ? ((BigInt(`0x${m[1]}`) >> 24n) & 1n) === 1n : false;
  } catch {
    return false;
  }
}

export function hostInfo(facts: HostFacts, opts: HostBackendOptions = {}, cagentError: string | null = null): BackendInfo {
  // mapRangeFault: a model-only switch (map_range() is core kernel code; no test-PMU hook)
  const unsupported = new Set<string>(["mapRangeFault"]);
  if (cagentError !== null) for (const op of MULTI_PROCESS_OPS) unsupported.add(op);
  if (!opts.allowSysctl) unsupported.add("sysctlMlock");
  if (!facts.testPmuDir) unsupported.add("auxFault");
  const notes: string[] = [
    `kernel ${facts.release}: profile ${facts.profile} (${facts.profileWhy})`,
    facts.auxPmu
      ? `AUX PMU: ${facts.auxPmu.name} (type ${facts.auxPmu.type})`
      : `no AUX PMU: pmu "aux" opens a PMU type no PMU has (the kernel answers ENOENT); AUX mmaps of software events exercise the EOPNOTSUPP/EPERM paths`,
  ];
  if (facts.root) {
    notes.push("each program runs under a fresh uid (setresuid(X, X, 0)) without CAP_IPC_LOCK unless config.capIpcLock; the audit probes that uid's locked-memory budget");
  } else {
    notes.push(`not root (uid ${process.getuid?.() ?? "?"}): every program runs as this one user, whose user->locked_vm outlives processes (6.18 leaks it on re-maps); one agent at a time measures the user's locked-memory budget before each program (the spec starts from it) and after teardown (the audit)`);
    notes.push("not root: cannot check programs that need a fresh uid's full budget once earlier leaks used it up, configs with CAP_IPC_LOCK, or another perf_event_mlock_kb; this user's other perf users (a running perf tool) would change outcomes");
  }
  const hard = hardMemlock();
  if (hard !== "unlimited" && hard !== null && !capSysResource()) {
    notes.push(`RLIMIT_MEMLOCK hard limit is ${hard} pages and this process cannot raise it (no CAP_SYS_RESOURCE): rlimit ops above ${hard} pages, or "unlimited", fail with EINVAL here`);
  }
  notes.push((opts.touchMode ?? "inproc") === "inproc"
    ? "touch/setAux/readUserPage access memory in the worker itself under temporary SIGSEGV/SIGBUS handlers"
    : "touch/setAux/readUserPage access memory in a CLONE_VM child of the worker (a fork child would not have the VM_DONTCOPY buffer mappings); that child is a task clone, so it inherits attr.inherit events, and perf's context-switch optimisation may leave the original in it: after it exits, 6.12+ may answer ENODEV to a group with such an event (prefer the in-process default)");
  notes.push(cagentError === null
    ? facts.root
      ? "multi-process programs (fork, exit, setuid, sendFd, thread, par, proc) run on the C agent (runtime/agent.c): real fork()s and pthreads, each user handle a fresh uid (setuid through saved uid 0), fds passed with SCM_RIGHTS, a par block's tasks released together from a futex barrier; the audit probes every user a setuid named"
      : "multi-process programs (fork, exit, setuid, sendFd, thread, par, proc) run on the C agent (runtime/agent.c) as this one user: setuid to another user answers EPERM (config.capSetuid false); budgets of other users are absent"
    : `fork, exit, setuid, sendFd, thread and par unsupported: the TypeScript agent cannot fork (koffi, Node's threads) and the C agent cannot be built here (${cagentError})`);
  if ((opts.repeat ?? 1) > 1) notes.push(`programs with a par block run ${opts.repeat} times each (fresh uid, teardown and audit every time; par tasks spin 0..${opts.jitterUs ?? 50} us after the release): runRepeated returns every repetition, run the first`);
  if (opts.allowSysctl) notes.push("sysctlMlock allowed: it changes /proc/sys/kernel/perf_event_mlock_kb for the whole machine while a program runs (restored at teardown)");
  return {
    name: "host",
    kernel: facts.release,
    profile: facts.profile,
    config: facts.config,
    unsupported,
    notes,
  };
}

/** Agents the host backend starts unless told otherwise. */
export const DEFAULT_HOST_WORKERS = 2;

export async function hostBackend(opts: HostBackendOptions = {}): Promise<RepeatingBackend> {
  const facts = discoverHost();
  if (!facts.perfOk) throw new BackendUnavailable(facts.perfError ?? "perf_event_open is not usable here");
  const cagent = cAgent(opts.log);
  const info = hostInfo(facts, opts, "error" in cagent ? cagent.error : null);
  const agentArgs: string[] = [];
  if (opts.allowSysctl) agentArgs.push("--allow-sysctl");
  if ((opts.touchMode ?? "inproc") === "inproc") agentArgs.push("--touch=inproc");
  if (!facts.root) agentArgs.push("--measure-budget");
  // Machine-global state forces one program at a time: perf_event_mlock_kb (sysctl) and the
  // test PMU's fail_setup_aux switch and setups/frees/live counters, which every program's
  // audit reads.
  // Not root: one user's locked_vm for every program, measured around each: one at a time.
  const serial = opts.allowSysctl || facts.testPmuDir !== null || !facts.root;
  const maxWorkers = 2 * availableParallelism();
  let workers = serial ? 1 : Math.max(1, opts.workers ?? DEFAULT_HOST_WORKERS);
  if (serial && (opts.workers ?? DEFAULT_HOST_WORKERS) > 1) {
    info.notes.push(`one worker only: ${opts.allowSysctl ? "sysctlMlock changes a machine-wide setting" : facts.root ? "the test PMU's fault switch and counters are machine-wide" : "not root: the programs share one user's locked_vm"}`);
  } else if (workers > maxWorkers) {
    info.notes.push(`--workers ${workers} capped at ${maxWorkers} (2 per CPU): more agents than that only contend (measured: 64 agents on 2 CPUs ran 50x slower)`);
    workers = maxWorkers;
  }
  const pool = new HostPool({
    workers,
    timeoutMs: opts.timeoutMs,
    agentArgs,
    kernel: facts.release,
    log: opts.log,
  });
  await pool.warm();
  // Multi-process programs: the C agent (the TypeScript agent cannot fork), same arguments, same
  // uid discipline; started at the first such program.
  const cPool = "path" in cagent
    ? new HostPool({ workers, timeoutMs: opts.timeoutMs, kernel: facts.release, log: opts.log, command: { file: cagent.path, args: agentArgs } })
    : null;
  const cNote = info.notes.find((n) => n.startsWith("fork, exit")) ?? "the C agent cannot be built";
  const runAll = (p: Program, cfg: Config, repeat: number): Promise<Trace[]> => {
    if (!isMultiProcess(p)) return pool.run(p, cfg).then((t) => [t]);
    if (!cPool) return Promise.resolve([{ backend: "host", kernel: facts.release, steps: [], audit: null, aborted: `multi-process program: ${cNote}` }]);
    if (repeat > 1 && hasPar(p)) return cPool.runRepeated(p, cfg, repeat, opts.jitterUs);
    return opts.jitterUs !== undefined && hasPar(p) ? cPool.runRepeated(p, cfg, 1, opts.jitterUs) : cPool.run(p, cfg).then((t) => [t]);
  };
  const defaultRepeat = Math.max(1, Math.floor(opts.repeat ?? 1));
  // Serial hosts (machine-global state, or one shared user): the two pools never overlap.
  let tail: Promise<unknown> = Promise.resolve();
  const runSerial = (ps: readonly Program[], cfg: Config, repeat: number): Promise<Trace[][]> => {
    const out = tail.then(async () => {
      const traces: Trace[][] = [];
      for (let i = 0; i < ps.length;) {
        const multi = isMultiProcess(ps[i]);
        let j = i;
        while (j < ps.length && isMultiProcess(ps[j]) === multi) j++;
        traces.push(...await Promise.all(ps.slice(i, j).map((p) => runAll(p, cfg, repeat))));
        i = j;
      }
      return traces;
    });
    tail = out.catch(() => {});
    return out;
  };
  const runMany = async (programs: readonly Program[], config: Config | undefined, repeat: number): Promise<Trace[][]> => {
    const cfg = config ?? info.config;
    const problem = configProblem(cfg, facts, { allowSysctl: opts.allowSysctl });
    if (problem) {
      return programs.map(() => [{ backend: "host", kernel: facts.release, steps: [], audit: null, aborted: problem }]);
    }
    return serial ? runSerial(programs, cfg, repeat) : Promise.all(programs.map((p) => runAll(p, cfg, repeat)));
  };
  let closed = false;
  return {
    info,
    async run(programs: readonly Program[], config?: Config): Promise<Trace[]> {
      // one repetition: `run` answers the first anyway (runRepeated for all of them)
      return (await runMany(programs, config, 1)).map((ts) => ts[0]);
    },
    runRepeated(programs: readonly Program[], config?: Config, repeat?: number): Promise<Trace[][]> {
      return runMany(programs, config, Math.max(1, Math.floor(repeat ?? defaultRepeat)));
    },
    async close() {
      if (closed) return;
      closed = true;
      await Promise.all([pool.close(), cPool?.close()]);
    },
  };
}
