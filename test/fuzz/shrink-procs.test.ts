/**
 * The shrinker on processes and users (issue 13): it removes a process or user that a
 * failing predicate does not need (the fork, everything the process runs, its exit, its
 * descendants), keeps the ones it needs, renames users down, renumbers p/u handles with p0
 * first, drops explicit procs that name the default, and every candidate it tries is valid.
 */
import { describe, expect, it } from "vitest";
import { decode, genesAt, type GenOptions } from "../../fuzz/generate.ts";
import { renumber, runnable, shrink, shrinkProgram, withoutDefaultProcs, withoutProc } from "../../fuzz/shrink.ts";
import { opProc, programHandles, type Config, type Op, type Program } from "../../spec/program.ts";

const config: Config = { pageSize: 4096, cpus: 2, mlockKb: 516, memlockPages: 16, capIpcLock: false, paranoid: 2, pmus: { aux: "model_aux" } };
const gen: GenOptions = { config, maxOps: 20 };

/** Predicate wrapper that also asserts every candidate the shrinker tries is valid. */
const checked = (pred: (p: Program) => boolean) => (p: Program) => {
  expect(runnable(p)).toBe(true);
  return pred(p);
};
const mmapIn = (p: Program, which: (proc: string) => boolean) => {
  const { mapProc } = programHandles(p);
  return p.some((op) => op.op === "mmap" && which(opProc(op, mapProc)));
};
/** The first generated program (seed 21) that satisfies pred and has at least minProcs processes. */
const find = (pred: (p: Program) => boolean, minProcs: number) => {
  for (let i = 0; i < 20000; i++) {
    const genes = genesAt(21, i, gen);
    const p = decode(genes, gen);
    if (programHandles(p).procs.length >= minProcs && pred(p)) return { genes, p };
  }
  throw new Error("no such program");
};

