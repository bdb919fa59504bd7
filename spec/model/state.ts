/**
 * The spec's state: the kernel objects and counters that decide an outcome, kept small
 * and immutable (plain objects and arrays, shared between states; a Draft copies what a
 * step writes, once).
 *
 *   events  by handle index: fd open?, pmu has AUX?, cpu, inherit, event->rb (buffer id),
 *           event->mmap_count, group leader, freed?
 *   buffers by allocation id: nr_pages, rb->mmap_count, mmap_locked, overwrite, the user
 *           page's aux_offset/aux_size, and the AUX part (aux_nr_pages, aux_pgoff,
 *           aux_mmap_count, aux_mmap_locked, aux_refcount, setup_aux private data)
 *   vmas    sorted by (slot, start): which slot, page range, vm_pgoff, prot, event (or -1
 *           for anonymous memory); the seed also records faulted pages (ptes)
 *   user->locked_vm, mm->pinned_vm, RLIMIT_MEMLOCK, perf_event_mlock_kb, the test PMU's
 *   fault switch, AUX allocations and frees, predicted kernel warnings, and anomalies
 *   (objects freed with counts not back at zero).
 */
import type { Config, ProfileId } from "../program.ts";

/** REFCOUNT_SATURATED (INT_MIN / 2): what a refcount_t holds after a WARN. */
export const SAT = -1073741824;
/** RLIM_INFINITY >> PAGE_SHIFT, as the kernel compares it (2^52 - 1). */
export const RLIM_INF_PAGES = 2 ** 52 - 1;

export const PAGE = 4096;

/** Protection bits: r = 1, w = 2, x = 4. */
export const PROT_BITS = { none: 0, r: 1, rw: 3, rx: 5, rwx: 7 } as const;
export const P_R = 1, P_W = 2, P_X = 4;

export type PageKind = 1 | 2 | 3; // user page, data page, AUX page
/** A faulted page of a VMA (seed only): rel page in the VMA -> physical page. */
export interface Pte { readonly rel: number; readonly buf: number; readonly kind: PageKind; readonly idx: number }
/** What setAux wrote into an anonymous page (rel page in the VMA). */
export interface AnonWrite { readonly rel: number; readonly off: number; readonly size: number }

export interface Ev {
  readonly fd: boolean;
  readonly aux: boolean;
  readonly cpu: number;
  readonly inherit: boolean;
  readonly rb: number;
  readonly mmapCount: number;
  readonly groupLeader: number;
  readonly freed: boolean;
}

export interface Buf {
  readonly id: number;
  readonly nrPages: number;
  readonly mmapCount: number;
  readonly mmapLocked: number;
  readonly overwrite: boolean;
  readonly auxOffset: number;
  readonly auxSize: number;
  readonly auxNrPages: number;
  readonly auxPgoff: number;
  readonly auxMmapCount: number;
  readonly auxMmapLocked: number;
  readonly auxRefcount: number;
  readonly auxPriv: boolean;
  readonly auxOverwrite: boolean;
  readonly dead: boolean;
  /** seed: aux_offset/aux_size written into AUX page 0 through a stale mapping. */
  readonly aux0Offset: number;
  readonly aux0Size: number;
}

/**
 * What a guard sees for an absent event, buffer or VMA (spec/rules/context.ts). Readonly
 * by type (a Draft copies before it writes), not frozen: a frozen object has another
 * hidden class, which would make every guard's property loads polymorphic.
 */
export const NO_EV: Ev = { fd: false, aux: false, cpu: -2, inherit: false, rb: -1, mmapCount: 0, groupLeader: -1, freed: true };
export const NO_BUF: Buf = {
  id: -1, nrPages: 0, mmapCount: 0, mmapLocked: 0, overwrite: false, auxOffset: 0, auxSize: 0, auxNrPages: 0, auxPgoff: 0,
  auxMmapCount: 0, auxMmapLocked: 0, auxRefcount: 0, auxPriv: false, auxOverwrite: false, dead: true, aux0Offset: 0, aux0Size: 0,
};

export interface Vma {
  readonly slot: number;
  readonly start: number;
  readonly end: number;
  readonly pgoff: number;
  readonly prot: number;
  /** event handle index, or -1 for anonymous memory */
  readonly ev: number;
  readonly ptes?: readonly Pte[];
  readonly data?: readonly AnonWrite[];
  /** anonymous memory: its anon_vma (given by the first write fault), 0 = none yet */
  readonly av?: number;
}

/**
 * Per-era data that shapes transition bodies (how splits open pieces, atomic_t vs
 * refcount_t, which mremap). Which rule decides, and with which errno, is not here: that
 * is the profile's rule list (spec/model/decide.ts).
 */
