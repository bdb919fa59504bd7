/**
 * Shrink: reduce a failing program to a minimal one that fails the same way.
 *
 * Two levels. First on genes (fuzz/generate.ts), where every candidate decodes to a
 * valid program: delete chunks (ddmin, halving chunk sizes), then pull every gene field
 * towards 0, the plainest choice. Then on the decoded program itself: delete single ops
 * whose removal keeps the program valid, and renumber handles densely so a case reads
 * e0, e1, m0, m1 .... `stillFails` re-runs a candidate on the same backend and says
 * whether it fails with the same signature; it is the only thing that costs time.
 */
import { decode, type Gene, type GenOptions } from "./generate.ts";
import { programProblems, type Op, type Program } from "../spec/program.ts";

export interface ShrinkResult { program: Program; runs: number }

export async function shrink(
  genes: readonly Gene[],
  gen: GenOptions,
  stillFails: (p: Program) => Promise<boolean> | boolean,
  budget = 2000,
): Promise<ShrinkResult> {
  let runs = 0;
  const tried = new Set<string>();
  const test = async (p: Program): Promise<boolean> => {
    const key = JSON.stringify(p);
    if (tried.has(key) || runs >= budget) return false;
    tried.add(key);
    runs++;
    return stillFails(p);
  };

  let cur: Gene[] = genes.slice();
  // 1. ddmin over genes.
  for (let chunk = Math.max(1, cur.length >> 1); chunk >= 1; chunk >>= 1) {
    let i = 0;
    while (i < cur.length) {
      const cand = cur.slice(0, i).concat(cur.slice(i + chunk));
      if (cand.length >= 1 && (await test(decode(cand, gen)))) cur = cand;
      else i += chunk;
    }
  }
  // 2. Fields towards 0 (field 0 selects the op kind: leave it, zeroing would change the op).
  for (let gi = 0; gi < cur.length; gi++) {
    for (let f = 1; f < 5; f++) {
      for (const v of [0, 1, cur[gi][f] >> 1]) {
        if (v >= cur[gi][f]) continue;
        const g = cur[gi].slice() as unknown as [number, number, number, number, number];
        g[f] = v;
        const cand = cur.slice();
        cand[gi] = g;
        if (await test(decode(cand, gen))) { cur = cand; break; }
      }
    }
  }
  // 3. Single-op deletions on the program itself.
  let prog: Program = decode(cur, gen);
  let changed = true;
  while (changed) {
    changed = false;
    for (let i = prog.length - 1; i >= 0; i--) {
      const cand = prog.slice(0, i).concat(prog.slice(i + 1));
      if (cand.length === 0 || programProblems(cand).length) continue;
      const dense = renumber(cand);
      if (await test(dense)) { prog = dense; changed = true; }
    }
  }
  // 4. Drop optional fields that do not matter (cpu, inherit, outputTo, ...), one at a time.
  for (let i = 0; i < prog.length; i++) {
    for (const key of OPTIONAL_KEYS) {
      if (!(key in prog[i])) continue;
      const op = { ...prog[i] } as Record<string, unknown>;
      delete op[key];
      const cand = prog.slice();
      cand[i] = op as Op;
      if (programProblems(cand).length === 0 && (await test(cand))) prog = cand;
    }
  }
  return { program: renumber(prog), runs };
}

const OPTIONAL_KEYS = ["cpu", "inherit", "outputTo", "shared", "mayMove"] as const;

/** Rename handles densely in order of introduction (e0, e1 ..., m0, m1 ...). */
export function renumber(program: Program): Program {
  const ev = new Map<string, string>();
  const mp = new Map<string, string>();
  const e = (h: string) => ev.get(h) ?? h;
  const m = (h: string) => mp.get(h) ?? h;
  return program.map((op): Op => {
    switch (op.op) {
      case "open": {
        ev.set(op.ev, `e${ev.size}`);
        const out = { ...op, ev: e(op.ev) };
        if (op.outputTo !== undefined) out.outputTo = e(op.outputTo);
        return out;
      }
      case "mmap":
        mp.set(op.map, `m${mp.size}`);
        return { ...op, map: m(op.map), ev: e(op.ev) };
      case "close": return { ...op, ev: e(op.ev) };
      case "setOutput": return { ...op, ev: e(op.ev), target: op.target === null ? null : e(op.target) };
      case "munmap": case "mremap": case "mprotect": case "mapFixedAnon": case "setAux": case "touch": case "readUserPage":
        return { ...op, map: m(op.map) };
      case "rlimit": case "sysctlMlock": case "auxFault":
        return op;
    }
  });
}
