/**
 * Teardown and audit (common brief, "Shared semantics"): teardown, then VmPin, the budget
 * probe (simulated with this profile's own accounting) and the test PMU's counters.
 */
import { SLOT_PAGES, handleIndex, programHandles, type Program } from "../spec/program.ts";
import type { Audit } from "../spec/trace.ts";
import { sysClose, runPendingReleases } from "./perf-core.ts";
import { limitsFor } from "./accounting.ts";
import { doMunmap } from "./mm.ts";
import type { Kernel } from "./kernel.ts";

/** How far above the per-user limit the harness's budget probe goes (hwtest/host/executor.ts). */
const BUDGET_PROBE_MARGIN = 16;

/** Teardown (perf_event_mlock_kb and auxFault restored; both slots of every map handle
 *  unmapped in handle order; every live fd closed in handle order), then the audit. */
export function finish(k: Kernel, program: Program): Audit {
  k.mlockKb = k.config.mlockKb;
  k.auxFail = false;
  const { evs, maps } = programHandles(program);
  for (const h of maps) {
    const slotA = handleIndex(h) * 2 * SLOT_PAGES;
    doMunmap(k, slotA, SLOT_PAGES);
    runPendingReleases(k);
    doMunmap(k, slotA + SLOT_PAGES, SLOT_PAGES);
    runPendingReleases(k);
  }
  for (const h of evs) {
    const e = k.events.get(h);
    if (e && e.fdOpen) {
      sysClose(k, h);
      runPendingReleases(k);
    }
  }
  const audit: Audit = { vmPinKb: k.vmPinKb(), budgetPages: budgetPages(k) };
  if (k.config.pmus.aux !== null) {
    audit.liveAux = k.auxLive;
    audit.auxSetups = k.auxSetups;
    audit.auxFrees = k.auxFrees;
  }
  audit.warnings = k.warnings.slice();
  return audit;
}

/**
 * The uid's remaining budget as the harness's probe measures it (hwtest/host/executor.ts
 * runAudit + perf.ts probeBudget): with perf_event_mlock_kb restored, RLIMIT_MEMLOCK set to
 * the pages pinned_vm holds after teardown (normally 0), no CAP_IPC_LOCK, it maps fresh
 * buffers greedily, largest first (2^k + 1 pages, then 1-page ones), until EPERM, at most
 * user_lock_limit + 16 pages.
 * Computed with this profile's own accounting arithmetic (limitsFor(): the 6.x clamp
 * min(locked_vm, limit), the seed's and mlock-negative's unclamped unsigned sum), so a
 * negative locked_vm probes as 0 on 6.x and, in the seed, as limit + 1 when it is -1.
 */
export function budgetPages(k: Kernel): number {
  const limit = (k.mlockKb >> 2) * k.config.cpus;
  const cap = limit + BUDGET_PROBE_MARGIN;
  const P = k.pinnedVm;
  // VmPin printed unsigned: a negative pinned_vm reads huge, the rlimit follows it.
  const memlock: number | "unlimited" = P < 0 ? "unlimited" : P;
  let L = k.lockedVm;
  // Fast path: 0 <= L <= limit, P >= 0: every probe mapping until L reaches the limit charges
  // locked_vm only (extra = 0); the next one needs a pinned page the rlimit does not have.
  if (L >= 0 && L <= limit && P >= 0 && k.config.paranoid > -1) return Math.min(cap, limit - L);
  // Slow path: the probe's own greedy order (perf.ts probeBudget: 2^k + 1 page buffers from the
  // largest that fits under the cap down, each while it maps, then 1-page buffers), because with
  // an unclamped or negative locked_vm the order decides where EPERM first strikes.
  let pinned = P;
  let pages = 0;
  const tryMap = (userExtra: number): boolean => {
    const lim = limitsFor(k, L, pinned, memlock, false, userExtra);
    if (lim.eperm) return false;
    L += k.era.splitCharge ? lim.userExtra : userExtra;
    pinned += lim.extra;
    return true;
  };
  let j = 0;
  while (2 ** (j + 1) + 1 <= cap) j++;
  for (; j >= 0; j--) {
    const n = 2 ** j;
    while (pages + n + 1 <= cap && tryMap(n + 1)) pages += n + 1;
  }
  while (pages + 1 <= cap && tryMap(1)) pages += 1;
  return pages;
}
