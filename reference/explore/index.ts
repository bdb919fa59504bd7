/**
 * The lock-level explorer (issue 14, spec/notes/races.md): every interleaving of each par
 * block's tasks, each producing a Trace, with the sanity problems found on the way.
 *
 *   exploreReference(program, config, profile, bugs, options) -> { traces, interleavings, complete }
 *   sequentialTraces(program, config, profile, bugs)          -> the traces of every order of the blocks' ops
 *   linearizable(exploration, sequential)                      -> the interleavings no order explains
 *   benchExplorer(programs, ...)                               -> interleavings explored per second
 *
 * Ops outside blocks run on the sequential reference (Kernel.exec); a block's ops run as tasks
 * (paths.ts) under the scheduler (sched.ts). Each op of a block reports the VmPin of its task
 * read after the whole block (0 for an exit), as runReference does.
 */
import type { Config, Op, ProfileId, Program } from "../../spec/program.ts";
import type { Step, Trace } from "../../spec/trace.ts";
import { Kernel } from "../kernel.ts";
import { KernelOops } from "../objects.ts";
import { runPendingReleases } from "../perf-core.ts";
import { Sched, Task, alternatives, type Problem } from "./sched.ts";
import { opPath, type PathOptions } from "./paths.ts";

export { type Problem } from "./sched.ts";
export { type PathOptions } from "./paths.ts";

export interface ExploreOptions extends PathOptions {
  /** Most preemptions per execution (default 2; Infinity: every interleaving). */
  preemptionBound?: number;
  /** Most executions (default 20,000); `complete` is false when the search stopped there. */
  maxExecutions?: number;
}

export interface Interleaving {
  /** The scheduling choices (task index in its block at each point where several could run). */
  schedule: number[];
  /** The steps in the order they ran: "t<task>: <step>". */
  steps: string[];
  /** Index into Exploration.traces. */
  trace: number;
  /** Sanity problems: refcount misuse, use after free, double free, livelock, deadlock. */
  problems: Problem[];
}

export interface Exploration {
  /** The distinct traces, in order of first appearance (the first is the listed order's). */
  traces: Trace[];
  interleavings: Interleaving[];
  /** Whether every interleaving within the preemption bound was run. */
  complete: boolean;
}

/** One execution of the program under a schedule prefix (or a serial order per block). */
export function executeOnce(program: Program, config: Config, profile: ProfileId, bugs: ReadonlySet<string> | undefined,
  prefix: readonly number[], opts: ExploreOptions = {}, serial?: readonly (readonly number[])[]): { trace: Trace; sched: Sched } {
  const k = new Kernel(config, profile, bugs);
  const x = new Sched(k, prefix, opts);
  const steps: Step[] = [];
  const backend = "model";
  let block = 0;
  try {
    for (let i = 0; i < program.length; i++) {
      const op = program[i];
      steps.push(k.exec(op));
      if (op.op !== "par") continue;
      const n = Math.min(op.ops, program.length - i - 1);
      const ops: Op[] = program.slice(i + 1, i + 1 + n);
      const tasks = ops.map((o, j) => new Task(j, k.taskFor(o)));
      x.serial = serial ? serial[block] : null;
      x.running = null;
      block++;
      for (const t of tasks) {
        t.gen = opPath(x, t, ops[t.id], opts);
        resume(k, t); // to its first yield ("enter"): nothing runs before it
      }
      const ok = x.run(tasks, (t) => resume(k, t));
      k.current = k.init;
      x.running = null;
      if (!ok) return { trace: { backend, kernel: null, steps, audit: null, aborted: x.problems[x.problems.length - 1].what }, sched: x };
      for (const t of tasks) {
        steps.push({ outcome: t.result as Step["outcome"], vmPinKb: ops[t.id].op === "exit" ? 0 : k.vmPinKb(t.ts) });
      }
      endStateProblems(k, x);
      i += n;
    }
    return { trace: { backend, kernel: null, steps, audit: k.finish(program) }, sched: x };
  } catch (e) {
    k.current = k.init;
    if (e instanceof KernelOops) {
      x.problem(x.running, e.message);
      return { trace: { backend, kernel: null, steps, audit: null, aborted: e.message }, sched: x };
    }
    throw e;
  }
}

/** Refcount sanity of the state a block left: no count below 0, no live reference to a freed
 *  buffer, no perf VMA whose event has no buffer (its munmap would oops), no buffer with
 *  mappings but a zero mmap_count. */
