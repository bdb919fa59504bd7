/**
 * The mm side: VMAs in slots, splits (and the perf_mmap_open they trigger before
 * may_split), munmap ranges (perf_mmap_close in address order, then the file reference
 * drops), mprotect, mremap per era, MAP_FIXED anonymous mappings, and page resolution
 * (perf_mmap_to_page) for touches.
 */
import type { Errno } from "../program.ts";
import type { RuleId } from "../rules/index.ts";
import { evHasVma, maybeFree, perfClose, perfOpen } from "./perf.ts";
import { Draft, MM_SLOTS, P_R, P_W, anonPgoff, rlimitOf, userOf, vmaMm, type AnonWrite, type Buf, type PageKind, type Pte, type Vma } from "./state.ts";

export function findIdx(vmas: readonly Vma[], slot: number, page: number): number {
  for (let i = 0; i < vmas.length; i++) {
    const v = vmas[i];
    if (v.slot === slot && v.start <= page && page < v.end) return i;
  }
  return -1;
}

/** Indices of the VMAs of `slot` overlapping [s, e), in address order. */
export function overlapping(vmas: readonly Vma[], slot: number, s: number, e: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < vmas.length; i++) {
    const v = vmas[i];
    if (v.slot === slot && v.start < e && v.end > s) out.push(i);
  }
  return out;
}

/**
 * Would unmapping [s, e) of `slot` split a perf VMA (cut its first VMA's head or its last
 * VMA's tail)? What may_split refuses, and what splits without it.
 */
export function perfCut(vmas: readonly Vma[], slot: number, s: number, e: number): boolean {
  let first = -1, last = -1;
  for (let i = 0; i < vmas.length; i++) {
    const v = vmas[i];
    if (v.slot === slot && v.start < e && v.end > s) { if (first < 0) first = i; last = i; }
  }
  if (first < 0) return false;
  const X = vmas[first], Y = vmas[last];
  return (X.start < s && X.ev >= 0) || (Y.end > e && Y.ev >= 0);
}

export function insertVma(d: Draft, v: Vma): number {
  const vs = d.vmasW();
  let i = 0;
  while (i < vs.length && (vs[i].slot < v.slot || (vs[i].slot === v.slot && vs[i].start < v.start))) i++;
  vs.splice(i, 0, v);
  return i;
}

/**
 * vma_merge for anonymous memory: adjacent, same protection, contiguous vm_pgoff, and
 * anon_vmas that are the same or not yet there (is_mergeable_anon_vma, one process, so the
 * anon_vma chains are singular). Perf VMAs never merge (vm_ops->close).
 */
function mergeable(a: Vma, b: Vma): boolean {
  return a.ev < 0 && b.ev < 0 && a.slot === b.slot && a.end === b.start && a.prot === b.prot &&
    b.pgoff === a.pgoff + (a.end - a.start) && (!a.av || !b.av || a.av === b.av);
}

function merged(a: Vma, b: Vma): Vma {
  const v: { -readonly [K in keyof Vma]: Vma[K] } = { slot: a.slot, start: a.start, end: b.end, pgoff: a.pgoff, prot: a.prot, ev: -1 };
  const av = a.av || b.av;
  if (av) v.av = av;
  const data = [...(a.data ?? []), ...(b.data ?? []).map((w) => ({ ...w, rel: w.rel + (a.end - a.start) }))];
  if (data.length) v.data = data;
  return v;
}

/** Merge the anonymous VMA at idx with its neighbours where vma_merge would. */
export function mergeAround(d: Draft, idx: number): void {
  const vs = d.vmasW();
  if (idx < 0 || idx >= vs.length || vs[idx].ev >= 0) return;
  if (idx + 1 < vs.length && mergeable(vs[idx], vs[idx + 1])) vs.splice(idx, 2, merged(vs[idx], vs[idx + 1]));
  if (idx > 0 && mergeable(vs[idx - 1], vs[idx])) vs.splice(idx - 1, 2, merged(vs[idx - 1], vs[idx]));
}

/** A write fault on anonymous memory gives the VMA an anon_vma (anon_vma_prepare). */
export function anonWriteFault(d: Draft, idx: number): void {
  const v = d.vmas[idx];
  if (v.ev >= 0 || v.av) return;
  d.avSeq++;
  d.vmasW()[idx] = { ...v, av: d.avSeq };
}

