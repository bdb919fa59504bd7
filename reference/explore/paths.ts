/**
 * The racy syscall paths of a par block, split into atomic steps (spec/notes/races.md).
 *
 * Each path is a port of the sequential reference's function (reference/perf-core.ts,
 * perf-mmap-61.ts, perf-mmap-618.ts, mm.ts, task.ts) with a yield where the kernel takes a lock
 * (mm->mmap_lock, event->mmap_mutex, rb->aux_mutex) and before each atomic/refcount operation
 * on an object another task can reach (rb->mmap_count, event->mmap_count, rb->aux_mmap_count,
 * rb->refcount, rb->event_list). Code between two yields runs atomically; the pieces are the
 * reference's own functions (ringBufferAttach, calcLimits, perfMmapAccount, rbAllocAux,
 * rbFreeAux, perfMmapNewRb, doMunmap ...), so a path run without preemption does exactly what
 * the sequential reference does (test/reference/explore.test.ts checks it).
 *
 * Sources (kernel/events/core.c): 5.10.262 and 6.1.192 (Debian linux-source; 6.12.117 is the
 * same text here): perf_mmap() holds event->mmap_mutex throughout, and rb->aux_mutex on the AUX
 * path (2ab9d830262c, present in both Debian trees); perf_mmap_close() frees the AUX area under
 * rb->aux_mutex (atomic_dec_and_mutex_lock) and detaches with atomic_dec_and_test(&rb->mmap_count)
 * (f91072ed1b72); perf_event_set_output() takes both events' mmap_mutex (mutex_lock_double) and
 * re-checks rb->mmap_count (68e3c69803da); _free_event() detaches under event->mmap_mutex.
 * 7.2.13: perf_mmap()'s scoped_guard(mutex, &event->mmap_mutex) covers perf_mmap_rb()/
 * perf_mmap_aux() and map_range() (77de62ad3de3), perf_mmap_aux() takes guard(mutex)(&rb->aux_mutex),
 * map_range() takes guard(mutex)(&rb->aux_mutex) (5948aaf64f81); perf_mmap_close() drops
 * event->mmap_count before rb->mmap_count. The 6.18 profile is taken with the same locking
 * (NOTES-for-lead.md: whether 6.18.y carries 77de62ad3de3 and 5948aaf64f81 is not verified).
 * Munmap: mmap_write_lock, detach, mmap_write_downgrade, then the ->close() calls under the read
 * lock (5.10.262 __do_munmap(), 6.1.192 do_mas_align_munmap(), 7.2.13 vms_complete_munmap_vmas()).
 *
 * The seed profile's perf paths, mremap and mprotect run as one step each, holding every live
 * event's mmap_mutex (never inside another task's locked section; no interleaving inside them).
 */
import { showOp } from "../../spec/trace.ts";
import type { Op, Outcome } from "../../spec/program.ts";
import { SLOT_PAGES, handleIndex } from "../../spec/program.ts";
import { KernelOops, PerfEvent, REFCOUNT_SATURATED, Vma, VM_EXEC, VM_WRITE, type PerfBuffer } from "../objects.ts";
import { EBADF, EINVAL, EPERM, EBUSY, ENOENT, ENOMEM, OK, errno, isPow2, type Err } from "../common.ts";
import { closeFd, fput, perfMmapAuxMismatch, perfMmapClose, perfMmapNewRb, ringBufferAttach, fdInstall } from "../perf-core.ts";
import { perfMmap } from "../perf-mmap.ts";
import { mappedNrPages, perfMmapHasPage, perfMmapToPage, rbAllocAux, rbFreeAux, rbHasAux } from "../ring-buffer.ts";
import { calcLimits, perfMmapAccount, type Limits } from "../accounting.ts";
import { doMunmap, insertVma } from "../mm.ts";
import { exitFiles, otherUsersOfMm } from "../task.ts";
import { refInc } from "../refcount.ts";
import type { Kernel } from "../kernel.ts";
import type { Path, Req, Sched, Task, LockKind, LockObj } from "./sched.ts";

/** Options of an exploration that change the kernel's behaviour. */
export interface PathOptions {
  /** Overrides the era's perf_mmap_close() order (Era.closeEventFirst): true drops
   *  event->mmap_count before rb->mmap_count as 7.2.13 does. For tests that tell the rb-first
   *  order's own race (two closers of one event in two mms: the one that takes rb->mmap_count
   *  to 0 is not the one that takes the event's to 0, so nobody detaches or refunds) from others. */
  closeEventFirst?: boolean;
  /** Split perf_mmap()'s limit test from its charge (a step between them): the kernel reads
   *  user->locked_vm and vm_mm->pinned_vm and charges later under the event's mmap_mutex only
   *  (6.1.192 "accounting:" .. "unlock:", 7.2.13 perf_mmap_calc_limits() .. perf_mmap_account()),
   *  so two mmaps of different events by one user can both pass one limit test. Off by default
   *  (the step is atomic, which keeps the clean paths linearizable); NOTES-for-lead.md. */
  accountingRace?: boolean;
}

