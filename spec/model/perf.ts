/**
 * The perf side: perf_mmap_open, perf_mmap_close, ring-buffer attach/put, event release,
 * the accounting check, and the counters' atomic_t / refcount_t arithmetic per era.
 * Everything here works on a Draft (spec/model/state.ts); callers decide outcomes.
 */
import type { MmapCtx } from "../rules/context.ts";
import { Draft, SAT, lockedOf, pinnedOf, rlimitOf, ugt, userOf, vmaMm, type Era, type MBuf, type State, type Vma } from "./state.ts";

// ---------------------------------------------------------------------------------------
// Counter arithmetic. atomic_t (seed .. 6.17) is plain; refcount_t (6.18 mmap counts, and
// aux_refcount since 4.x) WARNs and saturates instead of going through 0 (lib/refcount.c).

/** atomic_inc / refcount_inc */
export function inc(d: Draft, v: number, what: string, refT: boolean): number {
  if (!refT) return v + 1;
  if (v === 0) { d.warn(`refcount_t: addition on 0; use-after-free (${what})`); return SAT; }
  if (v < 0) { d.warn(`refcount_t: saturated; leaking memory (${what})`); return SAT; }
  return v + 1;
}

/** atomic_dec_and_test / refcount_dec_and_test: [new value, reached zero] */
export function decTest(d: Draft, v: number, what: string, refT: boolean): [number, boolean] {
  if (!refT) return [v - 1, v - 1 === 0];
  if (v === 1) return [0, true];
  if (v <= 0) { d.warn(`refcount_t: underflow; use-after-free (${what})`); return [SAT, false]; }
  return [v - 1, false];
}

/** atomic_dec_and_mutex_lock / refcount_dec_and_mutex_lock (refcount_dec_not_one first). */
export function decLock(d: Draft, v: number, what: string, refT: boolean): [number, boolean] {
  if (!refT) return [v - 1, v - 1 === 0];
  if (v === SAT) return [v, false];
  if (v === 1) return [0, true];
  if (v <= 0) { d.warn(`refcount_t: underflow; use-after-free (${what})`); return [v, false]; }
  return [v - 1, false];
}

// ---------------------------------------------------------------------------------------
// Accounting (perf_mmap's inline check in 3.18 .. 6.12, perf_mmap_calc_limits in 6.18).

export interface Acct { ok: boolean; userExtra: number; extra: number }

/** What the accounting check reads. */
export interface AcctInput { era: Era; cfg: State["cfg"]; lockedVm: number; pinnedVm: number; rlimit: number; mlockKb: number }

export function calcLimits(s: AcctInput, userExtra: number): Acct {
  const era = s.era;
  const cfg = s.cfg;
  const limit = (s.mlockKb >> 2) * cfg.cpus;
  let extra = 0;
  if (era.seed) {
    // v8 patch on 3.18: user_locked = locked_vm + user_extra, no clamp, user_extra not reduced.
    const userLocked = s.lockedVm + userExtra;
    if (ugt(userLocked, limit)) extra = userLocked - limit;
  } else {
    // 6.1/6.12 perf_mmap, 6.18 perf_mmap_calc_limits: clamp, then charge the excess to pinned_vm.
    let userLocked = s.lockedVm;
    if (ugt(userLocked, limit)) userLocked = limit;
    userLocked += userExtra;
    if (userLocked > limit) { extra = userLocked - limit; userExtra -= extra; }
  }
  const locked = s.pinnedVm + extra;
  const ok = !(ugt(locked, s.rlimit) && cfg.paranoid > -1 && !cfg.capIpcLock);
  return { ok, userExtra, extra };
}

/**
 * What the accounting check of process p reads: current_user()'s locked_vm, vma->vm_mm's
 * pinned_vm, the process's RLIMIT_MEMLOCK (perf_mmap 5.10 .. 6.12, perf_mmap_calc_limits
 * 6.15+ / 7.3.4: `user = current_user()`, `atomic64_read(&vma->vm_mm->pinned_vm)`).
 */
export function acctInput(s: State, p: number, u: number = userOf(s, p)): AcctInput {
  if (p === 0 && u === 0) return s;
  return { era: s.era, cfg: s.cfg, lockedVm: lockedOf(s, u), pinnedVm: pinnedOf(s, p), rlimit: rlimitOf(s, p), mlockKb: s.mlockKb };
}

