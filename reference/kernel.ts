/**
 * The reference implementation: an operational model of the kernel's perf ring-buffer and
 * AUX-area mmap paths and of the VMA operations that reach them, per profile.
 *
 * It mirrors the kernel's objects (perf_event, perf_buffer, vm_area_struct, user_struct's
 * locked_vm, mm_struct's pinned_vm) and function names (perf_event_open, perf_mmap,
 * perf_mmap_open, perf_mmap_close, ring_buffer_attach, rb_alloc, rb_alloc_aux, rb_free_aux,
 * perf_event_set_output, perf_mmap_fault, __split_vma, do_munmap, mremap, mprotect_fixup,
 * mmap_region), and ports their control flow per era (reference/era.ts). Each function says
 * which kernel source it follows.
 *
 * Deterministic: allocations succeed; setup_aux fails only while the `auxFault` op has turned
 * failure on (setup_aux returns NULL -> ENOMEM).
 *
 * Addresses are page numbers: map handle mN owns slot A at N * 2 * SLOT_PAGES and slot B right
 * after it (the host executor's layout, hwtest/host/executor.ts, divided by PAGE_SIZE).
 */
import { SLOT_PAGES, handleIndex, programHandles } from "../spec/program.ts";
import type { Config, Op, Outcome, Program, ProfileId, Prot, UserPageObs } from "../spec/program.ts";
import type { Audit, Step } from "../spec/trace.ts";
import type { AbstractBuffer, AbstractEvent, AbstractState } from "../spec/abstract.ts";
import { ERAS, type Era } from "./era.ts";
import { bugFlags, type BugFlags } from "./bugs.ts";
import {
  KernelOops, PAGE_SIZE, PerfBuffer, PerfEvent, REFCOUNT_SATURATED, Vma, VM_EXEC, VM_READ, VM_WRITE,
  type PageId, zeroPage,
} from "./objects.ts";

// ---------------------------------------------------------------------------------------------
// Outcomes (shared, never mutated: no allocation per op)

const OK: Outcome = Object.freeze({ ok: true as const });
const SIGSEGV: Outcome = Object.freeze({ signal: "SIGSEGV" as const });
const SIGBUS: Outcome = Object.freeze({ signal: "SIGBUS" as const });
const ERRNO_CACHE = new Map<string, Outcome>();
function errno(name: string): Outcome {
  let o = ERRNO_CACHE.get(name);
  if (!o) { o = Object.freeze({ errno: name }); ERRNO_CACHE.set(name, o); }
  return o;
}

type Err = string | null;
const EINVAL = "EINVAL", EBADF = "EBADF", ENOMEM = "ENOMEM", EPERM = "EPERM", EFAULT = "EFAULT";
const EACCES = "EACCES", ENOENT = "ENOENT", EBUSY = "EBUSY";

const PROT_BITS: Readonly<Record<Prot, number>> = {
  none: 0, r: VM_READ, rw: VM_READ | VM_WRITE, rx: VM_READ | VM_EXEC, rwx: VM_READ | VM_WRITE | VM_EXEC,
};

/** RLIM_INFINITY >> PAGE_SHIFT */
const RLIM_INFINITY_PAGES = 2 ** 52 - 1;
/** How far above the per-user limit the harness's budget probe goes (hwtest/host/executor.ts). */
export const BUDGET_PROBE_MARGIN = 16;

const isPow2 = (n: number) => n > 0 && (n & (n - 1)) === 0;

/** a > b for kernel unsigned longs held as JS numbers (a negative number is a wrapped value). */
function ugt(a: number, b: number): boolean {
  if (a < 0) return b >= 0 ? true : a > b;
  if (b < 0) return false;
  return a > b;
}

/** Access kinds of the page-touching ops (the harness writes with a read first: auxprobe.c). */
const ACC_READ = 0, ACC_READ_WRITE = 1, ACC_WRITE = 2;
const FAULT_OK = 0, FAULT_SEGV = 1, FAULT_BUS = 2;

interface MapHandle { slotA: number; base: number; pages: number }

interface Limits { eperm: boolean; userExtra: number; extra: number }

// ---------------------------------------------------------------------------------------------

export class Kernel {
  readonly config: Config;
  readonly profile: ProfileId;
  readonly era: Era;
  readonly bug: BugFlags;

  // Machine and process state.
  /** sysctl_perf_event_mlock (kB) */
  private mlockKb: number;
  /** RLIMIT_MEMLOCK soft limit, pages */
  private memlock: number | "unlimited";
  /** the test PMU's fail_setup_aux */
  private auxFail = false;
  /** current_user()->locked_vm (perf_mlock in 6.1.192/6.12.117), pages */
  lockedVm = 0;
  /** current->mm->pinned_vm, pages */
  pinnedVm = 0;

  private readonly events = new Map<string, PerfEvent>();
  /** Events in order of (successful) open. */
  private readonly eventOrder: PerfEvent[] = [];
  private readonly maps = new Map<string, MapHandle>();
  /** The mm's VMAs, sorted by start. */
  private readonly vmas: Vma[] = [];
  /** Page table entries of fault-era kernels, by page address (only pages touched so far). */
  private readonly ptes = new Map<number, PageId>();
  private readonly buffers: PerfBuffer[] = [];
  /** Files whose last reference went away during this syscall (__fput runs on return to user). */
  private readonly pendingRelease: PerfEvent[] = [];
  private anonVmaSeq = 0;

  // The AUX PMU's own counters (hwtest/pmu/auxspec_pmu.c: setups, frees, live).
  auxSetups = 0;
  auxFrees = 0;
  auxLive = 0;
  /** WARN/BUG lines the model's kernel would print. */
  readonly warnings: string[] = [];

  constructor(config: Config, profile: ProfileId, bugs?: ReadonlySet<string>) {
    const era = ERAS[profile];
    if (!era) throw new Error(`unknown profile ${JSON.stringify(profile)}`);
    this.config = config;
    this.profile = profile;
    this.era = era;
    this.bug = bugFlags(bugs);
    this.mlockKb = config.mlockKb;
    this.memlock = config.memlockPages;
    this.lockedVm = config.lockedVmPages ?? 0;
  }

  // =============================================================================================
  // Syscall entry

  exec(op: Op): Step {
    const outcome = this.syscall(op);
    return { outcome, vmPinKb: this.vmPinKb() };
  }

  private syscall(op: Op): Outcome {
    let r: Outcome;
    switch (op.op) {
      case "open": r = this.sysPerfEventOpen(op); break;
      case "close": r = this.sysClose(op.ev); break;
      case "mmap": r = this.sysMmap(op); break;
      case "munmap": {
        const m = this.mapHandle(op.map);
        const e = this.sysMunmap(m.base + (op.offset ?? 0), op.pages ?? m.pages);
        r = e ? errno(e) : OK;
        break;
      }
      case "mremap": r = this.sysMremap(op); break;
      case "mprotect": {
        const m = this.mapHandle(op.map);
        const e = this.sysMprotect(m.base + (op.offset ?? 0), op.pages ?? m.pages, PROT_BITS[op.prot]);
        r = e ? errno(e) : OK;
        break;
      }
      case "mapFixedAnon": {
        const m = this.mapHandle(op.map);
        const e = this.mmapFixedAnon(m.base + op.offset, op.pages);
        r = e ? errno(e) : OK;
        break;
      }
      case "setAux": r = this.userSetAux(op.map, op.offsetPages, op.sizePages); break;
      case "setOutput": r = this.sysSetOutput(op.ev, op.target); break;
      case "rlimit": r = this.sysSetrlimit(op.memlockPages); break;
      case "sysctlMlock": this.mlockKb = op.kb; r = OK; break;
      case "auxFault": this.auxFail = op.fail; r = OK; break;
      case "touch": {
        const m = this.mapHandle(op.map);
        r = this.faultOutcome(this.access(m.base + op.page, op.write ? ACC_READ_WRITE : ACC_READ));
        break;
      }
      case "readUserPage": r = this.userReadPage(op.map); break;
      default: {
        const never: never = op;
        throw new Error(`unknown op ${JSON.stringify(never)}`);
      }
    }
    this.runPendingReleases();
    return r;
  }

