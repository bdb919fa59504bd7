/**
 * What the spec expects of a program when no trace has been observed yet: walk the
 * spec's state sets, at each op taking the *preferred* outcome (the first allowed one:
 * success before ENOMEM), and record the whole allowed set beside it. Used to write C
 * reproducers, which check a kernel op by op without running the spec.
 */
import { initialState, step, teardown, expectedAudit, checkInvariants, type SpecState } from "../spec/index.ts";
import type { Config, Outcome, ProfileId, Program } from "../spec/program.ts";
import { sameOutcome } from "../spec/trace.ts";

export interface OpExpectation {
  preferred: Outcome;
  allowed: Outcome[];
  allowedVmPinKb: number[];
  rule: string;
}

export interface ProgramExpectation {
  perOp: OpExpectation[];
  /** VmPin and budget after teardown along the preferred path. */
  audit: { vmPinKb: number; budgetPages: number; liveAux: number };
  /** Conservation invariants the spec's own prediction breaks (seed profile, for instance). */
  brokenInvariants: { id: string; detail: string }[];
}

export function expectProgram(program: Program, config: Config, profile: ProfileId): ProgramExpectation {
  let states: SpecState[] = [initialState(config, profile)];
  const perOp: OpExpectation[] = [];
  for (const op of program) {
    const ts = states.flatMap((s) => step(s, op, profile));
    const allowed: Outcome[] = [];
    for (const t of ts) if (!allowed.some((o) => sameOutcome(o, t.outcome))) allowed.push(t.outcome);
    const preferred = ts[0].outcome;
    const keep = ts.filter((t) => sameOutcome(t.outcome, preferred));
    const pins = [...new Set(keep.map((t) => t.vmPinKb))];
    perOp.push({ preferred, allowed, allowedVmPinKb: pins, rule: keep[0].rule });
    // Keep only the states of the preferred outcome with the first VmPin (what the reproducer checks).
    states = keep.filter((t) => t.vmPinKb === pins[0]).map((t) => t.next);
  }
  const ends = states.flatMap((s) => teardown(s, profile, program));
  const end = ends[0];
  return { perOp, audit: expectedAudit(end), brokenInvariants: checkInvariants(end, config) };
}
