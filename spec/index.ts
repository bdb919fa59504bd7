/**
 * auxspec's executable spec: the public API (other components code against these exact
 * signatures). The foundation modules are re-exported.
 *
 *   initialState(config, profile)          the machine before a program
 *   step(state, op, profile)               ALL allowed transitions (never empty, never throws)
 *   teardown(state, profile, program)      the shared teardown of every backend
 *   expectedAudit(endState)                what the audit after teardown must read
 *   checkInvariants(endState, startConfig) conservation violations (empty = ok)
 *   checkTrace(...)                        the verdict on an observed trace
 *   explain(...)                           the allowed sets per op, and the verdict
 *   abstractState(state, program)          the common shape for refinement (spec/abstract.ts)
 *
 * Rules are data (spec/rules/, RULES), invariants too (INVARIANTS). See spec/README.md.
 */
import type { AbstractState } from "./abstract.ts";
import { checkEnd } from "./invariants.ts";
import { toAbstract } from "./model/abstract-map.ts";
import { auditOf, checkTraceImpl, explainImpl, teardownState } from "./model/check.ts";
import { initial, type State } from "./model/state.ts";
import { stepSafe } from "./model/step.ts";
import type { Config, Op, Outcome, ProfileId, Program } from "./program.ts";
import type { Trace, Verdict } from "./trace.ts";

export * from "./program.ts";
export * from "./trace.ts";
export type { AbstractState, AbstractBuffer, AbstractEvent } from "./abstract.ts";
export { profileFor, parseRelease, type ProfileChoice } from "./profiles.ts";
export { RULES, RULE_BY_ID, NON_DECIDING, type Rule, type Cite, type RuleId } from "./rules/index.ts";
export { INVARIANTS, type Invariant } from "./invariants.ts";

declare const specStateBrand: unique symbol;
/** Opaque to other components: only the functions here look inside. */
export type SpecState = { readonly [specStateBrand]: true };

/** `marks`: the non-deciding mechanism markers the step fired (munmap.refund.other_user, ...), null if none. */
export interface Transition { outcome: Outcome; vmPinKb: number; next: SpecState; rule: string; marks: readonly string[] | null }

const inside = (s: SpecState): State => s as unknown as State;
const outside = (s: State): SpecState => s as unknown as SpecState;

export function initialState(config: Config, profile: ProfileId): SpecState {
  return outside(initial(config, profile));
}

export function step(state: SpecState, op: Op, profile: ProfileId): Transition[] {
  return stepSafe(inside(state), op, profile) as unknown as Transition[];
}

export function teardown(state: SpecState, profile: ProfileId, program: Program): SpecState[] {
  return teardownState(inside(state), profile, program) as unknown as SpecState[];
}

/** The audit an end state predicts; `users`: the users other than u0 the program named with
 *  `setuid` (their budgets, keyed uK; spec/model/check.ts otherUsers). */
export function expectedAudit(state: SpecState, users: readonly string[] = []): { vmPinKb: number; budgetPages: number; liveAux: number; budgets?: Record<string, number> } {
  return auditOf(inside(state), users);
}

export function checkInvariants(state: SpecState, startConfig: Config): { id: string; detail: string }[] {
  return checkEnd(inside(state), startConfig);
}

export function checkTrace(program: Program, config: Config, profile: ProfileId, trace: Trace, coverage?: Map<string, number>): Verdict {
  return checkTraceImpl(program, config, profile, trace, coverage);
}

export function explain(program: Program, config: Config, profile: ProfileId, trace: Trace): { perOp: { allowed: Outcome[]; allowedVmPinKb: number[]; rule: string }[]; verdict: Verdict } {
  return explainImpl(program, config, profile, trace);
}

export function abstractState(state: SpecState, program: Program): AbstractState {
  return toAbstract(inside(state), program);
}
