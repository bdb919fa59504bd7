/**
 * Races (issue 14, spec/notes/races.md): threads share their process's mm, fd table and
 * rlimit but keep their own user and hw.target; a par block is judged by linearizability
 * (some order of its ops explains every outcome, and the VmPins read after the block).
 * Expectations here are worked out by hand from the kernel code cited in the spec's rules.
 */
import { fc, test as fcTest } from "@fast-check/vitest";
import { afterAll, describe, expect, it } from "vitest";
import { programArb } from "../../fuzz/generate.ts";
import { Case, PAR_KINDS, sameOutcome, checkTrace, expectedAudit, initialState, opProc, programHandles, programProblems, step, teardown, type Config, type Op, type Outcome, type ProfileId, type SpecState, type Trace } from "../../spec/index.ts";
import { otherUsers } from "../../spec/model/check.ts";
import { mmOf, pinnedOf, type State } from "../../spec/model/state.ts";
import { procOf } from "../../spec/model/step.ts";
import { CFG, o } from "./helpers.ts";
import { litmusFiles } from "../../spec/litmus/cases.ts";

const ALL: ProfileId[] = ["seed", "5.10-pre241", "5.10", "6.1-pre148", "6.1", "6.12-pre42", "6.12", "6.18", "7.2"];
const fork = (proc: string, from = "p0"): Op => ({ op: "fork", proc, from });
const thread = (proc: string, from = "p0"): Op => ({ op: "thread", proc, from });
const exit = (proc: string): Op => ({ op: "exit", proc });
const setuid = (proc: string, user: string): Op => ({ op: "setuid", proc, user });
const par = (ops: number): Op => ({ op: "par", ops });
const inP = (proc: string, op: Op): Op => ({ ...op, proc } as Op);
const st = (s: SpecState) => s as unknown as State;
const OK: Outcome = { ok: true };
const E = (errno: string): Outcome => ({ errno });

/** Walk along the first transition. */
function run(program: Op[], profile: ProfileId, config: Config = CFG) {
  let s = initialState(config, profile);
  const taken = [];
  for (const op of program) {
    const t = step(s, op, profile)[0];
    taken.push(t);
    s = t.next;
  }
  return { outcomes: taken.map((t) => t.outcome), vmPins: taken.map((t) => t.vmPinKb), last: st(s), lastS: s };
}

/**
 * The trace of one run: sequential ops along transition `choose`, each par block run in the
 * order `order(blockLength)` gives, its ops' VmPins read after the block; the audit after the
 * teardown.
 */
function traceOf(program: Op[], profile: ProfileId, config: Config, order: (n: number) => number[], choose: (n: number) => number = () => 0): Trace {
  let s = initialState(config, profile);
  const steps: { outcome: Outcome; vmPinKb: number }[] = [];
  for (let i = 0; i < program.length; i++) {
    const op = program[i];
    const ts = step(s, op, profile);
    const t = ts[choose(ts.length)];
    steps.push({ outcome: t.outcome, vmPinKb: t.vmPinKb });
    s = t.next;
    if (op.op !== "par") continue;
    const block = program.slice(i + 1, i + 1 + op.ops);
    const tasks = block.map((b) => procOf(st(s), b));
    const outs: Outcome[] = [];
    for (const k of order(block.length)) {
      const bt = step(s, block[k], profile);
      const x = bt[choose(bt.length)];
      outs[k] = x.outcome;
      s = x.next;
    }
    block.forEach((b, k) => {
      const vm = b.op === "exit" ? 0 : pinnedOf(st(s), mmOf(st(s), tasks[k])) * 4;
      steps.push({ outcome: outs[k], vmPinKb: vm });
    });
    i += op.ops;
  }
  const [end] = teardown(s, profile, program);
  const users = otherUsers(program);
  const a = expectedAudit(end, users);
  return { backend: "spec-self", kernel: null, steps, audit: { vmPinKb: a.vmPinKb, budgetPages: a.budgetPages, liveAux: a.liveAux, ...(a.budgets ? { budgets: a.budgets } : {}) } };
}

const IDENT = (n: number) => [...Array(n).keys()];
const REV = (n: number) => IDENT(n).reverse();

