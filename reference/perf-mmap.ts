/**
 * mmap(2) of a perf fd: do_mmap()'s generic checks, mmap_region() -> call_mmap() ->
 * perf_mmap(), whose era-independent checks run here before the era's body:
 * perf-mmap-seed.ts (v3.18 + v8 patch), perf-mmap-61.ts (6.1 / 6.12), perf-mmap-618.ts (6.15+).
 */
import { SLOT_PAGES, handleIndex, type Op, type Outcome } from "../spec/program.ts";
import { Vma, VM_EXEC } from "./objects.ts";
import { OK, errno, EINVAL, EBADF, EPERM, PROT_BITS, type Err } from "./common.ts";
import { perfMmapSeed } from "./perf-mmap-seed.ts";
import { perfMmap61 } from "./perf-mmap-61.ts";
import { perfMmap618 } from "./perf-mmap-618.ts";
import { insertVma } from "./mm.ts";
import type { Kernel } from "./kernel.ts";

export function sysMmap(k: Kernel, op: Extract<Op, { op: "mmap" }>): Outcome {
  const slotA = handleIndex(op.map) * 2 * SLOT_PAGES;
  k.maps.set(op.map, { slotA, base: slotA, pages: op.pages, proc: k.current.pid });
  // ksys_mmap_pgoff(): fget(fd) first, in current's fd table
  const event = k.liveEvent(op.ev);
  if (!event) return errno(EBADF);
  // do_mmap(): if (!len) return -EINVAL
  if (op.pages === 0) return errno(EINVAL);
  const prot = PROT_BITS[op.prot];
  // do_mmap(): 6.15+ anon inodes are noexec: path_noexec() -> VM_EXEC is EPERM, VM_MAYEXEC cleared
  if (k.era.noexec && (prot & VM_EXEC)) return errno(EPERM);
  // MAP_FIXED_NOREPLACE at slot A: a fresh handle's slot is empty.
  const shared = op.shared !== false;
  const vma = new Vma(slotA, slotA + op.pages, op.pgoff, prot, !k.era.noexec, shared, event, k.current.mm!);
  const e = perfMmap(k, vma);
  if (e) return errno(e); // mmap_region() frees the VMA without ->close()
  insertVma(k, vma);
  event.vmaRefs++; // vma->vm_file = get_file(file)
  return OK;
}

/** perf_mmap(): the checks common to every era, then the era's body. */
export function perfMmap(k: Kernel, vma: Vma): Err {
  const event = vma.event!;
  // Don't allow mmap() of inherited per-task counters.
  if (event.cpu === -1 && event.inherit) return EINVAL;
  if (!vma.shared) return EINVAL;
  // security_perf_event_read(): no LSM denies here.
  switch (k.era.perf) {
    case "seed": return perfMmapSeed(k, vma, event);
    case "v6.1": return perfMmap61(k, vma, event);
    case "v6.18": return perfMmap618(k, vma, event);
  }
}
