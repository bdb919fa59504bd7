/**
 * Judging a trace: carry the SET of states consistent with the observed prefix (filter
 * each op's transitions by observed outcome and VmPin), report the first divergence, then
 * compare the audit after the shared teardown, then check conservation.
 */
import { budgetCap, budgetLimit, budgetProbe, teardownSteps, type TeardownStep } from "../audit.ts";
import { handleIndex, programHandles, type Config, type Op, type Outcome, type ProfileId, type Program } from "../program.ts";
import { sameOutcome, showOp, showOutcome, type Audit, type Divergence, type Step, type Trace, type Verdict } from "../trace.ts";
import { checkEnd } from "../invariants.ts";
import { dropFd, exitProc, unmapRange } from "./mm.ts";
import { calcLimits } from "./perf.ts";
import { Draft, ERAS, initial, lockedOf, mmOf, pinnedOf, slotOf, type State } from "./state.ts";
import { procOf, stepSafe, type Tr } from "./step.ts";

/** VmPin as /proc prints it: unsigned, so a negative pinned_vm reads as 2^64 - |x| (as a JS number). */
export function vmPinMatches(spec: number, observed: number): boolean {
  if (spec === observed) return true;
  return spec < 0 && observed === 2 ** 64 + spec;
}

export function teardownState(s: State, profile: ProfileId, program: Program, steps: readonly TeardownStep[] = teardownSteps(program)): State[] {
  return [teardownDraft(s, profile, steps).finish()];
}

/** The teardown as a Draft (its `marks`: the mechanism markers the teardown fired). */
function teardownDraft(s: State, profile: ProfileId, steps: readonly TeardownStep[]): Draft {
  if (s.era.id !== profile) s = { ...s, era: ERAS[profile] };
  const d = new Draft(s);
  // A plain switch, not ts-pattern's match(): this runs for every state of every checked
  // program, and match() allocates per call (it was 9 % of the model fuzz loop).
  for (const t of steps) {
    switch (t.kind) {
      case "restore": d.mlockKb = s.cfg.mlockKb; d.auxFault = false; d.mapRangeFault = 0; break;
      case "munmap": unmapRange(d, slotOf(handleIndex(t.map), t.slot), 0, t.pages); break;
      case "close": {
        // p0 closes the fds it still holds (every other process has exited by now)
        const e = handleIndex(t.ev);
        const ev = d.ev(e);
        if (ev !== undefined && (ev.fdMask & 1) !== 0) dropFd(d, e, 0);
        break;
      }
      case "exit": {
        const p = handleIndex(t.proc);
        if (d.procs[p]?.alive) exitProc(d, p);
        break;
      }
      default: { const never: never = t; throw new Error(`unknown teardown step ${JSON.stringify(never)}`); }
    }
  }
  return d;
}

/**
 * The budget the harness's probe measures after teardown (spec/audit.ts budgetProbe),
 * simulated with the era's own accounting: 6.1+ clamp a negative (huge unsigned) locked_vm to
 * the limit, so it probes as 0; the seed has no clamp, so locked_vm = -2 probes as limit + 2
 * (a 257-page buffer fits: -2 + 257 <= limit).
 */
export function probeBudget(s: State, user = 0): number {
  const limit = budgetLimit(s.mlockKb, s.cfg.cpus);
  // the probe runs in p0 (its pinned_vm) as `user` (switched to that uid for u1..u3)
  const st = {
    era: s.era, cfg: { ...s.cfg, capIpcLock: false }, mlockKb: s.mlockKb,
    lockedVm: user === 0 ? s.lockedVm : lockedOf(s, user), pinnedVm: s.pinnedVm, rlimit: Math.max(0, s.pinnedVm),
  };
  if (st.lockedVm >= 0 && st.lockedVm <= limit && st.pinnedVm >= 0 && s.cfg.paranoid > -1) return limit - st.lockedVm;
  return budgetProbe(budgetCap(s.mlockKb, s.cfg.cpus), (dataPages) => {
    const a = calcLimits(st, dataPages + 1);
    if (!a.ok) return false;
    st.lockedVm += a.userExtra;
    st.pinnedVm += a.extra;
    return true;
  });
}

export interface PredictedAudit { vmPinKb: number; budgetPages: number; liveAux: number; budgets?: Record<string, number> }

/** The audit an end state predicts; `users`: the users other than u0 a `setuid` named (their budgets). */
export function auditOf(s: State, users: readonly string[] = []): PredictedAudit {
  const a: PredictedAudit = { vmPinKb: s.pinnedVm * 4, budgetPages: probeBudget(s), liveAux: s.auxAllocs - s.auxFrees };
  if (users.length > 0) {
    const budgets: Record<string, number> = {};
    for (const u of users) budgets[u] = probeBudget(s, handleIndex(u));
    a.budgets = budgets;
  }
  return a;
}

