/**
 * The rule lists are what `step` evaluates: each profile's list per decision point is the
 * ordered declaration filtered by the rules' profiles; stepping with a table whose guards
 * record their calls shows step evaluates exactly a prefix of that list, in order, and the
 * transition's rule is one the first holding entry decides; swapping two errno rules of a
 * list changes a litmus case's verdict.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fc, test as fcTest } from "@fast-check/vitest";
import { describe, expect, it } from "vitest";
import { programArb } from "../../fuzz/generate.ts";
import { Case, PROFILES, RULE_BY_ID, NON_DECIDING, RULES, sameOutcome, type Op, type ProfileId } from "../../spec/index.ts";
import { litmusFiles } from "../../spec/litmus/cases.ts";
import { DECLARATIONS, inProfile, swapped, type Entry, type Point, type Table } from "../../spec/model/decide.ts";
import { NO_BUF, NO_EV, NO_VMA, initial, type State } from "../../spec/model/state.ts";
import { TABLES, stepSafe } from "../../spec/model/step.ts";
import { CFG } from "./helpers.ts";

const POINTS = Object.keys(DECLARATIONS) as Point[];
const SENTINELS = structuredClone([NO_EV, NO_BUF, NO_VMA]);
const ids = (t: Table, p: Point) => t.lists[p].map((e) => e.id);

/** A copy of a table whose guards log (point, id, held) before answering. */
function traced(t: Table, log: { point: Point; id: string; held: boolean }[]): Table {
  const lists = {} as Record<Point, Entry<unknown>[]>;
  for (const p of POINTS) {
    lists[p] = (t.lists[p] as readonly Entry<unknown>[]).map((e) => ({
      ...e, guard: (c: unknown) => { const held = e.guard(c); log.push({ point: p, id: e.id, held }); return held; },
    }));
  }
  return { ...t, lists: lists as unknown as Table["lists"] };
}

/** Step through `program` along its first transitions, checking each step against its list. */
function checkProgram(profile: ProfileId, program: readonly Op[], config = CFG): number {
  const log: { point: Point; id: string; held: boolean }[] = [];
  const t = traced(TABLES[profile], log);
  let s: State = initial(config, profile);
  let checked = 0;
  for (const op of program) {
    log.length = 0;
    const ts = stepSafe(s, op, profile, t);
    const plain = stepSafe(s, op, profile);
    expect(ts.map((x) => [x.rule, x.outcome]), "the traced table steps as the real one").toEqual(plain.map((x) => [x.rule, x.outcome]));
    // the guards ran list by list (mmap: the common list, then data or AUX), each walk a prefix
    // in order that stops at the first holding guard; an op with several placements (open of
    // a context-swappable inherit leader, spec/model/step.ts openSwapped) walks once per placement
    const walks: { point: Point; seen: string[]; held: string | null }[] = [];
    for (const l of log) {
      const w = walks[walks.length - 1];
      if (w === undefined || w.point !== l.point || w.held !== null) walks.push({ point: l.point, seen: [l.id], held: l.held ? l.id : null });
      else { w.seen.push(l.id); if (l.held) w.held = l.id; }
    }
    for (const w of walks) expect(w.seen, `${profile} ${w.point}`).toEqual(ids(TABLES[profile], w.point).slice(0, w.seen.length));
    expect(log.length, `${profile} ${JSON.stringify(op)}: step ran the table's guards`).toBeGreaterThan(0);
    expect(log[log.length - 1].held, `${profile} ${JSON.stringify(op)}: a guard held`).toBe(true);
    const decides = walks.flatMap((w) => w.held === null ? [] : TABLES[profile].lists[w.point].find((e) => e.id === w.held)!.decides as readonly string[]);
    for (const x of ts) expect(decides, `${profile} ${JSON.stringify(op)}`).toContain(x.rule);
    s = ts[0].next;
    checked++;
  }
  // the sentinels guards see for absent objects are not frozen (speed): nothing wrote them
  expect([NO_EV, NO_BUF, NO_VMA]).toEqual(SENTINELS);
  return checked;
}

