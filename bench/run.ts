/**
 * npm run bench: speed figures measured side by side in one run, printed as a table with
 * the targets beside them. Nothing here asserts: targets are checked by reading this.
 *
 *   npm run bench -- [--quick] [--only spec,reference,fuzz,host,vm] [--json]
 */
import { parseArgs } from "node:util";
import { initialState, step, checkTrace } from "../spec/index.ts";
import type { Program, ProfileId } from "../spec/program.ts";
import { runReference } from "../reference/index.ts";
import { decode, genesAt, type GenOptions } from "../fuzz/generate.ts";
import { MODEL_CONFIG, modelBackend } from "../backend/model.ts";
import { runCampaign } from "../fuzz/campaign.ts";
import { modelWorkers, runParallel } from "../fuzz/parallel.ts";
import { benchExplorer, benchPrograms as explorerPrograms } from "../reference/explore/index.ts";

const { values } = parseArgs({ options: { quick: { type: "boolean" }, only: { type: "string" }, json: { type: "boolean" } } });
const quick = !!values.quick;
const only = values.only ? new Set(values.only.split(",")) : null;
const want = (s: string) => !only || only.has(s);

interface Row { what: string; value: number; unit: string; target?: string; note?: string }
const rows: Row[] = [];
const say = (r: Row) => {
  rows.push(r);
  if (!values.json) console.log(`  ${r.what.padEnd(52)} ${fmt(r.value).padStart(12)} ${r.unit.padEnd(14)} ${r.target ? `target ${r.target}` : ""}${r.note ? `  (${r.note})` : ""}`);
};
const fmt = (v: number) => (v >= 100 ? Math.round(v).toLocaleString("en-US") : v.toFixed(2));

const config = MODEL_CONFIG;
const profile: ProfileId = "6.18";
const gen20: GenOptions = { config, minOps: 20, maxOps: 20 };
const programs: Program[] = Array.from({ length: quick ? 500 : 2000 }, (_, i) => decode(genesAt(1, i, gen20), gen20));
const opsTotal = programs.reduce((s, p) => s + p.length, 0);

/** Best of `reps` timed repetitions of fn (ms). */
function best(reps: number, fn: () => void): number {
  let b = Infinity;
  for (let i = 0; i < reps; i++) {
    const t = performance.now();
    fn();
    b = Math.min(b, performance.now() - t);
  }
  return b;
}

async function main() {
  if (!values.json) console.log(`auxspec bench (node ${process.version}, ${programs.length} programs of 20 ops, profile ${profile}${quick ? ", quick" : ""})`);

  // Warm the JIT on everything measured below (a cold first pass is 5-10x slower).
  for (let i = 0; i < 300; i++) {
    const t = runReference(programs[i % programs.length], config, profile);
    checkTrace(programs[i % programs.length], config, profile, t);
  }
  if (want("spec")) {
    // The spec alone: walk each program taking the first allowed transition.
    // Untimed passes first: step's rule evaluator reaches its optimised tier after a few
    // hundred thousand steps, and a pass is only ~40k steps (20 ms), so take the best of 10.
    const pass = () => {
      for (const p of programs) {
        let s = initialState(config, profile);
        for (const op of p) s = step(s, op, profile)[0].next;
      }
    };
    for (let w = 0; w < (quick ? 2 : 5); w++) pass();
    const ms = best(quick ? 3 : 10, pass);
    say({ what: "spec: step() on 20-op programs", value: opsTotal / (ms / 1000), unit: "steps/s", target: ">= 1,000,000" });
  }
  const traces = programs.map((p) => runReference(p, config, profile));
  if (want("reference")) {
    const ms = best(quick ? 2 : 5, () => { for (const p of programs) runReference(p, config, profile); });
    say({ what: "reference: runReference on 20-op programs", value: opsTotal / (ms / 1000), unit: "ops/s", note: "incl. teardown + audit" });
    // issue 14: the lock-level explorer, every interleaving of each par block (no preemption bound)
    const ex = explorerPrograms();
    benchExplorer(ex, config, "6.1", { preemptionBound: Infinity });
    const e = benchExplorer(ex, config, "6.1", { preemptionBound: Infinity });
    say({ what: "reference: explorer, interleavings of par blocks", value: e.perSecond, unit: "interleavings/s", note: `${ex.length} programs, ${e.interleavings} interleavings, 6.1, exhaustive` });
  }
  if (want("spec")) {
    const ms = best(quick ? 2 : 5, () => { for (let i = 0; i < programs.length; i++) checkTrace(programs[i], config, profile, traces[i]); });
    say({ what: "spec: checkTrace (state sets, audit, invariants)", value: programs.length / (ms / 1000), unit: "programs/s" });
  }
  if (want("fuzz")) {
    const seconds = quick ? 2 : 5;
    await runCampaign({ backend: modelBackend(profile), profile, seed: 6, seconds: 1, minOps: 20, maxOps: 20, noShrink: true }); // warm-up
    const one = await runCampaign({ backend: modelBackend(profile), profile, seed: 7, seconds, minOps: 20, maxOps: 20, noShrink: true });
    const r1 = one.stats.programs / one.stats.seconds;
    say({ what: "fuzz --backend model, 1 worker (gen+run+check)", value: r1, unit: "programs/s", target: ">= 10,000", note: "20-op programs" });
    const two = await runParallel({ profile, bugs: [], seed: 7, seconds, minOps: 20, maxOps: 20, known: [] }, 2, () => {}, () => {});
    const r2 = two.stats.programs / two.busySeconds;
    say({ what: "fuzz --backend model, 2 workers", value: r2, unit: "programs/s", note: `worker start-up excluded; ${(two.stats.programs / two.stats.seconds).toFixed(0)}/s wall` });
    say({ what: "fuzz model: 2 workers / 1 worker", value: r2 / r1, unit: "x", note: "2 cores" });
    // What `fuzz --backend model --workers 2` runs here (fuzz/parallel.ts modelWorkers): never slower than one.
    const pick = modelWorkers(2, { env: {} });
    say({ what: "fuzz --backend model --workers 2: workers the tool runs", value: pick.workers, unit: "workers", note: pick.why ?? "as asked" });
  }
  if (want("host")) await hostBench();
  if (want("vm")) await vmBench();
  if (values.json) console.log(JSON.stringify(rows, null, 2));
}

async function hostBench() {
  let mod: typeof import("./host.ts");
  try {
    mod = await import("./host.ts");
  } catch (e) {
    say({ what: "host: skipped", value: 0, unit: "", note: (e as Error).message.split("\n")[0] });
    return;
  }
  for (const r of await mod.hostRows(quick)) say(r);
}

async function vmBench() {
  let mod: typeof import("./vm.ts");
  try {
    mod = await import("./vm.ts");
  } catch (e) {
    say({ what: "vm: skipped", value: 0, unit: "", note: (e as Error).message.split("\n")[0] });
    return;
  }
  for (const r of await mod.vmRows(quick)) say(r);
}

main().catch((e) => { console.error(e); process.exitCode = 1; });