describe("threads share the mm, fd table and rlimit of their process", () => {
  it("a thread munmaps a mapping its process made: ok, the charge comes back to the shared mm (all eras)", () => {
    // rlimit 0 pages and a 4-page buffer under a 258-page user limit: no pinned_vm; mlock_kb 0
    // (limit 0): the 4 pages go to pinned_vm (extra), the thread's munmap refunds vma->vm_mm = the shared mm
    const cfg: Config = { ...CFG, mlockKb: 0, memlockPages: "unlimited" };
    const prog = [o.open("e0"), o.mmap("m0", "e0", 5), thread("p1"), inP("p1", o.munmap("m0"))];
    for (const p of ALL) {
      const r = run(prog, p, cfg);
      expect(r.outcomes, p).toEqual([OK, OK, OK, OK]);
      // mmap: 4 data pages + user page = 5 pages over limit 0: pinned_vm 5 (VmPin 20 kB); the thread reads the same mm
      expect(r.vmPins, p).toEqual([0, 20, 20, 0]);
      expect(r.last.vmas.length, p).toBe(0);
      expect(r.last.pinnedVm, p).toBe(0);
    }
  });

  it("a forked process's munmap at the same handle finds nothing there (its own mm): the buffer stays mapped", () => {
    const prog = [o.open("e0"), o.mmap("m0", "e0", 5), fork("p1"), inP("p1", o.munmap("m0"))];
    const r = run(prog, "6.12");
    expect(r.outcomes).toEqual([OK, OK, OK, OK]);
    expect(r.last.vmas.length).toBe(1);
  });

  it("set_output between two threads' events with cpu -1 is EINVAL (different hw.target), with cpu 0 ok", () => {
    const mk = (cpu: number | undefined): Op[] => [
      o.open("e0", cpu === undefined ? {} : { cpu }), o.mmap("m0", "e0", 2), thread("p1"),
      inP("p1", o.open("e1", cpu === undefined ? {} : { cpu })), inP("p1", o.setOutput("e1", "e0")),
    ];
    for (const p of ALL.filter((x) => x !== "seed")) {
      expect(run(mk(undefined), p).outcomes[4], p).toEqual(E("EINVAL"));
      expect(run(mk(0), p).outcomes[4], p).toEqual(OK);
    }
    // the thread holds the fd of e0 through the shared table: no EBADF; the same task: ok
    const same: Op[] = [o.open("e0"), o.mmap("m0", "e0", 2), thread("p1"), o.open("e1"), inP("p1", o.setOutput("e1", "e0"))];
    expect(run(same, "6.12").outcomes[4]).toEqual(OK);
  });

  it("a thread's exit closes nothing; the last task's exit runs exit_mmap and exit_files", () => {
    const prog = [fork("p1"), thread("p2", "p1"), inP("p2", o.open("e0")), inP("p2", o.mmap("m0", "e0", 2)), exit("p1")];
    const r = run(prog, "6.12");
    expect(r.outcomes.every((x) => "ok" in x)).toBe(true);
    // p1 (the process's first task) exited, p2 lives on: the mm (VMA at slot of mm 1) and the fd stay
    expect(r.last.vmas.length).toBe(1);
    expect(r.last.evs[0]!.fdMask).toBe(1 << 1);
    expect(r.last.procs[1].alive).toBe(false);
    const r2 = run([...prog, exit("p2")], "6.12");
    expect(r2.last.vmas.length).toBe(0);
    expect(r2.last.evs[0]!.freed).toBe(true);
    expect(r2.last.bufs[0].dead).toBe(true);
  });

  it("setuid in a thread changes that task's user only; its mmap charges its user, the shared mm", () => {
    const prog = [o.open("e0"), thread("p1"), setuid("p1", "u1"), inP("p1", o.mmap("m0", "e0", 3))];
    const r = run(prog, "6.12");
    expect(r.outcomes).toEqual([OK, OK, OK, OK]);
    expect(r.last.procs[0].user).toBe(0);
    expect(r.last.bufs[0].mmapUser).toBe(1);
    expect(r.last.lockedVmU[1]).toBe(3);
    expect(r.last.lockedVm).toBe(0);
  });

  it("an event of a thread that exited stays in the shared fd table; as a group leader: ENODEV on 6.12+ (EXIT state), EINVAL before (another task)", () => {
    const prog = [thread("p1"), inP("p1", o.open("e0")), exit("p1"), o.open("e1", { outputTo: "e0" }), o.close("e0")];
    for (const p of ALL) {
      const r = run(prog, p);
      const want = ["6.12-pre42", "6.12", "6.18", "7.2"].includes(p) ? E("ENODEV") : E("EINVAL");
      expect(r.outcomes, p).toEqual([OK, OK, OK, want, OK]);
    }
  });

  it("fork from a thread forks its process: the child holds the process's fds", () => {
    const prog = [o.open("e0"), thread("p1"), fork("p2", "p1"), inP("p2", o.mmap("m0", "e0", 2))];
    const r = run(prog, "6.12");
    expect(r.outcomes).toEqual([OK, OK, OK, OK]);
    expect(r.last.procs[2].mm).toBe(2);
    expect(r.last.vmas[0].slot >> 12).toBe(2);
  });
});