function* step(what: string): Path<void> {
  yield { kind: "step", what } as Req;
}

function* lock(lockKind: LockKind, obj: LockObj, what: string, write = true): Path<void> {
  yield { kind: "lock", lock: lockKind, obj, write, what } as Req;
}

function evName(e: PerfEvent): string {
  return e.handle;
}

// ---------------------------------------------------------------------------------------------
// Refcount operations with the explorer's sanity checks (problems), on top of the kernel's own
// refcount_t WARNs (k.warn, as reference/refcount.ts).

function refcountT(k: Kernel): boolean {
  return k.era.refcount;
}

/** atomic_dec_and_mutex_lock() / refcount_dec_and_mutex_lock(): decrement unless 1 (one
 *  atomic step); at 1, take the mutex, then decrement and test. True with the mutex held. */
function* decAndMutexLock(x: Sched, t: Task, get: () => number, set: (v: number) => void, lk: LockKind, obj: LockObj, what: string): Path<boolean> {
  const k = x.k;
  yield* step(`${what}: dec unless 1`);
  let v = get();
  if (refcountT(k)) {
    if (v === REFCOUNT_SATURATED) return false;
    if (v === 0) {
      k.warn(`WARNING: refcount_t: underflow; use-after-free (${what})`);
      x.problem(t, `decrement of ${what} at 0`);
      return false;
    }
  }
  if (v !== 1) {
    set(v - 1);
    if (v - 1 < 0) x.problem(t, `${what} below 0`);
    return false;
  }
  yield* lock(lk, obj, `${what} hit 1`);
  v = get();
  if (v === 1) { set(0); return true; }
  if (refcountT(k) && v <= 0) {
    k.warn(`WARNING: refcount_t: underflow; use-after-free (${what})`);
    x.problem(t, `decrement of ${what} at ${v}`);
  } else {
    set(v - 1);
    if (v - 1 < 0) x.problem(t, `${what} below 0`);
  }
  x.unlock(t, lk, obj);
  return false;
}

/** atomic_dec_and_test() / refcount_dec_and_test() of rb->mmap_count. */
function decAndTestRb(x: Sched, t: Task, rb: PerfBuffer): boolean {
  const k = x.k;
  const v = rb.mmapCount;
  if (refcountT(k)) {
    if (v === 1) { rb.mmapCount = 0; return true; }
    if (v <= 0) {
      k.warn("WARNING: refcount_t: underflow; use-after-free (rb->mmap_count)");
      x.problem(t, `decrement of rb->mmap_count at ${v}`);
      rb.mmapCount = REFCOUNT_SATURATED;
      return false;
    }
    rb.mmapCount = v - 1;
    return false;
  }
  rb.mmapCount = v - 1;
  if (v - 1 < 0) x.problem(t, "rb->mmap_count below 0");
  return v - 1 === 0;
}

/** atomic_inc_not_zero() / refcount_inc_not_zero() of rb->mmap_count. */
function incNotZeroRb(x: Sched, t: Task, rb: PerfBuffer): boolean {
  if (!rb.alive) x.problem(t, `use after free: rb ${rb.id} (rb->mmap_count)`);
  const v = rb.mmapCount;
  if (v === 0) return false;
  if (refcountT(x.k) && v < 0) {
    x.k.warn("WARNING: refcount_t: saturated; leaking memory (rb->mmap_count)");
    return true;
  }
  rb.mmapCount = v + 1;
  return true;
}

/** ring_buffer_get(): the event's rb, with a reference, or null. */
function rbGet(x: Sched, t: Task, event: PerfEvent): PerfBuffer | null {
  const rb = event.rb;
  if (!rb) return null;
  if (!rb.alive || rb.refcount <= 0) {
    if (!rb.alive) x.problem(t, `use after free: rb ${rb.id} reached through ${evName(event)}->rb`);
    return null;
  }
  rb.refcount++;
  return rb;
}

/** ring_buffer_put(). */
function rbPut(x: Sched, t: Task, rb: PerfBuffer): void {
  if (rb.refcount <= 0 || !rb.alive) x.problem(t, `double free: ring_buffer_put() of rb ${rb.id} at refcount ${rb.refcount}`);
  rb.refcount--;
  if (rb.refcount === 0) rb.alive = false;
}

