/**
 * A rule of the spec, as data (SibylFS style: labelled clauses; LKMM style: one named
 * clause per fact, with the kernel source it was read from).
 *
 * `profiles` lists the eras the clause holds in; `errno` is set when the clause decides an
 * error outcome. The step function (spec/model/) names the rule that decided each
 * transition; test/spec/rules.test.ts checks that every id the model can emit is listed
 * here and that every listed id is emitted by some test.
 */
import type { Errno, ProfileId } from "../program.ts";

export interface Cite {
  /** Kernel function the clause comes from. */
  fn: string;
  /** Source file in the kernel tree (or the seed patch). */
  file: string;
  /** Kernel version(s) the source was read at. */
  version: string;
}

export interface Rule<I extends string = string> {
  id: I;
  profiles: readonly ProfileId[];
  errno?: Errno;
  cite: Cite;
  summary: string;
}

export const ALL: readonly ProfileId[] = ["seed", "6.1-pre148", "6.1", "6.12-pre42", "6.12", "6.18"];
export const MODERN: readonly ProfileId[] = ["6.1-pre148", "6.1", "6.12-pre42", "6.12", "6.18"];
export const SEED: readonly ProfileId[] = ["seed"];
/** Eras without perf_mmap_may_split (VMA splits call perf_mmap_open on the new piece). */
export const SPLITTING: readonly ProfileId[] = ["seed", "6.1-pre148", "6.12-pre42"];
export const PRE_FIX: readonly ProfileId[] = ["6.1-pre148", "6.12-pre42"];
/** Eras with perf_mmap_may_split (CVE-2025-38563 fix). */
export const MAY_SPLIT: readonly ProfileId[] = ["6.1", "6.12", "6.18"];
export const LTS: readonly ProfileId[] = ["6.1-pre148", "6.1", "6.12-pre42", "6.12"];
export const V61: readonly ProfileId[] = ["6.1-pre148", "6.1"];
export const V612: readonly ProfileId[] = ["6.12-pre42", "6.12"];
export const NOT618: readonly ProfileId[] = ["seed", "6.1-pre148", "6.1", "6.12-pre42", "6.12"];
export const M618: readonly ProfileId[] = ["6.18"];

/** Versions read (see the report in spec/README.md for where each copy came from). */
export const V = {
  seed: "v8 AUX patch (Nov 2014) on v3.18.9",
  v318: "v3.18.9",
  v61: "v6.1.192",
  v61pre: "v6.1.147 (v6.1.192 less 5468c0fbccbb, 07091aade394, b024d7b56c77)",
  v612: "v6.12.117",
  v612pre: "v6.12.41 (v6.12.117 less the same three fixes)",
  v618: "v6.18 (tip perf/core Aug 2025 series, EBUSY fix Jan 2026; seen on 6.18.44)",
  lts: "v6.1.192, v6.12.117",
  all: "v3.18.9+v8, v6.1.192, v6.12.117, v6.18",
  modern: "v6.1.192, v6.12.117, v6.18",
} as const;

export const CORE = "kernel/events/core.c";
export const RB = "kernel/events/ring_buffer.c";
export const PATCH = "perf-aux-area-v8.patch (kernel/events/core.c, ring_buffer.c)";

/** `id` keeps its literal type, so the arrays of rules give the RuleId union (spec/rules/index.ts). */
export function rule<const I extends string>(id: I, profiles: readonly ProfileId[], errno: Errno | undefined, fn: string, file: string, version: string, summary: string): Rule<I> {
  return errno === undefined ? { id, profiles, cite: { fn, file, version }, summary } : { id, profiles, errno, cite: { fn, file, version }, summary };
}
