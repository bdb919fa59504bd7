/**
 * The explorer's scheduler (reference/explore/sched.ts) on synthetic tasks: mutual exclusion,
 * deadlock and livelock detection, and the depth-first enumeration of schedules (every
 * interleaving of two 2-step tasks exactly once when unbounded: C(4,2) = 6).
 */
import { describe, expect, it } from "vitest";
import { Kernel } from "../../reference/kernel.ts";
import { PerfEvent } from "../../reference/objects.ts";
import { Sched, Task, alternatives, type Path, type Req } from "../../reference/explore/sched.ts";
import { CONFIG } from "./helpers.ts";

type Body = (x: Sched, t: Task, a: PerfEvent, b: PerfEvent, log: string[]) => Path<void>;

function runAll(bodies: Body[], bound: number): { logs: string[][]; problems: string[][] } {
  const logs: string[][] = [];
  const problems: string[][] = [];
  const stack: number[][] = [[]];
  while (stack.length) {
    const prefix = stack.pop()!;
    const k = new Kernel(CONFIG, "6.1");
    const a = new PerfEvent("e0", false, -1, false, k.init);
    const b = new PerfEvent("e1", false, -1, false, k.init);
    const x = new Sched(k, prefix, {}, 50);
    const log: string[] = [];
    const tasks = bodies.map((body, i) => {
      const t = new Task(i, k.init);
      t.gen = body(x, t, a, b, log);
      return t;
    });
    const resume = (t: Task) => {
      const r = t.gen!.next();
      if (r.done) { t.done = true; t.next = null; } else t.next = r.value;
    };
    for (const t of tasks) resume(t);
    x.run(tasks, resume);
    logs.push(log);
    problems.push(x.problems.map((p) => p.what));
    const alts = alternatives(prefix.length, x.points, bound);
    for (let i = alts.length - 1; i >= 0; i--) stack.push(alts[i]);
  }
  return { logs, problems };
}

const step = (what: string): Req => ({ kind: "step", what });
const lock = (obj: PerfEvent, what: string): Req => ({ kind: "lock", lock: "mmap_mutex", obj, write: true, what });

describe("explorer scheduler", () => {
  it("enumerates every interleaving of two 2-step tasks once (unbounded)", () => {
    const body = (name: string): Body => function* (_x, _t, _a, _b, log) {
      yield step(`${name}1`); log.push(`${name}1`);
      yield step(`${name}2`); log.push(`${name}2`);
    };
    const { logs } = runAll([body("a"), body("b")], Infinity);
    const seen = logs.map((l) => l.join(""));
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen.sort()).toEqual(["a1a2b1b2", "a1b1a2b2", "a1b1b2a2", "b1a1a2b2", "b1a1b2a2", "b1b2a1a2"]);
    // with no preemption only the two serial orders remain
    expect(runAll([body("a"), body("b")], 0).logs.map((l) => l.join("")).sort()).toEqual(["a1a2b1b2", "b1b2a1a2"]);
  });

  it("a held mutex blocks: the critical sections never overlap", () => {
    const body = (name: string): Body => function* (x, t, a, _b, log) {
      yield lock(a, "a");
      log.push(`${name}<`);
      yield step("inside");
      log.push(`${name}>`);
      x.unlock(t, "mmap_mutex", a);
    };
    const { logs } = runAll([body("p"), body("q")], Infinity);
    expect(logs.length).toBeGreaterThan(1);
    for (const l of logs) expect(["p<p>q<q>", "q<q>p<p>"]).toContain(l.join(""));
  });

  it("finds the deadlock of two tasks locking two mutexes in opposite orders", () => {
    const body = (first: "a" | "b"): Body => function* (x, t, a, b) {
      const [m1, m2] = first === "a" ? [a, b] : [b, a];
      yield lock(m1, "first");
      yield lock(m2, "second");
      x.unlock(t, "mmap_mutex", m2);
      x.unlock(t, "mmap_mutex", m1);
    };
    const { problems } = runAll([body("a"), body("b")], Infinity);
    expect(problems.some((p) => p.some((w) => w.startsWith("deadlock")))).toBe(true);
    expect(problems.some((p) => p.length === 0)).toBe(true);
  });

  it("reports a task that never finishes as a livelock", () => {
    const spin: Body = function* () { for (;;) yield step("retry"); };
    const { problems } = runAll([spin], 0);
    expect(problems[0][0]).toMatch(/^livelock/);
  });
});
