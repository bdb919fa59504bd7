/**
 * The audit protocol: what every backend does after a program's last op, defined once.
 *
 * The spec (spec/model/check.ts), the reference (reference/), the host executor
 * (hwtest/host/), the VM guests and the C runtime (runtime/auxspec.h: the C twin executor and
 * the C reproducers; its constants and warning ERE are checked equal to the ones below, and its
 * budget probe to `budgetProbe`, by test/hwtest/runtime.test.ts) all follow it:
 *
 *   1. teardown, in this order: perf_event_mlock_kb back to config.mlockKb and the test PMU's
 *      fault switch off (the models also turn the model-only map_range() switch off); then every task other than p0 that is still alive exits, in fork/thread
 *      order (as the `exit` op: its VMAs closed in address order, then its fds); then, in p0,
 *      for every map handle, in handle order, munmap slot A then slot B (SLOT_PAGES each); then
 *      close every event handle whose fd p0 still holds, in handle order.
 *   2. audit: p0's VmPin (mm->pinned_vm), each user's remaining locked-memory budget by the
 *      probe below (u0's as `budgetPages`, the others the program named with `setuid` in
 *      `budgets`), the test PMU's counters, and kernel-log lines that match KERNEL_WARNING.
 *
 * The budget probe: with perf_event_mlock_kb restored, no CAP_IPC_LOCK and RLIMIT_MEMLOCK at
 * the pages pinned_vm still holds (normally 0; 0 when pinned_vm is negative, which VmPin prints
 * unsigned as >= 2^63 kB), map fresh data buffers, each on a fresh
 * software event, greedily: 2^k data pages (+ the user page) from the largest k whose buffer
 * fits under the cap down to k = 0, each size repeated while it maps, then user-page-only
 * buffers (1 page); stop at EPERM or at `cap` = limit + BUDGET_PROBE_MARGIN pages. A buffer of
 * n data pages maps iff min(locked_vm, limit) + n + 1 <= limit (perf_mmap_calc_limits(),
 * kernel/events/core.c 6.18; the same test inline in perf_mmap() in 6.1/6.12), so on a sane
 * kernel this measures limit - locked_vm exactly; above the limit means locked_vm went below
 * where it started. Models simulate it with their own accounting through `budgetProbe`.
 */
import { SLOT_PAGES, handleIndex, programHandles, type Op } from "./program.ts";

/** Pages above the limit the budget probe may go before it stops. */
export const BUDGET_PROBE_MARGIN = 16;

/** User address of map handle 0's slot A on a kernel; handle m's slot A is at
 *  SLOT_BASE + m * 2 * SLOT_BYTES, its slot B right after. Far above anything a process maps. */
export const SLOT_BASE = 0x600000000000;
export const PAGE_SIZE = 4096;
export const SLOT_BYTES = SLOT_PAGES * PAGE_SIZE;

/** The per-user locked-memory limit in pages: perf_event_mlock_kb / 4 per CPU (user_lock_limit). */
export function budgetLimit(mlockKb: number, cpus: number): number {
  return (mlockKb >> 2) * cpus;
}

/** The probe's cap: budgetLimit + BUDGET_PROBE_MARGIN. */
export function budgetCap(mlockKb: number, cpus: number, margin = BUDGET_PROBE_MARGIN): number {
  return budgetLimit(mlockKb, cpus) + margin;
}

/**
 * The probe's greedy order, driven by `tryMap(dataPages)` (true when a fresh buffer of
 * dataPages + 1 pages mapped and stays mapped until the probe ends; false at EPERM or on an
 * error the caller records). Returns the pages mapped. `abort` (optional) stops early after
 * a harness error.
 */
