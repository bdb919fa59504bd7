/**
 * The fuzzer's acceptance tests (issue 4): random search, not hand-written programs, finds
 * (a) the seed patch's own conservation break, (b) every observable historic bug switched
 * on in the model, and shrinks each to a short program; and the bug-free model of a fixed
 * kernel era produces no unexplained divergence on the same stream.
 */
import { describe, expect, it } from "vitest";
import { join } from "node:path";
import { BUGS } from "../../reference/index.ts";
import { modelBackend } from "../../backend/model.ts";
import { runAndCheck, runCampaign, signatureOf } from "../../fuzz/campaign.ts";
import { loadKnown } from "../../fuzz/known.ts";
import { programProblems } from "../../spec/program.ts";

const known = loadKnown(join(import.meta.dirname, "../../cases/known-divergences.json"));
const SEED = 1;

describe("fuzz campaign on the model", () => {
  it("seed profile: finds that the v8 patch's own rules break conservation, shrunk to <= 5 ops", async () => {
    const { findings, stats } = await runCampaign({ backend: modelBackend("seed"), profile: "seed", seed: SEED, runs: 500, known });
    const inv = findings.filter((f) => f.signature.startsWith("invariant:conserve.") && !f.known);
    expect(inv.length, `findings: ${findings.map((f) => f.signature).join(", ")}`).toBeGreaterThan(0);
    for (const f of inv) {
      expect(f.shrunk.length).toBeLessThanOrEqual(5);
      expect(programProblems(f.shrunk)).toEqual([]);
      expect(f.shrunk.length).toBeLessThanOrEqual(f.original.length);
    }
    expect(stats.programs).toBe(500);
  });

  for (const profile of ["6.1", "6.12", "6.18"] as const) {
    it(`${profile}: the bug-free model has no unexplained divergence in 3000 programs`, async () => {
      const { findings, stats } = await runCampaign({ backend: modelBackend(profile), profile, seed: SEED, runs: 3000, known, noShrink: true });
      expect(findings.filter((f) => !f.known).map((f) => f.signature)).toEqual([]);
      expect(stats.divergences).toBe(0);
    });
  }

  for (const bug of BUGS.filter((b) => b.observable)) {
    const profile = bug.profiles[bug.profiles.length - 1];
    it(`--bug ${bug.id} (${profile}) is found by random search and shrunk`, async () => {
      let firstIndex = -1;
      const { findings } = await runCampaign({
        backend: modelBackend(profile, [bug.id]), profile, seed: SEED, runs: 5000, known,
        onDivergence: (f) => { if (!f.known && firstIndex < 0) firstIndex = f.index; },
      });
      const mine = findings.filter((f) => !f.known);
      expect(mine.length, `no unexplained divergence for ${bug.id}`).toBeGreaterThan(0);
      expect(mine[0].shrunk.length).toBeLessThanOrEqual(6);
      // The shrunk program diverges on the buggy model with the same signature, and not on the clean one.
      const config = modelBackend(profile).info.config;
      const buggy = await runAndCheck(modelBackend(profile, [bug.id]), mine[0].shrunk, profile, config);
      expect(buggy.divergence && signatureOf(buggy.divergence)).toBe(mine[0].signature);
      const clean = await runAndCheck(modelBackend(profile), mine[0].shrunk, profile, config);
      expect(clean.divergence && signatureOf(clean.divergence)).not.toBe(mine[0].signature);
      expect(firstIndex).toBeGreaterThanOrEqual(0);
    });
  }

  it("the same seed gives the same findings", async () => {
    const a = await runCampaign({ backend: modelBackend("seed"), profile: "seed", seed: 9, runs: 300, known });
    const b = await runCampaign({ backend: modelBackend("seed"), profile: "seed", seed: 9, runs: 300, known });
    expect(a.findings.map((f) => [f.signature, f.index, JSON.stringify(f.shrunk)])).toEqual(b.findings.map((f) => [f.signature, f.index, JSON.stringify(f.shrunk)]));
  });
});
