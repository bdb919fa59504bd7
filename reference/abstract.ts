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
    if (e.fdRefs === 0 && e.vmaRefs === 0) continue;
    // open: some process still holds an fd for it
    events.push({ handle: e.handle, open: e.fdRefs > 0, mmapCount: e.mmapCount, rb: e.rb ? e.rb.id : null });
  }
  // by handle, as the spec lists them (a program may open e2 before e1)
  events.sort((a, b) => Number(a.handle.slice(1)) - Number(b.handle.slice(1)));
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
    // u0's locked_vm and p0's pinned_vm (the program's initial user and process)
    events, buffers, lockedVm: k.users.get("u0")!.lockedVm, pinnedVm: k.init.mm!.pinnedVm,
    auxAllocs: k.auxSetups, auxFrees: k.auxFrees,
  };
}
