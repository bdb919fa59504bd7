/**
 * Everything a kernel may show for a program under one profile, as a finite list of
 * observation paths: each path is the sequence of (outcome, VmPin) the spec allows op by op,
 * with the audits it allows after teardown. The exported C program keeps the paths its
 * observations match, so it accepts exactly what `replay` (spec checkTrace, which tracks a
 * set of states) accepts, instead of only the preferred path that fuzz/expect.ts records.
 *
 * Paths branch where the spec allows more than one (outcome, VmPin) pair (ENOMEM before or
 * after success, for instance). A program with more than `maxPaths` paths is not exported
 * for that profile (the C program skips there).
 */
import { initialState, step, teardown, expectedAudit, checkInvariants, type SpecState } from "../spec/index.ts";
import type { Config, Outcome, Program, ProfileId } from "../spec/program.ts";
import { sameOutcome } from "../spec/trace.ts";

export interface PathAudit {
  vmPinKb: number;
  budgetPages: number;
  /** The first conservation invariant this predicted end state breaks (spec checkEnd), or null. */
  broken: string | null;
}

export interface ObsPath {
  steps: { outcome: Outcome; vmPinKb: number }[];
  /** Rules that fired along the path (for known divergences' `requires`). */
  rules: Set<string>;
  audits: PathAudit[];
}

export class TooManyPaths extends Error {}

export function enumeratePaths(program: Program, config: Config, profile: ProfileId, maxPaths = 256): ObsPath[] {
  const out: ObsPath[] = [];
  const go = (i: number, states: SpecState[], steps: ObsPath["steps"], rules: Set<string>): void => {
    if (i === program.length) {
      const audits: PathAudit[] = [];
      for (const s of states) {
        for (const end of teardown(s, profile, program)) {
          const a = expectedAudit(end);
          const broken = checkInvariants(end, config)[0]?.id ?? null;
          if (!audits.some((x) => x.vmPinKb === a.vmPinKb && x.budgetPages === a.budgetPages && x.broken === broken)) {
            audits.push({ vmPinKb: a.vmPinKb, budgetPages: a.budgetPages, broken });
          }
        }
      }
      out.push({ steps, rules, audits });
      if (out.length > maxPaths) throw new TooManyPaths(`more than ${maxPaths} observation paths`);
      return;
    }
    const ts = states.flatMap((s) => step(s, program[i], profile));
    if (ts.length === 0) return; // the spec allows nothing here: no path goes on
    const groups: { outcome: Outcome; vmPinKb: number; next: SpecState[]; rules: Set<string> }[] = [];
    for (const t of ts) {
      let g = groups.find((x) => x.vmPinKb === t.vmPinKb && sameOutcome(x.outcome, t.outcome));
      if (!g) groups.push(g = { outcome: t.outcome, vmPinKb: t.vmPinKb, next: [], rules: new Set() });
      g.next.push(t.next);
      g.rules.add(t.rule);
    }
    for (const g of groups) go(i + 1, g.next, [...steps, { outcome: g.outcome, vmPinKb: g.vmPinKb }], new Set([...rules, ...g.rules]));
  };
  go(0, [initialState(config, profile)], [], new Set());
  return out;
}