/** ring_buffer_attach() with the checks: the old buffer's reference dropped by rbPut. */
function attach(x: Sched, t: Task, event: PerfEvent, rb: PerfBuffer | null): void {
  const old = event.rb;
  if (old && (old.refcount <= 0 || !old.alive)) x.problem(t, `double free: ring_buffer_attach() drops rb ${old.id} at refcount ${old.refcount}`);
  if (rb && !rb.alive) x.problem(t, `use after free: ring_buffer_attach() of freed rb ${rb.id}`);
  ringBufferAttach(x.k, event, rb);
}

// ---------------------------------------------------------------------------------------------
// perf_mmap_close()

/** Every live event's mmap_mutex, in handle order (mutex_lock_double()'s order): what an
 *  op run as one step takes so that it never runs inside another task's locked section. */
function* lockAllEvents(x: Sched): Path<PerfEvent[]> {
  const evs = x.k.eventOrder.filter((e) => !e.released).sort((a, b) => handleIndex(a.handle) - handleIndex(b.handle));
  for (const e of evs) yield* lock("mmap_mutex", e, `one-step op: ${evName(e)}`);
  return evs;
}

function unlockAll(x: Sched, t: Task, evs: PerfEvent[]): void {
  for (const e of evs) x.unlock(t, "mmap_mutex", e);
}

export function* perfMmapCloseG(x: Sched, t: Task, vma: Vma): Path<void> {
  const k = x.k;
  const event = vma.event!;
  if (k.era.perf === "seed") {
    const evs = yield* lockAllEvents(x);
    perfMmapClose(k, vma);
    unlockAll(x, t, evs);
    return;
  }
  yield* step(`perf_mmap_close(${evName(event)}): ring_buffer_get`);
  const rb = rbGet(x, t, event);
  if (!rb) throw new KernelOops("BUG: kernel NULL pointer dereference in perf_mmap_close (ring_buffer_get() returned NULL)");
  const mmapUser = rb.mmapUser!;
  const mm = vma.vmMm;
  const mmapLocked = rb.mmapLocked;
  const size = rb.nrPages;

  if (rbHasAux(rb) && vma.pgoff === rb.auxPgoff) {
    // 2ab9d830262c: rb->aux_mutex; before it (race-aux-serialization) the closing event's mmap_mutex.
    const [lk, obj]: [LockKind, LockObj] = k.bug.raceAuxSerialization ? ["mmap_mutex", event] : ["aux_mutex", rb];
    if (yield* decAndMutexLock(x, t, () => rb.auxMmapCount, (v) => { rb.auxMmapCount = v; }, lk, obj, "rb->aux_mmap_count")) {
      if (k.bug.auxMlockRefund) {
        if (!rb.auxMmapLocked) mmapUser.lockedVm -= rb.auxNrPages;
        else mm.pinnedVm -= rb.auxMmapLocked;
      } else {
        mmapUser.lockedVm -= rb.auxNrPages - rb.auxMmapLocked;
        mm.pinnedVm -= rb.auxMmapLocked;
      }
      if (!rb.auxPriv && rb.auxNrPages === 0) x.problem(t, `double free: rb_free_aux() of rb ${rb.id} without an AUX area`);
      rbFreeAux(k, rb);
      if (rb.auxRefcount !== 0) k.warn("WARNING: perf_mmap_close: WARN_ON_ONCE(refcount_read(&rb->aux_refcount))");
      x.unlock(t, lk, obj);
    }
  }

  let detachRest = false;
  if (x.opts.closeEventFirst ?? k.era.closeEventFirst) {
    // 7.2.13: event->mmap_count first, then rb->mmap_count.
    if (yield* decAndMutexLock(x, t, () => event.mmapCount, (v) => { event.mmapCount = v; }, "mmap_mutex", event, `${evName(event)}->mmap_count`)) {
      attach(x, t, event, null);
      x.unlock(t, "mmap_mutex", event);
    }
    yield* step("refcount_dec_and_test(rb->mmap_count)");
    if (k.bug.raceCloseClose) {
      // before f91072ed1b72: atomic_dec(), then a separate read
      rb.mmapCount--;
      if (rb.mmapCount < 0) x.problem(t, "rb->mmap_count below 0");
      yield* step("atomic_read(rb->mmap_count)");
      detachRest = rb.mmapCount === 0;
    } else {
      detachRest = decAndTestRb(x, t, rb);
    }
    if (!detachRest) { yield* step("ring_buffer_put"); rbPut(x, t, rb); return; }
  } else {
    yield* step("atomic_dec_and_test(rb->mmap_count)");
    if (k.bug.raceCloseClose) {
      rb.mmapCount--; // before f91072ed1b72: atomic_dec(&rb->mmap_count)
      if (rb.mmapCount < 0) x.problem(t, "rb->mmap_count below 0");
    } else {
      detachRest = decAndTestRb(x, t, rb);
    }
    if (!(yield* decAndMutexLock(x, t, () => event.mmapCount, (v) => { event.mmapCount = v; }, "mmap_mutex", event, `${evName(event)}->mmap_count`))) {
      yield* step("ring_buffer_put");
      rbPut(x, t, rb);
      return;
    }
    attach(x, t, event, null);
    x.unlock(t, "mmap_mutex", event);
    if (k.bug.raceCloseClose) {
      // "If there's still other mmap()s of this buffer, we're done." if (atomic_read(&rb->mmap_count)) goto out_put;
      yield* step("atomic_read(rb->mmap_count)");
      detachRest = rb.mmapCount === 0;
    }
    if (!detachRest) { yield* step("ring_buffer_put"); rbPut(x, t, rb); return; }
  }

  // again: detach every other event redirecting into the now unreachable buffer.
  for (let iter = 0; ; iter++) {
    if (iter > 16) { x.problem(t, "livelock: perf_mmap_close() `goto again` keeps finding events"); break; }
    yield* step("perf_mmap_close: walk rb->event_list");
    // atomic_long_inc_not_zero(&event->refcount): an event en route to free_event() is skipped.
    const other: PerfEvent | undefined = rb.eventList.find((e) => !e.released);
    if (!other) break;
    yield* lock("mmap_mutex", other, `detach ${evName(other)}`);
    if (other.rb === rb) attach(x, t, other, null);
    x.unlock(t, "mmap_mutex", other);
  }
  yield* step("perf_mmap_close: unaccount");
  if (rb.mmapUser !== mmapUser) x.problem(t, "rb->mmap_user changed under perf_mmap_close");
  mmapUser.lockedVm -= size + 1 - mmapLocked;
  mm.pinnedVm -= mmapLocked;
  yield* step("ring_buffer_put");
  rbPut(x, t, rb);
}

