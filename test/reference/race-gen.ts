/**
 * A small random generator of par programs for the explorer's tests: a set-up of events,
 * processes (fork), a thread, data and AUX mappings, SET_OUTPUT redirections and passed fds,
 * then one or two par blocks of 2-3 racy ops (munmap, mmap, setOutput, close, exit, open with
 * outputTo, sendFd) in distinct tasks, then a few ops after. Only programs programProblems()
 * accepts are returned.
 */
import { programProblems, type Op, type Program } from "../../spec/program.ts";

/** mulberry32 */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface G { r: () => number; evs: string[]; maps: { m: string; proc: string; aux: boolean; ev: string }[]; procs: string[]; ne: number; nm: number }

const pick = <T>(g: G, a: readonly T[]): T => a[Math.floor(g.r() * a.length)];

function setupOp(g: G, aux: boolean): Op[] {
  const c = g.r();
  if (c < 0.08 || g.evs.length === 0) {
    const ev = `e${g.ne++}`;
    g.evs.push(ev);
    const op: Extract<Op, { op: "open" }> = { op: "open", ev, pmu: aux && g.r() < 0.5 ? "aux" : "sw" };
    if (g.evs.length > 1 && g.r() < 0.3) op.outputTo = pick(g, g.evs.slice(0, -1));
    return [op];
  }
  if (c < 0.6) {
    const ev = pick(g, g.evs);
    const m = `m${g.nm++}`;
    const proc = pick(g, g.procs);
    g.maps.push({ m, proc, aux: false, ev });
    const dataPages = pick(g, [1, 2]);
    const ops: Op[] = [{ op: "mmap", proc, map: m, ev, pages: dataPages + 1, pgoff: 0, prot: "rw" }];
    if (aux && g.r() < 0.5) {
      const a = `m${g.nm++}`;
      const auxPages = pick(g, [1, 2]);
      ops.push({ op: "setAux", proc, map: m, offsetPages: dataPages + 1, sizePages: auxPages });
      ops.push({ op: "mmap", proc, map: a, ev, pages: auxPages, pgoff: dataPages + 1, prot: pick(g, ["r", "rw"] as const) });
      g.maps.push({ m: a, proc, aux: true, ev });
    }
    return ops;
  }
  if (c < 0.72 && g.evs.length > 1) {
    return [{ op: "setOutput", ev: pick(g, g.evs), target: pick(g, g.evs) }];
  }
  if (c < 0.75 && g.procs.length < 3) {
    const proc = `p${g.procs.length}`;
    g.procs.push(proc);
    return [{ op: g.r() < 0.8 ? "fork" : "thread", proc, from: "p0" }];
  }
  if (c < 0.9 && g.procs.length > 1 && g.evs.length) {
    return [{ op: "sendFd", proc: pick(g, g.procs), to: pick(g, g.procs), ev: pick(g, g.evs) }];
  }
  if (aux && c < 0.95) return [{ op: "auxFault", fail: g.r() < 0.5 }];
  // the map_range() fault switch (6.18, 7.2 consume it; in a block, the first map_range() to run)
  if (c < 0.97) return [{ op: "mapRangeFault", times: pick(g, [1, 1, 2]) }];
  return [];
}

/** An event, mostly one that already has a mapping (a buffer the block can race on). */
function hotEv(g: G): string {
  return g.maps.length && g.r() < 0.75 ? pick(g, g.maps).ev : pick(g, g.evs);
}

