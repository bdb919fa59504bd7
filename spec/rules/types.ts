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

export const ALL: readonly ProfileId[] = ["seed", "5.10-pre241", "5.10", "6.1-pre148", "6.1", "6.12-pre42", "6.12", "6.16", "6.17", "6.18", "7.2"];
export const MODERN: readonly ProfileId[] = ["5.10-pre241", "5.10", "6.1-pre148", "6.1", "6.12-pre42", "6.12", "6.16", "6.17", "6.18", "7.2"];
export const SEED: readonly ProfileId[] = ["seed"];
/** Eras without perf_mmap_may_split (VMA splits call perf_mmap_open on the new piece). */
export const SPLITTING: readonly ProfileId[] = ["seed", "5.10-pre241", "6.1-pre148", "6.12-pre42"];
export const PRE_FIX: readonly ProfileId[] = ["5.10-pre241", "6.1-pre148", "6.12-pre42"];
/** Eras with perf_mmap_may_split (CVE-2025-38563 fix; 5.10.241+ names the hook `.split`). */
export const MAY_SPLIT: readonly ProfileId[] = ["5.10", "6.1", "6.12", "6.16", "6.17", "6.18", "7.2"];
export const LTS: readonly ProfileId[] = ["5.10-pre241", "5.10", "6.1-pre148", "6.1", "6.12-pre42", "6.12"];
/** 5.10.y: no vma_lookup() up front in mremap, rb_alloc_aux() refuses a writable 1-page AUX area. */
export const V510: readonly ProfileId[] = ["5.10-pre241", "5.10"];
export const V61: readonly ProfileId[] = ["6.1-pre148", "6.1"];
export const V612: readonly ProfileId[] = ["6.12-pre42", "6.12"];
/** before 6.15 (re-maps charge nothing, PROT_EXEC allowed). */
export const NOT618: readonly ProfileId[] = ["seed", "5.10-pre241", "5.10", "6.1-pre148", "6.1", "6.12-pre42", "6.12"];
/** 6.15+ (0c8a4e4139ad re-map charge, INT_MAX check, map_range, noexec anon inodes 1ed95281c0c7): 6.16, 6.17, 6.18 .. 7.3.
 *  The 6.17+ and 6.18+ facts have their own lists (M617, R618). */
export const M618: readonly ProfileId[] = ["6.16", "6.17", "6.18", "7.2"];
/** 6.17+: mremap() moves several VMAs in one MREMAP_FIXED same-size move (remap_move, "mm/mremap: permit mremap() move of multiple VMAs", v6.17). */
export const M617: readonly ProfileId[] = ["6.17", "6.18", "7.2"];
/** 6.18+: mmap counts are refcount_t (448f97fba901, v6.18-rc1: WARN and saturation) and perf_mmap_rb() answers EBUSY for an
 *  event whose own mmap_count is 0 (d06bf78e55d5, v6.19-rc7, 6.18.y; "Fixes: 448f97fba901"). Not in 6.15 .. 6.17 (atomic_t;
 *  6.16.12 and 6.17.13 map a SET_OUTPUT-only event under QEMU). */
export const R618: readonly ProfileId[] = ["6.18", "7.2"];
/** 6.12 and later (the group leader EXIT check in perf_event_open) */
/** (not 6.16, 6.17: 6.16.12 and 6.17.13 answer the same-task check's EINVAL under QEMU, fuzz Dec 2026: a stable backport
 *  that 6.16.y and 6.17.y, both EOL, never got) */
export const V612_ON: readonly ProfileId[] = ["6.12-pre42", "6.12", "6.18", "7.2"];
/** 7.2.13 / 7.3.4 (first version not established): perf_mmap_close drops the event's count before the buffer's. */
export const M72: readonly ProfileId[] = ["7.2"];
export const NOT72: readonly ProfileId[] = ["seed", "5.10-pre241", "5.10", "6.1-pre148", "6.1", "6.12-pre42", "6.12", "6.16", "6.17", "6.18"];

/** Versions read (see the report in spec/README.md for where each copy came from). */
export const V = {
  seed: "v8 AUX patch (Nov 2014) on v3.18.9",
  v318: "v3.18.9",
  v61: "v6.1.192",
  v61pre: "v6.1.147 (v6.1.192 less 5468c0fbccbb, 07091aade394, b024d7b56c77)",
  v612: "v6.12.117",
  v612pre: "v6.12.41 (v6.12.117 less the same three fixes)",
  v616: "v6.16.1+ (6.16-stable review mails of Aug 12 2025, 577..580/627: 5468c0fbccbb, 07091aade394, f74b9f4ba63f, b024d7b56c77; 448f97fba901 and the mremap series diffs show the 6.16 text)",
  v617: "v6.17 (6.16 perf text as in 6.17-rc1: the Aug 2025 fixes went to Linus before rc1; 448f97fba901 is v6.18; mm/mremap.c remap_move, v6.17)",
  v618: "v6.18 (tip perf/core Aug 2025 series, EBUSY fix Jan 2026; seen on 6.18.44)",
  v510: "v5.10.262 (Debian linux-source-5.10 5.10.262-1)",
  v510pre: "v5.10.240 (v5.10.262 less the 5.10.241 backports of 5468c0fbccbb, 07091aade394, b024d7b56c77)",
  v72: "v7.2.13, v7.3.4 (Debian linux-source-7.2 7.2.13-1, linux-source-7.3 7.3.4-1~bpo13+1)",
  lts: "v5.10.262, v6.1.192, v6.12.117",
  all: "v3.18.9+v8, v5.10.262, v6.1.192, v6.12.117, v6.18, v7.3.4",
  modern: "v5.10.262, v6.1.192, v6.12.117, v6.18, v7.3.4",
  v612on: "v7.2.13 read; seen running on v6.12.118 and v6.18.44 (absent in v5.10.262, v6.1.192)",
} as const;

export const CORE = "kernel/events/core.c";
export const RB = "kernel/events/ring_buffer.c";
export const PATCH = "perf-aux-area-v8.patch (kernel/events/core.c, ring_buffer.c)";

/** `id` keeps its literal type, so the arrays of rules give the RuleId union (spec/rules/index.ts). */
export function rule<const I extends string>(id: I, profiles: readonly ProfileId[], errno: Errno | undefined, fn: string, file: string, version: string, summary: string): Rule<I> {
  return errno === undefined ? { id, profiles, cite: { fn, file, version }, summary } : { id, profiles, errno, cite: { fn, file, version }, summary };
}
