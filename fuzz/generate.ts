/**
 * Generate: fast-check arbitraries for programs of symbolic ops.
 *
 * A program is generated as a list of *genes* (small integer tuples) and decoded into ops
 * against the handles introduced so far. Decoding resolves every handle reference modulo
 * the handles that exist at that point, so any sub-list of genes (what shrinking
 * produces) decodes to a valid program: no op ever names a handle that does not exist.
 * Every gene field shrinks towards 0, and 0 always decodes to the plainest choice (the
 * first handle, the whole mapping, the matching size).
 *
 * The decode tables bias towards the edges that matter: data sizes of 1 + 2^k pages and
 * their neighbours, aux_offset at, below and above the end of the data area, AUX sizes
 * that do and do not match what the user page says, the same event mapped twice, partial
 * unmaps and remaps, SET_OUTPUT chains, rlimits near the per-user limit, closes while
 * mapped, setup_aux failure.
 *
 * Processes and users (issue 13, spec/notes/processes.md). A gene's sixth field picks the
 * process an op runs in (0: the default, p0 or the mapping's owner). `fork` genes (rare while
 * p0 is alone, so that roughly 30% of programs are multi-process and the single-process
 * distribution stays the main body) add a child, often followed at once by an mmap in it of a
 * buffer it inherited the fd of (a re-map of the parent's buffer: the child has no copy of the
 * parent's perf VMAs, VM_DONTCOPY) or of the AUX area. Once a child lives, `exit`, `setuid` and
 * `sendFd` genes become likely and about 3 in 8 per-process ops run in a child. The decoder
 * tracks which process is alive, holds which fds and runs as which user, so that ops run where
 * they mean something (a child maps events it holds; map ops go to maps whose owner lives) and
 * every sub-list still decodes to a valid program (programProblems, and no op, explicit or by
 * default, on a process after its exit).
 */
import fc from "fast-check";
import { MAX_PROCS, type Config, type Op, type Program, type Prot } from "../spec/program.ts";

export interface GenOptions {
  config: Config;
  /** Longest program (default 20 ops). */
  maxOps?: number;
  /** Shortest program (default 1). */
  minOps?: number;
  /** Op kinds the backend cannot run; never generated. */
  unsupported?: ReadonlySet<string>;
  /** Generate multi-process/multi-user programs (fork, exit, setuid, sendFd, ops in children).
   *  Default true; always off when the backend cannot run `fork`. */
  processes?: boolean;
  /** Generate threads and `par` blocks (issue 14, spec/notes/races.md). Default true; off with
   *  processes off, and when the backend lists `par` unsupported (threads: `thread`). */
  races?: boolean;
}

/** Whether decode may generate processes and users under these options. */
export function processesEnabled(opts: GenOptions): boolean {
  return opts.processes !== false && !(opts.unsupported?.has("fork") ?? false);
}

/** Whether decode may generate par blocks under these options (threads: also `thread` supported). */
export function racesEnabled(opts: GenOptions): boolean {
  return processesEnabled(opts) && opts.races !== false && !(opts.unsupported?.has("par") ?? false);
}

/** One gene: [kind selector, a, b, c, d, process selector]. */
export type Gene = readonly [number, number, number, number, number, number];
/** Fields per gene. */
export const GENE_FIELDS = 6;

type GeneKind =
  | "open" | "close" | "mmapData" | "mmapAux" | "setAux" | "munmap" | "mremap" | "mprotect"
  | "mapFixedAnon" | "setOutput" | "rlimit" | "sysctlMlock" | "auxFault" | "touch" | "readUserPage"
  | "fork" | "exit" | "setuid" | "sendFd" | "thread" | "par";

/** Relative weights; order matters only in that index 0 is where shrinking ends up. */
const WEIGHTS: ReadonlyArray<readonly [GeneKind, number, string]> = [
  ["open", 14, "open"],
  ["mmapData", 16, "mmap"],
  ["setAux", 12, "setAux"],
  ["mmapAux", 16, "mmap"],
  ["munmap", 10, "munmap"],
  ["close", 4, "close"],
  ["setOutput", 6, "setOutput"],
  ["mremap", 4, "mremap"],
  ["mprotect", 3, "mprotect"],
  ["mapFixedAnon", 2, "mapFixedAnon"],
  ["touch", 4, "touch"],
  ["readUserPage", 3, "readUserPage"],
  ["rlimit", 3, "rlimit"],
  ["sysctlMlock", 2, "sysctlMlock"],
  ["auxFault", 2, "auxFault"],
];

/** Process genes: weights while p0 is alone (exit/sendFd need a child) and while a child lives.
 *  Against the 120 of WEIGHTS, fork+setuid at 4 make ~30% of 1..20-gene programs multi-process. */
const PROC_WEIGHTS: ReadonlyArray<readonly [GeneKind, number, number]> = [
  ["fork", 3, 3],
  ["setuid", 1, 2],
  ["exit", 0, 5],
  ["sendFd", 0, 4],
];
/** Threads and par blocks (issue 14): a thread is rare while p0 is alone (it makes the program
 *  multi-process); a par block needs two live tasks. Against ~134 with a child alive, par at 5
 *  puts a block into about 15% of multi-process programs. */
