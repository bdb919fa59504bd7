/**
 * The abstract state both implementations map to, for the refinement check
 * (reference/ and spec/ are written independently; this is where they must meet).
 *
 * Canonical form:
 * - buffers are numbered in allocation order (0, 1, ...) and listed only while alive
 *   (some VMA or event still holds them);
 * - events are listed by handle (only those whose open succeeded and that are not closed,
 *   plus closed ones that a VMA still keeps alive, with `open: false`); with several
 *   processes `open` means some process holds an fd for it (the file is alive);
 * - counters are plain numbers (kernel longs; negative means the kernel's unsigned
 *   value wrapped).
 */
export interface AbstractBuffer {
  id: number;
  nrPages: number;
  mmapCount: number;
  mmapLocked: number;
  /** 0 when the buffer has no AUX area (rb_has_aux false). */
  auxNrPages: number;
  auxPgoff: number;
  auxMmapCount: number;
  auxMmapLocked: number;
  /** aux_refcount: 1 while the AUX area is allocated and not yet freed. */
  auxRefcount: number;
  overwrite: boolean;
}

export interface AbstractEvent {
  handle: string;
  open: boolean;
  mmapCount: number;
  /** Buffer id the event writes to (event->rb), or null. */
  rb: number | null;
}

export interface AbstractState {
  events: AbstractEvent[];
  buffers: AbstractBuffer[];
  /** user->locked_vm of the program's uid (u0), pages */
  lockedVm: number;
  /** mm->pinned_vm of the program's process (p0), pages */
  pinnedVm: number;
  /** AUX areas allocated (setup_aux succeeded) and freed so far. */
  auxAllocs: number;
  auxFrees: number;
}
