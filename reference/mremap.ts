/**
 * mremap(2) (mm/mremap.c) per era: v3.18, 6.1 / 6.12 (vma_to_resize, mremap_to, move_vma),
 * 6.17+ remap_move().
 */
import { SLOT_PAGES, type Op, type Outcome } from "../spec/program.ts";
import { Vma, type PageId } from "./objects.ts";
import { OK, errno, EINVAL, ENOMEM, EFAULT } from "./common.ts";
import { perfMmapOpen } from "./perf-core.ts";
import { insertVma, findVma, findVmaAfter, maySplitActive, doMunmap, mergeAnon } from "./mm.ts";
import type { Kernel } from "./kernel.ts";

export function sysMremap(k: Kernel, op: Extract<Op, { op: "mremap" }>): Outcome {
  const m = k.mapHandle(op.map);
  const off = op.offset ?? 0;
  const addr = m.base + off;
  const other = m.base === m.slotA ? m.slotA + SLOT_PAGES : m.slotA;
  const fixed = op.toFresh === true;
  const mayMove = fixed || op.mayMove === true;
  const r = mremap(k, addr, op.oldPages, op.newPages, mayMove, fixed, other + off);
  if (typeof r === "string") return errno(r);
  if (fixed) m.base = other;
  return OK;
}

/** SYSCALL_DEFINE5(mremap) per era: v3.18 (no vma_lookup up front), 6.1/6.12, 6.17+ (a
 *  MREMAP_FIXED move of the same size may span several VMAs: remap_move()). Returns the new
 *  address or an errno. */
export function mremap(k: Kernel, addr: number, oldLen: number, newLen: number, mayMove: boolean, fixed: boolean, newAddr: number): number | string {
  if (fixed && !mayMove) return EINVAL;
  if (newLen === 0) return EINVAL; // a zero new-len is nonsensical
  if (k.era.mm === "v6.18" && fixed && oldLen === newLen) return remapMove(k, addr, oldLen, newAddr);
  if (k.era.mm !== "v3.18" && !findVma(k, addr)) return EFAULT; // vma_lookup()
  if (fixed) return mremapTo(k, addr, oldLen, newAddr, newLen);
  // Always allow a shrinking remap: that just unmaps the unnecessary pages.
  if (oldLen >= newLen) {
    if (oldLen === newLen) return addr; // (do_munmap of 0 pages fails and is ignored)
    const e = doMunmap(k, addr + newLen, oldLen - newLen);
    return e ?? addr;
  }
  // Ok, we need to grow..
  const vma = vmaToResize(k, addr, oldLen, newLen);
  if (typeof vma === "string") return vma;
  if (oldLen === vma.end - addr && vmaExpandable(k, vma, newLen - oldLen)) {
    vma.end += newLen - oldLen; // (perf VMAs never get here: VM_DONTEXPAND)
    mergeAnon(k, vma);
    return addr;
  }
  if (mayMove) {
    // Moves outside the slots (get_unmapped_area): for the program the old range is gone.
    return moveVma(k, vma, addr, oldLen, newLen, -1);
  }
  return ENOMEM;
}

/** vma_to_resize() */
export function vmaToResize(k: Kernel, addr: number, oldLen: number, newLen: number): Vma | string {
  const vma = findVma(k, addr);
  if (!vma) return EFAULT;
  if (k.era.mm !== "v3.18" && oldLen === 0 && !vma.shared) return EINVAL; // duplicate a private mapping
  if (oldLen > vma.end - addr) return EFAULT; // We can't remap across vm area boundaries
  if (newLen === oldLen) return vma;
  if (newLen > oldLen && vma.event) return EFAULT; // VM_DONTEXPAND | VM_PFNMAP
  return vma;
}

/** vma_expandable(): nothing mapped in [vm_end, vm_end + delta). */
export function vmaExpandable(k: Kernel, vma: Vma, delta: number): boolean {
  const end = vma.end + delta;
  for (const v of k.vmas) if (v.start < end && v.end > vma.end) return false;
  return true;
}

