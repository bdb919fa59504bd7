/**
 * The `host` backend: programs run on this machine's kernel, each in a worker process under
 * a fresh uid (pool.ts, agent.ts, executor.ts).
 */
import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import type { Config, Program } from "../../spec/program.ts";
import type { Trace } from "../../spec/trace.ts";
import { BackendUnavailable, type Backend, type BackendInfo } from "../../backend/contract.ts";
import { discoverHost, type HostFacts } from "./discover.ts";
import { configProblem } from "./executor.ts";
import { HostPool } from "./pool.ts";

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

export function hostInfo(facts: HostFacts, opts: HostBackendOptions = {}): BackendInfo {
  const unsupported = new Set<string>();
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
    : "touch/setAux/readUserPage access memory in a CLONE_VM child of the worker (a fork child would not have the VM_DONTCOPY buffer mappings)");
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

export async function hostBackend(opts: HostBackendOptions = {}): Promise<Backend> {
  const facts = discoverHost();
  if (!facts.perfOk) throw new BackendUnavailable(facts.perfError ?? "perf_event_open is not usable here");
  const info = hostInfo(facts, opts);
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
  let closed = false;
  return {
    info,
    async run(programs: readonly Program[], config?: Config): Promise<Trace[]> {
      const cfg = config ?? info.config;
      const problem = configProblem(cfg, facts, { allowSysctl: opts.allowSysctl });
      if (problem) {
        return programs.map(() => ({ backend: "host", kernel: facts.release, steps: [], audit: null, aborted: problem }));
      }
      return Promise.all(programs.map((p) => pool.run(p, cfg)));
    },
    async close() {
      if (closed) return;
      closed = true;
      await pool.close();
    },
  };
}
