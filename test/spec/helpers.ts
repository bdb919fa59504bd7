/** Shared helpers for the spec tests. */
import { expect } from "vitest";
import { RULE_BY_ID, handleIndex, initialState, opProc, programHandles, step, teardown, expectedAudit, type Config, type Op, type Outcome, type ProfileId, type SpecState, type Trace, type Transition } from "../../spec/index.ts";
import { structuralProblems } from "../../spec/invariants.ts";
import { pinnedOf, type State } from "../../spec/model/state.ts";

export const CFG: Config = { pageSize: 4096, cpus: 2, mlockKb: 516, memlockPages: 0, capIpcLock: false, paranoid: 2, pmus: { aux: "auxspec_pmu" } };
export const LIMIT = (516 >> 2) * 2;
export const PROFILES: ProfileId[] = ["seed", "6.1-pre148", "6.1", "6.12-pre42", "6.12", "6.18"];

export const o = {
  open: (ev: string, x: Partial<Extract<Op, { op: "open" }>> = {}): Op => ({ op: "open", ev, pmu: "sw", ...x }),
  openAux: (ev: string, x: Partial<Extract<Op, { op: "open" }>> = {}): Op => ({ op: "open", ev, pmu: "aux", ...x }),
  close: (ev: string): Op => ({ op: "close", ev }),
  mmap: (map: string, ev: string, pages: number, pgoff = 0, prot: Extract<Op, { op: "mmap" }>["prot"] = "rw"): Op => ({ op: "mmap", map, ev, pages, pgoff, prot }),
  setAux: (map: string, offsetPages: number, sizePages: number): Op => ({ op: "setAux", map, offsetPages, sizePages }),
  munmap: (map: string, offset?: number, pages?: number): Op => ({ op: "munmap", map, ...(offset !== undefined ? { offset } : {}), ...(pages !== undefined ? { pages } : {}) }),
  mremap: (map: string, oldPages: number, newPages: number, x: { offset?: number; mayMove?: boolean; toFresh?: boolean } = {}): Op => ({ op: "mremap", map, oldPages, newPages, ...x }),
  mprotect: (map: string, prot: Extract<Op, { op: "mprotect" }>["prot"], offset?: number, pages?: number): Op => ({ op: "mprotect", map, prot, ...(offset !== undefined ? { offset } : {}), ...(pages !== undefined ? { pages } : {}) }),
  fixedAnon: (map: string, offset: number, pages: number): Op => ({ op: "mapFixedAnon", map, offset, pages }),
  setOutput: (ev: string, target: string | null): Op => ({ op: "setOutput", ev, target }),
  rlimit: (memlockPages: number | "unlimited"): Op => ({ op: "rlimit", memlockPages }),
  sysctl: (kb: number): Op => ({ op: "sysctlMlock", kb }),
  fault: (fail: boolean): Op => ({ op: "auxFault", fail }),
  touch: (map: string, page: number, write = false): Op => ({ op: "touch", map, page, write }),
  read: (map: string): Op => ({ op: "readUserPage", map }),
};

/** Walk the preferred path (first transition) of a program; returns the transitions taken and the end state. */
export function walk(program: Op[], profile: ProfileId, config: Config = CFG): { taken: Transition[]; last: SpecState; end: SpecState } {
  let s = initialState(config, profile);
  const taken: Transition[] = [];
  for (const op of program) {
    const t = step(s, op, profile)[0];
    taken.push(t);
    s = t.next;
  }
  const [end] = teardown(s, profile, program);
  return { taken, last: s, end };
}

/** A trace the spec itself would produce along its preferred path (audit included). */
export function specTrace(program: Op[], profile: ProfileId, config: Config = CFG): Trace {
  const { taken, end } = walk(program, profile, config);
  const a = expectedAudit(end);
  return { backend: "spec-self", kernel: null, steps: taken.map((t) => ({ outcome: t.outcome, vmPinKb: t.vmPinKb })), audit: { vmPinKb: a.vmPinKb, budgetPages: a.budgetPages, liveAux: a.liveAux } };
}

export const outcomes = (ts: Transition[]): Outcome[] => ts.map((t) => t.outcome);

/** Step a program along `choose`'s picks, checking every transition: total, rule-consistent
 *  (profile, errno), VmPin of the op's process, structurally sound. Returns the last state. */
export function checkTransitions(profile: ProfileId, program: Op[], config: Config, choose: (n: number) => number): SpecState {
  let s = initialState(config, profile);
  const { mapProc } = programHandles(program);
  for (const op of program) {
    // Step VmPin is the op's task's mm's (spec/program.ts opProc); fork: the child's 0; exit and par: 0
    const p = handleIndex(opProc(op, mapProc));
    let ts;
    try { ts = step(s, op, profile); } catch (e) { throw new Error(`step threw on ${JSON.stringify(op)}: ${e}`); }
    expect(ts.length).toBeGreaterThan(0);
    for (const t of ts) {
      expect(t.rule).not.toBe("spec.internal");
      const r = RULE_BY_ID.get(t.rule);
      expect(r, t.rule).toBeDefined();
      expect(r!.profiles, `${t.rule} under ${profile}`).toContain(profile);
      if ("errno" in t.outcome) expect(r!.errno, t.rule).toBe(t.outcome.errno);
      else expect(r!.errno, t.rule).toBeUndefined();
      const st = t.next as unknown as State;
      // a thread's VmPin is its process's mm's (issue 14): procs[task].mm names that process
      expect(t.vmPinKb).toBe(op.op === "exit" || op.op === "par" ? 0 : pinnedOf(st, st.procs[p]?.mm ?? p) * 4);
      expect(structuralProblems(st), `${profile} after ${JSON.stringify(op)}`).toEqual([]);
    }
    s = ts[choose(ts.length)].next;
  }
  return s;
}
