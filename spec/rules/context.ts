/**
 * What a guard sees: the state, the op, and the values the op's checks read (the event,
 * its buffer, nr_pages, the VMA at an address). spec/model/step.ts fills one context per
 * op kind before it evaluates the op's rule list; guards only read it. Absent objects are
 * sentinels (NO_EV, NO_BUF), never undefined, so guards stay plain boolean expressions.
 */
import type { Op } from "../program.ts";
import type { Acct } from "../model/perf.ts";
import type { Buf, Ev, State, Vma } from "../model/state.ts";

export type OpOf<K extends Op["op"]> = Extract<Op, { op: K }>;

export interface Ctx<K extends Op["op"]> {
  s: State;
  op: OpOf<K>;
}

// Every per-process op runs in a process `p` (spec/program.ts opProc): events are seen through
// its fd table (an event it holds no fd for is NO_EV: EBADF, or group_fd -1 for outputTo) and
// map handles address its mm.

// A thread (issue 14) is a task of another task's process: `p` is always the PROCESS (mm, fd
// table, rlimit), `task` / `u` the calling task and its user where they differ.

/** perf_event_open: the new event's attributes and the outputTo target (live fd of p only); task = hw.target. */
export interface OpenCtx extends Ctx<"open"> { p: number; task: number; e: number; cpu: number; inherit: boolean; aux: boolean; ti: number; T: Ev }
export interface CloseCtx extends Ctx<"close"> { p: number; e: number; E: Ev }
export interface SetOutputCtx extends Ctx<"setOutput"> { p: number; e: number; E: Ev; t: number; T: Ev }
/**
 * mmap: E the event (NO_EV for a dead handle), R its buffer (NO_BUF if none), nr the
 * data pages (pages - 1), prot bits, hasAux = rb_has_aux(rb); acct is filled on first use
 * by the accounting guard (acctOf in spec/model/perf.ts).
 */
export interface MmapCtx extends Ctx<"mmap"> { p: number; u: number; m: number; slot: number; e: number; E: Ev; R: Buf; nr: number; prot: number; hasAux: boolean; acct: Acct | null }
/** munmap / MAP_FIXED: the range in the handle's base slot of p's mm; cut = it would split a perf VMA. */
export interface RangeCtx<K extends "munmap" | "mapFixedAnon"> extends Ctx<K> { m: number; slot: number; start: number; end: number; cut: boolean }
export interface MprotectCtx extends Ctx<"mprotect"> { slot: number; start: number; end: number; prot: number; noexec: boolean }
export interface MremapCtx extends Ctx<"mremap"> { p: number; m: number; base: number; slot: number }
/** touch / setAux / readUserPage: the VMA at the page (NO_VMA if none). */
export interface PageCtx<K extends "touch" | "setAux" | "readUserPage"> extends Ctx<K> { slot: number; idx: number; v: Vma }
/** rlimit: the process whose RLIMIT_MEMLOCK changes. */
export interface RlimitCtx extends Ctx<"rlimit"> { p: number }
/** fork: the child p and the parent `from`. */
export interface ForkCtx extends Ctx<"fork"> { p: number; from: number }
export interface ExitCtx extends Ctx<"exit"> { p: number }
/** thread: the new task p and the task `from` whose process it joins. */
export interface ThreadCtx extends Ctx<"thread"> { p: number; from: number }
export interface ParCtx extends Ctx<"par"> {}
/** setuid: the task (p), the user it asks for, and the user it is now. */
export interface SetuidCtx extends Ctx<"setuid"> { p: number; u: number; cur: number }
/** sendFd: the sender p's view of the event (NO_EV without an fd), the receiver `to`. */
export interface SendFdCtx extends Ctx<"sendFd"> { p: number; to: number; e: number; E: Ev }
