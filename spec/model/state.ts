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
 *
 * Several processes and users (issue 13, spec/notes/processes.md). The single-process hot
 * path keeps its scalars: `lockedVm` is u0's user->locked_vm, `pinnedVm` and `rlimit` are
 * p0's; `lockedVmU[u]` holds the other users' (u >= 1, absent = 0, a fresh uid) and
 * `procs[p]` the other processes' mm->pinned_vm and RLIMIT_MEMLOCK (procs[0] carries only
 * p0's user). Each process has its own mm: a VMA's `slot` is `mm * MM_SLOTS + handle slot`,
 * so p0's VMAs keep the slots they always had and every mm-side procedure, which works
 * inside one slot, works per mm unchanged (vmaMm gives the mm). An event records which
 * processes hold an fd for it (`fdMask`, bit p) and which process opened it (`target`,
 * hw.target); `fd` stays "some process holds an fd" (the file is alive while fds or VMAs).
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
  /** some process holds an fd for the event (fdMask !== 0) */
  readonly fd: boolean;
  /** bit p set: process p holds an fd for the event (at most one per process) */
  readonly fdMask: number;
  /** the process that opened it (event->hw.target: pid 0 monitors the caller) */
  readonly target: number;
  /** attr.inherit: the processes forked (from the target or from one of these) while it
   *  lived, bit p. perf's context-switch optimisation (perf_event_context_sched_out swaps
   *  equivalent cloned contexts) may move the original event into any of them, so its
   *  ctx->task, and whether its task has exited (PERF_EVENT_STATE_EXIT), are a set. */
  readonly inheritedBy: number;
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
  /** rb->mmap_user: the user of the process whose data mmap created the buffer (refunds go here) */
  readonly mmapUser: number;
  /** the mm charged mmap_locked (mechanism marker munmap.refund.other_mm only) */
  readonly mmapMm: number;
  /** the user charged for the AUX area, and the mm charged aux_mmap_locked (markers only) */
  readonly auxUser: number;
  readonly auxMm: number;
}

/**
 * What a guard sees for an absent event, buffer or VMA (spec/rules/context.ts). Readonly
 * by type (a Draft copies before it writes), not frozen: a frozen object has another
 * hidden class, which would make every guard's property loads polymorphic.
 */
export const NO_EV: Ev = { fd: false, fdMask: 0, target: -1, inheritedBy: 0, aux: false, cpu: -2, inherit: false, rb: -1, mmapCount: 0, groupLeader: -1, freed: true };
export const NO_BUF: Buf = {
  id: -1, nrPages: 0, mmapCount: 0, mmapLocked: 0, overwrite: false, auxOffset: 0, auxSize: 0, auxNrPages: 0, auxPgoff: 0,
  auxMmapCount: 0, auxMmapLocked: 0, auxRefcount: 0, auxPriv: false, auxOverwrite: false, dead: true, aux0Offset: 0, aux0Size: 0,
  mmapUser: 0, mmapMm: 0, auxUser: 0, auxMm: 0,
};

/** Slots per mm: a VMA of process p at handle slot k has slot p * MM_SLOTS + k (handles < 2048). */
export const MM_SLOTS = 4096;
/** The mm (process index) a VMA belongs to (vma->vm_mm). */
export function vmaMm(v: { readonly slot: number }): number { return (v.slot / MM_SLOTS) | 0; }

/**
 * A task (issue 14: a process or a thread, spec/notes/races.md): alive?, its user (per task:
 * setuid changes one task's cred), and `mm`, the index of the process whose mm, fd table and
 * RLIMIT_MEMLOCK it uses (itself for a process, the process of `from` for a thread). The
 * mm-side scalars (rlimit, pinnedVm, pinnedMin) live in the entry of that process; a thread's
 * stay unused. Every mm slot and fd bit is keyed by the process index (`mm`), every user and
 * hw.target by the task index.
 */
