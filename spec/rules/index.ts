/** Every rule of the spec (ids unique; test/spec/rules.test.ts checks). */
import { ACCOUNTING_RULES } from "./accounting.ts";
import { MISC_RULES } from "./misc.ts";
import { MMAP_AUX_RULES } from "./mmap-aux.ts";
import { MMAP_DATA_RULES } from "./mmap-data.ts";
import { MUNMAP_RULES } from "./munmap.ts";
import { OPEN_RULES } from "./open.ts";
import { PROCESS_RULES } from "./process.ts";
import { SET_OUTPUT_RULES } from "./set-output.ts";
import { TOUCH_RULES } from "./touch.ts";
import type { Rule } from "./types.ts";
import { VMA_OPS_RULES } from "./vma-ops.ts";

export type { Rule, Cite } from "./types.ts";

const ALL_RULES = [
  ...OPEN_RULES, ...MMAP_DATA_RULES, ...MMAP_AUX_RULES, ...ACCOUNTING_RULES, ...MUNMAP_RULES,
  ...VMA_OPS_RULES, ...SET_OUTPUT_RULES, ...TOUCH_RULES, ...PROCESS_RULES, ...MISC_RULES,
] as const;

/** Every rule id, as a literal union: a misspelt id anywhere in spec/model is a type error. */
export type RuleId = (typeof ALL_RULES)[number]["id"];

export const RULES: readonly Rule<RuleId>[] = ALL_RULES;

export const RULE_BY_ID: ReadonlyMap<string, Rule<RuleId>> = new Map(RULES.map((r) => [r.id, r]));

/** The rule of an id the type system has already checked. */
export function ruleOf(id: RuleId): Rule<RuleId> {
  return RULE_BY_ID.get(id)!;
}

/**
 * Rules that describe the kernel but never decide a transition of the model: either
 * unreachable with the op set (sizes below INT_MAX, a single AUX PMU, single-threaded
 * programs) or side-effect clauses (accounting, split order) that other rules' transitions
 * carry out.
 */
export const NON_DECIDING: ReadonlySet<string> = new Set<RuleId>([
  "mmap.intmax", "mmap.aux.intmax", "setoutput.aux-pmu", "setoutput.rb-unmapped",
  "acct.limit.seed", "acct.limit.clamp", "acct.refund.data.seed", "acct.refund.data", "acct.refund.aux.seed",
  "acct.refund.aux", "acct.remap.charge", "vma.open", "vma.close", "vma.close.order.events-first", "vma.split.order.61", "vma.split.order.612",
  "refcount.saturate", "mmap.aux.count-early", "mmap.aux.fail-keeps-pages", "mmap.aux.to-page-stale",
  "event.free", "vma.noexec-ok",
  // mechanism markers (issue 13): fired by perf_mmap_close's refunds, counted in coverage
  // (Tr.marks), used by `requires` of known divergences; they never decide an outcome
  "munmap.refund.other_user", "munmap.refund.other_mm",
  // the verdict rule of a par block that no order of its ops explains (issue 14), and the
  // checker's marker of a block that holds a releasing op (known-divergence `requires`)
  "par.linearizable", "par.block.release",
  // unreachable: an event keeps its buffer while it has VMAs, and page 0 of a perf VMA is
  // always backed; every perf VMA starts at slot offset 0, so a multi-VMA move cannot fail
  // after its first VMA
  "touch.norb", "setaux.norb", "readpage.norb", "readpage.beyond", "mremap.multi.partial",
  "spec.internal",
]);
