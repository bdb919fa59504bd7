/** Several guests per VM backend (hwtest/vm/parallel.ts): how many, and programs spread over them in order. */
import { describe, expect, it } from "vitest";
import type { Config, Program } from "../../spec/program.ts";
import type { Trace } from "../../spec/trace.ts";
import { ParallelRunner, vmWorkers, type RunnerLike } from "../../hwtest/vm/parallel.ts";

const cfg = {} as Config;
const prog = (i: number): Program => [{ op: "rlimit", memlockPages: i }];

function fake(name: string, msPerProgram: number, seen: number[]): RunnerLike {
  return {
    async run(ps) {
      await new Promise((r) => setTimeout(r, msPerProgram * ps.length));
      return ps.map((p) => {
        const i = (p[0] as { memlockPages: number }).memlockPages;
        seen.push(i);
        return { backend: name, kernel: null, steps: [], audit: { vmPinKb: i } } as Trace;
      });
    },
    async close() {},
  };
}

describe("vmWorkers", () => {
  it("never boots more guests than cores or memory allow, and says why", () => {
    expect(vmWorkers(2, { cores: 2, freeMb: 8000 })).toEqual({ workers: 2, why: null });
    const one = vmWorkers(2, { cores: 1, freeMb: 8000 });
    expect(one.workers).toBe(1);
    expect(one.why).toMatch(/--workers 2: using 1: 1 host core/);
    const mem = vmWorkers(4, { cores: 8, freeMb: 2600 });
    expect(mem.workers).toBe(2);
    expect(mem.why).toMatch(/memory for 2 guests/);
    expect(vmWorkers(0, { cores: 4, freeMb: 8000 }).workers).toBe(1);
  });
});

describe("ParallelRunner", () => {
  it("spreads programs over the guests in batches and returns traces in program order", async () => {
    const a: number[] = [], b: number[] = [];
    const r = new ParallelRunner([fake("a", 1, a), fake("b", 3, b)], 4);
    const traces = await r.run(Array.from({ length: 40 }, (_, i) => prog(i)), cfg);
    expect(traces.map((t) => t.audit!.vmPinKb)).toEqual(Array.from({ length: 40 }, (_, i) => i));
    expect(a.length + b.length).toBe(40);
    // the faster guest takes more batches
    expect(a.length).toBeGreaterThan(b.length);
    expect(new Set(traces.map((t) => t.backend))).toEqual(new Set(["a", "b"]));
    await r.close();
  });

  it("with one guest, is that guest", async () => {
    const a: number[] = [];
    const r = new ParallelRunner([fake("a", 0, a)]);
    expect((await r.run([prog(1), prog(2)], cfg)).map((t) => t.audit!.vmPinKb)).toEqual([1, 2]);
  });
});
