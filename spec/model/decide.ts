/**
 * The per-profile rule lists and the one evaluator `step` uses.
 *
 * A profile's list for an op kind is the op's ordered declaration (spec/rules/<area>.ts)
 * filtered by the rules' `profiles`: a rule a profile lacks is simply not in its list
 * (EBUSY, noexec, the seed's ENOTSUPP, 6.1's MAP_FIXED ENOMEM). The lists are built once
 * at module load; evaluating one is a loop over plain functions.
 */
import type { Errno, Outcome, ProfileId } from "../program.ts";
import type { Decision, Guard } from "../rules/decision.ts";
import { AUXFAULT_DECIDE, MAPRANGEFAULT_DECIDE, RLIMIT_DECIDE, SYSCTL_DECIDE } from "../rules/misc.ts";
import { MMAP_AUX_DECIDE } from "../rules/mmap-aux.ts";
import { MMAP_DATA_DECIDE, MMAP_DECIDE } from "../rules/mmap-data.ts";
import { MUNMAP_DECIDE } from "../rules/munmap.ts";
import { CLOSE_DECIDE, OPEN_DECIDE } from "../rules/open.ts";
import { EXIT_DECIDE, FORK_DECIDE, PAR_DECIDE, SENDFD_DECIDE, SETUID_DECIDE, THREAD_DECIDE } from "../rules/process.ts";
import { SETOUTPUT_DECIDE } from "../rules/set-output.ts";
import { READPAGE_DECIDE, SETAUX_DECIDE, TOUCH_DECIDE } from "../rules/touch.ts";
import { MAPFIXED_DECIDE, MPROTECT_DECIDE, MREMAP_DECIDE } from "../rules/vma-ops.ts";
import { ruleOf, type RuleId } from "../rules/index.ts";
import type { Draft, State } from "./state.ts";

/** A transition: outcome, the op's process's VmPin after it, the next state, the deciding
 *  rule, and the non-deciding mechanism markers the step fired (null: none). */
export interface Tr { outcome: Outcome; vmPinKb: number; next: State; rule: RuleId; marks: readonly string[] | null }

export const OK: Outcome = Object.freeze({ ok: true as const });
const ERR = new Map<string, Outcome>();
export function err(e: string): Outcome {
  let o = ERR.get(e);
  if (o === undefined) { o = Object.freeze({ errno: e }); ERR.set(e, o); }
  return o;
}

/** A transition that leaves the state as it is. */
export function trS(s: State, outcome: Outcome, rule: RuleId): Tr {
  return { outcome, vmPinKb: s.pinnedVm * 4, next: s, rule, marks: null };
}
/** A transition to what a Draft holds. */
export function trD(d: Draft, outcome: Outcome, rule: RuleId): Tr {
  const next = d.finish();
  return { outcome, vmPinKb: next.pinnedVm * 4, next, rule, marks: d.marks };
}

/** The op kinds' declarations, in one place (a key per decision point of `step`). */
export const DECLARATIONS = {
  open: OPEN_DECIDE, close: CLOSE_DECIDE, setOutput: SETOUTPUT_DECIDE,
  mmap: MMAP_DECIDE, mmapData: MMAP_DATA_DECIDE, mmapAux: MMAP_AUX_DECIDE,
  munmap: MUNMAP_DECIDE, mprotect: MPROTECT_DECIDE, mremap: MREMAP_DECIDE, mapFixedAnon: MAPFIXED_DECIDE,
  touch: TOUCH_DECIDE, setAux: SETAUX_DECIDE, readUserPage: READPAGE_DECIDE,
  rlimit: RLIMIT_DECIDE, sysctlMlock: SYSCTL_DECIDE, auxFault: AUXFAULT_DECIDE, mapRangeFault: MAPRANGEFAULT_DECIDE,
  fork: FORK_DECIDE, exit: EXIT_DECIDE, setuid: SETUID_DECIDE, sendFd: SENDFD_DECIDE,
  thread: THREAD_DECIDE, par: PAR_DECIDE,
} as const;