export interface Era {
  readonly id: ProfileId;
  readonly seed: boolean;
  /** perf_mmap_may_split present (6.1.148+, 6.12.42+, 6.18) */
  readonly maySplit: boolean;
  /** aux_mmap_count set to 1 before the accounting check (seed, pre-fix) */
  readonly auxCountEarly: boolean;
  readonly mm: 318 | 61 | 612 | 618;
  /** event/rb mmap counts and aux_mmap_count are refcount_t (6.18) */
  readonly refcountT: boolean;
  /** aux_refcount is refcount_t (6.1+) */
  readonly auxRefT: boolean;
  readonly lazyPtes: boolean;
  /** munmap split of the first VMA uses new_below = 1 (6.12+), else 0 */
  readonly munmapStartBelow: boolean;
}

const BASE: Omit<Era, "id"> = {
  seed: false, maySplit: true, auxCountEarly: false, mm: 61, refcountT: false, auxRefT: true, lazyPtes: false,
  munmapStartBelow: false,
};

export const ERAS: Readonly<Record<ProfileId, Era>> = {
  "seed": { ...BASE, id: "seed", seed: true, maySplit: false, auxCountEarly: true, mm: 318, auxRefT: false, lazyPtes: true },
  "6.1-pre148": { ...BASE, id: "6.1-pre148", maySplit: false, auxCountEarly: true },
  "6.1": { ...BASE, id: "6.1" },
  "6.12-pre42": { ...BASE, id: "6.12-pre42", maySplit: false, auxCountEarly: true, mm: 612, munmapStartBelow: true },
  "6.12": { ...BASE, id: "6.12", mm: 612, munmapStartBelow: true },
  "6.18": { ...BASE, id: "6.18", mm: 618, refcountT: true, munmapStartBelow: true },
};

export interface State {
  readonly era: Era;
  readonly cfg: Config;
  readonly evs: readonly (Ev | undefined)[];
  readonly bufs: readonly Buf[];
  readonly vmas: readonly Vma[];
  /** per map handle: 0 = slot A is the base, 1 = slot B */
  readonly bases: readonly number[];
  /** per map handle: the pages its mmap asked for (munmap/mprotect default) */
  readonly mapPages: readonly number[];
  readonly lockedVm: number;
  readonly pinnedVm: number;
  readonly rlimit: number;
  readonly mlockKb: number;
  readonly auxFault: boolean;
  readonly auxAllocs: number;
  readonly auxFrees: number;
  /** last anon_vma id handed out */
  readonly avSeq: number;
  readonly warns: readonly string[];
  readonly anomalies: readonly string[];
}

export const NO_VMA: Vma = { slot: -1, start: 0, end: 0, pgoff: 0, prot: 0, ev: -1 };

type Mut<T> = { -readonly [K in keyof T]: T[K] };
export type MEv = Mut<Ev>;
export type MBuf = Mut<Buf>;

export function initial(cfg: Config, profile: ProfileId): State {
  return {
    era: ERAS[profile], cfg, evs: [], bufs: [], vmas: [], bases: [], mapPages: [],
    lockedVm: cfg.lockedVmPages ?? 0, pinnedVm: 0,
    rlimit: cfg.memlockPages === "unlimited" ? RLIM_INF_PAGES : cfg.memlockPages,
    mlockKb: cfg.mlockKb, auxFault: false, auxAllocs: 0, auxFrees: 0, avSeq: 0, warns: [], anomalies: [],
  };
}

/**
 * A step's working copy: arrays and objects are copied the first time they are written,
 * so a step that changes one buffer copies that buffer and the buffers array, nothing else.
 */
export class Draft {
  readonly base: State;
  readonly era: Era;
  evs: (Ev | undefined)[];
  bufs: Buf[];
  vmas: Vma[];
  bases: number[];
  mapPages: number[];
  lockedVm: number;
  pinnedVm: number;
  rlimit: number;
  mlockKb: number;
  auxFault: boolean;
  auxAllocs: number;
  auxFrees: number;
  avSeq: number;
  warns: string[];
  anomalies: string[];
  private evsOwn = false;
  private bufsOwn = false;
  private vmasOwn = false;
  private basesOwn = false;
  private mapPagesOwn = false;
  private warnsOwn = false;
  private anomOwn = false;
  private evOwn: boolean[] = [];
  private bufOwn: boolean[] = [];