export function endStateProblems(k: Kernel, x: Sched): void {
  for (const rb of k.buffers) {
    if (!rb.alive) continue;
    if (rb.mmapCount < 0 && !k.era.refcount) x.problem(null, `end state: rb ${rb.id} mmap_count ${rb.mmapCount}`);
    if (rb.auxMmapCount < 0 && !k.era.refcount) x.problem(null, `end state: rb ${rb.id} aux_mmap_count ${rb.auxMmapCount}`);
    if (rb.refcount < 0) x.problem(null, `end state: rb ${rb.id} refcount ${rb.refcount}`);
  }
  for (const e of k.eventOrder) {
    if (e.released) continue;
    if (e.mmapCount < 0 && !k.era.refcount) x.problem(null, `end state: ${e.handle}->mmap_count ${e.mmapCount}`);
    if (e.rb && !e.rb.alive) x.problem(null, `end state: ${e.handle}->rb points at freed rb ${e.rb.id}`);
  }
  const seen = new Set<object>();
  for (const t of k.tasks.values()) {
    const mm = t.mm;
    if (!mm || seen.has(mm)) continue;
    seen.add(mm);
    for (const v of mm.vmas) {
      if (!v.event) continue;
      if (!v.event.rb) x.problem(null, `end state: a VMA of ${v.event.handle} maps no buffer (event->rb NULL)`);
      else if (v.event.rb.mmapCount === 0) x.problem(null, `end state: a VMA of ${v.event.handle} maps rb ${v.event.rb.id} whose mmap_count is 0`);
    }
  }
}

function resume(k: Kernel, t: Task): void {
  k.current = t.ts;
  const r = t.gen!.next();
  // deferred __fput()s belong to the task that dropped the reference
  while (k.pendingRelease.length) t.pending.push(k.pendingRelease.shift()!);
  if (r.done) { t.done = true; t.result = r.value; t.next = null; } else t.next = r.value;
  k.current = k.init;
}

/** The key two traces are equal under. */
export function traceKey(t: Trace): string {
  return JSON.stringify([t.steps, t.audit, t.aborted ?? null]);
}

/**
 * Every interleaving of every par block of `program` (depth-first, within the preemption
 * bound): the distinct traces and, per interleaving, its schedule, its steps and its problems.
 */
export function exploreReference(program: Program, config: Config, profile: ProfileId, bugs?: ReadonlySet<string>, opts: ExploreOptions = {}): Exploration {
  const bound = opts.preemptionBound ?? 2;
  const max = opts.maxExecutions ?? 20000;
  const traces: Trace[] = [];
  const index = new Map<string, number>();
  const interleavings: Interleaving[] = [];
  const stack: number[][] = [[]];
  while (stack.length && interleavings.length < max) {
    const prefix = stack.pop()!;
    const { trace, sched } = executeOnce(program, config, profile, bugs, prefix, opts);
    const key = traceKey(trace);
    let ti = index.get(key);
    if (ti === undefined) { ti = traces.length; traces.push(trace); index.set(key, ti); }
    interleavings.push({ schedule: sched.points.map((p) => p.chosen), steps: sched.log, trace: ti, problems: sched.problems });
    const alts = alternatives(prefix.length, sched.points, bound);
    for (let i = alts.length - 1; i >= 0; i--) stack.push(alts[i]);
  }
  return { traces, interleavings, complete: stack.length === 0 };
}

function permutations(n: number): number[][] {
  if (n <= 1) return [[0]];
  const out: number[][] = [];
  for (const p of permutations(n - 1)) for (let i = 0; i <= p.length; i++) out.push([...p.slice(0, i), n - 1, ...p.slice(i)]);
  return out;
}

/** The par blocks of a program: [marker index, op count]. */
export function parBlocks(program: Program): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (let i = 0; i < program.length; i++) {
    const op = program[i];
    if (op.op === "par") { const n = Math.min(op.ops, program.length - i - 1); out.push([i, n]); i += n; }
  }
  return out;
}

/** Every combination of one order per block. */
export function blockOrders(program: Program): number[][][] {
  let combos: number[][][] = [[]];
  for (const [, n] of parBlocks(program)) {
    const next: number[][][] = [];
    for (const c of combos) for (const p of permutations(n)) next.push([...c, p]);
    combos = next;
  }
  return combos;
}

/**
 * The sequential semantics (spec/notes/races.md): for every order of every block's ops, the
 * trace of running them one after another, whole, on the sequential reference (Kernel.exec:
 * the reference's own syscall functions, not the explorer's paths), the steps in program order,
 * VmPins read after the block, teardown by the original program. Keyed by traceKey.
 */
export function sequentialTraces(program: Program, config: Config, profile: ProfileId, bugs?: ReadonlySet<string>): Map<string, { order: number[][]; trace: Trace }> {
  const out = new Map<string, { order: number[][]; trace: Trace }>();
  for (const order of blockOrders(program)) {
    const trace = runSerial(program, config, profile, bugs, order);
    const key = traceKey(trace);
    if (!out.has(key)) out.set(key, { order, trace });
  }
  return out;
}

/** The sequential reference's trace of one order per block (sequentialTraces' building block). */
export function sequentialTrace(program: Program, config: Config, profile: ProfileId, bugs: ReadonlySet<string> | undefined, order: number[][]): Trace {
  return runSerial(program, config, profile, bugs, order);
}

