/**
 * Allowed-outcome SETS: allocations may fail (ENOMEM), the AUX PMU may refuse (ENOMEM),
 * with the fault switch on AUX allocation is ENOMEM only, and the preferred transition
 * (success) comes first. checkTrace follows whichever the trace shows.
 */
import { describe, expect, it } from "vitest";
import { checkTrace, initialState, step, type SpecState } from "../../spec/index.ts";
import { CFG, PROFILES, o, outcomes, specTrace } from "./helpers.ts";

function at(prog: Parameters<typeof specTrace>[0], profile: (typeof PROFILES)[number]): SpecState {
  let s = initialState(CFG, profile);
  for (const op of prog) s = step(s, op, profile)[0].next;
  return s;
}

describe("outcome sets", () => {
  it("a new data buffer: ok first, ENOMEM allowed (rb_alloc)", () => {
    for (const p of PROFILES) {
      const ts = step(at([o.open("e0")], p), o.mmap("m0", "e0", 3), p);
      expect(outcomes(ts)).toEqual([{ ok: true }, { errno: "ENOMEM" }]);
      expect(ts.map((t) => t.rule)).toEqual(["mmap.data.new", "mmap.data.enomem"]);
    }
  });

  it("re-mapping an existing buffer allocates nothing: one outcome", () => {
    for (const p of PROFILES) {
      const ts = step(at([o.open("e0"), o.mmap("m0", "e0", 3)], p), o.mmap("m1", "e0", 3), p);
      expect(outcomes(ts)).toEqual([{ ok: true }]);
    }
  });

  it("a new AUX area: ok, or ENOMEM (allocation, or setup_aux refusing); the seed's two failures leave different states", () => {
    const pre = [o.openAux("e0"), o.mmap("m0", "e0", 3), o.setAux("m0", 4, 4)];
    for (const p of PROFILES) {
      const ts = step(at(pre, p), o.mmap("m1", "e0", 4, 4), p);
      if (p === "seed") {
        expect(ts.map((t) => t.rule)).toEqual(["mmap.aux.new", "mmap.aux.enomem", "mmap.aux.setup-refused"]);
        // kzalloc failure: nothing kept, the AUX area can be mapped later; setup_aux failure: pages kept (EINVAL later)
        expect(outcomes(step(ts[1].next, o.mmap("m2", "e0", 4, 4), p))[0]).toEqual({ ok: true });
        expect(outcomes(step(ts[2].next, o.mmap("m2", "e0", 4, 4), p))).toEqual([{ errno: "EINVAL" }]);
      } else {
        expect(ts.map((t) => t.rule)).toEqual(["mmap.aux.new", "mmap.aux.enomem"]);
      }
      expect(outcomes(ts).slice(1).every((x) => "errno" in x && x.errno === "ENOMEM")).toBe(true);
    }
  });

  it("with the fault switch on, AUX allocation gives ENOMEM only", () => {
    for (const p of PROFILES) {
      const ts = step(at([o.openAux("e0"), o.mmap("m0", "e0", 3), o.setAux("m0", 4, 4), o.fault(true)], p), o.mmap("m1", "e0", 4, 4), p);
      expect(outcomes(ts)).toEqual([{ errno: "ENOMEM" }]);
      expect(ts[0].rule).toBe("mmap.aux.setup-refused");
    }
  });

  it("checkTrace follows an observed ENOMEM and accepts the rest of the program", () => {
    const prog = [o.open("e0"), o.mmap("m0", "e0", 3), o.mmap("m1", "e0", 5)];
    for (const p of PROFILES) {
      const trace = specTrace(prog, p);
      trace.steps[1] = { outcome: { errno: "ENOMEM" }, vmPinKb: 0 };
      // after ENOMEM e0 has no buffer: a 5-page mapping is a new buffer (ok), not EINVAL
      expect(checkTrace(prog, CFG, p, trace).accepted).toBe(false);
      trace.steps[2] = { outcome: { ok: true }, vmPinKb: 0 };
      expect(checkTrace(prog, CFG, p, trace).accepted).toBe(true);
      trace.steps[2] = { outcome: { errno: "EINVAL" }, vmPinKb: 0 };
      expect(checkTrace(prog, CFG, p, trace).accepted).toBe(false);
    }
  });

  it("every op kind has at least one transition on an empty machine, and a dead handle answers EBADF/SIGSEGV", () => {
    const ops = [o.close("e0"), o.mmap("m0", "e0", 2), o.munmap("m0"), o.mremap("m0", 1, 1), o.mprotect("m0", "r", 0, 1), o.fixedAnon("m0", 0, 1), o.setAux("m0", 1, 1),
      o.setOutput("e0", null), o.rlimit(1), o.sysctl(4), o.fault(true), o.touch("m0", 0), o.read("m0")];
    for (const p of PROFILES) {
      const s = initialState(CFG, p);
      for (const op of ops) expect(step(s, op, p).length).toBeGreaterThan(0);
      expect(outcomes(step(s, o.close("e0"), p))).toEqual([{ errno: "EBADF" }]);
      expect(outcomes(step(s, o.touch("m0", 0), p))).toEqual([{ signal: "SIGSEGV" }]);
    }
  });
});
