/**
 * The historic races as switchable bugs (reference/bugs.ts, spec/notes/races.md): for each, a
 * hand-written par program (test/reference/race-programs.ts) for which the explorer finds,
 * with the bug on, an interleaving whose trace no order of the block's ops explains (or that
 * meets a sanity problem: double allocation, use after free, NULL dereference), and none with
 * the bug off. The programs and what they show were worked out by hand from the kernel code
 * cited in reference/explore/paths.ts; the counts printed are for the report.
 * race-map-range-aux cannot be shown with the ops (NOTES-for-lead.md: the AUX mapping's own
 * aux_mmap_count keeps the area alive under map_range()): the test pins that the explorer finds
 * nothing there either way; race-mmap-unlocked-map-range needs the mapRangeFault switch (a
 * model-only op) and shows on 6.18's rb-first close only (7.2.13's events-first close closes
 * the window).
 */
import { describe, expect, it } from "vitest";
import { BUGS } from "../../reference/index.ts";
import { exploreReference, sequentialTraces, unexplained, type ExploreOptions } from "../../reference/explore/index.ts";
import { programProblems } from "../../spec/program.ts";
import { CONFIG } from "./helpers.ts";
import { RACE_CASES, type RaceCase } from "./race-programs.ts";

function explore(c: RaceCase, bug: boolean, bound: number) {
  const bugs = bug ? new Set([c.bug]) : undefined;
  const opts: ExploreOptions = { preemptionBound: bound, maxExecutions: 60000 };
  const ex = exploreReference(c.program, CONFIG, c.profile, bugs, opts);
  const seq = sequentialTraces(c.program, CONFIG, c.profile, bugs);
  const bad = unexplained(ex, seq);
  return { ex, seq, bad, first: ex.interleavings.findIndex((il) => bad.includes(il)) };
}

