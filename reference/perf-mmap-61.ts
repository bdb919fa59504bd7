/**
 * perf_mmap() of 6.1.192 / 6.12.117 (kernel/events/core.c; the two are identical here).
 */
import { PerfBuffer, PerfEvent, Vma, VM_WRITE } from "./objects.ts";
import { EINVAL, EPERM, isPow2, type Err } from "./common.ts";
import { perfMmapAuxMismatch, perfMmapNewRb } from "./perf-core.ts";
import { rbHasAux, rbAllocAux, mappedNrPages } from "./ring-buffer.ts";
import { calcLimits, perfMmapAccount, type Limits } from "./accounting.ts";
import type { Kernel } from "./kernel.ts";

/** perf_mmap() of 6.1.192 / 6.12.117 (identical); the pre-148/pre-42 profiles differ only in
 *  where aux_mmap_count is set (before 5468c0fbccbb) and in the missing may_split. */
export function perfMmap61(k: Kernel, vma: Vma, event: PerfEvent): Err {
  const vmaPages = vma.end - vma.start;
  let rb: PerfBuffer | null = null;
  let ret: Err = null;
  let nrPages: number;
  let lim: Limits | null = null;
  const auxEarly = k.era.auxMmapCountEarly || k.bug.auxRefcountLeak;
  unlock: {
    if (vma.pgoff === 0) {
      nrPages = vmaPages - 1;
      if (nrPages !== 0 && !isPow2(nrPages)) return EINVAL;
      if (event.rb) {
        if (mappedNrPages(k, event.rb) !== nrPages) { ret = EINVAL; break unlock; }
        event.rb.mmapCount++; // atomic_inc_not_zero(): the "raced against perf_mmap_close()" retry never runs here
        break unlock;
      }
      lim = calcLimits(k, vma, nrPages + 1);
    } else {
      // AUX area mapping
      if (!event.rb) return EINVAL;
      nrPages = vmaPages; // (nr_pages > INT_MAX -> ENOMEM cannot hold)
      rb = event.rb;
      if (perfMmapAuxMismatch(rb, vma.pgoff, nrPages)) return EINVAL;
      if (rb.mmapCount === 0) return EINVAL;
      rb.mmapCount++;
      if (rbHasAux(rb)) {
        rb.auxMmapCount++;
        break unlock;
      }
      if (auxEarly) rb.auxMmapCount = 1; // pre-5468c0fbccbb
      lim = calcLimits(k, vma, nrPages);
    }
    if (lim.eperm) { ret = EPERM; break unlock; }
    const writable = (vma.prot & VM_WRITE) !== 0;
    if (!rb) {
      rb = perfMmapNewRb(k, event, nrPages, writable, lim.extra);
    } else {
      ret = rbAllocAux(k, rb, event, vma.pgoff, nrPages, writable);
      if (!ret) {
        if (!auxEarly) rb.auxMmapCount = 1;
        rb.auxMmapLocked = lim.extra;
      }
    }
  }
  if (!ret) {
    if (lim) perfMmapAccount(k, vma, lim.userExtra, lim.extra);
    event.mmapCount++;
  } else if (rb) {
    rb.mmapCount--; // AUX allocation failed
  }
  return ret;
}