/** The part [a, b) of X (pages of X's slot), with pgoff, ptes and anonymous writes carried over. */
export function piece(X: Vma, a: number, b: number, slot = X.slot, at = a, end = at + (b - a)): Vma {
  const shift = a - X.start;
  const v: { -readonly [K in keyof Vma]: Vma[K] } = { slot, start: at, end, pgoff: X.pgoff + shift, prot: X.prot, ev: X.ev };
  if (X.ptes !== undefined) {
    const ptes: Pte[] = [];
    for (const p of X.ptes) if (p.rel >= shift && p.rel < shift + (b - a)) ptes.push({ ...p, rel: p.rel - shift });
    v.ptes = ptes;
  }
  if (X.data !== undefined) {
    const data: AnonWrite[] = [];
    for (const w of X.data) if (w.rel >= shift && w.rel < shift + (b - a)) data.push({ ...w, rel: w.rel - shift });
    if (data.length) v.data = data;
  }
  return v;
}

/** __split_vma(vma, addr, new_below): perf_mmap_open on the new piece (vm_ops->open). */
function splitAt(d: Draft, idx: number, at: number, newBelow: boolean): void {
  const vs = d.vmasW();
  const X = vs[idx];
  const lower = piece(X, X.start, at);
  const upper = piece(X, at, X.end);
  vs.splice(idx, 1, lower, upper);
  if (X.ev >= 0) perfOpen(d, newBelow ? lower : upper);
}

export type UnmapResult = "ok" | "split" | "EINVAL";

/**
 * do_munmap of [s, e) in one slot. With may_split a range that cuts a perf VMA fails before
 * anything changes (splitting an anonymous VMA is invisible, so not modelled). Without it
 * the first and last VMA are split (3.18/6.1: new_below 0 then 1; 6.12: 1 then 0) and the
 * covered VMAs are closed in address order, each file reference dropped after its close.
 */
export function unmapRange(d: Draft, slot: number, s: number, e: number): UnmapResult {
  const ov = overlapping(d.vmas, slot, s, e);
  if (ov.length === 0) return "ok";
  const X = d.vmas[ov[0]];
  const Y = d.vmas[ov[ov.length - 1]];
  const cutS = X.start < s;
  const cutE = Y.end > e;
  const perfSplit = perfCut(d.vmas, slot, s, e);
  if (d.era.maySplit && perfSplit) return "EINVAL";
  if (cutS) splitAt(d, ov[0], s, d.era.munmapStartBelow);
  if (cutE) splitAt(d, findIdx(d.vmas, slot, e - 1), e, !d.era.munmapStartBelow);
  const vs = d.vmasW();
  const removed: Vma[] = [];
  for (let i = 0; i < vs.length;) {
    const v = vs[i];
    if (v.slot === slot && v.start >= s && v.end <= e) { removed.push(v); vs.splice(i, 1); } else i++;
  }
  closeRemoved(d, removed);
  return perfSplit ? "split" : "ok";
}

/** remove_vma for each removed VMA: vm_ops->close, then fput (the event may be released). */
function closeRemoved(d: Draft, removed: readonly Vma[]): void {
  for (let k = 0; k < removed.length; k++) {
    const v = removed[k];
    if (v.ev < 0) continue;
    perfClose(d, v);
    let pending = false;
    for (let j = k + 1; j < removed.length; j++) if (removed[j].ev === v.ev) { pending = true; break; }
    if (!pending && !evHasVma(d, v.ev)) maybeFree(d, v.ev);
  }
}

/**
 * What a procedure decided: the rule (its errno is the rule's, from spec/rules/); `errno`
 * only where the rule has none of its own because the kernel returns the failing step's
 * (mremap.multi.partial).
 */
export interface OpResult { rule: RuleId; errno?: Errno }

/**
 * mprotect(base + s, e - s, prot) once mprotect.len0 and a hole at s are ruled out: the
 * walk over the VMAs; `noexec`: the profile has mprotect.exec (VM_MAYEXEC cleared).
 */
