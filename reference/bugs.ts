/**
 * Historic bugs of the perf mmap paths, as switches on the reference: each is a named,
 * documented deviation from the profile's kernel that puts back the code as it was before
 * the fix. The spec, judging the trace under the bug's profile, should catch every
 * observable one; test/reference/bugs.test.ts searches for a program that shows it.
 *
 * Commit ids and subjects are the mainline ones (stable backports named in the note).
 *
 * Several processes (spec/notes/processes.md): every switch acts where its fix did, on the
 * same objects as the fixed code (the mapping process's user and mm for charges, rb->mmap_user
 * and the closing VMA's mm for refunds); none of the bugs depends on which process or user
 * runs the op, so none interacts with processes beyond that.
 */
import type { ProfileId } from "../spec/program.ts";

export interface BugInfo {
  id: string;
  title: string;
  fix: { commit: string; subject: string; version: string };
  cve?: string;
  profiles: ProfileId[];
  observable: boolean;
  /** A race (issue 14): only the explorer's interleavings of a par block can show it
   *  (reference/explore/); sequential runs are unchanged by it. */
  parOnly?: boolean;
  note: string;
}

export const BUGS: readonly BugInfo[] = [
  {
    id: "vma-split",
    title: "perf VMAs can be split (partial munmap/mprotect/mremap, MAP_FIXED over part)",
    fix: {
      commit: "b024d7b56c77191cde544f838debb7f8451cd0d6",
      subject: "perf/core: Prevent VMA split of buffer mappings",
      version: "v6.17-rc1 (stable 6.1.148, 6.12.42, 6.15.10, 6.16.1)",
    },
    cve: "CVE-2025-38563",
    profiles: ["5.10", "6.1", "6.12", "6.16", "6.17", "6.18", "7.2"],
    observable: true,
    note: "Removes perf_mmap_vmops.may_split. A split calls perf_mmap_open() on the new piece, which " +
      "counts any vm_pgoff != 0 as an AUX mapping, while perf_mmap_close() only drops aux_mmap_count " +
      "for vm_pgoff == aux_pgoff: partial munmaps succeed instead of EINVAL, and AUX areas can leak " +
      "(never freed, locked_vm never refunded). On 6.18 the spurious refcount_inc() of a zero " +
      "aux_mmap_count also WARNs (refcount_t: addition on 0).",
  },
  {
    id: "mlock-negative",
    title: "perf_mmap() accounting without the clamp of locked_vm to the limit",
    fix: {
      commit: "003461559ef7a9bd0239bae35a22ad8924d6e9ad",
      subject: "perf/core: Fix mlock accounting in perf_mmap()",
      version: "v5.6-rc1 (stable 4.9.214, 4.19.103, 5.4.19, 5.5.3)",
    },
    profiles: ["5.10-pre241", "5.10", "6.1-pre148", "6.1", "6.12-pre42", "6.12", "6.16", "6.17", "6.18", "7.2"],
    observable: true,
    note: "Before the fix (since c4b75479741c \"perf/core: Make the mlock accounting simple again\"), " +
      "user_locked = locked_vm + user_extra was not clamped: after lowering perf_event_mlock_kb below " +
      "the user's locked_vm (sysctlMlock between two mappings), extra exceeds user_extra, user_extra " +
      "goes negative, locked_vm drops and pinned_vm is charged more pages than were mapped.",
  },
  {
    id: "aux-alloc-result",
    title: "rb_alloc_aux() failure overwritten with success, and map_range() failure not undone",
    fix: {
      commit: "54473e0ef849f44e5ee43e6d6746c27030c3825b",
      subject: "perf/core: Preserve AUX buffer allocation failure result",
      version: "v6.17-rc1 (stable 6.15.10, 6.16.1)",
    },
    profiles: ["6.16", "6.17", "6.18", "7.2"],
    observable: true,
    note: "6.15.0..6.15.9 and 6.16.0 (0983593f32c4 \"perf/core: Lift event->mmap_mutex in perf_mmap()\") " +
      "set ret = 0 after the allocations, so a failed rb_alloc_aux() (software event: EOPNOTSUPP; " +
      "setup_aux NULL: ENOMEM) went on to charge locked_vm/pinned_vm and take event->mmap_count; then " +
      "map_range() found no AUX pages and returned EINVAL, and before f74b9f4ba63f \"perf/core: Handle " +
      "buffer mapping fail correctly in perf_mmap()\" (same release) nothing undid it. The switch puts " +
      "both back: the AUX mmap answers EINVAL and leaks rb->mmap_count, event->mmap_count and the charge.",
  },
  {
    id: "set-output-mmap",
    title: "mmap() of an event that reaches a buffer only through SET_OUTPUT",
    fix: {
      commit: "d06bf78e55d5159c1b00072e606ab924ffbbad35",
      subject: "perf: Fix refcount warning on event->mmap_count increment",
      version: "v6.19-rc7 (stable 6.18.y: 23c0e4bd93d0)",
    },
    profiles: ["6.18", "7.2"],
    observable: true,
    note: "Since 448f97fba901 (\"perf: Convert mmap() refcounts to refcount_t\") perf_mmap_rb() did " +
      "refcount_inc(&event->mmap_count) on an event whose mmap_count is 0 (it only had event->rb from " +
      "PERF_EVENT_IOC_SET_OUTPUT / PERF_FLAG_FD_OUTPUT): the mmap succeeds, refcount_t WARNs (addition " +
      "on 0; use-after-free) and saturates, so the event's mmap_count never returns to 0. The fix answers " +
      "EBUSY.",
  },
  {
    id: "aux-refcount-leak",
    title: "aux_mmap_count set to 1 before the AUX allocation can fail",
    fix: {
      commit: "5468c0fbccbb9d156522c50832244a8b722374fb",
      subject: "perf/core: Don't leak AUX buffer refcount on allocation failure",
      version: "v6.17-rc1 (stable 5.4.297, 5.10.241, 5.15.190, 6.1.148, 6.6.102, 6.12.42, 6.15.10, 6.16.1)",
    },
    profiles: ["5.10", "6.1", "6.12", "6.16", "6.17", "6.18", "7.2"],
    observable: false,
    note: "atomic_set(&rb->aux_mmap_count, 1) ran before the accounting and rb_alloc_aux(), so a failing " +
      "AUX mmap (EPERM, EOPNOTSUPP, ENOMEM) left aux_mmap_count at 1 with no AUX area. No op can see it: " +
      "perf_mmap_close() reads aux_mmap_count only while rb_has_aux(), and the next successful AUX " +
      "allocation sets it to 1 again. It shows in the abstract state (auxMmapCount) only, so the " +
      "refinement test sees it and checkTrace cannot; the bug search skips it.",
  },
  {
    id: "vmalloc-data-page-nr",
    title: "perf_mmap() compares rb->nr_pages instead of data_page_nr() (CONFIG_PERF_USE_VMALLOC)",
    fix: {
      commit: "60490e7966659b26d74bf1fa4aa8693d9a94ca88",
      subject: "perf/core: Fix perf_mmap fail when CONFIG_PERF_USE_VMALLOC enabled",
      version: "v5.18-rc4 (stable 4.9.311, 4.14.276, 4.19.239, 5.4.190, 5.10.112, 5.15.35, 5.17.4)",
    },
    profiles: ["5.10-pre241", "5.10", "6.1-pre148", "6.1", "6.12-pre42", "6.12", "6.16", "6.17", "6.18", "7.2"],
    observable: false,
    note: "With CONFIG_PERF_USE_VMALLOC (arm, mips, sh, sparc32 ... not x86) rb->nr_pages counts one " +
      "high-order block, so a second mapping of a buffer of 2 or more data pages failed EINVAL. No x86 " +
      "kernel our profiles describe can show it (Config has no CONFIG_PERF_USE_VMALLOC switch). The " +
      "switch emulates such a kernel: with it on, re-mapping a buffer with nr_pages >= 2 answers EINVAL; " +
      "the bug search skips it because no profile's kernel could produce that trace.",
  },
  {
    id: "aux-mlock-refund",
    title: "AUX refund undoes either the locked_vm or the pinned_vm part, never both",
    fix: {
      commit: "36b3db03b4741b8935b68fffc7e69951d8d70a89",
      subject: "perf/core: Fix the mlock accounting, again",
      version: "v5.5-rc1 (stable 5.4.7)",
    },
    profiles: ["5.10-pre241", "5.10", "6.1-pre148", "6.1", "6.12-pre42", "6.12", "6.16", "6.17", "6.18", "7.2"],
    observable: true,
    note: "5e6c3c7b1ec2 (\"perf/aux: Fix tracking of auxiliary trace buffer allocation\") refunded an AUX " +
      "area with `if (!rb->aux_mmap_locked) locked_vm -= aux_nr_pages; else pinned_vm -= aux_mmap_locked;`: " +
      "an AUX area charged partly to locked_vm and partly to pinned_vm leaks its locked_vm part (the " +
      "user's budget shrinks for good). Needs an AUX PMU and a charge that crosses the per-user limit.",
  },
  // Races (issue 14, spec/notes/races.md): each switch changes only the lock-level explorer's
  // paths (reference/explore/paths.ts); run sequentially (runReference) a race bug changes
  // nothing, so only par blocks can show it.
  {
    id: "race-close-close",
    title: "perf_mmap_close() decrements rb->mmap_count and reads it back later: two closers both detach and refund",
    fix: { commit: "f91072ed1b72", subject: "perf/core: Fix race in the perf_mmap_close() function", version: "v5.10 (stable backports: not listed here)" },
    cve: "CVE-2020-14351",
    profiles: ["5.10-pre241", "5.10", "6.1-pre148", "6.1", "6.12-pre42", "6.12", "6.16", "6.17", "6.18", "7.2"],
    observable: true,
    parOnly: true,
    note: "Before the fix perf_mmap_close() did atomic_dec(&rb->mmap_count), later (after dropping the " +
      "event's mmap_count) `if (atomic_read(&rb->mmap_count)) goto out_put;`: two last munmaps of one rb " +
      "through two events (SET_OUTPUT, mapped in two mms) both read 0, both detach and both refund " +
      "locked_vm/pinned_vm (a double refund: conservation breaks). Par blocks only.",
  },
  {
    id: "race-setoutput-close",
    title: "perf_event_set_output() holds only the event's mmap_mutex and does not re-check rb->mmap_count",
    fix: { commit: "68e3c69803da", subject: "perf/core: Fix data race between perf_event_set_output() and perf_mmap_close()", version: "v5.19 (in 5.10.262 and 6.1.192: mutex_lock_double() and the rb->mmap_count re-check)" },
    cve: "CVE-2022-49607",
    profiles: ["5.10-pre241", "5.10", "6.1-pre148", "6.1", "6.12-pre42", "6.12", "6.16", "6.17", "6.18", "7.2"],
    observable: true,
    parOnly: true,
    note: "SET_OUTPUT of an event to an rb whose last munmap has passed its detach loop attaches it to a " +
      "buffer with mmap_count 0 that nobody will detach (the event keeps a dead rb: a later mmap of it " +
      "with another size is EINVAL, its mmap retries through `goto again`). Par blocks only.",
  },
  {
    id: "race-aux-serialization",
    title: "AUX allocation and free serialized by each event's mmap_mutex only (no rb->aux_mutex)",
    fix: { commit: "2ab9d830262c", subject: "perf/aux: Fix AUX buffer serialization", version: "v6.11 (in 5.10.262 and 6.1.192: rb->aux_mutex in perf_mmap() and perf_mmap_close())" },
    cve: "CVE-2024-46713",
    profiles: ["5.10-pre241", "5.10", "6.1-pre148", "6.1", "6.12-pre42", "6.12", "6.16", "6.17", "6.18", "7.2"],
    observable: true,
    parOnly: true,
    note: "Two AUX mmaps through two events sharing an rb (SET_OUTPUT) both see no AUX area and both " +
      "rb_alloc_aux(): the first area leaks (its setup never freed, its charge never refunded). Par blocks only.",
  },
  {
    id: "race-mmap-unlocked-map-range",
    title: "perf_mmap() drops event->mmap_mutex before map_range() and its failure path",
    fix: { commit: "77de62ad3de3", subject: "perf/core: Fix refcount bug and potential UAF in perf_mmap", version: "v7.0" },
    cve: "CVE-2026-23248",
    profiles: ["6.16", "6.17", "6.18", "7.2"],
    observable: true,
    parOnly: true,
    note: "perf_mmap() drops event->mmap_mutex after perf_mmap_rb()/perf_mmap_aux() and runs map_range() " +
      "and, when that fails, perf_mmap_close() unlocked: another task's mmap of the same event sees the " +
      "half-made buffer in between (a re-map of it, or EINVAL for another size) and, with the rb-first " +
      "close (6.18), can have its own new buffer detached by the failing mmap's close (NULL event->rb at " +
      "its munmap). Needs a failing map_range(): the model-only `mapRangeFault` op (spec/notes/races.md). " +
      "Par blocks only.",
  },
  {
    id: "race-map-range-aux",
    title: "map_range() reads the AUX pages without rb->aux_mutex",
    fix: { commit: "5948aaf64f81", subject: "perf/aux: Fix page UAF in map_range()", version: "v7.2" },
    cve: "CVE-2026-64300",
    profiles: ["6.16", "6.17", "6.18", "7.2"],
    observable: false,
    parOnly: true,
    note: "map_range() of an AUX mapping looks the AUX pages up and maps them under the event's " +
      "mmap_mutex only; a concurrent rb_free_aux() through another event of the rb frees them in " +
      "between (the explorer reports the use after free). Par blocks only.",
  },
];