describe("rule lists", () => {
  it("a profile's list is the declaration filtered by the rules' profiles, in declaration order", () => {
    for (const profile of PROFILES) {
      for (const p of POINTS) {
        const want = (DECLARATIONS[p] as readonly { id: string }[]).filter((d) => inProfile(d as never, profile)).map((d) => d.id);
        expect(ids(TABLES[profile], p), `${profile} ${p}`).toEqual(want);
      }
    }
    // where the eras differ
    expect(ids(TABLES["6.1"], "mapFixedAnon")).toEqual(["mapfixed.split.enomem", "mapfixed.ok"]);
    expect(ids(TABLES["6.12"], "mapFixedAnon")).toEqual(["mapfixed.split", "mapfixed.ok"]);
    expect(ids(TABLES["seed"], "mapFixedAnon")).toEqual(["mapfixed.split.ok", "mapfixed.ok"]);
    expect(ids(TABLES["6.18"], "mmapData")).toContain("mmap.data.ebusy");
    expect(ids(TABLES["6.12"], "mmapData")).not.toContain("mmap.data.ebusy");
    expect(ids(TABLES["6.18"], "mmap")).toContain("mmap.noexec");
    expect(ids(TABLES["6.1"], "mmap")).not.toContain("mmap.noexec");
    expect(ids(TABLES["seed"], "mmapAux")).toContain("mmap.aux.nosetup.enotsupp");
    expect(ids(TABLES["seed"], "mmapAux")).not.toContain("mmap.aux.nosetup");
  });

  it("every entry is a rule of its profile that has an errno or a body; every rule an entry may emit is a rule", () => {
    for (const profile of PROFILES) {
      for (const p of POINTS) {
        for (const e of TABLES[profile].lists[p] as readonly Entry<unknown>[]) {
          if (!e.id.startsWith("proc:")) {
            expect(RULE_BY_ID.get(e.id)!.profiles, e.id).toContain(profile);
            expect(e.errno !== undefined || e.body !== undefined, e.id).toBe(true);
            expect(e.decides[0]).toBe(e.id);
          } else expect(e.body, `${profile} ${e.id}`).toBeDefined();
          for (const id of e.decides) expect(RULE_BY_ID.has(id), id).toBe(true);
        }
      }
    }
  });

  it("every deciding rule has its place in some list", () => {
    const placed = new Set(POINTS.flatMap((p) => (DECLARATIONS[p] as readonly { decides: readonly string[] }[]).flatMap((d) => d.decides)));
    const unplaced = RULES.map((r) => r.id).filter((id) => !NON_DECIDING.has(id) && id !== "spec.internal" && !placed.has(id));
    expect(unplaced).toEqual([]);
  });
});

describe("step evaluates the lists", () => {
  const cases = [...litmusFiles().values()].map((text) => Case.parse(JSON.parse(text)));

  it("litmus programs: each step runs a prefix of its list in order and the first holding entry decides", () => {
    let n = 0;
    for (const c of cases) n += checkProgram(c.profile!, c.program, c.config);
    expect(n).toBeGreaterThan(2000);
  });

  fcTest.prop([fc.constantFrom(...PROFILES), programArb({ config: CFG, minOps: 5, maxOps: 25 })], { numRuns: 60 })(
    "random programs: the same", (profile, program) => { checkProgram(profile, program); });

  it("swapping two errno rules of a list changes a litmus verdict (mmap-ebadf: EBADF before the length check)", () => {
    const c = Case.parse(JSON.parse(readFileSync(join(import.meta.dirname, "../../cases/spec/mmap-ebadf.6.18.json"), "utf8")));
    const run = (t: Table) => {
      let s: State = initial(c.config, "6.18");
      const out = [];
      for (const op of c.program) { const ts = stepSafe(s, op, "6.18", t); out.push(ts[0]); s = ts[0].next; }
      return out;
    };
    const real = run(TABLES["6.18"]);
    expect(real.map((t, i) => sameOutcome(t.outcome, c.expect![i]))).toEqual([true, true, true]);
    expect(real[2].rule).toBe("mmap.ebadf");
    const other = run(swapped(TABLES["6.18"], "mmap", "mmap.ebadf", "mmap.len0"));
    expect(other[2].outcome).toEqual({ errno: "EINVAL" });
    expect(other[2].rule).toBe("mmap.len0");
    expect(sameOutcome(other[2].outcome, c.expect![2])).toBe(false);
  });

  it("swapping EPERM and EOPNOTSUPP of the AUX list changes a litmus verdict (aux-eperm-sw: the accounting check comes first)", () => {
    const c = Case.parse(JSON.parse(readFileSync(join(import.meta.dirname, "../../cases/spec/aux-eperm-sw.6.18.json"), "utf8")));
    // software event over the budget: EPERM (accounting) before EOPNOTSUPP (no setup_aux) [seen on 6.18]
    const run = (t: Table) => {
      let s: State = initial(c.config, "6.18");
      return c.program.map((op) => { const ts = stepSafe(s, op, "6.18", t); s = ts[0].next; return ts[0].outcome; });
    };
    expect(run(TABLES["6.18"])).toEqual(c.expect);
    const other = run(swapped(TABLES["6.18"], "mmapAux", "mmap.aux.eperm", "mmap.aux.nosetup"));
    expect(other[3]).toEqual({ errno: "EOPNOTSUPP" });
    expect(c.expect![3]).toEqual({ errno: "EPERM" });
  });
});
