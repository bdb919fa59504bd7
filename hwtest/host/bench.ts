/**
 * Measurements of the host backend for bench/ (the lead wires them in):
 * - koffi executor vs the C twin on the same programs (`compareKoffiVsC`),
 * - programs/s through the worker pool with 1 and 2 workers (`measureHostThroughput`),
 * - per-call costs (`measureCallCosts`) and the re-map wait after a last munmap (`measureRemapWait`).
 * - `par` repetitions per second through the C agent (`measureParRepetitions`, issue 14).
 */
import { readFileSync } from "node:fs";
import type { Config, Op, Program } from "../../spec/program.ts";
import type { Trace } from "../../spec/trace.ts";
import { discoverHost, type HostFacts } from "./discover.ts";
import { runProgramHere } from "./executor.ts";
import { SLOT_BASE } from "../../spec/audit.ts";
import { libc, MAP_FIXED_NOREPLACE, MAP_SHARED, PAGE, PROT } from "./libc.ts";
import { openDummy } from "./perf.ts";
import { runCBatch } from "./native/cexec.ts";
import { hostBackend } from "./backend.ts";

/** A small deterministic PRNG (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Programs of typical fuzzing shape (about `ops` ops each) that never map an event again after
 * its last munmap (so no RCU wait): opens, data maps of a few sizes, second maps of the same
 * buffer, SET_OUTPUT, AUX attempts, touches, user page reads, partial unmaps, closes.
 */
export function benchPrograms(count: number, ops = 16, seed = 1): Program[] {
  const r = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
  const out: Program[] = [];
  for (let p = 0; p < count; p++) {
    const prog: Op[] = [];
    let nev = 0, nmap = 0;
    const unmapped = new Set<string>(); // events whose last map went: never map them again
    const mapsOf = new Map<string, string[]>();
    const evs = () => Array.from({ length: nev }, (_, i) => `e${i}`);
    while (prog.length < ops) {
      const k = r();
      if (nev === 0 || k < 0.15) {
        const ev = `e${nev++}`;
        const o: Op = nev > 1 && r() < 0.2 ? { op: "open", ev, pmu: "sw", outputTo: pick(evs().slice(0, -1)) } : { op: "open", ev, pmu: "sw" };
        prog.push(o);
      } else if (k < 0.4) {
        const ev = pick(evs());
        if (unmapped.has(ev)) continue;
        const map = `m${nmap++}`;
        prog.push({ op: "mmap", map, ev, pages: pick([1, 2, 3, 5, 9]), pgoff: 0, prot: pick(["rw", "rw", "r"] as const), shared: r() < 0.95 });
        mapsOf.set(ev, [...(mapsOf.get(ev) ?? []), map]);
      } else if (k < 0.5 && nmap > 0) {
        const map = `m${Math.floor(r() * nmap)}`;
        prog.push({ op: "touch", map, page: pick([0, 0, 1, 2]), write: r() < 0.5 });
      } else if (k < 0.6 && nmap > 0) {
        prog.push({ op: "readUserPage", map: `m${Math.floor(r() * nmap)}` });
      } else if (k < 0.7) {
        prog.push({ op: "setOutput", ev: pick(evs()), target: r() < 0.3 ? null : pick(evs()) });
      } else if (k < 0.78 && nmap > 0) {
        const map = `m${Math.floor(r() * nmap)}`;
        prog.push({ op: "setAux", map, offsetPages: pick([4, 8, 16]), sizePages: pick([1, 2, 4]) });
      } else if (k < 0.84 && nmap > 0) {
        const ev = pick(evs());
        if (unmapped.has(ev)) continue;
        prog.push({ op: "mmap", map: `m${nmap++}`, ev, pages: pick([1, 2, 4]), pgoff: pick([4, 8, 16]), prot: "rw", shared: true });
      } else if (k < 0.92 && nmap > 0) {
        const map = `m${Math.floor(r() * nmap)}`;
        const partial = r() < 0.3;
        prog.push(partial ? { op: "munmap", map, offset: 1, pages: 1 } : { op: "munmap", map });
        // conservatively: any event that had this map may now be at its last munmap
        for (const [ev, ms] of mapsOf) if (ms.includes(map)) unmapped.add(ev);
      } else {
        prog.push({ op: "close", ev: pick(evs()) });
      }
    }
    out.push(prog);
  }
  return out;
}