describe("par blocks: linearizability", () => {
  // Two processes map one event at once with different sizes: whichever runs first creates the
  // buffer (ok), the other finds rb with another nr_pages (EINVAL: perf_mmap "if (data_page_nr(rb) != nr_pages) goto unlock" -EINVAL)
  const race: Op[] = [o.open("e0"), fork("p1"), par(2), o.mmap("m0", "e0", 3), inP("p1", o.mmap("m1", "e0", 5))];
  const step0 = (outs: Outcome[]): Trace => {
    const t = traceOf(race, "6.12", CFG, IDENT);
    return { ...t, steps: t.steps.map((s, i) => (i >= 3 ? { ...s, outcome: outs[i - 3] } : s)) };
  };

  it("either order of two first mmaps of different sizes is accepted", () => {
    for (const p of ALL) {
      for (const ord of [IDENT, REV]) {
        const t = traceOf(race, p, CFG, ord);
        expect(t.steps.slice(3).map((s) => s.outcome), p).toEqual(ord === IDENT ? [OK, E("EINVAL")] : [E("EINVAL"), OK]);
        expect(checkTrace(race, CFG, p, t), `${p} ${ord === IDENT ? "in order" : "reversed"}`).toEqual({ accepted: true, profile: p });
      }
    }
  });

  it("both succeeding is rejected, naming the block (marker index, par.linearizable, outcome)", () => {
    const v = checkTrace(race, CFG, "6.12", step0([OK, OK]));
    expect(v.accepted).toBe(false);
    if (v.accepted) return;
    expect(v.divergence.kind).toBe("outcome");
    expect(v.divergence.opIndex).toBe(2);
    expect(v.divergence.rule).toBe("par.linearizable");
    // order 3,4: op 4 finds the 2-page buffer of op 3 and answers EINVAL; order 4,3: op 3 the 4-page one
    expect(v.divergence.expected).toHaveLength(2);
    expect(v.divergence.expected[0]).toMatch(/^order 3, 4: op 4 .*observed ok, allowed there: EINVAL/);
    expect(v.divergence.expected[1]).toMatch(/^order 4, 3: op 3 .*observed ok, allowed there: EINVAL/);
    expect(v.divergence.detail).toMatch(/explains every op but one/);
  });

  it("both failing is rejected: no order explains all but one (the first op of any order creates the buffer)", () => {
    const v = checkTrace(race, CFG, "6.12", step0([E("EINVAL"), E("EINVAL")]));
    expect(v.accepted).toBe(false);
    if (v.accepted) return;
    expect(v.divergence.rule).toBe("par.linearizable");
    // each order: the first op is ok, not EINVAL; then going on, the second op is EINVAL (explained)
    expect(v.divergence.detail).toMatch(/explains every op but one/);
    const both = checkTrace(race, CFG, "6.12", step0([E("EBADF"), E("EBADF")]));
    expect(!both.accepted && both.divergence.detail).toMatch(/none explains all but one op/);
  });

  it("a wrong VmPin after the block is rejected under par.linearizable", () => {
    const cfg: Config = { ...CFG, mlockKb: 0 };
    const prog: Op[] = [o.open("e0"), fork("p1"), o.rlimit("unlimited"), par(2), o.mmap("m0", "e0", 3), inP("p1", o.mmap("m1", "e0", 5))];
    const t = traceOf(prog, "6.12", { ...cfg, memlockPages: "unlimited" }, IDENT);
    // p0 created the 3-page buffer: 3 pages over limit 0 pinned in p0's mm: 12 kB
    expect(t.steps[4]).toEqual({ outcome: OK, vmPinKb: 12 });
    expect(checkTrace(prog, { ...cfg, memlockPages: "unlimited" }, "6.12", t).accepted).toBe(true);
    const bad = { ...t, steps: t.steps.map((s, i) => (i === 4 ? { ...s, vmPinKb: 0 } : s)) };
    const v = checkTrace(prog, { ...cfg, memlockPages: "unlimited" }, "6.12", bad);
    expect(!v.accepted && [v.divergence.rule, v.divergence.opIndex]).toEqual(["par.linearizable", 3]);
  });

  it("close racing mmap in another process: both orders accepted, the states of both carried on", () => {
    // p1 closes its fd while p0 maps: the fd of p0 lives, mmap ok in either order; then p1's mmap (no fd): EBADF
    const prog: Op[] = [o.open("e0"), fork("p1"), par(2), o.mmap("m0", "e0", 3), inP("p1", o.close("e0")), inP("p1", o.mmap("m1", "e0", 3))];
    for (const ord of [IDENT, REV]) {
      const t = traceOf(prog, "6.18", CFG, ord);
      expect(t.steps.slice(3).map((s) => s.outcome)).toEqual([OK, OK, E("EBADF")]);
      expect(checkTrace(prog, CFG, "6.18", t).accepted).toBe(true);
    }
  });

  it("SET_OUTPUT racing the last munmap: attach (ok) before it, EINVAL (no buffer) after it; both accepted, other combinations not", () => {
    // e1 (p1, cpu 0) set to output into e0 (cpu 0) while p0 unmaps e0's only mapping: before the
    // munmap e0 has rb: ok; after it the buffer is gone: "target has no buffer" EINVAL
    const prog: Op[] = [o.open("e0", { cpu: 0 }), o.mmap("m0", "e0", 2), fork("p1"), inP("p1", o.open("e1", { cpu: 0 })), par(2), o.munmap("m0"), inP("p1", o.setOutput("e1", "e0"))];
    for (const p of ALL.filter((x) => x !== "seed")) {
      const a = traceOf(prog, p, CFG, IDENT);
      const b = traceOf(prog, p, CFG, REV);
      expect(a.steps[6].outcome, p).toEqual(E("EINVAL"));
      expect(b.steps[6].outcome, p).toEqual(OK);
      expect(checkTrace(prog, CFG, p, a).accepted, p).toBe(true);
      expect(checkTrace(prog, CFG, p, b).accepted, p).toBe(true);
      const bad = { ...a, steps: a.steps.map((s, i) => (i === 5 ? { ...s, outcome: E("EINVAL") } : s)) };
      expect(checkTrace(prog, CFG, p, bad).accepted, p).toBe(false);
    }
  });

  it("coverage counts the rules of explaining orders only", () => {
    const cov = new Map<string, number>();
    checkTrace(race, CFG, "6.12", traceOf(race, "6.12", CFG, REV), cov);
    expect(cov.get("mmap.data.new")).toBe(1);
    expect(cov.get("mmap.data.size")).toBe(1);
    expect(cov.get("par.block")).toBe(1);
  });
});