/** mremap_to() (v3.18, 6.1, 6.12): unmap the target, shrink, resize check, move_vma(). */
export function mremapTo(k: Kernel, addr: number, oldLen: number, newAddr: number, newLen: number): number | string {
  if (addr + oldLen > newAddr && newAddr + newLen > addr) return EINVAL; // overlap
  let e = doMunmap(k, newAddr, newLen);
  if (e) return e;
  if (oldLen > newLen) {
    e = doMunmap(k, addr + newLen, oldLen - newLen);
    if (e) return e;
    oldLen = newLen;
  }
  const vma = vmaToResize(k, addr, oldLen, newLen);
  if (typeof vma === "string") return vma;
  return moveVma(k, vma, addr, oldLen, newLen, newAddr);
}

/** move_vma(): may_split check (6.1+), copy_vma() (vm_ops->open on the copy), move the page
 *  tables, then do_munmap() of the old range (splitting and closing it). newAddr -1: a place
 *  outside every slot. */
export function moveVma(k: Kernel, vma: Vma, oldAddr: number, oldLen: number, newLen: number, newAddr: number): number | string {
  const splitBefore = vma.start !== oldAddr;
  const splitAfter = vma.end !== oldAddr + oldLen;
  if (vma.event && maySplitActive(k) && (splitBefore || splitAfter)) return EINVAL;
  const newPgoff = vma.pgoff + (oldAddr - vma.start);
  if (newAddr >= 0) {
    const nw = vma.dup();
    nw.start = newAddr;
    nw.end = newAddr + newLen;
    nw.pgoff = newPgoff;
    // copy_vma(): an anonymous VMA never faulted takes the new address as pgoff
    if (!nw.event && nw.anonVma === 0) nw.pgoff = newAddr;
    if (nw.event) {
      nw.event.vmaRefs++;
      perfMmapOpen(k, nw);
    }
    insertVma(k, nw);
    // move_page_tables()
    if (k.ptes.size) {
      const moved: Array<[number, PageId]> = [];
      for (const [a, p] of k.ptes) if (a >= oldAddr && a < oldAddr + oldLen) moved.push([a, p]);
      for (const [a] of moved) k.ptes.delete(a);
      for (const [a, p] of moved) k.ptes.set(newAddr + (a - oldAddr), p);
    }
    if (!nw.event) mergeAnon(k, nw);
  }
  doMunmap(k, oldAddr, oldLen); // errors ignored (move_vma)
  return newAddr;
}

/** remap_move() (6.17+, eaa5bd1a4940 "mm/mremap: permit mremap() move of multiple VMAs"):
 *  every VMA in [addr, addr + len) moves, keeping the gaps; no gap allowed at the start. */
export function remapMove(k: Kernel, addr: number, len: number, newAddr: number): number | string {
  const end = addr + len;
  if (addr < newAddr + len && newAddr < end) return EINVAL; // ranges must not overlap
  let seen = false;
  let res = 0;
  let lastEnd = 0;
  let target = newAddr;
  let cursor = addr;
  for (;;) {
    const vma = findVmaAfter(k, cursor);
    if (!vma || vma.start >= end) break;
    const a = Math.max(vma.start, addr);
    const l = Math.min(end, vma.end) - a;
    if (!seen && addr < vma.start) return EFAULT; // No gap permitted at the start of the range.
    const offset = seen ? vma.start - lastEnd : 0;
    lastEnd = vma.end;
    const pieceNew = target + offset;
    // mremap_to(): unmap the destination first, then move_vma()
    const e = doMunmap(k, pieceNew, l);
    if (e) return e;
    const v = findVma(k, a);
    if (!v) return EFAULT;
    const r = moveVma(k, v, a, l, l, pieceNew);
    if (typeof r === "string") return r;
    if (!seen) res = r;
    target = r + l;
    seen = true;
    cursor = a + l;
  }
  if (!seen) return EFAULT;
  return res;
}
