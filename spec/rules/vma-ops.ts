/**
 * mprotect, mremap and MAP_FIXED anonymous mappings over perf VMAs.
 * The may_split fix makes every operation that would split a perf VMA fail; before it
 * they all split (perf_mmap_open on the new piece). mremap's structure differs by era:
 * 3.18 shrinks without looking the VMA up; 6.1 .. 6.16 look it up first (EFAULT); 6.17+
 * moves a whole range of VMAs when the move keeps the size (remap_move).
 */
import { ALL, M617, M618, MAY_SPLIT, MODERN, NOT618, SEED, SPLITTING, V, V510, rule } from "./types.ts";
import { findIdx } from "../model/mm.ts";
import type { MprotectCtx, MremapCtx, RangeCtx } from "./context.ts";
import { otherwise, proc, when, type Decision } from "./decision.ts";

// Module-local copies of hot imports: tsx compiles an imported binding to a getter call
// per use, which V8 does not always inline; guards and the step run millions of times.
const findIdx_ = findIdx;

const MPROTECT = "mm/mprotect.c";
const MREMAP = "mm/mremap.c";

export const VMA_OPS_RULES = [
  rule("mprotect.ok", ALL, undefined, "do_mprotect_pkey", MPROTECT, V.all,
    "protection changed on every VMA of the range (a VMA already at that protection is left alone, no split) [seen on 6.18]"),
  rule("mprotect.len0", ALL, undefined, "do_mprotect_pkey", MPROTECT, V.all,
    "zero length: success, nothing changes [seen on 6.18]"),
  rule("mprotect.hole", ALL, "ENOMEM", "do_mprotect_pkey", MPROTECT, V.all,
    "the range starts in, or reaches, an unmapped hole: ENOMEM (VMAs before the hole keep their new protection) [seen on 6.18]"),
  rule("mprotect.exec", M618, "EACCES", "do_mprotect_pkey", MPROTECT, V.v618,
    "PROT_EXEC on a perf VMA: VM_MAYEXEC was cleared at mmap (noexec anon inode) [seen on 6.18]"),
  rule("mprotect.split", MAY_SPLIT, "EINVAL", "perf_mmap_may_split", "kernel/events/core.c", V.modern,
    "changing the protection of part of a perf VMA would split it [seen on 6.18]"),
  rule("mprotect.split.ok", SPLITTING, undefined, "mprotect_fixup", MPROTECT, `${V.v318}, ${V.v61pre}, ${V.v612pre}`,
    "split_vma(start, new_below = 1) then split_vma(end, new_below = 0): perf_mmap_open on each new (outer) piece"),
  rule("mremap.newlen0", ALL, "EINVAL", "mremap", MREMAP, V.all,
    "new_len == 0 [seen on 6.18]"),
  rule("mremap.unmapped", ALL, "EFAULT", "mremap", MREMAP, V.all,
    "no VMA at the old address (vma_lookup, or vma_to_resize in 3.18) [seen on 6.18]"),
  rule("mremap.shrink.nocheck", [...SEED, ...V510], undefined, "mremap", MREMAP, `${V.v318}, ${V.v510}`,
    "3.18 and 5.10 shrink (old_len > new_len, no MREMAP_FIXED) by munmapping the tail without looking the VMA up: success even where nothing is mapped (5.10.262 SYSCALL_DEFINE5(mremap) has no vma_lookup before `if (old_len >= new_len)`)"),
  rule("mremap.same", ALL, undefined, "mremap", MREMAP, V.all,
    "old_len == new_len without MREMAP_FIXED: nothing to do [seen on 6.18]; 3.18 and 5.10 answer it before any lookup, so also where nothing is mapped"),
  rule("mremap.shrink.ok", ALL, undefined, "mremap", MREMAP, V.all,
    "shrink: munmap of [addr + new_len, addr + old_len) (every VMA in it closed)"),
  rule("mremap.shrink.split", MAY_SPLIT, "EINVAL", "perf_mmap_may_split", MREMAP, V.modern,
    "shrinking a perf VMA in place would split it [seen on 6.18]"),
  rule("mremap.shrink.split.ok", SPLITTING, undefined, "__split_vma", MREMAP, `${V.v318}, ${V.v61pre}, ${V.v612pre}`,
    "shrinking a perf VMA splits it: perf_mmap_open on the new piece, perf_mmap_close on the removed tail"),
  rule("mremap.cross", ALL, "EFAULT", "vma_to_resize", MREMAP, V.all,
    "old_len reaches past the end of the VMA at addr (6.17+: only for resizing moves; same-size MREMAP_FIXED moves may span VMAs; 6.16 remap_is_valid() after mremap_to()'s target do_munmap: EFAULT for every move past the VMA's end)"),
  rule("mremap.dontexpand", ALL, "EFAULT", "vma_to_resize", MREMAP, V.all,
    "growing a VM_DONTEXPAND (perf) VMA, or the 'duplicate' old_len 0 case: EFAULT [seen on 6.18]"),
  rule("mremap.dup-private", MODERN, "EINVAL", "vma_to_resize", MREMAP, V.modern,
    "old_len 0 (duplicate) of a private mapping"),
  rule("mremap.dup", SEED, undefined, "mremap", MREMAP, V.v318,
    "3.18: old_len 0 of an anonymous mapping creates a fresh mapping of new_len at the destination and keeps the old one"),
  rule("mremap.grow.inplace", ALL, undefined, "mremap", MREMAP, V.all,
    "an anonymous VMA grows in place when old_len reaches its end and the pages after it are free; 6.0+ then merge it with the next VMA (vma_merge / vma_merge_extend, \"mm: add merging after mremap resize\")"),
  rule("mremap.grow.inplace.nomerge", [...SEED, ...V510], undefined, "mremap", MREMAP, `${V.v318}, ${V.v510}`,
    "3.18 and 5.10 grow in place with vma_adjust(vma, vma->vm_start, addr + new_len, ...): no merge with an adjacent compatible VMA, so a later mremap over both is EFAULT (mremap.cross)"),
  rule("mremap.grow.moved", ALL, undefined, "move_vma", MREMAP, V.all,
    "an anonymous VMA that cannot grow in place moves, with MREMAP_MAYMOVE, to a kernel-chosen address outside the handle's slots"),
  rule("mremap.grow.enomem", ALL, "ENOMEM", "mremap", MREMAP, V.all,
    "cannot grow in place and MREMAP_MAYMOVE is not set"),
  rule("mremap.move.ok", ALL, undefined, "move_vma", MREMAP, V.all,
    "MREMAP_FIXED move to the other slot: copy_vma + perf_mmap_open on the copy, then munmap of the old range (perf_mmap_close); the handle's base flips [seen on 6.18]"),
  rule("mremap.move.split", ["6.1", "6.12", "6.16", "6.17", "6.18", "7.2"], "EINVAL", "move_vma", MREMAP, `${V.v61}, ${V.v612}, ${V.v616}, ${V.v618}, ${V.v72}`,
    "moving part of a perf VMA: may_split refuses (EINVAL) [seen on 6.18]"),
  rule("mremap.move.split.dup", ["5.10"], undefined, "move_vma", MREMAP, V.v510,
    "5.10.241+: move_vma never asks the split hook; copy_vma opens the copy (pgoff = old pgoff + offset; aux_mmap_count++ if != 0), then do_munmap of the old range fails in __split_vma (.split = perf_mmap_may_split) and the failure is ignored: the old perf VMA stays whole, the call succeeds. A copy whose pgoff is not aux_pgoff never drops aux_mmap_count: the CVE-2025-38563 leak, still reachable"),
  rule("mremap.move.split.ok", SPLITTING, undefined, "move_vma", MREMAP, `${V.v318}, ${V.v61pre}, ${V.v612pre}`,
    "moving part of a perf VMA: copy opened, the old VMA split around the moved range (pieces opened) and the moved range closed"),
  rule("mremap.target.split", MAY_SPLIT, "EINVAL", "mremap_to", MREMAP, V.modern,
    "MREMAP_FIXED first unmaps the target range; a perf VMA there only partly covered cannot be split"),
  rule("mremap.multi.ok", M617, undefined, "remap_move", MREMAP, V.v618,
    "6.17+: a same-size MREMAP_FIXED move spanning several VMAs (and gaps) moves each VMA, keeping the gaps [seen on 6.18]"),
  rule("mremap.multi.gap", M617, "EFAULT", "remap_move", MREMAP, V.v618,
    "6.17+ same-size MREMAP_FIXED move whose range starts in a gap (or holds no VMA): EFAULT"),
  rule("mremap.multi.partial", M617, undefined, "remap_move", MREMAP, V.v618,
    "6.17+: a multi-VMA move that fails on a later VMA keeps the earlier VMAs moved (the error is returned)"),
  rule("mapfixed.ok", ALL, undefined, "mmap_region", "mm/mmap.c", V.all,
    "MAP_FIXED anonymous mapping: whatever was in the range is unmapped (perf VMAs closed), then a zeroed rw anonymous VMA [seen on 6.18]"),
  rule("mapfixed.split.enomem", ["5.10", "6.1"], "ENOMEM", "mmap_region", "mm/mmap.c", `${V.v510}, ${V.v61}`,
    "5.10/6.1: do_munmap()/do_mas_munmap() fails (the split hook) and mmap_region() turns any failure into -ENOMEM"),
  rule("mapfixed.split", ["6.12", "6.16", "6.17", "6.18", "7.2"], "EINVAL", "__mmap_region", "mm/mmap.c, mm/vma.c", `${V.v612}, ${V.v616}, ${V.v618}`,
    "6.12+: vms_gather_munmap_vmas() fails (may_split) and the error is returned as is [seen on 6.18]"),
  rule("mapfixed.split.ok", SPLITTING, undefined, "mmap_region", "mm/mmap.c", `${V.v318}, ${V.v61pre}, ${V.v612pre}`,
    "MAP_FIXED over part of a perf VMA splits it (perf_mmap_open on the new piece), closes the covered piece"),
  rule("vma.noexec-ok", NOT618, undefined, "do_mmap", "mm/mmap.c", `${V.v318}, ${V.lts}`,
    "before 6.15 the anon inode mount is not noexec: PROT_EXEC mappings and mprotect(PROT_EXEC) of perf VMAs are allowed"),
] as const;