const RACE_WEIGHTS: ReadonlyArray<readonly [GeneKind, number, number]> = [
  ["thread", 1, 2],
  ["par", 0, 5],
];
/** setuid to another user with config.capSetuid false only answers EPERM: keep it rare. */
const NO_CAP_SETUID_WEIGHTS: ReadonlyMap<GeneKind, readonly [number, number]> = new Map([["setuid", [0, 1]]]);
/** Users a setuid switches to (u0 is where every process starts; u1 most, u3 rarely). */
const SETUID_USERS = ["u1", "u1", "u2", "u1", "u3", "u2"] as const;

/** Data buffer sizes (nr_pages, not counting the user page): powers of two and neighbours. */
const DATA_NR = [1, 0, 2, 4, 8, 3, 16, 32, 5, 64, 128, 7, 256, 9, 6, 512];
/** AUX sizes in pages. */
const AUX_NR = [1, 2, 4, 8, 3, 16, 32, 64, 0, 5, 128, 256, 6, 512];
/** aux_offset relative to the end of the data area (1 + nr pages). */
const AUX_OFF_DELTA = [0, 0, 1, 0, -1, 2, 0, 4, -2, 8, 3];
const PROTS: readonly Prot[] = ["rw", "r", "rw", "none", "rx", "rwx"];
/** Data mappings: mostly writable, so that setAux can write the user page. */
const DATA_PROTS: readonly Prot[] = ["rw", "rw", "r", "rw", "none", "rw", "rx", "rwx"];
const RLIMITS: ReadonlyArray<number | "unlimited"> = [0, 1, 2, 4, 8, 16, 64, 256, 512, "unlimited", 3, 32, 128];
const MLOCK_KB = [516, 0, 4, 8, 64, 260, 1024, 12, 2048];

const pick = <T>(xs: readonly T[], n: number): T => xs[n % xs.length];

interface MapInfo { handle: string; ev: number; pages: number; pgoff: number; owner: string }

const NONE: ReadonlySet<string> = new Set();

interface KindTable { kinds: GeneKind[]; weights: number[]; total: number }
const tableCache = new WeakMap<GenOptions, readonly [KindTable, KindTable]>();
/** The gene kind tables (p0 alone, a child alive) under these options, computed once per options object. */
function kindTables(opts: GenOptions): readonly [KindTable, KindTable] {
  const hit = tableCache.get(opts);
  if (hit) return hit;
  const unsupported = opts.unsupported ?? NONE;
  const procsOn = processesEnabled(opts);
  const make = (kids: boolean): KindTable => {
    const rows: Array<readonly [GeneKind, number]> = WEIGHTS.filter(([, , opKind]) => !unsupported.has(opKind)).map(([k, w]) => [k, w] as const);
    if (procsOn) {
      for (const [k, alone, withKids] of PROC_WEIGHTS) {
        if (unsupported.has(k)) continue;
        const w = opts.config.capSetuid === false ? NO_CAP_SETUID_WEIGHTS.get(k) ?? [alone, withKids] : [alone, withKids];
        if ((kids ? w[1] : w[0]) > 0) rows.push([k, kids ? w[1] : w[0]]);
      }
    }
    if (racesEnabled(opts)) {
      for (const [k, alone, withKids] of RACE_WEIGHTS) {
        if (unsupported.has(k)) continue;
        if ((kids ? withKids : alone) > 0) rows.push([k, kids ? withKids : alone]);
      }
    }
    return { kinds: rows.map(([k]) => k), weights: rows.map(([, w]) => w), total: rows.reduce((s, [, w]) => s + w, 0) };
  };
  const t = [make(false), make(true)] as const;
  tableCache.set(opts, t);
  return t;
}

/** Decode genes into a valid program. Pure and deterministic. */
export function decode(genes: readonly Gene[], opts: GenOptions): Program {
  return new Decoder(opts).run(genes);
}

/** The decoder's state while it walks a gene list (a class, not closures: tsx's keepNames
 *  wraps every named closure in a defineProperty call, which made decode 2.5x slower). */
class Decoder {
  readonly config: Config;
  readonly unsupported: ReadonlySet<string>;
  readonly procsOn: boolean;
  readonly racesOn: boolean;
  readonly tables: readonly [KindTable, KindTable];
  readonly hasAux: boolean;
  readonly mmapOk: boolean;
  readonly prog: Op[] = [];
  nEv = 0;
  readonly maps: MapInfo[] = [];
  /** per event: nr of its last data mapping, and the aux offset/size last written through it */
  readonly lastDataNr: number[] = [];
  readonly lastDataMap: MapInfo[] = [];
  readonly lastAux: Array<{ off: number; size: number } | undefined> = [];
  // Processes: alive ones (p0 first, then in fork order), how many forks and exits so far, each
  // one's fds (event indices) and user.
  readonly alive: string[] = ["p0"];
  forks = 0;
  exits = 0;
  readonly fds = new Map<string, Set<number>>([["p0", new Set()]]);
  readonly user = new Map<string, string>([["p0", "u0"]]);
  /** each task's process (a thread: its creator's process; the fd Set object is shared) */
  readonly procOfTask = new Map<string, string>([["p0", "p0"]]);

