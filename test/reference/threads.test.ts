/**
 * Tasks and par blocks on the sequential reference (issue 14, spec/notes/races.md "Tasks" and
 * "Observation"): a thread shares its process's fd table, mm (VMAs, pinned_vm) and
 * RLIMIT_MEMLOCK; it is its own hw.target; exit of a task ends the process only with its last
 * task; a par block runs its ops in listed order, the marker answers {ok} with VmPin 0 and the
 * block's ops report their task's VmPin after the whole block. Expectations derived by hand.
 */
import { describe, expect, it } from "vitest";
import type { Op, Program } from "../../spec/program.ts";
import { programProblems } from "../../spec/program.ts";
import { ALL, CONFIG, outs, run } from "./helpers.ts";

const open = (ev: string, proc?: string): Op => (proc ? { op: "open", proc, ev, pmu: "sw" } : { op: "open", ev, pmu: "sw" });
const mmap = (map: string, ev: string, pages: number, proc?: string): Op => (proc ? { op: "mmap", proc, map, ev, pages, pgoff: 0, prot: "rw" } : { op: "mmap", map, ev, pages, pgoff: 0, prot: "rw" });

function check(p: Program): Program {
  expect(programProblems(p)).toEqual([]);
  return p;
}

describe("threads share the fd table, the mm and the rlimit", () => {
  for (const profile of ALL) {
    it(`${profile}: an fd opened in a thread is closed from the main task; a forked child's is not`, () => {
      const thr = check([{ op: "thread", proc: "p1", from: "p0" }, open("e0", "p1"), { op: "close", ev: "e0" }]);
      expect(outs(run(profile, thr))).toEqual(["ok", "ok", "ok"]);
      const frk = check([{ op: "fork", proc: "p1", from: "p0" }, open("e0", "p1"), { op: "close", ev: "e0" }]);
      expect(outs(run(profile, frk))).toEqual(["ok", "ok", "EBADF"]);
    });

    it(`${profile}: a mapping made by a thread is the main task's too; exit of the thread keeps it`, () => {
      const p = check([
        open("e0"), { op: "thread", proc: "p1", from: "p0" }, mmap("m0", "e0", 2, "p1"),
        { op: "touch", proc: "p0", map: "m0", page: 0, write: false },
        { op: "exit", proc: "p1" },
        { op: "touch", proc: "p0", map: "m0", page: 0, write: false },
      ]);
      expect(outs(run(profile, p))).toEqual(["ok", "ok", "ok", "ok", "ok", "ok"]);
      // with fork the child's mapping is in its own mm: p0 sees nothing there
      const f = check([open("e0"), { op: "fork", proc: "p1", from: "p0" }, mmap("m0", "e0", 2, "p1"), { op: "touch", proc: "p0", map: "m0", page: 0, write: false }]);
      expect(outs(run(profile, f))).toEqual(["ok", "ok", "ok", "SIGSEGV"]);
    });

    it(`${profile}: the process's mm goes with its last task`, () => {
      // p1 forked, p2 a thread of p1: exit p1 leaves the mapping (p2 still touches it);
      // exit p2 closes it (the buffer's charge comes back: budget 258 = (516 / 4) * 2)
      const p = check([
        open("e0"), { op: "fork", proc: "p1", from: "p0" }, { op: "thread", proc: "p2", from: "p1" },
        mmap("m0", "e0", 3, "p1"),
        { op: "exit", proc: "p1" },
        { op: "touch", proc: "p2", map: "m0", page: 0, write: false },
        { op: "exit", proc: "p2" },
      ]);
      const t = run(profile, p);
      expect(outs(t)).toEqual(["ok", "ok", "ok", "ok", "ok", "ok", "ok"]);
      expect(t.audit!.budgetPages).toBe(258);
    });

    it(`${profile}: set_output between the events of two threads (cpu -1) is EINVAL (hw.target)`, () => {
      const p = check([{ op: "thread", proc: "p1", from: "p0" }, open("e0"), open("e1", "p1"), open("e2"), mmap("m0", "e0", 2),
        { op: "setOutput", ev: "e1", target: "e0" }, { op: "setOutput", ev: "e2", target: "e0" }]);
      expect(outs(run(profile, p))).toEqual(["ok", "ok", "ok", "ok", "ok", "EINVAL", "ok"]);
    });
  }

  it("RLIMIT_MEMLOCK set in a thread holds for the process", () => {
    // limit 2 pages per user (mlock 4 kB, 2 CPUs); a 3-page buffer needs 1 pinned page: with
    // RLIMIT_MEMLOCK 0 set in the thread, the main task's mmap is EPERM
    const p = check([{ op: "thread", proc: "p1", from: "p0" }, open("e0"), { op: "sysctlMlock", kb: 4 },
      { op: "rlimit", proc: "p1", memlockPages: 0 }, mmap("m0", "e0", 3)]);
    expect(outs(run("6.1", p))).toEqual(["ok", "ok", "ok", "ok", "EPERM"]);
  });
});

describe("par blocks run sequentially", () => {
  for (const profile of ALL) {
    it(`${profile}: the marker is {ok} VmPin 0; the block's ops report VmPin after the block`, () => {
      // limit 2 pages; each 3-page buffer: the first charges locked_vm 2 + pinned 1, the second
      // pinned 3 (seed: no split charge, all to locked_vm and pinned 0 ... see below)
      const p = check([open("e0"), open("e1"), { op: "thread", proc: "p1", from: "p0" }, { op: "sysctlMlock", kb: 4 },
        { op: "par", ops: 2 }, mmap("m0", "e0", 3), mmap("m1", "e1", 3, "p1")]);
      const t = run(profile, p);
      expect(outs(t)).toEqual(["ok", "ok", "ok", "ok", "ok", "ok", "ok"]);
      expect(t.steps[4].vmPinKb).toBe(0);
      // both ops see the mm's pinned_vm after both mmaps
      expect(t.steps[5].vmPinKb).toBe(t.steps[6].vmPinKb);
      // and it is what a later op of p0 sees
      const after = run(profile, [...p, { op: "readUserPage", map: "m0" }]);
      expect(after.steps[7].vmPinKb).toBe(t.steps[5].vmPinKb);
      if (profile !== "seed") expect(t.steps[5].vmPinKb).toBe(16); // pinned 1 + 3 pages
    });
  }

  it("an exit in a block reports VmPin 0", () => {
    const p = check([open("e0"), { op: "fork", proc: "p1", from: "p0" }, { op: "par", ops: 2 }, { op: "exit", proc: "p1" }, mmap("m0", "e0", 2)]);
    const t = run("6.12", p, CONFIG);
    expect(outs(t)).toEqual(["ok", "ok", "ok", "ok", "ok"]);
    expect(t.steps[3].vmPinKb).toBe(0);
  });
});
