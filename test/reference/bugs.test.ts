/**
 * Bug search: for each observable historic bug (reference/bugs.ts), random programs from the
 * project's generator (fuzz/generate.ts programArb) run on the reference with the bug switched
 * on, under the bug's profile, until the spec's checkTrace() reports a divergence that the same
 * program without the bug does not show (6.18's own remap leak is flagged by the spec's
 * conservation invariant with or without a bug). fast-check shrinks the program; the result is
 * compared with the recorded case cases/bugs/<id>.json (format auxspec-case/1).
 *
 * AUXSPEC_UPDATE_BUG_CASES=1 rewrites the recorded cases from this run.
 */
import fc from "fast-check";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Case, CASE_FORMAT, type Config, type Outcome, type ProfileId, type Program } from "../../spec/program.ts";
import { checkTrace } from "../../spec/index.ts";
import { programArb } from "../../fuzz/generate.ts";
import { BUGS, runReference } from "../../reference/index.ts";
import { CONFIG } from "./helpers.ts";

const CASES_DIR = join(import.meta.dirname, "../../cases/bugs");
const UPDATE = process.env.AUXSPEC_UPDATE_BUG_CASES === "1";
/** Programs per seed, and the seeds tried in order. */
const LIMIT = 200_000;
const SEEDS = [1, 2, 3];

/** The profile each bug is searched under (one of its profiles). */
const PROFILE: Readonly<Record<string, ProfileId>> = {
  "vma-split": "6.18",
  "mlock-negative": "6.18",
  "aux-alloc-result": "6.18",
  "set-output-mmap": "6.18",
  "aux-mlock-refund": "6.18",
};

const json = (x: unknown) => JSON.stringify(x);

/** The bug shows: the spec refuses the buggy trace, and not in the same way as the clean one. */
export function bugShows(program: Program, config: Config, profile: ProfileId, bug: string): boolean {
  const buggy = checkTrace(program, config, profile, runReference(program, config, profile, new Set([bug])));
  if (buggy.accepted) return false;
  const clean = checkTrace(program, config, profile, runReference(program, config, profile));
  return clean.accepted || json(clean.divergence) !== json(buggy.divergence);
}

interface Found { program: Program; programs: number; seed: number }

function search(bug: string, profile: ProfileId): Found | null {
  let programs = 0;
  for (const seed of SEEDS) {
    const r = fc.check(fc.property(programArb({ config: CONFIG, maxOps: 20 }), (p) => !bugShows(p, CONFIG, profile, bug)), { numRuns: LIMIT, seed });
    if (r.failed && r.counterexample) return { program: r.counterexample[0], programs: programs + r.numRuns, seed };
    programs += r.numRuns;
  }
  return null;
}

function recorded(id: string): Case | null {
  const file = join(CASES_DIR, `${id}.json`);
  if (!existsSync(file)) return null;
  return Case.parse(JSON.parse(readFileSync(file, "utf8")));
}

function programsIn(c: Case): number | null {
  const m = /found after (\d+) random programs/.exec(c.description ?? "");
  return m ? Number(m[1]) : null;
}

describe("historic bugs: the spec finds each observable one", () => {
  // Races (parOnly) show only in the explorer's interleavings: test/reference/races.test.ts.
  const observable = BUGS.filter((b) => b.observable && !b.parOnly);

  it("every observable bug has a search profile among its profiles", () => {
    for (const b of observable) expect(b.profiles).toContain(PROFILE[b.id]);
  });

  for (const bug of observable) {
    it(`${bug.id} (fix ${bug.fix.commit.slice(0, 12)} "${bug.fix.subject}")`, () => {
      const profile = PROFILE[bug.id];
      const found = search(bug.id, profile);
      expect(found, `${bug.id}: no divergence in ${SEEDS.length * LIMIT} programs`).not.toBeNull();
      const trace = runReference(found!.program, CONFIG, profile, new Set([bug.id]));
      const expectOutcomes: Outcome[] = trace.steps.map((s) => s.outcome);
      const prev = recorded(bug.id);
      const prevCount = prev ? programsIn(prev) : null;
      console.info(`${bug.id}: found after ${found!.programs} programs (seed ${found!.seed}), shrunk to ${found!.program.length} ops` +
        (prev ? `; recorded case: ${prevCount ?? "?"} programs, ${prev.program.length} ops` : "; no recorded case yet"));
      if (UPDATE || !prev) {
        const c: Case = {
          format: CASE_FORMAT,
          name: `bug-${bug.id}`,
          description: `Historic bug ${bug.id}: ${bug.title}. Fixed by ${bug.fix.commit.slice(0, 12)} ("${bug.fix.subject}", ${bug.fix.version})` +
            `${bug.cve ? `, ${bug.cve}` : ""}. The reference with the bug switched on, under profile ${profile}, was found after ` +
            `${found!.programs} random programs (fuzz/generate.ts programArb, fast-check seed ${found!.seed}) to produce a trace ` +
            `the spec refuses; shrunk by fast-check. expect = what the BUGGY reference answers.`,
          profile,
          config: CONFIG,
          program: found!.program,
          expect: expectOutcomes,
          bugs: [bug.id],
        };
        mkdirSync(CASES_DIR, { recursive: true });
        writeFileSync(join(CASES_DIR, `${bug.id}.json`), JSON.stringify(c, null, 2) + "\n");
      }
    });

    it(`${bug.id}: the recorded case still shows the bug, and only with the bug`, () => {
      const c = recorded(bug.id);
      expect(c, `cases/bugs/${bug.id}.json is missing: run with AUXSPEC_UPDATE_BUG_CASES=1`).not.toBeNull();
      const profile = c!.profile!;
      expect(c!.bugs).toEqual([bug.id]);
      const buggy = runReference(c!.program, c!.config, profile, new Set([bug.id]));
      expect(buggy.steps.map((s) => s.outcome)).toEqual(c!.expect);
      expect(bugShows(c!.program, c!.config, profile, bug.id)).toBe(true);
      expect(checkTrace(c!.program, c!.config, profile, buggy).accepted).toBe(false);
    });
  }

  it("the unobservable bugs are documented as such", () => {
    for (const b of BUGS.filter((x) => !x.observable)) {
      expect(b.note.length).toBeGreaterThan(100);
      expect(PROFILE[b.id]).toBeUndefined();
    }
  });

  it("vmalloc-data-page-nr emulates a CONFIG_PERF_USE_VMALLOC kernel before the fix", () => {
    const p: Program = [
      { op: "open", ev: "e0", pmu: "sw" },
      { op: "mmap", map: "m0", ev: "e0", pages: 5, pgoff: 0, prot: "rw" },
      { op: "mmap", map: "m1", ev: "e0", pages: 5, pgoff: 0, prot: "rw" },
    ];
    const clean = runReference(p, CONFIG, "6.12");
    const buggy = runReference(p, CONFIG, "6.12", new Set(["vmalloc-data-page-nr"]));
    expect(clean.steps[2].outcome).toEqual({ ok: true });
    expect(buggy.steps[2].outcome).toEqual({ errno: "EINVAL" }); // rb->nr_pages (1 block) != 4
  });
});