export function mprotect(d: Draft, slot: number, s: number, e: number, prot: number, noexec: boolean): OpResult {
  let idx = findIdx(d.vmas, slot, s);
  let nstart = s;
  let split = false;
  for (;;) {
    const X = d.vmas[idx];
    if (noexec && X.ev >= 0 && (prot & 4)) return { rule: "mprotect.exec" };
    const tmp = Math.min(e, X.end);
    if (X.prot !== prot) {
      const cutS = X.start < nstart;
      const cutE = tmp < X.end;
      if ((cutS || cutE) && X.ev >= 0) {
        if (d.era.maySplit) return { rule: "mprotect.split" };
        split = true;
      }
      if (cutS) { splitAt(d, idx, nstart, true); idx++; }
      if (cutE) splitAt(d, idx, tmp, false);
      const vs = d.vmasW();
      vs[idx] = { ...vs[idx], prot };
      if (vs[idx].ev < 0) {
        // vma_merge in mprotect_fixup: the changed range may join its neighbours
        const at = vs[idx].start;
        mergeAround(d, idx);
        idx = findIdx(d.vmas, slot, at);
      }
    }
    // nstart = tmp; if (nstart < prev->vm_end) nstart = prev->vm_end;
    nstart = Math.max(tmp, d.vmas[idx].end);
    if (nstart >= e) return { rule: split ? "mprotect.split.ok" : "mprotect.ok" };
    idx++;
    const n = d.vmas[idx];
    if (n === undefined || n.slot !== slot || n.start !== nstart) return { rule: "mprotect.hole" };
  }
}

/**
 * mmap(base + s, e - s, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED) once the
 * profile's rules let it through (mapfixed.split.*): unmap, then a fresh anonymous VMA.
 */
export function mapFixedAnon(d: Draft, slot: number, s: number, e: number): void {
  unmapRange(d, slot, s, e);
  mergeAround(d, insertVma(d, { slot, start: s, end: e, pgoff: anonPgoff(slot, s), prot: P_R | P_W, ev: -1 }));
}

function rangeFree(d: Draft, slot: number, s: number, e: number): boolean {
  return overlapping(d.vmas, slot, s, e).length === 0;
}

/**
 * move_vma: copy_vma of [a, a + oldLen) of the VMA at a to (dst, b) with newLen pages,
 * perf_mmap_open on the copy, then munmap of the old range (which splits the old VMA
 * before may_split). Page tables move with it (the seed's ptes).
 */
function moveVma(d: Draft, slot: number, a: number, oldLen: number, newLen: number, dst: number, b: number): boolean {
  const X = d.vmas[findIdx(d.vmas, slot, a)];
  let copy = piece(X, a, a + oldLen, dst, b, b + newLen);
  // copy_vma: an anonymous VMA never written to takes the pgoff of its new address
  if (copy.ev < 0 && !copy.av) copy = { ...copy, pgoff: anonPgoff(dst, b) };
  const at = insertVma(d, copy);
  if (copy.ev >= 0) perfOpen(d, copy);
  else mergeAround(d, at);
  if (oldLen === 0) return false;
  return unmapRange(d, slot, a, a + oldLen) === "split";
}

export interface MremapArgs { S: number; s: number; oldP: number; newP: number; fixed: boolean; maymove: boolean; T: number; t: number }

/** Grow an anonymous VMA X (index idx) from a with old pages to new pages, non-fixed. */
function growAnon(d: Draft, idx: number, a: number, oldP: number, newP: number, maymove: boolean): OpResult {
  const X = d.vmas[idx];
  if (a + oldP === X.end && rangeFree(d, X.slot, X.end, X.end + (newP - oldP))) {
    const vs = d.vmasW();
    vs[idx] = { ...X, end: X.end + (newP - oldP) };
    if (!d.era.growMerges) return { rule: "mremap.grow.inplace.nomerge" }; // vma_adjust (3.18, 5.10)
    mergeAround(d, idx);
    return { rule: "mremap.grow.inplace" };
  }
  if (!maymove) return { rule: "mremap.grow.enomem" };
  if (oldP === 0) return { rule: "mremap.dup" }; // 3.18 only: a fresh mapping elsewhere, the old one stays
  unmapRange(d, X.slot, a, a + oldP); // moved to a kernel-chosen address outside the slots
  return { rule: "mremap.grow.moved" };
}