// ---------------------------------------------------------------------------------------------
// perf_mmap()

/** perf_mmap() of 5.10.262 / 6.1.192 / 6.12.117 (perf-mmap-61.ts), with its locks. */
function* perfMmap61G(x: Sched, t: Task, vma: Vma, event: PerfEvent): Path<Err> {
  const k = x.k;
  const vmaPages = vma.end - vma.start;
  let rb: PerfBuffer | null = null;
  let ret: Err = null;
  let nrPages: number;
  let lim: Limits | null = null;
  let auxLocked: PerfBuffer | null = null;
  const auxEarly = k.era.auxMmapCountEarly || k.bug.auxRefcountLeak;
  unlock: {
    if (vma.pgoff === 0) {
      nrPages = vmaPages - 1;
      if (nrPages !== 0 && !isPow2(nrPages)) return EINVAL;
      for (let iter = 0; ; iter++) {
        if (iter > 8) { x.problem(t, "livelock: perf_mmap() `goto again` does not make progress"); return EINVAL; }
        yield* lock("mmap_mutex", event, `perf_mmap(${evName(event)})`);
        if (!event.rb) break;
        if (mappedNrPages(k, event.rb) !== nrPages) { ret = EINVAL; break unlock; }
        yield* step("atomic_inc_not_zero(rb->mmap_count)");
        if (!incNotZeroRb(x, t, event.rb)) {
          // Raced against perf_mmap_close(); remove the event and try again.
          attach(x, t, event, null);
          x.unlock(t, "mmap_mutex", event);
          continue;
        }
        break unlock;
      }
      lim = null;
    } else {
      if (!event.rb) return EINVAL;
      nrPages = vmaPages;
      yield* lock("mmap_mutex", event, `perf_mmap(${evName(event)}) AUX`);
      rb = event.rb;
      if (!rb) { ret = EINVAL; break unlock; }
      if (!k.bug.raceAuxSerialization) {
        yield* lock("aux_mutex", rb, `perf_mmap AUX rb ${rb.id}`);
        auxLocked = rb;
      }
      if (perfMmapAuxMismatch(rb, vma.pgoff, nrPages)) { ret = EINVAL; rb = null; break unlock; }
      yield* step("atomic_inc_not_zero(rb->mmap_count)");
      if (!incNotZeroRb(x, t, rb)) { ret = EINVAL; rb = null; break unlock; }
      if (rbHasAux(rb)) {
        rb.auxMmapCount++;
        break unlock;
      }
      if (auxEarly) rb.auxMmapCount = 1;
    }
    yield* step("perf_mmap: accounting");
    lim = calcLimits(k, vma, vma.pgoff === 0 ? nrPages + 1 : nrPages);
    if (lim.eperm) { ret = EPERM; break unlock; }
    if (x.opts.accountingRace) yield* step("perf_mmap: charge (after the limit test)");
    const writable = (vma.prot & VM_WRITE) !== 0;
    if (!rb) {
      rb = perfMmapNewRb(k, event, nrPages, writable, lim.extra);
    } else {
      if (rbHasAux(rb) || rb.auxPriv) x.problem(t, `rb_alloc_aux() over the live AUX area of rb ${rb.id}`);
      ret = rbAllocAux(k, rb, event, vma.pgoff, nrPages, writable);
      if (!ret) {
        if (!auxEarly) rb.auxMmapCount = 1;
        rb.auxMmapLocked = lim.extra;
      }
    }
  }
  if (!ret) {
    if (lim && !lim.eperm) perfMmapAccount(k, vma, lim.userExtra, lim.extra);
    event.mmapCount++;
  } else if (rb && vma.pgoff !== 0) {
    rb.mmapCount--; // AUX allocation failed
  }
  if (auxLocked) x.unlock(t, "aux_mutex", auxLocked);
  x.unlock(t, "mmap_mutex", event);
  return ret;
}