  constructor(opts: GenOptions) {
    this.config = opts.config;
    this.unsupported = opts.unsupported ?? NONE;
    this.procsOn = processesEnabled(opts);
    this.racesOn = racesEnabled(opts);
    this.tables = kindTables(opts);
    this.hasAux = opts.config.pmus.aux !== null;
    this.mmapOk = !this.unsupported.has("mmap");
  }

  ev(i: number): string { return `e${i}`; }
  isAlive(p: string): boolean { return this.alive.includes(p); }
  canFork(): boolean { return this.procsOn && this.forks < MAX_PROCS - 1 && !this.unsupported.has("fork"); }
  kids(): boolean { return this.alive.length > 1; }
  /** The process a per-process op runs in: mostly p0, 3 in 8 a live child. */
  procFor(p: number): string {
    return this.alive.length === 1 || p % 8 < 5 ? "p0" : this.alive[1 + ((p >> 3) % (this.alive.length - 1))];
  }
  withProc<T extends Op>(op: T, proc: string): T { return proc === "p0" ? op : { ...op, proc }; }
  /** Maps an op may address by default: those whose owner lives (all of them until an exit). */
  liveMaps(): MapInfo[] { return this.exits === 0 ? this.maps : this.maps.filter((m) => this.isAlive(m.owner)); }
  /** Now and then (1 in 32) an explicit other process on a map handle: that mm has nothing there
   *  (or a fork child's anonymous copy). */
  mapOpProc<T extends Op>(op: T, m: MapInfo, p: number): T {
    if (this.alive.length < 2 || p % 32 !== 31) return op;
    const others = this.alive.filter((x) => x !== m.owner);
    return { ...op, proc: others[(p >> 5) % others.length] };
  }
  /** An event for an op in `proc`: p0 any (as single-process programs always did); a child one it
   *  holds an fd for, preferring `prefer` (e.g. mapped ones) when asked. */
  evFor(proc: string, a: number, prefer?: (e: number) => boolean, preferOdds = 0): number {
    if (proc === "p0") return a % this.nEv;
    const held = [...this.fds.get(proc)!].sort((x, y) => x - y);
    if (held.length === 0) return a % this.nEv;
    if (prefer) {
      const good = held.filter(prefer);
      if (good.length && (a >> 4) % 4 < preferOdds) return good[a % good.length];
    }
    return held[a % held.length];
  }

