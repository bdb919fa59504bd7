/**
 * Page access: the fault path (perf_mmap_fault() before 6.14; map_range() +
 * perf_mmap_pfn_mkwrite() after), anonymous memory, and the ops built on it (touch, setAux,
 * readUserPage).
 */
import type { Outcome, UserPageObs } from "../spec/program.ts";
import { PAGE_SIZE, VM_READ, VM_WRITE, zeroPage } from "./objects.ts";
import { OK, SIGSEGV, SIGBUS, ACC_READ, ACC_WRITE, FAULT_OK, FAULT_SEGV, FAULT_BUS } from "./common.ts";
import { perfMmapToPage } from "./ring-buffer.ts";
import { findVma } from "./mm.ts";
import type { Kernel } from "./kernel.ts";

/** Access one page as the harness does (auxprobe.c: a write reads first). Returns FAULT_* and
 *  leaves the page reached in k.lastPage. */
export function access(k: Kernel, addr: number, kind: number): number {
  k.lastPage = null;
  const vma = findVma(k, addr);
  if (!vma) return FAULT_SEGV;
  if (kind !== ACC_WRITE && !(vma.prot & VM_READ)) return FAULT_SEGV;
  if (kind === ACC_WRITE && !(vma.prot & VM_WRITE)) return FAULT_SEGV;
  if (!vma.event) {
    // anonymous memory: zero-filled until written; a write fault gives the VMA an anon_vma
    // and the page keeps what is written (the page table entry carries it)
    let page = k.ptes.get(addr);
    if (kind !== ACC_READ) {
      if (!(vma.prot & VM_WRITE)) return FAULT_SEGV;
      if (vma.anonVma === 0) vma.anonVma = ++k.anonVmaSeq;
      if (page === undefined || page === 0) {
        page = zeroPage();
        k.ptes.set(addr, page);
      }
    }
    k.lastPage = page ?? 0;
    return FAULT_OK;
  }
  const pgoff = vma.pgoff + (addr - vma.start);
  if (vma.prepopulated) {
    // 6.14+: every page was installed by map_range(); a write faults into
    // perf_mmap_pfn_mkwrite(): vmf->pgoff == 0 ? 0 : VM_FAULT_SIGBUS
    if (kind !== ACC_READ) {
      if (!(vma.prot & VM_WRITE)) return FAULT_SEGV;
      if (pgoff !== 0) return FAULT_BUS;
    }
    k.lastPage = pgoff === 0 && vma.preUser ? vma.preUser : 0;
    return FAULT_OK;
  }
  if (k.era.mapAtMmap) return FAULT_BUS; // VM_PFNMAP without a page: no ->fault
  let page = k.ptes.get(addr);
  if (page === undefined) {
    // perf_mmap_fault(): no page yet
    const rb = vma.event.rb;
    if (!rb) return FAULT_BUS;
    if (kind === ACC_WRITE && pgoff !== 0) return FAULT_BUS; // "if (vmf->pgoff && (vmf->flags & FAULT_FLAG_WRITE))"
    const p = perfMmapToPage(rb, pgoff);
    if (p === null) return FAULT_BUS;
    page = p;
    k.ptes.set(addr, page);
  }
  if (kind !== ACC_READ) {
    if (!(vma.prot & VM_WRITE)) return FAULT_SEGV;
    // do_wp_page() -> page_mkwrite = perf_mmap_fault(FAULT_FLAG_MKWRITE): pgoff 0 only
    if (pgoff !== 0) return FAULT_BUS;
  }
  k.lastPage = page;
  return FAULT_OK;
}

export function faultOutcome(f: number): Outcome {
  return f === FAULT_OK ? OK : f === FAULT_BUS ? SIGBUS : SIGSEGV;
}

/** setAux: the harness stores aux_offset and aux_size into page 0 of the handle. */
export function userSetAux(k: Kernel, h: string, offsetPages: number, sizePages: number): Outcome {
  const m = k.mapHandle(h);
  const f = access(k, m.base, ACC_WRITE);
  if (f !== FAULT_OK) return faultOutcome(f);
  const p = k.lastPage;
  if (p) {
    p.auxOffset = offsetPages * PAGE_SIZE;
    p.auxSize = sizePages * PAGE_SIZE;
  }
  return OK;
}

export function userReadPage(k: Kernel, h: string): Outcome {
  const m = k.mapHandle(h);
  const f = access(k, m.base, ACC_READ);
  if (f !== FAULT_OK) return faultOutcome(f);
  const p = k.lastPage;
  const page: UserPageObs = p
    ? { dataOffset: p.dataOffset, dataSize: p.dataSize, auxHead: p.auxHead, auxOffset: p.auxOffset, auxSize: p.auxSize }
    : { dataOffset: 0, dataSize: 0, auxHead: 0, auxOffset: 0, auxSize: 0 };
  return { ok: true, page };
}
