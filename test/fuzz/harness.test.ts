/**
 * Nothing false: harness failures are aborted (retried once, counted, never findings), a
 * divergence a re-run does not reproduce is flaky (not a finding), and a trace judged under
 * the config it says it ran under (trace.config: the non-root host's measured locked_vm).
 */
import { describe, expect, it } from "vitest";
import type { Backend } from "../../backend/contract.ts";
import { modelBackend, MODEL_CONFIG } from "../../backend/model.ts";
import { runCampaign } from "../../fuzz/campaign.ts";
import { checkTrace } from "../../spec/index.ts";
import type { Config, Program } from "../../spec/program.ts";
import type { Trace } from "../../spec/trace.ts";
import { runReference } from "../../reference/index.ts";
import { loadKnown } from "../../fuzz/known.ts";
import { cannotRun } from "../../fuzz/replay.ts";

const known = loadKnown(new URL("../../cases/known-divergences.json", import.meta.url).pathname);

/** The model dressed as a kernel backend, with a fault injector over each trace. */
function fakeKernel(fault: (t: Trace, n: number, p: Program) => Trace): Backend & { calls: number } {
  const m = modelBackend("6.18");
  let n = 0;
  const b = {
    calls: 0,
    info: { ...m.info, name: "host", kernel: "6.18.0-fake" },
    async run(programs: readonly Program[], config?: Config) {
      b.calls++;
      return (await m.run(programs, config)).map((t, i) => fault({ ...t, backend: "host", kernel: "6.18.0-fake" }, n++, programs[i]));
    },
    async close() {},
  };
  return b;
}

describe("harness failures are not findings", () => {
  it("an aborted trace is retried once; aborted twice it is counted, never shrunk or written", async () => {
    const firstTry = new Set<string>();
    let doomed = "";
    // Every 7th program dies the first time it runs; the 4th program always dies.
    const b = fakeKernel((t, n, p) => {
      const key = JSON.stringify(p);
      if (n === 3) doomed = key;
      if (key === doomed || (n % 7 === 0 && !firstTry.has(key))) { firstTry.add(key); return { ...t, steps: [], audit: null, aborted: "worker 1 exited (signal SIGKILL) during the program" }; }
      return t;
    });
    const found: unknown[] = [];
    const { stats, findings } = await runCampaign({ backend: b, profile: "6.18", seed: 3, runs: 64, batch: 16, known, onDivergence: (f) => { if (!f.known) found.push(f); } });
    expect(stats.programs).toBe(64);
    expect(stats.retried).toBeGreaterThan(5);
    expect(stats.aborted).toBe(1);
    expect(stats.abortReasons[0]).toMatch(/SIGKILL/);
    expect(findings.filter((f) => f.divergence.kind === "aborted")).toEqual([]);
    expect(found).toEqual([]);
  });

  it("a divergence a re-run does not reproduce is flaky, not a finding", async () => {
    let first = true;
    const b = fakeKernel((t) => {
      if (first && t.steps.length > 1) {
        first = false;
        const steps = t.steps.slice();
        steps[0] = { ...steps[0], vmPinKb: steps[0].vmPinKb + 8 }; // a VmPin no rule allows, once
        return { ...t, steps };
      }
      return t;
    });
    const flaky: string[] = [];
    const { stats, findings } = await runCampaign({ backend: b, profile: "6.18", seed: 5, runs: 32, known, onDivergence: (f) => { if (f.flaky) flaky.push(f.signature); } });
    expect(flaky.length).toBe(1);
    expect(flaky[0]).toMatch(/^vmpin:/);
    expect(stats.flaky).toBe(1);
    expect(findings.filter((f) => !f.known)).toEqual([]);
    expect(stats.divergences).toBe(0);
  });

  it("a trace is judged under the locked_vm it says it started from", () => {
    const program: Program = [{ op: "open", ev: "e0", pmu: "sw" }, { op: "mmap", map: "m0", ev: "e0", pages: 9, pgoff: 0, prot: "rw" }];
    const limit = (MODEL_CONFIG.mlockKb >> 2) * MODEL_CONFIG.cpus;
    const started: Config = { ...MODEL_CONFIG, lockedVmPages: limit - 4 }; // 4 pages left: 5 go to pinned_vm
    const trace = runReference(program, started, "6.18", new Set());
    expect(trace.steps[1].vmPinKb).toBe(20);
    // Judged as a fresh uid, that VmPin is a divergence (the false one of issue 10) ...
    expect(checkTrace(program, MODEL_CONFIG, "6.18", trace).accepted).toBe(false);
    // ... judged from the measured start it is what the kernel does.
    expect(checkTrace(program, started, "6.18", trace).accepted).toBe(true);
    expect(trace.audit?.budgetPages).toBe(4);
  });

  it("a case asking for RLIMIT_MEMLOCK above the host's hard limit is skipped on replay, not judged", () => {
    const k = fakeKernel((t) => t);
    const b = { ...k, info: { ...k.info, config: { ...k.info.config, memlockHardPages: 64 } } };
    const c = { format: "auxspec-case/1" as const, name: "x", config: { ...b.info.config, memlockPages: 128 }, program: [{ op: "open" as const, ev: "e0", pmu: "sw" as const }] };
    expect(cannotRun(c, b)).toMatch(/RLIMIT_MEMLOCK 128 pages; the hard limit here is 64 pages/);
    expect(cannotRun({ ...c, config: { ...c.config, memlockPages: 16 } }, b)).toBeNull();
  });
});
