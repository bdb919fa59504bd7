/** The spec's state in the common AbstractState shape (spec/abstract.ts) for refinement. */
import type { AbstractBuffer, AbstractEvent, AbstractState } from "../abstract.ts";
import type { Program } from "../program.ts";
import { evHasVmaState } from "./util.ts";
import type { State } from "./state.ts";

/**
 * Buffers keep the id they got at allocation (0 for the program's first buffer, 1 for the
 * next, ...) and are listed while alive. Events are listed by handle while their fd is open
 * or a VMA still holds them (open: false).
 */
export function toAbstract(s: State, _program: Program): AbstractState {
  const events: AbstractEvent[] = [];
  s.evs.forEach((e, i) => {
    if (e === undefined || e.freed) return;
    if (!e.fd && !evHasVmaState(s, i)) return;
    events.push({ handle: `e${i}`, open: e.fd, mmapCount: e.mmapCount, rb: e.rb >= 0 ? e.rb : null });
  });
  const buffers: AbstractBuffer[] = [];
  for (const b of s.bufs) {
    if (b.dead) continue;
    buffers.push({
      id: b.id, nrPages: b.nrPages, mmapCount: b.mmapCount, mmapLocked: b.mmapLocked,
      auxNrPages: b.auxNrPages, auxPgoff: b.auxPgoff, auxMmapCount: b.auxMmapCount, auxMmapLocked: b.auxMmapLocked,
      auxRefcount: b.auxRefcount, overwrite: b.overwrite,
    });
  }
  return { events, buffers, lockedVm: s.lockedVm, pinnedVm: s.pinnedVm, auxAllocs: s.auxAllocs, auxFrees: s.auxFrees };
}