export function budgetProbe(cap: number, tryMap: (dataPages: number) => boolean, abort?: () => boolean): number {
  let pages = 0;
  let k = 0;
  while (2 ** (k + 1) + 1 <= cap) k++;
  for (; k >= 0 && !abort?.(); k--) {
    const n = 2 ** k;
    while (!abort?.() && pages + n + 1 <= cap && tryMap(n)) pages += n + 1;
  }
  while (!abort?.() && pages + 1 <= cap && tryMap(0)) pages += 1;
  return pages;
}

/** One teardown step, in the order they run (see the header). */
export type TeardownStep =
  | { readonly kind: "restore" }
  | { readonly kind: "munmap"; readonly map: string; readonly slot: 0 | 1; readonly page: number; readonly pages: number }
  | { readonly kind: "close"; readonly ev: string }
  | { readonly kind: "exit"; readonly proc: string };

/**
 * The teardown of a program, as data: restore the sysctl and fault switch, unmap both slots
 * of every map handle (handle order), close every event handle (handle order; a backend
 * skips handles whose fd is no longer open). `page` is the slot's first page relative to
 * slot A of the handle (0 or SLOT_PAGES).
 */
export function teardownSteps(program: readonly Op[]): readonly TeardownStep[] {
  // Every checked program asks twice (the spec's check and the model's run): the list is kept
  // per program, and its steps are shared per handle, so the hot loop allocates one array.
  let steps = TEARDOWN.get(program);
  if (steps !== undefined) return steps;
  const { evs, maps } = programHandles(program);
  const out: TeardownStep[] = [RESTORE];
  const exited = new Set<string>();
  for (const op of program) {
    if (op.op === "fork" || op.op === "thread") exited.delete(op.proc);
    else if (op.op === "exit") exited.add(op.proc);
  }
  for (const op of program) {
    if ((op.op !== "fork" && op.op !== "thread") || exited.has(op.proc)) continue;
    let e = EXIT.get(op.proc);
    if (e === undefined) { e = { kind: "exit", proc: op.proc }; EXIT.set(op.proc, e); }
    out.push(e);
  }
  for (const map of maps) {
    let pair = UNMAP.get(map);
    if (pair === undefined) {
      pair = [
        { kind: "munmap", map, slot: 0, page: 0, pages: SLOT_PAGES },
        { kind: "munmap", map, slot: 1, page: SLOT_PAGES, pages: SLOT_PAGES },
      ];
      UNMAP.set(map, pair);
    }
    out.push(pair[0], pair[1]);
  }
  for (const ev of evs) {
    let c = CLOSE.get(ev);
    if (c === undefined) { c = { kind: "close", ev }; CLOSE.set(ev, c); }
    out.push(c);
  }
  TEARDOWN.set(program, out);
  return out;
}

const RESTORE: TeardownStep = { kind: "restore" };
const UNMAP = new Map<string, readonly [TeardownStep, TeardownStep]>();
const CLOSE = new Map<string, TeardownStep>();
const EXIT = new Map<string, TeardownStep>();
const TEARDOWN = new WeakMap<readonly Op[], readonly TeardownStep[]>();

/** Page number (in units of pages from SLOT_BASE) of slot `slot` of map handle `map`. */
export function slotPage(map: string, slot: 0 | 1): number {
  return (handleIndex(map) * 2 + slot) * SLOT_PAGES;
}

/**
 * Kernel-log lines that count as a kernel warning in a program's audit (host /dev/kmsg,
 * guest kernel log, C reproducers): WARN/BUG/Oops and the reports that follow memory or
 * refcount corruption, RCU stalls, hung tasks, bad pages, failed page allocations, panics.
 */
export const KERNEL_WARNING = /WARNING:|BUG:|kernel BUG|Oops|general protection fault|refcount_t:|UBSAN:|KASAN:|list_(add|del) corruption|Kernel panic|rcu.*detected stall|blocked for more than|Bad page|page allocation failure|invalid opcode/i;

/** The same pattern as a POSIX extended regex (for regcomp(3) in the C runtime, REG_ICASE). */
export const KERNEL_WARNING_ERE = KERNEL_WARNING.source;
