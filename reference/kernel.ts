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
 * This file holds the state (`Kernel`: the machine, the process, the uid) and the syscall
 * entry; the kernel functions live in one file per seam of the kernel (reference/README.md),
 * as functions taking the state first: perfMmapClose(k, vma), doMunmap(k, start, len).
 *
 * Deterministic: allocations succeed; setup_aux fails only while the `auxFault` op has turned
 * failure on (setup_aux returns NULL -> ENOMEM).
 *
 * Addresses are page numbers: map handle mN owns slot A at N * 2 * SLOT_PAGES and slot B right
 * after it (the host executor's layout, hwtest/host/executor.ts, divided by PAGE_SIZE).
 */
import { SLOT_PAGES, handleIndex } from "../spec/program.ts";
import type { Config, Op, Outcome, Program, ProfileId } from "../spec/program.ts";
import type { Audit, Step } from "../spec/trace.ts";
import type { AbstractState } from "../spec/abstract.ts";
import { ERAS, type Era } from "./era.ts";
import { bugFlags, type BugFlags } from "./bugs.ts";
import type { PageId, PerfBuffer, PerfEvent, Vma } from "./objects.ts";
import { ACC_READ, ACC_READ_WRITE, EINVAL, OK, PROT_BITS, errno, type MapHandle } from "./common.ts";
import { runPendingReleases, sysClose, sysPerfEventOpen, sysSetOutput } from "./perf-core.ts";
import { sysMmap } from "./perf-mmap.ts";
import { mmapFixedAnon, sysMprotect, sysMunmap } from "./mm.ts";
import { sysMremap } from "./mremap.ts";
import { access, faultOutcome, userReadPage, userSetAux } from "./fault.ts";
import { budgetPages, finish } from "./audit.ts";
import { abstract } from "./abstract.ts";

export class Kernel {
  readonly config: Config;
  readonly profile: ProfileId;
  readonly era: Era;
  readonly bug: BugFlags;

  // Machine and process state.
  /** sysctl_perf_event_mlock (kB) */
  mlockKb: number;
  /** RLIMIT_MEMLOCK soft limit, pages */
  memlock: number | "unlimited";
  /** the test PMU's fail_setup_aux */
  auxFail = false;
  /** current_user()->locked_vm (perf_mlock in 6.1.192/6.12.117), pages */
  lockedVm = 0;
  /** current->mm->pinned_vm, pages */
  pinnedVm = 0;

  readonly events = new Map<string, PerfEvent>();
  /** Events in order of (successful) open. */
  readonly eventOrder: PerfEvent[] = [];
  readonly maps = new Map<string, MapHandle>();
  /** The mm's VMAs, sorted by start. */
  readonly vmas: Vma[] = [];
  /** Page table entries of fault-era kernels, by page address (only pages touched so far). */
  readonly ptes = new Map<number, PageId>();
  readonly buffers: PerfBuffer[] = [];
  /** Files whose last reference went away during this syscall (__fput runs on return to user). */
  readonly pendingRelease: PerfEvent[] = [];
  anonVmaSeq = 0;

  // The AUX PMU's own counters (hwtest/pmu/auxspec_pmu.c: setups, frees, live).
  auxSetups = 0;
  auxFrees = 0;
  auxLive = 0;
  /** WARN/BUG lines the model's kernel would print. */
  readonly warnings: string[] = [];
  /** The page the last access() reached (fault.ts). */
  lastPage: PageId | null = null;

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
      case "open": r = sysPerfEventOpen(this, op); break;
      case "close": r = sysClose(this, op.ev); break;
      case "mmap": r = sysMmap(this, op); break;
      case "munmap": {
        const m = this.mapHandle(op.map);
        const e = sysMunmap(this, m.base + (op.offset ?? 0), op.pages ?? m.pages);
        r = e ? errno(e) : OK;
        break;
      }
      case "mremap": r = sysMremap(this, op); break;
      case "mprotect": {
        const m = this.mapHandle(op.map);
        const e = sysMprotect(this, m.base + (op.offset ?? 0), op.pages ?? m.pages, PROT_BITS[op.prot]);
        r = e ? errno(e) : OK;
        break;
      }
      case "mapFixedAnon": {
        const m = this.mapHandle(op.map);
        const e = mmapFixedAnon(this, m.base + op.offset, op.pages);
        r = e ? errno(e) : OK;
        break;
      }
      case "setAux": r = userSetAux(this, op.map, op.offsetPages, op.sizePages); break;
      case "setOutput": r = sysSetOutput(this, op.ev, op.target); break;
      case "rlimit": r = this.sysSetrlimit(op.memlockPages); break;
      case "sysctlMlock": this.mlockKb = op.kb; r = OK; break;
      case "auxFault": this.auxFail = op.fail; r = OK; break;
      case "touch": {
        const m = this.mapHandle(op.map);
        r = faultOutcome(access(this, m.base + op.page, op.write ? ACC_READ_WRITE : ACC_READ));
        break;
      }
      case "readUserPage": r = userReadPage(this, op.map); break;
      default: {
        const never: never = op;
        throw new Error(`unknown op ${JSON.stringify(never)}`);
      }
    }
    runPendingReleases(this);
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

  /** The event behind handle h while its fd is open (fget()). */
  liveEvent(h: string): PerfEvent | null {
    const e = this.events.get(h);
    return e && e.fdOpen ? e : null;
  }

  mapHandle(h: string): MapHandle {
    let m = this.maps.get(h);
    if (!m) {
      // A handle named before its mmap cannot happen in a valid program; give it its slot anyway.
      const slotA = handleIndex(h) * 2 * SLOT_PAGES;
      m = { slotA, base: slotA, pages: 0 };
      this.maps.set(h, m);
    }
    return m;
  }

  /** A WARN/BUG line the kernel prints. */
  warn(msg: string): void {
    this.warnings.push(msg);
  }

  // =============================================================================================
  // After the program: teardown + audit (audit.ts), the abstraction function (abstract.ts)

  /** Teardown by spec/audit.ts teardownSteps(), then the audit (audit.ts). */
  finish(program: Program): Audit {
    return finish(this, program);
  }

  /** The uid's remaining budget as the harness's probe measures it (audit.ts). */
  budgetPages(): number {
    return budgetPages(this);
  }

  abstract(program: Program): AbstractState {
    return abstract(this, program);
  }

  /** The VMAs, for tests and debugging: [start, end, pgoff, prot, event handle or "anon"]. */
  debugVmas(): Array<[number, number, number, number, string]> {
    return this.vmas.map((v) => [v.start, v.end, v.pgoff, v.prot, v.event ? v.event.handle : "anon"]);
  }
}