/** 3.18 mremap (the seed's mm). */
export function mremap318(d: Draft, m: MremapArgs): OpResult {
  const { S, s, oldP, newP, fixed, maymove, T, t } = m;
  if (fixed) {
    unmapRange(d, T, t, t + newP);
    let old = oldP;
    if (oldP >= newP) { if (oldP > newP) unmapRange(d, S, s + newP, s + oldP); old = newP; }
    const idx = findIdx(d.vmas, S, s);
    if (idx < 0) return { rule: "mremap.unmapped" };
    const X = d.vmas[idx];
    if (old > X.end - s) return { rule: "mremap.cross" };
    if (newP > old && X.ev >= 0) return { rule: "mremap.dontexpand" };
    const split = moveVma(d, S, s, old, newP, T, t);
    if (old === 0) return { rule: "mremap.dup" };
    return { rule: split ? "mremap.move.split.ok" : "mremap.move.ok" };
  }
  if (oldP >= newP) {
    if (oldP === newP) return { rule: "mremap.same" };
    const had = findIdx(d.vmas, S, s) >= 0;
    const r = unmapRange(d, S, s + newP, s + oldP);
    if (!had) return { rule: "mremap.shrink.nocheck" };
    return { rule: r === "split" ? "mremap.shrink.split.ok" : "mremap.shrink.ok" };
  }
  const idx = findIdx(d.vmas, S, s);
  if (idx < 0) return { rule: "mremap.unmapped" };
  const X = d.vmas[idx];
  if (oldP > X.end - s) return { rule: "mremap.cross" };
  if (X.ev >= 0) return { rule: "mremap.dontexpand" };
  return growAnon(d, idx, s, oldP, newP, maymove);
}

/**
 * 5.10 mremap (mm/mremap.c 5.10.262): 3.18's structure (no vma_lookup before the shrink,
 * mremap_to unmaps the target and the source tail before vma_to_resize looks), with the
 * split hook answering in __split_vma (5.10.241+) and vma_to_resize's private-dup check;
 * move_vma never asks the hook, so a partial move of a perf VMA copies it and the failed
 * munmap of the old range is ignored (mremap.move.split.dup).
 */
export function mremap510(d: Draft, m: MremapArgs): OpResult {
  const { S, s, oldP, newP, fixed, maymove, T, t } = m;
  if (fixed) {
    if (unmapRange(d, T, t, t + newP) === "EINVAL") return { rule: "mremap.target.split" };
    let old = oldP;
    if (oldP >= newP) {
      // do_munmap(addr + new_len, old_len - new_len): of 0 pages it fails, ignored
      if (oldP > newP && unmapRange(d, S, s + newP, s + oldP) === "EINVAL") return { rule: "mremap.shrink.split" };
      old = newP;
    }
    const idx = findIdx(d.vmas, S, s);
    if (idx < 0) return { rule: "mremap.unmapped" };
    const X = d.vmas[idx];
    if (old === 0 && X.ev < 0) return { rule: "mremap.dup-private" };
    if (old > X.end - s) return { rule: "mremap.cross" };
    if (newP !== old && X.ev >= 0) return { rule: "mremap.dontexpand" };
    const partial = X.ev >= 0 && (X.start !== s || X.end !== s + old);
    const r = moveVmaKeep(d, S, s, old, newP, T, t);
    if (!partial) return { rule: "mremap.move.ok" };
    return { rule: r === "EINVAL" ? "mremap.move.split.dup" : "mremap.move.split.ok" };
  }
  if (oldP >= newP) {
    if (oldP === newP) return { rule: "mremap.same" };
    const had = findIdx(d.vmas, S, s) >= 0;
    const r = unmapRange(d, S, s + newP, s + oldP);
    if (r === "EINVAL") return { rule: "mremap.shrink.split" };
    if (!had) return { rule: "mremap.shrink.nocheck" };
    return { rule: r === "split" ? "mremap.shrink.split.ok" : "mremap.shrink.ok" };
  }
  const idx = findIdx(d.vmas, S, s);
  if (idx < 0) return { rule: "mremap.unmapped" };
  const X = d.vmas[idx];
  if (oldP === 0 && X.ev < 0) return { rule: "mremap.dup-private" };
  if (oldP > X.end - s) return { rule: "mremap.cross" };
  if (X.ev >= 0) return { rule: "mremap.dontexpand" };
  return growAnon(d, idx, s, oldP, newP, maymove);
}

/** move_vma as moveVma, answering what the munmap of the old range did (5.10 ignores EINVAL). */
function moveVmaKeep(d: Draft, slot: number, a: number, oldLen: number, newLen: number, dst: number, b: number): UnmapResult {
  const X = d.vmas[findIdx(d.vmas, slot, a)];
  let copy = piece(X, a, a + oldLen, dst, b, b + newLen);
  if (copy.ev < 0 && !copy.av) copy = { ...copy, pgoff: anonPgoff(dst, b) };
  const at = insertVma(d, copy);
  if (copy.ev >= 0) perfOpen(d, copy);
  else mergeAround(d, at);
  return unmapRange(d, slot, a, a + oldLen);
}