describe("shrink: processes and users", () => {
  it("an mmap in a child: shrinks to open, fork, mmap in p1 (other processes and users gone)", async () => {
    const pred = (p: Program) => mmapIn(p, (q) => q !== "p0");
    const { genes, p } = find((q) => pred(q) && q.some((op) => op.op === "setuid"), 3);
    expect(programHandles(p).procs.length).toBeGreaterThanOrEqual(3);
    const r = await shrink(genes, gen, checked(pred));
    expect(r.program).toHaveLength(3);
    const h = programHandles(r.program);
    expect(h.procs).toEqual(["p0", "p1"]);
    expect(h.users).toEqual(["u0"]);
    expect(r.program.filter((op) => op.op === "fork")).toEqual([{ op: "fork", proc: "p1", from: "p0" }]);
    expect(pred(r.program)).toBe(true);
  });

  it("an mmap in a grandchild: keeps both forks, the chain p0 -> p1 -> p2", async () => {
    const pred = (p: Program) => {
      const parent = new Map<string, string>();
      for (const op of p) if (op.op === "fork") parent.set(op.proc, op.from);
      return mmapIn(p, (q) => (parent.get(q) ?? "p0") !== "p0");
    };
    const { genes } = find(pred, 3);
    const r = await shrink(genes, gen, checked(pred));
    expect(r.program.filter((op) => op.op === "fork")).toEqual([{ op: "fork", proc: "p1", from: "p0" }, { op: "fork", proc: "p2", from: "p1" }]);
    expect(r.program).toHaveLength(4);
    expect(programHandles(r.program).users).toEqual(["u0"]);
  });

  it("an mmap under another user: keeps one setuid (renamed u1), removes every process", async () => {
    const pred = (p: Program) => {
      const user = new Map([["p0", "u0"]]);
      const { mapProc } = programHandles(p);
      for (const op of p) {
        if (op.op === "fork") user.set(op.proc, user.get(op.from)!);
        if (op.op === "setuid") user.set(op.proc, op.user);
        if (op.op === "mmap" && user.get(opProc(op, mapProc)) !== "u0") return true;
      }
      return false;
    };
    const { genes } = find((p) => pred(p) && p.some((op) => op.op === "setuid" && op.user !== "u1"), 2);
    const r = await shrink(genes, gen, checked(pred));
    expect(r.program).toHaveLength(3);
    expect(programHandles(r.program).procs).toEqual(["p0"]);
    expect(r.program.filter((op) => op.op === "setuid")).toEqual([{ op: "setuid", proc: "p0", user: "u1" }]);
  });

  it("program-level: removes an irrelevant process with its descendants and ops, and an irrelevant user", async () => {
    const prog: Op[] = [
      { op: "open", ev: "e0", pmu: "aux" },
      { op: "mmap", map: "m0", ev: "e0", pages: 2, pgoff: 0, prot: "rw" },
      { op: "fork", proc: "p1", from: "p0" },
      { op: "setuid", proc: "p1", user: "u2" },
      { op: "mmap", proc: "p1", map: "m1", ev: "e0", pages: 2, pgoff: 0, prot: "rw" },
      { op: "fork", proc: "p2", from: "p1" },
      { op: "open", proc: "p2", ev: "e1", pmu: "sw" },
      { op: "sendFd", proc: "p2", to: "p0", ev: "e1" },
      { op: "setOutput", ev: "e1", target: null }, // p0's op on an event only p2 introduced: goes with p2
      { op: "fork", proc: "p3", from: "p0" },
      { op: "setuid", proc: "p3", user: "u3" },
      { op: "mmap", proc: "p3", map: "m2", ev: "e0", pages: 2, pgoff: 0, prot: "rw" },
      { op: "munmap", map: "m2" },
      { op: "exit", proc: "p2" },
      { op: "exit", proc: "p1" },
      { op: "munmap", map: "m0" },
    ];
    expect(runnable(prog)).toBe(true);
    // Needs: a re-map of e0 in a process other than p0, under a user other than u0.
    const pred = (p: Program) => {
      const user = new Map([["p0", "u0"]]);
      const { mapProc } = programHandles(p);
      return p.some((op) => {
        if (op.op === "fork") user.set(op.proc, user.get(op.from)!);
        if (op.op === "setuid") user.set(op.proc, op.user);
        return op.op === "mmap" && opProc(op, mapProc) !== "p0" && user.get(opProc(op, mapProc)) !== "u0" &&
          p.some((o) => o.op === "mmap" && o.ev === op.ev && o.map !== op.map);
      });
    };
    const r = await shrinkProgram(prog, checked(pred));
    expect(r.program).toEqual([
      { op: "open", ev: "e0", pmu: "aux" },
      { op: "mmap", map: "m0", ev: "e0", pages: 2, pgoff: 0, prot: "rw" },
      { op: "fork", proc: "p1", from: "p0" },
      { op: "setuid", proc: "p1", user: "u1" },
      { op: "mmap", proc: "p1", map: "m1", ev: "e0", pages: 2, pgoff: 0, prot: "rw" },
    ]);
  });

  it("removes a fork and its exit together (neither alone is a valid deletion)", async () => {
    const prog: Op[] = [
      { op: "open", ev: "e0", pmu: "aux" },
      { op: "fork", proc: "p1", from: "p0" },
      { op: "mmap", map: "m0", ev: "e0", pages: 3, pgoff: 0, prot: "rw" },
      { op: "mmap", proc: "p1", map: "m1", ev: "e0", pages: 3, pgoff: 0, prot: "rw" },
      { op: "exit", proc: "p1" },
    ];
    // Fails while p0 maps e0 and no child is left alive at the end (a teardown-shaped predicate).
    const pred = (p: Program) => {
      const alive = new Set<string>();
      for (const op of p) { if (op.op === "fork") alive.add(op.proc); if (op.op === "exit") alive.delete(op.proc); }
      return alive.size === 0 && p.some((op) => op.op === "mmap" && op.proc === undefined);
    };
    const r = await shrinkProgram(prog, checked(pred));
    expect(r.program).toEqual([prog[0], { ...prog[2], map: "m0" }]);
  });

  it("renames a user to a lower one when one user does (two processes under u1 instead of u1 and u2)", async () => {
    const prog: Op[] = [
      { op: "open", ev: "e0", pmu: "sw" },
      { op: "fork", proc: "p1", from: "p0" },
      { op: "setuid", proc: "p0", user: "u1" },
      { op: "mmap", map: "m0", ev: "e0", pages: 2, pgoff: 0, prot: "rw" },
      { op: "setuid", proc: "p1", user: "u2" },
      { op: "mmap", proc: "p1", map: "m1", ev: "e0", pages: 2, pgoff: 0, prot: "rw" },
    ];
    // Fails while two processes map under users other than u0.
    const pred = (p: Program) => {
      const user = new Map([["p0", "u0"]]);
      const { mapProc } = programHandles(p);
      const under = new Set<string>();
      for (const op of p) {
        if (op.op === "fork") user.set(op.proc, user.get(op.from)!);
        if (op.op === "setuid") user.set(op.proc, op.user);
        if (op.op === "mmap" && user.get(opProc(op, mapProc)) !== "u0") under.add(opProc(op, mapProc));
      }
      return under.size >= 2;
    };
    const r = await shrinkProgram(prog, checked(pred));
    expect(programHandles(r.program).users).toEqual(["u0", "u1"]);
    expect(r.program.filter((op) => op.op === "setuid").map((op) => op.op === "setuid" && op.user)).toEqual(["u1", "u1"]);
    expect(r.program).toHaveLength(6);
  });

  it("on generated multi-process programs every candidate is valid and the result still fails", async () => {
    const preds: Array<(p: Program) => boolean> = [
      (p) => p.some((op) => op.op === "exit"),
      (p) => p.some((op) => op.op === "sendFd"),
      (p) => mmapIn(p, (q) => q !== "p0") && p.some((op) => op.op === "munmap"),
      (p) => p.filter((op) => op.op === "fork").length >= 2,
    ];
    let shrunk = 0;
    for (let i = 0; i < 4000 && shrunk < 40; i++) {
      const genes = genesAt(31, i, gen);
      const p = decode(genes, gen);
      const pred = preds[i % preds.length];
      if (!pred(p)) continue;
      shrunk++;
      const r = await shrink(genes, gen, checked(pred), 300);
      expect(pred(r.program)).toBe(true);
      expect(runnable(r.program)).toBe(true);
      expect(r.program.length).toBeLessThanOrEqual(p.length);
      // Dense handles: processes p0.. in fork order, users u0.. in order of first setuid.
      const h = programHandles(r.program);
      expect(h.procs).toEqual(h.procs.map((_, k) => `p${k}`));
      expect(h.users).toEqual(h.users.map((_, k) => `u${k}`));
    }
    expect(shrunk).toBe(40);
  });

  it("withoutProc removes the process, what runs in it, its descendants, and what only they introduced", () => {
    const prog: Op[] = [
      { op: "open", ev: "e0", pmu: "sw" },
      { op: "fork", proc: "p1", from: "p0" },
      { op: "fork", proc: "p2", from: "p1" },
      { op: "open", proc: "p2", ev: "e1", pmu: "sw" },
      { op: "sendFd", proc: "p2", to: "p0", ev: "e1" },
      { op: "mmap", map: "m0", ev: "e1", pages: 2, pgoff: 0, prot: "rw" }, // p0 maps e1: stranded
      { op: "munmap", map: "m0" }, // stranded in turn
      { op: "fork", proc: "p3", from: "p0" },
      { op: "mmap", proc: "p3", map: "m1", ev: "e0", pages: 2, pgoff: 0, prot: "rw" },
      { op: "touch", map: "m1", page: 0, write: false }, // runs in p3 (the owner)
      { op: "exit", proc: "p2" },
    ];
    expect(withoutProc(prog, "p1")).toEqual([
      { op: "open", ev: "e0", pmu: "sw" },
      { op: "fork", proc: "p3", from: "p0" },
      { op: "mmap", proc: "p3", map: "m1", ev: "e0", pages: 2, pgoff: 0, prot: "rw" },
      { op: "touch", map: "m1", page: 0, write: false },
    ]);
    expect(withoutProc(prog, "p3")).toEqual(prog.slice(0, 7).concat(prog.slice(10)));
    expect(withoutProc(prog, "p0")).toBeNull();
    // Renumbered: p3 becomes p1 once p1 and p2 are gone.
    expect(renumber(withoutProc(prog, "p1")!)[1]).toEqual({ op: "fork", proc: "p1", from: "p0" });
  });

  it("renumber keeps p0 first and renames processes in fork order, users in order of first setuid", () => {
    const prog: Op[] = [
      { op: "fork", proc: "p3", from: "p0" },
      { op: "setuid", proc: "p3", user: "u2" },
      { op: "fork", proc: "p1", from: "p3" },
      { op: "setuid", proc: "p0", user: "u0" },
      { op: "setuid", proc: "p1", user: "u3" },
      { op: "rlimit", proc: "p1", memlockPages: 4 },
      { op: "exit", proc: "p3" },
    ];
    expect(renumber(prog)).toEqual([
      { op: "fork", proc: "p1", from: "p0" },
      { op: "setuid", proc: "p1", user: "u1" },
      { op: "fork", proc: "p2", from: "p1" },
      { op: "setuid", proc: "p0", user: "u0" },
      { op: "setuid", proc: "p2", user: "u2" },
      { op: "rlimit", proc: "p2", memlockPages: 4 },
      { op: "exit", proc: "p1" },
    ]);
  });

  it("drops an explicit proc only where it names the default process", () => {
    const prog: Op[] = [
      { op: "open", proc: "p0", ev: "e0", pmu: "sw" },
      { op: "fork", proc: "p1", from: "p0" },
      { op: "mmap", proc: "p1", map: "m0", ev: "e0", pages: 2, pgoff: 0, prot: "rw" },
      { op: "touch", proc: "p1", map: "m0", page: 0, write: true },
      { op: "munmap", proc: "p0", map: "m0" },
      { op: "close", proc: "p1", ev: "e0" },
    ];
    expect(withoutDefaultProcs(prog)).toEqual([
      { op: "open", ev: "e0", pmu: "sw" },
      { op: "fork", proc: "p1", from: "p0" },
      { op: "mmap", proc: "p1", map: "m0", ev: "e0", pages: 2, pgoff: 0, prot: "rw" },
      { op: "touch", map: "m0", page: 0, write: true },
      { op: "munmap", proc: "p0", map: "m0" },
      { op: "close", proc: "p1", ev: "e0" },
    ]);
  });

  it("runnable rejects an op that runs by default in a process that has exited", () => {
    const prog: Op[] = [
      { op: "open", ev: "e0", pmu: "sw" },
      { op: "fork", proc: "p1", from: "p0" },
      { op: "mmap", proc: "p1", map: "m0", ev: "e0", pages: 2, pgoff: 0, prot: "rw" },
      { op: "exit", proc: "p1" },
      { op: "munmap", map: "m0" },
    ];
    expect(runnable(prog)).toBe(false);
    expect(runnable(prog.slice(0, 4))).toBe(true);
    expect(runnable([...prog.slice(0, 4), { op: "munmap", proc: "p0", map: "m0" }])).toBe(true);
  });
});
