/**
 * The locked-memory accounting of perf_mmap() and its refunds in perf_mmap_close().
 * These clauses never decide an outcome alone (mmap.*.eperm does); they say what is
 * charged and refunded, which is what the conservation invariants check.
 */
import { CORE, M618, MODERN, PATCH, SEED, V, rule } from "./types.ts";

export const ACCOUNTING_RULES = [
  rule("acct.limit.seed", SEED, undefined, "perf_mmap", PATCH, V.seed,
    "user_lock_limit = (mlock_kb >> 2) * cpus; user_locked = locked_vm + user_extra (no clamp); extra = excess over the limit; on success locked_vm += user_extra (the FULL amount) and pinned_vm += extra"),
  rule("acct.limit.clamp", MODERN, undefined, "perf_mmap", CORE, V.modern,
    "user_locked = min(locked_vm, limit) + user_extra (unsigned: a negative locked_vm clamps to the limit); extra = excess, user_extra -= extra; on success locked_vm += user_extra, pinned_vm += extra (2019/2020 fixes)"),
  rule("acct.refund.data.seed", SEED, undefined, "perf_mmap_close", CORE, V.v318,
    "last VMA of the buffer: mmap_user->locked_vm -= nr_pages + 1; pinned_vm of the closing mm -= mmap_locked"),
  rule("acct.refund.data", MODERN, undefined, "perf_mmap_close", CORE, V.modern,
    "last VMA of the buffer: locked_vm -= nr_pages + 1 - mmap_locked; pinned_vm -= mmap_locked"),
  rule("acct.refund.aux.seed", SEED, undefined, "perf_mmap_close", PATCH, V.seed,
    "last AUX VMA (vm_pgoff == aux_pgoff and aux_mmap_count drops to 0): locked_vm -= aux_nr_pages (full), pinned_vm -= aux_mmap_locked, rb_free_aux"),
  rule("acct.refund.aux", MODERN, undefined, "perf_mmap_close", CORE, V.modern,
    "last AUX VMA: locked_vm -= aux_nr_pages - aux_mmap_locked, pinned_vm -= aux_mmap_locked, rb_free_aux, WARN_ON_ONCE(aux_refcount)"),
  rule("acct.remap.charge", M618, undefined, "perf_mmap_account", CORE, V.v618,
    "6.18 charges user_extra on every successful mapping, including re-maps of an existing buffer or AUX area (user_extra = nr_pages there, never refunded)"),
] as const;