/** perf_mmap() of 6.15+ as in 6.18 / 7.2.13 (perf-mmap-618.ts), with its locks. */
function* perfMmap618G(x: Sched, t: Task, vma: Vma, event: PerfEvent, opts: PathOptions): Path<Err> {
  const k = x.k;
  const vmaPages = vma.end - vma.start;
  yield* lock("mmap_mutex", event, `perf_mmap(${evName(event)})`);
  let evLocked = true;
  const unlockEv = () => { if (evLocked) { x.unlock(t, "mmap_mutex", event); evLocked = false; } };
  let auxFailed = false;
  if (vma.pgoff === 0) {
    const e = yield* perfMmapRbG(x, t, vma, event, vmaPages);
    if (e) { unlockEv(); return e; }
  } else {
    const r = yield* perfMmapAuxG(x, t, vma, event, vmaPages);
    if (r === "aux-failed") auxFailed = true;
    else if (r) { unlockEv(); return r; }
  }
  // before 77de62ad3de3 (race-mmap-unlocked-map-range): the scoped_guard ended here
  if (k.bug.raceMmapUnlockedMapRange) unlockEv();
  const rb = event.rb;
  if (!rb) throw new KernelOops("BUG: kernel NULL pointer dereference in map_range (event->rb is NULL)");
  // map_range(): 5948aaf64f81 takes rb->aux_mutex (race-map-range-aux: not before it)
  const auxLock = !k.bug.raceMapRangeAux;
  if (auxLock) yield* lock("aux_mutex", rb, `map_range rb ${rb.id}`);
  else yield* step("map_range");
  let mapErr: Err = null;
  const auxPages = vma.pgoff !== 0 && rbHasAux(rb);
  const frees = k.auxFrees;
  // the mapRangeFault switch (perf-mmap-618.ts): consumed in step order, by whichever task's
  // map_range() runs first
  if (k.mapRangeFault > 0) {
    k.mapRangeFault--;
    mapErr = ENOMEM;
  }
  for (let p = 0; p < vmaPages && !mapErr; p++) {
    if (!perfMmapHasPage(rb, vma.pgoff + p)) mapErr = EINVAL;
  }
  if (!mapErr && auxPages) {
    // the pages were looked up (perf_mmap_to_page()); remap_pfn_range() maps them
    yield* step("map_range: remap_pfn_range(AUX pages)");
    if (k.auxFrees !== frees && !rbHasAux(rb)) {
      x.problem(t, `use after free: map_range() mapped AUX pages of rb ${rb.id} that rb_free_aux() freed meanwhile`);
    }
  }
  if (auxLock) x.unlock(t, "aux_mutex", rb);
  if (mapErr || auxFailed) {
    if (!k.bug.auxAllocResult) {
      if (evLocked && event.mmapCount === 1) {
        // 7.2.13: "Minimal perf_mmap_close(); there can't be AUX or other events on account of
        // this being the first."
        yield* step("perf_mmap: minimal close");
        const r = event.rb!;
        r.mmapUser!.lockedVm -= r.nrPages + 1 - r.mmapLocked;
        vma.vmMm.pinnedVm -= r.mmapLocked;
        attach(x, t, event, null);
        event.mmapCount = 0;
        unlockEv();
      } else {
        unlockEv();
        yield* perfMmapCloseG(x, t, vma);
      }
    } else {
      unlockEv();
    }
    return mapErr ?? EINVAL;
  }
  unlockEv();
  vma.prepopulated = true;
  vma.preUser = vma.pgoff === 0 ? (perfMmapToPage(rb, 0) || null) : null;
  return null;
}

