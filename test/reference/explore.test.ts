/**
 * The lock-level explorer (reference/explore/, spec/notes/races.md):
 * - run without preemption, each block in listed order, its first interleaving's trace is the
 *   sequential reference's (runReference) on random par programs, every profile;
 * - linearizability of the clean reference: on random par programs, every interleaving's trace
 *   is the trace of some order of the block's ops on the sequential reference, with no sanity
 *   problem. On the profiles whose perf_mmap_close() drops rb->mmap_count before
 *   event->mmap_count (5.10 .. 6.18: "rb-first") the kernel itself is not linearizable: two
 *   closers of one event in two mms can split the two zero crossings between them, so nobody
 *   detaches or refunds. There every unexplained interleaving must go away when the close is
 *   switched to 7.2.13's events-first order (the only race of the clean paths), and a
 *   hand-written program shows it;
 * - the schedule search itself: exhaustive counts for a small block, the preemption bound.
 */
import { describe, expect, it } from "vitest";
import type { Program, ProfileId } from "../../spec/program.ts";
import { PROFILES } from "../../spec/program.ts";
import { runReference } from "../../reference/index.ts";
import { ERAS } from "../../reference/era.ts";
import { benchExplorer, blockOrders, executeOnce, exploreReference, sequentialTrace, sequentialTraces, traceKey, unexplained } from "../../reference/explore/index.ts";
import { BUGS } from "../../reference/index.ts";
import { CONFIG } from "./helpers.ts";
import { genParPrograms } from "./race-gen.ts";
import { CLOSE_CLOSE_ONE_EVENT } from "./race-programs.ts";

const PROGRAMS = genParPrograms(1000, 150);
const RB_FIRST = (p: ProfileId) => ERAS[p].perf !== "seed" && !ERAS[p].closeEventFirst;

describe("explorer: the listed order without preemption is the sequential reference", () => {
  for (const profile of PROFILES) {
    it(profile, () => {
      for (const p of PROGRAMS.slice(0, 60)) {
        const ex = exploreReference(p, CONFIG, profile, undefined, { preemptionBound: 0 });
        expect(ex.complete).toBe(true);
        expect(traceKey(ex.traces[0]), JSON.stringify(p)).toBe(traceKey(runReference(p, CONFIG, profile)));
        expect(ex.interleavings[0].problems).toEqual([]);
      }
    });
  }
});

describe("explorer: every serial order through the explorer's paths is the sequential reference's, each sequential bug on", () => {
  // the explorer's ports carry the sequential bugs' switches where the sync functions do
  it("no bug, every profile", () => {
    for (const profile of PROFILES) {
      for (const p of PROGRAMS.slice(0, 40)) {
        for (const order of blockOrders(p)) {
          const { trace } = executeOnce(p, CONFIG, profile, undefined, [], {}, order);
          expect(traceKey(trace), `${profile} ${JSON.stringify(p)} order ${JSON.stringify(order)}`).toBe(traceKey(sequentialTrace(p, CONFIG, profile, undefined, order)));
        }
      }
    }
  });
  for (const bug of BUGS.filter((b) => !b.parOnly)) {
    it(bug.id, () => {
      for (const profile of bug.profiles.filter((p) => p === "6.1" || p === "6.18" || p === "5.10" || p === "7.2")) {
        for (const p of PROGRAMS.slice(0, 40)) {
          const bugs = new Set([bug.id]);
          for (const order of blockOrders(p)) {
            // every serial order through the explorer's paths = the sequential reference's
            const { trace } = executeOnce(p, CONFIG, profile, bugs, [], {}, order);
            expect(traceKey(trace), `${profile} ${JSON.stringify(p)} order ${JSON.stringify(order)}`).toBe(traceKey(sequentialTrace(p, CONFIG, profile, bugs, order)));
          }
        }
      }
    });
  }
});

describe("explorer: the clean reference is linearizable (random par programs)", () => {
  it("the generator gives programs whose order matters", () => {
    let multi = 0;
    for (const p of PROGRAMS) if (sequentialTraces(p, CONFIG, "6.1").size > 1) multi++;
    expect(PROGRAMS.length).toBe(150);
    expect(multi).toBeGreaterThan(5);
  });

  for (const profile of PROFILES) {
    it(`${profile}${RB_FIRST(profile) ? " (apart from the rb-first close order)" : ""}`, () => {
      let interleavings = 0;
      let unexplainedPrograms = 0;
      for (const p of PROGRAMS) {
        const seq = sequentialTraces(p, CONFIG, profile);
        const ex = exploreReference(p, CONFIG, profile, undefined, { preemptionBound: 2, maxExecutions: 3000 });
        interleavings += ex.interleavings.length;
        let bad = unexplained(ex, seq);
        if (bad.length && RB_FIRST(profile)) {
          unexplainedPrograms++;
          // every one of them is the close order's race
          const ef = exploreReference(p, CONFIG, profile, undefined, { preemptionBound: 2, maxExecutions: 3000, closeEventFirst: true });
          bad = unexplained(ef, seq);
        }
        if (bad.length) {
          const b = bad[0];
          expect.fail(`${profile}: ${JSON.stringify(p)}\n${b.steps.join("\n")}\nproblems ${JSON.stringify(b.problems)}\ntrace ${JSON.stringify(ex.traces[b.trace])}`);
        }
      }
      expect(interleavings).toBeGreaterThan(PROGRAMS.length * 5);
      if (!RB_FIRST(profile)) expect(unexplainedPrograms).toBe(0);
    });
  }
});

