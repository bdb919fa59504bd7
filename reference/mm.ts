/**
 * VMAs (mm/mmap.c, mm/vma.c, mm/mprotect.c): the sorted VMA list, vma_lookup/find_vma,
 * __split_vma(), do_munmap(), remove_vma(), anonymous VMA merging, MAP_FIXED anonymous
 * mappings, mprotect(2). mremap(2) is in mremap.ts.
 */
import { Vma, VM_EXEC, VM_READ, VM_WRITE } from "./objects.ts";
import { EINVAL, ENOMEM, EACCES, type Err } from "./common.ts";
import { fput, perfMmapOpen, perfMmapClose } from "./perf-core.ts";
import type { Kernel } from "./kernel.ts";

export function insertVma(k: Kernel, v: Vma): void {
  const a = k.vmas;
  let i = a.length;
  while (i > 0 && a[i - 1].start > v.start) i--;
  a.splice(i, 0, v);
}

export function removeVma(k: Kernel, v: Vma): void {
  const i = k.vmas.indexOf(v);
  if (i >= 0) k.vmas.splice(i, 1);
}

/** The VMA containing addr (vma_lookup). */
export function findVma(k: Kernel, addr: number): Vma | null {
  for (const v of k.vmas) {
    if (v.start > addr) return null;
    if (addr < v.end) return v;
  }
  return null;
}

/** The first VMA ending above addr (find_vma). */
export function findVmaAfter(k: Kernel, addr: number): Vma | null {
  for (const v of k.vmas) if (v.end > addr) return v;
  return null;
}

export function maySplitActive(k: Kernel): boolean {
  return k.era.maySplit && !k.bug.vmaSplit;
}

/** __split_vma() (6.1 mm/mmap.c; 6.12 mm/vma.c; v3.18 mm/mmap.c): the new VMA is the part
 *  below addr when newBelow, else the part above; vm_ops->open() runs on it. */
export function splitVma(k: Kernel, vma: Vma, addr: number, newBelow: boolean): Err {
  if (vma.event && maySplitActive(k)) return EINVAL; // perf_mmap_may_split()
  const nw = vma.dup();
  if (newBelow) nw.end = addr;
  else {
    nw.start = addr;
    nw.pgoff += addr - vma.start;
  }
  if (nw.event) {
    nw.event.vmaRefs++; // get_file()
    perfMmapOpen(k, nw);
  }
  if (newBelow) {
    vma.pgoff += addr - nw.start;
    vma.start = addr;
  } else {
    vma.end = addr;
  }
  insertVma(k, nw);
  return null;
}

/** do_munmap() / do_vmi_munmap(): split the VMAs straddling the range, detach the ones inside,
 *  zap their pages, close them in address order, drop their files. v3.18 and 6.1
 *  (do_mas_align_munmap) split with new_below = 0 at the start and 1 at the end (the new VMA is
 *  on the removed side); 6.12+ (vms_gather_munmap_vmas) the other way round. */
export function doMunmap(k: Kernel, start: number, len: number, deferClose?: Vma[]): Err {
  if (len <= 0) return EINVAL;
  const end = start + len;
  let vma = findVmaAfter(k, start);
  if (!vma || vma.start >= end) return null;
  const oldStyle = k.era.mm === "v3.18" || k.era.mm === "v5.10" || k.era.mm === "v6.1";
  if (start > vma.start) {
    const e = splitVma(k, vma, start, !oldStyle);
    if (e) return e;
    vma = findVma(k, start)!;
  }
  const gone: Vma[] = [];
  let i = k.vmas.indexOf(vma);
  while (i < k.vmas.length && k.vmas[i].start < end) {
    const next = k.vmas[i];
    if (next.end > end) {
      if (oldStyle) {
        const e = splitVma(k, next, end, true);
        if (e) return e;
        gone.push(findVma(k, end - 1)!); // the new lower piece
      } else {
        const e = splitVma(k, next, end, false);
        if (e) return e;
        gone.push(next);
      }
      break;
    }
    gone.push(next);
    i++;
  }
  for (const v of gone) removeVma(k, v);
  zapPtes(k, start, end);
  // The explorer (reference/explore/) closes them itself, step by step, after the mm's
  // mmap_write_downgrade() (5.10.262 __do_munmap(), 6.1.192 do_mas_align_munmap(), 7.2.13
  // vms_complete_munmap_vmas()).
  if (deferClose) deferClose.push(...gone);
  else for (const v of gone) removeVmaClose(k, v);
  return null;
}

