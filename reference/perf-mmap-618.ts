/**
 * perf_mmap() of 6.15+ as in 6.18 (kernel/events/core.c): the body, perf_mmap_rb() and
 * perf_mmap_aux() (0c8a4e4139ad, PeterZ's split), refcount_t (448f97fba901), map_range().
 */
import { PerfEvent, Vma, VM_WRITE } from "./objects.ts";
import { EINVAL, EPERM, EBUSY, ENOMEM, isPow2, type Err } from "./common.ts";
import { refInc, refIncNotZero, refDec } from "./refcount.ts";
import { perfMmapAuxMismatch, perfMmapClose, perfMmapNewRb, ringBufferAttach } from "./perf-core.ts";
import { rbHasAux, rbAllocAux, perfMmapToPage, perfMmapHasPage, mappedNrPages } from "./ring-buffer.ts";
import { calcLimits, perfMmapAccount } from "./accounting.ts";
import type { Kernel } from "./kernel.ts";

/** perf_mmap() of 6.15+ as in 6.18 (perf_mmap_rb()/perf_mmap_aux(), refcount_t, map_range()). */
export function perfMmap618(k: Kernel, vma: Vma, event: PerfEvent): Err {
  const vmaPages = vma.end - vma.start;
  // (nr_pages > INT_MAX -> ENOMEM; event REVOKED -> ENODEV: cannot hold)
  let auxFailed = false;
  if (vma.pgoff === 0) {
    const e = perfMmapRb(k, vma, event, vmaPages);
    if (e) return e;
  } else {
    const r = perfMmapAux(k, vma, event, vmaPages);
    if (r === "aux-failed") auxFailed = true;
    else if (r) return r;
  }
  // vm_flags_set(VM_DONTCOPY | VM_DONTEXPAND | VM_DONTDUMP); vma->vm_ops = &perf_mmap_vmops;
  // map_range(event->rb, vma): every page now, read-only (perf_mmap_pfn_mkwrite on write).
  const rb = event.rb!;
  let mapErr: Err = null;
  // The mapRangeFault switch: this call fails with -ENOMEM (as remap_pfn_range() does when it
  // cannot allocate a page table), one count consumed per map_range() call.
  if (k.mapRangeFault > 0) {
    k.mapRangeFault--;
    mapErr = ENOMEM;
  }
  for (let p = 0; p < vmaPages && !mapErr; p++) {
    if (!perfMmapHasPage(rb, vma.pgoff + p)) mapErr = EINVAL;
  }
  if (mapErr || auxFailed) {
    // f74b9f4ba63f (Aug 2025, also 6.15.y/6.16.y stable): perf_mmap_close(vma) undoes the above. 7.2.13 takes
    // a "minimal perf_mmap_close()" under event->mmap_mutex when event->mmap_count is 1 (a new
    // buffer: unaccount, detach, mmap_count 0), which leaves the same state as perf_mmap_close()
    // of its only VMA; the explorer (explore/paths.ts) has both.
    if (!k.bug.auxAllocResult) perfMmapClose(k, vma);
    return mapErr ?? EINVAL;
  }
  vma.prepopulated = true;
  vma.preUser = vma.pgoff === 0 ? (perfMmapToPage(rb, 0) || null) : null;
  return null;
}

/** perf_mmap_rb() (6.17+; with d06bf78e55d5's EBUSY). */
export function perfMmapRb(k: Kernel, vma: Vma, event: PerfEvent, nrPagesVma: number): Err {
  const userExtra = nrPagesVma; // long extra = 0, user_extra = nr_pages;
  const nrPages = nrPagesVma - 1;
  if (nrPages !== 0 && !isPow2(nrPages)) return EINVAL;
  if (event.rb) {
    const rb = event.rb;
    if (mappedNrPages(k, rb) !== nrPages) return EINVAL;
    // d06bf78e55d5: an event without mmap_count would alias another event's mmap()
    if (k.era.ebusy && !k.bug.setOutputMmap && event.mmapCount === 0) return EBUSY;
    if (refIncNotZero(k, rb, "mmapCount", "rb->mmap_count")) {
      // Success -- managed to mmap() the same buffer multiple times.
      // 0c8a4e4139ad: user_extra is the VMA's page count here and is charged again.
      // perf_mmap_account(vma, user_extra, extra = 0): current_user()'s locked_vm
      if (k.era.remapCharge) perfMmapAccount(k, vma, userExtra, 0);
      event.mmapCount = refInc(k, event.mmapCount, "event->mmap_count");
      return null;
    }
    ringBufferAttach(k, event, null); // raced against perf_mmap_close()
  }
  const lim = calcLimits(k, vma, userExtra);
  if (lim.eperm) return EPERM;
  perfMmapNewRb(k, event, nrPages, (vma.prot & VM_WRITE) !== 0, lim.extra);
  perfMmapAccount(k, vma, lim.userExtra, lim.extra);
  event.mmapCount = 1; // refcount_set()
  return null;
}

/** perf_mmap_aux() (6.17+). Returns "aux-failed" when the aux-alloc-result bug carries an
 *  rb_alloc_aux() failure on as success. */
export function perfMmapAux(k: Kernel, vma: Vma, event: PerfEvent, nrPages: number): Err | "aux-failed" {
  let userExtra = nrPages;
  let extra = 0;
  const rb = event.rb;
  if (!rb) return EINVAL;
  if (perfMmapAuxMismatch(rb, vma.pgoff, nrPages)) return EINVAL;
  if (!refIncNotZero(k, rb, "mmapCount", "rb->mmap_count")) return EINVAL;
  let failed = false;
  if (rbHasAux(rb)) {
    rb.auxMmapCount = refInc(k, rb.auxMmapCount, "rb->aux_mmap_count");
    if (!k.era.remapCharge) userExtra = 0;
  } else {
    if (k.bug.auxRefcountLeak) rb.auxMmapCount = 1; // pre-5468c0fbccbb: before the accounting
    const lim = calcLimits(k, vma, userExtra);
    if (lim.eperm) {
      rb.mmapCount = refDec(k, rb.mmapCount, "rb->mmap_count");
      return EPERM;
    }
    userExtra = lim.userExtra;
    extra = lim.extra;
    const r = rbAllocAux(k, rb, event, vma.pgoff, nrPages, (vma.prot & VM_WRITE) !== 0);
    if (r) {
      if (!k.bug.auxAllocResult) {
        rb.mmapCount = refDec(k, rb.mmapCount, "rb->mmap_count");
        return r;
      }
      failed = true; // 6.15.0..6.15.9: ret = 0 overwrote the failure
    } else {
      rb.auxMmapCount = 1; // refcount_set()
      rb.auxMmapLocked = extra;
    }
  }
  // perf_mmap_account(vma, user_extra, extra); refcount_inc(&event->mmap_count);
  perfMmapAccount(k, vma, userExtra, extra);
  event.mmapCount = refInc(k, event.mmapCount, "event->mmap_count");
  return failed ? "aux-failed" : null;
}