export interface Proc {
  readonly alive: boolean;
  readonly user: number;
  /** the process whose mm / fd table / RLIMIT_MEMLOCK this task uses (itself for a process) */
  readonly mm: number;
  /** RLIMIT_MEMLOCK (p >= 1; p0's is State.rlimit) */
  readonly rlimit: number;
  /** mm->pinned_vm (p >= 1; p0's is State.pinnedVm); an exited process keeps the value its mm had when it went */
  readonly pinnedVm: number;
  /** the lowest pinned_vm the mm ever had (conserve.pinned_vm: never negative); p0's is kept once a second process exists */
  readonly pinnedMin: number;
}
const P0: Proc = { alive: true, user: 0, mm: 0, rlimit: 0, pinnedVm: 0, pinnedMin: 0 };
const PROCS0: readonly Proc[] = [P0];

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
  /** perf_mmap_may_split present (6.1.148+, 6.12.42+, 6.15.10+, 6.16.1+, 6.17+) */
  readonly maySplit: boolean;
  /** aux_mmap_count set to 1 before the accounting check (seed, pre-fix) */
  readonly auxCountEarly: boolean;
  /** which mm/mremap.c: 3.18, 5.10 (3.18's shape: no vma_lookup up front, the split hook
   *  answers, move_vma never asks it), 6.1/6.12, 6.17+ */
  readonly mm: 318 | 510 | 61 | 612 | 618;
  /** mremap growth in place merges with the next VMA (vma_merge, 6.0+); 3.18 and 5.10 call
   *  vma_adjust, which never merges */
  readonly growMerges: boolean;
  /** perf_mmap_close drops event->mmap_count before rb->mmap_count (7.2.13, 7.3.4) */
  readonly closeEventsFirst: boolean;
  /** event/rb mmap counts and aux_mmap_count are refcount_t (448f97fba901, 6.18; atomic_t through 6.17) */
  readonly refcountT: boolean;
  /** aux_refcount is refcount_t (6.1+) */
  readonly auxRefT: boolean;
  readonly lazyPtes: boolean;
  /** munmap split of the first VMA uses new_below = 1 (6.12+), else 0 */
  readonly munmapStartBelow: boolean;
  /** perf_mmap() maps every page at mmap time with map_range() (b709eb872e19, v6.14; 6.16,
   *  6.17, 6.18, 7.2): the only eras whose perf_mmap() consumes the map_range() fault switch */
  readonly mapRange: boolean;
}

const BASE: Omit<Era, "id"> = {
  seed: false, maySplit: true, auxCountEarly: false, mm: 61, refcountT: false, auxRefT: true, lazyPtes: false,
  munmapStartBelow: false, growMerges: true, closeEventsFirst: false, mapRange: false,
};

export const ERAS: Readonly<Record<ProfileId, Era>> = {
  "seed": { ...BASE, id: "seed", seed: true, maySplit: false, auxCountEarly: true, mm: 318, auxRefT: false, lazyPtes: true, growMerges: false },
  "5.10-pre241": { ...BASE, id: "5.10-pre241", maySplit: false, auxCountEarly: true, mm: 510, growMerges: false },
  "5.10": { ...BASE, id: "5.10", mm: 510, growMerges: false },
  "6.1-pre148": { ...BASE, id: "6.1-pre148", maySplit: false, auxCountEarly: true },
  "6.1": { ...BASE, id: "6.1" },
  "6.12-pre42": { ...BASE, id: "6.12-pre42", maySplit: false, auxCountEarly: true, mm: 612, munmapStartBelow: true },
  "6.12": { ...BASE, id: "6.12", mm: 612, munmapStartBelow: true },
  /** 6.15/6.16: 6.12's mm (mremap_to() unmaps the target, then remap_is_valid(): one VMA per move), atomic_t counts */
  "6.16": { ...BASE, id: "6.16", mm: 612, munmapStartBelow: true, mapRange: true },
  /** 6.17: 6.16 with remap_move() (mm/mremap.c, v6.17); still atomic_t */
  "6.17": { ...BASE, id: "6.17", mm: 618, munmapStartBelow: true, mapRange: true },
  "6.18": { ...BASE, id: "6.18", mm: 618, refcountT: true, munmapStartBelow: true, mapRange: true },
  "7.2": { ...BASE, id: "7.2", mm: 618, refcountT: true, munmapStartBelow: true, closeEventsFirst: true, mapRange: true },
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
  /** map_range() calls left to fail (the mapRangeFault switch; 0 = off) */
  readonly mapRangeFault: number;
  readonly auxAllocs: number;
  readonly auxFrees: number;
  /** last anon_vma id handed out */
  readonly avSeq: number;
  readonly warns: readonly string[];
  readonly anomalies: readonly string[];
  /** processes by index (p0 first; see the header for what procs[0] carries) */
  readonly procs: readonly Proc[];
  /** user->locked_vm of users u1..u3 by index ([0] unused: u0's is lockedVm); absent = 0 */
  readonly lockedVmU: readonly number[];
  /** per map handle: the process whose mmap introduced it (absent = p0): the default process of its ops */
  readonly mapOwner: readonly number[];
}

/** user->locked_vm of user u. */
export function lockedOf(s: { readonly lockedVm: number; readonly lockedVmU: readonly number[] }, u: number): number {
  return u === 0 ? s.lockedVm : (s.lockedVmU[u] ?? 0);
}
/** mm->pinned_vm of process p's mm. */
/** Whether process p is alive (p0 always is). */
export function procAlive(s: { readonly procs: readonly Proc[] }, p: number): boolean {
  return p === 0 || (s.procs[p]?.alive ?? false);
}