  emit(kind: GeneKind, a: number, b: number, c: number, d: number, p: number, force?: { proc: string; ev?: number }): void {
    switch (kind) {
      case "open": {
        const proc = force?.proc ?? this.procFor(p);
        const op: Extract<Op, { op: "open" }> = { op: "open", ev: this.ev(this.nEv), pmu: this.hasAux && a % 5 !== 1 ? "aux" : "sw" };
        if (b % 7 === 3) op.cpu = (b >> 3) % (this.config.cpus + 1); // this.config.cpus itself is an offline/invalid CPU
        if (c % 11 === 5) op.inherit = true;
        if (this.nEv > 0 && d % 4 === 1) op.outputTo = this.ev((d >> 2) % this.nEv);
        this.prog.push(this.withProc(op, proc));
        this.fds.get(proc)!.add(this.nEv);
        this.nEv++;
        break;
      }
      case "close": {
        const proc = force?.proc ?? this.procFor(p);
        const e = this.evFor(proc, a);
        this.prog.push(this.withProc({ op: "close", ev: this.ev(e) }, proc));
        this.fds.get(proc)!.delete(e);
        break;
      }
      case "mmapData": {
        const proc = force?.proc ?? this.procFor(p);
        // A child mostly re-maps a buffer its parent mapped (same size: the re-map path).
        const e = force?.ev ?? this.evFor(proc, a, (x) => this.lastDataNr[x] !== undefined, 3);
        // Half the time (a child: 3 in 4) reuse the size the event was last mapped with (a second map of the same buffer).
        const reuse = c % 2 === 1 || (proc !== "p0" && (c >> 4) % 2 === 1);
        const nr = this.lastDataNr[e] !== undefined && reuse ? this.lastDataNr[e]! : pick(DATA_NR, b);
        const h = `m${this.maps.length}`;
        const op: Extract<Op, { op: "mmap" }> = { op: "mmap", map: h, ev: this.ev(e), pages: 1 + nr, pgoff: 0, prot: pick(DATA_PROTS, d) };
        if (c % 13 === 7) op.shared = false;
        this.prog.push(this.withProc(op, proc));
        const m: MapInfo = { handle: h, ev: e, pages: 1 + nr, pgoff: 0, owner: proc };
        this.maps.push(m);
        this.lastDataNr[e] = nr;
        this.lastDataMap[e] = m;
        break;
      }
      case "setAux": {
        // Prefer a data mapping (pgoff 0): that is where the user page is; now and then page 0 of another.
        const live = this.liveMaps();
        const data = live.filter((m) => m.pgoff === 0);
        const m = data.length && d % 8 !== 7 ? data[a % data.length] : live[a % live.length];
        const off = Math.max(0, m.pages + pick(AUX_OFF_DELTA, b));
        const size = pick(AUX_NR, c);
        this.prog.push(this.mapOpProc({ op: "setAux", map: m.handle, offsetPages: off, sizePages: size }, m, p));
        this.lastAux[m.ev] = { off, size };
        break;
      }
      case "mmapAux": {
        // Mostly an event whose user page already says where AUX goes; else one with a data
        // mapping, writing aux_offset/aux_size first (one gene, two ops); else any event.
        // In a child: the events it holds; the setAux runs where the data mapping is (its owner).
        const proc = force?.proc ?? this.procFor(p);
        const held = proc === "p0" ? null : this.fds.get(proc)!;
        const withAux: number[] = [];
        const withData: number[] = [];
        for (let i = 0; i < this.nEv; i++) {
          if (force?.ev !== undefined && i !== force.ev) continue;
          if (held && held.size && !held.has(i)) continue;
          if (this.lastAux[i]) withAux.push(i);
          else if (this.lastDataMap[i] !== undefined && this.isAlive(this.lastDataMap[i].owner)) withData.push(i);
        }
        const how = a % 8;
        let e: number;
        if (withAux.length && how < 4) e = withAux[(a >> 3) % withAux.length];
        else if (withData.length && how < 7) {
          e = withData[(a >> 3) % withData.length];
          const off = 1 + this.lastDataNr[e]!;
          const sz = pick(AUX_NR, c);
          this.prog.push({ op: "setAux", map: this.lastDataMap[e].handle, offsetPages: off, sizePages: sz });
          this.lastAux[e] = { off, size: sz };
        } else e = force?.ev ?? this.evFor(proc, a >> 3);
        const want = this.lastAux[e] ?? { off: 1 + (this.lastDataNr[e] ?? 1), size: pick(AUX_NR, c) };
        // b: 0..5 use the user page's values; then size or offset mismatches.
        const mode = b % 9;
        const size = mode === 6 ? want.size + 1 : mode === 7 ? Math.max(1, want.size * 2) : want.size;
        const off = mode === 8 ? want.off + 1 : mode === 5 ? Math.max(1, want.off - 1) : want.off;
        const h = `m${this.maps.length}`;
        const pages = Math.min(size, 2048);
        this.prog.push(this.withProc({ op: "mmap", map: h, ev: this.ev(e), pages, pgoff: off, prot: pick(PROTS, d) }, proc));
        this.maps.push({ handle: h, ev: e, pages, pgoff: off, owner: proc });
        break;
      }
      case "munmap": {
        const live = this.liveMaps();
        const m = live[a % live.length];
        const part = b % 4; // 0 whole, 1 head, 2 tail, 3 middle
        if (part === 0 || m.pages < 2) this.prog.push(this.mapOpProc({ op: "munmap", map: m.handle }, m, p));
        else {
          const n = 1 + (c % (m.pages - 1));
          const offset = part === 1 ? 0 : part === 2 ? m.pages - n : Math.min(1 + (d % (m.pages - 1)), m.pages - 1);
          this.prog.push(this.mapOpProc({ op: "munmap", map: m.handle, offset, pages: Math.min(n, m.pages - offset) }, m, p));
        }
        break;
      }
      case "mremap": {
        const live = this.liveMaps();
        const m = live[a % live.length];
        const v = b % 5; // 0 move whole to fresh, 1 shrink, 2 grow, 3 move part, 4 same size in place
        let op: Extract<Op, { op: "mremap" }>;
        if (v === 0) op = { op: "mremap", map: m.handle, oldPages: m.pages, newPages: m.pages, mayMove: true, toFresh: true };
        else if (v === 1) op = { op: "mremap", map: m.handle, oldPages: m.pages, newPages: Math.max(1, m.pages - 1 - (c % Math.max(1, m.pages))) };
        else if (v === 2) op = { op: "mremap", map: m.handle, oldPages: m.pages, newPages: m.pages + 1 + (c % 4), mayMove: d % 2 === 1 };
        else if (v === 3 && m.pages > 1) {
          const offset = c % m.pages;
          op = { op: "mremap", map: m.handle, offset, oldPages: m.pages - offset, newPages: m.pages - offset, mayMove: true, toFresh: true };
        } else op = { op: "mremap", map: m.handle, oldPages: m.pages, newPages: m.pages };
        this.prog.push(this.mapOpProc(op, m, p));
        break;
      }
      case "mprotect": {
        const live = this.liveMaps();
        const m = live[a % live.length];
        const prot = pick(PROTS, c);
        if (b % 2 === 0 || m.pages < 2) this.prog.push(this.mapOpProc({ op: "mprotect", map: m.handle, prot }, m, p));
        else this.prog.push(this.mapOpProc({ op: "mprotect", map: m.handle, offset: 1 + (d % (m.pages - 1)), pages: 1, prot }, m, p));
        break;
      }
      case "mapFixedAnon": {
        const live = this.liveMaps();
        const m = live[a % live.length];
        this.prog.push(this.mapOpProc({ op: "mapFixedAnon", map: m.handle, offset: b % Math.max(1, m.pages), pages: 1 + (c % 2) }, m, p));
        break;
      }
      case "setOutput": {
        const proc = force?.proc ?? this.procFor(p);
        const e = this.evFor(proc, a);
        const t = b % (this.nEv + 1);
        this.prog.push(this.withProc({ op: "setOutput", ev: this.ev(e), target: t === this.nEv ? null : this.ev(t) }, proc));
        break;
      }
      case "rlimit":
        this.prog.push(this.withProc({ op: "rlimit", memlockPages: pick(RLIMITS, a) }, force?.proc ?? this.procFor(p)));
        break;
      case "sysctlMlock":
        this.prog.push({ op: "sysctlMlock", kb: pick(MLOCK_KB, a) });
        break;
      case "auxFault":
        // the fault gene: the test PMU's setup_aux switch, or (1 in 4, where the backend runs it:
        // the model only) the map_range() switch, mostly for one call
        if (b % 4 === 3 && !this.unsupported.has("mapRangeFault")) this.prog.push({ op: "mapRangeFault", times: pick([1, 1, 2, 3, 0], a) });
        else this.prog.push({ op: "auxFault", fail: a % 2 === 0 });
        break;
      case "touch": {
        const live = this.liveMaps();
        const m = live[a % live.length];
        this.prog.push(this.mapOpProc({ op: "touch", map: m.handle, page: b % (m.pages + 1), write: c % 2 === 1 }, m, p));
        break;
      }
      case "readUserPage": {
        const live = this.liveMaps();
        const m = live[a % live.length];
        this.prog.push(this.mapOpProc({ op: "readUserPage", map: m.handle }, m, p));
        break;
      }
      case "fork": {
        // From p0, or (half the time while a child lives) from a child: a grandchild.
        const from = this.alive.length === 1 || a % 2 === 0 ? "p0" : this.alive[1 + ((a >> 1) % (this.alive.length - 1))];
        this.forks++;
        const child = `p${this.forks}`;
        this.prog.push({ op: "fork", proc: child, from });
        this.alive.push(child);
        this.fds.set(child, new Set(this.fds.get(from)!));
        this.user.set(child, this.user.get(from)!);
        this.procOfTask.set(child, child);
        // Then often an mmap in the child of a buffer it inherited the fd of: the data buffer
        // again (the re-map path, charged to the child's user and mm), or its AUX area.
        const then = b % 4;
        if (!this.mmapOk || this.nEv === 0) break;
        if (then === 1 || then === 2) { this.emit("mmapData", c, d, 1 + 2 * (c >> 1), b >> 2, 0, { proc: child }); }
        else if (then === 3) this.emit("mmapAux", c, d >> 3, d, b >> 2, 0, { proc: child });
        break;
      }
      case "thread": {
        // A thread of p0 or of a live child: shares that process's fd table (the same Set).
        const from = this.alive[a % this.alive.length];
        this.forks++;
        const child = `p${this.forks}`;
        this.prog.push({ op: "thread", proc: child, from });
        this.alive.push(child);
        this.fds.set(child, this.fds.get(from)!);
        this.user.set(child, this.user.get(from)!);
        this.procOfTask.set(child, this.procOfTask.get(from)!);
        break;
      }
      case "par":
        this.par(a, b, c, d);
        break;
      case "exit": {
        const children = this.alive.slice(1);
        const proc = children[a % children.length];
        this.prog.push({ op: "exit", proc });
        this.alive.splice(this.alive.indexOf(proc), 1);
        this.exits++;
        break;
      }
      case "setuid": {
        // A third of the time (when one has switched) a process switches back to u0; else any
        // live process switches to another this.user.
        const switched = this.alive.filter((x) => this.user.get(x) !== "u0");
        const back = switched.length > 0 && a % 3 === 0;
        const proc = back ? switched[(a >> 2) % switched.length] : this.alive[a % this.alive.length];
        const to = back ? "u0" : pick(SETUID_USERS, b >> 2);
        this.prog.push({ op: "setuid", proc, user: to });
        if (this.config.capSetuid !== false) this.user.set(proc, to);
        // Then often a mapping under the new user: a re-map of a mapped buffer, or its AUX area.
        const then = c % 4;
        if (!this.mmapOk || this.nEv === 0) break;
        if (then === 1 || then === 2) this.emit("mmapData", d, c >> 2, 1 + 2 * (d >> 1), c >> 3, 0, { proc });
        else if (then === 3) this.emit("mmapAux", d, c >> 2, c >> 3, d >> 2, 0, { proc });
        // ... and a third of those times back to u0 at once (later ops, the munmap, run as u0).
        if (then !== 0 && to !== "u0" && this.user.get(proc) === to && (d >> 5) % 3 === 0) {
          this.prog.push({ op: "setuid", proc, user: "u0" });
          this.user.set(proc, "u0");
        }
        break;
      }
      case "sendFd": {
        const senders = this.alive.filter((x) => this.fds.get(x)!.size > 0);
        const from = senders[a % senders.length];
        const held = [...this.fds.get(from)!].sort((x, y) => x - y);
        const e = held[b % held.length];
        const others = this.alive.filter((x) => x !== from);
        const to = others[c % others.length];
        this.prog.push({ op: "sendFd", proc: from, to, ev: this.ev(e) });
        this.fds.get(to)!.add(e);
        // Then often an mmap of it there.
        const then = d % 4;
        if (!this.mmapOk) break;
        if (then === 1 || then === 2) this.emit("mmapData", d >> 2, c >> 2, 1 + 2 * (d >> 3), a >> 2, 0, { proc: to, ev: e });
        else if (then === 3) this.emit("mmapAux", d >> 2, c >> 2, c >> 4, a >> 2, 0, { proc: to, ev: e });
        break;
      }
    }
  }

