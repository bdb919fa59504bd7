/**
 * Runs one Program on the live kernel, in this process, synchronously, and returns its Trace.
 * It never judges anything (the spec does).
 *
 * Per program (see common brief "Shared semantics"), composed of:
 * 1. check the Config against the machine (cpus, paranoid, PMUs, perf_event_mlock_kb);
 * 2. identity.ts: RLIMIT_MEMLOCK, a fresh uid (root), CAP_IPC_LOCK as the config says;
 * 3. lower.ts: the ops, recording each outcome (errno by name) and VmPin after it;
 * 4. audit.ts: the teardown of spec/audit.ts teardownSteps, then the audit: VmPin, the uid's
 *    budget (root only, spec/audit.ts budgetProbe), test PMU counters, kernel warnings;
 * 5. identity.ts: back to root, RLIMIT_MEMLOCK and perf_event_mlock_kb as they were.
 * Nothing stays mapped or open after an error: teardown and the identity restore run in
 * `finally`.
 */
import type { Config, Program } from "../../spec/program.ts";
import { programHandles, handleIndex, isMultiProcess } from "../../spec/program.ts";
import { BUDGET_PROBE_MARGIN, SLOT_BASE, SLOT_BYTES } from "../../spec/audit.ts";
import type { Audit, Step, Trace } from "../../spec/trace.ts";
import type { HostFacts } from "./discover.ts";
import { HarnessError, context, resetContext, vmPin } from "./context.ts";
import { Identity } from "./identity.ts";
import { NO_SUCH_PMU_TYPE, lowerOp, type Handles, type Lowering } from "./lower.ts";
import { runAudit, teardown } from "./audit.ts";

export { SLOT_BASE, SLOT_BYTES, NO_SUCH_PMU_TYPE };
/** Slots end below this address (2^47 user space on x64, with room to spare). */
const SLOT_LIMIT = 0x7f0000000000;
export const MAX_MAP_HANDLE = Math.floor((SLOT_LIMIT - SLOT_BASE) / (2 * SLOT_BYTES)) - 1;
/** Pages above the limit the budget probe may go before it stops (spec/audit.ts). */
export const DEFAULT_BUDGET_MARGIN = BUDGET_PROBE_MARGIN;

export interface RunOptions {
  /** Run as this uid (root only). Default when root: a fresh uid from this process's sequence. */
  uid?: number;
  /** Allow sysctlMlock and a config.mlockKb different from the machine's (global sysctl!). */
  allowSysctl?: boolean;
  /** How touch/setAux/readUserPage reach memory that may fault: a CLONE_VM child (default) or
   *  in-process signal handlers (faster; see runtime/auxspec.h). */
  touchMode?: "child" | "inproc";
  /** Skip the budget probe (faster; audit.budgetPages absent). */
  noBudget?: boolean;
  budgetMargin?: number;
  /** Switch the uid of every thread (glibc setresuid) instead of only the calling one. */
  wholeProcess?: boolean;
}

/** Trace of a program that could not run (nothing was done). */
function abortedTrace(facts: HostFacts, reason: string): Trace {
  return { backend: "host", kernel: facts.release, steps: [], audit: null, aborted: reason };
}

/** Why this config cannot run here, or null. */
export function configProblem(config: Config, facts: HostFacts, opts: RunOptions): string | null {
  const m = facts.config;
  if (config.pageSize !== 4096) return `page size ${config.pageSize}`;
  if (config.cpus !== m.cpus) return `config.cpus ${config.cpus} differs from this machine's ${m.cpus} online CPUs`;
  if (config.paranoid !== m.paranoid) return `config.paranoid ${config.paranoid} differs from this machine's perf_event_paranoid ${m.paranoid}`;
  if (config.pmus.aux !== m.pmus.aux) return `config.pmus.aux ${JSON.stringify(config.pmus.aux)} differs from this machine's AUX PMU ${JSON.stringify(m.pmus.aux)}`;
  if (config.mlockKb !== m.mlockKb && !opts.allowSysctl) {
    return `config.mlockKb ${config.mlockKb} differs from this machine's perf_event_mlock_kb ${m.mlockKb} (changing it needs allowSysctl)`;
  }
  if (config.capIpcLock && !facts.root) return "config.capIpcLock needs root (CAP_IPC_LOCK in the permitted set)";
  return null;
}

/** Why the TypeScript executor cannot run a program with several processes or users. */
export const MULTI_PROCESS_REASON = "multi-process program (fork, exit, setuid, sendFd or an op in another process): the TypeScript executor runs in one process and cannot fork safely (koffi, Node's threads); the host backend runs these on the C agent (runtime/agent.c)";

function programProblem(program: Program, facts: HostFacts, opts: RunOptions): string | null {
  if (isMultiProcess(program)) return MULTI_PROCESS_REASON;
  for (const op of program) {
    if (op.op === "sysctlMlock" && !opts.allowSysctl) return "sysctlMlock changes a global sysctl: not allowed on this backend (allowSysctl)";
    if (op.op === "auxFault" && !facts.testPmuDir) return "auxFault needs the auxspec_pmu test module";
    if ((op.op === "mmap") && handleIndex(op.map) > MAX_MAP_HANDLE) return `map handle ${op.map} is beyond the slot area (max m${MAX_MAP_HANDLE})`;
  }
  return null;
}

export function runProgramHere(program: Program, config: Config, facts: HostFacts, opts: RunOptions = {}): Trace {
  const problem = configProblem(config, facts, opts) ?? programProblem(program, facts, opts);
  if (problem) return abortedTrace(facts, problem);
  const c = context();
  const id = new Identity(c, config, facts, opts);
  const h: Handles = { evFd: new Map(), base: new Map(), strays: [], mapPages: programHandles(program).mapPages };
  const s: Lowering = {
    c, l: c.l, id, h, facts, config,
    access: opts.touchMode === "inproc" ? c.l.accessInproc : c.l.access,
    auxType: facts.auxPmu?.type ?? NO_SUCH_PMU_TYPE,
  };
  const steps: Step[] = [];
  let audit: Audit | null = null;
  let aborted: string | undefined;
  try {
    id.enter();
    const startPin = vmPin(c);
    if (startPin !== 0 && id.root) throw new HarnessError(`VmPin is ${startPin} kB before the program: this process is not clean`);
    for (const op of program) {
      const outcome = lowerOp(s, op);
      steps.push({ outcome, vmPinKb: vmPin(c) });
    }
  } catch (e) {
    if (!(e instanceof HarnessError)) throw e;
    aborted = e.message;
  } finally {
    try {
      teardown(c, id, h, program, config, facts);
      if (!aborted) audit = runAudit(c, id, config, facts, opts);
    } catch (e) {
      if (!(e instanceof HarnessError)) throw e;
      aborted ??= e.message;
    } finally {
      id.leave();
    }
  }
  return { backend: "host", kernel: facts.release, steps, audit, ...(aborted ? { aborted } : {}) };
}

/** For tests: closes the process-wide fds (the next program reopens them). */
export function resetExecutor(): void {
  resetContext();
}

/** True when this process can run another program: VmPin 0 and (when root) back to uid 0. */
export function processIsClean(): boolean {
  const c = context();
  const v = c.l.vmpinKb(c.statusFd);
  if (v !== 0) return false;
  return c.l.getuid() === c.initUid && c.l.geteuid() === c.initEuid;
}
