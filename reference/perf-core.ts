/**
 * perf core (kernel/events/core.c): perf_event_open(2), close(2) and perf_release(),
 * PERF_EVENT_IOC_SET_OUTPUT / perf_event_set_output(), ring_buffer_attach/get/put, and the
 * AUX-area checks perf_mmap() makes in every era, and the perf_mmap_vmops .open/.close
 * (perf_mmap_open(), perf_mmap_close()).
 */
import type { Op, Outcome } from "../spec/program.ts";
import { KernelOops, PAGE_SIZE, PerfBuffer, PerfEvent, Vma, type FilesStruct } from "./objects.ts";
import { OK, errno, EINVAL, EBADF, ENOENT, ENODEV, isPow2, type Err } from "./common.ts";
import { refInc, refDecAndTest, refDecAndLock } from "./refcount.ts";
import { rbAlloc, rbHasAux, rbFreeAux } from "./ring-buffer.ts";
import type { Kernel } from "./kernel.ts";

// =============================================================================================
// perf_event_open(2) (kernel/events/core.c, SYSCALL_DEFINE5(perf_event_open); 6.1.192 and
// v3.18 agree on every check reached here). pid = 0, group_fd = outputTo's fd or -1,
// flags = PERF_FLAG_FD_OUTPUT when outputTo is given.

export function sysPerfEventOpen(k: Kernel, op: Extract<Op, { op: "open" }>): Outcome {
  const cpu = op.cpu ?? -1;
  const inherit = op.inherit === true;
  // group_fd -1 for a dead handle: no group and no output redirection (spec/program.ts).
  const leader = op.outputTo !== undefined ? k.liveEvent(op.outputTo) : null;
  // 6.12+: "if (group_leader->state <= PERF_EVENT_STATE_EXIT) err = -ENODEV" right after the
  // group fd lookup; perf_event_exit_task() put the leader in EXIT when its task exited
  // (exit_mm() dropped its mm). The reference never swaps contexts (the spec allows that too).
  if (leader && k.era.leaderExitEnodev && leader.target.mm === null) return errno(ENODEV);
  // "if (task && group_leader && group_leader->attr.inherit != attr.inherit) -> EINVAL"
  if (leader && leader.inherit !== inherit) return errno(EINVAL);
  // perf_event_alloc(): (unsigned)cpu >= nr_cpu_ids -> EINVAL (nr_cpu_ids = cpus here)
  if (cpu >= k.config.cpus) return errno(EINVAL);
  // perf_init_event(): no PMU of that type -> ENOENT
  if (op.pmu === "aux" && k.config.pmus.aux === null) return errno(ENOENT);
  // pid 0: find_lively_task_by_vpid(0) is current; event->hw.target = current
  const event = new PerfEvent(op.ev, op.pmu === "aux", cpu, inherit, k.current);
  if (leader) {
    // "Do not allow a recursive hierarchy": the group_fd event must lead its group.
    if (leader.groupLeader !== leader) return errno(EINVAL);
    // 6.1: group_leader->cpu != event->cpu -> EINVAL (v3.18: same ctx check passes, then
    // perf_event_set_output() refuses the cross-cpu buffer with EINVAL too).
    if (leader.cpu !== cpu) return errno(EINVAL);
    // "Make sure we're both on the same task, or both per-CPU events": 5.10.262 / 6.1.192
    // `group_leader->ctx->task != ctx->task`, 7.2.13 `group_leader->ctx != ctx` (one context
    // per task since 6.2), the seed (v3.18) `group_leader->ctx != ctx`: EINVAL for a leader
    // opened by another task, whatever the cpu (checked before perf_event_set_output()).
    if (leader.target !== event.target) return errno(EINVAL);
    const e = perfEventSetOutput(k, event, leader);
    if (e) return errno(e); // free_event(): the new event never got a buffer
    event.groupLeader = leader;
  }
  k.events.set(op.ev, event);
  k.eventOrder.push(event);
  fdInstall(k.current.files!, op.ev, event);
  return OK;
}

/** fd_install(): the task's fd table now holds the event's file (one fd per handle; the
 *  event was created with fdRefs 1 for its opener's fd). */
export function fdInstall(files: FilesStruct, h: string, e: PerfEvent): void {
  files.fdt.set(h, e);
}

