/**
 * munmap() of perf VMAs and what a VMA split does to the counts.
 *
 * Before perf_mmap_may_split (seed, 6.1 < 148, 6.12 < 42) a partial munmap splits the VMA:
 * __split_vma calls vm_ops->open = perf_mmap_open on the NEW piece, then the removed
 * pieces are closed with perf_mmap_close. perf_mmap_open counts any vm_pgoff != 0 as an
 * AUX mapping while perf_mmap_close only uncounts vm_pgoff == aux_pgoff, so splitting an
 * AUX VMA (or a data VMA while an AUX area exists) leaves aux_mmap_count too high and the
 * AUX area (and its locked_vm) is never freed. That is CVE-2025-38563.
 *
 * Which piece is "new" differs by era: 3.18 and 6.1 split the start with new_below = 0
 * (the new piece is the removed upper part) and the end with new_below = 1; 6.12's
 * vms_gather_munmap_vmas does the opposite (the new pieces are the kept ones). The
 * pgoff of the piece perf_mmap_open sees differs, and so does the AUX count.
 */
import { ALL, CORE, M72, MAY_SPLIT, NOT72, R618, SPLITTING, V, rule } from "./types.ts";
import type { RangeCtx } from "./context.ts";
import { otherwise, when, type Decision } from "./decision.ts";

export const MUNMAP_RULES = [
  rule("munmap.len0", ALL, "EINVAL", "__vm_munmap", "mm/mmap.c", V.all,
    "munmap of zero pages"),
  rule("munmap.ok", ALL, undefined, "do_vmi_munmap", "mm/mmap.c, mm/vma.c", V.all,
    "every VMA inside the range is closed (perf_mmap_close) in address order; nothing mapped is fine [seen on 6.18]"),
  rule("munmap.split", MAY_SPLIT, "EINVAL", "perf_mmap_may_split", CORE, V.modern,
    "a range that would split a perf VMA (head, middle or tail) fails before anything changes [seen on 6.18]"),
  rule("munmap.split.ok", SPLITTING, undefined, "__split_vma", "mm/mmap.c, mm/vma.c", `${V.v318}, ${V.v61pre}, ${V.v612pre}`,
    "a partial munmap splits the VMA, perf_mmap_open runs on the new piece and perf_mmap_close on the removed ones"),
  rule("vma.open", ALL, undefined, "perf_mmap_open", CORE, V.all,
    "a duplicated VMA (split piece, mremap copy): event->mmap_count++, rb->mmap_count++, and aux_mmap_count++ if vm_pgoff != 0 (ANY nonzero pgoff, not == aux_pgoff)"),
  rule("vma.close", NOT72, undefined, "perf_mmap_close", CORE, `${V.v318}, ${V.v510}, ${V.lts}, ${V.v618}`,
    "if rb_has_aux && vm_pgoff == aux_pgoff && --aux_mmap_count == 0: refund and free AUX; --rb->mmap_count; if --event->mmap_count == 0: detach the event and, if the buffer has no VMA left, every redirected event, and refund the data pages (a saturated event count, 6.18, skips both)"),
  rule("vma.close.order.events-first", M72, undefined, "perf_mmap_close", CORE, V.v72,
    "7.2.13/7.3.4 (\"Drop references in reverse order of perf_mmap()\"): the AUX part as vma.close, then --event->mmap_count (detach the event at 0), then --rb->mmap_count: at 0 detach every event on the buffer and refund the data pages, whatever the closing event's count. Differs from vma.close only after refcount.saturate (mmap.aux.redirected.warn). First version not established from source (7.1's c69df06e4e26 suspected)"),
  rule("vma.split.order.61", ["seed", "5.10-pre241", "6.1-pre148"], undefined, "do_mas_align_munmap", "mm/mmap.c", `${V.v318}, ${V.v61pre}`,
    "munmap splits the first VMA with new_below = 0 and the last with new_below = 1: the opened pieces are the removed ones"),
  rule("vma.split.order.612", ["6.12-pre42"], undefined, "vms_gather_munmap_vmas", "mm/vma.c", V.v612pre,
    "munmap splits the first VMA with new_below = 1 and the last with new_below = 0: the opened pieces are the kept ones"),
  rule("refcount.saturate", R618, undefined, "refcount_warn_saturate", "lib/refcount.c", V.v618,
    "6.18 mmap counts are refcount_t: an increment from 0 (or of a saturated count) WARNs and saturates; a saturated count never reaches 0 again"),
] as const;

/** munmap: `cut` = the range would split a perf VMA (spec/model/mm.ts perfCut). */
export const MUNMAP_DECIDE: readonly Decision<RangeCtx<"munmap">>[] = [
  when("munmap.len0", (c) => c.end === c.start),
  when("munmap.split", (c) => c.cut),
  when("munmap.split.ok", (c) => c.cut),
  otherwise("munmap.ok"),
];
