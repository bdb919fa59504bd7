/**
 * Several processes and users (issue 13, spec/notes/processes.md): what each op does to the
 * counters, computed here by hand from the kernel source (perf_mmap charges current_user()
 * and vma->vm_mm; perf_mmap_close refunds rb->mmap_user and vma->vm_mm; dup_mmap skips
 * VM_DONTCOPY; exit_mmap closes VMAs in address order before exit_files), and that the
 * litmus verdicts are what the spec's own end states give.
 */
import { fc, test as fcTest } from "@fast-check/vitest";
import { describe, expect, it } from "vitest";
import { programArb } from "../../fuzz/generate.ts";
import { abstractState, programProblems } from "../../spec/index.ts";
import { structuralProblems } from "../../spec/invariants.ts";
import { Case, isMultiProcess, checkInvariants, checkTrace, expectedAudit, initialState, sameOutcome, step, teardown, type Config, type Op, type ProfileId, type SpecState, type Trace } from "../../spec/index.ts";
import { litmusFiles } from "../../spec/litmus/cases.ts";
import { lockedOf, pinnedOf, type State } from "../../spec/model/state.ts";
import { CFG, LIMIT, checkTransitions, o } from "./helpers.ts";

const ALL: ProfileId[] = ["seed", "5.10-pre241", "5.10", "6.1-pre148", "6.1", "6.12-pre42", "6.12", "6.18", "7.2"];
const M618: ProfileId[] = ["6.18", "7.2"];
const fork = (proc: string, from = "p0"): Op => ({ op: "fork", proc, from });
const exit = (proc: string): Op => ({ op: "exit", proc });
const setuid = (proc: string, user: string): Op => ({ op: "setuid", proc, user });
const sendFd = (proc: string, to: string, ev: string): Op => ({ op: "sendFd", proc, to, ev });
const inP = (proc: string, op: Op): Op => ({ ...op, proc } as Op);
const st = (s: SpecState) => s as unknown as State;

/** Walk along the first transition; every state after each op, the transitions, the end state. */
function run(program: Op[], profile: ProfileId, config: Config = CFG) {
  let s = initialState(config, profile);
  const taken = [];
  const states: State[] = [];
  for (const op of program) {
    const t = step(s, op, profile)[0];
    taken.push(t);
    s = t.next;
    states.push(st(s));
  }
  const [end] = teardown(s, profile, program);
  return { taken, states, last: st(s), end: st(end), endS: end };
}

/** A trace that shows the program's expected outcomes with the spec's VmPin; no audit. */
function selfTrace(program: Op[], profile: ProfileId, config: Config, expect: Case["expect"]): Trace | null {
  let states = [initialState(config, profile)];
  const steps = [];
  for (let i = 0; i < program.length; i++) {
    const ts = states.flatMap((s) => step(s, program[i], profile)).filter((t) => sameOutcome(t.outcome, expect![i]));
    if (ts.length === 0) return null;
    steps.push({ outcome: ts[0].outcome, vmPinKb: ts[0].vmPinKb });
    states = ts.filter((t) => t.vmPinKb === ts[0].vmPinKb).map((t) => t.next);
  }
  return { backend: "spec-self", kernel: null, steps, audit: null };
}

