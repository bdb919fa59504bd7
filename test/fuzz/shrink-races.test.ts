/**
 * The shrinker on threads and par blocks (issue 14): it drops a par marker when the failure
 * does not need the ops at once (the block runs sequentially), cuts a 3-op block to 2, keeps a
 * block that is needed, removes threads like processes, and every candidate it tries is valid.
 */
import { describe, expect, it } from "vitest";
import { decode, genesAt, type GenOptions } from "../../fuzz/generate.ts";
import { filterOps, renumber, runnable, shrink, shrinkProgram, withoutProc } from "../../fuzz/shrink.ts";
import { programProblems, type Config, type Op, type Program } from "../../spec/program.ts";

const config: Config = { pageSize: 4096, cpus: 2, mlockKb: 516, memlockPages: 16, capIpcLock: false, paranoid: 2, pmus: { aux: "model_aux" } };
const gen: GenOptions = { config, maxOps: 20 };
const checked = (pred: (p: Program) => boolean) => (p: Program) => {
  expect(runnable(p)).toBe(true);
  return pred(p);
};
const O = (ev: string, proc?: string): Op => ({ op: "open", ev, pmu: "sw", ...(proc ? { proc } : {}) });
const M = (map: string, ev: string, pages: number, proc?: string): Op => ({ op: "mmap", map, ev, pages, pgoff: 0, prot: "rw", ...(proc ? { proc } : {}) });
const U = (map: string): Op => ({ op: "munmap", map });
const FK = (proc: string, from = "p0"): Op => ({ op: "fork", proc, from });
const TH = (proc: string, from = "p0"): Op => ({ op: "thread", proc, from });
const PAR = (ops: 2 | 3): Op => ({ op: "par", ops });

/** mmaps of e0 from two different tasks inside one block */
const racingMmaps = (p: Program) => p.some((op, i) => op.op === "par" && p.slice(i + 1, i + 1 + op.ops).filter((x) => x.op === "mmap" && x.ev === "e0").length >= 2);

describe("shrink: par blocks and threads", () => {
  const prog: Program = [O("e0"), FK("p1"), TH("p2"), O("e1"), PAR(3), M("m0", "e0", 3), M("m1", "e0", 5, "p1"), O("e2", "p2"), U("m0"), M("m2", "e1", 2)];

  it("a failure needing two racing mmaps keeps a 2-op block of them and drops the rest", async () => {
    expect(programProblems(prog)).toEqual([]);
    const r = await shrinkProgram(prog, checked(racingMmaps));
    expect(r.program).toEqual([O("e0"), FK("p1"), PAR(2), M("m0", "e0", 3), M("m1", "e0", 5, "p1")]);
  });

  it("a failure that does not need the block drops the marker (sequential)", async () => {
    const pred = (p: Program) => p.some((op) => op.op === "mmap" && op.proc === "p1");
    const r = await shrinkProgram(prog, checked(pred));
    expect(r.program.some((op) => op.op === "par")).toBe(false);
    expect(r.program).toEqual([O("e0"), FK("p1"), M("m0", "e0", 5, "p1")]);
  });

  it("cuts a 3-op block to 2 when the third op need not be at once", async () => {
    const p3: Program = [O("e0"), FK("p1"), TH("p2"), PAR(3), M("m0", "e0", 3), M("m1", "e0", 5, "p1"), O("e1", "p2")];
    const pred = (p: Program) => racingMmaps(p) && p.some((op) => op.op === "open" && op.proc !== undefined && op.proc !== "p0");
    const r = await shrinkProgram(p3, checked(pred));
    expect(r.program).toEqual([O("e0"), FK("p1"), TH("p2"), PAR(2), M("m0", "e0", 3), M("m1", "e0", 5, "p1"), O("e1", "p2")]);
  });

  it("withoutProc removes a thread, what runs in it and the tasks made from it; a block losing an op shrinks or goes", () => {
    const p: Program = [O("e0"), TH("p1"), FK("p2", "p1"), PAR(3), M("m0", "e0", 3), M("m1", "e0", 5, "p1"), M("m2", "e0", 2, "p2"), U("m0")];
    expect(programProblems(p)).toEqual([]);
    expect(withoutProc(p, "p2")).toEqual([O("e0"), TH("p1"), PAR(2), M("m0", "e0", 3), M("m1", "e0", 5, "p1"), U("m0")]);
    expect(withoutProc(p, "p1")).toEqual([O("e0"), M("m0", "e0", 3), U("m0")]);
  });

  it("filterOps keeps blocks valid; renumber renames threads in order", () => {
    const p: Program = [O("e0"), FK("p1"), PAR(2), M("m0", "e0", 3), M("m1", "e0", 5, "p1")];
    expect(filterOps(p, (_, i) => i !== 3)).toEqual([O("e0"), FK("p1"), M("m1", "e0", 5, "p1")]);
    expect(renumber([TH("p3"), { op: "exit", proc: "p3" }, PAR(2), O("e5"), O("e7", "p0")] as Program))
      .toEqual([TH("p1"), { op: "exit", proc: "p1" }, PAR(2), O("e0"), O("e1", "p0")]);
  });

  it("on generated programs with blocks every candidate is valid and the result still fails", async () => {
    let n = 0;
    for (let i = 0; i < 4000 && n < 12; i++) {
      const genes = genesAt(31, i, gen);
      const p = decode(genes, gen);
      if (!p.some((op) => op.op === "par")) continue;
      n++;
      // a failure that needs a block of two ops of the same kind
      const kinds = (q: Program) => q.flatMap((op, j) => (op.op === "par" ? [q.slice(j + 1, j + 1 + op.ops).map((x) => x.op).sort().join(",")] : []));
      const want = kinds(p)[0];
      const pred = (q: Program) => kinds(q).some((k) => k === want || k.startsWith(want));
      const r = await shrink(genes, gen, checked(pred), 400);
      expect(pred(r.program)).toBe(true);
      expect(programProblems(r.program)).toEqual([]);
      expect(r.program.length).toBeLessThanOrEqual(p.length);
    }
    expect(n).toBe(12);
  });
});
