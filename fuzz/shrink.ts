/**
 * Shrink: reduce a failing program to a minimal one that fails the same way.
 *
 * Two levels. First on genes (fuzz/generate.ts), where every candidate decodes to a
 * valid program: delete chunks (ddmin, halving chunk sizes), then pull every gene field
 * towards 0, the plainest choice (the sixth field, the process selector, towards the
 * default process). Then on the decoded program itself (`shrinkProgram`): remove whole
 * processes and threads (the fork or thread op, every op that runs in the task, its exit, and
 * the tasks forked or threaded from it, recursively), sequentialize par blocks (drop a marker)
 * and shrink a 3-op block to 2, remove users (drop the setuid ops to one, or rename it to
 * a lower one), delete single ops, drop optional fields, and finally drop every explicit
 * `proc` that names the op's default process; handles are renumbered densely so a case
 * reads e0, e1, m0, m1, p0, p1, u0, u1 .... Every candidate is valid (`runnable`).
 * `stillFails` re-runs a candidate on the same backend and says whether it fails with
 * the same signature; it is the only thing that costs time.
 */
import { decode, GENE_FIELDS, type Gene, type GenOptions } from "./generate.ts";
import { opProc, programHandles, programProblems, type Op, type Program } from "../spec/program.ts";

export interface ShrinkResult { program: Program; runs: number }

type StillFails = (p: Program) => Promise<boolean> | boolean;

/** Memoised, budgeted calls of stillFails. */
function tester(stillFails: StillFails, budget: number) {
  const tried = new Set<string>();
  const t = {
    runs: 0,
    async test(p: Program): Promise<boolean> {
      const key = JSON.stringify(p);
      if (tried.has(key) || t.runs >= budget) return false;
      tried.add(key);
      t.runs++;
      return stillFails(p);
    },
  };
  return t;
}

export async function shrink(
  genes: readonly Gene[],
  gen: GenOptions,
  stillFails: StillFails,
  budget = 2000,
): Promise<ShrinkResult> {
  const t = tester(stillFails, budget);

  let cur: Gene[] = genes.slice();
  // 1. ddmin over genes.
  for (let chunk = Math.max(1, cur.length >> 1); chunk >= 1; chunk >>= 1) {
    let i = 0;
    while (i < cur.length) {
      const cand = cur.slice(0, i).concat(cur.slice(i + chunk));
      if (cand.length >= 1 && (await t.test(decode(cand, gen)))) cur = cand;
      else i += chunk;
    }
  }
  // 2. Fields towards 0 (field 0 selects the op kind: leave it, zeroing would change the op).
  for (let gi = 0; gi < cur.length; gi++) {
    for (let f = 1; f < GENE_FIELDS; f++) {
      const have = cur[gi][f] ?? 0;
      for (const v of [0, 1, have >> 1]) {
        if (v >= have) continue;
        const g = cur[gi].slice() as number[];
        g[f] = v;
        const cand = cur.slice();
        cand[gi] = g as unknown as Gene;
        if (await t.test(decode(cand, gen))) { cur = cand; break; }
      }
    }
  }
  // 3. On the program itself.
  const program = await programSteps(decode(cur, gen), t);
  return { program, runs: t.runs };
}

/** The program-level steps alone (a failing program from anywhere: a case file, a test). */
export async function shrinkProgram(program: Program, stillFails: StillFails, budget = 2000): Promise<ShrinkResult> {
  const t = tester(stillFails, budget);
  const out = await programSteps(program, t);
  return { program: out, runs: t.runs };
}

