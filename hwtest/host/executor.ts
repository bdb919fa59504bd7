/**
 * Runs one Program on the live kernel, in this process, synchronously, and returns its Trace.
 * It never judges anything (the spec does).
 *
 * Per program (see common brief "Shared semantics"):
 * 1. check the Config against the machine (cpus, paranoid, PMUs, perf_event_mlock_kb);
 * 2. set RLIMIT_MEMLOCK (as root first, so the hard limit can be raised where the process has
 *    CAP_SYS_RESOURCE), then switch to a fresh uid (root only: setresgid/setresuid(X, X, 0);
 *    user->locked_vm is per uid and outlives processes, so no two programs may share one) and
 *    set CAP_IPC_LOCK in the effective set as the config says (verified with capget). The
 *    saved uid 0 lets the process go back to root afterwards. By default only the calling
 *    thread switches (raw syscalls, ~1 us): every syscall of the program, the fs writes and
 *    the access child come from this thread, and perf charges current_user() of the caller
 *    (kernel/events/core.c perf_mmap -> perf_mmap_calc_limits). `wholeProcess` uses glibc's
 *    wrappers instead, which change every thread (~0.3 ms per call with Node's threads);
 * 3. run the ops, recording each outcome (errno by name) and VmPin after it;
 * 4. teardown: perf_event_mlock_kb back to config.mlockKb and auxFault off (where used), both
 *    slots of every map handle unmapped in handle order, every live fd closed in handle order;
 * 5. audit: VmPin, the uid's budget (root only, probe.ts), test PMU counters, kernel warnings;
 * 6. back to root, RLIMIT_MEMLOCK and perf_event_mlock_kb as they were.
 * Nothing stays mapped or open after an error: teardown and the identity restore run in
 * `finally`.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Config, Op, Program } from "../../spec/program.ts";
import { SLOT_PAGES, programHandles, handleIndex } from "../../spec/program.ts";
import type { Audit, Step, Trace } from "../../spec/trace.ts";
import type { Outcome } from "../../spec/program.ts";
import type { HostFacts } from "./discover.ts";
import { errnoName } from "./errno.ts";
import {
  ACCESS, CAP_IPC_LOCK, MAP_ANONYMOUS, MAP_FIXED, MAP_FIXED_NOREPLACE, MAP_PRIVATE, MAP_SHARED,
  MREMAP_FIXED, MREMAP_MAYMOVE, PAGE, PERF_ATTR_SIZE_VER8, PERF_COUNT_SW_DUMMY, PERF_EVENT_IOC_SET_OUTPUT,
  PERF_FLAG_FD_CLOEXEC, PERF_FLAG_FD_OUTPUT, PERF_TYPE_SOFTWARE, PROT, RLIMIT_MEMLOCK, RLIM_INFINITY,
  SIGBUS, SIGSEGV, capEffective, capGet, capSet, hasCap, libc, type Libc,
} from "./libc.ts";
import { probeBudget, writeAttr } from "./perf.ts";

/** Slot A of map handle i is SLOT_BASE + i * 2 * SLOT_BYTES, slot B follows it. Far above
 *  where V8 places its random-hint reservations (below 2^46 on x64) and below 2^47. */
export const SLOT_BASE = 0x600000000000;
export const SLOT_BYTES = SLOT_PAGES * PAGE;
const SLOT_LIMIT = 0x7f0000000000;
export const MAX_MAP_HANDLE = Math.floor((SLOT_LIMIT - SLOT_BASE) / (2 * SLOT_BYTES)) - 1;
/** A type no PMU has: what pmu "aux" opens on a machine without an AUX PMU (the kernel says ENOENT). */
export const NO_SUCH_PMU_TYPE = 0x7ffffff0;
/** Pages above the limit the budget probe may go before it stops. */
export const DEFAULT_BUDGET_MARGIN = 16;
const UNCHANGED = 0xffffffff;
const PROC_MLOCK = "/proc/sys/kernel/perf_event_mlock_kb";