/** 6.1 and 6.12 mremap. */
export function mremap61(d: Draft, m: MremapArgs): OpResult {
  const { S, s, oldP, newP, fixed, maymove, T, t } = m;
  if (findIdx(d.vmas, S, s) < 0) return { rule: "mremap.unmapped" };
  if (fixed) {
    if (unmapRange(d, T, t, t + newP) === "EINVAL") return { rule: "mremap.target.split" };
    let old = oldP;
    if (oldP > newP) {
      if (unmapRange(d, S, s + newP, s + oldP) === "EINVAL") return { rule: "mremap.shrink.split" };
      old = newP;
    }
    const idx = findIdx(d.vmas, S, s);
    if (idx < 0) return { rule: "mremap.unmapped" };
    const X = d.vmas[idx];
    if (old === 0 && X.ev < 0) return { rule: "mremap.dup-private" };
    if (old > X.end - s) return { rule: "mremap.cross" };
    if (newP !== old && X.ev >= 0) return { rule: "mremap.dontexpand" };
    if (d.era.maySplit && X.ev >= 0 && (X.start !== s || X.end !== s + old)) return { rule: "mremap.move.split" };
    const split = moveVma(d, S, s, old, newP, T, t);
    return { rule: split ? "mremap.move.split.ok" : "mremap.move.ok" };
  }
  if (oldP >= newP) {
    if (oldP === newP) return { rule: "mremap.same" };
    const r = unmapRange(d, S, s + newP, s + oldP);
    if (r === "EINVAL") return { rule: "mremap.shrink.split" };
    return { rule: r === "split" ? "mremap.shrink.split.ok" : "mremap.shrink.ok" };
  }
  const idx = findIdx(d.vmas, S, s);
  const X = d.vmas[idx];
  if (oldP === 0 && X.ev < 0) return { rule: "mremap.dup-private" };
  if (oldP > X.end - s) return { rule: "mremap.cross" };
  if (X.ev >= 0) return { rule: "mremap.dontexpand" };
  return growAnon(d, idx, s, oldP, newP, maymove);
}

/** 6.18 mremap (6.17 rework: check_prep_vma before mremap_to; remap_move for same-size fixed moves). */
export function mremap618(d: Draft, m: MremapArgs): OpResult {
  const { S, s, oldP, newP, fixed, maymove, T, t } = m;
  if (fixed && oldP === newP) {
    const end = s + oldP;
    const first = overlapping(d.vmas, S, s, end);
    if (first.length === 0 || d.vmas[first[0]].start > s) return { rule: "mremap.multi.gap" };
    let moved = 0;
    let cur = s;
    for (;;) {
      const ov = overlapping(d.vmas, S, cur, end);
      if (ov.length === 0) break;
      const v = d.vmas[ov[0]];
      const a = Math.max(v.start, cur);
      const b = Math.min(v.end, end);
      const tgt = t + (a - s);
      if (unmapRange(d, T, tgt, tgt + (b - a)) === "EINVAL") {
        return { errno: "EINVAL", rule: moved ? "mremap.multi.partial" : "mremap.target.split" };
      }
      const idx = findIdx(d.vmas, S, a);
      const X = d.vmas[idx];
      if (X.ev >= 0 && (X.start !== a || X.end !== b)) {
        return { errno: "EINVAL", rule: moved ? "mremap.multi.partial" : "mremap.move.split" };
      }
      moveVma(d, S, a, b - a, b - a, T, tgt);
      moved++;
      cur = b;
    }
    return { rule: moved > 1 ? "mremap.multi.ok" : "mremap.move.ok" };
  }
  const idx0 = findIdx(d.vmas, S, s);
  if (idx0 < 0) return { rule: "mremap.unmapped" };
  const X0 = d.vmas[idx0];
  if (fixed) {
    if (oldP === 0 && X0.ev < 0) return { rule: "mremap.dup-private" };
    const oldEff = oldP > newP ? newP : oldP;
    if (oldEff > X0.end - s) return { rule: "mremap.cross" };
    if (newP !== oldEff && X0.ev >= 0) return { rule: "mremap.dontexpand" };
    if (unmapRange(d, T, t, t + newP) === "EINVAL") return { rule: "mremap.target.split" };
    if (findIdx(d.vmas, S, s) < 0) return { rule: "mremap.unmapped" };
    if (oldP > newP) {
      if (unmapRange(d, S, s + newP, s + oldP) === "EINVAL") return { rule: "mremap.shrink.split" };
      if (findIdx(d.vmas, S, s) < 0) return { rule: "mremap.unmapped" };
    }
    const X = d.vmas[findIdx(d.vmas, S, s)];
    if (X.ev >= 0 && (X.start !== s || X.end !== s + oldEff)) return { rule: "mremap.move.split" };
    moveVma(d, S, s, oldEff, newP, T, t);
    return { rule: "mremap.move.ok" };
  }
  if (oldP === newP) return { rule: "mremap.same" };
  if (oldP > newP) {
    if (unmapRange(d, S, s + newP, s + oldP) === "EINVAL") return { rule: "mremap.shrink.split" };
    return { rule: "mremap.shrink.ok" };
  }
  if (oldP === 0 && X0.ev < 0) return { rule: "mremap.dup-private" };
  if (oldP > X0.end - s) return { rule: "mremap.cross" };
  if (X0.ev >= 0) return { rule: "mremap.dontexpand" };
  return growAnon(d, idx0, s, oldP, newP, maymove);
}