/** Users other than u0 named by a `setuid` of the program (whose budgets the audit probes). */
export function otherUsers(program: Program): string[] {
  return programHandles(program).users.filter((u) => u !== "u0");
}

function dedupe(states: State[]): State[] {
  if (states.length < 2) return states;
  const out: State[] = [];
  const seen = new Set<string>();
  for (const s of states) {
    if (out.includes(s)) continue;
    const k = JSON.stringify({ ...s, era: s.era.id, cfg: 0 });
    if (seen.has(k)) continue;
    seen.add(k);
    out.push(s);
  }
  return out;
}

function uniqueOutcomes(ts: readonly Tr[]): Outcome[] {
  const out: Outcome[] = [];
  for (const t of ts) if (!out.some((o) => sameOutcome(o, t.outcome))) out.push(t.outcome);
  return out;
}

function uniqueRules(ts: readonly Tr[]): string {
  return [...new Set(ts.map((t) => t.rule))].join(" | ");
}

export interface PerOp { allowed: Outcome[]; allowedVmPinKb: number[]; rule: string }

interface Walk { verdict: Verdict; perOp: PerOp[] }

function auditMismatch(a: Audit, p: PredictedAudit, s: State): { rule: string; kind: "vmpin" | "invariant"; expected: string; observed: string } | null {
  if (!vmPinMatches(p.vmPinKb, a.vmPinKb)) return { rule: "audit.vmPinKb", kind: "vmpin", expected: `VmPin ${p.vmPinKb} kB`, observed: `VmPin ${a.vmPinKb} kB` };
  if (a.budgetPages !== undefined && a.budgetPages !== p.budgetPages) return { rule: "audit.budgetPages", kind: "invariant", expected: `budget ${p.budgetPages} pages`, observed: `budget ${a.budgetPages} pages` };
  if (a.budgets !== undefined && p.budgets !== undefined) {
    for (const [u, want] of Object.entries(p.budgets)) {
      const got = a.budgets[u];
      if (got !== undefined && got !== want) return { rule: "audit.budgets", kind: "invariant", expected: `${u} budget ${want} pages`, observed: `${u} budget ${got} pages` };
    }
  }
  if (a.liveAux !== undefined && a.liveAux !== p.liveAux) return { rule: "audit.liveAux", kind: "invariant", expected: `liveAux ${p.liveAux}`, observed: `liveAux ${a.liveAux}` };
  if (a.auxSetups !== undefined && a.auxSetups !== s.auxAllocs) return { rule: "audit.auxSetups", kind: "invariant", expected: `auxSetups ${s.auxAllocs}`, observed: `auxSetups ${a.auxSetups}` };
  if (a.auxFrees !== undefined && a.auxFrees !== s.auxFrees) return { rule: "audit.auxFrees", kind: "invariant", expected: `auxFrees ${s.auxFrees}`, observed: `auxFrees ${a.auxFrees}` };
  return null;
}

/** Conservation as seen in an observed audit (independent of any prediction). */
function observedConservation(a: Audit, cfg: Config): { id: string; detail: string } | null {
  const limit = (cfg.mlockKb >> 2) * cfg.cpus;
  const start = Math.max(0, limit - (cfg.lockedVmPages ?? 0)); // the budget the program found
  if (a.budgetPages !== undefined && cfg.paranoid > -1 && a.budgetPages !== start) return { id: "conserve.locked_vm", detail: `budget ${a.budgetPages} pages after teardown, ${start} at the start (limit ${limit})` };
  // every other user is a fresh uid: its whole limit at the start
  if (a.budgets !== undefined && cfg.paranoid > -1) {
    for (const [u, b] of Object.entries(a.budgets)) if (b !== limit) return { id: "conserve.locked_vm", detail: `${u}: budget ${b} pages after teardown, ${limit} at the start (a fresh uid)` };
  }
  // after locked_vm, as checkEnd orders them (a program that breaks both gets one verdict)
  if (a.vmPinKb !== 0) return { id: "conserve.pinned_vm", detail: `VmPin ${a.vmPinKb} kB after teardown` };
  if (a.liveAux !== undefined && a.liveAux !== 0) return { id: "conserve.aux_freed", detail: `${a.liveAux} AUX areas still set up` };
  if (a.auxSetups !== undefined && a.auxFrees !== undefined && a.auxSetups !== a.auxFrees) return { id: "conserve.aux_freed", detail: `${a.auxSetups} setups, ${a.auxFrees} frees` };
  return null;
}

