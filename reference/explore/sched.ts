/**
 * The lock-level scheduler of the explorer (spec/notes/races.md "Lock-level reference").
 *
 * A par block's ops run as tasks, each a generator (paths.ts) that yields a request before
 * every step that touches state another task can see: taking a lock (mm->mmap_lock,
 * event->mmap_mutex, rb->aux_mutex) or an atomic/refcount operation. Code between two yields
 * runs atomically. A task whose next request is a lock another task holds is blocked.
 *
 * Interleavings are enumerated by stateless depth-first search with re-execution: each
 * execution replays a prefix of scheduling choices from a fresh Kernel, then runs on with the
 * default choice (keep the running task, else the lowest enabled one), recording every point
 * where more than one task was enabled. Every alternative at every recorded point past the
 * prefix becomes a new prefix, within a preemption bound (a switch away from a task that could
 * have gone on costs one; CHESS, Musuvathi and Qadeer, PLDI 2007). With an unbounded budget
 * the search is exhaustive.
 */
import type { Kernel } from "../kernel.ts";
import type { MmStruct, PerfBuffer, PerfEvent, TaskStruct } from "../objects.ts";
import type { PathOptions } from "./paths.ts";

export type LockKind = "mmap_lock" | "mmap_mutex" | "aux_mutex";
export type LockObj = MmStruct | PerfEvent | PerfBuffer;

export type Req =
  | { readonly kind: "lock"; readonly lock: LockKind; readonly obj: LockObj; readonly write: boolean; readonly what: string }
  | { readonly kind: "step"; readonly what: string };

/** A syscall path, split into atomic steps. */
export type Path<T> = Generator<Req, T, void>;

/** What an interleaving's sanity checks found (refcount misuse, use after free, livelock, deadlock). */
export interface Problem { task: number; what: string }

export class Task {
  readonly id: number;
  readonly ts: TaskStruct;
  gen: Path<unknown> | null = null;
  next: Req | null = null;
  done = false;
  result: unknown = undefined;
  /** __fput()s deferred to the return to user space (task_work). */
  readonly pending: PerfEvent[] = [];
  constructor(id: number, ts: TaskStruct) {
    this.id = id;
    this.ts = ts;
  }
}

interface RwLock { writer: Task | null; readers: Set<Task> }

/** One recorded scheduling point. */
export interface Point { enabled: number[]; chosen: number; prev: number; prevEnabled: boolean; preemptions: number }

/** One execution's scheduler: locks, tasks, the choice log. */
export class Sched {
  readonly k: Kernel;
  readonly prefix: readonly number[];
  readonly points: Point[] = [];
  readonly problems: Problem[] = [];
  /** The steps taken, "t<task>: <what>", for the report. */
  readonly log: string[] = [];
  private readonly rw = new Map<LockObj, RwLock>();
  private readonly mutex = new Map<string, Map<LockObj, Task>>([["mmap_mutex", new Map()], ["aux_mutex", new Map()]]);
  running: Task | null = null;
  /** Run the tasks one after another, whole, in this order (the sequential semantics). */
  serial: readonly number[] | null = null;
  preemptions = 0;
  /** Steps of the whole execution; past maxSteps it counts as a livelock. */
  steps = 0;
  readonly maxSteps: number;

  readonly opts: PathOptions;

  constructor(k: Kernel, prefix: readonly number[], opts: PathOptions = {}, maxSteps = 2000) {
    this.k = k;
    this.opts = opts;
    this.prefix = prefix;
    this.maxSteps = maxSteps;
  }

  problem(task: Task | null, what: string): void {
    this.problems.push({ task: task ? task.id : -1, what });
  }

  private lockFree(t: Task, r: Extract<Req, { kind: "lock" }>): boolean {
    if (r.lock === "mmap_lock") {
      const l = this.rw.get(r.obj);
      if (!l) return true;
      if (r.write) return l.writer === null && l.readers.size === 0;
      return l.writer === null;
    }
    const owner = this.mutex.get(r.lock)!.get(r.obj);
    if (owner === t) throw new Error(`t${t.id}: recursive ${r.lock} (${r.what})`);
    return owner === undefined;
  }