describe("processes: accounting goes to the mapping process's user and mm", () => {
  it("an AUX area mapped by another user is refunded to rb->mmap_user (all eras): u1 keeps +4, u0 ends at -4", () => {
    const prog = [o.openAux("e0"), o.mmap("m0", "e0", 3), o.setAux("m0", 4, 4), fork("p1"), setuid("p1", "u1"), inP("p1", o.mmap("m1", "e0", 4, 4)), exit("p1")];
    for (const p of ALL) {
      const { taken, states, end, endS } = run(prog, p);
      expect(taken.map((t) => t.outcome), p).toEqual(prog.map(() => ({ ok: true })));
      // data: u0 charged 3 (user page + 2); AUX: u1 charged 4 (its own budget)
      expect(lockedOf(states[5], 0), p).toBe(3);
      expect(lockedOf(states[5], 1), p).toBe(4);
      // exit closes the AUX VMA: 4 pages refunded to u0 (the data buffer's creator)
      expect(lockedOf(states[6], 0), p).toBe(-1);
      expect(lockedOf(states[6], 1), p).toBe(4);
      expect(taken[6].marks, p).toContain("munmap.refund.other_user");
      expect(lockedOf(end, 0), p).toBe(-4);
      expect(lockedOf(end, 1), p).toBe(4);
      const inv = checkInvariants(endS, CFG);
      expect(inv.map((v) => v.id), p).toContain("conserve.locked_vm");
      expect(inv.find((v) => v.detail.includes("u1"))?.detail, p).toMatch(/locked_vm of u1 ends at 4 pages/);
      // the audit: u1 probes 258 - 4; u0's locked_vm is negative: 6.1+ clamp it to the limit (budget 0), the seed has no clamp
      const a = expectedAudit(endS, ["u1"]);
      expect(a.budgets, p).toEqual({ u1: LIMIT - 4 });
      expect(a.budgetPages, p).toBe(p === "seed" ? LIMIT + 4 : 0);
    }
  });

  it("pinned_vm is refunded from the closing VMA's mm: the child's mm goes negative at exit, p0's keeps the pages", () => {
    const prog = [o.rlimit("unlimited"), o.open("e0"), o.mmap("m0", "e0", 513), fork("p1"), inP("p1", o.mmap("m1", "e0", 513)), o.munmap("m0"), exit("p1")];
    for (const p of ALL) {
      const { taken, states, end, endS } = run(prog, p);
      expect(taken.map((t) => t.outcome), p).toEqual(prog.map(() => ({ ok: true })));
      // 513 pages over a 258-page limit: 255 go to p0's pinned_vm
      expect(pinnedOf(states[2], 0), p).toBe(255);
      expect(taken[2].vmPinKb, p).toBe(255 * 4);
      expect(taken[3].vmPinKb, p).toBe(0); // fork: the child's fresh mm
      expect(pinnedOf(states[3], 1), p).toBe(0);
      expect(taken[4].vmPinKb, p).toBe(0); // the child's re-map charges no pinned_vm
      expect(pinnedOf(states[6], 1), p).toBe(-255);
      expect(taken[6].vmPinKb, p).toBe(0); // exit: the mm is gone
      expect(taken[6].marks, p).toContain("munmap.refund.other_mm");
      expect(pinnedOf(end, 0), p).toBe(255);
      const inv = checkInvariants(endS, CFG);
      expect(inv.find((v) => v.id === "conserve.pinned_vm" && v.detail.includes("p1"))?.detail, p).toMatch(/p1's mm is -255 pages when it exits/);
      // locked_vm: refunded to u0 in full, except the 6.15+ re-map charge (513 pages, never refunded)
      expect(lockedOf(end, 0), p).toBe(M618.includes(p) ? 513 : 0);
    }
  });

  it("conserve.pinned_vm: an mm that went negative is flagged even when every mm is back at 0 when it goes", () => {
    // e0's 255 excess pages are charged to p0 and refunded from p1 (its VMA is the last);
    // p1's own buffer is charged to p1 and refunded from p0: both end at 0, p1 went to -255
    const prog = [o.rlimit("unlimited"), o.open("e0"), o.mmap("m0", "e0", 513), fork("p1"), inP("p1", o.mmap("m1", "e0", 513)), o.munmap("m0"),
      inP("p1", o.munmap("m1")), inP("p1", o.open("e1")), inP("p1", o.mmap("m2", "e1", 513)), sendFd("p1", "p0", "e1"), o.mmap("m3", "e1", 513), exit("p1")];
    // (6.15+ charge the re-maps to locked_vm, which moves the later excess: other numbers)
    for (const p of ALL.filter((x) => !M618.includes(x))) {
      const { taken, states, end, endS } = run(prog, p);
      expect(taken.map((t) => t.outcome), p).toEqual(prog.map(() => ({ ok: true })));
      expect(taken[6].vmPinKb, p).toBe(-255 * 4); // VmPin prints it unsigned
      expect(pinnedOf(states[8], 1), p).toBe(0);
      expect(pinnedOf(states[11], 1), p).toBe(0);
      expect(pinnedOf(end, 0), p).toBe(0);
      const inv = checkInvariants(endS, CFG);
      expect(inv.filter((v) => v.id === "conserve.pinned_vm").map((v) => v.detail), p).toEqual(["pinned_vm of p1's mm went down to -255 pages (negative: refunded pages another mm was charged) before it came back to 0"]);
      expect(inv.map((v) => v.id), p).toEqual(["conserve.pinned_vm"]);
    }
  });

  it("the limit test reads the mapping process's user, mm and rlimit", () => {
    // u1 is a fresh uid: its 258 pages are free while u0 has used 257 of its own
    const prog = [o.open("e0"), o.mmap("m0", "e0", 257), fork("p1"), inP("p1", o.open("e1")), inP("p1", o.mmap("m1", "e1", 257)), setuid("p1", "u1"), inP("p1", o.mmap("m2", "e1", 257)), inP("p1", o.open("e2")), inP("p1", o.mmap("m3", "e2", 257))];
    for (const p of ALL) {
      const { taken, states } = run(prog, p);
      expect(taken[4].outcome, p).toEqual({ errno: "EPERM" }); // as u0: over the budget, rlimit 0
      expect(taken[6].outcome, p).toEqual({ ok: true }); // as u1: within its own budget
      expect(lockedOf(states[6], 1), p).toBe(257);
      expect(lockedOf(states[6], 0), p).toBe(257);
      expect(taken[8].outcome, p).toEqual({ errno: "EPERM" }); // u1's budget is used up now
    }
    // a child with RLIMIT_MEMLOCK unlimited takes the excess into ITS mm; p0's stays 0
    const prog2 = [fork("p1"), inP("p1", o.rlimit("unlimited")), inP("p1", o.open("e0")), inP("p1", o.mmap("m0", "e0", 513)), o.open("e1"), o.mmap("m1", "e1", 2)];
    for (const p of ALL) {
      const { taken, states } = run(prog2, p);
      expect(taken[3].outcome, p).toEqual({ ok: true });
      expect(taken[3].vmPinKb, p).toBe(255 * 4);
      expect(pinnedOf(states[3], 0), p).toBe(0);
      expect(taken[5].outcome, p).toEqual({ errno: "EPERM" }); // u0's budget is used up by the child
      expect(taken[5].vmPinKb, p).toBe(0);
    }
  });
});

describe("processes: fds, VMAs, exit", () => {
  it("fork copies fds and anonymous VMAs, not perf VMAs; exit closes the child's VMAs, then its fds", () => {
    const prog = [o.open("e0"), fork("p1"), inP("p1", o.mmap("m0", "e0", 3)), o.close("e0"), exit("p1"), o.open("e1"), o.mmap("m1", "e1", 3)];
    for (const p of ALL) {
      const { taken, states, endS } = run(prog, p);
      expect(taken.map((t) => t.outcome), p).toEqual(prog.map(() => ({ ok: true })));
      // the child's VMA and fd keep e0 alive after p0's close; its exit releases it
      expect(states[3].evs[0]?.freed, p).toBe(false);
      expect(states[4].evs[0]?.freed, p).toBe(true);
      expect(states[4].bufs[0].dead, p).toBe(true);
      expect(lockedOf(states[4], 0), p).toBe(0);
      expect(checkInvariants(endS, CFG), p).toEqual([]);
    }
  });

  it("setuid needs the right to switch only for another user; sendFd needs an fd", () => {
    const c = { ...CFG, capSetuid: false };
    const prog = [fork("p1"), setuid("p1", "u1"), setuid("p1", "u0"), inP("p1", o.open("e0")), sendFd("p0", "p1", "e0"), sendFd("p1", "p0", "e0"), o.close("e0")];
    const { taken } = run(prog, "6.12", c);
    expect(taken.map((t) => t.rule)).toEqual(["fork.ok", "setuid.eperm", "setuid.ok", "open.ok", "sendfd.ebadf", "sendfd.ok", "close.ok"]);
    expect(run(prog, "6.12").taken[1].rule).toBe("setuid.ok"); // capSetuid defaults to true
  });

  it("the teardown exits live children first (their VMAs and fds), then p0 unmaps and closes", () => {
    const prog = [o.openAux("e0"), fork("p1"), inP("p1", o.mmap("m0", "e0", 3)), inP("p1", o.setAux("m0", 4, 4)), inP("p1", o.mmap("m1", "e0", 4, 4))];
    for (const p of ALL) {
      const { end, endS } = run(prog, p);
      expect(end.procs[1].alive, p).toBe(false);
      expect(lockedOf(end, 0), p).toBe(0);
      expect(end.auxFrees, p).toBe(1);
      expect(checkInvariants(endS, CFG), p).toEqual([]);
    }
  });
});

describe("checkTrace with processes", () => {
  const prog = [o.openAux("e0"), o.mmap("m0", "e0", 3), o.setAux("m0", 4, 4), fork("p1"), setuid("p1", "u1"), inP("p1", o.mmap("m1", "e0", 4, 4)), exit("p1")];
  const trace = (budgets?: Record<string, number>): Trace => ({
    backend: "t", kernel: null, steps: prog.map(() => ({ outcome: { ok: true }, vmPinKb: 0 })), audit: { vmPinKb: 0, budgetPages: 0, liveAux: 0, ...(budgets ? { budgets } : {}) },
  });

  it("compares each user's budget and counts the mechanism markers", () => {
    const cov = new Map<string, number>();
    const v = checkTrace(prog, CFG, "6.12", trace({ u1: LIMIT - 4 }), cov);
    // the prediction matches; conservation flags it (u0 above its start)
    expect(v.accepted).toBe(false);
    if (!v.accepted) expect(v.divergence.rule).toBe("conserve.locked_vm");
    expect(cov.get("munmap.refund.other_user")).toBe(1);
    const w = checkTrace(prog, CFG, "6.12", trace({ u1: LIMIT }));
    expect(w.accepted).toBe(false);
    if (!w.accepted) { expect(w.divergence.rule).toBe("audit.budgets"); expect(w.divergence.observed).toBe(`u1 budget ${LIMIT} pages`); }
  });

  it("a single-process program fires no marker", () => {
    const cov = new Map<string, number>();
    const p1 = [o.openAux("e0"), o.mmap("m0", "e0", 3), o.setAux("m0", 4, 4), o.mmap("m1", "e0", 4, 4)];
    checkTrace(p1, CFG, "6.12", { backend: "t", kernel: null, steps: p1.map(() => ({ outcome: { ok: true }, vmPinKb: 0 })), audit: null }, cov);
    expect([...cov.keys()].filter((k) => k.startsWith("munmap.refund"))).toEqual([]);
  });
});

describe("litmus verdicts are the spec's", () => {
  it("every multi-process case's verdict (or acceptance) is what the spec's end state gives under its profile", () => {
    let n = 0;
    for (const text of litmusFiles().values()) {
      const c = Case.parse(JSON.parse(text));
      if (!isMultiProcess(c.program)) continue;
      // par blocks: their expected outcomes follow some order, not the program's (test/spec/races.test.ts)
      if (c.program.some((x) => x.op === "par")) continue;
      if (c.verdict !== undefined && c.verdict !== "accepted" && c.verdict.kind === "kernel-warning") continue;
      const t = selfTrace(c.program, c.profile!, c.config, c.expect);
      expect(t, c.name).not.toBeNull();
      const v = checkTrace(c.program, c.config, c.profile!, t!);
      const got = v.accepted ? "accepted" : `${v.divergence.kind} ${v.divergence.rule}`;
      const want = c.verdict === undefined || c.verdict === "accepted" ? "accepted" : `${c.verdict.kind} ${c.verdict.rule}`;
      expect(got, c.name).toBe(want);
      n++;
    }
    expect(n).toBeGreaterThan(120);
  });
});

// ---- random multi-process programs: random single-process programs (fuzz/generate.ts) with
// fork/exit/setuid/sendFd inserted and ops moved into random live processes
function mix(program: Op[], picks: number[]): Op[] {
  let k = 0;
  const pick = (n: number) => picks[k++ % picks.length] % n;
  const out: Op[] = [];
  const alive: string[] = ["p0"];
  let forks = 0;
  const evs: string[] = [];
  const owner = new Map<string, string>();
  for (const op of program) {
    const r = pick(8);
    if (r === 0 && forks < 3) { forks++; const proc = `p${forks}`; out.push(fork(proc, alive[pick(alive.length)])); alive.push(proc); }
    else if (r === 1 && alive.length > 1) { const i = 1 + pick(alive.length - 1); out.push(exit(alive[i])); alive.splice(i, 1); }
    else if (r === 2) out.push(setuid(alive[pick(alive.length)], `u${pick(3)}`));
    else if (r === 3 && evs.length > 0) out.push(sendFd(alive[pick(alive.length)], alive[pick(alive.length)], evs[pick(evs.length)]));
    if (op.op === "open") evs.push(op.ev);
    out.push(ownedByLive(op.op !== "sysctlMlock" && op.op !== "auxFault" && pick(2) === 0 ? inP(alive[pick(alive.length)], op) : op, alive, owner));
  }
  return out;
}

/** A map-handle op without proc whose handle's process has exited names p0 (programProblems
 *  refuses it otherwise); records each mmap's process. */
function ownedByLive(op: Op, alive: readonly string[], owner: Map<string, string>): Op {
  if (op.op === "mmap") { owner.set(op.map, op.proc ?? "p0"); return op; }
  if ("map" in op && op.proc === undefined && !alive.includes(owner.get(op.map) ?? "p0")) return { ...op, proc: "p0" } as Op;
  return op;
}

describe("random multi-process programs", () => {
  const RUNS = Number(process.env.SPEC_PROP_RUNS ?? 60);
  const cfgs: Config[] = [{ ...CFG, memlockPages: "unlimited" }, { ...CFG, memlockPages: 16, capSetuid: false }];
  for (const profile of ALL) {
    fcTest.prop([programArb({ config: cfgs[0], maxOps: 24, processes: false }), fc.array(fc.nat(), { minLength: 40, maxLength: 40 }), fc.nat(1)], { numRuns: RUNS, seed: 4242 })(
      `${profile}: total, rule-consistent, structurally sound, everything freed after teardown; 5.10/6.1/6.12 conserve unless a refund marker fired`,
      (single, picks, ci) => {
        const program = mix(single, picks);
        expect(programProblems(program)).toEqual([]);
        const config = cfgs[ci];
        const last = checkTransitions(profile, program, config, (n) => picks[n % picks.length] % n);
        for (const e of teardown(last, profile, program)) {
          expect(structuralProblems(e as unknown as State)).toEqual([]);
          const a = abstractState(e, program);
          expect(a.buffers).toEqual([]);
          expect(a.events).toEqual([]);
        }
        // the spec's own first path, judged: after the Aug 2025 fixes only the refund asymmetries
        // (marked) break conservation (5.10 also its partial-move AUX leak)
        const cov = new Map<string, number>();
        const v = checkTrace(program, config, profile, selfPath(program, profile, config), cov);
        const marked = cov.has("munmap.refund.other_user") || cov.has("munmap.refund.other_mm");
        if (!v.accepted) {
          expect(v.divergence.kind).toBe("invariant");
          if ((profile === "6.1" || profile === "6.12") && !marked) expect.fail(`${profile}: ${v.divergence.detail} without a refund marker`);
        }
      },
    );
  }
});

/** The trace of the spec's first path with the audit it predicts (budgets of the users named). */
function selfPath(program: Op[], profile: ProfileId, config: Config): Trace {
  const { taken, endS } = run(program, profile, config);
  const users = [...new Set(program.flatMap((op) => (op.op === "setuid" && op.user !== "u0" ? [op.user] : [])))];
  const a = expectedAudit(endS, users);
  return { backend: "spec-self", kernel: null, steps: taken.map((t) => ({ outcome: t.outcome, vmPinKb: t.vmPinKb })), audit: { vmPinKb: a.vmPinKb, budgetPages: a.budgetPages, liveAux: a.liveAux, ...(a.budgets ? { budgets: a.budgets } : {}) } };
}