// ---------------------------------------------------------------------------------------
// par blocks (issue 14, spec/notes/races.md): linearizability

/** Every order of 0..n-1 (n <= 3), the program's order first. */
const PERMS: readonly (readonly number[])[][] = [[], [[0]], [[0, 1], [1, 0]], [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]]];

/** One order run from one state: the end state and the transitions taken, per op of the block (by block position). */
interface ParPath { end: State; trs: Tr[] }

/** VmPin of the task of a block op, read after the whole block (exit: 0, the task is gone). */
function blockVmPin(end: State, op: Op, task: number): number {
  if (op.op === "exit") return 0;
  return pinnedOf(end, mmOf(end, task)) * 4;
}

/**
 * The orders of a block (ops, their tasks, the observed steps) from `states` that explain
 * the observation: each op's outcome allowed where the order puts it, and every op's VmPin
 * after the block matching. Returns the explaining paths (all of them) and, per op of the
 * block, every transition seen for it (explain mode's allowed sets).
 */
function linearize(states: readonly State[], ops: readonly Op[], tasks: readonly number[], obs: readonly Step[], profile: ProfileId, seen: Tr[][] | null): ParPath[] {
  const out: ParPath[] = [];
  const n = ops.length;
  for (const s0 of states) {
    for (const perm of PERMS[n]) {
      let frontier: ParPath[] = [{ end: s0, trs: new Array<Tr>(n) }];
      for (const k of perm) {
        const next: ParPath[] = [];
        for (const f of frontier) {
          for (const t of stepSafe(f.end, ops[k], profile)) {
            if (seen !== null) seen[k].push(t);
            if (!sameOutcome(t.outcome, obs[k].outcome)) continue;
            const trs = f.trs.slice();
            trs[k] = t;
            next.push({ end: t.next, trs });
          }
        }
        frontier = next;
        if (frontier.length === 0) break;
      }
      for (const f of frontier) {
        let ok = true;
        for (let k = 0; k < n && ok; k++) ok = vmPinMatches(blockVmPin(f.end, ops[k], tasks[k]), obs[k].vmPinKb);
        if (ok) out.push(f);
      }
    }
  }
  return out;
}

/** Why no order explains a block: per order, its first unexplained op, and an order that explains all ops but one, if any. */
function parDivergence(states: readonly State[], ops: readonly Op[], tasks: readonly number[], obs: readonly Step[], profile: ProfileId, marker: number): Divergence {
  const n = ops.length;
  const lines: string[] = [];
  let almost: string | null = null;
  const s0 = states[0];
  for (const perm of PERMS[n]) {
    // follow the order from the first state; at an unexplained op go on with what it allows
    let cur: State[] = [s0];
    const misses: string[] = [];
    for (const k of perm) {
      const ts: Tr[] = [];
      for (const s of cur) for (const t of stepSafe(s, ops[k], profile)) ts.push(t);
      const match = ts.filter((t) => sameOutcome(t.outcome, obs[k].outcome));
      if (match.length === 0) misses.push(`op ${marker + 1 + k} (${showOp(ops[k])}) observed ${showOutcome(obs[k].outcome)}, allowed there: ${uniqueOutcomes(ts).map(showOutcome).join(" | ")}`);
      cur = dedupe((match.length ? match : ts).map((t) => t.next));
    }
    if (misses.length === 0) {
      // outcomes explained: the VmPins after the block
      for (let k = 0; k < n; k++) {
        const want = [...new Set(cur.map((e) => blockVmPin(e, ops[k], tasks[k])))];
        if (!want.some((w) => vmPinMatches(w, obs[k].vmPinKb))) misses.push(`op ${marker + 1 + k} (${showOp(ops[k])}) VmPin ${obs[k].vmPinKb} kB after the block, allowed: ${want.map((w) => `${w} kB`).join(" | ")}`);
      }
    }
    const order = perm.map((k) => marker + 1 + k).join(", ");
    lines.push(`order ${order}: ${misses[0]}`);
    if (misses.length === 1 && almost === null) almost = `order ${order} explains every op but one: ${misses[0]}`;
  }
  return {
    kind: "outcome", opIndex: marker, rule: "par.linearizable",
    expected: lines,
    observed: obs.map((o, k) => `op ${marker + 1 + k}: ${showOutcome(o.outcome)} (VmPin ${o.vmPinKb} kB)`).join("; "),
    detail: `par block at op ${marker} (${n} ops): no order of its ops explains the observation under profile ${profile}; ${almost ?? `none explains all but one op (${lines.join("; ")})`}`,
  };
}

