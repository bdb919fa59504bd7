/**
 * Who a program runs as, and the machine-wide settings around it: RLIMIT_MEMLOCK (as root
 * first, so the hard limit can be raised where the process has CAP_SYS_RESOURCE), a fresh uid
 * (root only: setresgid/setresuid(X, X, 0); user->locked_vm is per uid and outlives
 * processes, so no two programs may share one), CAP_IPC_LOCK in the effective set as the
 * config says (verified with capget), perf_event_mlock_kb; and everything back afterwards.
 *
 * The saved uid 0 lets the process go back to root, and lets `asRoot` write root-owned files
 * (sysctl, test PMU parameters) in the middle of a program. By default only the calling
 * thread switches (raw syscalls, ~1 us): every syscall of the program, the fs writes and the
 * access child come from this thread, and perf charges current_user() of the caller
 * (kernel/events/core.c perf_mmap -> perf_mmap_calc_limits). `wholeProcess` uses glibc's
 * wrappers instead, which change every thread (~0.3 ms per call with Node's threads).
 */
import { writeFileSync } from "node:fs";
import type { Config, Outcome } from "../../spec/program.ts";
import type { HostFacts } from "./discover.ts";
import { errnoName } from "./errno.ts";
import { CAP_IPC_LOCK, PAGE, RLIMIT_MEMLOCK, RLIM_INFINITY, capEffective, capGet, capSet, hasCap } from "./libc.ts";
import { HarnessError, type Ctx } from "./context.ts";

const UNCHANGED = 0xffffffff;
export const PROC_MLOCK = "/proc/sys/kernel/perf_event_mlock_kb";
const ok: Outcome = { ok: true };

export interface IdentityOptions {
  uid?: number;
  wholeProcess?: boolean;
}

export class Identity {
  /** Root with euid 0 at the start: fresh uids, budget probe. */
  readonly root: boolean;
  readonly uid: number | null;
  switched = false;
  mlockTouched = false;
  auxFaultTouched = false;
  private readonly origRlim = new BigUint64Array(2);
  private readonly hardLimit: bigint;
  private readonly origMlockKb: number;
  private readonly setresuid: (r: number, e: number, s: number) => number;
  private readonly setresgid: (r: number, e: number, s: number) => number;

  constructor(private readonly c: Ctx, private readonly config: Config, facts: HostFacts, opts: IdentityOptions) {
    const l = c.l;
    this.root = facts.root && c.initEuid === 0;
    this.uid = this.root ? (opts.uid ?? c.uidNext++) : null;
    this.setresuid = opts.wholeProcess ? l.setresuid : l.setresuidThread;
    this.setresgid = opts.wholeProcess ? l.setresgid : l.setresgidThread;
    l.getrlimit(RLIMIT_MEMLOCK, this.origRlim);
    if (c.hardLimit === null) {
      // Once per process: raise the hard limit to unlimited where we may (CAP_SYS_RESOURCE), so that
      // rlimit ops can ask for any soft limit ("hard limit stays unlimited", spec/program.ts).
      c.hardLimit = this.origRlim[1];
      if (this.root && this.origRlim[1] !== RLIM_INFINITY) {
        c.rlim[0] = this.origRlim[0]; c.rlim[1] = RLIM_INFINITY;
        if (l.setrlimit(RLIMIT_MEMLOCK, c.rlim) === 0) { c.hardLimit = RLIM_INFINITY; this.origRlim[1] = RLIM_INFINITY; }
      }
    }
    this.hardLimit = c.hardLimit;
    this.origMlockKb = facts.config.mlockKb;
  }