function racyOp(g: G, proc: string, aux: boolean): Op | null {
  const c = g.r();
  const mine = g.maps.filter((x) => x.proc === proc);
  if (c < 0.3 && mine.length) return { op: "munmap", map: pick(g, mine).m, proc };
  if (c < 0.5 && g.evs.length) {
    const m = `m${g.nm++}`;
    const ev = hotEv(g);
    g.maps.push({ m, proc, aux: false, ev });
    if (aux && g.r() < 0.4) return { op: "mmap", proc, map: m, ev, pages: pick(g, [1, 2]), pgoff: pick(g, [2, 3]), prot: "rw" };
    return { op: "mmap", proc, map: m, ev, pages: pick(g, [2, 3]), pgoff: 0, prot: "rw" };
  }
  if (c < 0.65 && g.evs.length) return { op: "setOutput", proc, ev: pick(g, g.evs), target: g.r() < 0.15 ? null : hotEv(g) };
  if (c < 0.78 && g.evs.length) return { op: "close", proc, ev: hotEv(g) };
  if (c < 0.86 && proc !== "p0") return { op: "exit", proc };
  if (c < 0.94 && g.evs.length) {
    const ev = `e${g.ne++}`;
    return { op: "open", proc, ev, pmu: "sw", outputTo: hotEv(g) };
  }
  if (g.procs.length > 1 && g.evs.length) return { op: "sendFd", proc, to: pick(g, g.procs.filter((p) => p !== proc)), ev: pick(g, g.evs) };
  return null;
}

/** One random par program (or null when the draw is invalid). Events are opened first (some
 *  redirected with outputTo), then the processes forked (they inherit every fd), so the
 *  blocks' ops mostly reach shared buffers. */
export function genParProgram(seed: number, aux = true): Program | null {
  const g: G = { r: rng(seed), evs: [], maps: [], procs: ["p0"], ne: 0, nm: 0 };
  const p: Op[] = [];
  const nEv = 1 + Math.floor(g.r() * 3);
  for (let i = 0; i < nEv; i++) {
    const ev = `e${g.ne++}`;
    const op: Extract<Op, { op: "open" }> = { op: "open", ev, pmu: aux && g.r() < 0.5 ? "aux" : "sw" };
    if (g.evs.length && g.r() < 0.3) op.outputTo = pick(g, g.evs);
    g.evs.push(ev);
    p.push(op);
  }
  const nProc = 1 + Math.floor(g.r() * 3);
  for (let i = 1; i < nProc; i++) {
    const proc = `p${i}`;
    g.procs.push(proc);
    p.push({ op: g.r() < 0.85 ? "fork" : "thread", proc, from: "p0" });
  }
  const nSetup = 2 + Math.floor(g.r() * 6);
  for (let i = 0; i < nSetup; i++) p.push(...setupOp(g, aux));
  const blocks = g.r() < 0.25 ? 2 : 1;
  for (let b = 0; b < blocks; b++) {
    const n = g.procs.length >= 3 && g.r() < 0.4 ? 3 : 2;
    if (g.procs.length < n) {
      const proc = `p${g.procs.length}`;
      g.procs.push(proc);
      p.push({ op: "fork", proc, from: "p0" });
    }
    const procs = [...g.procs].sort(() => g.r() - 0.5).slice(0, n);
    const ops: Op[] = [];
    for (const proc of procs) {
      const op = racyOp(g, proc, aux);
      if (op) ops.push(op);
    }
    if (ops.length < 2) return null;
    // a sendFd to a process another op of the block exits is valid in one order only
    // (programProblems() checks the listed order; NOTES-for-lead.md)
    const exiting = new Set(ops.flatMap((o) => (o.op === "exit" ? [o.proc] : [])));
    if (ops.some((o) => o.op === "sendFd" && exiting.has(o.to))) return null;
    p.push({ op: "par", ops: ops.length }, ...ops);
    for (const op of ops) {
      if (op.op === "exit") {
        g.procs = g.procs.filter((q) => q !== op.proc);
        g.maps = g.maps.filter((x) => x.proc !== op.proc);
      }
      if (op.op === "open") g.evs.push(op.ev);
    }
  }
  const nAfter = Math.floor(g.r() * 3);
  for (let i = 0; i < nAfter; i++) {
    const op = racyOp(g, pick(g, g.procs), aux);
    if (op && op.op !== "exit") p.push(op);
    if (op && op.op === "open") g.evs.push(op.ev);
  }
  return programProblems(p).length === 0 ? p : null;
}

/** `count` valid random par programs from seeds base, base+1, ... */
export function genParPrograms(base: number, count: number, aux = true): Program[] {
  const out: Program[] = [];
  for (let s = base; out.length < count && s < base + count * 50; s++) {
    const p = genParProgram(s, aux);
    if (p) out.push(p);
  }
  return out;
}