/** Ops that can run perf_mmap_close() or perf_release() (the `par.block.release` marker). */
const RELEASING: ReadonlySet<Op["op"]> = new Set(["munmap", "mremap", "exit", "close"]);

function walk(program: Program, config: Config, profile: ProfileId, trace: Trace, coverage: Map<string, number> | undefined, explain: boolean): Walk {
  const perOp: PerOp[] = [];
  const reject = (d: Divergence): Walk => ({ verdict: { accepted: false, profile, divergence: d }, perOp });
  let states: State[] = [initial(config, profile)];
  let diverged: Divergence | null = null;
  const n = program.length;
  let blockAt = -1; // the index of the first op of the par block the last marker opened
  for (let i = 0; i < n; i++) {
    const op: Op = program[i];
    const obs = trace.steps[i];
    if (i === blockAt && diverged === null) {
      const k = (program[i - 1] as Extract<Op, { op: "par" }>).ops;
      if (i + k <= n && trace.steps.length >= i + k) {
        const ops = program.slice(i, i + k);
        const bobs = trace.steps.slice(i, i + k);
        const tasks = ops.map((o) => procOf(states[0], o));
        const seen: Tr[][] | null = explain ? ops.map(() => []) : null;
        const paths = linearize(states, ops, tasks, bobs, profile, seen);
        if (seen !== null) for (const ts of seen) perOp.push({ allowed: uniqueOutcomes(ts), allowedVmPinKb: [...new Set(ts.map((t) => t.vmPinKb))], rule: uniqueRules(ts) });
        if (paths.length === 0) {
          diverged = parDivergence(states, ops, tasks, bobs, profile, i - 1);
          if (!explain) return reject(diverged);
          // explain: go on from every order's ends, whatever they answer
          const ends: State[] = [];
          for (const s of states) for (const perm of PERMS[k]) {
            let cur: State[] = [s];
            for (const j of perm) cur = cur.flatMap((x) => stepSafe(x, ops[j], profile).map((t) => t.next));
            ends.push(...cur);
          }
          states = dedupe(ends);
        } else {
          if (coverage !== undefined) {
            const rules = new Set<string>();
            for (const p of paths) for (const t of p.trs) { rules.add(t.rule); if (t.marks !== null) for (const r of t.marks) rules.add(r); }
            for (const r of rules) coverage.set(r, (coverage.get(r) ?? 0) + 1);
          }
          states = dedupe(paths.map((p) => p.end));
        }
        i += k - 1;
        continue;
      }
      // the trace ends inside the block: the block cannot be judged
      diverged = {
        kind: "aborted", opIndex: trace.steps.length, rule: "trace.aborted", expected: [],
        observed: trace.aborted ?? `trace ends after ${trace.steps.length} of ${n} ops`,
        detail: `the trace ends inside the par block at op ${i - 1}${trace.aborted ? `: ${trace.aborted}` : ""}`,
      };
      if (!explain) return reject(diverged);
    }
    if (op.op === "par") {
      blockAt = i + 1;
      if (coverage !== undefined && program.slice(i + 1, i + 1 + op.ops).some((o) => RELEASING.has(o.op))) coverage.set("par.block.release", (coverage.get("par.block.release") ?? 0) + 1);
    }
    const ts: Tr[] = [];
    for (const s of states) for (const t of stepSafe(s, op, profile)) ts.push(t);
    if (explain) perOp.push({ allowed: uniqueOutcomes(ts), allowedVmPinKb: [...new Set(ts.map((t) => t.vmPinKb))], rule: uniqueRules(ts) });
    if (diverged !== null || obs === undefined) {
      if (diverged === null) {
        diverged = {
          kind: "aborted", opIndex: i, rule: "trace.aborted", expected: uniqueOutcomes(ts).map(showOutcome),
          observed: trace.aborted ?? `trace ends after ${trace.steps.length} of ${n} ops`,
          detail: trace.aborted ? `the program did not run to its end: ${trace.aborted}` : `the trace has ${trace.steps.length} steps for ${n} ops`,
        };
        if (!explain) return reject(diverged);
      }
      states = dedupe(ts.map((t) => t.next));
      continue;
    }
    const sameOut = ts.filter((t) => sameOutcome(t.outcome, obs.outcome));
    const keep = sameOut.filter((t) => vmPinMatches(t.vmPinKb, obs.vmPinKb));
    if (keep.length === 0) {
      if (sameOut.length === 0) {
        diverged = {
          kind: "outcome", opIndex: i, rule: uniqueRules(ts), expected: uniqueOutcomes(ts).map(showOutcome),
          observed: showOutcome(obs.outcome),
          detail: `op ${i} (${showOp(op)}): ${showOutcome(obs.outcome)} is not allowed by profile ${profile}`,
        };
      } else {
        diverged = {
          kind: "vmpin", opIndex: i, rule: uniqueRules(sameOut), expected: [...new Set(sameOut.map((t) => `${t.vmPinKb} kB`))],
          observed: `${obs.vmPinKb} kB`,
          detail: `op ${i} (${showOp(op)}): outcome ${showOutcome(obs.outcome)} allowed, but VmPin ${obs.vmPinKb} kB is not`,
        };
      }
      if (!explain) return reject(diverged);
      states = dedupe((sameOut.length ? sameOut : ts).map((t) => t.next));
      continue;
    }
    if (coverage !== undefined) {
      for (const r of new Set(keep.map((t) => t.rule))) coverage.set(r, (coverage.get(r) ?? 0) + 1);
      for (const t of keep) if (t.marks !== null) for (const r of t.marks) coverage.set(r, (coverage.get(r) ?? 0) + 1);
    }
    states = dedupe(keep.map((t) => t.next));
  }
  if (diverged !== null) return reject(diverged);
  if (trace.aborted !== undefined) {
    return reject({ kind: "aborted", opIndex: trace.steps.length, rule: "trace.aborted", expected: [], observed: trace.aborted, detail: `the program did not run to its end: ${trace.aborted}` });
  }
  const audit = trace.audit;
  if (audit?.warnings !== undefined && audit.warnings.length > 0) {
    const predicted = states.flatMap((s) => s.warns);
    return reject({
      kind: "kernel-warning", opIndex: -1, rule: "kernel.warning", expected: predicted.length ? predicted : ["no kernel warning"],
      observed: audit.warnings.join("\n"),
      detail: `the kernel logged ${audit.warnings.length} warning(s)${predicted.length ? " (the spec predicts warnings too)" : ""}`,
    });
  }
  const steps = teardownSteps(program);
  const drafts = states.map((s) => teardownDraft(s, profile, steps));
  if (coverage !== undefined) {
    const marks = new Set<string>();
    for (const d of drafts) if (d.marks !== null) for (const r of d.marks) marks.add(r);
    for (const r of marks) coverage.set(r, (coverage.get(r) ?? 0) + 1);
  }
  const ends = drafts.map((d) => d.finish());
  const users = audit?.budgets !== undefined ? otherUsers(program) : [];
  let candidates = ends;
  if (audit !== null) {
    const match = ends.filter((e) => auditMismatch(audit, auditOf(e, users), e) === null);
    if (match.length === 0) {
      const mm = auditMismatch(audit, auditOf(ends[0], users), ends[0])!;
      return reject({
        kind: mm.kind, opIndex: -1, rule: mm.rule, expected: ends.map((e) => { const m = auditMismatch(audit, auditOf(e, users), e); return m ? m.expected : "?"; }),
        observed: mm.observed, detail: `audit after teardown: observed ${mm.observed}, the spec predicts ${mm.expected}`,
      });
    }
    candidates = match;
    const oc = observedConservation(audit, config);
    if (oc !== null) {
      return reject({ kind: "invariant", opIndex: -1, rule: oc.id, expected: ["conservation"], observed: oc.detail, detail: `${oc.detail} (the spec predicted it: profile ${profile} breaks ${oc.id})` });
    }
  }
  // The spec's own prediction must conserve too: a profile whose rules leak is reported.
  const clean = candidates.find((e) => checkEnd(e, config).length === 0);
  if (clean === undefined) {
    const v = checkEnd(candidates[0], config)[0];
    return reject({ kind: "invariant", opIndex: -1, rule: v.id, expected: ["conservation"], observed: v.detail, detail: `profile ${profile} predicts an end state that breaks ${v.id}: ${v.detail}` });
  }
  return { verdict: { accepted: true, profile }, perOp };
}

export function checkTraceImpl(program: Program, config: Config, profile: ProfileId, trace: Trace, coverage?: Map<string, number>): Verdict {
  return walk(program, config, profile, trace, coverage, false).verdict;
}

export function explainImpl(program: Program, config: Config, profile: ProfileId, trace: Trace): { perOp: PerOp[]; verdict: Verdict } {
  const w = walk(program, config, profile, trace, undefined, true);
  return { perOp: w.perOp, verdict: checkTraceImpl(program, config, profile, trace) };
}