/** close(2) in current: the fd goes; the event lives on while another fd or a VMA holds its
 *  file (perf_release later). */
export function sysClose(k: Kernel, h: string): Outcome {
  const e = k.liveEvent(h);
  if (!e) return errno(EBADF);
  closeFd(k, k.current.files!, h, e);
  return OK;
}

/** filp_close() of the fd for handle h in `files` (close(2), exit_files() -> close_files()). */
export function closeFd(k: Kernel, files: FilesStruct, h: string, e: PerfEvent): void {
  files.fdt.delete(h);
  e.fdRefs--;
  if (e.fdRefs === 0 && e.vmaRefs === 0) k.pendingRelease.push(e);
}

/** fput() of a VMA's vm_file (remove_vma()). */
export function fput(k: Kernel, e: PerfEvent): void {
  e.vmaRefs--;
  if (e.vmaRefs === 0 && e.fdRefs === 0) k.pendingRelease.push(e);
}

export function runPendingReleases(k: Kernel): void {
  while (k.pendingRelease.length) {
    const e = k.pendingRelease.shift()!;
    if (!e.released) perfEventReleaseKernel(k, e);
  }
}

/** perf_release() -> perf_event_release_kernel() -> perf_remove_from_context(DETACH_GROUP)
 *  and _free_event(): siblings become singletons; "if (event->rb) ring_buffer_attach(event, NULL)". */
export function perfEventReleaseKernel(k: Kernel, e: PerfEvent): void {
  e.released = true;
  if (e.groupLeader === e) {
    for (const x of k.eventOrder) if (x !== e && x.groupLeader === e) x.groupLeader = x;
  }
  if (e.rb) ringBufferAttach(k, e, null);
}

// =============================================================================================
// ioctl(PERF_EVENT_IOC_SET_OUTPUT) and perf_event_set_output() (6.1.192 core.c; seed: v3.18
// plus the v8 patch's has_aux() check).

/** ioctl(fd, PERF_EVENT_IOC_SET_OUTPUT, target fd): both fds in current's fd table. */
export function sysSetOutput(k: Kernel, h: string, target: string | null): Outcome {
  const e = k.liveEvent(h);
  if (!e) return errno(EBADF);
  let out: PerfEvent | null = null;
  if (target !== null) {
    out = k.liveEvent(target);
    if (!out) return errno(EBADF); // the C int -1 arrives as 0xffffffff: perf_fget_light() -> EBADF
  }
  const r = perfEventSetOutput(k, e, out);
  return r ? errno(r) : OK;
}

export function perfEventSetOutput(k: Kernel, event: PerfEvent, output: PerfEvent | null): Err {
  if (output) {
    // don't allow circular references
    if (event === output) return EINVAL;
    // Don't allow cross-cpu buffers
    if (output.cpu !== event.cpu) return EINVAL;
    // If its not a per-cpu rb, it must be the same task: 5.10.262, 6.1.192, 7.2.13 (and 6.12,
    // 6.18 between them) `output_event->cpu == -1 && output_event->hw.target !=
    // event->hw.target`, right after the cross-cpu check and before the clock,
    // write_backward, AUX-PMU and mmap_count checks (all EINVAL); the seed (v3.18)
    // `output_event->ctx != event->ctx` (the same here: one task context per task for the
    // software and the test PMU, both perf_sw_context). hw.target since 24d3ae2f37d8 "perf/core:
    // Fix the same task check in perf_event_set_output" (v6.3; 5.10.178, so in both 5.10 profiles).
    if (output.cpu === -1 && output.target !== event.target) return EINVAL;
    // (same clock; no write_backward)
    // If both events generate aux data, they must be on the same PMU (one AUX PMU here).
  }
  // Can't redirect output if we've got an active mmap()
  if (event.mmapCount !== 0) return EINVAL;
  let rb: PerfBuffer | null = null;
  if (output) {
    rb = ringBufferGet(k, output);
    if (!rb) return EINVAL;
    // did we race against perf_mmap_close() (6.x; not in v3.18)
    if (k.era.setOutputMmapCheck && rb.mmapCount === 0) {
      ringBufferPut(k, rb);
      return EINVAL;
    }
  }
  ringBufferAttach(k, event, rb);
  return null;
}

