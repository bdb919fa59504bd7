/**
 * Every case under cases/ replays on the model (its own profile, its bugs switched on):
 * outcomes match `expect`, the spec's verdict matches the case's `verdict`, bug cases are
 * still caught, and known-divergence entries point at real cases.
 */
import { describe, expect, it } from "vitest";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { listCases, loadCase } from "../fuzz/cases.ts";
import { loadKnown } from "../fuzz/known.ts";
import { replayCases } from "../fuzz/replay.ts";
import { BUGS } from "../reference/index.ts";

const ROOT = join(import.meta.dirname, "..");
const files = listCases(join(ROOT, "cases"));
const cases = files.map((file) => ({ file, c: loadCase(file) }));
const known = loadKnown(join(ROOT, "cases", "known-divergences.json"));

describe("cases/ on the model", () => {
  it("loads every case with the schema", () => {
    expect(cases.length).toBeGreaterThan(400);
  });

  it("replays every case: no divergence, no missed bug", async () => {
    const results = await replayCases(cases, null, "auto", known);
    const bad = results.filter((r) => r.status === "divergence" || r.status === "bug-missed" || r.status === "skipped");
    expect(bad.map((r) => `${r.case}: ${r.status} ${r.divergence ? `${r.divergence.kind} ${r.divergence.rule} ${r.divergence.observed}` : r.reason ?? ""}`)).toEqual([]);
    const bugCases = results.filter((r) => r.status === "bug-caught");
    const observable = BUGS.filter((b) => b.observable).map((b) => b.id).sort();
    const withCase = [...new Set(cases.flatMap(({ c }) => c.bugs ?? []))].sort();
    expect(withCase).toEqual(observable);
    expect(bugCases.length).toBe(cases.filter(({ c }) => c.bugs?.length).length);
  });

  it("every known divergence names an existing case that shows it", async () => {
    for (const k of known) {
      const path = join(ROOT, k.case);
      expect(existsSync(path), k.case).toBe(true);
      const [r] = await replayCases([{ file: path, c: loadCase(path) }], null, k.profiles[0], known);
      expect(r.status === "known" || (r.status === "agrees" && r.divergence !== undefined), `${k.id}: ${r.status}`).toBe(true);
    }
  });
});
