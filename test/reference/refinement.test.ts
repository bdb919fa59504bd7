/**
 * Refinement: for random programs under every profile, every reference outcome is one the spec
 * allows and the abstract states match (test/reference/refine.ts). Fixed seeds: the same
 * programs every run, shrunk by fast-check when one fails.
 *
 * How many programs: 16 deliberately wrong single rules planted one at a time in a scratch copy
 * of the reference (a dropped check, an off-by-one in the EPERM test, the wrong munmap split
 * direction, a missing refund, the 6.x clamp removed, ...; listed in the report) were caught by
 * exactly these streams (same seeds) after 2 to 7528 programs; the slowest were the missing
 * mlock clamp on 6.12 (7528: needs sysctlMlock lowered between two buffers) and the missing
 * EBUSY on 6.18 (4405: an event mapped through SET_OUTPUT only). PROGRAMS per profile is 2.6
 * times the worst, and the file runs in about 15 s.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { Config, ProfileId } from "../../spec/program.ts";
import { PROFILES } from "../../spec/program.ts";
import { programArb } from "../../fuzz/generate.ts";
import { refinementFailure, type RefinementFailure } from "./refine.ts";
import { CONFIG, CONFIG_NO_AUX } from "./helpers.ts";
import type { Program } from "../../spec/program.ts";
import { ERAS, type Era } from "../../reference/era.ts";
import { Case } from "../../spec/program.ts";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

/**
 * Disagreements between the two implementations that were examined and where we believe the
 * REFERENCE follows the kernel (reported to the spec's author). A random program whose only
 * failure matches one of these passes; each entry's own test below keeps checking that its
 * minimal program still disagrees, so the entry goes as soon as the spec changes.
 */
interface KnownDisagreement {
  id: string;
  profiles: ProfileId[];
  program: Program;
  matches: (f: RefinementFailure, profile: ProfileId) => boolean;
  why: string;
}

// Resolved: "seed-budget-unsigned" (seed budget after a failed setup_aux, locked_vm -2). The two
// sides simulated different probe orders; the harness probes largest buffers first
// (hwtest/host/perf.ts probeBudget), and with that order both answer limit + 2 = 260.
const KNOWN: KnownDisagreement[] = [];

const known = (f: RefinementFailure, profile: ProfileId) => KNOWN.some((k) => k.profiles.includes(profile) && k.matches(f, profile));

const PROGRAMS = 20000;
const PROGRAMS_NO_AUX = 800;
const SEED = 20251129;

function check(profile: ProfileId, config: Config, numRuns: number, seed: number) {
  fc.assert(
    fc.property(programArb({ config, maxOps: 20 }), (program) => {
      const f = refinementFailure(program, config, profile);
      if (f && !known(f, profile)) throw new Error(`${profile}: ${f.what} mismatch: ${f.detail}`);
    }),
    { numRuns, seed },
  );
}

describe("reference refines the spec", () => {
  PROFILES.forEach((profile, i) => {
    it(`${profile}: ${PROGRAMS} programs with an AUX PMU`, () => {
      check(profile, CONFIG, PROGRAMS, SEED + i);
    });
    it(`${profile}: ${PROGRAMS_NO_AUX} programs without an AUX PMU, CAP_IPC_LOCK, RLIMIT_MEMLOCK 0`, () => {
      check(profile, { ...CONFIG_NO_AUX, capIpcLock: true, memlockPages: 0 }, PROGRAMS_NO_AUX, SEED + 100 + i);
    });
  });

  for (const k of KNOWN) {
    it.each(k.profiles)(`known disagreement ${k.id} still stands under %s (see its note)`, (profile) => {
      const f = refinementFailure(k.program, CONFIG, profile);
      expect(f, `${k.id} no longer disagrees under ${profile}: remove it from KNOWN`).not.toBeNull();
      expect(k.matches(f!, profile), f?.detail).toBe(true);
    });
  }

  it("the check is not vacuous: a program the spec forbids is refused", () => {
    // aux-alloc-result on 6.18 answers EINVAL where the spec allows EOPNOTSUPP only.
    const program = [
      { op: "open" as const, ev: "e0", pmu: "sw" as const },
      { op: "mmap" as const, map: "m0", ev: "e0", pages: 2, pgoff: 0, prot: "rw" as const },
      { op: "setAux" as const, map: "m0", offsetPages: 2, sizePages: 1 },
      { op: "mmap" as const, map: "m1", ev: "e0", pages: 1, pgoff: 2, prot: "rw" as const },
    ];
    expect(refinementFailure(program, CONFIG, "6.18")).toBeNull();
    const f = refinementFailure(program, CONFIG, "6.18", new Set(["aux-alloc-result"]));
    expect(f?.what).toBe("outcome");
    expect(f?.opIndex).toBe(3);
  });

  it("aux-refcount-leak, invisible in traces, shows in the abstract state", () => {
    const program = [
      { op: "open" as const, ev: "e0", pmu: "sw" as const },
      { op: "mmap" as const, map: "m0", ev: "e0", pages: 2, pgoff: 0, prot: "rw" as const },
      { op: "setAux" as const, map: "m0", offsetPages: 2, sizePages: 1 },
      { op: "mmap" as const, map: "m1", ev: "e0", pages: 1, pgoff: 2, prot: "rw" as const },
    ];
    const f = refinementFailure(program, CONFIG, "6.1", new Set(["aux-refcount-leak"]));
    expect(f?.what).toBe("abstract");
    expect(f?.opIndex).toBe(3);
  });
});