export interface RunOptions {
  /** Run as this uid (root only). Default when root: a fresh uid from this process's sequence. */
  uid?: number;
  /** Allow sysctlMlock and a config.mlockKb different from the machine's (global sysctl!). */
  allowSysctl?: boolean;
  /** How touch/setAux/readUserPage reach memory that may fault: a CLONE_VM child (default) or
   *  in-process signal handlers (faster; see native/auxprobe.c). */
  touchMode?: "child" | "inproc";
  /** Skip the budget probe (faster; audit.budgetPages absent). */
  noBudget?: boolean;
  budgetMargin?: number;
  /** Switch the uid of every thread (glibc setresuid) instead of only the calling one. */
  wholeProcess?: boolean;
}

/** Process-wide state kept across programs. */
interface Ctx {
  l: Libc;
  statusFd: number;
  kmsgFd: number | null;
  pid: number;
  attr: Buffer;
  page: BigUint64Array;
  rlim: BigUint64Array;
  uidNext: number;
  /** RLIMIT_MEMLOCK hard limit this process can set (RLIM_INFINITY once raised), or null before the first try. */
  hardLimit: bigint | null;
  kmsgBuf: Buffer;
  initUid: number;
  initEuid: number;
}
let ctx: Ctx | null = null;

function context(): Ctx {
  if (ctx) return ctx;
  const l = libc();
  // thread-self: the same mm-wide VmPin, a little cheaper to generate than the tgid view.
  const statusFd = l.open("/proc/thread-self/status", 0 /* O_RDONLY */ | 0o2000000 /* O_CLOEXEC */);
  if (statusFd < 0) throw new Error(`cannot open /proc/thread-self/status: ${errnoName(l.errno())}`);
  let kmsgFd: number | null = null;
  if (l.geteuid() === 0) {
    const fd = l.open("/dev/kmsg", 0o4000 /* O_NONBLOCK */ | 0o2000000);
    if (fd >= 0) {
      kmsgSeekEnd(l, fd);
      kmsgFd = fd;
    }
  }
  ctx = {
    l, statusFd, kmsgFd, pid: l.getpid(), initUid: l.getuid(), initEuid: l.geteuid(),
    attr: Buffer.alloc(PERF_ATTR_SIZE_VER8),
    page: new BigUint64Array(5),
    rlim: new BigUint64Array(2),
    hardLimit: null,
    kmsgBuf: Buffer.alloc(8192),
    // A random base per process: uids above 1e6 that no real account uses; two processes collide
    // only if their bases fall within their program counts of each other.
    uidNext: 1_000_000 + Math.floor(Math.random() * 2_000_000_000),
  };
  return ctx;
}

/** Skips the kernel log backlog: reads every record present now (non-blocking fd). */
function kmsgSeekEnd(l: Libc, fd: number): void {
  const buf = Buffer.alloc(8192);
  for (let i = 0; i < 1_000_000; i++) {
    if (l.read(fd, buf, buf.length) < 0 && l.errno() !== 32 /* EPIPE: overwritten, go on */) return;
  }
}

/** Kernel log records since the last call that look like WARN/BUG/refcount reports of this
 *  process (records naming another PID are skipped: other workers share the log). Read with
 *  koffi, not fs.readSync: the EAGAIN at the end would cost a thrown Error each program. */
function kmsgWarnings(c: Ctx): string[] {
  if (c.kmsgFd === null) return [];
  const out: string[] = [];
  const buf = c.kmsgBuf;
  for (let i = 0; i < 10000; i++) {
    const n = c.l.read(c.kmsgFd, buf, buf.length);
    if (n < 0) {
      if (c.l.errno() === 32) continue; // EPIPE: records were overwritten; the next read goes on
      break; // EAGAIN: nothing more
    }
    if (n === 0) break;
    const rec = buf.subarray(0, n).toString("utf8");
    const semi = rec.indexOf(";");
    const msg = (semi >= 0 ? rec.slice(semi + 1) : rec).split("\n")[0];
    if (!/(WARNING:|BUG:|Oops|refcount_t:|general protection|UBSAN:|KASAN:|list_del corruption|kernel BUG)/.test(msg)) continue;
    const pid = /PID: (\d+)/.exec(msg);
    if (pid && Number(pid[1]) !== c.pid) continue;
    out.push(msg.trim());
  }
  return out;
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

function programProblem(program: Program, facts: HostFacts, opts: RunOptions): string | null {
  for (const op of program) {
    if (op.op === "sysctlMlock" && !opts.allowSysctl) return "sysctlMlock changes a global sysctl: not allowed on this backend (allowSysctl)";
    if (op.op === "auxFault" && !facts.testPmuDir) return "auxFault needs the auxspec_pmu test module";
    if ((op.op === "mmap") && handleIndex(op.map) > MAX_MAP_HANDLE) return `map handle ${op.map} is beyond the slot area (max m${MAX_MAP_HANDLE})`;
  }
  return null;
}

const ok: Outcome = { ok: true };
const errnoCache = new Map<number, Outcome>();
function errOutcome(e: number): Outcome {
  let o = errnoCache.get(e);
  if (!o) { o = { errno: errnoName(e) }; errnoCache.set(e, o); }
  return o;
}

class HarnessError extends Error {}

function toNumber(v: bigint): number {
  return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v);
}