export interface KoffiVsC {
  programs: number;
  koffiSeconds: number;
  cSeconds: number;
  /** koffi time / C time */
  ratio: number;
  /** Programs whose koffi and C traces differ (should be 0). */
  mismatches: number;
}

/** Runs the same programs through the koffi executor (in this process) and the C twin (one process). */
export function compareKoffiVsC(programs: readonly Program[], opts: { facts?: HostFacts; config?: Config; touchMode?: "child" | "inproc"; noBudget?: boolean; rounds?: number } = {}): KoffiVsC {
  const facts = opts.facts ?? discoverHost();
  const config = opts.config ?? facts.config;
  const rounds = opts.rounds ?? 3;
  let best: KoffiVsC | null = null;
  for (let round = 0; round < rounds; round++) {
    const t0 = performance.now();
    const k: Trace[] = programs.map((p) => runProgramHere(p, config, facts, { touchMode: opts.touchMode, noBudget: opts.noBudget }));
    const koffiSeconds = (performance.now() - t0) / 1000;
    const c = runCBatch(programs, config, facts, { touchMode: opts.touchMode, noBudget: opts.noBudget });
    let mismatches = 0;
    k.forEach((t, i) => {
      const ct = c.traces[i];
      if (JSON.stringify(t.steps) !== JSON.stringify(ct.steps) || JSON.stringify(t.audit) !== JSON.stringify(ct.audit)) mismatches++;
    });
    const r: KoffiVsC = { programs: programs.length, koffiSeconds, cSeconds: c.seconds, ratio: koffiSeconds / c.seconds, mismatches };
    if (!best || r.ratio < best.ratio) best = r;
  }
  return best!;
}

/** Programs/s through hostBackend with `workers` workers (start-up excluded). */
export async function measureHostThroughput(programs: readonly Program[], workers: number, opts: { touchMode?: "child" | "inproc" } = {}): Promise<{ workers: number; programs: number; seconds: number; perSecond: number; aborted: number }> {
  const b = await hostBackend({ workers, touchMode: opts.touchMode });
  try {
    await b.run(programs.slice(0, workers * 2)); // warm the workers (tsx start-up, first program)
    const t0 = performance.now();
    const traces = await b.run(programs);
    const seconds = (performance.now() - t0) / 1000;
    return { workers, programs: programs.length, seconds, perSecond: programs.length / seconds, aborted: traces.filter((t) => t.aborted).length };
  } finally {
    await b.close();
  }
}

/** Microseconds per call, averaged over `n` calls, in this process (as root or the current user). */
export function measureCallCosts(n = 300): Record<string, number> {
  const l = libc();
  const base = SLOT_BASE;
  const acc: Record<string, number> = {};
  const t = (k: string, f: () => unknown) => { const s = performance.now(); f(); acc[k] = (acc[k] ?? 0) + (performance.now() - s) * 1000; };
  const sfd = l.open("/proc/thread-self/status", 0);
  const out = new BigUint64Array(5);
  for (let i = 0; i < n; i++) {
    let fd = -1;
    t("open", () => { fd = openDummy(); });
    t("mmap 3 pages", () => l.mmap(base, 3 * PAGE, PROT.rw, MAP_SHARED | MAP_FIXED_NOREPLACE, fd, 0));
    t("VmPin read", () => l.vmpinKb(sfd));
    t("touch (clone child)", () => l.access(1, base + PAGE, 0n, 0n, null));
    t("touch (in-process)", () => l.accessInproc(1, base + PAGE, 0n, 0n, null));
    t("readUserPage (clone child)", () => l.access(3, base, 0n, 0n, out));
    t("readUserPage (in-process)", () => l.accessInproc(3, base, 0n, 0n, out));
    t("munmap 3 pages", () => l.munmap(base, 3 * PAGE));
    t("close", () => l.close(fd));
    t("koffi call (getpid)", () => l.getpid());
  }
  l.close(sfd);
  for (const k of Object.keys(acc)) acc[k] = Math.round((acc[k] / n) * 10) / 10;
  return acc;
}

