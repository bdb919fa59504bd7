/**
 * Hand-written par programs for the historic races (spec/notes/races.md, reference/bugs.ts):
 * each puts the two sides in different mms (fork), since mmap/munmap in one mm serialize on
 * mmap_lock. Shared by test/reference/races.test.ts and the report.
 */
import type { Op, Program, ProfileId } from "../../spec/program.ts";

const open = (ev: string, pmu: "sw" | "aux" = "sw"): Op => ({ op: "open", ev, pmu });
const mmap = (map: string, ev: string, pages: number, proc = "p0", pgoff = 0, prot: "r" | "rw" = "rw"): Op => ({ op: "mmap", proc, map, ev, pages, pgoff, prot });
const fork = (proc: string): Op => ({ op: "fork", proc, from: "p0" });

/** race-close-close, rb-first eras (5.10 .. 6.18): two events on one rb (SET_OUTPUT), each
 *  mapped in its own mm, both unmapped at once. Fixed: the closer whose atomic_dec_and_test()
 *  took rb->mmap_count to 0 detaches; bug: both read 0 afterwards and both refund. */
export const CLOSE_CLOSE_TWO_EVENTS: Program = [
  open("e0"), open("e1"), mmap("m0", "e0", 3), { op: "setOutput", ev: "e1", target: "e0" }, fork("p1"),
  mmap("m1", "e1", 3, "p1"),
  { op: "par", ops: 2 }, { op: "munmap", map: "m0" }, { op: "munmap", proc: "p1", map: "m1" },
];

/** race-close-close, 7.2 (events-first close; a redirected event cannot be mapped: EBUSY):
 *  one event mapped in two mms, both unmapped at once. */
export const CLOSE_CLOSE_ONE_EVENT: Program = [
  open("e0"), mmap("m0", "e0", 3), fork("p1"), mmap("m1", "e0", 3, "p1"),
  { op: "par", ops: 2 }, { op: "munmap", map: "m0" }, { op: "munmap", proc: "p1", map: "m1" },
];

/** race-setoutput-close: the last munmap of e0's buffer against SET_OUTPUT of e1 to e0 from
 *  another process; then a data mmap of e1 of another size (3 pages: 2 data pages, e0's buffer
 *  has 1). In every order e1 ends without a buffer and the mmap is ok; with the bug e1 can keep
 *  the dead buffer: SET_OUTPUT ok and the mmap EINVAL. */
export const SETOUTPUT_CLOSE: Program = [
  open("e0"), open("e1"), mmap("m0", "e0", 2), fork("p1"),
  { op: "par", ops: 2 }, { op: "munmap", map: "m0" }, { op: "setOutput", proc: "p1", ev: "e1", target: "e0" },
  mmap("m1", "e1", 3, "p1"),
];

/** race-aux-serialization: e1 redirected to e0's buffer, AUX described in the user page; the
 *  AUX area mapped through e0 (p0) and through e1 (p1) at once. Fixed: rb->aux_mutex makes the
 *  second see the first's area; bug: both allocate, the first area leaks. */
export const AUX_SERIALIZATION: Program = [
  open("e0", "aux"), open("e1", "aux"), mmap("m0", "e0", 3), { op: "setAux", map: "m0", offsetPages: 3, sizePages: 2 },
  { op: "setOutput", ev: "e1", target: "e0" }, fork("p1"),
  { op: "par", ops: 2 }, mmap("m1", "e0", 2, "p0", 3), mmap("m2", "e1", 2, "p1", 3),
];

/** race-mmap-unlocked-map-range: the mapRangeFault switch armed for one map_range(); the first
 *  mmap of e0 to reach map_range() (p0's or p1's) fails there while the other task maps e0 too. */
export const MMAP_UNLOCKED_MAP_RANGE: Program = [
  open("e0"), fork("p1"), { op: "mapRangeFault", times: 1 },
  { op: "par", ops: 2 }, mmap("m0", "e0", 3), mmap("m1", "e0", 3, "p1"),
  { op: "munmap", proc: "p1", map: "m1" },
];

/** race-map-range-aux: an AUX mmap through e1 (p1) while p0 unmaps the only other AUX mapping
 *  (through e0). No interleaving frees the area under map_range() (NOTES-for-lead.md). */
export const MAP_RANGE_AUX: Program = [
  open("e0", "aux"), open("e1", "aux"), mmap("m0", "e0", 3), { op: "setAux", map: "m0", offsetPages: 3, sizePages: 2 },
  { op: "setOutput", ev: "e1", target: "e0" }, mmap("m1", "e0", 2, "p0", 3), fork("p1"),
  { op: "par", ops: 2 }, { op: "munmap", map: "m1" }, mmap("m2", "e1", 2, "p1", 3),
];

export interface RaceCase { bug: string; profile: ProfileId; program: Program; expressible: boolean }

export const RACE_CASES: readonly RaceCase[] = [
  { bug: "race-close-close", profile: "6.1", program: CLOSE_CLOSE_TWO_EVENTS, expressible: true },
  { bug: "race-close-close", profile: "5.10", program: CLOSE_CLOSE_TWO_EVENTS, expressible: true },
  { bug: "race-close-close", profile: "7.2", program: CLOSE_CLOSE_ONE_EVENT, expressible: true },
  { bug: "race-setoutput-close", profile: "6.1", program: SETOUTPUT_CLOSE, expressible: true },
  { bug: "race-setoutput-close", profile: "7.2", program: SETOUTPUT_CLOSE, expressible: true },
  { bug: "race-aux-serialization", profile: "6.1", program: AUX_SERIALIZATION, expressible: true },
  { bug: "race-aux-serialization", profile: "7.2", program: AUX_SERIALIZATION, expressible: true },
  { bug: "race-mmap-unlocked-map-range", profile: "6.18", program: MMAP_UNLOCKED_MAP_RANGE, expressible: true },
  { bug: "race-mmap-unlocked-map-range", profile: "7.2", program: MMAP_UNLOCKED_MAP_RANGE, expressible: true },
  { bug: "race-map-range-aux", profile: "7.2", program: MAP_RANGE_AUX, expressible: false },
];