/** The accounting check of an mmap, computed once per step (the guards of mmap.*.eperm). */
export function acctOf(c: MmapCtx): Acct {
  return c.acct ??= calcLimits(c.p === 0 && c.u === 0 ? c.s : acctInput(c.s, c.p, c.u), c.op.pages);
}

// ---------------------------------------------------------------------------------------
// Buffers and events.

/** ring_buffer_put: a buffer no event points at any more is freed (rb_free does not free AUX). */
export function putBuf(d: Draft, id: number): void {
  for (let i = 0; i < d.evs.length; i++) {
    const e = d.evs[i];
    if (e !== undefined && !e.freed && e.rb === id) return;
  }
  const b = d.bufW(id);
  if (b.dead) return;
  b.dead = true;
  if (b.mmapCount !== 0) d.anomaly(`buffer ${id} freed with rb->mmap_count ${b.mmapCount}`);
  if (b.auxMmapCount !== 0) d.anomaly(`buffer ${id} freed with aux_mmap_count ${b.auxMmapCount}`);
  if (b.auxNrPages !== 0) d.anomaly(`buffer ${id} freed with ${b.auxNrPages} AUX pages still allocated${b.auxPriv ? " (free_aux never called)" : ""}`);
}

/** ring_buffer_attach(event, NULL) */
export function detachEv(d: Draft, i: number): void {
  const e = d.ev(i);
  if (e === undefined || e.rb < 0) return;
  const old = e.rb;
  d.evW(i).rb = -1;
  putBuf(d, old);
}

/** Does any VMA still hold the event's file? */
export function evHasVma(d: Draft, i: number): boolean {
  for (const v of d.vmas) if (v.ev === i) return true;
  return false;
}

/** perf_release -> perf_event_release_kernel -> _free_event, once no file reference is left. */
export function maybeFree(d: Draft, i: number): void {
  const e = d.ev(i);
  if (e === undefined || e.fd || e.freed || evHasVma(d, i)) return;
  if (e.mmapCount !== 0) d.anomaly(`event e${i} freed with mmap_count ${e.mmapCount}`);
  const w = d.evW(i);
  w.freed = true;
  if (w.rb >= 0) detachEv(d, i);
  if (e.groupLeader === i) {
    // perf_group_detach: siblings become singleton groups
    for (let j = 0; j < d.evs.length; j++) {
      const s = d.evs[j];
      if (j !== i && s !== undefined && !s.freed && s.groupLeader === i) d.evW(j).groupLeader = j;
    }
  }
}

export function evLive(d: Draft | State, i: number): boolean {
  const e = d.evs[i];
  return e !== undefined && e.fd;
}

// ---------------------------------------------------------------------------------------
// VMA callbacks.

/** perf_mmap_open (vm_ops->open): split pieces and mremap copies. */
export function perfOpen(d: Draft, v: Vma): void {
  const e = d.ev(v.ev);
  const refT = d.era.refcountT;
  if (e === undefined || e.rb < 0) { d.warn("BUG: perf_mmap_open with event->rb == NULL (NULL dereference)"); return; }
  const ew = d.evW(v.ev);
  ew.mmapCount = inc(d, ew.mmapCount, "event->mmap_count", refT);
  const b = d.bufW(e.rb);
  b.mmapCount = inc(d, b.mmapCount, "rb->mmap_count", refT);
  if (v.pgoff !== 0) b.auxMmapCount = inc(d, b.auxMmapCount, "rb->aux_mmap_count", refT);
}

function freeAuxPages(d: Draft, b: MBuf): void {
  if (b.auxPriv) { d.auxFrees++; b.auxPriv = false; }
  b.auxNrPages = 0;
  b.aux0Offset = 0;
  b.aux0Size = 0;
}

/** rb_free_aux: drop aux_refcount, __rb_free_aux at zero. */
export function rbFreeAux(d: Draft, b: MBuf): void {
  if (!d.era.auxRefT) {
    b.auxRefcount -= 1;
    if (b.auxRefcount === 0) freeAuxPages(d, b);
    return;
  }
  if (b.auxRefcount === 1) { b.auxRefcount = 0; freeAuxPages(d, b); return; }
  if (b.auxRefcount <= 0) { d.warn("refcount_t: underflow; use-after-free (rb->aux_refcount)"); b.auxRefcount = SAT; return; }
  b.auxRefcount -= 1;
}

