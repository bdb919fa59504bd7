/**
 * Deciding rules as executable data. An op kind's outcome is decided by an ORDERED list
 * of entries, one per deciding rule, each with its guard (a plain predicate over the op's
 * context, spec/rules/context.ts). The list is declared once, in kernel check order, next
 * to the rules' metadata (spec/rules/<area>.ts); a profile's list is that order filtered
 * by the rules' `profiles` (spec/model/decide.ts). `step` evaluates it with one generic
 * evaluator: the first entry whose guard holds decides.
 *
 * - `when(id, guard)`: a rule. If the rule has an errno and no body, the transition is
 *   that errno with the state unchanged; otherwise the body registered under the id in
 *   spec/model/step.ts runs (a new buffer, a re-map, an error that leaves state behind).
 *   `also` names the rules the body may decide besides its own (the ENOMEM an allocation
 *   may also give, the WARN a refcount_t increment from 0 gives).
 * - `proc(name, decides)`: a procedure: a transition whose rules are decided while it
 *   changes the state (mprotect's walk over VMAs, mremap per era, a page fault that
 *   populates the seed's page tables). It comes last, its guard always holds, and
 *   `decides` lists every rule it can emit.
 */
import type { RuleId } from "./index.ts";

export type Guard<C> = (c: C) => boolean;

export interface Decision<C> {
  /** the rule this entry decides with (a procedure: its name) */
  readonly id: RuleId | `proc:${string}`;
  readonly guard: Guard<C>;
  /** the rules the entry's body may emit (for a rule: its id first) */
  readonly decides: readonly RuleId[];
}

const ALWAYS = (): boolean => true;

export function when<C>(id: RuleId, guard: Guard<C>, also: readonly RuleId[] = []): Decision<C> {
  return { id, guard, decides: [id, ...also] };
}

export function proc<C>(name: string, decides: readonly RuleId[]): Decision<C> {
  return { id: `proc:${name}`, guard: ALWAYS, decides };
}

/** The last rule of a list, which decides whatever no earlier guard took. */
export function otherwise<C>(id: RuleId, also: readonly RuleId[] = []): Decision<C> {
  return when<C>(id, ALWAYS, also);
}
