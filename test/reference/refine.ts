/**
 * The refinement check between the reference (reference/) and the spec (spec/index.ts), two
 * implementations written independently: after every op the reference's outcome and VmPin
 * must be among the transitions the spec allows, and the reference's abstract state must equal
 * the abstract state of one of those transitions' targets; after teardown, the reference's
 * audit must be the spec's expected audit and the abstract states must meet again.
 */
import { programHandles, type Config, type Program, type ProfileId } from "../../spec/program.ts";
import { vmPinMatches } from "../../spec/model/check.ts";
import { abstractState, expectedAudit, initialState, sameOutcome, showOp, showOutcome, step, teardown, type SpecState } from "../../spec/index.ts";
import { Kernel } from "../../reference/index.ts";

/** Spec states kept per op (the spec may allow several transitions with the same observation). */
const MAX_STATES = 8;

export interface RefinementFailure {
  opIndex: number;
  what: "outcome" | "abstract" | "audit" | "crash";
  detail: string;
  /** The spec rules of the transitions it allowed at that op (outcome/abstract failures). */
  rules?: string[];
  /** The reference's observation at that op, or its audit. */
  observed?: string;
  /** After teardown: the reference's budgetPages and the spec's. */
  budget?: { reference: number | undefined; spec: number[] };
}

const json = (x: unknown) => JSON.stringify(x);

export function refinementFailure(program: Program, config: Config, profile: ProfileId, bugs?: ReadonlySet<string>): RefinementFailure | null {
  const k = new Kernel(config, profile, bugs);
  let states: SpecState[] = [initialState(config, profile)];
  for (let i = 0; i < program.length; i++) {
    const op = program[i];
    let s;
    try {
      s = k.exec(op);
    } catch (e) {
      return { opIndex: i, what: "crash", detail: `reference: ${(e as Error).message}` };
    }
    const ra = json(k.abstract(program));
    const next: SpecState[] = [];
    const allowed: string[] = [];
    const rules: string[] = [];
    let sameObs: SpecState | null = null;
    for (const st of states) {
      for (const tr of step(st, op, profile)) {
        allowed.push(`${showOutcome(tr.outcome)}/${tr.vmPinKb}kB (${tr.rule})`);
        rules.push(tr.rule);
        if (!sameOutcome(tr.outcome, s.outcome) || !vmPinMatches(tr.vmPinKb, s.vmPinKb)) continue;
        sameObs ??= tr.next;
        if (next.length < MAX_STATES && json(abstractState(tr.next, program)) === ra) next.push(tr.next);
      }
    }
    if (!next.length) {
      const observed = `${showOutcome(s.outcome)}/${s.vmPinKb}kB`;
      if (!sameObs) {
        return { opIndex: i, what: "outcome", rules, observed, detail: `op ${i} (${showOp(op)}): reference ${observed}, spec allows ${[...new Set(allowed)].join(", ")}` };
      }
      return {
        opIndex: i, what: "abstract", rules, observed,
        detail: `op ${i} (${showOp(op)}): same observation ${observed}, different state\n  reference ${ra}\n  spec      ${json(abstractState(sameObs, program))}`,
      };
    }
    states = next;
  }
  let audit;
  try {
    audit = k.finish(program);
  } catch (e) {
    return { opIndex: -1, what: "crash", detail: `reference teardown: ${(e as Error).message}` };
  }
  const ra = json(k.abstract(program));
  const ends = states.flatMap((st) => teardown(st, profile, program));
  const expected: string[] = [];
  const specBudgets: number[] = [];
  const users = programHandles(program).users.filter((u) => u !== "u0");
  for (const end of ends) {
    const a = expectedAudit(end, users);
    expected.push(json(a));
    specBudgets.push(a.budgetPages);
    const auditOk = vmPinMatches(a.vmPinKb, audit.vmPinKb) && a.budgetPages === audit.budgetPages &&
      JSON.stringify(a.budgets ?? {}) === JSON.stringify(audit.budgets ?? {}) &&
      (config.pmus.aux === null || a.liveAux === audit.liveAux);
    if (auditOk && json(abstractState(end, program)) === ra) return null;
  }
  return {
    opIndex: -1, what: "audit", observed: json(audit), budget: { reference: audit.budgetPages, spec: specBudgets },
    detail: `after teardown: reference audit ${json(audit)}, spec expects one of ${expected.join(" ")}\n  reference ${ra}\n  spec      ${ends.length ? json(abstractState(ends[0], program)) : "(no end state)"}`,
  };
}
