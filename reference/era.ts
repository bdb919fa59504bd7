/**
 * Which kernel code each profile runs: one record of switches per profile, read by the
 * reference at every branch where the eras differ. Every switch names the source it comes
 * from (function, version); the reference cites the same lines where it uses them.
 *
 * Sources read for this file:
 * - seed: /work/shared/seed/perf-aux-area-v8.patch.txt applied to v3.18 kernel/events/core.c
 *   and ring_buffer.c (the patch's context lines), v3.18 mm/mmap.c and mm/mremap.c.
 * - 6.1: Debian linux-source-6.1 6.1.192 (kernel/events/core.c, ring_buffer.c, mm/mmap.c,
 *   mm/mremap.c, mm/mprotect.c); "pre148" = the same minus the five Aug 2025 fixes
 *   (b024d7b56c77 may_split, 07091aade394 exit early, 5468c0fbccbb AUX refcount,
 *   as backported to 6.1.148).
 * - 6.12: Debian linux-source-6.12 6.12.117 (same files plus mm/vma.c); "pre42" likewise.
 * - 5.10: Debian linux-source-5.10 5.10.262 (kernel/events/core.c, ring_buffer.c, mm/mmap.c,
 *   mm/mremap.c), read in Debian linux-source-5.10 5.10.262 (spec/notes/timeline-deltas.md); "pre241" = the same minus the 5.10.241
 *   backports of b024d7b56c77 (the `.split` hook) and 5468c0fbccbb (AUX count).
 * - 7.2: Debian linux-source-7.2 7.2.13 and linux-source-7.3 7.3.4 (kernel/events/core.c).
 * - 6.16: 6.18's switches with atomic_t, no EBUSY and 6.12's mm (see v616 below; sources: the
 *   6.16-stable review mails of Aug 12 2025, the 448f97fba901 diff, the 6.17 mremap series diffs).
 * - 6.18: the tip/stable patch mails of the 6.15..6.19 perf_mmap() rework
 *   (0c8a4e4139ad "perf/core: Further simplify perf_mmap()", PeterZ's Aug 2025 split into
 *   perf_mmap_rb()/perf_mmap_aux(), 448f97fba901 refcount_t, d06bf78e55d5 EBUSY,
 *   f74b9f4ba63f map_range() failure), mm/mremap.c multi-VMA move (eaa5bd1a4940, 6.17),
 *   and this machine's 6.18.44 kernel (probes in the test suite's comments).
 */
import type { ProfileId } from "../spec/program.ts";

export interface Era {
  profile: ProfileId;
  /** perf_mmap()/perf_mmap_close() code shape: the v8 seed, 6.1/6.12 (one function), 6.15+ split. */
  perf: "seed" | "v6.1" | "v6.18";
  /** mm code: munmap split direction and mremap pre-checks. v3.18 and v6.1 split with the new
   *  VMA on the removed side (do_munmap / do_mas_align_munmap); v6.12+ keep the new VMA on the
   *  side that stays (vms_gather_munmap_vmas); v3.18 mremap has no vma_lookup() up front. */
  mm: "v3.18" | "v5.10" | "v6.1" | "v6.12" | "v6.18";
  /** move_vma() asks vm_ops->may_split before copying (6.1+ mm/mremap.c); 5.10.262's move_vma
   *  does not, and ignores the failed do_munmap() of the old range. */
  moveAsksSplit: boolean;
  /** mremap() growth in place: vma_merge() with the next VMA (6.0+) vs vma_adjust() (3.18, 5.10). */
  growMerge: boolean;
  /** rb_alloc_aux(): `if (!overwrite) { if (!max_order) return -EINVAL; ...}` (5.10.262; 6.1 takes
   *  the order from the watermark). */
  auxWritableOrder: boolean;
  /** perf_mmap_close() drops event->mmap_count before rb->mmap_count (7.2.13, 7.3.4:
   *  "Drop references in reverse order of perf_mmap()"). */
  closeEventFirst: boolean;
  /** perf_mmap_vmops.may_split (b024d7b56c77, 6.1.148, 6.12.42, 6.16.1+). */
  maySplit: boolean;
  /** event->mmap_count, rb->mmap_count, rb->aux_mmap_count are refcount_t (448f97fba901, 6.18). */
  refcount: boolean;
  /** aux_refcount / rb->refcount are refcount_t (all 6.x; atomic_t in the seed). */
  auxRefcountT: boolean;
  /** Pages are mapped at mmap() time (b709eb872e19 "perf/core: map pages in advance", 6.14+). */
  mapAtMmap: boolean;
  /** Anon inodes are SB_I_NOEXEC (6.15+): do_mmap() refuses PROT_EXEC with EPERM and clears VM_MAYEXEC. */
  noexec: boolean;
  /** perf_mmap_rb(): EBUSY for an event whose own mmap_count is 0 (d06bf78e55d5, 6.19-rc7 / 6.18.y; not 6.16, 6.17). */
  ebusy: boolean;
  /** perf_mmap() charges user_extra on every successful mapping, also re-maps of an existing
   *  buffer or AUX area (0c8a4e4139ad moved `user_extra = nr_pages` before the branch, 6.15+). */
  remapCharge: boolean;
  /** perf_mmap() accounting clamps locked_vm to the limit before adding (003461559ef7, 5.6+). */
  clamp: boolean;
  /** locked_vm is charged only the part under the limit (d44248a41337/c4b75479741c, 4.19+);
   *  the seed charges all of user_extra to locked_vm and refunds all of it. */
  splitCharge: boolean;
  /** atomic_set(&rb->aux_mmap_count, 1) before accounting (pre 5468c0fbccbb). */
  auxMmapCountEarly: boolean;
  /** rb_alloc_aux() without setup_aux: -ENOTSUPP (524; the harness names it ENOTSUPP, hwtest/host/errno.ts) in the seed, -EOPNOTSUPP later. */
  enotsupp: "ENOTSUPP" | "EOPNOTSUPP";
  /** set_output() refuses a target whose rb->mmap_count is 0 (seed: no such check). */
  setOutputMmapCheck: boolean;
  /** perf_event_open() answers ENODEV for a group leader in PERF_EVENT_STATE_EXIT (its task
   *  exited) right after the group fd lookup (7.2.13; seen on 6.12.118, 6.18.44; absent in
   *  5.10.262, 6.1.192). */
  leaderExitEnodev: boolean;
}

