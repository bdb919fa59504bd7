/**
 * What every file of the reference shares: the outcomes and errno names a syscall returns,
 * PROT_* bits, the kernel's unsigned comparison, the harness's access kinds and map handles.
 */
import type { Outcome, Prot } from "../spec/program.ts";
import { VM_EXEC, VM_READ, VM_WRITE } from "./objects.ts";

// ---------------------------------------------------------------------------------------------
// Outcomes (shared, never mutated: no allocation per op)

export const OK: Outcome = Object.freeze({ ok: true as const });
export const SIGSEGV: Outcome = Object.freeze({ signal: "SIGSEGV" as const });
export const SIGBUS: Outcome = Object.freeze({ signal: "SIGBUS" as const });
const ERRNO_CACHE = new Map<string, Outcome>();
export function errno(name: string): Outcome {
  let o = ERRNO_CACHE.get(name);
  if (!o) { o = Object.freeze({ errno: name }); ERRNO_CACHE.set(name, o); }
  return o;
}

/** A kernel function's error: an errno name, or null for success. */
export type Err = string | null;
export const EINVAL = "EINVAL", EBADF = "EBADF", ENOMEM = "ENOMEM", EPERM = "EPERM", EFAULT = "EFAULT";
export const EACCES = "EACCES", ENOENT = "ENOENT", EBUSY = "EBUSY", ENODEV = "ENODEV";

export const PROT_BITS: Readonly<Record<Prot, number>> = {
  none: 0, r: VM_READ, rw: VM_READ | VM_WRITE, rx: VM_READ | VM_EXEC, rwx: VM_READ | VM_WRITE | VM_EXEC,
};

export const isPow2 = (n: number) => n > 0 && (n & (n - 1)) === 0;

/** a > b for kernel unsigned longs held as JS numbers (a negative number is a wrapped value). */
export function ugt(a: number, b: number): boolean {
  if (a < 0) return b >= 0 ? true : a > b;
  if (b < 0) return false;
  return a > b;
}

/** Access kinds of the page-touching ops (the harness writes with a read first: auxprobe.c). */
export const ACC_READ = 0, ACC_READ_WRITE = 1, ACC_WRITE = 2;
export const FAULT_OK = 0, FAULT_SEGV = 1, FAULT_BUS = 2;

/** A map handle: its slot A, where its mapping is now (slot A or B), its size in pages and the
 *  process whose mmap introduced it (the default process of the ops on the handle). */
export interface MapHandle { slotA: number; base: number; pages: number; proc: string }
