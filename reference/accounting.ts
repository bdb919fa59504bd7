/**
 * Accounting: the "accounting:" block of perf_mmap() (v3.18 + v8 patch, 6.1, 6.12) and
 * perf_mmap_calc_limits() (6.18): what a mapping charges to user->locked_vm (user_extra) and
 * to mm->pinned_vm (extra), and when RLIMIT_MEMLOCK refuses it (EPERM).
 */
import { ugt } from "./common.ts";
import type { Vma } from "./objects.ts";
import type { Kernel } from "./kernel.ts";

/** RLIM_INFINITY >> PAGE_SHIFT */
const RLIM_INFINITY_PAGES = 2 ** 52 - 1;

/** What a mapping charges: user_extra to locked_vm, extra to pinned_vm; eperm when refused. */
export interface Limits { eperm: boolean; userExtra: number; extra: number }

export function limitsFor(k: Kernel, lockedVm: number, pinnedVm: number, memlock: number | "unlimited", capIpcLock: boolean, userExtra: number): Limits {
  // user_lock_limit = sysctl_perf_event_mlock >> (PAGE_SHIFT - 10); *= num_online_cpus()
  const userLockLimit = (k.mlockKb >> 2) * k.config.cpus;
  let extra = 0;
  let ue = userExtra;
  if (k.era.clamp && !k.bug.mlockNegative) {
    // 003461559ef7: user_locked = min(locked_vm, limit) + user_extra
    let userLocked = lockedVm;
    if (ugt(userLocked, userLockLimit)) userLocked = userLockLimit;
    userLocked += ue;
    if (userLocked > userLockLimit) {
      extra = userLocked - userLockLimit;
      ue -= extra;
    }
  } else {
    // seed and the mlock-negative bug: user_locked = locked_vm + user_extra (unsigned long)
    const userLocked = lockedVm + ue;
    if (ugt(userLocked, userLockLimit)) {
      extra = userLocked - userLockLimit; // long extra: the difference, signed
      if (k.era.splitCharge) ue -= extra;
    }
  }
  const lockLimit = memlock === "unlimited" ? RLIM_INFINITY_PAGES : memlock;
  const locked = pinnedVm + extra;
  // perf_is_paranoid() (seed: perf_paranoid_tracepoint_raw()): paranoid > -1
  const eperm = ugt(locked, lockLimit) && k.config.paranoid > -1 && !capIpcLock;
  return { eperm, userExtra: ue, extra };
}

/** The limit test of a mapping by current: `user = current_user()`, `user->locked_vm`,
 *  `vma->vm_mm->pinned_vm` (current's mm), `rlimit(RLIMIT_MEMLOCK)` of current,
 *  capable(CAP_IPC_LOCK) (config: every process) (perf_mmap() 5.10.262 / 6.1.192 and the
 *  seed; perf_mmap_calc_limits() 7.2.13). */
export function calcLimits(k: Kernel, vma: Vma, userExtra: number): Limits {
  const task = k.current;
  return limitsFor(k, task.user.lockedVm, vma.vmMm.pinnedVm, task.memlock, k.config.capIpcLock, userExtra);
}

/** perf_mmap_account() (6.18; inline at the end of perf_mmap() before): charge a mapping that
 *  went through: current_user()->locked_vm += user_extra, vma->vm_mm->pinned_vm += extra. */
export function perfMmapAccount(k: Kernel, vma: Vma, userExtra: number, extra: number): void {
  k.current.user.lockedVm += userExtra;
  vma.vmMm.pinnedVm += extra;
}
