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
 */
import fc from "fast-check";
import type { Config, Op, Program, Prot } from "../spec/program.ts";

export interface GenOptions {
  config: Config;
  /** Longest program (default 20 ops). */
  maxOps?: number;
  /** Shortest program (default 1). */
  minOps?: number;
  /** Op kinds the backend cannot run; never generated. */
  unsupported?: ReadonlySet<string>;
}

/** One gene: [kind selector, a, b, c, d]. */
export type Gene = readonly [number, number, number, number, number];

type GeneKind =
  | "open" | "close" | "mmapData" | "mmapAux" | "setAux" | "munmap" | "mremap" | "mprotect"
  | "mapFixedAnon" | "setOutput" | "rlimit" | "sysctlMlock" | "auxFault" | "touch" | "readUserPage";

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

interface MapInfo { handle: string; ev: number; pages: number; pgoff: number }

/** Decode genes into a valid program. Pure and deterministic. */
export function decode(genes: readonly Gene[], opts: GenOptions): Program {
  const { config } = opts;
  const unsupported = opts.unsupported ?? new Set<string>();
  const table = WEIGHTS.filter(([, , opKind]) => !unsupported.has(opKind));
  const total = table.reduce((s, [, w]) => s + w, 0);
  const hasAux = config.pmus.aux !== null;
  const prog: Op[] = [];
  let nEv = 0;
  const maps: MapInfo[] = [];
  /** per event: nr of its last data mapping, and the aux offset/size last written through it */
  const lastDataNr: number[] = [];
  const lastDataMap: string[] = [];
  const lastAux: Array<{ off: number; size: number } | undefined> = [];
  const ev = (i: number) => `e${i}`;

  for (const g of genes) {
    let sel = g[0] % total;
    let kind: GeneKind = table[0][0];
    for (const [k, w] of table) {
      if (sel < w) { kind = k; break; }
      sel -= w;
    }
    const [, a, b, c, d] = g;
    // Ops that need an event or a map fall back to creating one.
    if (nEv === 0 && kind !== "rlimit" && kind !== "sysctlMlock" && kind !== "auxFault") kind = "open";
    if (maps.length === 0 && (kind === "munmap" || kind === "mremap" || kind === "mprotect" || kind === "mapFixedAnon" ||
      kind === "touch" || kind === "readUserPage" || kind === "setAux")) kind = "mmapData";

    // An AUX mapping needs a data mapping first: mostly make that instead.
    if (kind === "mmapAux" && a % 8 < 6 && !maps.some((m) => m.pgoff === 0)) kind = "mmapData";

    switch (kind) {
      case "open": {
        const op: Extract<Op, { op: "open" }> = { op: "open", ev: ev(nEv), pmu: hasAux && a % 5 !== 1 ? "aux" : "sw" };
        if (b % 7 === 3) op.cpu = (b >> 3) % (config.cpus + 1); // config.cpus itself is an offline/invalid CPU
        if (c % 11 === 5) op.inherit = true;
        if (nEv > 0 && d % 4 === 1) op.outputTo = ev((d >> 2) % nEv);
        prog.push(op);
        nEv++;
        break;
      }
      case "close":
        prog.push({ op: "close", ev: ev(a % nEv) });
        break;
      case "mmapData": {
        const e = a % nEv;
        // Half the time reuse the size the event was last mapped with (a second map of the same buffer).
        const nr = lastDataNr[e] !== undefined && c % 2 === 1 ? lastDataNr[e]! : pick(DATA_NR, b);
        const h = `m${maps.length}`;
        const op: Extract<Op, { op: "mmap" }> = { op: "mmap", map: h, ev: ev(e), pages: 1 + nr, pgoff: 0, prot: pick(DATA_PROTS, d) };
        if (c % 13 === 7) op.shared = false;
        prog.push(op);
        maps.push({ handle: h, ev: e, pages: 1 + nr, pgoff: 0 });
        lastDataNr[e] = nr;
        lastDataMap[e] = h;
        break;
      }
      case "setAux": {
        // Prefer a data mapping (pgoff 0): that is where the user page is; now and then page 0 of another.
        const data = maps.filter((m) => m.pgoff === 0);
        const m = data.length && d % 8 !== 7 ? data[a % data.length] : maps[a % maps.length];
        const off = Math.max(0, m.pages + pick(AUX_OFF_DELTA, b));
        const size = pick(AUX_NR, c);
        prog.push({ op: "setAux", map: m.handle, offsetPages: off, sizePages: size });
        lastAux[m.ev] = { off, size };
        break;
      }
      case "mmapAux": {
        // Mostly an event whose user page already says where AUX goes; else one with a data
        // mapping, writing aux_offset/aux_size first (one gene, two ops); else any event.
        const withAux: number[] = [];
        const withData: number[] = [];
        for (let i = 0; i < nEv; i++) {
          if (lastAux[i]) withAux.push(i);
          else if (lastDataMap[i] !== undefined) withData.push(i);
        }
        const how = a % 8;
        let e: number;
        if (withAux.length && how < 4) e = withAux[(a >> 3) % withAux.length];
        else if (withData.length && how < 7) {
          e = withData[(a >> 3) % withData.length];
          const off = 1 + lastDataNr[e]!;
          const sz = pick(AUX_NR, c);
          prog.push({ op: "setAux", map: lastDataMap[e], offsetPages: off, sizePages: sz });
          lastAux[e] = { off, size: sz };
        } else e = (a >> 3) % nEv;
        const want = lastAux[e] ?? { off: 1 + (lastDataNr[e] ?? 1), size: pick(AUX_NR, c) };
        // b: 0..5 use the user page's values; then size or offset mismatches.
        const mode = b % 9;
        const size = mode === 6 ? want.size + 1 : mode === 7 ? Math.max(1, want.size * 2) : want.size;
        const off = mode === 8 ? want.off + 1 : mode === 5 ? Math.max(1, want.off - 1) : want.off;
        const h = `m${maps.length}`;
        const pages = Math.min(size, 2048);
        prog.push({ op: "mmap", map: h, ev: ev(e), pages, pgoff: off, prot: pick(PROTS, d) });
        maps.push({ handle: h, ev: e, pages, pgoff: off });
        break;
      }
      case "munmap": {
        const m = maps[a % maps.length];
        const part = b % 4; // 0 whole, 1 head, 2 tail, 3 middle
        if (part === 0 || m.pages < 2) prog.push({ op: "munmap", map: m.handle });
        else {
          const n = 1 + (c % (m.pages - 1));
          const offset = part === 1 ? 0 : part === 2 ? m.pages - n : Math.min(1 + (d % (m.pages - 1)), m.pages - 1);
          prog.push({ op: "munmap", map: m.handle, offset, pages: Math.min(n, m.pages - offset) });
        }
        break;
      }
      case "mremap": {
        const m = maps[a % maps.length];
        const v = b % 5; // 0 move whole to fresh, 1 shrink, 2 grow, 3 move part, 4 same size in place
        if (v === 0) prog.push({ op: "mremap", map: m.handle, oldPages: m.pages, newPages: m.pages, mayMove: true, toFresh: true });
        else if (v === 1) prog.push({ op: "mremap", map: m.handle, oldPages: m.pages, newPages: Math.max(1, m.pages - 1 - (c % Math.max(1, m.pages))) });
        else if (v === 2) prog.push({ op: "mremap", map: m.handle, oldPages: m.pages, newPages: m.pages + 1 + (c % 4), mayMove: d % 2 === 1 });
        else if (v === 3 && m.pages > 1) {
          const offset = c % m.pages;
          prog.push({ op: "mremap", map: m.handle, offset, oldPages: m.pages - offset, newPages: m.pages - offset, mayMove: true, toFresh: true });
        } else prog.push({ op: "mremap", map: m.handle, oldPages: m.pages, newPages: m.pages });
        break;
      }
      case "mprotect": {
        const m = maps[a % maps.length];
        const prot = pick(PROTS, c);
        if (b % 2 === 0 || m.pages < 2) prog.push({ op: "mprotect", map: m.handle, prot });
        else prog.push({ op: "mprotect", map: m.handle, offset: 1 + (d % (m.pages - 1)), pages: 1, prot });
        break;
      }
      case "mapFixedAnon": {
        const m = maps[a % maps.length];
        prog.push({ op: "mapFixedAnon", map: m.handle, offset: b % Math.max(1, m.pages), pages: 1 + (c % 2) });
        break;
      }
      case "setOutput": {
        const e = a % nEv;
        const t = b % (nEv + 1);
        prog.push({ op: "setOutput", ev: ev(e), target: t === nEv ? null : ev(t) });
        break;
      }
      case "rlimit":
        prog.push({ op: "rlimit", memlockPages: pick(RLIMITS, a) });
        break;
      case "sysctlMlock":
        prog.push({ op: "sysctlMlock", kb: pick(MLOCK_KB, a) });
        break;
      case "auxFault":
        prog.push({ op: "auxFault", fail: a % 2 === 0 });
        break;
      case "touch": {
        const m = maps[a % maps.length];
        prog.push({ op: "touch", map: m.handle, page: b % (m.pages + 1), write: c % 2 === 1 });
        break;
      }
      case "readUserPage":
        prog.push({ op: "readUserPage", map: maps[a % maps.length].handle });
        break;
    }
  }
  return prog;
}

const geneArb: fc.Arbitrary<Gene> = fc.tuple(
  fc.nat({ max: 9999 }), fc.nat({ max: 4095 }), fc.nat({ max: 4095 }), fc.nat({ max: 4095 }), fc.nat({ max: 4095 }),
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
  for (let i = 0; i < n; i++) genes.push([next() % 10000, next() % 4096, next() % 4096, next() % 4096, next() % 4096]);
  return genes;
}
