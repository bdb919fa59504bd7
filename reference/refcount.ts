/**
 * Counters: atomic_t before 6.18, refcount_t (include/linux/refcount.h, lib/refcount.c) in
 * 6.18 for event->mmap_count, rb->mmap_count, rb->aux_mmap_count; the era picks (era.refcount,
 * era.auxRefcountT). A refcount_t misuse WARNs (k.warn) and saturates, as lib/refcount.c does.
 */
import { PerfBuffer, REFCOUNT_SATURATED } from "./objects.ts";
import type { Kernel } from "./kernel.ts";

export function refInc(k: Kernel, v: number, what: string): number {
  if (!k.era.refcount) return v + 1;
  // __refcount_add(): old == 0 -> REFCOUNT_ADD_UAF; old < 0 or overflow -> REFCOUNT_ADD_OVF
  if (v === 0) { k.warn(`WARNING: refcount_t: addition on 0; use-after-free (${what})`); return REFCOUNT_SATURATED; }
  if (v < 0) { k.warn(`WARNING: refcount_t: saturated; leaking memory (${what})`); return REFCOUNT_SATURATED; }
  return v + 1;
}

/** refcount_inc_not_zero() / atomic_inc_not_zero() on rb.mmapCount: false when it was 0. */
export function refIncNotZero(k: Kernel, rb: PerfBuffer, field: "mmapCount", what: string): boolean {
  const v = rb[field];
  if (v === 0) return false;
  if (k.era.refcount && v < 0) {
    k.warn(`WARNING: refcount_t: saturated; leaking memory (${what})`);
    rb[field] = REFCOUNT_SATURATED;
    return true;
  }
  rb[field] = v + 1;
  return true;
}

/** refcount_dec_and_test() / atomic_dec_and_test(): [new value, hit zero] */
export function refDecAndTest(k: Kernel, v: number, what: string, refcountT: boolean): [number, boolean] {
  if (!refcountT) return [v - 1, v - 1 === 0];
  if (v === 1) return [0, true];
  if (v <= 0) { k.warn(`WARNING: refcount_t: underflow; use-after-free (${what})`); return [REFCOUNT_SATURATED, false]; }
  return [v - 1, false];
}

/** refcount_dec_and_mutex_lock() / atomic_dec_and_mutex_lock(): [new value, hit zero] */
export function refDecAndLock(k: Kernel, v: number, what: string): [number, boolean] {
  if (!k.era.refcount) return [v - 1, v - 1 === 0];
  // refcount_dec_not_one(): saturated stays; 0 WARNs and stays.
  if (v === REFCOUNT_SATURATED) return [v, false];
  if (v === 0) { k.warn(`WARNING: refcount_t: underflow; use-after-free (${what})`); return [0, false]; }
  if (v === 1) return [0, true];
  return [v - 1, false];
}

/** refcount_dec(): must not hit 0 (REFCOUNT_DEC_LEAK). */
export function refDec(k: Kernel, v: number, what: string): number {
  if (!k.era.refcount) return v - 1;
  if (v <= 1) { k.warn(`WARNING: refcount_t: decrement hit 0; leaking memory (${what})`); return REFCOUNT_SATURATED; }
  return v - 1;
}