/** Put par markers around windows of eligible consecutive ops from distinct tasks (the program stays valid). */
function withBlocks(program: Op[], pick: number[]): Op[] {
  const { mapProc } = programHandles(program);
  const out: Op[] = [];
  let j = 0;
  for (let i = 0; i < program.length;) {
    const want = 2 + (pick[j++ % pick.length] % 2);
    const win = program.slice(i, i + want);
    const tasks = new Set(win.map((x) => opProc(x, mapProc)));
    if (win.length === want && (pick[j % pick.length] % 3) !== 2 && win.every((x) => PAR_KINDS.has(x.op)) && tasks.size === want) {
      const cand = [...out, par(want), ...win, ...program.slice(i + want)];
      if (programProblems(cand).length === 0) { out.push(par(want), ...win); i += want; continue; }
    }
    out.push(program[i]);
    i++;
  }
  return out;
}

let blocks = 0;
describe("property: a trace of any order of every block is accepted", () => {
  afterAll(() => { expect(blocks).toBeGreaterThan(40); });
  const multi = programArb({ config: { ...CFG, capSetuid: true }, maxOps: 24 }).filter((p) => p.some((x) => x.op === "fork"));
  fcTest.prop([multi, fc.array(fc.nat(), { minLength: 4, maxLength: 12 }), fc.constantFrom(...ALL), fc.nat()], { numRuns: 300 })(
    "run in a random permutation, VmPins after the block: accepted",
    (prog, pick, profile, seed) => {
      const p = withBlocks(prog, pick);
      expect(programProblems(p)).toEqual([]);
      let x = seed >>> 0 || 1;
      const rnd = () => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x; };
      const order = (n: number) => { const a = IDENT(n); for (let i = n - 1; i > 0; i--) { const j = rnd() % (i + 1); [a[i], a[j]] = [a[j], a[i]]; } return a; };
      if (p.some((q) => q.op === "par")) blocks++;
      const t = traceOf(p, profile, { ...CFG, capSetuid: true }, order, (n) => rnd() % n);
      const v = checkTrace(p, { ...CFG, capSetuid: true }, profile, t);
      // a profile whose own rules break conservation is reported on the end state, never on a block
      if (!v.accepted) expect(v.divergence.kind, JSON.stringify(v.divergence)).toBe("invariant");
    },
  );
});

