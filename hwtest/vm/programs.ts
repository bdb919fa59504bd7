/**
 * Hand-written AUX programs: the paths vm-recipe.md documents for the test PMU. The end-to-end
 * test checks their outcomes; the matrix puts them ahead of its random corpus, so the main AUX
 * rules (a new AUX area, a shared one, setup_aux refusing, the size checks, may_split) are hit on
 * every kernel whatever the seed.
 */
import type { Op, Program } from "../../spec/program.ts";

const open: Op = { op: "open", ev: "e0", pmu: "aux" };
/** A data buffer of 8 pages plus the user page. */
const data9: Op = { op: "mmap", map: "m0", ev: "e0", pages: 9, pgoff: 0, prot: "rw", shared: true };
/** aux_offset right after the data area, aux_size `sizePages`; then an AUX mmap of `pages`. */
const aux = (sizePages: number, pages = sizePages): Op[] => [
  { op: "setAux", map: "m0", offsetPages: 9, sizePages },
  { op: "mmap", map: "m1", ev: "e0", pages, pgoff: 9, prot: "rw", shared: true },
];

export const AUX_PROGRAMS = {
  /** data + a 4-page AUX area, then the user page read back: all ok. */
  good: [open, data9, ...aux(4), { op: "readUserPage", map: "m0" }],
  /** aux_size of 3 pages (not a power of 2): EINVAL. */
  badSize: [open, data9, ...aux(3)],
  /** mmap length (4 pages) != aux_size (8 pages): EINVAL. */
  badLength: [open, data9, ...aux(8, 4)],
  /** setup_aux returns NULL (test PMU fault injection): the AUX mmap is ENOMEM. */
  fault: [{ op: "auxFault", fail: true }, open, data9, ...aux(4)],
  /** may_split (6.1.148+, 6.12.42+): partial munmap of the AUX VMA EINVAL, the whole one ok. */
  partial: [open, data9, ...aux(4), { op: "munmap", map: "m1", offset: 1, pages: 1 }, { op: "munmap", map: "m1" }],
  /** 1024 AUX pages over the 129-page-per-CPU budget: VmPin 3616 kB on 1 CPU. */
  big: [open, data9, ...aux(1024)],
  /** a second AUX mapping of the same size shares the area; another size is EINVAL. */
  second: [open, data9, ...aux(4), { op: "mmap", map: "m2", ev: "e0", pages: 4, pgoff: 9, prot: "rw", shared: true },
    { op: "mmap", map: "m3", ev: "e0", pages: 8, pgoff: 9, prot: "rw", shared: true }],
  /** PROT_READ AUX mapping (overwrite mode), then unmapping AUX and mapping it again with another size. */
  readOnlyThenResize: [open, data9, { op: "setAux", map: "m0", offsetPages: 9, sizePages: 2 },
    { op: "mmap", map: "m1", ev: "e0", pages: 2, pgoff: 9, prot: "r", shared: true }, { op: "munmap", map: "m1" },
    { op: "setAux", map: "m0", offsetPages: 9, sizePages: 8 }, { op: "mmap", map: "m2", ev: "e0", pages: 8, pgoff: 9, prot: "rw", shared: true }],
} satisfies Record<string, Program>;

export type AuxProgramName = keyof typeof AUX_PROGRAMS;
