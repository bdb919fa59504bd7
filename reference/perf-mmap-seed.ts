/**
 * perf_mmap() of v3.18 with the v8 AUX patch applied (the seed profile).
 */
import { PerfBuffer, PerfEvent, Vma, VM_WRITE } from "./objects.ts";
import { EINVAL, EPERM, isPow2, type Err } from "./common.ts";
import { perfMmapAuxMismatch, perfMmapNewRb } from "./perf-core.ts";
import { rbHasAux, rbAllocAux, mappedNrPages } from "./ring-buffer.ts";
import { calcLimits, perfMmapAccount, type Limits } from "./accounting.ts";
import type { Kernel } from "./kernel.ts";

/** perf_mmap() of v3.18 with the v8 AUX patch applied (shared/seed). */
export function perfMmapSeed(k: Kernel, vma: Vma, event: PerfEvent): Err {
  const vmaPages = vma.end - vma.start;
  let rb: PerfBuffer | null = null;
  let userExtra = 0;
  let ret: Err = null;
  let nrPages: number;
  let lim: Limits | null = null;
  unlock: {
    if (vma.pgoff === 0) {
      nrPages = vmaPages - 1;
      if (nrPages !== 0 && !isPow2(nrPages)) return EINVAL;
      // (vma_size != PAGE_SIZE * (1 + nr_pages) cannot hold)
      if (event.rb) {
        if (mappedNrPages(k, event.rb) !== nrPages) { ret = EINVAL; break unlock; }
        event.rb.mmapCount++; // atomic_inc_not_zero(): never 0 while event->rb is set here
        break unlock;
      }
      userExtra = nrPages + 1;
    } else {
      if (!event.rb) return EINVAL;
      nrPages = vmaPages;
      rb = event.rb;
      if (perfMmapAuxMismatch(rb, vma.pgoff, nrPages)) return EINVAL;
      if (rb.mmapCount === 0) return EINVAL; // atomic_inc_not_zero()
      rb.mmapCount++;
      if (rbHasAux(rb)) {
        rb.auxMmapCount++;
        break unlock;
      }
      rb.auxMmapCount = 1;
      userExtra = nrPages;
    }
    // accounting: (no clamp; user_extra charged whole to locked_vm, extra to pinned_vm)
    lim = calcLimits(k, vma, userExtra);
    if (lim.eperm) { ret = EPERM; break unlock; }
    const writable = (vma.prot & VM_WRITE) !== 0;
    if (!rb) {
      rb = perfMmapNewRb(k, event, nrPages, writable, lim.extra);
      // perf_event_init_userpage(), perf_event_update_userpage(): the constructor's values
    } else {
      ret = rbAllocAux(k, rb, event, vma.pgoff, nrPages, writable);
      if (!ret) rb.auxMmapLocked = lim.extra;
    }
  }
  if (!ret) {
    if (lim) perfMmapAccount(k, vma, lim.userExtra, lim.extra);
    event.mmapCount++;
  } else if (rb) {
    rb.mmapCount--;
  }
  return ret;
}