export function pinnedOf(s: { readonly pinnedVm: number; readonly procs: readonly Proc[] }, p: number): number {
  return p === 0 ? s.pinnedVm : (s.procs[p]?.pinnedVm ?? 0);
}
/** RLIMIT_MEMLOCK of process p. */
export function rlimitOf(s: { readonly rlimit: number; readonly procs: readonly Proc[] }, p: number): number {
  return p === 0 ? s.rlimit : s.procs[p].rlimit;
}
/** current_user() of task p. */
export function userOf(s: { readonly procs: readonly Proc[] }, p: number): number {
  return s.procs[p]?.user ?? 0;
}
/** The process (mm, fd table, RLIMIT_MEMLOCK) of task p: p itself unless p is a thread. */
export function mmOf(s: { readonly procs: readonly Proc[] }, p: number): number {
  return s.procs[p]?.mm ?? p;
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
    mlockKb: cfg.mlockKb, auxFault: false, mapRangeFault: 0, auxAllocs: 0, auxFrees: 0, avSeq: 0, warns: [], anomalies: [],
    procs: PROCS0, lockedVmU: [], mapOwner: [],
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
  mapRangeFault: number;
  auxAllocs: number;
  auxFrees: number;
  avSeq: number;
  warns: string[];
  anomalies: string[];
  procs: Proc[];
  lockedVmU: number[];
  mapOwner: number[];
  /** non-deciding mechanism markers this step fired (counted in coverage), null = none */
  marks: string[] | null = null;
  private procsOwn = false;
  private lockedVmUOwn = false;
  private mapOwnerOwn = false;
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
    this.mapRangeFault = s.mapRangeFault;
    this.auxAllocs = s.auxAllocs;
    this.auxFrees = s.auxFrees;
    this.avSeq = s.avSeq;
    this.warns = s.warns as string[];
    this.anomalies = s.anomalies as string[];
    this.procs = s.procs as Proc[];
    this.lockedVmU = s.lockedVmU as number[];
    this.mapOwner = s.mapOwner as number[];
  }

  /** user->locked_vm of user u += n */
  addLocked(u: number, n: number): void {
    if (u === 0) { this.lockedVm += n; return; }
    if (!this.lockedVmUOwn) { this.lockedVmU = this.lockedVmU.slice(); this.lockedVmUOwn = true; }
    this.lockedVmU[u] = (this.lockedVmU[u] ?? 0) + n;
  }
  /** mm->pinned_vm of process p's mm += n */
  addPinned(p: number, n: number): void {
    if (p === 0) {
      this.pinnedVm += n;
      // p0's minimum only matters (and is only kept) in a program with another process
      if (this.pinnedVm < 0 && this.procs.length > 1 && this.pinnedVm < this.procs[0].pinnedMin) this.procW(0).pinnedMin = this.pinnedVm;
      return;
    }
    const w = this.procW(p);
    w.pinnedVm += n;
    if (w.pinnedVm < w.pinnedMin) w.pinnedMin = w.pinnedVm;
  }
  procW(p: number): Mut<Proc> {
    if (!this.procsOwn) { this.procs = this.procs.map((x) => ({ ...x })); this.procsOwn = true; }
    return this.procs[p] as Mut<Proc>;
  }
  addProc(p: number, x: Proc): void {
    if (!this.procsOwn) { this.procs = this.procs.map((y) => ({ ...y })); this.procsOwn = true; }
    while (this.procs.length < p) this.procs.push({ alive: false, user: 0, mm: this.procs.length, rlimit: 0, pinnedVm: 0, pinnedMin: 0 });
    this.procs[p] = { ...x };
  }
  setMapOwner(m: number, p: number): void {
    if (!this.mapOwnerOwn) { this.mapOwner = this.mapOwner.slice(); this.mapOwnerOwn = true; }
    while (this.mapOwner.length < m) this.mapOwner.push(0);
    this.mapOwner[m] = p;
  }
  /** a non-deciding mechanism marker (rule id) fired by this step */
  mark(id: string): void {
    if (this.marks === null) this.marks = [id];
    else if (!this.marks.includes(id)) this.marks.push(id);
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
      !this.procsOwn && !this.lockedVmUOwn && !this.mapOwnerOwn &&
      this.lockedVm === s.lockedVm && this.pinnedVm === s.pinnedVm && this.rlimit === s.rlimit &&
      this.mlockKb === s.mlockKb && this.auxFault === s.auxFault && this.mapRangeFault === s.mapRangeFault && this.auxAllocs === s.auxAllocs && this.auxFrees === s.auxFrees &&
      this.avSeq === s.avSeq) {
      return s;
    }
    return {
      era: s.era, cfg: s.cfg, evs: this.evs, bufs: this.bufs, vmas: this.vmas, bases: this.bases, mapPages: this.mapPages,
      lockedVm: this.lockedVm, pinnedVm: this.pinnedVm, rlimit: this.rlimit, mlockKb: this.mlockKb,
      auxFault: this.auxFault, mapRangeFault: this.mapRangeFault, auxAllocs: this.auxAllocs, auxFrees: this.auxFrees, avSeq: this.avSeq,
      warns: this.warns, anomalies: this.anomalies, procs: this.procs, lockedVmU: this.lockedVmU, mapOwner: this.mapOwner,
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

/** Slot index of a map handle's slot (0 = A, 1 = B) in p0's mm. */
export function slotOf(m: number, ab: number): number { return m * 2 + ab; }
/** The same slot in process p's mm. */
export function slotIn(p: number, m: number, ab: number): number { return p * MM_SLOTS + m * 2 + ab; }
