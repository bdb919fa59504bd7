/**
 * Litmus tests as data: spec/litmus/cases.ts is the one source of cases/spec/*.json. The
 * files must be exactly what it writes (npm run litmus is a no-op); every case is loaded
 * with the Case schema and walked through the spec: each expected outcome must be one the
 * spec allows at that point (state sets, VmPin not constrained). The expectations were
 * written from the kernel source and from probes of this machine's 6.18 kernel (see each
 * case's description), not computed by the spec.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Case, NON_DECIDING, RULES, initialState, sameOutcome, showOutcome, step, type SpecState } from "../../spec/index.ts";
import { LITMUS_DIR, litmusFiles } from "../../spec/litmus/cases.ts";

const DIR = join(import.meta.dirname, "../..", LITMUS_DIR);
const files = readdirSync(DIR).filter((f) => f.endsWith(".json")).sort();

function load(f: string): Case {
  const parsed = Case.safeParse(JSON.parse(readFileSync(join(DIR, f), "utf8")));
  if (!parsed.success) throw new Error(`${f}: ${JSON.stringify(parsed.error.issues)}`);
  return parsed.data;
}

const PERMS: Record<number, number[][]> = { 2: [[0, 1], [1, 0]], 3: [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]] };

/** Walk a case; the first op whose expected outcome the spec does not allow, and the rules that decided. */
function walk(c: Case): { bad: { index: number; allowed: string[]; got: string } | null; rules: Set<string> } {
  const rules = new Set<string>();
  let states: SpecState[] = [initialState(c.config, c.profile!)];
  for (let i = 0; i < c.program.length; i++) {
    const want = c.expect![i];
    const op = c.program[i];
    if (i > 0 && c.program[i - 1].op === "par") {
      // a par block (issue 14): its expected outcomes are those of SOME order of its ops
      const n = (c.program[i - 1] as Extract<typeof op, { op: "par" }>).ops;
      const ends: SpecState[] = [];
      for (const perm of PERMS[n]) {
        let cur = states;
        const used: string[] = [];
        for (const k of perm) {
          const keep = cur.flatMap((s) => step(s, c.program[i + k], c.profile!)).filter((t) => sameOutcome(t.outcome, c.expect![i + k]));
          used.push(...keep.map((t) => t.rule));
          cur = keep.map((t) => t.next);
        }
        if (cur.length) { ends.push(...cur); for (const r of used) rules.add(r); }
      }
      if (ends.length === 0) return { bad: { index: i - 1, allowed: ["some order of the block"], got: c.expect!.slice(i, i + n).map(showOutcome).join(", ") }, rules };
      states = ends;
      i += n - 1;
      continue;
    }
    const ts = states.flatMap((s) => step(s, op, c.profile!));
    const keep = ts.filter((t) => sameOutcome(t.outcome, want));
    if (keep.length === 0) return { bad: { index: i, allowed: [...new Set(ts.map((t) => showOutcome(t.outcome)))], got: showOutcome(want) }, rules };
    for (const t of keep) rules.add(t.rule);
    states = keep.map((t) => t.next);
  }
  return { bad: null, rules };
}

describe("litmus cases (cases/spec/*.json)", () => {
  it("the files are exactly what spec/litmus/cases.ts writes (npm run litmus is a no-op)", () => {
    const built = litmusFiles();
    expect(files).toEqual([...built.keys()].sort());
    for (const f of files) expect(readFileSync(join(DIR, f), "utf8"), f).toBe(built.get(f));
  });

  it("there are litmus cases for every profile", () => {
    expect(files.length).toBeGreaterThan(300);
    const profiles = new Set(files.map((f) => f.split(".").slice(1, -1).join(".")));
    expect([...profiles].sort()).toEqual(["5.10", "5.10-pre241", "6.1", "6.1-pre148", "6.12", "6.12-pre42", "6.16", "6.17", "6.18", "7.2", "seed"]);
  });

  for (const f of files) {
    it(f, () => {
      const c = load(f);
      expect(c.profile).toBeDefined();
      expect(c.expect).toBeDefined();
      const { bad } = walk(c);
      expect(bad, bad ? `${c.name}: op ${bad.index} (${JSON.stringify(c.program[bad.index])}) expected ${bad.got}, spec allows ${bad.allowed.join(", ")}` : "").toBeNull();
    });
  }

  it("together they decide with every reachable rule of the spec (computed here, whatever ran before)", () => {
    const covered = new Set<string>();
    for (const f of files) for (const r of walk(load(f)).rules) covered.add(r);
    // ENOMEM of an allocation is allowed but no kernel here produces it: outcome-sets.test.ts
    const elsewhere = new Set(["mmap.data.enomem", "mmap.aux.enomem"]);
    const missing = RULES.map((r) => r.id).filter((id) => !NON_DECIDING.has(id) && !elsewhere.has(id) && !covered.has(id));
    expect(missing).toEqual([]);
  });
});