  private grant(t: Task, r: Extract<Req, { kind: "lock" }>): void {
    if (r.lock === "mmap_lock") {
      let l = this.rw.get(r.obj);
      if (!l) { l = { writer: null, readers: new Set() }; this.rw.set(r.obj, l); }
      if (r.write) l.writer = t;
      else l.readers.add(t);
      return;
    }
    this.mutex.get(r.lock)!.set(r.obj, t);
  }

  /** mutex_unlock() / mmap_write_unlock() / mmap_read_unlock(). */
  unlock(t: Task, lock: LockKind, obj: LockObj): void {
    if (lock === "mmap_lock") {
      const l = this.rw.get(obj);
      if (!l) throw new Error(`t${t.id}: unlock of a free mmap_lock`);
      if (l.writer === t) l.writer = null;
      else if (!l.readers.delete(t)) throw new Error(`t${t.id}: unlock of an mmap_lock it does not hold`);
      return;
    }
    const m = this.mutex.get(lock)!;
    if (m.get(obj) !== t) throw new Error(`t${t.id}: unlock of a ${lock} it does not hold`);
    m.delete(obj);
  }

  /** mmap_write_downgrade(). */
  downgrade(t: Task, obj: LockObj): void {
    const l = this.rw.get(obj)!;
    if (l.writer !== t) throw new Error(`t${t.id}: downgrade without the write lock`);
    l.writer = null;
    l.readers.add(t);
  }

  enabled(t: Task): boolean {
    if (t.done) return false;
    const r = t.next!;
    return r.kind === "step" || this.lockFree(t, r);
  }

  /** Runs the tasks to completion, choosing by the prefix, then by default. Returns false on a
   *  deadlock or livelock (the tasks still running are abandoned; the problem is recorded). */
  run(tasks: Task[], resume: (t: Task) => void): boolean {
    for (;;) {
      const live = tasks.filter((t) => !t.done);
      if (live.length === 0) return true;
      const en = live.filter((t) => this.enabled(t));
      if (en.length === 0) {
        this.problem(null, `deadlock: ${live.map((t) => `t${t.id} waits for ${describe(t.next!)}`).join(", ")}`);
        return false;
      }
      if (++this.steps > this.maxSteps) {
        this.problem(null, `livelock: no task finished within ${this.maxSteps} steps`);
        return false;
      }
      let chosen: Task;
      if (this.serial) {
        const id = this.serial.find((i) => !tasks[i].done)!;
        chosen = tasks[id];
        if (!en.includes(chosen)) throw new Error(`serial order: t${id} is blocked`);
      } else if (en.length === 1) chosen = en[0];
      else {
        const prev = this.running;
        const prevEnabled = prev !== null && en.includes(prev);
        const i = this.points.length;
        let id: number;
        if (i < this.prefix.length) id = this.prefix[i];
        else id = prevEnabled ? prev!.id : en[0].id;
        const c = en.find((t) => t.id === id);
        if (!c) throw new Error(`schedule prefix names t${id}, not enabled at point ${i}`);
        chosen = c;
        this.points.push({ enabled: en.map((t) => t.id), chosen: id, prev: prev ? prev.id : -1, prevEnabled, preemptions: this.preemptions });
        if (prevEnabled && chosen !== prev) this.preemptions++;
      }
      const r = chosen.next!;
      if (r.kind === "lock") this.grant(chosen, r);
      this.log.push(`t${chosen.id}: ${describe(r)}`);
      this.running = chosen;
      resume(chosen);
    }
  }
}

export function describe(r: Req): string {
  return r.kind === "lock" ? `${r.lock}${r.lock === "mmap_lock" ? (r.write ? "(w)" : "(r)") : ""} ${r.what}` : r.what;
}

/** The prefixes an execution's recorded points open up (depth-first order), within `bound`
 *  preemptions. */
export function alternatives(prefixLen: number, points: readonly Point[], bound: number): number[][] {
  const out: number[][] = [];
  for (let i = points.length - 1; i >= prefixLen; i--) {
    const p = points[i];
    for (const alt of p.enabled) {
      if (alt === p.chosen) continue;
      const cost = p.prevEnabled && alt !== p.prev ? 1 : 0;
      if (p.preemptions + cost > bound) continue;
      const prefix = points.slice(0, i).map((q) => q.chosen);
      prefix.push(alt);
      out.push(prefix);
    }
  }
  return out;
}
