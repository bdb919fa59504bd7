/**
 * The abstraction function: the reference's state as spec/abstract.ts's AbstractState.
 */
import type { Program } from "../spec/program.ts";
import type { AbstractBuffer, AbstractEvent, AbstractState } from "../spec/abstract.ts";
import type { Kernel } from "./kernel.ts";

export function abstract(k: Kernel, program: Program): AbstractState {
  void program;
  const events: AbstractEvent[] = [];
  for (const e of k.eventOrder) {
    if (e.released) continue;
    if (!e.fdOpen && e.vmaRefs === 0) continue;
    events.push({ handle: e.handle, open: e.fdOpen, mmapCount: e.mmapCount, rb: e.rb ? e.rb.id : null });
  }
  const buffers: AbstractBuffer[] = [];
  for (const rb of k.buffers) {
    if (!rb.alive) continue;
    buffers.push({
      id: rb.id,
      nrPages: rb.nrPages,
      mmapCount: rb.mmapCount,
      mmapLocked: rb.mmapLocked,
      auxNrPages: rb.auxNrPages,
      auxPgoff: rb.auxPgoff,
      auxMmapCount: rb.auxMmapCount,
      auxMmapLocked: rb.auxMmapLocked,
      auxRefcount: rb.auxRefcount,
      overwrite: rb.overwrite,
    });
  }
  return {
    events, buffers, lockedVm: k.lockedVm, pinnedVm: k.pinnedVm,
    auxAllocs: k.auxSetups, auxFrees: k.auxFrees,
  };
}