  /** setrlimit(RLIMIT_MEMLOCK, {soft, hard as found}): do_prlimit() refuses rlim_cur > rlim_max. */
  private sysSetrlimit(soft: number | "unlimited"): Outcome {
    const hard = this.config.memlockHardPages ?? "unlimited";
    if (hard !== "unlimited" && (soft === "unlimited" || soft > hard)) return errno(EINVAL);
    this.memlock = soft;
    return OK;
  }

  /** VmPin: pinned_vm << (PAGE_SHIFT - 10), printed unsigned (fs/proc/task_mmu.c task_mem()). */
  vmPinKb(): number {
    return this.pinnedVm >= 0 ? this.pinnedVm * 4 : 2 ** 64 + this.pinnedVm * 4;
  }

  private liveEvent(h: string): PerfEvent | null {
    const e = this.events.get(h);
    return e && e.fdOpen ? e : null;
  }

  private mapHandle(h: string): MapHandle {
    let m = this.maps.get(h);
    if (!m) {
      // A handle named before its mmap cannot happen in a valid program; give it its slot anyway.
      const slotA = handleIndex(h) * 2 * SLOT_PAGES;
      m = { slotA, base: slotA, pages: 0 };
      this.maps.set(h, m);
    }
    return m;
  }

  private warn(msg: string): void {
    this.warnings.push(msg);
  }

  // =============================================================================================
  // Counters: atomic_t before 6.18, refcount_t (include/linux/refcount.h, lib/refcount.c) in
  // 6.18 for event->mmap_count, rb->mmap_count, rb->aux_mmap_count.

  private refInc(v: number, what: string): number {
    if (!this.era.refcount) return v + 1;
    // __refcount_add(): old == 0 -> REFCOUNT_ADD_UAF; old < 0 or overflow -> REFCOUNT_ADD_OVF
    if (v === 0) { this.warn(`WARNING: refcount_t: addition on 0; use-after-free (${what})`); return REFCOUNT_SATURATED; }
    if (v < 0) { this.warn(`WARNING: refcount_t: saturated; leaking memory (${what})`); return REFCOUNT_SATURATED; }
    return v + 1;
  }

  /** refcount_inc_not_zero() / atomic_inc_not_zero() on rb.mmapCount: false when it was 0. */
  private refIncNotZero(rb: PerfBuffer, field: "mmapCount", what: string): boolean {
    const v = rb[field];
    if (v === 0) return false;
    if (this.era.refcount && v < 0) {
      this.warn(`WARNING: refcount_t: saturated; leaking memory (${what})`);
      rb[field] = REFCOUNT_SATURATED;
      return true;
    }
    rb[field] = v + 1;
    return true;
  }

  /** refcount_dec_and_test() / atomic_dec_and_test(): [new value, hit zero] */
  private refDecAndTest(v: number, what: string, refcountT: boolean): [number, boolean] {
    if (!refcountT) return [v - 1, v - 1 === 0];
    if (v === 1) return [0, true];
    if (v <= 0) { this.warn(`WARNING: refcount_t: underflow; use-after-free (${what})`); return [REFCOUNT_SATURATED, false]; }
    return [v - 1, false];
  }

  /** refcount_dec_and_mutex_lock() / atomic_dec_and_mutex_lock(): [new value, hit zero] */
  private refDecAndLock(v: number, what: string): [number, boolean] {
    if (!this.era.refcount) return [v - 1, v - 1 === 0];
    // refcount_dec_not_one(): saturated stays; 0 WARNs and stays.
    if (v === REFCOUNT_SATURATED) return [v, false];
    if (v === 0) { this.warn(`WARNING: refcount_t: underflow; use-after-free (${what})`); return [0, false]; }
    if (v === 1) return [0, true];
    return [v - 1, false];
  }

  /** refcount_dec(): must not hit 0 (REFCOUNT_DEC_LEAK). */
  private refDec(v: number, what: string): number {
    if (!this.era.refcount) return v - 1;
    if (v <= 1) { this.warn(`WARNING: refcount_t: decrement hit 0; leaking memory (${what})`); return REFCOUNT_SATURATED; }
    return v - 1;
  }

  // =============================================================================================
  // perf_event_open(2) (kernel/events/core.c, SYSCALL_DEFINE5(perf_event_open); 6.1.192 and
  // v3.18 agree on every check reached here). pid = 0, group_fd = outputTo's fd or -1,
  // flags = PERF_FLAG_FD_OUTPUT when outputTo is given.

  private sysPerfEventOpen(op: Extract<Op, { op: "open" }>): Outcome {
    const cpu = op.cpu ?? -1;
    const inherit = op.inherit === true;
    // group_fd -1 for a dead handle: no group and no output redirection (spec/program.ts).
    const leader = op.outputTo !== undefined ? this.liveEvent(op.outputTo) : null;
    // "if (task && group_leader && group_leader->attr.inherit != attr.inherit) -> EINVAL"
    if (leader && leader.inherit !== inherit) return errno(EINVAL);
    // perf_event_alloc(): (unsigned)cpu >= nr_cpu_ids -> EINVAL (nr_cpu_ids = cpus here)
    if (cpu >= this.config.cpus) return errno(EINVAL);
    // perf_init_event(): no PMU of that type -> ENOENT
    if (op.pmu === "aux" && this.config.pmus.aux === null) return errno(ENOENT);
    const event = new PerfEvent(op.ev, op.pmu === "aux", cpu, inherit);
    if (leader) {
      // "Do not allow a recursive hierarchy": the group_fd event must lead its group.
      if (leader.groupLeader !== leader) return errno(EINVAL);
      // 6.1: group_leader->cpu != event->cpu -> EINVAL (v3.18: same ctx check passes, then
      // perf_event_set_output() refuses the cross-cpu buffer with EINVAL too).
      if (leader.cpu !== cpu) return errno(EINVAL);
      const e = this.perfEventSetOutput(event, leader);
      if (e) return errno(e); // free_event(): the new event never got a buffer
      event.groupLeader = leader;
    }
    this.events.set(op.ev, event);
    this.eventOrder.push(event);
    return OK;
  }

  /** close(2): the fd goes; the event lives on while a VMA holds its file (perf_release later). */
  private sysClose(h: string): Outcome {
    const e = this.liveEvent(h);
    if (!e) return errno(EBADF);
    e.fdOpen = false;
    if (e.vmaRefs === 0) this.pendingRelease.push(e);
    return OK;
  }

  private fput(e: PerfEvent): void {
    e.vmaRefs--;
    if (e.vmaRefs === 0 && !e.fdOpen) this.pendingRelease.push(e);
  }

  private runPendingReleases(): void {
    while (this.pendingRelease.length) {
      const e = this.pendingRelease.shift()!;
      if (!e.released) this.perfEventReleaseKernel(e);
    }
  }

  /** perf_release() -> perf_event_release_kernel() -> perf_remove_from_context(DETACH_GROUP)
   *  and _free_event(): siblings become singletons; "if (event->rb) ring_buffer_attach(event, NULL)". */
  private perfEventReleaseKernel(e: PerfEvent): void {
    e.released = true;
    if (e.groupLeader === e) {
      for (const x of this.eventOrder) if (x !== e && x.groupLeader === e) x.groupLeader = x;
    }
    if (e.rb) this.ringBufferAttach(e, null);
  }

  // =============================================================================================
  // ioctl(PERF_EVENT_IOC_SET_OUTPUT) and perf_event_set_output() (6.1.192 core.c; seed: v3.18
  // plus the v8 patch's has_aux() check).