/** Bug switches the reference reads in its hot paths (booleans, looked up once per Kernel). */
export interface BugFlags {
  vmaSplit: boolean;
  mlockNegative: boolean;
  auxAllocResult: boolean;
  setOutputMmap: boolean;
  auxRefcountLeak: boolean;
  vmallocDataPageNr: boolean;
  auxMlockRefund: boolean;
  raceCloseClose: boolean;
  raceSetoutputClose: boolean;
  raceAuxSerialization: boolean;
  raceMmapUnlockedMapRange: boolean;
  raceMapRangeAux: boolean;
}

const BUG_IDS: ReadonlySet<string> = new Set(BUGS.map((b) => b.id));

/** The flags of a kernel without bugs: one shared object (never written), so the common case
 *  allocates nothing per Kernel. */
const NO_BUGS: BugFlags = {
  vmaSplit: false,
  mlockNegative: false,
  auxAllocResult: false,
  setOutputMmap: false,
  auxRefcountLeak: false,
  vmallocDataPageNr: false,
  auxMlockRefund: false,
  raceCloseClose: false,
  raceSetoutputClose: false,
  raceAuxSerialization: false,
  raceMmapUnlockedMapRange: false,
  raceMapRangeAux: false,
};

export function bugFlags(bugs: ReadonlySet<string> | undefined): BugFlags {
  if (!bugs || bugs.size === 0) return NO_BUGS;
  for (const id of bugs) {
    if (!BUG_IDS.has(id)) throw new Error(`unknown reference bug ${JSON.stringify(id)}; known: ${BUGS.map((b) => b.id).join(", ")}`);
  }
  return {
    vmaSplit: bugs.has("vma-split"),
    mlockNegative: bugs.has("mlock-negative"),
    auxAllocResult: bugs.has("aux-alloc-result"),
    setOutputMmap: bugs.has("set-output-mmap"),
    auxRefcountLeak: bugs.has("aux-refcount-leak"),
    vmallocDataPageNr: bugs.has("vmalloc-data-page-nr"),
    auxMlockRefund: bugs.has("aux-mlock-refund"),
    raceCloseClose: bugs.has("race-close-close"),
    raceSetoutputClose: bugs.has("race-setoutput-close"),
    raceAuxSerialization: bugs.has("race-aux-serialization"),
    raceMmapUnlockedMapRange: bugs.has("race-mmap-unlocked-map-range"),
    raceMapRangeAux: bugs.has("race-map-range-aux"),
  };
}