describe("litmus verdicts of the thread and par cases are the spec's", () => {
  const PERMS: Record<number, number[][]> = { 2: [[0, 1], [1, 0]], 3: [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]] };
  it("each case's expected outcomes, in an order of each block that allows them, with the spec's VmPins, get the case's verdict", () => {
    let n = 0, reordered = 0;
    for (const text of litmusFiles().values()) {
      const c = Case.parse(JSON.parse(text));
      if (!c.program.some((x) => x.op === "thread" || x.op === "par")) continue;
      // a predicted WARN is judged on the kernel's log, which a self-made trace has not
      if (c.verdict !== undefined && c.verdict !== "accepted" && c.verdict.kind === "kernel-warning") continue;
      const prof = c.profile!;
      let s = initialState(c.config, prof);
      const steps: { outcome: Outcome; vmPinKb: number }[] = [];
      for (let i = 0; i < c.program.length; i++) {
        const op = c.program[i];
        const t = step(s, op, prof).find((x) => sameOutcome(x.outcome, c.expect![i]));
        expect(t, `${c.name} op ${i}`).toBeDefined();
        steps.push({ outcome: t!.outcome, vmPinKb: t!.vmPinKb });
        s = t!.next;
        if (op.op !== "par") continue;
        const block = c.program.slice(i + 1, i + 1 + op.ops);
        const tasks = block.map((b) => procOf(st(s), b));
        let found: SpecState | null = null;
        for (const perm of PERMS[op.ops]) {
          let x: SpecState | null = s;
          for (const k of perm) x = x === null ? null : step(x, block[k], prof).find((y) => sameOutcome(y.outcome, c.expect![i + 1 + k]))?.next ?? null;
          if (x !== null) { found = x; if (perm[0] !== 0) reordered++; break; }
        }
        expect(found, `${c.name}: block at ${i}`).not.toBeNull();
        s = found!;
        block.forEach((b, k) => steps.push({ outcome: c.expect![i + 1 + k], vmPinKb: b.op === "exit" ? 0 : pinnedOf(st(s), mmOf(st(s), tasks[k])) * 4 }));
        i += op.ops;
      }
      const [end] = teardown(s, prof, c.program);
      const a = expectedAudit(end, otherUsers(c.program));
      const v = checkTrace(c.program, c.config, prof, { backend: "spec-self", kernel: null, steps, audit: { vmPinKb: a.vmPinKb, budgetPages: a.budgetPages, liveAux: a.liveAux, ...(a.budgets ? { budgets: a.budgets } : {}) } });
      const got = v.accepted ? "accepted" : `${v.divergence.kind} ${v.divergence.rule}`;
      const want = c.verdict === undefined || c.verdict === "accepted" ? "accepted" : `${c.verdict.kind} ${c.verdict.rule}`;
      expect(got, c.name).toBe(want);
      n++;
    }
    expect(n).toBeGreaterThan(90);
    // the -b cases need the other order
    expect(reordered).toBeGreaterThanOrEqual(27);
  });
});

describe("par blocks: a trace that ends inside a block", () => {
  it("is aborted, not an outcome divergence", () => {
    const prog: Op[] = [o.open("e0"), fork("p1"), par(2), o.mmap("m0", "e0", 3), inP("p1", o.mmap("m1", "e0", 5))];
    const t = traceOf(prog, "6.12", CFG, REV);
    const cut: Trace = { ...t, steps: t.steps.slice(0, 4), audit: null, aborted: "agent crashed" };
    const v = checkTrace(prog, CFG, "6.12", cut);
    expect(!v.accepted && [v.divergence.kind, v.divergence.opIndex]).toEqual(["aborted", 4]);
  });
});
