/**
 * Litmus tests as data: every cases/spec/*.json (auxspec-case/1, with profile and expect)
 * is loaded with the Case schema and walked through the spec; each expected outcome must be
 * one the spec allows at that point (state sets, VmPin not constrained). The expectations
 * were written from the kernel source and from probes of this machine's 6.18 kernel (see
 * each case's description), not computed by the spec.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Case, NON_DECIDING, RULES, initialState, sameOutcome, showOutcome, step, type SpecState } from "../../spec/index.ts";

const DIR = join(import.meta.dirname, "../../cases/spec");
const files = readdirSync(DIR).filter((f) => f.endsWith(".json")).sort();
const coverage = new Map<string, number>();

/** Walk a case; returns the first op whose expected outcome the spec does not allow. */
function walk(c: Case): { index: number; allowed: string[]; got: string } | null {
  let states: SpecState[] = [initialState(c.config, c.profile!)];
  for (let i = 0; i < c.program.length; i++) {
    const want = c.expect![i];
    const ts = states.flatMap((s) => step(s, c.program[i], c.profile!));
    const keep = ts.filter((t) => sameOutcome(t.outcome, want));
    if (keep.length === 0) return { index: i, allowed: [...new Set(ts.map((t) => showOutcome(t.outcome)))], got: showOutcome(want) };
    for (const r of new Set(keep.map((t) => t.rule))) coverage.set(r, (coverage.get(r) ?? 0) + 1);
    states = keep.map((t) => t.next);
  }
  return null;
}

describe("litmus cases (cases/spec/*.json)", () => {
  it("there are litmus cases for every profile", () => {
    expect(files.length).toBeGreaterThan(300);
    const profiles = new Set(files.map((f) => f.split(".").slice(1, -1).join(".")));
    expect([...profiles].sort()).toEqual(["6.1", "6.1-pre148", "6.12", "6.12-pre42", "6.18", "seed"]);
  });
  for (const f of files) {
    it(f, () => {
      const parsed = Case.safeParse(JSON.parse(readFileSync(join(DIR, f), "utf8")));
      expect(parsed.success, parsed.success ? "" : JSON.stringify(parsed.error.issues)).toBe(true);
      const c = parsed.data!;
      expect(c.profile).toBeDefined();
      expect(c.expect).toBeDefined();
      const bad = walk(c);
      expect(bad, bad ? `${c.name}: op ${bad.index} (${JSON.stringify(c.program[bad.index])}) expected ${bad.got}, spec allows ${bad.allowed.join(", ")}` : "").toBeNull();
    });
  }
  it("together they decide with every reachable rule of the spec", () => {
    // ENOMEM of an allocation is allowed but no kernel here produces it: outcome-sets.test.ts
    const elsewhere = new Set(["mmap.data.enomem", "mmap.aux.enomem"]);
    const missing = RULES.map((r) => r.id).filter((id) => !NON_DECIDING.has(id) && !elsewhere.has(id) && !coverage.has(id));
    expect(missing).toEqual([]);
  });
});