  /**
   * A par block of 2 or 3 ops from distinct live tasks, mostly in the shapes of the historic
   * races (spec/notes/races.md), each with the sequential set-up it needs emitted first:
   *   0 two munmaps of one buffer through two events from two tasks (f91072ed1b72, 2020)
   *   1 SET_OUTPUT of a per-cpu event racing the last munmap of the target's buffer (68e3c69803da, 2022)
   *   2 AUX mmap in one task racing the AUX munmap in another, the buffer shared via SET_OUTPUT (2ab9d830262c, 2024)
   *   3 mmap racing close of the same event (a thread: the same fd table)
   *   4 first mmaps of one event with different sizes (+ a third task's mmap)
   *   5 any: 2-3 tasks, each an open, close, mmap or munmap
   *   6 (where mapRangeFault runs: the model; 1 in 8 blocks) the map_range() switch armed, then two mmaps of one
   *     event from two tasks, the first of them to reach map_range() failing (77de62ad3de3, 2026)
   * Handles introduced in the block are used only after it (the block's ops are built together).
   */
  par(a: number, b: number, c: number, d: number): void {
    if (this.alive.length < 2 || this.nEv === 0) { this.emit("open", a, b, c, d, 0); return; }
    const n = this.alive.length;
    const t1 = this.alive[a % n];
    const t2 = this.alive[(a % n + 1 + (b % (n - 1))) % n];
    const shape = c % 8 < 6 && !this.unsupported.has("sendFd") && !this.unsupported.has("setOutput") ? c % 5
      : c % 8 === 7 && !this.unsupported.has("mapRangeFault") && !this.unsupported.has("sendFd") ? 6 : 5;
    const aux = this.hasAux && this.mmapOk;
    const openIn = (proc: string, x: Partial<Extract<Op, { op: "open" }>> = {}): number => {
      const e = this.nEv++;
      this.prog.push(this.withProc({ op: "open", ev: this.ev(e), pmu: aux ? "aux" : "sw", ...x } as Extract<Op, { op: "open" }>, proc));
      this.fds.get(proc)!.add(e);
      return e;
    };
    const mapIn = (proc: string, e: number, pages: number, pgoff = 0): MapInfo => {
      const h = `m${this.maps.length}`;
      const m: MapInfo = { handle: h, ev: e, pages, pgoff, owner: proc };
      this.prog.push(this.withProc({ op: "mmap", map: h, ev: this.ev(e), pages, pgoff, prot: "rw" }, proc));
      this.maps.push(m);
      if (pgoff === 0) { this.lastDataNr[e] = pages - 1; this.lastDataMap[e] = m; }
      return m;
    };
    const un = (m: MapInfo): Op => ({ op: "munmap", map: m.handle });
    const block = (ops: Op[]): void => {
      this.prog.push({ op: "par", ops: ops.length as 2 | 3 }, ...ops);
    };
    const nr = pick([1, 2, 4, 8, 1, 3], d);
    if (!this.mmapOk || this.unsupported.has("munmap")) {
      // only opens and closes: each task opens, one closes
      const e = this.evFor(t2, d);
      block([this.withProc({ op: "open", ev: this.ev(this.nEv), pmu: "sw" }, t1), this.withProc({ op: "close", ev: this.ev(e) }, t2)]);
      this.fds.get(t1)!.add(this.nEv++);
      this.fds.get(t2)!.delete(e);
      return;
    }
    switch (shape) {
      case 6: {
        // a fresh event both tasks hold, the switch armed for one map_range() (now and then two),
        // then its first mmaps from both tasks at once: mostly one size (the second a re-map)
        const e = openIn(t1, d % 4 === 3 ? {} : { pmu: "sw" });
        if (!this.fds.get(t2)!.has(e)) { this.prog.push({ op: "sendFd", proc: t1, to: t2, ev: this.ev(e) }); this.fds.get(t2)!.add(e); }
        this.prog.push({ op: "mapRangeFault", times: (d >> 2) % 4 === 3 ? 2 : 1 });
        const ops: Op[] = [t1, t2].map((t, k) => {
          const h = `m${this.maps.length}`;
          const pages = 1 + (k === 0 || (d >> 4) % 4 !== 3 ? nr : nr * 2);
          this.maps.push({ handle: h, ev: e, pages, pgoff: 0, owner: t });
          return this.withProc({ op: "mmap", map: h, ev: this.ev(e), pages, pgoff: 0, prot: "rw" }, t);
        });
        this.lastDataNr[e] = nr;
        block(b % 2 === 0 ? ops : [ops[1], ops[0]]);
        return;
      }
      case 0: {
        // e0 mapped in t1; e1 of t1 redirected into e0's buffer, sent to t2 (a thread already holds
        // it), mapped there; then both unmap at once
        const cpu = d % 2 === 0 ? {} : { cpu: 0 };
        const e0 = openIn(t1, cpu);
        const m0 = mapIn(t1, e0, 1 + nr);
        const e1 = openIn(t1, cpu);
        this.prog.push(this.withProc({ op: "setOutput", ev: this.ev(e1), target: this.ev(e0) }, t1));
        if (!this.fds.get(t2)!.has(e1)) { this.prog.push({ op: "sendFd", proc: t1, to: t2, ev: this.ev(e1) }); this.fds.get(t2)!.add(e1); }
        const m1 = mapIn(t2, e1, 1 + nr);
        block(b % 2 === 0 ? [un(m0), un(m1)] : [un(m1), un(m0)]);
        return;
      }
      case 1: {
        // per-cpu events (cross-task SET_OUTPUT needs them); the target's only mapping goes while
        // the other task redirects into it
        const e0 = openIn(t1, { cpu: 0 });
        const m0 = mapIn(t1, e0, 1 + nr);
        const e1 = openIn(t2, { cpu: 0 });
        const so: Op = this.withProc({ op: "setOutput", ev: this.ev(e1), target: this.ev(e0) }, t2);
        if (!this.fds.get(t2)!.has(e0)) { this.prog.push({ op: "sendFd", proc: t1, to: t2, ev: this.ev(e0) }); this.fds.get(t2)!.add(e0); }
        block(b % 2 === 0 ? [un(m0), so] : [so, un(m0)]);
        return;
      }
      case 2: {
        if (!aux) break;
        // e0 (t1) has a data buffer and an AUX area; e1 (t2) is redirected to e0's buffer; t1 unmaps
        // the AUX area while t2 maps it through e1
        const e0 = openIn(t1, { cpu: 0 });
        const m0 = mapIn(t1, e0, 1 + nr);
        const off = 1 + nr, size = pick([1, 2, 4, 8], d >> 2);
        this.prog.push({ op: "setAux", map: m0.handle, offsetPages: off, sizePages: size });
        this.lastAux[e0] = { off, size };
        // half the time the AUX area is not mapped yet and both tasks map it at once, through e0
        // and through e1: two rb_alloc_aux() on one buffer, each under its own event's
        // mmap_mutex before 2ab9d830262c
        const both = (a >> 3) % 2 === 1;
        const ma = both ? null : mapIn(t1, e0, size, off);
        const e1 = openIn(t2, { cpu: 0 });
        if (!this.fds.get(t2)!.has(e0)) { this.prog.push({ op: "sendFd", proc: t1, to: t2, ev: this.ev(e0) }); this.fds.get(t2)!.add(e0); }
        this.prog.push(this.withProc({ op: "setOutput", ev: this.ev(e1), target: this.ev(e0) }, t2));
        const h = `m${this.maps.length}`;
        const mm: Op = this.withProc({ op: "mmap", map: h, ev: this.ev(e1), pages: size, pgoff: off, prot: "rw" }, t2);
        this.maps.push({ handle: h, ev: e1, pages: size, pgoff: off, owner: t2 });
        let other: Op;
        if (ma !== null) other = un(ma);
        else {
          const h0 = `m${this.maps.length}`;
          other = this.withProc({ op: "mmap", map: h0, ev: this.ev(e0), pages: size, pgoff: off, prot: "rw" }, t1);
          this.maps.push({ handle: h0, ev: e0, pages: size, pgoff: off, owner: t1 });
        }
        block(b % 2 === 0 ? [other, mm] : [mm, other]);
        return;
      }
      case 3: {
        // an event both tasks hold an fd for: t1 maps it while t2 closes its fd (the same fd
        // when t2 is a thread of t1's process)
        const held = [...this.fds.get(t1)!].filter((e) => this.fds.get(t2)!.has(e));
        let e: number;
        if (held.length) e = held[d % held.length];
        else { e = openIn(t1); if (!this.fds.get(t2)!.has(e)) { this.prog.push({ op: "sendFd", proc: t1, to: t2, ev: this.ev(e) }); this.fds.get(t2)!.add(e); } }
        const pages = this.lastDataNr[e] !== undefined && d % 2 === 0 ? this.lastDataNr[e]! + 1 : 1 + nr;
        const h = `m${this.maps.length}`;
        const mm: Op = this.withProc({ op: "mmap", map: h, ev: this.ev(e), pages, pgoff: 0, prot: "rw" }, t1);
        const cl: Op = this.withProc({ op: "close", ev: this.ev(e) }, t2);
        block(b % 2 === 0 ? [mm, cl] : [cl, mm]);
        this.maps.push({ handle: h, ev: e, pages, pgoff: 0, owner: t1 });
        this.fds.get(t2)!.delete(e);
        return;
      }
      case 4: {
        // first mmaps of one fresh event from 2-3 tasks, sizes differing
        const e = openIn(t1);
        const tasks = [t1, t2];
        if (n > 2 && d % 3 !== 2) tasks.push(this.alive.find((x) => x !== t1 && x !== t2)!);
        const ops: Op[] = [];
        tasks.forEach((t, k) => {
          if (!this.fds.get(t)!.has(e)) { this.prog.push({ op: "sendFd", proc: t1, to: t, ev: this.ev(e) }); this.fds.get(t)!.add(e); }
        });
        tasks.forEach((t, k) => {
          const h = `m${this.maps.length}`;
          const pages = 1 + (k === 0 || (d >> 2) % 2 === 0 ? nr : nr * 2);
          ops.push(this.withProc({ op: "mmap", map: h, ev: this.ev(e), pages, pgoff: 0, prot: "rw" }, t));
          this.maps.push({ handle: h, ev: e, pages, pgoff: 0, owner: t });
        });
        this.lastDataNr[e] = nr;
        block(ops);
        return;
      }
    }
    // 5: any two (or three) tasks, each an open, close, mmap of a held event, or munmap of its map
    const tasks = [t1, t2];
    if (n > 2 && d % 3 !== 2) tasks.push(this.alive.find((x) => x !== t1 && x !== t2)!);
    const ops: Op[] = [];
    const after: Array<() => void> = [];
    tasks.forEach((t, k) => {
      const r = (d >> (2 * k)) % 4;
      const own = this.liveMaps().filter((m) => m.owner === t);
      const held = [...this.fds.get(t)!].sort((x, y) => x - y);
      if (r === 0 && own.length) { ops.push(un(own[(a >> k) % own.length])); return; }
      if (r === 1 && held.length) {
        const e = held[(b >> k) % held.length];
        ops.push(this.withProc({ op: "close", ev: this.ev(e) }, t));
        after.push(() => this.fds.get(t)!.delete(e));
        return;
      }
      if (r === 2 && held.length) {
        const e = held[(c >> k) % held.length];
        const h = `m${this.maps.length}`;
        const pages = this.lastDataNr[e] !== undefined ? this.lastDataNr[e]! + 1 : 1 + nr;
        ops.push(this.withProc({ op: "mmap", map: h, ev: this.ev(e), pages, pgoff: 0, prot: "rw" }, t));
        this.maps.push({ handle: h, ev: e, pages, pgoff: 0, owner: t });
        return;
      }
      const e = this.nEv++;
      ops.push(this.withProc({ op: "open", ev: this.ev(e), pmu: aux ? "aux" : "sw" }, t));
      after.push(() => this.fds.get(t)!.add(e));
    });
    block(ops);
    for (const f of after) f();
  }

