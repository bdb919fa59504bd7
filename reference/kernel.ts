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
 * This file holds the state (`Kernel`: the machine, the processes (task_struct with its
 * mm_struct, files_struct and cred->user), the users (user_struct)) and the syscall entry,
 * which runs each op in its process as `current`; the kernel functions live in one file per
 * seam of the kernel (reference/README.md), as functions taking the state first:
 * perfMmapClose(k, vma), doMunmap(k, start, len).
 *
 * Deterministic: allocations succeed; setup_aux fails only while the `auxFault` op has turned
 * failure on (setup_aux returns NULL -> ENOMEM), map_range() only while the `mapRangeFault` op
 * has counts left (6.15+ eras, perf-mmap-618.ts).
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
import { FilesStruct, MmStruct, SignalStruct, TaskStruct, UserStruct, type PageId, type PerfBuffer, type PerfEvent, type Vma } from "./objects.ts";
import { ACC_READ, ACC_READ_WRITE, EINVAL, OK, PROT_BITS, errno, type MapHandle } from "./common.ts";
import { runPendingReleases, sysClose, sysPerfEventOpen, sysSetOutput } from "./perf-core.ts";
import { sysMmap } from "./perf-mmap.ts";
import { mmapFixedAnon, sysMprotect, sysMunmap } from "./mm.ts";
import { sysMremap } from "./mremap.ts";
import { access, faultOutcome, userReadPage, userSetAux } from "./fault.ts";
import { budgetPages, finish } from "./audit.ts";
import { abstract } from "./abstract.ts";
import { doExit, scmSendFd, sysFork, sysSetresuid, sysThread } from "./task.ts";

export class Kernel {
  readonly config: Config;
  readonly profile: ProfileId;
  readonly era: Era;
  readonly bug: BugFlags;

  // Machine state.
  /** sysctl_perf_event_mlock (kB) */
  mlockKb: number;
  /** the test PMU's fail_setup_aux */
  auxFail = false;
  /** map_range() calls left to fail with -ENOMEM (the model-only mapRangeFault switch; 0 = off) */
  mapRangeFault = 0;

  // Processes and users (spec/notes/processes.md).
  /** `current`: the task whose syscall runs now. */
  current: TaskStruct;
  /** p0, the program's initial process (never exits). */
  readonly init: TaskStruct;
  /** Every process the program forked, by handle (exited ones stay, with mm and files null). */
  readonly tasks = new Map<string, TaskStruct>();
  /** user_structs by user handle (u0 from the start; the others from their first setuid). */
  readonly users = new Map<string, UserStruct>();

