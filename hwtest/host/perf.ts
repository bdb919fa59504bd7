/**
 * perf_event_attr as bytes (koffi has no bitfields) and the small perf helpers the executor,
 * discovery and the audit share.
 *
 * Layout (include/uapi/linux/perf_event.h, unchanged at these offsets since 2.6.32; checked
 * against the C header by test/hwtest/attr.test.ts): type u32 @0, size u32 @4, config u64 @8,
 * sample_period @16, sample_type @24, read_format @32, the flag bitfield u64 @40 (disabled
 * bit 0, inherit bit 1, exclude_kernel bit 5), wakeup_events u32 @48, ... config3 @128;
 * PERF_ATTR_SIZE_VER8 = 136.
 */
import {
  libc, PAGE, PERF_ATTR_SIZE_VER8, PERF_COUNT_SW_DUMMY, PERF_FLAG_FD_CLOEXEC, PERF_TYPE_SOFTWARE,
  MAP_SHARED, PROT,
} from "./libc.ts";
import { errnoName } from "./errno.ts";
import { budgetProbe } from "../../spec/audit.ts";

export const ATTR_FLAG_DISABLED = 1n << 0n;
export const ATTR_FLAG_INHERIT = 1n << 1n;
export const ATTR_FLAG_EXCLUDE_KERNEL = 1n << 5n;

export interface AttrSpec {
  type: number;
  config: bigint;
  inherit: boolean;
  excludeKernel: boolean;
}

/** Fills `buf` (at least PERF_ATTR_SIZE_VER8 bytes, reused across calls) with the attr. */
export function writeAttr(buf: Buffer, a: AttrSpec): Buffer {
  buf.fill(0, 0, PERF_ATTR_SIZE_VER8);
  buf.writeUInt32LE(a.type >>> 0, 0);
  buf.writeUInt32LE(PERF_ATTR_SIZE_VER8, 4);
  buf.writeBigUInt64LE(a.config, 8);
  let flags = ATTR_FLAG_DISABLED;
  if (a.inherit) flags |= ATTR_FLAG_INHERIT;
  if (a.excludeKernel) flags |= ATTR_FLAG_EXCLUDE_KERNEL;
  buf.writeBigUInt64LE(flags, 40);
  return buf;
}

const probeAttr = Buffer.alloc(PERF_ATTR_SIZE_VER8);

/** A disabled software dummy event of this process on any CPU: fd, or -errno. */
export function openDummy(): number {
  const l = libc();
  writeAttr(probeAttr, { type: PERF_TYPE_SOFTWARE, config: BigInt(PERF_COUNT_SW_DUMMY), inherit: false, excludeKernel: true });
  const fd = l.perfEventOpen(probeAttr, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);
  return fd >= 0 ? fd : -l.errno();
}

/** Discovery's check: open, map one page (the user page alone), unmap, close. */
export function probeSoftwareEvent(): string | null {
  const l = libc();
  const fd = openDummy();
  if (fd < 0) return `perf_event_open(PERF_TYPE_SOFTWARE, PERF_COUNT_SW_DUMMY, exclude_kernel) failed with ${errnoName(-fd)}`;
  try {
    const addr = l.mmap(0, PAGE, PROT.rw, MAP_SHARED, fd, 0);
    if (addr === -1) {
      const e = errnoName(l.errno());
      return `mmap of a 1-page perf buffer failed with ${e}` + (e === "EPERM" ? " (RLIMIT_MEMLOCK and perf_event_mlock_kb leave no budget for this user)" : "");
    }
    l.munmap(addr, PAGE);
    return null;
  } finally {
    l.close(fd);
  }
}

export interface BudgetProbe {
  /** Pages the uid could still charge to user->locked_vm (capped at `cap`). */
  pages: number;
  /** True when the probe stopped at the cap rather than at EPERM. */
  capped: boolean;
  /** A failure other than EPERM (the probe result is then meaningless). */
  error?: string;
  /** Buffers mapped and attempts made, for the curious. */
  buffers: number;
  attempts: number;
}

/**
 * The uid's remaining locked-memory budget: maps fresh data buffers (each on a fresh software
 * event, so no buffer is shared and no re-map RCU wait happens) while they fit, largest first,
 * then unmaps and closes them all.
 *
 * The caller must have set RLIMIT_MEMLOCK so that any charge to pinned_vm is refused (0, or
 * the mm's current pinned_vm when that is not 0) and dropped CAP_IPC_LOCK: then a buffer of
 * n data pages maps iff min(locked_vm, limit) + n + 1 <= limit (perf_mmap_calc_limits(),
 * kernel/events/core.c 6.18; the same test inline in perf_mmap() in 6.1/6.12), i.e. the probe
 * measures limit - locked_vm exactly. The greedy order is spec/audit.ts budgetProbe (the C
 * runtime's ax_budget_probe is checked against it): 2^k + 1 page buffers for k from high to
 * low, each repeated while it fits, then 1-page buffers (user page only, costs 1) -- this
 * finds every single page of budget. Stops at `cap` (limit + margin): a budget above the
 * limit means locked_vm went below where it started.
 *
 * Note (source, 6.1 to 6.18): user_locked is an unsigned long clamped to the limit, so a
 * NEGATIVE locked_vm reads as huge, is clamped, and the budget probes as 0, not as more.
 */
export function probeBudget(cap: number): BudgetProbe {
  const l = libc();
  const maps: Array<[number, number]> = [];
  const fds: number[] = [];
  let spare = -1;
  let pages = 0;
  let attempts = 0;
  let error: string | undefined;
  const tryMap = (dataPages: number): boolean => {
    if (spare < 0) {
      const fd = openDummy();
      if (fd < 0) { error = `perf_event_open failed with ${errnoName(-fd)}`; return false; }
      spare = fd;
    }
    attempts++;
    const len = (dataPages + 1) * PAGE;
    const addr = l.mmap(0, len, PROT.rw, MAP_SHARED, spare, 0);
    if (addr === -1) {
      const e = l.errno();
      if (errnoName(e) !== "EPERM") error = `mmap of ${dataPages + 1} pages failed with ${errnoName(e)}`;
      return false;
    }
    maps.push([addr, len]);
    fds.push(spare);
    spare = -1;
    return true;
  };
  try {
    pages = budgetProbe(cap, tryMap, () => error !== undefined);
  } finally {
    for (const [a, len] of maps) l.munmap(a, len);
    for (const fd of fds) l.close(fd);
    if (spare >= 0) l.close(spare);
  }
  return { pages, capped: pages >= cap, buffers: maps.length, attempts, ...(error ? { error } : {}) };
}