function* perfMmapRbG(x: Sched, t: Task, vma: Vma, event: PerfEvent, nrPagesVma: number): Path<Err> {
  const k = x.k;
  const userExtra = nrPagesVma;
  const nrPages = nrPagesVma - 1;
  if (nrPages !== 0 && !isPow2(nrPages)) return EINVAL;
  if (event.rb) {
    const rb = event.rb;
    if (mappedNrPages(k, rb) !== nrPages) return EINVAL;
    if (k.era.ebusy && !k.bug.setOutputMmap && event.mmapCount === 0) return EBUSY;
    yield* step("refcount_inc_not_zero(rb->mmap_count)");
    if (incNotZeroRb(x, t, rb)) {
      if (k.era.remapCharge) perfMmapAccount(k, vma, userExtra, 0);
      event.mmapCount = refInc(k, event.mmapCount, "event->mmap_count");
      return null;
    }
    attach(x, t, event, null); // raced against perf_mmap_close()
  }
  yield* step("perf_mmap_rb: accounting");
  const lim = calcLimits(k, vma, userExtra);
  if (lim.eperm) return EPERM;
  if (x.opts.accountingRace) yield* step("perf_mmap_rb: charge (after perf_mmap_calc_limits)");
  perfMmapNewRb(k, event, nrPages, (vma.prot & VM_WRITE) !== 0, lim.extra);
  perfMmapAccount(k, vma, lim.userExtra, lim.extra);
  event.mmapCount = 1;
  return null;
}

function* perfMmapAuxG(x: Sched, t: Task, vma: Vma, event: PerfEvent, nrPages: number): Path<Err | "aux-failed"> {
  const k = x.k;
  let userExtra = nrPages;
  let extra = 0;
  const rb = event.rb;
  if (!rb) return EINVAL;
  const locked = !k.bug.raceAuxSerialization;
  if (locked) yield* lock("aux_mutex", rb, `perf_mmap_aux rb ${rb.id}`);
  const done = <T>(v: T): T => { if (locked) x.unlock(t, "aux_mutex", rb); return v; };
  if (perfMmapAuxMismatch(rb, vma.pgoff, nrPages)) return done(EINVAL);
  yield* step("refcount_inc_not_zero(rb->mmap_count)");
  if (!incNotZeroRb(x, t, rb)) return done(EINVAL);
  let failed = false;
  if (rbHasAux(rb)) {
    rb.auxMmapCount = refInc(k, rb.auxMmapCount, "rb->aux_mmap_count");
    if (!k.era.remapCharge) userExtra = 0;
  } else {
    if (k.bug.auxRefcountLeak) rb.auxMmapCount = 1;
    yield* step("perf_mmap_aux: accounting");
    const lim = calcLimits(k, vma, userExtra);
    if (lim.eperm) {
      rb.mmapCount -= 1;
      return done(EPERM);
    }
    userExtra = lim.userExtra;
    extra = lim.extra;
    if (x.opts.accountingRace) yield* step("perf_mmap_aux: charge (after perf_mmap_calc_limits)");
    if (rbHasAux(rb) || rb.auxPriv) x.problem(t, `rb_alloc_aux() over the live AUX area of rb ${rb.id}`);
    const r = rbAllocAux(k, rb, event, vma.pgoff, nrPages, (vma.prot & VM_WRITE) !== 0);
    if (r) {
      if (!k.bug.auxAllocResult) {
        rb.mmapCount -= 1;
        return done(r);
      }
      failed = true;
    } else {
      rb.auxMmapCount = 1;
      rb.auxMmapLocked = extra;
    }
  }
  perfMmapAccount(k, vma, userExtra, extra);
  event.mmapCount = refInc(k, event.mmapCount, "event->mmap_count");
  return done(failed ? "aux-failed" : null);
}

// ---------------------------------------------------------------------------------------------
// The syscalls of a par block