export type Point = keyof typeof DECLARATIONS;
type CtxOf<P extends Point> = (typeof DECLARATIONS)[P] extends readonly Decision<infer C>[] ? C : never;

/** What runs when an entry decides: the rule's transition (the id is the entry's). */
export type Body<C> = (c: C, id: RuleId) => Tr[];
/** Bodies by rule id (or `proc:name`), per decision point. */
export type Bodies = { [P in Point]: Partial<Record<RuleId | `proc:${string}`, Body<CtxOf<P>>>> };

export interface Entry<C> {
  readonly id: RuleId | `proc:${string}`;
  readonly guard: Guard<C>;
  readonly decides: readonly RuleId[];
  /** the rule's errno when it has no body: the transition is that errno, state unchanged */
  readonly errno: Errno | undefined;
  readonly body: Body<C> | undefined;
}

export type Lists = { readonly [P in Point]: readonly Entry<CtxOf<P>>[] };

export interface Table {
  readonly profile: ProfileId;
  /** every rule of the profile */
  readonly has: ReadonlySet<RuleId>;
  readonly lists: Lists;
}

export function inProfile(d: Decision<unknown>, profile: ProfileId): boolean {
  return d.id.startsWith("proc:") || ruleOf(d.id as RuleId).profiles.includes(profile);
}

function entries<C>(point: Point, decl: readonly Decision<C>[], profile: ProfileId, bodies: Bodies): Entry<C>[] {
  const byId = bodies[point] as Partial<Record<string, Body<C>>>;
  return decl.filter((d) => inProfile(d as Decision<unknown>, profile)).map((d) => {
    const body = byId[d.id];
    const errno = d.id.startsWith("proc:") ? undefined : ruleOf(d.id as RuleId).errno;
    if (body === undefined && errno === undefined) throw new Error(`${point}: ${d.id} decides a transition but has no body`);
    return { id: d.id, guard: d.guard, decides: d.decides, errno, body };
  });
}

export function buildTable(profile: ProfileId, bodies: Bodies, decl: { readonly [P in Point]: readonly Decision<CtxOf<P>>[] } = DECLARATIONS): Table {
  const lists = {} as Record<Point, unknown>;
  for (const p of Object.keys(decl) as Point[]) lists[p] = entries(p, decl[p] as readonly Decision<unknown>[], profile, bodies);
  const has = new Set<RuleId>();
  for (const p of Object.keys(decl) as Point[]) for (const d of decl[p] as readonly Decision<unknown>[]) for (const id of d.decides) if (ruleOf(id).profiles.includes(profile)) has.add(id);
  return { profile, has, lists: lists as unknown as Lists };
}

/**
 * A copy of a table with two entries of one decision point swapped (what a profile with
 * another check order would be); test/spec/decide.test.ts shows that the order decides.
 */
export function swapped(t: Table, point: Point, a: RuleId, b: RuleId): Table {
  const list = [...t.lists[point]] as Entry<unknown>[];
  const i = list.findIndex((e) => e.id === a);
  const j = list.findIndex((e) => e.id === b);
  if (i < 0 || j < 0) throw new Error(`${point}: ${a} or ${b} not in ${t.profile}'s list`);
  [list[i], list[j]] = [list[j], list[i]];
  return { ...t, lists: { ...t.lists, [point]: list } };
}

/** The generic evaluator: the first entry whose guard holds decides (null: none did). */
export function evaluate<C extends { s: State }>(list: readonly Entry<C>[], c: C): Tr[] | null {
  for (let i = 0; i < list.length; i++) {
    const r = list[i];
    if (!r.guard(c)) continue;
    return r.body !== undefined ? r.body(c, r.id as RuleId) : [trS(c.s, err(r.errno!), r.id as RuleId)];
  }
  return null;
}

/** Which entry of a list decides (for tests and explain): its index, or -1. */
export function decidingIndex<C>(list: readonly Entry<C>[], c: C): number {
  for (let i = 0; i < list.length; i++) if (list[i].guard(c)) return i;
  return -1;
}