/** perf_mmap_close (vm_ops->close). */
export function perfClose(d: Draft, v: Vma): void {
  const era: Era = d.era;
  const refT = era.refcountT;
  const e = d.ev(v.ev);
  if (e === undefined || e.rb < 0) { d.warn("BUG: perf_mmap_close with event->rb == NULL (NULL dereference)"); return; }
  const rbId = e.rb;
  const b = d.bufW(rbId);
  const mmapLocked = b.mmapLocked;
  const size = b.nrPages;
  if (b.auxNrPages !== 0 && v.pgoff === b.auxPgoff) {
    const [n, zero] = decLock(d, b.auxMmapCount, "rb->aux_mmap_count", refT);
    b.auxMmapCount = n;
    if (zero) {
      // atomic_long_sub(aux_nr_pages - aux_mmap_locked, &mmap_user->locked_vm) and
      // atomic64_sub(aux_mmap_locked, &vma->vm_mm->pinned_vm) (5.10.262, 6.1.192, 7.3.4):
      // the AUX refund goes to the DATA buffer's creator and from the closing mm, whoever
      // was charged for the area
      const userRefund = era.seed ? b.auxNrPages : b.auxNrPages - b.auxMmapLocked;
      const mm = vmaMm(v);
      d.addLocked(b.mmapUser, -userRefund);
      d.addPinned(mm, -b.auxMmapLocked);
      if (b.auxUser !== b.mmapUser && userRefund !== 0) d.mark("munmap.refund.other_user");
      if (b.auxMm !== mm && b.auxMmapLocked !== 0) d.mark("munmap.refund.other_mm");
      rbFreeAux(d, b);
      if (era.auxRefT && b.auxRefcount !== 0) d.warn("WARN_ON_ONCE(refcount_read(&rb->aux_refcount)) in perf_mmap_close");
    }
  }
  if (era.closeEventsFirst) {
    // 7.2.13/7.3.4 perf_mmap_close: "Drop references in reverse order of perf_mmap()":
    // the event's count first (detach it at 0), then the buffer's; at 0 every event still
    // on the buffer is detached and the data pages refunded, whatever the event's count.
    // (ring_buffer_get holds the buffer until out_put: the event is detached after the
    // buffer's count is dropped here, which no single-threaded op can tell apart)
    const [en, ezero] = decLock(d, e.mmapCount, "event->mmap_count", refT);
    d.evW(v.ev).mmapCount = en;
    const [n, zero] = decTest(d, b.mmapCount, "rb->mmap_count", refT);
    b.mmapCount = n;
    if (ezero) detachEv(d, v.ev);
    if (!zero) return;
    for (let j = 0; j < d.evs.length; j++) {
      const o = d.evs[j];
      if (o !== undefined && !o.freed && o.rb === rbId) detachEv(d, j);
    }
    refundData(d, v, b, size + 1 - mmapLocked, mmapLocked);
    return;
  }
  let detachRest: boolean;
  if (era.seed) {
    b.mmapCount -= 1;
    detachRest = false;
  } else {
    const [n, zero] = decTest(d, b.mmapCount, "rb->mmap_count", refT);
    b.mmapCount = n;
    detachRest = zero;
  }
  const [en, ezero] = decLock(d, e.mmapCount, "event->mmap_count", refT);
  d.evW(v.ev).mmapCount = en;
  if (!ezero) return;
  detachEv(d, v.ev);
  if (era.seed) detachRest = d.buf(rbId).mmapCount === 0;
  if (!detachRest) return;
  for (let j = 0; j < d.evs.length; j++) {
    const o = d.evs[j];
    if (o !== undefined && !o.freed && o.rb === rbId) detachEv(d, j);
  }
  refundData(d, v, b, era.seed ? size + 1 : size + 1 - mmapLocked, mmapLocked);
}

/**
 * The data refund of the buffer's last VMA: locked_vm to rb->mmap_user (the creator, who was
 * charged), pinned_vm from the closing VMA's mm (perf_mmap_close 5.10.262/6.1.192,
 * perf_mmap_unaccount 7.3.4): an mm other than the one charged mmap_locked goes below zero.
 */
function refundData(d: Draft, v: Vma, b: MBuf, userRefund: number, mmapLocked: number): void {
  const mm = vmaMm(v);
  d.addLocked(b.mmapUser, -userRefund);
  d.addPinned(mm, -mmapLocked);
  if (mm !== b.mmapMm && mmapLocked !== 0) d.mark("munmap.refund.other_mm");
}
