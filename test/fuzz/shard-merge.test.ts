/**
 * N shards of a campaign, merged (fuzz/results.ts), equal one campaign with the same seed and
 * total: the same program count, coverage counts and findings by signature (each with the
 * lowest program index and the summed count), on the model with historic bugs switched on
 * (so that there are findings to merge), and on the host kernel (root; on 6.18 the re-map
 * leak is a known finding).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { Backend } from "../../backend/contract.ts";
import { modelBackend } from "../../backend/model.ts";
import { hostBackend } from "../../hwtest/host/backend.ts";
import { say, skipRoot } from "../hwtest/live.ts";
import { runCampaign } from "../../fuzz/campaign.ts";
import { findingToCase, writeCase } from "../../fuzz/cases.ts";
import { campaignResult, mergeResults, readResults, ResultError, writeResults, type FuzzResult } from "../../fuzz/results.ts";
import { slices } from "../../fuzz/shard.ts";
import type { ProfileId } from "../../spec/program.ts";
import { loadKnown } from "../../fuzz/known.ts";
import { main as mergeMain } from "../../cli/merge.ts";
import { existsSync } from "node:fs";

const tmp = mkdtempSync(join(tmpdir(), "auxspec-shards-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const SEED = 11, RUNS = 400, PROFILE: ProfileId = "6.18", BUGS = ["vma-split", "mlock-negative"], MAX_OPS = 12;

async function run(dir: string, shard: { index: number; count: number } | null, backend: Backend = modelBackend(PROFILE, BUGS), runs = RUNS, bugs = BUGS): Promise<FuzzResult> {
  const profile = backend.info.kernel === null ? PROFILE : backend.info.profile;
  const [sl] = slices(runs, shard ?? { index: 0, count: 1 }, 1);
  const { stats, findings } = await runCampaign({ backend, profile, seed: SEED, runs: sl.runs, offset: sl.offset, stride: sl.stride, maxOps: MAX_OPS, noShrink: true, confirmRuns: 1, known: loadKnown("cases/known-divergences.json"),
    // no par blocks: their outcomes vary from run to run on a kernel, so would the coverage counts
    races: false });
  const paths = new Map(findings.map((f) => [f.signature, writeCase(join(dir, "cases"), findingToCase(f, backend.info, profile, backend.info.config, bugs), false)]));
  const r = campaignResult({ dir, seed: SEED, runs, shard, info: backend.info, profile, maxOps: MAX_OPS, bugs, stats, findings, paths });
  writeResults(dir, r);
  if (backend.info.kernel === null) await backend.close();
  return r;
}

const view = (r: FuzzResult) => ({
  programs: r.summary.programs, ops: r.summary.ops, divergences: r.summary.divergences, known: r.summary.known,
  coverage: Object.fromEntries(Object.entries(r.coverage).sort()),
  findings: r.findings.map((f) => ({ signature: f.signature, index: f.index, count: f.count, known: f.known })).sort((a, b) => a.signature.localeCompare(b.signature)),
});

describe("shards merge into the one campaign (model)", () => {
  it("3 shards merged == one run: programs, coverage counts, findings by signature", async () => {
    const one = await run(join(tmp, "one"), null);
    expect(one.findings.length).toBeGreaterThan(0);
    const dirs = [0, 1, 2].map((i) => join(tmp, `s${i}`));
    for (let i = 0; i < 3; i++) await run(dirs[i], { index: i, count: 3 });
    const merged = mergeResults([dirs[2], dirs[0], dirs[1]], join(tmp, "merged"));
    expect(view(merged)).toEqual(view(one));
    expect(merged.summary).toMatchObject({ seed: SEED, runs: RUNS, shard: null, mergedShards: 3 });
    // What merge wrote reads back the same, with each kept finding's case beside it.
    const back = readResults(join(tmp, "merged"));
    expect(view(back)).toEqual(view(one));
    for (const f of back.findings) expect(readResults(join(tmp, "merged")).findings.find((x) => x.signature === f.signature)!.case).toMatch(/^cases\//);
  });

  it("npm run merge writes the merged directory (exit 1: the model's bugs are unexplained divergences)", () => {
    const dirs = [0, 1, 2].map((i) => join(tmp, `s${i}`));
    const out = join(tmp, "cli-merged");
    expect(mergeMain([...dirs, "--out", out])).toBe(1);
    for (const f of ["summary.json", "coverage.json", "findings.json"]) expect(existsSync(join(out, f)), f).toBe(true);
    for (const f of readResults(out).findings) expect(existsSync(join(out, f.case)), f.case).toBe(true);
    expect(mergeMain([dirs[0], "--out", join(tmp, "x")])).toBe(2);
  });

  it("refuses a missing shard, a shard twice and another campaign's shard", async () => {
    const dirs = [0, 1, 2].map((i) => join(tmp, `s${i}`));
    expect(() => mergeResults([dirs[0], dirs[1]])).toThrow(/shards 2\/3 missing/);
    expect(() => mergeResults([dirs[0], dirs[1], dirs[1]])).toThrow(/given twice/);
    expect(() => mergeResults([join(tmp, "one")])).toThrow(ResultError);
  });
});

say(skipRoot, "shards on the host kernel");
describe.skipIf(skipRoot !== null)("shards merge into the one campaign (host kernel)", () => {
  it("2 shards merged == one run of 120 programs", async () => {
    const host = await hostBackend();
    try {
      const one = await run(join(tmp, "h-one"), null, host, 120, []);
      const dirs = [0, 1].map((i) => join(tmp, `h${i}`));
      for (let i = 0; i < 2; i++) await run(dirs[i], { index: i, count: 2 }, host, 120, []);
      const merged = mergeResults(dirs, join(tmp, "h-merged"));
      console.log(`host shards: ${merged.summary.programs} programs, ${merged.findings.length} findings (${merged.findings.map((f) => `${f.signature}${f.known ? ` known ${f.known}` : ""} x${f.count}`).join(", ")}), ${Object.keys(merged.coverage).length} rules hit`);
      expect(view(merged)).toEqual(view(one));
      expect(merged.summary.programs).toBe(120);
    } finally {
      await host.close();
    }
  }, 600_000);
});