/** mprotect: the walk over the range's VMAs decides the rest (a later hole, exec, a split). */
export const MPROTECT_DECIDE: readonly Decision<MprotectCtx>[] = [
  when("mprotect.len0", (c) => c.start >= c.end),
  when("mprotect.hole", (c) => findIdx_(c.s.vmas, c.slot, c.start) < 0),
  proc("mprotect", ["mprotect.exec", "mprotect.split", "mprotect.hole", "mprotect.split.ok", "mprotect.ok"]),
];

/** mremap: the era's mm/mremap.c (3.18, 6.1/6.12, 6.17+) decides while it unmaps and moves. */
export const MREMAP_DECIDE: readonly Decision<MremapCtx>[] = [
  when("mremap.newlen0", (c) => c.op.newPages === 0),
  proc("mremap", [
    "mremap.unmapped", "mremap.shrink.nocheck", "mremap.same", "mremap.shrink.ok", "mremap.shrink.split", "mremap.shrink.split.ok",
    "mremap.cross", "mremap.dontexpand", "mremap.dup-private", "mremap.dup", "mremap.grow.inplace", "mremap.grow.inplace.nomerge", "mremap.grow.moved",
    "mremap.grow.enomem", "mremap.move.ok", "mremap.move.split", "mremap.move.split.dup", "mremap.move.split.ok", "mremap.target.split",
    "mremap.multi.ok", "mremap.multi.gap", "mremap.multi.partial",
  ]),
];

/** MAP_FIXED anonymous: a range that would split a perf VMA (`cut`) is an error per era, or splits. */
export const MAPFIXED_DECIDE: readonly Decision<RangeCtx<"mapFixedAnon">>[] = [
  when("mapfixed.split.enomem", (c) => c.cut),
  when("mapfixed.split", (c) => c.cut),
  when("mapfixed.split.ok", (c) => c.cut),
  otherwise("mapfixed.ok"),
];