/**
 * Planted rules in the profiles added for 5.10, 6.16 and 7.2: each switch of reference/era.ts that
 * makes those profiles differ from their parents is flipped, one at a time, in the reference,
 * and must be caught. `by: "random"`: by the program stream above (same seed, same count).
 * Two are not (measured: 7.2's close order needs ~120k-175k programs of these streams, 5.10's
 * growth without merge was not found in 300k: it needs two anonymous VMAs with a gap that one
 * grows exactly into and a later resize over both); `by: "litmus"`: by the profile's litmus
 * programs (cases/spec/*.PROFILE.json) run through the same refinement check.
 */
describe("planted rules in the 5.10, 6.16 and 7.2 profiles are caught", () => {
  const PLANTED: { profile: ProfileId; change: Partial<Era>; what: string; by: "random" | "litmus" }[] = [
    { profile: "5.10", change: { auxWritableOrder: false }, what: "rb_alloc_aux without the 1-page writable EINVAL", by: "random" },
    { profile: "5.10-pre241", change: { auxWritableOrder: false }, what: "rb_alloc_aux without the 1-page writable EINVAL", by: "random" },
    { profile: "5.10", change: { moveAsksSplit: true }, what: "move_vma asks may_split (6.1's)", by: "random" },
    { profile: "5.10", change: { mm: "v6.1" }, what: "mremap looks the VMA up first", by: "random" },
    { profile: "5.10-pre241", change: { mm: "v6.1", growMerge: true }, what: "6.1-pre148's mm", by: "random" },
    { profile: "5.10", change: { growMerge: true }, what: "mremap growth merges with the next VMA", by: "litmus" },
    { profile: "7.2", change: { closeEventFirst: false }, what: "perf_mmap_close drops the buffer's count first (6.18's)", by: "litmus" },
    // 6.16: each of the three ways it differs from 6.18 (the 6.17 mremap, 448f97fba901, d06bf78e55d5)
    { profile: "6.16", change: { mm: "v6.18" }, what: "6.17's remap_move() (a same-size move spans VMAs)", by: "litmus" },
    { profile: "6.16", change: { refcount: true }, what: "refcount_t mmap counts (6.18's WARN and saturation)", by: "litmus" },
    { profile: "6.16", change: { ebusy: true }, what: "EBUSY for a SET_OUTPUT-only event (6.18.y)", by: "random" },
    { profile: "6.16", change: { leaderExitEnodev: true }, what: "ENODEV for an exited group leader (6.12.118, 6.18.44)", by: "litmus" },
    // 6.17: 6.16 with 6.17's mremap; and not 6.18's refcount_t
    { profile: "6.17", change: { mm: "v6.12" }, what: "6.16's mremap (no remap_move())", by: "litmus" },
    { profile: "6.17", change: { refcount: true }, what: "refcount_t mmap counts (6.18's WARN and saturation)", by: "litmus" },
  ];
  const litmus = (profile: ProfileId) => readdirSync("cases/spec").filter((f) => f.endsWith(`.${profile}.json`))
    .map((f) => Case.parse(JSON.parse(readFileSync(join("cases/spec", f), "utf8"))));

  it.each(PLANTED)("$profile: $what (by $by)", ({ profile, change, by }) => {
    const era = ERAS[profile] as Era;
    const saved = { ...era };
    // the unplanted reference refines the spec on the litmus programs
    if (by === "litmus") for (const c of litmus(profile)) expect(refinementFailure(c.program, c.config, profile), c.name).toBeNull();
    Object.assign(era, change);
    try {
      if (by === "litmus") {
        const caught = litmus(profile).filter((c) => refinementFailure(c.program, c.config, profile) !== null).map((c) => c.name);
        expect(caught.length, `${profile} ${JSON.stringify(change)} survived its litmus programs`).toBeGreaterThan(0);
      } else {
        const i = PROFILES.indexOf(profile);
        const r = fc.check(fc.property(programArb({ config: CONFIG, maxOps: 20 }), (program) => refinementFailure(program, CONFIG, profile) === null),
          { numRuns: PROGRAMS, seed: SEED + i, endOnFailure: true });
        expect(r.failed, `${profile} ${JSON.stringify(change)} survived ${PROGRAMS} programs`).toBe(true);
      }
    } finally {
      Object.assign(era, saved);
    }
  });
});
