/** checkTrace and explain: divergence kinds, their order, coverage. */
import { describe, expect, it } from "vitest";
import { checkTrace, explain, type Trace } from "../../spec/index.ts";
import { vmPinMatches } from "../../spec/model/check.ts";
import { CFG, LIMIT, o, specTrace } from "./helpers.ts";

const prog = [o.open("e0"), o.mmap("m0", "e0", 3), o.setAux("m0", 4, 2), o.read("m0"), o.munmap("m0", 1, 1), o.munmap("m0")];
const clone = (t: Trace): Trace => JSON.parse(JSON.stringify(t));

describe("checkTrace", () => {
  it("accepts the trace of a kernel that behaves as the profile says, and counts the rules it took", () => {
    const cov = new Map<string, number>();
    const v = checkTrace(prog, CFG, "6.12", specTrace(prog, "6.12"), cov);
    expect(v).toEqual({ accepted: true, profile: "6.12" });
    expect(cov.get("munmap.split")).toBe(1);
    expect(cov.get("mmap.data.new")).toBe(1);
    expect(cov.get("readpage.user")).toBe(1);
  });

  it("outcome divergence: the first op whose observed outcome is not allowed, with what was", () => {
    const t = clone(specTrace(prog, "6.12"));
    t.steps[4] = { outcome: { ok: true }, vmPinKb: 0 }; // what a pre-may_split kernel does
    const v = checkTrace(prog, CFG, "6.12", t);
    expect(v.accepted).toBe(false);
    if (v.accepted) return;
    expect(v.divergence).toMatchObject({ kind: "outcome", opIndex: 4, rule: "munmap.split", expected: ["EINVAL"], observed: "ok" });
    // 6.12-pre42 allows the split, but its end split opens the upper piece (pgoff 2), counted
    // as an AUX mapping that is never uncounted: reported as a conservation violation
    const w = checkTrace(prog, CFG, "6.12-pre42", t);
    if (!w.accepted) expect(w.divergence).toMatchObject({ kind: "invariant", rule: "conserve.counters" });
    else expect.unreachable();
  });

  it("the user page contents are part of the outcome", () => {
    const t = clone(specTrace(prog, "6.1"));
    const s = t.steps[3].outcome as { ok: true; page: { auxSize: number } };
    s.page.auxSize = 4096;
    const v = checkTrace(prog, CFG, "6.1", t);
    expect(v.accepted).toBe(false);
    if (!v.accepted) expect(v.divergence).toMatchObject({ kind: "outcome", opIndex: 3, rule: "readpage.user" });
  });

  it("vmpin divergence: outcome allowed, VmPin not", () => {
    const t = clone(specTrace(prog, "6.18"));
    t.steps[1].vmPinKb = 12;
    const v = checkTrace(prog, CFG, "6.18", t);
    expect(v.accepted).toBe(false);
    if (!v.accepted) expect(v.divergence).toMatchObject({ kind: "vmpin", opIndex: 1, expected: ["0 kB"], observed: "12 kB" });
  });

  it("a negative pinned_vm matches VmPin printed unsigned", () => {
    expect(vmPinMatches(-8, 2 ** 64 - 8)).toBe(true);
    expect(vmPinMatches(-8, -8)).toBe(true);
    expect(vmPinMatches(8, 2 ** 64 + 8)).toBe(false);
    expect(vmPinMatches(0, 4)).toBe(false);
  });

  it("aborted: a trace that stops early, or says it aborted", () => {
    const t = clone(specTrace(prog, "6.1"));
    t.steps = t.steps.slice(0, 3);
    t.aborted = "the executor crashed";
    const v = checkTrace(prog, CFG, "6.1", t);
    expect(v.accepted).toBe(false);
    if (!v.accepted) expect(v.divergence).toMatchObject({ kind: "aborted", opIndex: 3, observed: "the executor crashed" });
    const short = clone(specTrace(prog, "6.1"));
    short.steps.pop();
    const w = checkTrace(prog, CFG, "6.1", short);
    if (!w.accepted) expect(w.divergence.kind).toBe("aborted");
    else expect.unreachable();
    const done = clone(specTrace(prog, "6.1"));
    done.aborted = "killed after the last op";
    const x = checkTrace(prog, CFG, "6.1", done);
    if (!x.accepted) expect(x.divergence).toMatchObject({ kind: "aborted", opIndex: prog.length });
    else expect.unreachable();
  });

  it("an earlier outcome divergence wins over a later abort", () => {
    const t = clone(specTrace(prog, "6.1"));
    t.steps[1] = { outcome: { errno: "EPERM" }, vmPinKb: 0 };
    t.steps = t.steps.slice(0, 3);
    t.aborted = "crash";
    const v = checkTrace(prog, CFG, "6.1", t);
    if (!v.accepted) expect(v.divergence).toMatchObject({ kind: "outcome", opIndex: 1 });
    else expect.unreachable();
  });

  it("kernel-warning: any WARN in the audit", () => {
    const t = clone(specTrace(prog, "6.1"));
    t.audit!.warnings = ["WARNING: CPU: 0 PID: 1 at kernel/events/core.c:6232 perf_mmap_close+0x1/0x2"];
    const v = checkTrace(prog, CFG, "6.1", t);
    if (!v.accepted) expect(v.divergence).toMatchObject({ kind: "kernel-warning", opIndex: -1 });
    else expect.unreachable();
  });

  it("audit: observed VmPin, budget and AUX counters against the prediction, then conservation", () => {
    const t = clone(specTrace(prog, "6.1"));
    expect(t.audit).toEqual({ vmPinKb: 0, budgetPages: LIMIT, liveAux: 0 });
    t.audit!.budgetPages = LIMIT - 3;
    const v = checkTrace(prog, CFG, "6.1", t);
    if (!v.accepted) expect(v.divergence).toMatchObject({ kind: "invariant", opIndex: -1, rule: "audit.budgetPages" });
    else expect.unreachable();
    const u = clone(specTrace(prog, "6.1"));
    u.audit!.vmPinKb = 4;
    const w = checkTrace(prog, CFG, "6.1", u);
    if (!w.accepted) expect(w.divergence).toMatchObject({ kind: "vmpin", rule: "audit.vmPinKb" });
    else expect.unreachable();
    const x = clone(specTrace(prog, "6.1"));
    x.audit = { vmPinKb: 0, budgetPages: LIMIT, liveAux: 0, auxSetups: 1, auxFrees: 1 };
    const y = checkTrace(prog, CFG, "6.1", x);
    if (!y.accepted) expect(y.divergence).toMatchObject({ rule: "audit.auxSetups" });
    else expect.unreachable();
  });

  it("no audit: the spec's own end state is still checked", () => {
    const leak = [o.open("e0"), o.mmap("m0", "e0", 3), o.mmap("m1", "e0", 3)];
    const t = clone(specTrace(leak, "6.18"));
    t.audit = null;
    const v = checkTrace(leak, CFG, "6.18", t);
    if (!v.accepted) expect(v.divergence).toMatchObject({ kind: "invariant", rule: "conserve.locked_vm" });
    else expect.unreachable();
  });
});

describe("explain", () => {
  it("lists what was allowed at each op, and the verdict", () => {
    const t = clone(specTrace(prog, "6.18"));
    t.steps[4] = { outcome: { ok: true }, vmPinKb: 0 };
    const e = explain(prog, CFG, "6.18", t);
    expect(e.perOp.length).toBe(prog.length);
    expect(e.perOp[1].allowed).toEqual([{ ok: true }, { errno: "ENOMEM" }]);
    expect(e.perOp[1].rule).toBe("mmap.data.new | mmap.data.enomem");
    expect(e.perOp[4]).toMatchObject({ allowed: [{ errno: "EINVAL" }], allowedVmPinKb: [0], rule: "munmap.split" });
    expect(e.verdict.accepted).toBe(false);
  });
});