/** remove_vma(): vm_ops->close(), then fput(). */
export function removeVmaClose(k: Kernel, v: Vma): void {
  if (v.event) {
    perfMmapClose(k, v);
    fput(k, v.event);
  }
}

export function zapPtes(k: Kernel, start: number, end: number): void {
  if (k.ptes.size === 0) return;
  for (const a of k.ptes.keys()) if (a >= start && a < end) k.ptes.delete(a);
}

export function sysMunmap(k: Kernel, start: number, pages: number): Err {
  // munmap(2): len 0 -> EINVAL (__vm_munmap -> do_vmi_munmap)
  return doMunmap(k, start, pages);
}

/** Anonymous VMAs merge with compatible neighbours (vma_merge(): same flags, contiguous
 *  vm_pgoff, compatible anon_vma). Perf VMAs never merge (vm_ops->close). */
export function mergeAnon(k: Kernel, v: Vma): Vma {
  const i = k.vmas.indexOf(v);
  const prev = i > 0 ? k.vmas[i - 1] : null;
  const next = i + 1 < k.vmas.length ? k.vmas[i + 1] : null;
  let cur = v;
  if (prev && mergeable(prev, cur)) {
    prev.end = cur.end;
    prev.anonVma = prev.anonVma || cur.anonVma;
    removeVma(k, cur);
    cur = prev;
  }
  if (next && mergeable(cur, next)) {
    cur.end = next.end;
    cur.anonVma = cur.anonVma || next.anonVma;
    removeVma(k, next);
  }
  return cur;
}

export function mergeable(a: Vma, b: Vma): boolean {
  return a.event === null && b.event === null && a.end === b.start && a.prot === b.prot &&
    a.pgoff + (a.end - a.start) === b.pgoff && (a.anonVma === 0 || b.anonVma === 0 || a.anonVma === b.anonVma);
}

/** mmap(MAP_FIXED|MAP_ANONYMOUS|MAP_PRIVATE, PROT_READ|PROT_WRITE): mmap_region() unmaps the
 *  range first. 6.1 / v3.18: "if (do_munmap(...)) return -ENOMEM"; 6.12+: the
 *  vms_gather_munmap_vmas() error itself (EINVAL from may_split; 6.18.44: EINVAL seen). */
export function mmapFixedAnon(k: Kernel, addr: number, pages: number): Err {
  const e = doMunmap(k, addr, pages);
  if (e) return k.era.mm === "v6.1" || k.era.mm === "v5.10" || k.era.mm === "v3.18" ? ENOMEM : e;
  const v = new Vma(addr, addr + pages, addr, VM_READ | VM_WRITE, true, false, null, k.current.mm!);
  insertVma(k, v);
  mergeAnon(k, v);
  return null;
}

/** do_mprotect_pkey() and mprotect_fixup() (6.1.192 mm/mprotect.c; same loop in v3.18/6.12). */
export function sysMprotect(k: Kernel, start: number, pages: number, prot: number): Err {
  if (pages === 0) return null; // if (!len) return 0;
  const end = start + pages;
  let vma = findVmaAfter(k, start);
  if (!vma || vma.start > start) return ENOMEM;
  let nstart = start;
  for (;;) {
    // newflags >> 4 shift VM_MAY% in place of VM_%
    if ((prot & VM_EXEC) && !vma.mayExec) return EACCES;
    const tmp = Math.min(vma.end, end);
    const e = mprotectFixup(k, vma, nstart, tmp, prot);
    if (e) return e;
    nstart = tmp;
    if (nstart >= end) return null;
    vma = findVmaAfter(k, nstart);
    if (!vma || vma.start !== nstart) return ENOMEM;
  }
}

export function mprotectFixup(k: Kernel, vma: Vma, start: number, end: number, prot: number): Err {
  if (prot === vma.prot) return null; // newflags == oldflags: nothing to do, no split
  if (start !== vma.start) {
    const e = splitVma(k, vma, start, true);
    if (e) return e;
  }
  if (end !== vma.end) {
    const e = splitVma(k, vma, end, false);
    if (e) return e;
  }
  vma.prot = prot;
  if (!vma.event) mergeAnon(k, vma);
  return null;
}