async function programSteps(start: Program, t: { test(p: Program): Promise<boolean> }): Promise<Program> {
  // (genes first: a gene-level deletion never splits a block, the decoder emits a block whole)
  let prog: Program = start;
  const accept = async (cand: Program | null): Promise<boolean> => {
    if (cand === null || cand.length === 0 || !runnable(cand)) return false;
    const dense = renumber(cand);
    if (!(await t.test(dense))) return false;
    prog = dense;
    return true;
  };
  let changed = true;
  while (changed) {
    changed = false;
    // 3a. Whole processes, the last forked first (the shallowest removal of a subtree).
    const { procs, users } = programHandles(prog);
    for (const p of procs.slice(1).reverse()) {
      if (await accept(withoutProc(prog, p))) { changed = true; break; }
    }
    if (changed) continue;
    // 3a'. Fold a process into the one it was forked from: its fork goes, its ops run in the
    // parent (a finding that needs ops, not a second process, loses the process)
    for (const p of procs.slice(1).reverse()) {
      if (await accept(foldProc(prog, p))) { changed = true; break; }
    }
    if (changed) continue;
    // 3b. Users: drop every setuid to one, else rename it to a lower one.
    for (const u of users.slice(1).reverse()) {
      if (await accept(prog.filter((op) => !(op.op === "setuid" && op.user === u)))) { changed = true; break; }
      for (const lower of users.slice(0, users.indexOf(u))) {
        if (await accept(prog.map((op) => (op.op === "setuid" && op.user === u ? { ...op, user: lower } : op)))) { changed = true; break; }
      }
      if (changed) break;
    }
    if (changed) continue;
    // 3c. par blocks (issue 14): drop a marker (the block runs sequentially), else shrink a
    // 3-op block to 2 (its last op runs after the block)
    for (let i = prog.length - 1; i >= 0; i--) {
      const op = prog[i];
      if (i >= prog.length || op.op !== "par") continue;
      if (await accept(prog.slice(0, i).concat(prog.slice(i + 1)))) { changed = true; continue; }
      if (op.ops === 3 && (await accept(prog.map((x, j) => (j === i ? { op: "par", ops: 2 } : x))))) changed = true;
    }
    // 3d. Single-op deletions (an op of a block: the block shrinks with it).
    for (let i = prog.length - 1; i >= 0; i--) {
      if (i >= prog.length || prog[i].op === "par") continue;
      if (await accept(filterOps(prog, (_, j) => j !== i))) changed = true;
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
      if (runnable(cand) && (await t.test(cand))) prog = cand;
    }
  }
  // 5. An explicit proc that names the default process says nothing: drop it (same program).
  return renumber(withoutDefaultProcs(prog));
}

const OPTIONAL_KEYS = ["cpu", "inherit", "outputTo", "shared", "mayMove"] as const;

/**
 * Valid and runnable: programProblems finds nothing, and no op runs in a process that has
 * exited by default either (an op on a map handle without `proc` runs in the handle's owner,
 * which programProblems does not check).
 */
export function runnable(program: Program): boolean {
  if (programProblems(program).length) return false;
  const owner = new Map<string, string>();
  const alive = new Set(["p0"]);
  for (const op of program) {
    if (op.op === "mmap") owner.set(op.map, op.proc ?? "p0");
    else if (op.op === "fork" || op.op === "thread") alive.add(op.proc);
    else if (op.op === "par") continue;
    else if (op.op === "exit") alive.delete(op.proc);
    else if (!alive.has(opProc(op, owner))) return false;
  }
  return true;
}

/**
 * Remove process `p` and every process forked from it (recursively): their forks, exits,
 * setuids, the sendFds from or to them and every op that runs in them (opProc); then the ops
 * left naming a handle only they introduced. Null when nothing valid is left to try.
 */
export function withoutProc(program: Program, p: string): Program | null {
  if (p === "p0") return null;
  const gone = new Set([p]);
  for (const op of program) if ((op.op === "fork" || op.op === "thread") && gone.has(op.from)) gone.add(op.proc);
  const { mapProc } = programHandles(program);
  const out = filterOps(program, (op) => {
    switch (op.op) {
      case "par": return true;
      case "fork": case "thread": case "exit": case "setuid": return !gone.has(op.proc);
      case "sendFd": return !gone.has(op.proc) && !gone.has(op.to);
      default: return !gone.has(opProc(op, mapProc));
    }
  });
  return dropDangling(out);
}

/**
 * Process `p` folded into the task it was forked (or threaded) from: its fork/thread op and its
 * exit go, every op that names it (proc, to, from) names the parent instead, and sendFds
 * between the two vanish. Null when p0 or not forked, or when the result is invalid.
 */
export function foldProc(program: Program, p: string): Program | null {
  if (p === "p0") return null;
  const origin = program.find((op) => (op.op === "fork" || op.op === "thread") && op.proc === p);
  if (origin === undefined || (origin.op !== "fork" && origin.op !== "thread")) return null;
  const parent = origin.from;
  const { mapProc } = programHandles(program);
  const kept = filterOps(program, (op) => {
    if ((op.op === "fork" || op.op === "thread") && op.proc === p) return false;
    if (op.op === "exit" && op.proc === p) return false;
    if (op.op === "sendFd" && ((op.proc === p && op.to === parent) || (op.proc === parent && op.to === p))) return false;
    return true;
  });
  const out = kept.map((op): Op => {
    const o = { ...op } as Record<string, unknown>;
    if (op.op !== "par" && opProc(op, mapProc) === p) o.proc = parent;
    if (o.from === p) o.from = parent;
    if (o.to === p) o.to = parent;
    return o as Op;
  });
  return programProblems(out).length === 0 ? out : null;
}