const base618: Era = {
  profile: "6.18", perf: "v6.18", mm: "v6.18", maySplit: true, refcount: true, auxRefcountT: true,
  mapAtMmap: true, noexec: true, ebusy: true, remapCharge: true, clamp: true, splitCharge: true,
  auxMmapCountEarly: false, enotsupp: "EOPNOTSUPP", setOutputMmapCheck: true,
  moveAsksSplit: true, growMerge: true, auxWritableOrder: false, closeEventFirst: false, leaderExitEnodev: true,
};

const v61: Era = {
  profile: "6.1", perf: "v6.1", mm: "v6.1", maySplit: true, refcount: false, auxRefcountT: true,
  mapAtMmap: false, noexec: false, ebusy: false, remapCharge: false, clamp: true, splitCharge: true,
  auxMmapCountEarly: false, enotsupp: "EOPNOTSUPP", setOutputMmapCheck: true,
  moveAsksSplit: true, growMerge: true, auxWritableOrder: false, closeEventFirst: false, leaderExitEnodev: false,
};

/** 6.15.10+ / 6.16.1+: the 6.15 perf_mmap() (0c8a4e4139ad "Further simplify perf_mmap()", 0983593f32c4
 *  "Lift event->mmap_mutex": one function, but the same checks, re-map charge and failure paths as
 *  6.18's perf_mmap_rb()/perf_mmap_aux(), as the diffs of 448f97fba901 and the 6.16-stable patches
 *  577..580/627 show), map_range(), noexec anon inodes (1ed95281c0c7, v6.15); atomic_t counts
 *  (448f97fba901 is v6.18), so no EBUSY (d06bf78e55d5 fixes 448f97fba901, 6.18.y only); 6.12's
 *  mm (mremap_to() unmaps the target before remap_is_valid(): no multi-VMA move before 6.17).
 *  No ENODEV for an exited group leader: 6.16.12 answers EINVAL (found by the fuzzer under QEMU). */
const v616: Era = { ...base618, profile: "6.16", mm: "v6.12", refcount: false, ebusy: false, leaderExitEnodev: false };

/** 5.10.262: 6.1's perf_mmap() text (user->locked_vm instead of perf_mlock), 3.18's mremap shape. */
const v510: Era = { ...v61, profile: "5.10", mm: "v5.10", moveAsksSplit: false, growMerge: false, auxWritableOrder: true };

export const ERAS: Readonly<Record<ProfileId, Era>> = {
  seed: {
    profile: "seed", perf: "seed", mm: "v3.18", maySplit: false, refcount: false, auxRefcountT: false,
    mapAtMmap: false, noexec: false, ebusy: false, remapCharge: false, clamp: false, splitCharge: false,
    auxMmapCountEarly: true, enotsupp: "ENOTSUPP", setOutputMmapCheck: false,
    moveAsksSplit: false, growMerge: false, auxWritableOrder: false, closeEventFirst: false, leaderExitEnodev: false,
  },
  "5.10-pre241": { ...v510, profile: "5.10-pre241", maySplit: false, auxMmapCountEarly: true },
  "5.10": v510,
  "6.1-pre148": { ...v61, profile: "6.1-pre148", maySplit: false, auxMmapCountEarly: true },
  "6.1": v61,
  "6.12-pre42": { ...v61, profile: "6.12-pre42", mm: "v6.12", maySplit: false, auxMmapCountEarly: true, leaderExitEnodev: true },
  "6.12": { ...v61, profile: "6.12", mm: "v6.12", leaderExitEnodev: true },
  "6.16": v616,
  /** 6.17: 6.16 with 6.17's mm/mremap.c (remap_move(): a same-size MREMAP_FIXED move spans VMAs). */
  "6.17": { ...v616, profile: "6.17", mm: "v6.18" },
  "6.18": base618,
  "7.2": { ...base618, profile: "7.2", closeEventFirst: true },
};