/** mmap(2) of a perf fd (perf-mmap.ts sysMmap) under current->mm's mmap_lock. */
function* sysMmapG(x: Sched, t: Task, op: Extract<Op, { op: "mmap" }>, opts: PathOptions): Path<Outcome> {
  const k = x.k;
  const mm = t.ts.mm!;
  yield* lock("mmap_lock", mm, "mmap");
  const out = yield* (function* (): Path<Outcome> {
    const slotA = handleIndex(op.map) * 2 * SLOT_PAGES;
    k.maps.set(op.map, { slotA, base: slotA, pages: op.pages, proc: t.ts.pid });
    const event = k.liveEvent(op.ev);
    if (!event) return errno(EBADF);
    if (op.pages === 0) return errno(EINVAL);
    const prot = op.prot === "none" ? 0 : op.prot === "r" ? 1 : op.prot === "rw" ? 3 : op.prot === "rx" ? 5 : 7;
    if (k.era.noexec && (prot & VM_EXEC)) return errno(EPERM);
    const shared = op.shared !== false;
    const vma = new Vma(slotA, slotA + op.pages, op.pgoff, prot, !k.era.noexec, shared, event, mm);
    let e: Err;
    if ((event.cpu === -1 && event.inherit) || !vma.shared) {
      e = perfMmap(k, vma); // refused before any lock
    } else if (k.era.perf === "seed") {
      const evs = yield* lockAllEvents(x);
      e = perfMmap(k, vma);
      unlockAll(x, t, evs);
    } else if (k.era.perf === "v6.1") {
      e = yield* perfMmap61G(x, t, vma, event);
    } else {
      e = yield* perfMmap618G(x, t, vma, event, opts);
    }
    if (e) return errno(e);
    insertVma(k, vma);
    event.vmaRefs++;
    return OK;
  })();
  x.unlock(t, "mmap_lock", mm);
  return out;
}

/** munmap(2): detach under the write lock, downgrade, ->close() each VMA, fput. */
function* sysMunmapG(x: Sched, t: Task, op: Extract<Op, { op: "munmap" }>): Path<Outcome> {
  const k = x.k;
  const mm = t.ts.mm!;
  yield* lock("mmap_lock", mm, "munmap");
  const m = k.mapHandle(op.map);
  const gone: Vma[] = [];
  const e = doMunmap(k, m.base + (op.offset ?? 0), op.pages ?? m.pages, gone);
  if (e) { x.unlock(t, "mmap_lock", mm); return errno(e); }
  x.downgrade(t, mm);
  for (const v of gone) {
    if (!v.event) continue;
    yield* perfMmapCloseG(x, t, v);
    fput(k, v.event);
  }
  x.unlock(t, "mmap_lock", mm);
  return OK;
}

/** do_exit(): a task with other live tasks in its process only leaves; the last runs
 *  exit_mmap() (each VMA's ->close()) and exit_files(). */
function* doExitG(x: Sched, t: Task): Path<Outcome> {
  const k = x.k;
  const task = t.ts;
  if (task === k.init) throw new Error("p0 cannot exit (invalid program)");
  task.alive = false;
  if (otherUsersOfMm(k, task)) {
    task.mm = null;
    task.files = null;
    return OK;
  }
  const mm = task.mm!;
  const vmas = mm.vmas.slice();
  mm.vmas.length = 0;
  mm.ptes.clear();
  for (const v of vmas) {
    if (!v.event) continue;
    yield* perfMmapCloseG(x, t, v);
    fput(k, v.event);
  }
  task.mm = null;
  yield* step("exit_files");
  exitFiles(k, task);
  return OK;
}

/** perf_event_set_output() (perf-core.ts perfEventSetOutput), with mutex_lock_double() of both
 *  events' mmap_mutex (68e3c69803da; race-setoutput-close: the event's only, no re-check). */
function* perfEventSetOutputG(x: Sched, t: Task, event: PerfEvent, output: PerfEvent | null): Path<Err> {
  const k = x.k;
  const both = output !== null && !k.bug.raceSetoutputClose;
  if (output) {
    if (event === output) return EINVAL;
    if (output.cpu !== event.cpu) return EINVAL;
    if (output.cpu === -1 && output.target !== event.target) return EINVAL;
  }
  // mutex_lock_double(): the lower address first (here: the lower handle)
  const locks: PerfEvent[] = both ? [event, output!].sort((a, b) => handleIndex(a.handle) - handleIndex(b.handle)) : [event];
  for (const l of locks) yield* lock("mmap_mutex", l, `set_output ${evName(l)}`);
  const done = (r: Err): Err => { for (const l of locks) x.unlock(t, "mmap_mutex", l); return r; };
  if (event.mmapCount !== 0) return done(EINVAL);
  let rb: PerfBuffer | null = null;
  if (output) {
    yield* step("set_output: ring_buffer_get(output)");
    rb = rbGet(x, t, output);
    if (!rb) return done(EINVAL);
    if (k.era.setOutputMmapCheck && !k.bug.raceSetoutputClose && rb.mmapCount === 0) {
      rbPut(x, t, rb);
      return done(EINVAL);
    }
    yield* step("set_output: ring_buffer_attach");
  }
  attach(x, t, event, rb);
  return done(null);
}