  private sysSetOutput(h: string, target: string | null): Outcome {
    const e = this.liveEvent(h);
    if (!e) return errno(EBADF);
    let out: PerfEvent | null = null;
    if (target !== null) {
      out = this.liveEvent(target);
      if (!out) return errno(EBADF); // the C int -1 arrives as 0xffffffff: perf_fget_light() -> EBADF
    }
    const r = this.perfEventSetOutput(e, out);
    return r ? errno(r) : OK;
  }

  private perfEventSetOutput(event: PerfEvent, output: PerfEvent | null): Err {
    if (output) {
      // don't allow circular references
      if (event === output) return EINVAL;
      // Don't allow cross-cpu buffers
      if (output.cpu !== event.cpu) return EINVAL;
      // (cpu == -1 needs the same task: always this process; same clock; no write_backward)
      // If both events generate aux data, they must be on the same PMU (one AUX PMU here).
    }
    // Can't redirect output if we've got an active mmap()
    if (event.mmapCount !== 0) return EINVAL;
    let rb: PerfBuffer | null = null;
    if (output) {
      rb = this.ringBufferGet(output);
      if (!rb) return EINVAL;
      // did we race against perf_mmap_close() (6.x; not in v3.18)
      if (this.era.setOutputMmapCheck && rb.mmapCount === 0) {
        this.ringBufferPut(rb);
        return EINVAL;
      }
    }
    this.ringBufferAttach(event, rb);
    return null;
  }

  // =============================================================================================
  // Ring buffers (kernel/events/core.c ring_buffer_attach/get/put, ring_buffer.c)

  /** ring_buffer_attach(): moves the event between rb->event_list's; takes over the caller's
   *  reference on rb and drops the one it held on the old buffer. */
  private ringBufferAttach(event: PerfEvent, rb: PerfBuffer | null): void {
    const old = event.rb;
    if (old) {
      const i = old.eventList.indexOf(event);
      if (i >= 0) old.eventList.splice(i, 1);
    }
    if (rb) rb.eventList.push(event);
    event.rb = rb;
    if (old) this.ringBufferPut(old);
  }

  private ringBufferGet(event: PerfEvent): PerfBuffer | null {
    const rb = event.rb;
    if (!rb || rb.refcount <= 0) return null;
    rb.refcount++;
    return rb;
  }

  /** ring_buffer_put(): the last reference frees the buffer (rb_free_rcu -> rb_free). rb_free()
   *  does not touch the AUX area: one still allocated here is leaked (free_aux never runs). */
  private ringBufferPut(rb: PerfBuffer): void {
    rb.refcount--;
    if (rb.refcount === 0) rb.alive = false;
  }

  /** rb_alloc() never fails in the model. */
  private rbAlloc(nrPages: number, writable: boolean): PerfBuffer {
    const rb = new PerfBuffer(this.buffers.length, nrPages, !writable);
    this.buffers.push(rb);
    return rb;
  }

  private static rbHasAux(rb: PerfBuffer): boolean {
    return rb.auxNrPages !== 0;
  }

  /** rb_alloc_aux() (ring_buffer.c). 6.1: failure runs __rb_free_aux(); the seed runs
   *  rb_free_aux(), whose atomic_dec_and_test() of a zero aux_refcount never frees: the pages
   *  stay and aux_nr_pages keeps counting them (so rb_has_aux() turns true). */
  private rbAllocAux(rb: PerfBuffer, event: PerfEvent, pgoff: number, nrPages: number, writable: boolean): Err {
    if (!event.hasAux) return this.era.enotsupp;
    // the pages are allocated (never fails here) ...
    if (this.auxFail) {
      // ... setup_aux() returns NULL: goto out with ret = -ENOMEM
      if (this.era.perf === "seed") {
        rb.auxNrPages = nrPages;
        rb.auxPages = null;
        rb.auxRefcount -= 1;
      } else {
        rb.auxNrPages = 0; // __rb_free_aux(): aux_priv is NULL, pages freed
      }
      return ENOMEM;
    }
    rb.auxNrPages = nrPages;
    rb.auxPages = null;
    rb.auxPriv = true;
    this.auxSetups++;
    this.auxLive++;
    rb.auxRefcount = 1;
    rb.auxOverwrite = !writable;
    rb.auxPgoff = pgoff;
    return null;
  }

  /** rb_free_aux(): drop aux_refcount; the last drop runs __rb_free_aux() (free_aux, pages). */
  private rbFreeAux(rb: PerfBuffer): void {
    const [v, zero] = this.refDecAndTest(rb.auxRefcount, "rb->aux_refcount", this.era.auxRefcountT);
    rb.auxRefcount = v;
    if (!zero) return;
    if (rb.auxPriv) {
      rb.auxPriv = false;
      this.auxFrees++;
      this.auxLive--;
    }
    rb.auxNrPages = 0;
  }

  /** perf_mmap_to_page() (ring_buffer.c, !CONFIG_PERF_USE_VMALLOC). */
  private static perfMmapToPage(rb: PerfBuffer, pgoff: number): PageId | null {
    if (rb.auxNrPages) {
      if (pgoff > rb.auxPgoff + rb.auxNrPages) return null; // above AUX space
      if (pgoff >= rb.auxPgoff) { // AUX space: aux_pages[array_index_nospec(pgoff - aux_pgoff, aux_nr_pages)]
        let i = pgoff - rb.auxPgoff;
        if (i >= rb.auxNrPages) i = 0;
        rb.auxPages ??= [];
        return (rb.auxPages[i] ??= zeroPage());
      }
    }
    if (pgoff > rb.nrPages) return null;
    return pgoff === 0 ? rb.userPage : 0;
  }

  /** Whether perf_mmap_to_page() finds a page (map_range()'s test), without touching pages. */
  private static perfMmapHasPage(rb: PerfBuffer, pgoff: number): boolean {
    if (rb.auxNrPages && pgoff >= rb.auxPgoff) return pgoff <= rb.auxPgoff + rb.auxNrPages;
    return pgoff <= rb.nrPages;
  }

  /** The size perf_mmap() compares a re-mapping with: data_page_nr(rb) (== rb->nr_pages on x86);
   *  bug vmalloc-data-page-nr: rb->nr_pages of a CONFIG_PERF_USE_VMALLOC kernel (one block). */
  private mappedNrPages(rb: PerfBuffer): number {
    if (this.bug.vmallocDataPageNr) return rb.nrPages === 0 ? 0 : 1;
    return rb.nrPages;
  }

  // =============================================================================================
  // Accounting (perf_mmap() "accounting:" block; 6.18 perf_mmap_calc_limits()).