describe("historic races: the explorer finds each with the bug, never without", () => {
  it("every race bug has a case, and every race bug is parOnly", () => {
    const ids = BUGS.filter((b) => b.id.startsWith("race-")).map((b) => b.id).sort();
    expect(ids).toEqual(["race-aux-serialization", "race-close-close", "race-map-range-aux", "race-mmap-unlocked-map-range", "race-setoutput-close"]);
    for (const id of ids) {
      expect(BUGS.find((b) => b.id === id)!.parOnly).toBe(true);
      expect(RACE_CASES.some((c) => c.bug === id)).toBe(true);
    }
  });

  for (const c of RACE_CASES) {
    it(`${c.bug} on ${c.profile}: ${c.expressible ? "found with the bug, none without" : "not expressible: none either way"}`, () => {
      expect(programProblems(c.program)).toEqual([]);
      const clean = explore(c, false, Infinity);
      expect(clean.ex.complete).toBe(true);
      expect(clean.bad).toEqual([]);
      // sequentially the bug changes nothing
      expect([...explore(c, true, 0).seq.keys()].sort()).toEqual([...clean.seq.keys()].sort());
      const buggy = explore(c, true, 2);
      if (c.expressible) {
        expect(buggy.bad.length).toBeGreaterThan(0);
        const b = buggy.bad[0];
        console.info(`${c.bug} ${c.profile}: clean ${clean.ex.interleavings.length} interleavings (exhaustive), all linearizable; ` +
          `bug: first unexplained after ${buggy.first + 1} of ${buggy.ex.interleavings.length} (bound 2); ` +
          `problems ${JSON.stringify(b.problems.map((p) => p.what))}; audit ${JSON.stringify(buggy.ex.traces[b.trace].audit ?? buggy.ex.traces[b.trace].aborted)}`);
      } else {
        expect(buggy.bad).toEqual([]);
      }
    });
  }

  it("race-close-close 6.1: the double refund (budget above the start)", () => {
    const c = RACE_CASES.find((x) => x.bug === "race-close-close" && x.profile === "6.1")!;
    const { ex, bad } = explore(c, true, 2);
    // both closers refund the 3 pages: u0's locked_vm ends at -3, which the 5.6+ unsigned clamp
    // probes as 0 (spec/notes/processes.md)
    expect(bad.some((il) => ex.traces[il.trace].audit?.budgetPages === 0)).toBe(true);
  });

  it("race-setoutput-close: SET_OUTPUT ok and the later mmap of another size EINVAL (the dead buffer kept)", () => {
    for (const c of RACE_CASES.filter((x) => x.bug === "race-setoutput-close")) {
      const { ex, bad } = explore(c, true, 2);
      const outs = bad.map((il) => ex.traces[il.trace].steps.slice(-2).map((s) => JSON.stringify(s.outcome)).join(" "));
      expect(outs).toContain(`{"ok":true} {"errno":"EINVAL"}`);
    }
  });

  it("race-aux-serialization: two AUX areas allocated, one leaked", () => {
    for (const c of RACE_CASES.filter((x) => x.bug === "race-aux-serialization")) {
      const { ex, bad } = explore(c, true, 2);
      const il = bad.find((b) => b.problems.some((p) => p.what.startsWith("rb_alloc_aux() over the live AUX area")))!;
      expect(il).toBeDefined();
      const audit = ex.traces[il.trace].audit!;
      expect(audit.auxSetups).toBe(2);
      expect(audit.liveAux).toBe(1);
    }
  });

  it("race-mmap-unlocked-map-range 6.18: the failing mmap's close detaches the other mmap's new buffer (NULL dereference at its munmap)", () => {
    const c = RACE_CASES.find((x) => x.bug === "race-mmap-unlocked-map-range" && x.profile === "6.18")!;
    const { ex, bad } = explore(c, true, Infinity);
    expect(bad.some((il) => ex.traces[il.trace].aborted?.includes("NULL pointer dereference in perf_mmap_close"))).toBe(true);
    // the state after the block already shows it (endStateProblems)
    expect(bad.some((il) => il.problems.some((p) => p.what === "end state: a VMA of e0 maps no buffer (event->rb NULL)"))).toBe(true);
  });

  it("race-mmap-unlocked-map-range 7.2: the events-first close spares the new buffer, but the failing re-map's charge leaks (budget 255)", () => {
    const c = RACE_CASES.find((x) => x.bug === "race-mmap-unlocked-map-range" && x.profile === "7.2")!;
    const { ex, bad, seq } = explore(c, true, Infinity);
    // every order: whichever mmap reaches map_range() first fails as a FIRST mmap (its new buffer
    // unaccounted), the other makes a new buffer: nothing leaks
    for (const { trace } of seq.values()) expect(trace.audit!.budgetPages).toBe(258);
    // with the bug the second mmap re-maps the first one's buffer before its map_range() and is
    // the one to fail: perf_mmap_rb()'s re-map charge (perf_mmap_account(), 3 pages) stays
    expect(bad.some((il) => ex.traces[il.trace].audit?.budgetPages === 255)).toBe(true);
    expect(bad.every((il) => ex.traces[il.trace].aborted === undefined)).toBe(true);
  });
});

describe("backend/model: one trace per par program", () => {
  it("without par: runReference's trace; with par: the first rejected interleaving's, else the first", async () => {
    const { modelTrace } = await import("../../backend/model.ts");
    const { runReference } = await import("../../reference/index.ts");
    const { CLOSE_CLOSE_TWO_EVENTS } = await import("./race-programs.ts");
    const seqOnly = CLOSE_CLOSE_TWO_EVENTS.filter((op) => op.op !== "par");
    const bugs = new Set(["race-close-close"]);
    expect(modelTrace(seqOnly, CONFIG, "6.1", bugs)).toEqual(runReference(seqOnly, CONFIG, "6.1", bugs));
    // a judge that accepts everything: the listed order's trace
    const first = modelTrace(CLOSE_CLOSE_TWO_EVENTS, CONFIG, "6.1", bugs, () => false);
    expect(first).toEqual(runReference(CLOSE_CLOSE_TWO_EVENTS, CONFIG, "6.1", bugs));
    // a judge that rejects the double refund (u0's budget probe 0): that trace
    const picked = modelTrace(CLOSE_CLOSE_TWO_EVENTS, CONFIG, "6.1", bugs, (t) => t.audit?.budgetPages === 0);
    expect(picked.audit!.budgetPages).toBe(0);
    expect(first.audit!.budgetPages).toBe(258);
  });
});