// ---------------------------------------------------------------------------------------
// Pages.

export interface PageRef { buf: number; kind: PageKind; idx: number }

/** perf_mmap_to_page(rb, pgoff) of the seed patch (same shape in 6.1 .. 6.18). */
export function mmapToPage(b: Buf, pgoff: number): PageRef | null {
  if (b.auxNrPages !== 0) {
    if (pgoff > b.auxPgoff + b.auxNrPages) return null;
    if (pgoff >= b.auxPgoff) return { buf: b.id, kind: 3, idx: pgoff - b.auxPgoff >= b.auxNrPages ? 0 : pgoff - b.auxPgoff }; // array_index_nospec (6.1+); 3.18 reads past the array
  }
  if (pgoff > b.nrPages) return null;
  if (pgoff === 0) return { buf: b.id, kind: 1, idx: 0 };
  return { buf: b.id, kind: 2, idx: pgoff - 1 };
}

export type Resolved = { sig: "SIGBUS"; why: "norb" | "write" | "beyond" } | { page: PageRef };

/**
 * The page a perf VMA maps at page `rel` for an access (perf_mmap_fault / page_mkwrite /
 * 6.18 pfn_mkwrite). The seed faults lazily and keeps what it faulted (ptes), which matters
 * only when perf_mmap_to_page changes under a live VMA (the seed's stale AUX state).
 */
export function resolve(d: Draft, idx: number, rel: number, write: boolean): Resolved {
  const v = d.vmas[idx];
  const pgoff = v.pgoff + rel;
  if (v.ptes !== undefined) {
    for (const p of v.ptes) {
      if (p.rel === rel) {
        if (write && pgoff !== 0) return { sig: "SIGBUS", why: "write" };
        return { page: { buf: p.buf, kind: p.kind, idx: p.idx } };
      }
    }
  }
  const e = d.ev(v.ev);
  if (e === undefined || e.rb < 0) return { sig: "SIGBUS", why: "norb" };
  if (write && pgoff !== 0) return { sig: "SIGBUS", why: "write" };
  const page = mmapToPage(d.buf(e.rb), pgoff);
  if (page === null) return { sig: "SIGBUS", why: "beyond" };
  if (d.era.lazyPtes) {
    const vs = d.vmasW();
    vs[idx] = { ...v, ptes: [...(v.ptes ?? []), { rel, buf: page.buf, kind: page.kind, idx: page.idx }] };
  }
  return { page };
}

// ---------------------------------------------------------------------------------------
// Processes (spec/notes/processes.md).

/**
 * fork() of `from` into `child` (kernel/fork.c copy_process -> dup_mm -> dup_mmap): the child's
 * mm gets copies of `from`'s VMAs except those with VM_DONTCOPY, which perf_mmap sets on every
 * perf VMA (`vma->vm_flags |= VM_DONTCOPY | VM_DONTEXPAND | VM_DONTDUMP` 5.10.262/6.1.192,
 * `vm_flags_set(vma, VM_DONTCOPY | ...)` 7.2.13/7.3.4): anonymous memory only, with its
 * contents; mm_init starts pinned_vm at 0; the fd table (dup_fd) holds every fd `from` holds;
 * user (cred) and RLIMIT_MEMLOCK (signal->rlim) are copied.
 */