function runSerial(program: Program, config: Config, profile: ProfileId, bugs: ReadonlySet<string> | undefined, order: number[][]): Trace {
  const k = new Kernel(config, profile, bugs);
  const steps: Step[] = [];
  const backend = "model";
  let block = 0;
  try {
    for (let i = 0; i < program.length; i++) {
      const op = program[i];
      steps.push(k.exec(op));
      if (op.op !== "par") continue;
      const n = Math.min(op.ops, program.length - i - 1);
      const perm = order[block++];
      const tasks = new Array(n);
      const res = new Array<Step>(n);
      for (const j of perm) {
        res[j] = k.exec(program[i + 1 + j]);
        tasks[j] = k.lastTask;
      }
      for (let j = 0; j < n; j++) {
        res[j].vmPinKb = program[i + 1 + j].op === "exit" ? 0 : k.vmPinKb(tasks[j]);
        steps.push(res[j]);
      }
      i += n;
    }
    return { backend, kernel: null, steps, audit: k.finish(program) };
  } catch (e) {
    if (e instanceof KernelOops) return { backend, kernel: null, steps, audit: null, aborted: e.message };
    throw e;
  }
}

/** The same as sequentialTraces, through the explorer's own paths run serially (for options
 *  the sequential reference does not have, such as accountingRace). */
export function serialExplorerTraces(program: Program, config: Config, profile: ProfileId, bugs: ReadonlySet<string> | undefined, opts: ExploreOptions): Map<string, { order: number[][]; trace: Trace }> {
  const out = new Map<string, { order: number[][]; trace: Trace }>();
  for (const order of blockOrders(program)) {
    const { trace } = executeOnce(program, config, profile, bugs, [], opts, order);
    const key = traceKey(trace);
    if (!out.has(key)) out.set(key, { order, trace });
  }
  return out;
}

/** The interleavings whose trace no sequential order explains, or that met a sanity problem. */
export function unexplained(ex: Exploration, sequential: ReadonlyMap<string, unknown>): Interleaving[] {
  const bad = new Set<number>();
  ex.traces.forEach((t, i) => { if (!sequential.has(traceKey(t))) bad.add(i); });
  return ex.interleavings.filter((il) => bad.has(il.trace) || il.problems.length > 0);
}

/** A fixed set of small par programs for benchExplorer (the races' shapes: two munmaps of one
 *  buffer from two mms, munmap against SET_OUTPUT, two AUX mmaps of one buffer, three tasks). */
export function benchPrograms(): Program[] {
  const open = (ev: string, pmu: "sw" | "aux" = "sw"): Op => ({ op: "open", ev, pmu });
  const mmap = (map: string, ev: string, pages: number, proc = "p0", pgoff = 0): Op => ({ op: "mmap", proc, map, ev, pages, pgoff, prot: "rw" });
  const fork = (proc: string): Op => ({ op: "fork", proc, from: "p0" });
  return [
    [open("e0"), open("e1"), mmap("m0", "e0", 3), { op: "setOutput", ev: "e1", target: "e0" }, fork("p1"), mmap("m1", "e1", 3, "p1"),
      { op: "par", ops: 2 }, { op: "munmap", map: "m0" }, { op: "munmap", proc: "p1", map: "m1" }],
    [open("e0"), open("e1"), mmap("m0", "e0", 2), fork("p1"),
      { op: "par", ops: 2 }, { op: "munmap", map: "m0" }, { op: "setOutput", proc: "p1", ev: "e1", target: "e0" }, mmap("m1", "e1", 3, "p1")],
    [open("e0", "aux"), open("e1", "aux"), mmap("m0", "e0", 3), { op: "setAux", map: "m0", offsetPages: 3, sizePages: 2 },
      { op: "setOutput", ev: "e1", target: "e0" }, fork("p1"), { op: "par", ops: 2 }, mmap("m1", "e0", 2, "p0", 3), mmap("m2", "e1", 2, "p1", 3)],
    [open("e0"), mmap("m0", "e0", 2), fork("p1"), fork("p2"),
      { op: "par", ops: 3 }, { op: "munmap", map: "m0" }, mmap("m1", "e0", 2, "p1"), { op: "close", proc: "p2", ev: "e0" }],
  ];
}

/** Interleavings explored per second over `programs` (each explored whole, bound as given),
 *  for bench/. */
export function benchExplorer(programs: readonly Program[], config: Config, profile: ProfileId, opts: ExploreOptions = {}, bugs?: ReadonlySet<string>): { interleavings: number; seconds: number; perSecond: number } {
  const t0 = performance.now();
  let n = 0;
  for (const p of programs) n += exploreReference(p, config, profile, bugs, opts).interleavings.length;
  const seconds = (performance.now() - t0) / 1000;
  return { interleavings: n, seconds, perSecond: n / Math.max(seconds, 1e-9) };
}

// the sequential reference's deferred __fput() runner, re-exported for tests that drive Kernel by hand
export { runPendingReleases };