/**
 * The cost of mapping an event again after its last munmap (ring_buffer_attach() waits for
 * an RCU grace period: cond_synchronize_rcu) against mapping a fresh event. Milliseconds.
 * With /sys/kernel/rcu_expedited = 1 the grace period is expedited (about 0.1-0.3 ms here);
 * with 0 it is a normal grace period (about 13 ms on the machine notes §9 describes).
 */
export function measureRemapWait(n = 30): { remapMs: number; freshMs: number; rcuExpedited: boolean | null } {
  const l = libc();
  const base = SLOT_BASE;
  const fd = openDummy();
  let remap = 0, fresh = 0;
  try {
    l.mmap(base, 2 * PAGE, PROT.rw, MAP_SHARED | MAP_FIXED_NOREPLACE, fd, 0);
    l.munmap(base, 2 * PAGE);
    for (let i = 0; i < n; i++) {
      let s = performance.now();
      const a = l.mmap(base, 2 * PAGE, PROT.rw, MAP_SHARED | MAP_FIXED_NOREPLACE, fd, 0);
      remap += performance.now() - s;
      if (a !== -1) l.munmap(base, 2 * PAGE);
      const f2 = openDummy();
      s = performance.now();
      const b = l.mmap(base, 2 * PAGE, PROT.rw, MAP_SHARED | MAP_FIXED_NOREPLACE, f2, 0);
      fresh += performance.now() - s;
      if (b !== -1) l.munmap(base, 2 * PAGE);
      l.close(f2);
    }
  } finally {
    l.close(fd);
  }
  let rcuExpedited: boolean | null = null;
  try { rcuExpedited = readFileSync("/sys/kernel/rcu_expedited", "utf8").trim() !== "0"; } catch { /* not exposed */ }
  return { remapMs: remap / n, freshMs: fresh / n, rcuExpedited };
}

/** The par block the bench repeats: two processes map one event with different sizes at once. */
export const PAR_BENCH_PROGRAM: Program = [
  { op: "open", ev: "e0", pmu: "sw" },
  { op: "fork", proc: "p1", from: "p0" },
  { op: "par", ops: 2 },
  { op: "mmap", map: "m0", ev: "e0", pages: 3, pgoff: 0, prot: "rw" },
  { op: "mmap", proc: "p1", map: "m1", ev: "e0", pages: 5, pgoff: 0, prot: "rw" },
];

/**
 * `par` repetitions per second on the host (issue 14 bench row): `repeat` repetitions of a
 * program with a par block in one C agent request (each from scratch: fresh uid, fork, barrier,
 * teardown, audit), `requests` such requests over `workers` agents. The agents are started (and
 * warmed with one request each) before the clock starts. Root or not: as hostBackend runs it.
 */
export async function measureParRepetitions(opts: { repeat?: number; requests?: number; workers?: number; program?: Program } = {}): Promise<{ repetitions: number; ms: number; perSecond: number; workers: number; program: string; aborted: number; outcomes: Record<string, number> }> {
  const repeat = opts.repeat ?? 200;
  const requests = opts.requests ?? 1;
  const workers = opts.workers ?? 1;
  const program = opts.program ?? PAR_BENCH_PROGRAM;
  const b = await hostBackend({ workers });
  try {
    // warm both pools: the TypeScript agents (node + tsx start-up takes a CPU for a second or
    // two) and the C agents, so that neither start-up is measured
    await b.run([[{ op: "open", ev: "e0", pmu: "sw" }]]);
    await b.runRepeated(Array.from({ length: workers }, () => program), undefined, 2);
    const t0 = performance.now();
    const all = await b.runRepeated(Array.from({ length: requests }, () => program), undefined, repeat);
    const ms = performance.now() - t0;
    const traces = all.flat();
    const outcomes: Record<string, number> = {};
    for (const t of traces) {
      const k = t.aborted ? "aborted" : t.steps.map((s) => ("ok" in s.outcome ? "ok" : "errno" in s.outcome ? s.outcome.errno : s.outcome.signal)).join(" ");
      outcomes[k] = (outcomes[k] ?? 0) + 1;
    }
    return {
      repetitions: traces.length, ms, perSecond: traces.length / (ms / 1000), workers,
      program: "open; fork; par { mmap 3 pages in p0 | mmap 5 pages in p1 }",
      aborted: traces.filter((t) => t.aborted).length, outcomes,
    };
  } finally {
    await b.close();
  }
}
