/**
 * replay --repeat: a par case on a kernel backend that repeats is run N times, every repetition
 * judged; the line counts them by verdict, and an unexplained repetition stands for the case.
 * The kernel here is the model behind a backend that answers runRepeated and spoils some
 * repetitions' audits (as a racy kernel would leak now and then).
 */
import { describe, expect, it } from "vitest";
import { modelBackend } from "../../backend/model.ts";
import type { Backend } from "../../backend/contract.ts";
import type { Program } from "../../spec/program.ts";
import type { Trace } from "../../spec/trace.ts";
import { replayCases } from "../../fuzz/replay.ts";

const PROGRAM: Program = [
  { op: "open", proc: "p0", ev: "e0", pmu: "sw" },
  { op: "fork", proc: "p1", from: "p0" },
  { op: "par", ops: 2 },
  { op: "mmap", proc: "p0", map: "m0", ev: "e0", pages: 2, pgoff: 0, prot: "rw" },
  { op: "open", proc: "p1", ev: "e1", pmu: "sw" },
] as Program;

function repeating(spoil: (k: number) => boolean): Backend {
  const m = modelBackend("6.1");
  return {
    info: { ...m.info, name: "fake-kernel", kernel: "6.1.0-fake" },
    run: (ps, c) => m.run(ps, c),
    async runRepeated(ps, c, repeat = 1) {
      const out: Trace[][] = [];
      for (const p of ps) {
        const [t] = await m.run([p], c);
        out.push(Array.from({ length: repeat }, (_, k) => (spoil(k) ? { ...t, audit: { ...t.audit!, budgetPages: 200 } } : t)));
      }
      return out;
    },
    close: () => m.close(),
  };
}

describe("replay --repeat", () => {
  const c = { format: "auxspec-case/1" as const, name: "par", profile: "6.1" as const, config: modelBackend("6.1").info.config, program: PROGRAM };

  it("counts the repetitions by verdict and lets an unexplained one stand for the case", async () => {
    const [r] = await replayCases([{ file: "x.json", c }], repeating((k) => k % 4 === 1), "6.1", [], undefined, 10);
    expect(r.repetitions?.of).toBe(10);
    expect(r.repetitions?.diverged).toBe(3); // k = 1, 5, 9
    expect(r.status).toBe("divergence");
    expect(r.divergence?.rule).toBe("audit.budgetPages");
    expect(r.repetitions?.outcomes.map((o) => [o.count, o.what === "accepted", o.known])).toEqual([[7, true, null], [3, false, null]]);
  });

  it("all repetitions accepted: the case agrees, and says 0 of N", async () => {
    const [r] = await replayCases([{ file: "x.json", c }], repeating(() => false), "6.1", [], undefined, 6);
    expect(r.status).toBe("agrees");
    expect(r.repetitions).toEqual({ diverged: 0, of: 6, outcomes: [{ what: "accepted", count: 6, known: null }] });
  });

  it("without --repeat (1) a kernel backend runs the case once", async () => {
    const [r] = await replayCases([{ file: "x.json", c }], repeating(() => true), "6.1", [], undefined, 1);
    expect(r.repetitions).toBeUndefined();
    expect(r.status).toBe("agrees"); // run() is the model's: unspoiled
  });
});
