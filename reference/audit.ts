/**
 * Teardown and audit, by the one protocol of spec/audit.ts: teardownSteps(program) in order,
 * then VmPin, the budget probe (budgetProbe() driven with this profile's own accounting) and
 * the test PMU's counters.
 */
import type { Program } from "../spec/program.ts";
import { budgetCap, budgetLimit, budgetProbe, slotPage, teardownSteps } from "../spec/audit.ts";
import type { Audit } from "../spec/trace.ts";
import { sysClose, runPendingReleases } from "./perf-core.ts";
import { limitsFor } from "./accounting.ts";
import { doMunmap } from "./mm.ts";
import { doExit } from "./task.ts";
import type { UserStruct } from "./objects.ts";
import type { Kernel } from "./kernel.ts";

/** Teardown, step by step as teardownSteps() orders it (perf_event_mlock_kb, the test
 *  PMU's fault switch and the map_range() fault switch restored; every live process but p0 exits, fork order; in p0, both
 *  slots of every map handle unmapped, handle order, then every event handle whose fd p0
 *  still holds closed, handle order; deferred __fput() after each syscall), then the audit:
 *  p0's VmPin, u0's budget, and the budget of every other user a `setuid` named. */
export function finish(k: Kernel, program: Program): Audit {
  k.current = k.init;
  for (const step of teardownSteps(program)) {
    switch (step.kind) {
      case "restore":
        k.mlockKb = k.config.mlockKb;
        k.auxFail = false;
        k.mapRangeFault = 0;
        break;
      case "exit": {
        const t = k.tasks.get(step.proc);
        if (t && t.mm) {
          doExit(k, t);
          runPendingReleases(k);
        }
        break;
      }
      case "munmap":
        doMunmap(k, slotPage(step.map, step.slot), step.pages);
        runPendingReleases(k);
        break;
      case "close": {
        if (k.init.files!.fdt.has(step.ev)) {
          sysClose(k, step.ev);
          runPendingReleases(k);
        }
        break;
      }
      default: {
        const never: never = step;
        throw new Error(`unknown teardown step ${JSON.stringify(never)}`);
      }
    }
  }
  const audit: Audit = { vmPinKb: k.vmPinKb(), budgetPages: budgetPages(k, k.users.get("u0")!) };
  let budgets: Record<string, number> | undefined;
  for (const op of program) {
    if (op.op !== "setuid" || op.user === "u0") continue;
    budgets ??= {};
    budgets[op.user] ??= budgetPages(k, k.userFor(op.user));
  }
  if (budgets) audit.budgets = budgets;
  if (k.config.pmus.aux !== null) {
    audit.liveAux = k.auxLive;
    audit.auxSetups = k.auxSetups;
    audit.auxFrees = k.auxFrees;
  }
  audit.warnings = k.warnings.slice();
  return audit;
}

/**
 * A user's remaining budget as the harness's probe measures it, in p0 switched to that user's
 * uid (spec/audit.ts budgetProbe():
 * with perf_event_mlock_kb restored, RLIMIT_MEMLOCK set to the pages pinned_vm holds after
 * teardown (normally 0), no CAP_IPC_LOCK, fresh buffers mapped greedily, largest first, until
 * EPERM, at most budgetCap() pages).
 * Each probe mapping is charged with this profile's own accounting arithmetic (limitsFor(): the
 * 6.x clamp min(locked_vm, limit), the seed's and mlock-negative's unclamped unsigned sum), so a
 * negative locked_vm probes as 0 on 6.x and, in the seed, as limit + 1 when it is -1.
 */
export function budgetPages(k: Kernel, user: UserStruct): number {
  const limit = budgetLimit(k.mlockKb, k.config.cpus);
  const cap = budgetCap(k.mlockKb, k.config.cpus);
  const P = k.init.mm!.pinnedVm;
  // A negative pinned_vm holds no pages: RLIMIT_MEMLOCK 0 (spec/audit.ts), and the unsigned
  // `locked = pinned_vm + extra` then refuses every probe buffer whose extra does not cover it.
  const memlock: number | "unlimited" = Math.max(0, P);
  let L = user.lockedVm;
  // Fast path: 0 <= L <= limit, P >= 0: every probe mapping until L reaches the limit charges
  // locked_vm only (extra = 0); the next one needs a pinned page the rlimit does not have.
  if (L >= 0 && L <= limit && P >= 0 && k.config.paranoid > -1) return Math.min(cap, limit - L);
  // Slow path: the probe's own greedy order, because with an unclamped or negative locked_vm the
  // order decides where EPERM first strikes. A buffer of dataPages maps dataPages + 1 pages.
  let pinned = P;
  return budgetProbe(cap, (dataPages) => {
    const userExtra = dataPages + 1;
    const lim = limitsFor(k, L, pinned, memlock, false, userExtra);
    if (lim.eperm) return false;
    L += k.era.splitCharge ? lim.userExtra : userExtra;
    pinned += lim.extra;
    return true;
  });
}