// =============================================================================================
// Ring buffers (kernel/events/core.c ring_buffer_attach/get/put, ring_buffer.c)

/** ring_buffer_attach(): moves the event between rb->event_list's; takes over the caller's
 *  reference on rb and drops the one it held on the old buffer. */
export function ringBufferAttach(k: Kernel, event: PerfEvent, rb: PerfBuffer | null): void {
  const old = event.rb;
  if (old) {
    const i = old.eventList.indexOf(event);
    if (i >= 0) old.eventList.splice(i, 1);
  }
  if (rb) rb.eventList.push(event);
  event.rb = rb;
  if (old) ringBufferPut(k, old);
}

export function ringBufferGet(k: Kernel, event: PerfEvent): PerfBuffer | null {
  const rb = event.rb;
  if (!rb || rb.refcount <= 0) return null;
  rb.refcount++;
  return rb;
}

/** ring_buffer_put(): the last reference frees the buffer (rb_free_rcu -> rb_free). rb_free()
 *  does not touch the AUX area: one still allocated here is leaked (free_aux never runs). */
export function ringBufferPut(k: Kernel, rb: PerfBuffer): void {
  rb.refcount--;
  if (rb.refcount === 0) rb.alive = false;
}

/** perf_mmap()'s new data buffer, the same in every era: rb_alloc(), mmap_count 1
 *  (atomic_set / refcount_set), rb->mmap_locked = extra, ring_buffer_attach(event, rb). */
export function perfMmapNewRb(k: Kernel, event: PerfEvent, nrPages: number, writable: boolean, extra: number): PerfBuffer {
  const rb = rbAlloc(k, nrPages, writable);
  rb.mmapCount = 1;
  // rb->mmap_user = get_current_user() (perf_mmap() 5.10.262 / 6.1.192 and the seed;
  // ring_buffer_init() in 7.2.13)
  rb.mmapUser = k.current.user;
  rb.mmapLocked = extra;
  ringBufferAttach(k, event, rb);
  return rb;
}

// =============================================================================================
// perf_mmap(): the AUX area's checks, the same in every era (v3.18 + v8 patch, 6.1, 6.12, and
// 6.18's perf_mmap_aux()): aux_offset and aux_size in the user page against the VMA, an AUX
// area already there against its offset and size, a power-of-two size.

/** True when perf_mmap() refuses an AUX mapping of nrPages at pgoff with EINVAL before it
 *  takes any reference. */
export function perfMmapAuxMismatch(rb: PerfBuffer, pgoff: number, nrPages: number): boolean {
  const up = rb.userPage;
  if (up.auxOffset < rb.nrPages * PAGE_SIZE + PAGE_SIZE) return true;
  if (up.auxOffset !== pgoff * PAGE_SIZE) return true;
  if (rbHasAux(rb) && rb.auxPgoff !== pgoff) return true; // already mapped with a different offset
  if (up.auxSize !== nrPages * PAGE_SIZE) return true;
  if (rbHasAux(rb) && rb.auxNrPages !== nrPages) return true; // already mapped with a different size
  if (!isPow2(nrPages)) return true;
  return false;
}

// =============================================================================================
// perf_mmap_vmops: .open and .close

/** perf_mmap_open(): a VMA was duplicated (split, mremap move). Counts any vm_pgoff != 0 as AUX. */
export function perfMmapOpen(k: Kernel, vma: Vma): void {
  const event = vma.event!;
  const rb = event.rb;
  if (!rb) throw new KernelOops("BUG: kernel NULL pointer dereference in perf_mmap_open (event->rb is NULL)");
  event.mmapCount = refInc(k, event.mmapCount, "event->mmap_count");
  rb.mmapCount = refInc(k, rb.mmapCount, "rb->mmap_count");
  if (vma.pgoff !== 0) rb.auxMmapCount = refInc(k, rb.auxMmapCount, "rb->aux_mmap_count");
}