describe("explorer: the rb-first close order's race (clean 5.10 .. 6.18)", () => {
  // One event mapped in two mms, both unmapped at once (the program of race-close-close on
  // 7.2). 6.1.192 perf_mmap_close(): `if (atomic_dec_and_test(&rb->mmap_count)) detach_rest =
  // true; if (!atomic_dec_and_mutex_lock(&event->mmap_count, ...)) goto out_put;` — when the
  // task that takes rb->mmap_count to 0 is not the one that takes the event's to 0, neither
  // detaches nor refunds: u0's 3 pages stay charged (budget 255 instead of 258).
  for (const profile of ["5.10", "6.1", "6.12", "6.18"] as const) {
    it(`${profile}: some interleaving leaks the data buffer's charge`, () => {
      const seq = sequentialTraces(CLOSE_CLOSE_ONE_EVENT, CONFIG, profile);
      expect(seq.size).toBe(1);
      const ex = exploreReference(CLOSE_CLOSE_ONE_EVENT, CONFIG, profile, undefined, { preemptionBound: Infinity });
      expect(ex.complete).toBe(true);
      const bad = unexplained(ex, seq);
      expect(bad.length).toBeGreaterThan(0);
      const audit = ex.traces[bad[0].trace].audit!;
      const seqAudit = [...seq.values()][0].trace.audit!;
      expect(seqAudit.budgetPages! - audit.budgetPages!).toBe(3);
    });
  }
  it("7.2 (events-first): none", () => {
    const seq = sequentialTraces(CLOSE_CLOSE_ONE_EVENT, CONFIG, "7.2");
    const ex = exploreReference(CLOSE_CLOSE_ONE_EVENT, CONFIG, "7.2", undefined, { preemptionBound: Infinity });
    expect(ex.complete).toBe(true);
    expect(unexplained(ex, seq)).toEqual([]);
  });
});

describe("explorer: the accounting race (option accountingRace)", () => {
  // limit (8 kB >> 2) * 2 CPUs = 4 pages; two 3-page buffers of two events, mapped from two
  // processes of u0 at once. In either order the second one's limit test sees locked_vm 3:
  // min(3, 4) + 3 - 4 = 2 pages go to its mm's pinned_vm (VmPin 8 kB). With the test and the
  // charge split, both can read locked_vm 0 and charge locked_vm only: VmPin 0 and 0.
  const p: Program = [
    { op: "open", ev: "e0", pmu: "sw" }, { op: "open", ev: "e1", pmu: "sw" }, { op: "fork", proc: "p1", from: "p0" },
    { op: "sysctlMlock", kb: 8 },
    { op: "par", ops: 2 }, { op: "mmap", map: "m0", ev: "e0", pages: 3, pgoff: 0, prot: "rw" }, { op: "mmap", proc: "p1", map: "m1", ev: "e1", pages: 3, pgoff: 0, prot: "rw" },
  ];
  for (const profile of ["6.1", "7.2"] as const) {
    it(`${profile}: atomic by default; split, both mmaps pass one limit test`, () => {
      const seq = sequentialTraces(p, CONFIG, profile);
      const pins = [...seq.values()].map((v) => v.trace.steps.slice(5).map((s) => s.vmPinKb).join(",")).sort();
      expect(pins).toEqual(["0,8", "8,0"]);
      expect(unexplained(exploreReference(p, CONFIG, profile, undefined, { preemptionBound: Infinity }), seq)).toEqual([]);
      const racy = exploreReference(p, CONFIG, profile, undefined, { preemptionBound: Infinity, accountingRace: true });
      const bad = unexplained(racy, seq);
      expect(bad.map((il) => racy.traces[il.trace].steps.slice(5).map((s) => s.vmPinKb).join(","))).toContain("0,0");
    });
  }
});

describe("explorer: the schedule search", () => {
  const p: Program = [
    { op: "open", ev: "e0", pmu: "sw" }, { op: "mmap", map: "m0", ev: "e0", pages: 2, pgoff: 0, prot: "rw" },
    { op: "fork", proc: "p1", from: "p0" },
    { op: "par", ops: 2 }, { op: "munmap", map: "m0" }, { op: "close", proc: "p1", ev: "e0" },
  ];
  it("more preemptions, no fewer interleavings; every schedule distinct; bound 0: one per first task", () => {
    const counts = [0, 1, 2, Infinity].map((b) => exploreReference(p, CONFIG, "6.1", undefined, { preemptionBound: b }));
    expect(counts[0].interleavings.length).toBe(2); // which task enters first
    for (let i = 1; i < counts.length; i++) expect(counts[i].interleavings.length).toBeGreaterThanOrEqual(counts[i - 1].interleavings.length);
    expect(counts[1].interleavings.length).toBeGreaterThan(2);
    expect(counts[3].complete).toBe(true);
    const all = counts[3].interleavings.map((il) => il.schedule.join(","));
    expect(new Set(all).size).toBe(all.length);
  });
  it("benchExplorer counts interleavings per second", () => {
    const r = benchExplorer([p], CONFIG, "6.1", { preemptionBound: Infinity });
    expect(r.interleavings).toBe(exploreReference(p, CONFIG, "6.1", undefined, { preemptionBound: Infinity }).interleavings.length);
    expect(r.perSecond).toBeGreaterThan(0);
  });
});