  readonly events = new Map<string, PerfEvent>();
  /** Events in order of (successful) open. */
  readonly eventOrder: PerfEvent[] = [];
  readonly maps = new Map<string, MapHandle>();
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
  /** The task the last exec() ran its op in. */
  lastTask: TaskStruct;
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
    // u0: a fresh uid (locked_vm 0) or a shared uid's measured start
    const u0 = new UserStruct("u0", config.lockedVmPages ?? 0);
    this.users.set("u0", u0);
    this.init = new TaskStruct("p0", new MmStruct(), new FilesStruct(), u0, new SignalStruct(config.memlockPages));
    this.tasks.set("p0", this.init);
    this.current = this.init;
    this.lastTask = this.init;
  }

  /** current->mm's VMAs, sorted by start. */
  get vmas(): Vma[] {
    return this.current.mm!.vmas;
  }

  /** current->mm's page table entries (only pages touched so far). */
  get ptes(): Map<number, PageId> {
    return this.current.mm!.ptes;
  }

  /** The user_struct of a user handle (a fresh uid, locked_vm 0, on first use). */
  userFor(uid: string): UserStruct {
    let u = this.users.get(uid);
    if (!u) {
      u = new UserStruct(uid, 0);
      this.users.set(uid, u);
    }
    return u;
  }

  /** The live task of a process handle; a program that names a process before its fork or
   *  after its exit is invalid (spec/program.ts programProblems). */
  task(pid: string): TaskStruct {
    const t = this.tasks.get(pid);
    if (!t || !t.mm) throw new Error(`process ${pid} is not alive (invalid program)`);
    return t;
  }

  // =============================================================================================
  // Syscall entry

  /** One op in its process (spec/program.ts opProc(): its `proc`; a map-handle op without one
   *  runs in the process whose mmap introduced the handle; p0 otherwise). Step VmPin: that
   *  process's after the op; fork: the child's (0, mm_init()); exit: 0 (the mm is gone). */
  exec(op: Op): Step {
    const task = this.taskFor(op);
    this.current = task;
    const outcome = this.syscall(op);
    this.current = this.init;
    this.lastTask = task;
    let vmPinKb: number;
    if (op.op === "fork" || op.op === "thread") vmPinKb = this.vmPinKb(this.task(op.proc));
    else if (op.op === "par") vmPinKb = 0;
    else if (op.op === "exit") vmPinKb = 0;
    else vmPinKb = this.vmPinKb(task);
    return { outcome, vmPinKb };
  }

  /** The task an op runs in (exec()). */
  taskFor(op: Op): TaskStruct {
    let pid: string | undefined = (op as { proc?: string }).proc;
    if (pid === undefined && "map" in op && op.op !== "mmap") {
      pid = this.maps.get(op.map)?.proc;
      // The handle's process has exited (programProblems() does not refuse that): p0 runs it.
      if (pid !== undefined && !this.tasks.get(pid)?.mm) pid = undefined;
    }
    if (op.op === "fork" || op.op === "thread") pid = op.from; // fork()/clone() run in the parent
    return pid === undefined || pid === "p0" ? this.init : this.task(pid);
  }

  private syscall(op: Op): Outcome {
    const r = this.syscallBody(op);
    runPendingReleases(this);
    return r;
  }

  /** The op's syscall in current, without the deferred __fput()s (k.pendingRelease keeps
   *  them): the explorer (reference/explore/) runs the atomic ops of a par block this way. */
  syscallBody(op: Op): Outcome {
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
      case "mapRangeFault": this.mapRangeFault = op.times; r = OK; break;
      case "touch": {
        const m = this.mapHandle(op.map);
        r = faultOutcome(access(this, m.base + op.page, op.write ? ACC_READ_WRITE : ACC_READ));
        break;
      }
      case "readUserPage": r = userReadPage(this, op.map); break;
      case "fork": r = sysFork(this, op.proc); break;
      case "exit":
        if (this.current === this.init) throw new Error("p0 cannot exit (invalid program)");
        doExit(this, this.current);
        r = OK;
        break;
      case "setuid": r = sysSetresuid(this, op.user); break;
      case "sendFd": r = scmSendFd(this, op.ev, this.task(op.to)); break;
      case "thread": r = sysThread(this, op.proc); break;
      // The block marker (spec/notes/races.md): {ok}, VmPin 0; runReference runs the block's ops
      // in listed order and reads their VmPins after the block (runProgram in index.ts).
      case "par": r = OK; break;
      default: {
        const never: never = op;
        throw new Error(`unknown op ${JSON.stringify(never)}`);
      }
    }
    return r;
  }

  /** setrlimit(RLIMIT_MEMLOCK, {soft, hard as found}): do_prlimit() refuses rlim_cur > rlim_max. */
  private sysSetrlimit(soft: number | "unlimited"): Outcome {
    const hard = this.config.memlockHardPages ?? "unlimited";
    if (hard !== "unlimited" && (soft === "unlimited" || soft > hard)) return errno(EINVAL);
    this.current.memlock = soft;
    return OK;
  }

  /** VmPin of a task (p0 by default): pinned_vm << (PAGE_SHIFT - 10), printed unsigned
   *  (fs/proc/task_mmu.c task_mem()); 0 once its mm is gone. */
  vmPinKb(task: TaskStruct = this.init): number {
    const p = task.mm && task.alive ? task.mm.pinnedVm : 0;
    return p >= 0 ? p * 4 : 2 ** 64 + p * 4;
  }

  /** The event behind handle h in current's fd table (fget(): EBADF where it holds none). */
  liveEvent(h: string): PerfEvent | null {
    return this.current.files!.fdt.get(h) ?? null;
  }

  mapHandle(h: string): MapHandle {
    let m = this.maps.get(h);
    if (!m) {
      // A handle named before its mmap cannot happen in a valid program; give it its slot anyway.
      const slotA = handleIndex(h) * 2 * SLOT_PAGES;
      m = { slotA, base: slotA, pages: 0, proc: "p0" };
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

  /** A user's remaining budget (u0 by default) as the harness's probe measures it (audit.ts). */
  budgetPages(uid = "u0"): number {
    return budgetPages(this, this.userFor(uid));
  }

  abstract(program: Program): AbstractState {
    return abstract(this, program);
  }

  /** The VMAs, for tests and debugging: [start, end, pgoff, prot, event handle or "anon"]. */
  debugVmas(): Array<[number, number, number, number, string]> {
    return this.vmas.map((v) => [v.start, v.end, v.pgoff, v.prot, v.event ? v.event.handle : "anon"]);
  }
}