  constructor(s: State) {
    this.base = s;
    this.era = s.era;
    this.evs = s.evs as (Ev | undefined)[];
    this.bufs = s.bufs as Buf[];
    this.vmas = s.vmas as Vma[];
    this.bases = s.bases as number[];
    this.mapPages = s.mapPages as number[];
    this.lockedVm = s.lockedVm;
    this.pinnedVm = s.pinnedVm;
    this.rlimit = s.rlimit;
    this.mlockKb = s.mlockKb;
    this.auxFault = s.auxFault;
    this.auxAllocs = s.auxAllocs;
    this.auxFrees = s.auxFrees;
    this.avSeq = s.avSeq;
    this.warns = s.warns as string[];
    this.anomalies = s.anomalies as string[];
  }

  get cfg(): Config { return this.base.cfg; }

  ev(i: number): Ev | undefined { return this.evs[i]; }
  evW(i: number): MEv {
    if (!this.evsOwn) { this.evs = this.evs.slice(); this.evsOwn = true; }
    if (!this.evOwn[i]) { this.evs[i] = { ...(this.evs[i] as Ev) }; this.evOwn[i] = true; }
    return this.evs[i] as MEv;
  }
  setEv(i: number, e: Ev): void {
    if (!this.evsOwn) { this.evs = this.evs.slice(); this.evsOwn = true; }
    this.evs[i] = e;
    this.evOwn[i] = true;
  }
  buf(id: number): Buf { return this.bufs[id]; }
  bufW(id: number): MBuf {
    if (!this.bufsOwn) { this.bufs = this.bufs.slice(); this.bufsOwn = true; }
    if (!this.bufOwn[id]) { this.bufs[id] = { ...this.bufs[id] }; this.bufOwn[id] = true; }
    return this.bufs[id] as MBuf;
  }
  addBuf(b: Buf): void {
    if (!this.bufsOwn) { this.bufs = this.bufs.slice(); this.bufsOwn = true; }
    this.bufs.push(b);
    this.bufOwn[b.id] = true;
  }
  vmasW(): Vma[] {
    if (!this.vmasOwn) { this.vmas = this.vmas.slice(); this.vmasOwn = true; }
    return this.vmas;
  }
  setBase(m: number, b: number): void {
    if (!this.basesOwn) { this.bases = this.bases.slice(); this.basesOwn = true; }
    while (this.bases.length <= m) this.bases.push(0);
    this.bases[m] = b;
  }
  baseOf(m: number): number { return this.bases[m] ?? 0; }
  setMapPages(m: number, pages: number): void {
    if (!this.mapPagesOwn) { this.mapPages = this.mapPages.slice(); this.mapPagesOwn = true; }
    this.mapPages[m] = pages;
  }
  warn(w: string): void {
    if (!this.warnsOwn) { this.warns = this.warns.slice(); this.warnsOwn = true; }
    this.warns.push(w);
  }
  anomaly(a: string): void {
    if (!this.anomOwn) { this.anomalies = this.anomalies.slice(); this.anomOwn = true; }
    this.anomalies.push(a);
  }

  finish(): State {
    const s = this.base;
    if (!this.evsOwn && !this.bufsOwn && !this.vmasOwn && !this.basesOwn && !this.mapPagesOwn && !this.warnsOwn && !this.anomOwn &&
      this.lockedVm === s.lockedVm && this.pinnedVm === s.pinnedVm && this.rlimit === s.rlimit &&
      this.mlockKb === s.mlockKb && this.auxFault === s.auxFault && this.auxAllocs === s.auxAllocs && this.auxFrees === s.auxFrees &&
      this.avSeq === s.avSeq) {
      return s;
    }
    return {
      era: s.era, cfg: s.cfg, evs: this.evs, bufs: this.bufs, vmas: this.vmas, bases: this.bases, mapPages: this.mapPages,
      lockedVm: this.lockedVm, pinnedVm: this.pinnedVm, rlimit: this.rlimit, mlockKb: this.mlockKb,
      auxFault: this.auxFault, auxAllocs: this.auxAllocs, auxFrees: this.auxFrees, avSeq: this.avSeq,
      warns: this.warns, anomalies: this.anomalies,
    };
  }
}

/** Unsigned 64-bit a > b for values kept as signed numbers (negative = wrapped, huge). */
export function ugt(a: number, b: number): boolean {
  const an = a < 0, bn = b < 0;
  return an !== bn ? an : a > b;
}

export function isPow2(n: number): boolean {
  return n > 0 && (n & (n - 1)) === 0;
}

/**
 * vm_pgoff of a fresh anonymous mapping is its address >> PAGE_SHIFT (do_mmap, MAP_PRIVATE
 * anonymous): slots are far apart, so only pages of one slot are contiguous.
 */
export function anonPgoff(slot: number, page: number): number { return slot * 2 ** 24 + page; }

/** Slot index of a map handle's slot (0 = A, 1 = B). */
export function slotOf(m: number, ab: number): number { return m * 2 + ab; }