  private limitsFor(lockedVm: number, pinnedVm: number, memlock: number | "unlimited", capIpcLock: boolean, userExtra: number): Limits {
    // user_lock_limit = sysctl_perf_event_mlock >> (PAGE_SHIFT - 10); *= num_online_cpus()
    const userLockLimit = (this.mlockKb >> 2) * this.config.cpus;
    let extra = 0;
    let ue = userExtra;
    if (this.era.clamp && !this.bug.mlockNegative) {
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
        if (this.era.splitCharge) ue -= extra;
      }
    }
    const lockLimit = memlock === "unlimited" ? RLIM_INFINITY_PAGES : memlock;
    const locked = pinnedVm + extra;
    // perf_is_paranoid() (seed: perf_paranoid_tracepoint_raw()): paranoid > -1
    const eperm = ugt(locked, lockLimit) && this.config.paranoid > -1 && !capIpcLock;
    return { eperm, userExtra: ue, extra };
  }

  private calcLimits(userExtra: number): Limits {
    return this.limitsFor(this.lockedVm, this.pinnedVm, this.memlock, this.config.capIpcLock, userExtra);
  }

  // =============================================================================================
  // mmap(2) of a perf fd: do_mmap() generic checks, mmap_region() -> call_mmap() -> perf_mmap().

  private sysMmap(op: Extract<Op, { op: "mmap" }>): Outcome {
    const slotA = handleIndex(op.map) * 2 * SLOT_PAGES;
    this.maps.set(op.map, { slotA, base: slotA, pages: op.pages });
    // ksys_mmap_pgoff(): fget(fd) first
    const event = this.liveEvent(op.ev);
    if (!event) return errno(EBADF);
    // do_mmap(): if (!len) return -EINVAL
    if (op.pages === 0) return errno(EINVAL);
    const prot = PROT_BITS[op.prot];
    // do_mmap(): 6.15+ anon inodes are noexec: path_noexec() -> VM_EXEC is EPERM, VM_MAYEXEC cleared
    if (this.era.noexec && (prot & VM_EXEC)) return errno(EPERM);
    // MAP_FIXED_NOREPLACE at slot A: a fresh handle's slot is empty.
    const shared = op.shared !== false;
    const vma = new Vma(slotA, slotA + op.pages, op.pgoff, prot, !this.era.noexec, shared, event);
    const e = this.perfMmap(vma);
    if (e) return errno(e); // mmap_region() frees the VMA without ->close()
    this.insertVma(vma);
    event.vmaRefs++; // vma->vm_file = get_file(file)
    return OK;
  }

  /** perf_mmap(): the checks common to every era, then the era's body. */
  private perfMmap(vma: Vma): Err {
    const event = vma.event!;
    // Don't allow mmap() of inherited per-task counters.
    if (event.cpu === -1 && event.inherit) return EINVAL;
    if (!vma.shared) return EINVAL;
    // security_perf_event_read(): no LSM denies here.
    switch (this.era.perf) {
      case "seed": return this.perfMmapSeed(vma, event);
      case "v6.1": return this.perfMmap61(vma, event);
      case "v6.18": return this.perfMmap618(vma, event);
    }
  }

  /** perf_mmap() of v3.18 with the v8 AUX patch applied (shared/seed). */
  private perfMmapSeed(vma: Vma, event: PerfEvent): Err {
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
          if (this.mappedNrPages(event.rb) !== nrPages) { ret = EINVAL; break unlock; }
          event.rb.mmapCount++; // atomic_inc_not_zero(): never 0 while event->rb is set here
          break unlock;
        }
        userExtra = nrPages + 1;
      } else {
        if (!event.rb) return EINVAL;
        nrPages = vmaPages;
        rb = event.rb;
        const up = rb.userPage;
        if (up.auxOffset < rb.nrPages * PAGE_SIZE + PAGE_SIZE) return EINVAL;
        if (up.auxOffset !== vma.pgoff * PAGE_SIZE) return EINVAL;
        if (Kernel.rbHasAux(rb) && rb.auxPgoff !== vma.pgoff) return EINVAL; // already mapped with a different offset
        if (up.auxSize !== vmaPages * PAGE_SIZE) return EINVAL;
        if (Kernel.rbHasAux(rb) && rb.auxNrPages !== nrPages) return EINVAL; // already mapped with a different size
        if (!isPow2(nrPages)) return EINVAL;
        if (rb.mmapCount === 0) return EINVAL; // atomic_inc_not_zero()
        rb.mmapCount++;
        if (Kernel.rbHasAux(rb)) {
          rb.auxMmapCount++;
          break unlock;
        }
        rb.auxMmapCount = 1;
        userExtra = nrPages;
      }
      // accounting: (no clamp; user_extra charged whole to locked_vm, extra to pinned_vm)
      lim = this.calcLimits(userExtra);
      if (lim.eperm) { ret = EPERM; break unlock; }
      const writable = (vma.prot & VM_WRITE) !== 0;
      if (!rb) {
        rb = this.rbAlloc(nrPages, writable);
        rb.mmapCount = 1;
        rb.mmapLocked = lim.extra;
        this.ringBufferAttach(event, rb);
        // perf_event_init_userpage(), perf_event_update_userpage(): the constructor's values
      } else {
        ret = this.rbAllocAux(rb, event, vma.pgoff, nrPages, writable);
        if (!ret) rb.auxMmapLocked = lim.extra;
      }
    }
    if (!ret) {
      if (lim) {
        this.lockedVm += lim.userExtra;
        this.pinnedVm += lim.extra;
      }
      event.mmapCount++;
    } else if (rb) {
      rb.mmapCount--;
    }
    return ret;
  }

  /** perf_mmap() of 6.1.192 / 6.12.117 (identical); the pre-148/pre-42 profiles differ only in
   *  where aux_mmap_count is set (before 5468c0fbccbb) and in the missing may_split. */
  private perfMmap61(vma: Vma, event: PerfEvent): Err {
    const vmaPages = vma.end - vma.start;
    let rb: PerfBuffer | null = null;
    let ret: Err = null;
    let nrPages: number;
    let lim: Limits | null = null;
    const auxEarly = this.era.auxMmapCountEarly || this.bug.auxRefcountLeak;
    unlock: {
      if (vma.pgoff === 0) {
        nrPages = vmaPages - 1;
        if (nrPages !== 0 && !isPow2(nrPages)) return EINVAL;
        if (event.rb) {
          if (this.mappedNrPages(event.rb) !== nrPages) { ret = EINVAL; break unlock; }
          event.rb.mmapCount++; // atomic_inc_not_zero(): the "raced against perf_mmap_close()" retry never runs here
          break unlock;
        }
        lim = this.calcLimits(nrPages + 1);
      } else {
        // AUX area mapping
        if (!event.rb) return EINVAL;
        nrPages = vmaPages; // (nr_pages > INT_MAX -> ENOMEM cannot hold)
        rb = event.rb;
        const up = rb.userPage;
        if (up.auxOffset < rb.nrPages * PAGE_SIZE + PAGE_SIZE) return EINVAL;
        if (up.auxOffset !== vma.pgoff * PAGE_SIZE) return EINVAL;
        if (Kernel.rbHasAux(rb) && rb.auxPgoff !== vma.pgoff) return EINVAL;
        if (up.auxSize !== vmaPages * PAGE_SIZE) return EINVAL;
        if (Kernel.rbHasAux(rb) && rb.auxNrPages !== nrPages) return EINVAL;
        if (!isPow2(nrPages)) return EINVAL;
        if (rb.mmapCount === 0) return EINVAL;
        rb.mmapCount++;
        if (Kernel.rbHasAux(rb)) {
          rb.auxMmapCount++;
          break unlock;
        }
        if (auxEarly) rb.auxMmapCount = 1; // pre-5468c0fbccbb
        lim = this.calcLimits(nrPages);
      }
      if (lim.eperm) { ret = EPERM; break unlock; }
      const writable = (vma.prot & VM_WRITE) !== 0;
      if (!rb) {
        rb = this.rbAlloc(nrPages, writable);
        rb.mmapCount = 1;
        rb.mmapLocked = lim.extra;
        this.ringBufferAttach(event, rb);
      } else {
        ret = this.rbAllocAux(rb, event, vma.pgoff, nrPages, writable);
        if (!ret) {
          if (!auxEarly) rb.auxMmapCount = 1;
          rb.auxMmapLocked = lim.extra;
        }
      }
    }
    if (!ret) {
      if (lim) {
        this.lockedVm += lim.userExtra;
        this.pinnedVm += lim.extra;
      }
      event.mmapCount++;
    } else if (rb) {
      rb.mmapCount--; // AUX allocation failed
    }
    return ret;
  }

  /** perf_mmap() of 6.15+ as in 6.18 (perf_mmap_rb()/perf_mmap_aux(), refcount_t, map_range()). */
  private perfMmap618(vma: Vma, event: PerfEvent): Err {
    const vmaPages = vma.end - vma.start;
    // (nr_pages > INT_MAX -> ENOMEM; event REVOKED -> ENODEV: cannot hold)
    let auxFailed = false;
    if (vma.pgoff === 0) {
      const e = this.perfMmapRb(vma, event, vmaPages);
      if (e) return e;
    } else {
      const r = this.perfMmapAux(vma, event, vmaPages);
      if (r === "aux-failed") auxFailed = true;
      else if (r) return r;
    }
    // vm_flags_set(VM_DONTCOPY | VM_DONTEXPAND | VM_DONTDUMP); vma->vm_ops = &perf_mmap_vmops;
    // map_range(event->rb, vma): every page now, read-only (perf_mmap_pfn_mkwrite on write).
    const rb = event.rb!;
    let mapFails = false;
    for (let p = 0; p < vmaPages; p++) {
      if (!Kernel.perfMmapHasPage(rb, vma.pgoff + p)) { mapFails = true; break; }
    }
    if (mapFails || auxFailed) {
      // map_range() -> -EINVAL; f74b9f4ba63f: perf_mmap_close(vma) undoes the above.
      if (!this.bug.auxAllocResult) this.perfMmapClose(vma);
      return EINVAL;
    }
    vma.prepopulated = true;
    vma.preUser = vma.pgoff === 0 ? (Kernel.perfMmapToPage(rb, 0) || null) : null;
    return null;
  }

  /** perf_mmap_rb() (6.17+; with d06bf78e55d5's EBUSY). */
  private perfMmapRb(vma: Vma, event: PerfEvent, nrPagesVma: number): Err {
    const userExtra = nrPagesVma; // long extra = 0, user_extra = nr_pages;
    const nrPages = nrPagesVma - 1;
    if (nrPages !== 0 && !isPow2(nrPages)) return EINVAL;
    if (event.rb) {
      const rb = event.rb;
      if (this.mappedNrPages(rb) !== nrPages) return EINVAL;
      // d06bf78e55d5: an event without mmap_count would alias another event's mmap()
      if (this.era.ebusy && !this.bug.setOutputMmap && event.mmapCount === 0) return EBUSY;
      if (this.refIncNotZero(rb, "mmapCount", "rb->mmap_count")) {
        // Success -- managed to mmap() the same buffer multiple times.
        // 0c8a4e4139ad: user_extra is the VMA's page count here and is charged again.
        if (this.era.remapCharge) this.lockedVm += userExtra;
        event.mmapCount = this.refInc(event.mmapCount, "event->mmap_count");
        return null;
      }
      this.ringBufferAttach(event, null); // raced against perf_mmap_close()
    }
    const lim = this.calcLimits(userExtra);
    if (lim.eperm) return EPERM;
    const rb = this.rbAlloc(nrPages, (vma.prot & VM_WRITE) !== 0);
    rb.mmapCount = 1;
    rb.mmapLocked = lim.extra;
    this.ringBufferAttach(event, rb);
    // perf_mmap_account()
    this.lockedVm += lim.userExtra;
    this.pinnedVm += lim.extra;
    event.mmapCount = 1; // refcount_set()
    return null;
  }

  /** perf_mmap_aux() (6.17+). Returns "aux-failed" when the aux-alloc-result bug carries an
   *  rb_alloc_aux() failure on as success. */
  private perfMmapAux(vma: Vma, event: PerfEvent, nrPages: number): Err | "aux-failed" {
    let userExtra = nrPages;
    let extra = 0;
    const rb = event.rb;
    if (!rb) return EINVAL;
    const up = rb.userPage;
    if (up.auxOffset < rb.nrPages * PAGE_SIZE + PAGE_SIZE) return EINVAL;
    if (up.auxOffset !== vma.pgoff * PAGE_SIZE) return EINVAL;
    if (Kernel.rbHasAux(rb) && rb.auxPgoff !== vma.pgoff) return EINVAL;
    if (up.auxSize !== nrPages * PAGE_SIZE) return EINVAL;
    if (Kernel.rbHasAux(rb) && rb.auxNrPages !== nrPages) return EINVAL;
    if (!isPow2(nrPages)) return EINVAL;
    if (!this.refIncNotZero(rb, "mmapCount", "rb->mmap_count")) return EINVAL;
    let failed = false;
    if (Kernel.rbHasAux(rb)) {
      rb.auxMmapCount = this.refInc(rb.auxMmapCount, "rb->aux_mmap_count");
      if (!this.era.remapCharge) userExtra = 0;
    } else {
      if (this.bug.auxRefcountLeak) rb.auxMmapCount = 1; // pre-5468c0fbccbb: before the accounting
      const lim = this.calcLimits(userExtra);
      if (lim.eperm) {
        rb.mmapCount = this.refDec(rb.mmapCount, "rb->mmap_count");
        return EPERM;
      }
      userExtra = lim.userExtra;
      extra = lim.extra;
      const r = this.rbAllocAux(rb, event, vma.pgoff, nrPages, (vma.prot & VM_WRITE) !== 0);
      if (r) {
        if (!this.bug.auxAllocResult) {
          rb.mmapCount = this.refDec(rb.mmapCount, "rb->mmap_count");
          return r;
        }
        failed = true; // 6.15.0..6.15.9: ret = 0 overwrote the failure
      } else {
        rb.auxMmapCount = 1; // refcount_set()
        rb.auxMmapLocked = extra;
      }
    }
    // perf_mmap_account(vma, user_extra, extra); refcount_inc(&event->mmap_count);
    this.lockedVm += userExtra;
    this.pinnedVm += extra;
    event.mmapCount = this.refInc(event.mmapCount, "event->mmap_count");
    return failed ? "aux-failed" : null;
  }

  // =============================================================================================
  // perf_mmap_vmops: .open and .close

  /** perf_mmap_open(): a VMA was duplicated (split, mremap move). Counts any vm_pgoff != 0 as AUX. */
  private perfMmapOpen(vma: Vma): void {
    const event = vma.event!;
    const rb = event.rb;
    if (!rb) throw new KernelOops("BUG: kernel NULL pointer dereference in perf_mmap_open (event->rb is NULL)");
    event.mmapCount = this.refInc(event.mmapCount, "event->mmap_count");
    rb.mmapCount = this.refInc(rb.mmapCount, "rb->mmap_count");
    if (vma.pgoff !== 0) rb.auxMmapCount = this.refInc(rb.auxMmapCount, "rb->aux_mmap_count");
  }

  /** perf_mmap_close() (6.1.192; seed: v3.18 + v8 patch; 6.18: refcount_t). */
  private perfMmapClose(vma: Vma): void {
    const event = vma.event!;
    const rb = this.ringBufferGet(event);
    if (!rb) throw new KernelOops("BUG: kernel NULL pointer dereference in perf_mmap_close (ring_buffer_get() returned NULL)");
    const mmapLocked = rb.mmapLocked;
    const size = rb.nrPages;
    const seed = this.era.perf === "seed";

    if (Kernel.rbHasAux(rb) && vma.pgoff === rb.auxPgoff) {
      const [v, zero] = this.refDecAndLock(rb.auxMmapCount, "rb->aux_mmap_count");
      rb.auxMmapCount = v;
      if (zero) {
        // perf_pmu_output_stop(event); now it's safe to free the pages
        if (seed) {
          this.lockedVm -= rb.auxNrPages;
          this.pinnedVm -= rb.auxMmapLocked;
        } else if (this.bug.auxMlockRefund) {
          // 5e6c3c7b1ec2 .. 36b3db03b474
          if (!rb.auxMmapLocked) this.lockedVm -= rb.auxNrPages;
          else this.pinnedVm -= rb.auxMmapLocked;
        } else {
          this.lockedVm -= rb.auxNrPages - rb.auxMmapLocked;
          this.pinnedVm -= rb.auxMmapLocked;
        }
        this.rbFreeAux(rb); // this has to be the last one
        if (!seed && rb.auxRefcount !== 0) this.warn("WARNING: perf_mmap_close: WARN_ON_ONCE(refcount_read(&rb->aux_refcount))");
      }
    }

    let detachRest: boolean;
    if (seed) {
      rb.mmapCount--; // atomic_dec(&rb->mmap_count)
      detachRest = false;
    } else {
      const [v, zero] = this.refDecAndTest(rb.mmapCount, "rb->mmap_count", this.era.refcount);
      rb.mmapCount = v;
      detachRest = zero;
    }

    const [ev, evZero] = this.refDecAndLock(event.mmapCount, "event->mmap_count");
    event.mmapCount = ev;
    if (evZero) {
      this.ringBufferAttach(event, null);
      // If there's still other mmap()s of this buffer, we're done.
      if (seed) detachRest = rb.mmapCount === 0;
      if (detachRest) {
        // No other mmap()s: detach every other event that redirects into the buffer.
        for (const other of rb.eventList.slice()) {
          if (other.rb === rb) this.ringBufferAttach(other, null);
        }
        if (seed) {
          this.lockedVm -= size + 1;
        } else {
          this.lockedVm -= size + 1 - mmapLocked;
        }
        this.pinnedVm -= mmapLocked;
      }
    }
    this.ringBufferPut(rb); // could be last
  }

  // =============================================================================================
  // VMAs (mm/mmap.c, mm/vma.c, mm/mremap.c, mm/mprotect.c)

  private insertVma(v: Vma): void {
    const a = this.vmas;
    let i = a.length;
    while (i > 0 && a[i - 1].start > v.start) i--;
    a.splice(i, 0, v);
  }

  private removeVma(v: Vma): void {
    const i = this.vmas.indexOf(v);
    if (i >= 0) this.vmas.splice(i, 1);
  }

  /** The VMA containing addr (vma_lookup). */
  private findVma(addr: number): Vma | null {
    for (const v of this.vmas) {
      if (v.start > addr) return null;
      if (addr < v.end) return v;
    }
    return null;
  }

  /** The first VMA ending above addr (find_vma). */
  private findVmaAfter(addr: number): Vma | null {
    for (const v of this.vmas) if (v.end > addr) return v;
    return null;
  }

  private maySplitActive(): boolean {
    return this.era.maySplit && !this.bug.vmaSplit;
  }

  /** __split_vma() (6.1 mm/mmap.c; 6.12 mm/vma.c; v3.18 mm/mmap.c): the new VMA is the part
   *  below addr when newBelow, else the part above; vm_ops->open() runs on it. */
  private splitVma(vma: Vma, addr: number, newBelow: boolean): Err {
    if (vma.event && this.maySplitActive()) return EINVAL; // perf_mmap_may_split()
    const nw = vma.dup();
    if (newBelow) nw.end = addr;
    else {
      nw.start = addr;
      nw.pgoff += addr - vma.start;
    }
    if (nw.event) {
      nw.event.vmaRefs++; // get_file()
      this.perfMmapOpen(nw);
    }
    if (newBelow) {
      vma.pgoff += addr - nw.start;
      vma.start = addr;
    } else {
      vma.end = addr;
    }
    this.insertVma(nw);
    return null;
  }

  /** do_munmap() / do_vmi_munmap(): split the VMAs straddling the range, detach the ones inside,
   *  zap their pages, close them in address order, drop their files. v3.18 and 6.1
   *  (do_mas_align_munmap) split with new_below = 0 at the start and 1 at the end (the new VMA is
   *  on the removed side); 6.12+ (vms_gather_munmap_vmas) the other way round. */
  private doMunmap(start: number, len: number): Err {
    if (len <= 0) return EINVAL;
    const end = start + len;
    let vma = this.findVmaAfter(start);
    if (!vma || vma.start >= end) return null;
    const oldStyle = this.era.mm === "v3.18" || this.era.mm === "v6.1";
    if (start > vma.start) {
      const e = this.splitVma(vma, start, !oldStyle);
      if (e) return e;
      vma = this.findVma(start)!;
    }
    const gone: Vma[] = [];
    let i = this.vmas.indexOf(vma);
    while (i < this.vmas.length && this.vmas[i].start < end) {
      const next = this.vmas[i];
      if (next.end > end) {
        if (oldStyle) {
          const e = this.splitVma(next, end, true);
          if (e) return e;
          gone.push(this.findVma(end - 1)!); // the new lower piece
        } else {
          const e = this.splitVma(next, end, false);
          if (e) return e;
          gone.push(next);
        }
        break;
      }
      gone.push(next);
      i++;
    }
    for (const v of gone) this.removeVma(v);
    this.zapPtes(start, end);
    for (const v of gone) this.removeVmaClose(v);
    return null;
  }

  /** remove_vma(): vm_ops->close(), then fput(). */
  private removeVmaClose(v: Vma): void {
    if (v.event) {
      this.perfMmapClose(v);
      this.fput(v.event);
    }
  }

  private zapPtes(start: number, end: number): void {
    if (this.ptes.size === 0) return;
    for (const a of this.ptes.keys()) if (a >= start && a < end) this.ptes.delete(a);
  }

  private sysMunmap(start: number, pages: number): Err {
    // munmap(2): len 0 -> EINVAL (__vm_munmap -> do_vmi_munmap)
    return this.doMunmap(start, pages);
  }

  /** Anonymous VMAs merge with compatible neighbours (vma_merge(): same flags, contiguous
   *  vm_pgoff, compatible anon_vma). Perf VMAs never merge (vm_ops->close). */
  private mergeAnon(v: Vma): Vma {
    const i = this.vmas.indexOf(v);
    const prev = i > 0 ? this.vmas[i - 1] : null;
    const next = i + 1 < this.vmas.length ? this.vmas[i + 1] : null;
    let cur = v;
    if (prev && Kernel.mergeable(prev, cur)) {
      prev.end = cur.end;
      prev.anonVma = prev.anonVma || cur.anonVma;
      this.removeVma(cur);
      cur = prev;
    }
    if (next && Kernel.mergeable(cur, next)) {
      cur.end = next.end;
      cur.anonVma = cur.anonVma || next.anonVma;
      this.removeVma(next);
    }
    return cur;
  }

  private static mergeable(a: Vma, b: Vma): boolean {
    return a.event === null && b.event === null && a.end === b.start && a.prot === b.prot &&
      a.pgoff + (a.end - a.start) === b.pgoff && (a.anonVma === 0 || b.anonVma === 0 || a.anonVma === b.anonVma);
  }

  /** mmap(MAP_FIXED|MAP_ANONYMOUS|MAP_PRIVATE, PROT_READ|PROT_WRITE): mmap_region() unmaps the
   *  range first. 6.1 / v3.18: "if (do_munmap(...)) return -ENOMEM"; 6.12+: the
   *  vms_gather_munmap_vmas() error itself (EINVAL from may_split; 6.18.44: EINVAL seen). */
  private mmapFixedAnon(addr: number, pages: number): Err {
    const e = this.doMunmap(addr, pages);
    if (e) return this.era.mm === "v6.1" || this.era.mm === "v3.18" ? ENOMEM : e;
    const v = new Vma(addr, addr + pages, addr, VM_READ | VM_WRITE, true, false, null);
    this.insertVma(v);
    this.mergeAnon(v);
    return null;
  }

  /** do_mprotect_pkey() and mprotect_fixup() (6.1.192 mm/mprotect.c; same loop in v3.18/6.12). */
  private sysMprotect(start: number, pages: number, prot: number): Err {
    if (pages === 0) return null; // if (!len) return 0;
    const end = start + pages;
    let vma = this.findVmaAfter(start);
    if (!vma || vma.start > start) return ENOMEM;
    let nstart = start;
    for (;;) {
      // newflags >> 4 shift VM_MAY% in place of VM_%
      if ((prot & VM_EXEC) && !vma.mayExec) return EACCES;
      const tmp = Math.min(vma.end, end);
      const e = this.mprotectFixup(vma, nstart, tmp, prot);
      if (e) return e;
      nstart = tmp;
      if (nstart >= end) return null;
      vma = this.findVmaAfter(nstart);
      if (!vma || vma.start !== nstart) return ENOMEM;
    }
  }

  private mprotectFixup(vma: Vma, start: number, end: number, prot: number): Err {
    if (prot === vma.prot) return null; // newflags == oldflags: nothing to do, no split
    if (start !== vma.start) {
      const e = this.splitVma(vma, start, true);
      if (e) return e;
    }
    if (end !== vma.end) {
      const e = this.splitVma(vma, end, false);
      if (e) return e;
    }
    vma.prot = prot;
    if (!vma.event) this.mergeAnon(vma);
    return null;
  }

  // ---------------------------------------------------------------------------------------------
  // mremap(2)

  private sysMremap(op: Extract<Op, { op: "mremap" }>): Outcome {
    const m = this.mapHandle(op.map);
    const off = op.offset ?? 0;
    const addr = m.base + off;
    const other = m.base === m.slotA ? m.slotA + SLOT_PAGES : m.slotA;
    const fixed = op.toFresh === true;
    const mayMove = fixed || op.mayMove === true;
    const r = this.mremap(addr, op.oldPages, op.newPages, mayMove, fixed, other + off);
    if (typeof r === "string") return errno(r);
    if (fixed) m.base = other;
    return OK;
  }

  /** SYSCALL_DEFINE5(mremap) per era: v3.18 (no vma_lookup up front), 6.1/6.12, 6.17+ (a
   *  MREMAP_FIXED move of the same size may span several VMAs: remap_move()). Returns the new
   *  address or an errno. */
  private mremap(addr: number, oldLen: number, newLen: number, mayMove: boolean, fixed: boolean, newAddr: number): number | string {
    if (fixed && !mayMove) return EINVAL;
    if (newLen === 0) return EINVAL; // a zero new-len is nonsensical
    if (this.era.mm === "v6.18" && fixed && oldLen === newLen) return this.remapMove(addr, oldLen, newAddr);
    if (this.era.mm !== "v3.18" && !this.findVma(addr)) return EFAULT; // vma_lookup()
    if (fixed) return this.mremapTo(addr, oldLen, newAddr, newLen);
    // Always allow a shrinking remap: that just unmaps the unnecessary pages.
    if (oldLen >= newLen) {
      if (oldLen === newLen) return addr; // (do_munmap of 0 pages fails and is ignored)
      const e = this.doMunmap(addr + newLen, oldLen - newLen);
      return e ?? addr;
    }
    // Ok, we need to grow..
    const vma = this.vmaToResize(addr, oldLen, newLen);
    if (typeof vma === "string") return vma;
    if (oldLen === vma.end - addr && this.vmaExpandable(vma, newLen - oldLen)) {
      vma.end += newLen - oldLen; // (perf VMAs never get here: VM_DONTEXPAND)
      this.mergeAnon(vma);
      return addr;
    }
    if (mayMove) {
      // Moves outside the slots (get_unmapped_area): for the program the old range is gone.
      return this.moveVma(vma, addr, oldLen, newLen, -1);
    }
    return ENOMEM;
  }

  /** vma_to_resize() */
  private vmaToResize(addr: number, oldLen: number, newLen: number): Vma | string {
    const vma = this.findVma(addr);
    if (!vma) return EFAULT;
    if (this.era.mm !== "v3.18" && oldLen === 0 && !vma.shared) return EINVAL; // duplicate a private mapping
    if (oldLen > vma.end - addr) return EFAULT; // We can't remap across vm area boundaries
    if (newLen === oldLen) return vma;
    if (newLen > oldLen && vma.event) return EFAULT; // VM_DONTEXPAND | VM_PFNMAP
    return vma;
  }

  /** vma_expandable(): nothing mapped in [vm_end, vm_end + delta). */
  private vmaExpandable(vma: Vma, delta: number): boolean {
    const end = vma.end + delta;
    for (const v of this.vmas) if (v.start < end && v.end > vma.end) return false;
    return true;
  }

  /** mremap_to() (v3.18, 6.1, 6.12): unmap the target, shrink, resize check, move_vma(). */
  private mremapTo(addr: number, oldLen: number, newAddr: number, newLen: number): number | string {
    if (addr + oldLen > newAddr && newAddr + newLen > addr) return EINVAL; // overlap
    let e = this.doMunmap(newAddr, newLen);
    if (e) return e;
    if (oldLen > newLen) {
      e = this.doMunmap(addr + newLen, oldLen - newLen);
      if (e) return e;
      oldLen = newLen;
    }
    const vma = this.vmaToResize(addr, oldLen, newLen);
    if (typeof vma === "string") return vma;
    return this.moveVma(vma, addr, oldLen, newLen, newAddr);
  }

  /** move_vma(): may_split check (6.1+), copy_vma() (vm_ops->open on the copy), move the page
   *  tables, then do_munmap() of the old range (splitting and closing it). newAddr -1: a place
   *  outside every slot. */
  private moveVma(vma: Vma, oldAddr: number, oldLen: number, newLen: number, newAddr: number): number | string {
    const splitBefore = vma.start !== oldAddr;
    const splitAfter = vma.end !== oldAddr + oldLen;
    if (vma.event && this.maySplitActive() && (splitBefore || splitAfter)) return EINVAL;
    const newPgoff = vma.pgoff + (oldAddr - vma.start);
    if (newAddr >= 0) {
      const nw = vma.dup();
      nw.start = newAddr;
      nw.end = newAddr + newLen;
      nw.pgoff = newPgoff;
      // copy_vma(): an anonymous VMA never faulted takes the new address as pgoff
      if (!nw.event && nw.anonVma === 0) nw.pgoff = newAddr;
      if (nw.event) {
        nw.event.vmaRefs++;
        this.perfMmapOpen(nw);
      }
      this.insertVma(nw);
      // move_page_tables()
      if (this.ptes.size) {
        const moved: Array<[number, PageId]> = [];
        for (const [a, p] of this.ptes) if (a >= oldAddr && a < oldAddr + oldLen) moved.push([a, p]);
        for (const [a] of moved) this.ptes.delete(a);
        for (const [a, p] of moved) this.ptes.set(newAddr + (a - oldAddr), p);
      }
      if (!nw.event) this.mergeAnon(nw);
    }
    this.doMunmap(oldAddr, oldLen); // errors ignored (move_vma)
    return newAddr;
  }

  /** remap_move() (6.17+, eaa5bd1a4940 "mm/mremap: permit mremap() move of multiple VMAs"):
   *  every VMA in [addr, addr + len) moves, keeping the gaps; no gap allowed at the start. */
  private remapMove(addr: number, len: number, newAddr: number): number | string {
    const end = addr + len;
    if (addr < newAddr + len && newAddr < end) return EINVAL; // ranges must not overlap
    let seen = false;
    let res = 0;
    let lastEnd = 0;
    let target = newAddr;
    let cursor = addr;
    for (;;) {
      const vma = this.findVmaAfter(cursor);
      if (!vma || vma.start >= end) break;
      const a = Math.max(vma.start, addr);
      const l = Math.min(end, vma.end) - a;
      if (!seen && addr < vma.start) return EFAULT; // No gap permitted at the start of the range.
      const offset = seen ? vma.start - lastEnd : 0;
      lastEnd = vma.end;
      const pieceNew = target + offset;
      // mremap_to(): unmap the destination first, then move_vma()
      const e = this.doMunmap(pieceNew, l);
      if (e) return e;
      const v = this.findVma(a);
      if (!v) return EFAULT;
      const r = this.moveVma(v, a, l, l, pieceNew);
      if (typeof r === "string") return r;
      if (!seen) res = r;
      target = r + l;
      seen = true;
      cursor = a + l;
    }
    if (!seen) return EFAULT;
    return res;
  }

  // =============================================================================================
  // Page access: the fault path (perf_mmap_fault() before 6.14; map_range() +
  // perf_mmap_pfn_mkwrite() after) and the ops built on it.

  /** Access one page as the harness does (auxprobe.c: a write reads first). Returns FAULT_* and
   *  leaves the page reached in this.lastPage. */
  private lastPage: PageId | null = null;

  private access(addr: number, kind: number): number {
    this.lastPage = null;
    const vma = this.findVma(addr);
    if (!vma) return FAULT_SEGV;
    if (kind !== ACC_WRITE && !(vma.prot & VM_READ)) return FAULT_SEGV;
    if (kind === ACC_WRITE && !(vma.prot & VM_WRITE)) return FAULT_SEGV;
    if (!vma.event) {
      // anonymous memory: zero-filled until written; a write fault gives the VMA an anon_vma
      // and the page keeps what is written (the page table entry carries it)
      let page = this.ptes.get(addr);
      if (kind !== ACC_READ) {
        if (!(vma.prot & VM_WRITE)) return FAULT_SEGV;
        if (vma.anonVma === 0) vma.anonVma = ++this.anonVmaSeq;
        if (page === undefined || page === 0) {
          page = zeroPage();
          this.ptes.set(addr, page);
        }
      }
      this.lastPage = page ?? 0;
      return FAULT_OK;
    }
    const pgoff = vma.pgoff + (addr - vma.start);
    if (vma.prepopulated) {
      // 6.14+: every page was installed by map_range(); a write faults into
      // perf_mmap_pfn_mkwrite(): vmf->pgoff == 0 ? 0 : VM_FAULT_SIGBUS
      if (kind !== ACC_READ) {
        if (!(vma.prot & VM_WRITE)) return FAULT_SEGV;
        if (pgoff !== 0) return FAULT_BUS;
      }
      this.lastPage = pgoff === 0 && vma.preUser ? vma.preUser : 0;
      return FAULT_OK;
    }
    if (this.era.mapAtMmap) return FAULT_BUS; // VM_PFNMAP without a page: no ->fault
    let page = this.ptes.get(addr);
    if (page === undefined) {
      // perf_mmap_fault(): no page yet
      const rb = vma.event.rb;
      if (!rb) return FAULT_BUS;
      if (kind === ACC_WRITE && pgoff !== 0) return FAULT_BUS; // "if (vmf->pgoff && (vmf->flags & FAULT_FLAG_WRITE))"
      const p = Kernel.perfMmapToPage(rb, pgoff);
      if (p === null) return FAULT_BUS;
      page = p;
      this.ptes.set(addr, page);
    }
    if (kind !== ACC_READ) {
      if (!(vma.prot & VM_WRITE)) return FAULT_SEGV;
      // do_wp_page() -> page_mkwrite = perf_mmap_fault(FAULT_FLAG_MKWRITE): pgoff 0 only
      if (pgoff !== 0) return FAULT_BUS;
    }
    this.lastPage = page;
    return FAULT_OK;
  }

  private faultOutcome(f: number): Outcome {
    return f === FAULT_OK ? OK : f === FAULT_BUS ? SIGBUS : SIGSEGV;
  }

  /** setAux: the harness stores aux_offset and aux_size into page 0 of the handle. */
  private userSetAux(h: string, offsetPages: number, sizePages: number): Outcome {
    const m = this.mapHandle(h);
    const f = this.access(m.base, ACC_WRITE);
    if (f !== FAULT_OK) return this.faultOutcome(f);
    const p = this.lastPage;
    if (p) {
      p.auxOffset = offsetPages * PAGE_SIZE;
      p.auxSize = sizePages * PAGE_SIZE;
    }
    return OK;
  }

  private userReadPage(h: string): Outcome {
    const m = this.mapHandle(h);
    const f = this.access(m.base, ACC_READ);
    if (f !== FAULT_OK) return this.faultOutcome(f);
    const p = this.lastPage;
    const page: UserPageObs = p
      ? { dataOffset: p.dataOffset, dataSize: p.dataSize, auxHead: p.auxHead, auxOffset: p.auxOffset, auxSize: p.auxSize }
      : { dataOffset: 0, dataSize: 0, auxHead: 0, auxOffset: 0, auxSize: 0 };
    return { ok: true, page };
  }

  // =============================================================================================
  // Teardown and audit (common brief, "Shared semantics")

  /** Teardown (perf_event_mlock_kb and auxFault restored; both slots of every map handle
   *  unmapped in handle order; every live fd closed in handle order), then the audit. */
  finish(program: Program): Audit {
    this.mlockKb = this.config.mlockKb;
    this.auxFail = false;
    const { evs, maps } = programHandles(program);
    for (const h of maps) {
      const slotA = handleIndex(h) * 2 * SLOT_PAGES;
      this.doMunmap(slotA, SLOT_PAGES);
      this.runPendingReleases();
      this.doMunmap(slotA + SLOT_PAGES, SLOT_PAGES);
      this.runPendingReleases();
    }
    for (const h of evs) {
      const e = this.events.get(h);
      if (e && e.fdOpen) {
        this.sysClose(h);
        this.runPendingReleases();
      }
    }
    const audit: Audit = { vmPinKb: this.vmPinKb(), budgetPages: this.budgetPages() };
    if (this.config.pmus.aux !== null) {
      audit.liveAux = this.auxLive;
      audit.auxSetups = this.auxSetups;
      audit.auxFrees = this.auxFrees;
    }
    audit.warnings = this.warnings.slice();
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
  budgetPages(): number {
    const limit = (this.mlockKb >> 2) * this.config.cpus;
    const cap = limit + BUDGET_PROBE_MARGIN;
    const P = this.pinnedVm;
    // VmPin printed unsigned: a negative pinned_vm reads huge, the rlimit follows it.
    const memlock: number | "unlimited" = P < 0 ? "unlimited" : P;
    let L = this.lockedVm;
    // Fast path: 0 <= L <= limit, P >= 0: every probe mapping until L reaches the limit charges
    // locked_vm only (extra = 0); the next one needs a pinned page the rlimit does not have.
    if (L >= 0 && L <= limit && P >= 0 && this.config.paranoid > -1) return Math.min(cap, limit - L);
    // Slow path: the probe's own greedy order (perf.ts probeBudget: 2^k + 1 page buffers from the
    // largest that fits under the cap down, each while it maps, then 1-page buffers), because with
    // an unclamped or negative locked_vm the order decides where EPERM first strikes.
    let pinned = P;
    let pages = 0;
    const tryMap = (userExtra: number): boolean => {
      const lim = this.limitsFor(L, pinned, memlock, false, userExtra);
      if (lim.eperm) return false;
      L += this.era.splitCharge ? lim.userExtra : userExtra;
      pinned += lim.extra;
      return true;
    };
    let k = 0;
    while (2 ** (k + 1) + 1 <= cap) k++;
    for (; k >= 0; k--) {
      const n = 2 ** k;
      while (pages + n + 1 <= cap && tryMap(n + 1)) pages += n + 1;
    }
    while (pages + 1 <= cap && tryMap(1)) pages += 1;
    return pages;
  }

  // =============================================================================================
  // Abstraction function (spec/abstract.ts)

  abstract(program: Program): AbstractState {
    void program;
    const events: AbstractEvent[] = [];
    for (const e of this.eventOrder) {
      if (e.released) continue;
      if (!e.fdOpen && e.vmaRefs === 0) continue;
      events.push({ handle: e.handle, open: e.fdOpen, mmapCount: e.mmapCount, rb: e.rb ? e.rb.id : null });
    }
    const buffers: AbstractBuffer[] = [];
    for (const rb of this.buffers) {
      if (!rb.alive) continue;
      buffers.push({
        id: rb.id,
        nrPages: rb.nrPages,
        mmapCount: rb.mmapCount,
        mmapLocked: rb.mmapLocked,
        auxNrPages: rb.auxNrPages,
        auxPgoff: rb.auxPgoff,
        auxMmapCount: rb.auxMmapCount,
        auxMmapLocked: rb.auxMmapLocked,
        auxRefcount: rb.auxRefcount,
        overwrite: rb.overwrite,
      });
    }
    return {
      events, buffers, lockedVm: this.lockedVm, pinnedVm: this.pinnedVm,
      auxAllocs: this.auxSetups, auxFrees: this.auxFrees,
    };
  }

  /** The VMAs, for tests and debugging: [start, end, pgoff, prot, event handle or "anon"]. */
  debugVmas(): Array<[number, number, number, number, string]> {
    return this.vmas.map((v) => [v.start, v.end, v.pgoff, v.prot, v.event ? v.event.handle : "anon"]);
  }
}
