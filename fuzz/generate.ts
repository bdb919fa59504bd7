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
}

/** Whether decode may generate processes and users under these options. */
export function processesEnabled(opts: GenOptions): boolean {
  return opts.processes !== false && !(opts.unsupported?.has("fork") ?? false);
}

/** One gene: [kind selector, a, b, c, d, process selector]. */
export type Gene = readonly [number, number, number, number, number, number];
/** Fields per gene. */
export const GENE_FIELDS = 6;

type GeneKind =
  | "open" | "close" | "mmapData" | "mmapAux" | "setAux" | "munmap" | "mremap" | "mprotect"
  | "mapFixedAnon" | "setOutput" | "rlimit" | "sysctlMlock" | "auxFault" | "touch" | "readUserPage"
  | "fork" | "exit" | "setuid" | "sendFd";

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

/** Decode genes into a valid program. Pure and deterministic. */
export function decode(genes: readonly Gene[], opts: GenOptions): Program {
  const { config } = opts;
  const unsupported = opts.unsupported ?? new Set<string>();
  const table = WEIGHTS.filter(([, , opKind]) => !unsupported.has(opKind));
  const procsOn = processesEnabled(opts);
  const procTable = (kids: boolean): Array<readonly [GeneKind, number]> => procsOn
    ? PROC_WEIGHTS.filter(([k]) => !unsupported.has(k)).map(([k, alone, withKids]): readonly [GeneKind, number] => {
      const w = config.capSetuid === false ? NO_CAP_SETUID_WEIGHTS.get(k) ?? [alone, withKids] : [alone, withKids];
      return [k, kids ? w[1] : w[0]];
    }).filter(([, w]) => w > 0)
    : [];
  const tables = [false, true].map((kids) => {
    const t: Array<readonly [GeneKind, number]> = [...table.map(([k, w]): readonly [GeneKind, number] => [k, w]), ...procTable(kids)];
    return { t, total: t.reduce((s, [, w]) => s + w, 0) };
  });
  const hasAux = config.pmus.aux !== null;
  const prog: Op[] = [];
  let nEv = 0;
  const maps: MapInfo[] = [];
  /** per event: nr of its last data mapping, and the aux offset/size last written through it */
  const lastDataNr: number[] = [];
  const lastDataMap: MapInfo[] = [];
  const lastAux: Array<{ off: number; size: number } | undefined> = [];
  const ev = (i: number) => `e${i}`;

  // Processes: alive ones (p0 first, then in fork order), how many forks so far, each one's fds
  // (event indices) and user.
  const alive: string[] = ["p0"];
  let forks = 0;
  const fds = new Map<string, Set<number>>([["p0", new Set()]]);
  const user = new Map<string, string>([["p0", "u0"]]);
  const isAlive = (p: string) => alive.includes(p);
  const canFork = () => procsOn && forks < MAX_PROCS - 1 && !unsupported.has("fork");
  const kids = () => alive.length > 1;
  const mmapOk = !unsupported.has("mmap");
  /** The process a per-process op runs in: mostly p0, 3 in 8 a live child. */
  const procFor = (p: number): string => (alive.length === 1 || p % 8 < 5 ? "p0" : alive[1 + ((p >> 3) % (alive.length - 1))]);
  const withProc = <T extends Op>(op: T, proc: string): T => (proc === "p0" ? op : { ...op, proc });
  /** Maps an op may address by default: those whose owner lives (all of them in one process). */
  let exits = 0;
  const liveMaps = () => (exits === 0 ? maps : maps.filter((m) => isAlive(m.owner)));
  /** Now and then (1 in 32) an explicit other process on a map handle: that mm has nothing there
   *  (or a fork child's anonymous copy). */
  const mapOpProc = <T extends Op>(op: T, m: MapInfo, p: number): T => {
    if (alive.length < 2 || p % 32 !== 31) return op;
    const others = alive.filter((x) => x !== m.owner);
    return { ...op, proc: others[(p >> 5) % others.length] };
  };
  /** An event for an op in `proc`: p0 any (as single-process programs always did); a child one it
   *  holds an fd for, preferring `prefer` (e.g. mapped ones) when asked. */
  const evFor = (proc: string, a: number, prefer?: (e: number) => boolean, preferOdds = 0): number => {
    if (proc === "p0") return a % nEv;
    const held = [...fds.get(proc)!].sort((x, y) => x - y);
    if (held.length === 0) return a % nEv;
    if (prefer) {
      const good = held.filter(prefer);
      if (good.length && (a >> 4) % 4 < preferOdds) return good[a % good.length];
    }
    return held[a % held.length];
  };

  const emit = (kind: GeneKind, a: number, b: number, c: number, d: number, p: number, force?: { proc: string; ev?: number }): void => {
    switch (kind) {
      case "open": {
        const proc = force?.proc ?? procFor(p);
        const op: Extract<Op, { op: "open" }> = { op: "open", ev: ev(nEv), pmu: hasAux && a % 5 !== 1 ? "aux" : "sw" };
        if (b % 7 === 3) op.cpu = (b >> 3) % (config.cpus + 1); // config.cpus itself is an offline/invalid CPU
        if (c % 11 === 5) op.inherit = true;
        if (nEv > 0 && d % 4 === 1) op.outputTo = ev((d >> 2) % nEv);
        prog.push(withProc(op, proc));
        fds.get(proc)!.add(nEv);
        nEv++;
        break;
      }
      case "close": {
        const proc = force?.proc ?? procFor(p);
        const e = evFor(proc, a);
        prog.push(withProc({ op: "close", ev: ev(e) }, proc));
        fds.get(proc)!.delete(e);
        break;
      }
      case "mmapData": {
        const proc = force?.proc ?? procFor(p);
        // A child mostly re-maps a buffer its parent mapped (same size: the re-map path).
        const e = force?.ev ?? evFor(proc, a, (x) => lastDataNr[x] !== undefined, 3);
        // Half the time (a child: 3 in 4) reuse the size the event was last mapped with (a second map of the same buffer).
        const reuse = c % 2 === 1 || (proc !== "p0" && (c >> 4) % 2 === 1);
        const nr = lastDataNr[e] !== undefined && reuse ? lastDataNr[e]! : pick(DATA_NR, b);
        const h = `m${maps.length}`;
        const op: Extract<Op, { op: "mmap" }> = { op: "mmap", map: h, ev: ev(e), pages: 1 + nr, pgoff: 0, prot: pick(DATA_PROTS, d) };
        if (c % 13 === 7) op.shared = false;
        prog.push(withProc(op, proc));
        const m: MapInfo = { handle: h, ev: e, pages: 1 + nr, pgoff: 0, owner: proc };
        maps.push(m);
        lastDataNr[e] = nr;
        lastDataMap[e] = m;
        break;
      }
      case "setAux": {
        // Prefer a data mapping (pgoff 0): that is where the user page is; now and then page 0 of another.
        const live = liveMaps();
        const data = live.filter((m) => m.pgoff === 0);
        const m = data.length && d % 8 !== 7 ? data[a % data.length] : live[a % live.length];
        const off = Math.max(0, m.pages + pick(AUX_OFF_DELTA, b));
        const size = pick(AUX_NR, c);
        prog.push(mapOpProc({ op: "setAux", map: m.handle, offsetPages: off, sizePages: size }, m, p));
        lastAux[m.ev] = { off, size };
        break;
      }
      case "mmapAux": {
        // Mostly an event whose user page already says where AUX goes; else one with a data
        // mapping, writing aux_offset/aux_size first (one gene, two ops); else any event.
        // In a child: the events it holds; the setAux runs where the data mapping is (its owner).
        const proc = force?.proc ?? procFor(p);
        const held = proc === "p0" ? null : fds.get(proc)!;
        const withAux: number[] = [];
        const withData: number[] = [];
        for (let i = 0; i < nEv; i++) {
          if (force?.ev !== undefined && i !== force.ev) continue;
          if (held && held.size && !held.has(i)) continue;
          if (lastAux[i]) withAux.push(i);
          else if (lastDataMap[i] !== undefined && isAlive(lastDataMap[i].owner)) withData.push(i);
        }
        const how = a % 8;
        let e: number;
        if (withAux.length && how < 4) e = withAux[(a >> 3) % withAux.length];
        else if (withData.length && how < 7) {
          e = withData[(a >> 3) % withData.length];
          const off = 1 + lastDataNr[e]!;
          const sz = pick(AUX_NR, c);
          prog.push({ op: "setAux", map: lastDataMap[e].handle, offsetPages: off, sizePages: sz });
          lastAux[e] = { off, size: sz };
        } else e = force?.ev ?? evFor(proc, a >> 3);
        const want = lastAux[e] ?? { off: 1 + (lastDataNr[e] ?? 1), size: pick(AUX_NR, c) };
        // b: 0..5 use the user page's values; then size or offset mismatches.
        const mode = b % 9;
        const size = mode === 6 ? want.size + 1 : mode === 7 ? Math.max(1, want.size * 2) : want.size;
        const off = mode === 8 ? want.off + 1 : mode === 5 ? Math.max(1, want.off - 1) : want.off;
        const h = `m${maps.length}`;
        const pages = Math.min(size, 2048);
        prog.push(withProc({ op: "mmap", map: h, ev: ev(e), pages, pgoff: off, prot: pick(PROTS, d) }, proc));
        maps.push({ handle: h, ev: e, pages, pgoff: off, owner: proc });
        break;
      }
      case "munmap": {
        const live = liveMaps();
        const m = live[a % live.length];
        const part = b % 4; // 0 whole, 1 head, 2 tail, 3 middle
        if (part === 0 || m.pages < 2) prog.push(mapOpProc({ op: "munmap", map: m.handle }, m, p));
        else {
          const n = 1 + (c % (m.pages - 1));
          const offset = part === 1 ? 0 : part === 2 ? m.pages - n : Math.min(1 + (d % (m.pages - 1)), m.pages - 1);
          prog.push(mapOpProc({ op: "munmap", map: m.handle, offset, pages: Math.min(n, m.pages - offset) }, m, p));
        }
        break;
      }
      case "mremap": {
        const live = liveMaps();
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
        prog.push(mapOpProc(op, m, p));
        break;
      }
      case "mprotect": {
        const live = liveMaps();
        const m = live[a % live.length];
        const prot = pick(PROTS, c);
        if (b % 2 === 0 || m.pages < 2) prog.push(mapOpProc({ op: "mprotect", map: m.handle, prot }, m, p));
        else prog.push(mapOpProc({ op: "mprotect", map: m.handle, offset: 1 + (d % (m.pages - 1)), pages: 1, prot }, m, p));
        break;
      }
      case "mapFixedAnon": {
        const live = liveMaps();
        const m = live[a % live.length];
        prog.push(mapOpProc({ op: "mapFixedAnon", map: m.handle, offset: b % Math.max(1, m.pages), pages: 1 + (c % 2) }, m, p));
        break;
      }
      case "setOutput": {
        const proc = force?.proc ?? procFor(p);
        const e = evFor(proc, a);
        const t = b % (nEv + 1);
        prog.push(withProc({ op: "setOutput", ev: ev(e), target: t === nEv ? null : ev(t) }, proc));
        break;
      }
      case "rlimit":
        prog.push(withProc({ op: "rlimit", memlockPages: pick(RLIMITS, a) }, force?.proc ?? procFor(p)));
        break;
      case "sysctlMlock":
        prog.push({ op: "sysctlMlock", kb: pick(MLOCK_KB, a) });
        break;
      case "auxFault":
        prog.push({ op: "auxFault", fail: a % 2 === 0 });
        break;
      case "touch": {
        const live = liveMaps();
        const m = live[a % live.length];
        prog.push(mapOpProc({ op: "touch", map: m.handle, page: b % (m.pages + 1), write: c % 2 === 1 }, m, p));
        break;
      }
      case "readUserPage": {
        const live = liveMaps();
        const m = live[a % live.length];
        prog.push(mapOpProc({ op: "readUserPage", map: m.handle }, m, p));
        break;
      }
      case "fork": {
        // From p0, or (half the time while a child lives) from a child: a grandchild.
        const from = alive.length === 1 || a % 2 === 0 ? "p0" : alive[1 + ((a >> 1) % (alive.length - 1))];
        forks++;
        const child = `p${forks}`;
        prog.push({ op: "fork", proc: child, from });
        alive.push(child);
        fds.set(child, new Set(fds.get(from)!));
        user.set(child, user.get(from)!);
        // Then often an mmap in the child of a buffer it inherited the fd of: the data buffer
        // again (the re-map path, charged to the child's user and mm), or its AUX area.
        const then = b % 4;
        if (!mmapOk || nEv === 0) break;
        if (then === 1 || then === 2) { emit("mmapData", c, d, 1 + 2 * (c >> 1), b >> 2, 0, { proc: child }); }
        else if (then === 3) emit("mmapAux", c, d >> 3, d, b >> 2, 0, { proc: child });
        break;
      }
      case "exit": {
        const children = alive.slice(1);
        const proc = children[a % children.length];
        prog.push({ op: "exit", proc });
        alive.splice(alive.indexOf(proc), 1);
        exits++;
        break;
      }
      case "setuid": {
        // A third of the time (when one has switched) a process switches back to u0; else any
        // live process switches to another user.
        const switched = alive.filter((x) => user.get(x) !== "u0");
        const back = switched.length > 0 && a % 3 === 0;
        const proc = back ? switched[(a >> 2) % switched.length] : alive[a % alive.length];
        const to = back ? "u0" : pick(SETUID_USERS, b >> 2);
        prog.push({ op: "setuid", proc, user: to });
        if (config.capSetuid !== false) user.set(proc, to);
        // Then often a mapping under the new user: a re-map of a mapped buffer, or its AUX area.
        const then = c % 4;
        if (!mmapOk || nEv === 0) break;
        if (then === 1 || then === 2) emit("mmapData", d, c >> 2, 1 + 2 * (d >> 1), c >> 3, 0, { proc });
        else if (then === 3) emit("mmapAux", d, c >> 2, c >> 3, d >> 2, 0, { proc });
        // ... and a third of those times back to u0 at once (later ops, the munmap, run as u0).
        if (then !== 0 && to !== "u0" && user.get(proc) === to && (d >> 5) % 3 === 0) {
          prog.push({ op: "setuid", proc, user: "u0" });
          user.set(proc, "u0");
        }
        break;
      }
      case "sendFd": {
        const senders = alive.filter((x) => fds.get(x)!.size > 0);
        const from = senders[a % senders.length];
        const held = [...fds.get(from)!].sort((x, y) => x - y);
        const e = held[b % held.length];
        const others = alive.filter((x) => x !== from);
        const to = others[c % others.length];
        prog.push({ op: "sendFd", proc: from, to, ev: ev(e) });
        fds.get(to)!.add(e);
        // Then often an mmap of it there.
        const then = d % 4;
        if (!mmapOk) break;
        if (then === 1 || then === 2) emit("mmapData", d >> 2, c >> 2, 1 + 2 * (d >> 3), a >> 2, 0, { proc: to, ev: e });
        else if (then === 3) emit("mmapAux", d >> 2, c >> 2, c >> 4, a >> 2, 0, { proc: to, ev: e });
        break;
      }
    }
  };

  for (const g of genes) {
    const { t, total } = tables[kids() ? 1 : 0];
    let sel = g[0] % total;
    let kind: GeneKind = t[0][0];
    for (const [k, w] of t) {
      if (sel < w) { kind = k; break; }
      sel -= w;
    }
    const [, a, b, c, d, p] = g;
    // Process genes that cannot apply fall back: exit/sendFd without a child fork one when they
    // can; a fork past MAX_PROCS exits a child when it can; else an open.
    if ((kind === "exit" || kind === "sendFd") && !kids()) kind = canFork() ? "fork" : "open";
    if (kind === "sendFd" && !alive.some((x) => fds.get(x)!.size > 0)) kind = "open";
    if (kind === "fork" && !canFork()) kind = kids() && procsOn && !unsupported.has("exit") ? "exit" : "open";
    // Ops that need an event or a map fall back to creating one.
    if (nEv === 0 && kind !== "rlimit" && kind !== "sysctlMlock" && kind !== "auxFault" && kind !== "fork" && kind !== "exit" && kind !== "setuid") kind = "open";
    if (liveMaps().length === 0 && (kind === "munmap" || kind === "mremap" || kind === "mprotect" || kind === "mapFixedAnon" ||
      kind === "touch" || kind === "readUserPage" || kind === "setAux")) kind = "mmapData";

    // An AUX mapping needs a data mapping first: mostly make that instead.
    if (kind === "mmapAux" && a % 8 < 6 && !maps.some((m) => m.pgoff === 0)) kind = "mmapData";

    emit(kind, a, b, c, d, p);
  }
  return prog;
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