/** perf_mmap_close() (6.1.192, 5.10.262; seed: v3.18 + v8 patch; 6.18: refcount_t; 7.2.13/7.3.4:
 *  the event's count dropped before the buffer's).
 *  Refunds, in every era: locked_vm to rb->mmap_user (the data buffer's creator, for the AUX
 *  area too: `atomic_long_sub(rb->aux_nr_pages - rb->aux_mmap_locked, &mmap_user->locked_vm)`,
 *  perf_mmap_unaccount() in 7.2.13), pinned_vm from the closing VMA's mm
 *  (`atomic64_sub(..., &vma->vm_mm->pinned_vm)`; seed `vma->vm_mm->pinned_vm -= ...`),
 *  whoever was charged (spec/notes/processes.md "Accounting"). */
export function perfMmapClose(k: Kernel, vma: Vma): void {
  const event = vma.event!;
  const rb = ringBufferGet(k, event);
  if (!rb) throw new KernelOops("BUG: kernel NULL pointer dereference in perf_mmap_close (ring_buffer_get() returned NULL)");
  const mmapUser = rb.mmapUser!;
  const mm = vma.vmMm;
  const mmapLocked = rb.mmapLocked;
  const size = rb.nrPages;
  const seed = k.era.perf === "seed";

  if (rbHasAux(rb) && vma.pgoff === rb.auxPgoff) {
    const [v, zero] = refDecAndLock(k, rb.auxMmapCount, "rb->aux_mmap_count");
    rb.auxMmapCount = v;
    if (zero) {
      // perf_pmu_output_stop(event); now it's safe to free the pages
      if (seed) {
        mmapUser.lockedVm -= rb.auxNrPages;
        mm.pinnedVm -= rb.auxMmapLocked;
      } else if (k.bug.auxMlockRefund) {
        // 5e6c3c7b1ec2 .. 36b3db03b474
        if (!rb.auxMmapLocked) mmapUser.lockedVm -= rb.auxNrPages;
        else mm.pinnedVm -= rb.auxMmapLocked;
      } else {
        mmapUser.lockedVm -= rb.auxNrPages - rb.auxMmapLocked;
        mm.pinnedVm -= rb.auxMmapLocked;
      }
      rbFreeAux(k, rb); // this has to be the last one
      if (!seed && rb.auxRefcount !== 0) k.warn("WARNING: perf_mmap_close: WARN_ON_ONCE(refcount_read(&rb->aux_refcount))");
    }
  }

  if (k.era.closeEventFirst) {
    // 7.2.13 / 7.3.4: "Drop references in reverse order of perf_mmap() to prevent rb revival
    // after rb->mmap_count reaches zero."
    const [ev, evZero] = refDecAndLock(k, event.mmapCount, "event->mmap_count");
    event.mmapCount = ev;
    if (evZero) ringBufferAttach(k, event, null);
    // If there's still other mmap()s of this buffer, we're done.
    const [v, zero] = refDecAndTest(k, rb.mmapCount, "rb->mmap_count", k.era.refcount);
    rb.mmapCount = v;
    if (zero) {
      for (const other of rb.eventList.slice()) {
        if (other.rb === rb) ringBufferAttach(k, other, null);
      }
      mmapUser.lockedVm -= size + 1 - mmapLocked; // perf_mmap_unaccount(vma, rb)
      mm.pinnedVm -= mmapLocked;
    }
    ringBufferPut(k, rb); // out_put
    return;
  }

  let detachRest: boolean;
  if (seed) {
    rb.mmapCount--; // atomic_dec(&rb->mmap_count)
    detachRest = false;
  } else {
    const [v, zero] = refDecAndTest(k, rb.mmapCount, "rb->mmap_count", k.era.refcount);
    rb.mmapCount = v;
    detachRest = zero;
  }

  const [ev, evZero] = refDecAndLock(k, event.mmapCount, "event->mmap_count");
  event.mmapCount = ev;
  if (evZero) {
    ringBufferAttach(k, event, null);
    // If there's still other mmap()s of this buffer, we're done.
    if (seed) detachRest = rb.mmapCount === 0;
    if (detachRest) {
      // No other mmap()s: detach every other event that redirects into the buffer.
      for (const other of rb.eventList.slice()) {
        if (other.rb === rb) ringBufferAttach(k, other, null);
      }
      if (seed) {
        mmapUser.lockedVm -= size + 1;
      } else {
        mmapUser.lockedVm -= size + 1 - mmapLocked;
      }
      mm.pinnedVm -= mmapLocked;
    }
  }
  ringBufferPut(k, rb); // could be last
}