export function forkProc(d: Draft, fromTask: number, child: number): void {
  // fork from a thread forks its process: that process's fds, VMAs and rlimit, the thread's cred
  const from = d.procs[fromTask]?.mm ?? fromTask;
  d.addProc(child, { alive: true, user: userOf(d, fromTask), mm: child, rlimit: rlimitOf(d, from), pinnedVm: 0, pinnedMin: 0 });
  const bit = 1 << from;
  for (let i = 0; i < d.evs.length; i++) {
    const e = d.evs[i];
    if (e === undefined) continue;
    if ((e.fdMask & bit) !== 0) d.evW(i).fdMask |= 1 << child;
    // perf_event_init_task: the child inherits attr.inherit events of the forking task's
    // context (the original's task, or a task the original may have been swapped into)
    // (task bits: hw.target and inheritedBy name tasks, a thread included)
    if (e.inherit && !e.freed && (e.target === fromTask || ((e.inheritedBy >> fromTask) & 1) !== 0)) d.evW(i).inheritedBy |= 1 << child;
  }
  const shift = (child - from) * MM_SLOTS;
  const copies: Vma[] = [];
  for (const v of d.vmas) if (v.ev < 0 && vmaMm(v) === from) copies.push({ ...v, slot: v.slot + shift });
  if (copies.length === 0) return;
  const vs = d.vmasW();
  vs.push(...copies);
  vs.sort((a, b) => a.slot - b.slot || a.start - b.start);
}

/**
 * do_exit of process p (never p0): exit_mm -> mmput -> exit_mmap closes every VMA of the mm
 * in ascending address order (remove_vma: vm_ops->close = perf_mmap_close with vma->vm_mm =
 * this mm, then fput of vm_file), then exit_files closes its fds (ascending handle order; the
 * event is released when no fd or VMA holds its file). The mm is gone: its pinned_vm stays
 * recorded in procs[p] for conserve.pinned_vm.
 */
export function exitProc(d: Draft, task: number): void {
  // issue 14 (spec/notes/races.md): exit of a task ends that task; exit_mm's mmput and
  // exit_files' put_files_struct drop the last reference only in the last task of the process
  // (kernel/exit.c do_exit: exit_mm, exit_files; the mm and files_struct are shared by CLONE_VM|CLONE_FILES)
  const p = d.procs[task]?.mm ?? task;
  d.procW(task).alive = false;
  for (let t = 0; t < d.procs.length; t++) {
    const x = d.procs[t];
    if (x.alive && x.mm === p) return;
  }
  const lo = p * MM_SLOTS, hi = lo + MM_SLOTS;
  const vs = d.vmasW();
  const removed: Vma[] = [];
  for (let i = 0; i < vs.length;) {
    const v = vs[i];
    if (v.slot >= lo && v.slot < hi) { removed.push(v); vs.splice(i, 1); } else i++;
  }
  closeRemoved(d, removed);
  const bit = 1 << p;
  for (let i = 0; i < d.evs.length; i++) {
    const e = d.evs[i];
    if (e === undefined || (e.fdMask & bit) === 0) continue;
    dropFd(d, i, p);
  }
}

/**
 * clone(CLONE_VM|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD) in task `from`: a new task of from's
 * process (copy_mm / copy_files share, not copy), its cred a copy of from's (copy_creds).
 */
export function threadProc(d: Draft, from: number, child: number): void {
  const q = d.procs[from]?.mm ?? from;
  d.addProc(child, { alive: true, user: userOf(d, from), mm: q, rlimit: 0, pinnedVm: 0, pinnedMin: 0 });
  // copy_process calls perf_event_init_task for threads too: attr.inherit events of the
  // creating task's context are inherited by the new task (as forkProc)
  for (let i = 0; i < d.evs.length; i++) {
    const e = d.evs[i];
    if (e !== undefined && e.inherit && !e.freed && (e.target === from || ((e.inheritedBy >> from) & 1) !== 0)) d.evW(i).inheritedBy |= 1 << child;
  }
}

/** close() of process p's fd for event i: the file goes when no fd and no VMA hold it (perf_release). */
export function dropFd(d: Draft, i: number, p: number): void {
  const w = d.evW(i);
  w.fdMask &= ~(1 << p);
  w.fd = w.fdMask !== 0;
  maybeFree(d, i);
}