  run(genes: readonly Gene[]): Program {
    for (const g of genes) {
      const { kinds, weights, total } = this.tables[this.alive.length > 1 ? 1 : 0];
      let sel = g[0] % total;
      let kind: GeneKind = kinds[0];
      for (let k = 0; k < kinds.length; k++) {
        if (sel < weights[k]) { kind = kinds[k]; break; }
        sel -= weights[k];
      }
      const [, a, b, c, d, p] = g;
      // Process genes that cannot apply fall back: exit/sendFd without a child fork one when they
      // can; a fork past MAX_PROCS exits a child when it can; else an open.
      if ((kind === "exit" || kind === "sendFd") && !this.kids()) kind = this.canFork() ? "fork" : "open";
      if (kind === "sendFd" && !this.alive.some((x) => this.fds.get(x)!.size > 0)) kind = "open";
      if (kind === "thread" && !(this.canFork() && this.racesOn)) kind = "open";
      if (kind === "fork" && !this.canFork()) kind = this.kids() && this.procsOn && !this.unsupported.has("exit") ? "exit" : "open";
      // Ops that need an event or a map fall back to creating one.
      if (this.nEv === 0 && kind !== "rlimit" && kind !== "sysctlMlock" && kind !== "auxFault" && kind !== "fork" && kind !== "exit" && kind !== "setuid" && kind !== "thread") kind = "open";
      if (this.liveMaps().length === 0 && (kind === "munmap" || kind === "mremap" || kind === "mprotect" || kind === "mapFixedAnon" ||
        kind === "touch" || kind === "readUserPage" || kind === "setAux")) kind = "mmapData";

      // An AUX mapping needs a data mapping first: mostly make that instead.
      if (kind === "mmapAux" && a % 8 < 6 && !this.maps.some((m) => m.pgoff === 0)) kind = "mmapData";

      this.emit(kind, a, b, c, d, p);
    }
    return this.prog;
  }
}