/** Drop ops that name a handle no op introduces any more (repeatedly: a drop can strand more). */
function dropDangling(program: Program): Program | null {
  let out = program;
  for (let round = 0; round < 64; round++) {
    const problems = programProblems(out);
    if (problems.length === 0) return out;
    if (problems.some((x) => !x.message.includes("before"))) return null;
    const bad = new Set(problems.map((x) => x.index));
    out = filterOps(out, (_, i) => !bad.has(i));
  }
  return null;
}

/**
 * Keep the ops `keep` says (never asked about par markers), fixing par blocks: a block keeps
 * its marker with the count of its ops left, and loses it (its op runs sequentially) when
 * fewer than two are left.
 */
export function filterOps(program: Program, keep: (op: Op, i: number) => boolean): Program {
  const out: Op[] = [];
  for (let i = 0; i < program.length; i++) {
    const op = program[i];
    if (op.op !== "par") { if (keep(op, i)) out.push(op); continue; }
    const inner: Op[] = [];
    for (let j = i + 1; j <= i + op.ops && j < program.length; j++) if (keep(program[j], j)) inner.push(program[j]);
    if (inner.length >= 2) out.push({ op: "par", ops: inner.length as 2 | 3 });
    out.push(...inner);
    i += op.ops;
  }
  return out;
}

/** Drop `proc` where it names the op's default process (p0; a map handle's owner). */
export function withoutDefaultProcs(program: Program): Program {
  const { mapProc } = programHandles(program);
  return program.map((op) => {
    if (op.op === "fork" || op.op === "thread" || op.op === "par" || op.op === "exit" || op.op === "setuid" || op.op === "sendFd") return op;
    if (!("proc" in op) || op.proc === undefined) return op;
    const dflt = op.op !== "mmap" && "map" in op ? mapProc.get(op.map) ?? "p0" : "p0";
    if (op.proc !== dflt) return op;
    const { proc: _, ...rest } = op;
    return rest as Op;
  });
}

/** Rename handles densely in order of introduction (e0, e1 ..., m0, m1 ..., p1, p2 ... in fork
 *  order after p0, u1, u2 ... in order of first setuid after u0). */
export function renumber(program: Program): Program {
  const ev = new Map<string, string>();
  const mp = new Map<string, string>();
  const pr = new Map<string, string>([["p0", "p0"]]);
  const us = new Map<string, string>([["u0", "u0"]]);
  const e = (h: string) => ev.get(h) ?? h;
  const m = (h: string) => mp.get(h) ?? h;
  const p = (h: string) => pr.get(h) ?? h;
  const withProc = <T extends { proc?: string }>(op: T): T => (op.proc === undefined ? op : { ...op, proc: p(op.proc) });
  return program.map((op): Op => {
    switch (op.op) {
      case "open": {
        ev.set(op.ev, `e${ev.size}`);
        const out = withProc({ ...op, ev: e(op.ev) });
        if (op.outputTo !== undefined) out.outputTo = e(op.outputTo);
        return out;
      }
      case "mmap":
        mp.set(op.map, `m${mp.size}`);
        return withProc({ ...op, map: m(op.map), ev: e(op.ev) });
      case "close": return withProc({ ...op, ev: e(op.ev) });
      case "setOutput": return withProc({ ...op, ev: e(op.ev), target: op.target === null ? null : e(op.target) });
      case "munmap": case "mremap": case "mprotect": case "mapFixedAnon": case "setAux": case "touch": case "readUserPage":
        return withProc({ ...op, map: m(op.map) });
      case "rlimit":
        return withProc(op);
      case "sysctlMlock": case "auxFault": case "mapRangeFault":
        return op;
      case "par": return op;
      case "thread":
      case "fork": {
        const from = p(op.from);
        if (!pr.has(op.proc)) pr.set(op.proc, `p${pr.size}`);
        return { ...op, proc: p(op.proc), from };
      }
      case "exit": return { ...op, proc: p(op.proc) };
      case "setuid":
        if (!us.has(op.user)) us.set(op.user, `u${us.size}`);
        return { ...op, proc: p(op.proc), user: us.get(op.user)! };
      case "sendFd": return { ...op, proc: p(op.proc), to: p(op.to), ev: e(op.ev) };
    }
  });
}