export function runProgramHere(program: Program, config: Config, facts: HostFacts, opts: RunOptions = {}): Trace {
  const problem = configProblem(config, facts, opts) ?? programProblem(program, facts, opts);
  if (problem) return abortedTrace(facts, problem);
  const c = context();
  const l = c.l;
  const root = facts.root && c.initEuid === 0;
  const uid = root ? (opts.uid ?? c.uidNext++) : null;
  const access = opts.touchMode === "inproc" ? l.accessInproc : l.access;
  const setresuid = opts.wholeProcess ? l.setresuid : l.setresuidThread;
  const setresgid = opts.wholeProcess ? l.setresgid : l.setresgidThread;
  const steps: Step[] = [];
  let audit: Audit | null = null;
  let aborted: string | undefined;

  // Handles.
  const { evs, maps, mapPages } = programHandles(program);
  const evFd = new Map<string, number>();
  const base = new Map<string, number>();
  const strays: Array<[number, number]> = [];
  const slotA = (m: string) => SLOT_BASE + handleIndex(m) * 2 * SLOT_BYTES;
  const slotB = (m: string) => slotA(m) + SLOT_BYTES;
  const baseOf = (m: string) => base.get(m) ?? slotA(m);
  const fdOf = (e: string) => evFd.get(e) ?? -1;
  const auxType = facts.auxPmu?.type ?? NO_SUCH_PMU_TYPE;

  // Machine state to restore.
  const origRlim = new BigUint64Array(2);
  l.getrlimit(RLIMIT_MEMLOCK, origRlim);
  if (c.hardLimit === null) {
    // Once per process: raise the hard limit to unlimited where we may (CAP_SYS_RESOURCE), so that
    // rlimit ops can ask for any soft limit ("hard limit stays unlimited", spec/program.ts).
    c.hardLimit = origRlim[1];
    if (root && origRlim[1] !== RLIM_INFINITY) {
      c.rlim[0] = origRlim[0]; c.rlim[1] = RLIM_INFINITY;
      if (l.setrlimit(RLIMIT_MEMLOCK, c.rlim) === 0) { c.hardLimit = RLIM_INFINITY; origRlim[1] = RLIM_INFINITY; }
    }
  }
  const hardLimit = c.hardLimit;
  const origMlockKb = facts.config.mlockKb;
  let mlockTouched = false;
  let auxFaultTouched = false;
  let switched = false;

  const asRoot = <T>(fn: () => T): T => {
    // Temporarily euid 0 (the saved uid) to write root-owned sysctl/module files, then back.
    if (!switched) return fn();
    if (setresuid(UNCHANGED, 0, UNCHANGED) !== 0) throw new HarnessError(`setresuid(-1, 0, -1): ${errnoName(l.errno())}`);
    try {
      return fn();
    } finally {
      if (setresuid(UNCHANGED, uid!, UNCHANGED) !== 0) throw new HarnessError(`setresuid back to ${uid}: ${errnoName(l.errno())}`);
      setIpcLock(config.capIpcLock);
    }
  };
  const writeFile = (path: string, text: string): Outcome => {
    try {
      asRoot(() => writeFileSync(path, text));
      return ok;
    } catch (e) {
      if (e instanceof HarnessError) throw e;
      const code = (e as NodeJS.ErrnoException).code;
      return { errno: code && /^E[A-Z0-9]+$/.test(code) ? code : "EIO" };
    }
  };
  const setIpcLock = (want: boolean) => {
    if (capEffective(CAP_IPC_LOCK) === want) return;
    const caps = capGet();
    const bit = 1n << BigInt(CAP_IPC_LOCK);
    const e = capSet({ ...caps, effective: want ? caps.effective | bit : caps.effective & ~bit });
    if (e !== 0) throw new HarnessError(`capset CAP_IPC_LOCK=${want}: ${errnoName(e)}`);
    if (hasCap(capGet().effective, CAP_IPC_LOCK) !== want) throw new HarnessError(`CAP_IPC_LOCK is still ${!want} after capset`);
  };
  const setMemlock = (pages: number | "unlimited"): number => {
    c.rlim[0] = pages === "unlimited" ? RLIM_INFINITY : BigInt(pages) * BigInt(PAGE);
    c.rlim[1] = hardLimit;
    return l.setrlimit(RLIMIT_MEMLOCK, c.rlim) === 0 ? 0 : l.errno();
  };
  const vmPin = (): number => {
    const v: number | bigint = l.vmpinKb(c.statusFd);
    if (typeof v !== "number" || v < -(2 ** 52)) throw new HarnessError("cannot read VmPin from /proc/self/status");
    return v;
  };
  const accessOutcome = (kind: number, addr: number, a: bigint, b: bigint, out: BigUint64Array | null): Outcome => {
    const r = access(kind, addr, a, b, out);
    if (r === 0) return ok;
    if (r === SIGBUS) return { signal: "SIGBUS" };
    if (r === SIGSEGV) return { signal: "SIGSEGV" };
    throw new HarnessError(`page access at 0x${addr.toString(16)} failed in the harness (auxprobe code ${r})`);
  };

  const runOp = (op: Op): Outcome => {
    switch (op.op) {
      case "open": {
        const out = op.outputTo !== undefined ? fdOf(op.outputTo) : -1;
        const sw = op.pmu === "sw";
        writeAttr(c.attr, {
          type: sw ? PERF_TYPE_SOFTWARE : auxType,
          config: sw ? BigInt(PERF_COUNT_SW_DUMMY) : 0n,
          inherit: op.inherit === true,
          excludeKernel: true,
        });
        const flags = PERF_FLAG_FD_CLOEXEC | (op.outputTo !== undefined ? PERF_FLAG_FD_OUTPUT : 0);
        const fd = l.perfEventOpen(c.attr, 0, op.cpu ?? -1, out, flags);
        if (fd < 0) { const e = l.errno(); evFd.set(op.ev, -1); return errOutcome(e); }
        evFd.set(op.ev, fd);
        return ok;
      }
      case "close": {
        const fd = fdOf(op.ev);
        evFd.set(op.ev, -1); // never reuse the number for this handle, whatever close says
        return l.close(fd) === 0 ? ok : errOutcome(l.errno());
      }
      case "mmap": {
        const addr = slotA(op.map);
        base.set(op.map, addr);
        const flags = (op.shared === false ? MAP_PRIVATE : MAP_SHARED) | MAP_FIXED_NOREPLACE; // shared defaults to true
        const r = l.mmap(addr, op.pages * PAGE, PROT[op.prot], flags, fdOf(op.ev), op.pgoff * PAGE);
        if (r === -1) return errOutcome(l.errno());
        if (r !== addr) {
          strays.push([r, op.pages * PAGE]);
          throw new HarnessError(`mmap at 0x${addr.toString(16)} landed at 0x${r.toString(16)} (MAP_FIXED_NOREPLACE ignored?)`);
        }
        return ok;
      }
      case "munmap": {
        const pages = op.pages ?? mapPages.get(op.map) ?? 0;
        return l.munmap(baseOf(op.map) + (op.offset ?? 0) * PAGE, pages * PAGE) === 0 ? ok : errOutcome(l.errno());
      }
      case "mremap": {
        const b = baseOf(op.map);
        const from = b + (op.offset ?? 0) * PAGE;
        const other = b === slotA(op.map) ? slotB(op.map) : slotA(op.map);
        let flags = op.mayMove ? MREMAP_MAYMOVE : 0;
        let to = 0;
        if (op.toFresh) { flags |= MREMAP_MAYMOVE | MREMAP_FIXED; to = other + (op.offset ?? 0) * PAGE; }
        const r = l.mremap(from, op.oldPages * PAGE, op.newPages * PAGE, flags, to);
        if (r === -1) return errOutcome(l.errno());
        if (op.toFresh) base.set(op.map, other);
        else if (r !== from) strays.push([r, op.newPages * PAGE]); // moved outside the slots
        return ok;
      }
      case "mprotect": {
        const pages = op.pages ?? mapPages.get(op.map) ?? 0;
        return l.mprotect(baseOf(op.map) + (op.offset ?? 0) * PAGE, pages * PAGE, PROT[op.prot]) === 0 ? ok : errOutcome(l.errno());
      }
      case "mapFixedAnon": {
        const addr = baseOf(op.map) + op.offset * PAGE;
        const r = l.mmap(addr, op.pages * PAGE, PROT.rw, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
        return r === -1 ? errOutcome(l.errno()) : ok;
      }
      case "setAux":
        return accessOutcome(ACCESS.setAux, baseOf(op.map), BigInt(op.offsetPages) * 4096n, BigInt(op.sizePages) * 4096n, null);
      case "setOutput": {
        // target null: (unsigned long)-1, "no output". A dead target handle is the C int -1
        // widened through the variadic ioctl (0xffffffff): EBADF, like any syscall on fd -1.
        let arg: bigint;
        if (op.target === null) arg = 0xffffffffffffffffn;
        else { const t = fdOf(op.target); arg = t < 0 ? 0xffffffffn : BigInt(t); }
        return l.ioctl(fdOf(op.ev), PERF_EVENT_IOC_SET_OUTPUT, arg) === 0 ? ok : errOutcome(l.errno());
      }
      case "rlimit": {
        const e = setMemlock(op.memlockPages);
        return e === 0 ? ok : errOutcome(e);
      }
      case "sysctlMlock": {
        const o = writeFile(PROC_MLOCK, String(op.kb));
        mlockTouched = true;
        return o;
      }
      case "auxFault": {
        auxFaultTouched = true;
        return writeFile(join(facts.testPmuDir!, "fail_setup_aux"), op.fail ? "Y" : "N");
      }
      case "touch":
        return accessOutcome(op.write ? ACCESS.write : ACCESS.read, baseOf(op.map) + op.page * PAGE, 0n, 0n, null);
      case "readUserPage": {
        const o = accessOutcome(ACCESS.readPage, baseOf(op.map), 0n, 0n, c.page);
        if (!("ok" in o)) return o;
        const p = c.page;
        return { ok: true, page: { dataOffset: toNumber(p[0]), dataSize: toNumber(p[1]), auxHead: toNumber(p[2]), auxOffset: toNumber(p[3]), auxSize: toNumber(p[4]) } };
      }
      default: {
        const never: never = op;
        throw new HarnessError(`unknown op ${JSON.stringify(never)}`);
      }
    }
  };

  const teardown = () => {
    if (mlockTouched) writeFile(PROC_MLOCK, String(config.mlockKb));
    if (auxFaultTouched && facts.testPmuDir) writeFile(join(facts.testPmuDir, "fail_setup_aux"), "N");
    for (const m of maps) {
      l.munmap(slotA(m), SLOT_BYTES);
      l.munmap(slotB(m), SLOT_BYTES);
    }
    for (const [a, len] of strays) l.munmap(a, len);
    for (const e of evs) {
      const fd = evFd.get(e);
      if (fd !== undefined && fd >= 0) { l.close(fd); evFd.set(e, -1); }
    }
  };

  const runAudit = (): Audit => {
    const a: Audit = { vmPinKb: vmPin() };
    if (root && !opts.noBudget) {
      // RLIMIT_MEMLOCK = current pinned_vm (normally 0) so that any charge to pinned_vm fails;
      // no CAP_IPC_LOCK. A negative pinned_vm cannot be matched: limit 0, everything fails.
      const pinPages = a.vmPinKb > 0 ? Math.ceil(a.vmPinKb / 4) : 0;
      setIpcLock(false);
      const e = setMemlock(pinPages);
      if (e !== 0) throw new HarnessError(`setrlimit for the budget probe: ${errnoName(e)}`);
      const limit = (config.mlockKb >> 2) * config.cpus;
      const probe = probeBudget(limit + (opts.budgetMargin ?? DEFAULT_BUDGET_MARGIN));
      if (probe.error) throw new HarnessError(`budget probe: ${probe.error}`);
      a.budgetPages = probe.pages;
      setIpcLock(config.capIpcLock);
    }
    if (facts.testPmuDir) {
      const rd = (n: string) => { try { return Number(readFileSync(join(facts.testPmuDir!, n), "utf8").trim()); } catch { return undefined; } };
      const live = rd("live"), setups = rd("setups"), frees = rd("frees");
      if (live !== undefined) a.liveAux = live;
      if (setups !== undefined) a.auxSetups = setups;
      if (frees !== undefined) a.auxFrees = frees;
    }
    const w = kmsgWarnings(c);
    if (w.length) a.warnings = w;
    return a;
  };

  try {
    // Machine-wide settings first, as root.
    if (config.mlockKb !== origMlockKb) {
      const o = writeFile(PROC_MLOCK, String(config.mlockKb));
      mlockTouched = true;
      if ("errno" in o) throw new HarnessError(`cannot set perf_event_mlock_kb to ${config.mlockKb}: ${o.errno}`);
    }
    const e = setMemlock(config.memlockPages);
    if (e !== 0) {
      throw new HarnessError(`cannot set RLIMIT_MEMLOCK to ${config.memlockPages} pages: ${errnoName(e)} (hard limit ${hardLimit === RLIM_INFINITY ? "unlimited" : `${hardLimit / 4096n} pages`})`);
    }
    if (root) {
      if (setresgid(uid!, uid!, 0) !== 0) throw new HarnessError(`setresgid(${uid}): ${errnoName(l.errno())}`);
      if (setresuid(uid!, uid!, 0) !== 0) throw new HarnessError(`setresuid(${uid}): ${errnoName(l.errno())}`);
      switched = true;
    }
    setIpcLock(config.capIpcLock);
    const startPin = vmPin();
    if (startPin !== 0 && root) throw new HarnessError(`VmPin is ${startPin} kB before the program: this process is not clean`);

    for (const op of program) {
      const outcome = runOp(op);
      steps.push({ outcome, vmPinKb: vmPin() });
    }
  } catch (e) {
    if (!(e instanceof HarnessError)) throw e;
    aborted = e.message;
  } finally {
    try {
      teardown();
      if (!aborted) audit = runAudit();
    } catch (e) {
      if (!(e instanceof HarnessError)) throw e;
      aborted ??= e.message;
    } finally {
      if (switched && (setresuid(0, 0, 0) !== 0 || setresgid(0, 0, 0) !== 0)) {
        throw new Error(`could not switch back to root after uid ${uid}: ${errnoName(l.errno())}`);
      }
      l.setrlimit(RLIMIT_MEMLOCK, origRlim);
      if (config.mlockKb !== origMlockKb || mlockTouched) {
        try { writeFileSync(PROC_MLOCK, String(origMlockKb)); } catch { /* reported by the next program's check */ }
      }
    }
  }
  return { backend: "host", kernel: facts.release, steps, audit, ...(aborted ? { aborted } : {}) };
}

/** For tests: closes the process-wide fds (the next program reopens them). */
export function resetExecutor(): void {
  if (!ctx) return;
  ctx.l.close(ctx.statusFd);
  if (ctx.kmsgFd !== null) ctx.l.close(ctx.kmsgFd);
  ctx = null;
}

/** True when this process can run another program: VmPin 0 and (when root) back to uid 0. */
export function processIsClean(): boolean {
  const c = context();
  const v = c.l.vmpinKb(c.statusFd);
  if (v !== 0) return false;
  return c.l.getuid() === c.initUid && c.l.geteuid() === c.initEuid;
}