const geneArb: fc.Arbitrary<Gene> = fc.tuple(
  fc.nat({ max: 9999 }), fc.nat({ max: 4095 }), fc.nat({ max: 4095 }), fc.nat({ max: 4095 }), fc.nat({ max: 4095 }), fc.nat({ max: 4095 }),
);

/** Arbitrary of gene lists (what the fuzzer shrinks). */
export function genesArb(opts: GenOptions): fc.Arbitrary<Gene[]> {
  return fc.array(geneArb, { minLength: opts.minOps ?? 1, maxLength: opts.maxOps ?? 20 });
}

/** Arbitrary of valid programs; shrinking keeps them valid. */
export function programArb(opts: GenOptions): fc.Arbitrary<Program> {
  return genesArb(opts).map((genes) => decode(genes, opts));
}

/**
 * A fast deterministic stream of gene lists for bulk fuzzing (no fast-check overhead):
 * program i of seed s is always the same, so a divergence replays from (seed, index).
 */
export function genesAt(seed: number, index: number, opts: GenOptions): Gene[] {
  let x = (Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(index + 1, 0xc2b2ae35)) >>> 0;
  const next = () => {
    // xorshift32
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    return x;
  };
  for (let i = 0; i < 4; i++) next();
  const min = opts.minOps ?? 1;
  const max = opts.maxOps ?? 20;
  const n = min + (next() % (max - min + 1));
  const genes: Gene[] = [];
  for (let i = 0; i < n; i++) genes.push([next() % 10000, next() % 4096, next() % 4096, next() % 4096, next() % 4096, next() % 4096]);
  return genes;
}