function* sysSetOutputG(x: Sched, t: Task, h: string, target: string | null): Path<Outcome> {
  const k = x.k;
  const e = k.liveEvent(h);
  if (!e) return errno(EBADF);
  let out: PerfEvent | null = null;
  if (target !== null) {
    out = k.liveEvent(target);
    if (!out) return errno(EBADF);
  }
  const r = yield* perfEventSetOutputG(x, t, e, out);
  return r ? errno(r) : OK;
}

/** perf_event_open() with a group_fd (perf-core.ts sysPerfEventOpen): its checks, then
 *  perf_event_set_output() with its locks. */
function* sysOpenG(x: Sched, t: Task, op: Extract<Op, { op: "open" }>): Path<Outcome> {
  const k = x.k;
  const leader = op.outputTo !== undefined ? k.liveEvent(op.outputTo) : null;
  if (!leader || k.era.perf === "seed") return k.syscallBody(op);
  const cpu = op.cpu ?? -1;
  const inherit = op.inherit === true;
  if (leader.inherit !== inherit) return errno(EINVAL);
  if (cpu >= k.config.cpus) return errno(EINVAL);
  if (op.pmu === "aux" && k.config.pmus.aux === null) return errno(ENOENT);
  const event = new PerfEvent(op.ev, op.pmu === "aux", cpu, inherit, k.current);
  if (leader.groupLeader !== leader) return errno(EINVAL);
  if (leader.cpu !== cpu) return errno(EINVAL);
  if (leader.target !== event.target) return errno(EINVAL);
  const e = yield* perfEventSetOutputG(x, t, event, leader);
  if (e) return errno(e);
  event.groupLeader = leader;
  k.events.set(op.ev, event);
  k.eventOrder.push(event);
  fdInstall(k.current.files!, op.ev, event);
  return OK;
}

/** perf_release() -> perf_event_release_kernel() -> _free_event(): detach under mmap_mutex. */
export function* perfReleaseG(x: Sched, t: Task, e: PerfEvent): Path<void> {
  const k = x.k;
  if (e.released) return;
  yield* step(`perf_release(${evName(e)})`);
  if (e.released) return;
  e.released = true;
  if (e.groupLeader === e) {
    for (const o of k.eventOrder) if (o !== e && o.groupLeader === e) o.groupLeader = o;
  }
  if (e.rb) {
    yield* lock("mmap_mutex", e, `_free_event ${evName(e)}`);
    if (e.rb) attach(x, t, e, null);
    x.unlock(t, "mmap_mutex", e);
  }
}

/** One op of a par block, as a path. */
export function* opPath(x: Sched, t: Task, op: Op, opts: PathOptions): Path<Outcome> {
  const k = x.k;
  yield* step(`enter ${showOp(op)}`);
  let r: Outcome;
  switch (op.op) {
    case "mmap": r = yield* sysMmapG(x, t, op, opts); break;
    case "munmap": r = yield* sysMunmapG(x, t, op); break;
    case "setOutput": r = yield* sysSetOutputG(x, t, op.ev, op.target); break;
    case "open": r = yield* sysOpenG(x, t, op); break;
    case "exit": r = yield* doExitG(x, t); break;
    case "close": {
      const e = k.liveEvent(op.ev);
      if (!e) { r = errno(EBADF); break; }
      closeFd(k, k.current.files!, op.ev, e);
      r = OK;
      break;
    }
    case "mremap": case "mprotect": {
      // One step under the mm's mmap_lock and every event's mmap_mutex (their
      // perf_mmap_open()/perf_mmap_close() calls, on a split or a move, are not split into steps).
      const mm = t.ts.mm!;
      yield* lock("mmap_lock", mm, op.op);
      const evs = yield* lockAllEvents(x);
      r = k.syscallBody(op);
      unlockAll(x, t, evs);
      x.unlock(t, "mmap_lock", mm);
      break;
    }
    default:
      // sendFd (fd tables only); the rest cannot be in a block (programProblems)
      r = k.syscallBody(op);
  }
  // __fput() of the files whose last reference went (task_work on the return to user space)
  while (t.pending.length) {
    const e = t.pending.shift()!;
    yield* perfReleaseG(x, t, e);
  }
  return r;
}