  /** Machine-wide settings as root, then the program's uid and capabilities. */
  enter(): void {
    const { config, c } = this;
    if (config.mlockKb !== this.origMlockKb) {
      const o = this.writeFile(PROC_MLOCK, String(config.mlockKb));
      this.mlockTouched = true;
      if ("errno" in o) throw new HarnessError(`cannot set perf_event_mlock_kb to ${config.mlockKb}: ${o.errno}`);
    }
    const e = this.setMemlock(config.memlockPages);
    if (e !== 0) {
      throw new HarnessError(`cannot set RLIMIT_MEMLOCK to ${config.memlockPages} pages: ${errnoName(e)} (hard limit ${this.hardLimit === RLIM_INFINITY ? "unlimited" : `${this.hardLimit / 4096n} pages`})`);
    }
    if (this.root) {
      const uid = this.uid!;
      if (this.setresgid(uid, uid, 0) !== 0) throw new HarnessError(`setresgid(${uid}): ${errnoName(c.l.errno())}`);
      if (this.setresuid(uid, uid, 0) !== 0) throw new HarnessError(`setresuid(${uid}): ${errnoName(c.l.errno())}`);
      this.switched = true;
    }
    this.setIpcLock(config.capIpcLock);
  }

  /** Back to root, RLIMIT_MEMLOCK and perf_event_mlock_kb as they were (throws a plain Error if root is lost). */
  leave(): void {
    const l = this.c.l;
    if (this.switched && (this.setresuid(0, 0, 0) !== 0 || this.setresgid(0, 0, 0) !== 0)) {
      throw new Error(`could not switch back to root after uid ${this.uid}: ${errnoName(l.errno())}`);
    }
    l.setrlimit(RLIMIT_MEMLOCK, this.origRlim);
    if (this.config.mlockKb !== this.origMlockKb || this.mlockTouched) {
      try { writeFileSync(PROC_MLOCK, String(this.origMlockKb)); } catch { /* reported by the next program's check */ }
    }
  }

  /** Temporarily euid 0 (the saved uid) to write root-owned sysctl/module files, then back. */
  asRoot<T>(fn: () => T): T {
    if (!this.switched) return fn();
    const l = this.c.l;
    if (this.setresuid(UNCHANGED, 0, UNCHANGED) !== 0) throw new HarnessError(`setresuid(-1, 0, -1): ${errnoName(l.errno())}`);
    try {
      return fn();
    } finally {
      if (this.setresuid(UNCHANGED, this.uid!, UNCHANGED) !== 0) throw new HarnessError(`setresuid back to ${this.uid}: ${errnoName(l.errno())}`);
      this.setIpcLock(this.config.capIpcLock);
    }
  }

  /** A root-owned file written as root: ok, or the errno by name. */
  writeFile(path: string, text: string): Outcome {
    try {
      this.asRoot(() => writeFileSync(path, text));
      return ok;
    } catch (e) {
      if (e instanceof HarnessError) throw e;
      const code = (e as NodeJS.ErrnoException).code;
      return { errno: code && /^E[A-Z0-9]+$/.test(code) ? code : "EIO" };
    }
  }

  setIpcLock(want: boolean): void {
    if (capEffective(CAP_IPC_LOCK) === want) return;
    const caps = capGet();
    const bit = 1n << BigInt(CAP_IPC_LOCK);
    const e = capSet({ ...caps, effective: want ? caps.effective | bit : caps.effective & ~bit });
    if (e !== 0) throw new HarnessError(`capset CAP_IPC_LOCK=${want}: ${errnoName(e)}`);
    if (hasCap(capGet().effective, CAP_IPC_LOCK) !== want) throw new HarnessError(`CAP_IPC_LOCK is still ${!want} after capset`);
  }

  /** RLIMIT_MEMLOCK soft limit in pages, hard limit as raised once per process; errno (0 = done). */
  setMemlock(pages: number | "unlimited"): number {
    const { c } = this;
    c.rlim[0] = pages === "unlimited" ? RLIM_INFINITY : BigInt(pages) * BigInt(PAGE);
    c.rlim[1] = this.hardLimit;
    return c.l.setrlimit(RLIMIT_MEMLOCK, c.rlim) === 0 ? 0 : c.l.errno();
  }
}
