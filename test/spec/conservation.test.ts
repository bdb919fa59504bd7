/**
 * Conservation, the same for every profile: what breaks it, and that checkTrace reports a
 * profile whose own prediction breaks it even when the trace matches the prediction.
 */
import { describe, expect, it } from "vitest";
import { abstractState, checkInvariants, checkTrace, expectedAudit, INVARIANTS, type ProfileId } from "../../spec/index.ts";
import { CFG, LIMIT, PROFILES, o, specTrace, walk } from "./helpers.ts";

const ids = (p: ProfileId, prog: Parameters<typeof walk>[0]) => checkInvariants(walk(prog, p).end, CFG).map((v) => v.id);

describe("conservation invariants", () => {
  it("are named conserve.*", () => {
    expect(INVARIANTS.map((i) => i.id)).toContain("conserve.locked_vm");
    for (const i of INVARIANTS) expect(i.id).toMatch(/^conserve\./);
  });

  it("CVE-2025-38563: splitting an AUX VMA leaks the AUX area before may_split (seed, 6.1-pre148, 6.12-pre42)", () => {
    // perf_mmap_open counts the new piece (vm_pgoff != 0) as AUX; perf_mmap_close only
    // uncounts vm_pgoff == aux_pgoff: aux_mmap_count never reaches 0 again.
    const prog = [o.openAux("e0"), o.mmap("m0", "e0", 3), o.setAux("m0", 4, 4), o.mmap("m1", "e0", 4, 4), o.munmap("m1", 3, 1)];
    for (const p of PROFILES) {
      const { taken, end } = walk(prog, p);
      const split = p === "seed" || p.endsWith("pre148") || p.endsWith("pre42") || p.endsWith("pre241");
      expect(taken[4].outcome).toEqual(split ? { ok: true } : { errno: "EINVAL" });
      const a = expectedAudit(end);
      expect(a.liveAux).toBe(split ? 1 : 0);
      expect(a.budgetPages).toBe(split ? LIMIT - 4 : LIMIT);
      const inv = checkInvariants(end, CFG).map((v) => v.id);
      expect(inv.includes("conserve.aux_freed")).toBe(split);
      expect(inv.includes("conserve.locked_vm")).toBe(split);
    }
  });

  it("splitting the DATA VMA while an AUX area exists leaks it too, and the split order decides which cut does", () => {
    // 6.1 (and 3.18) munmap: the new piece of the first split is the removed upper part
    // (pgoff 2: counted as AUX); 6.12 opens the kept lower part (pgoff 0: not counted).
    // At the end split it is the other way round.
    const base = [o.openAux("e0"), o.mmap("m0", "e0", 3), o.setAux("m0", 4, 4), o.mmap("m1", "e0", 4, 4)];
    const tail = [...base, o.munmap("m0", 2, 1)];
    const head = [...base, o.munmap("m0", 0, 1)];
    expect(ids("6.1-pre148", tail)).toContain("conserve.aux_freed");
    expect(ids("seed", tail)).toContain("conserve.aux_freed");
    expect(ids("6.12-pre42", tail)).not.toContain("conserve.aux_freed");
    expect(ids("6.1-pre148", head)).not.toContain("conserve.aux_freed");
    expect(ids("6.12-pre42", head)).toContain("conserve.aux_freed");
    expect(ids("5.10-pre241", tail)).toContain("conserve.aux_freed"); // 5.10 do_munmap splits as 6.1 does
    expect(ids("5.10-pre241", head)).not.toContain("conserve.aux_freed");
    for (const p of ["5.10", "6.1", "6.12", "6.18", "7.2"] as ProfileId[]) { expect(ids(p, tail)).toEqual([]); expect(ids(p, head)).toEqual([]); }
  });

  it("mprotect and mremap splits leak the same way before may_split", () => {
    const base = [o.openAux("e0"), o.mmap("m0", "e0", 3), o.setAux("m0", 4, 4), o.mmap("m1", "e0", 4, 4)];
    for (const extra of [o.mprotect("m1", "r", 1, 1), o.mremap("m1", 2, 2, { offset: 2, toFresh: true }), o.fixedAnon("m1", 1, 1)]) {
      for (const p of ["seed", "5.10-pre241", "6.1-pre148", "6.12-pre42"] as ProfileId[]) expect(ids(p, [...base, extra])).toContain("conserve.aux_freed");
      for (const p of ["6.1", "6.12", "6.18", "7.2"] as ProfileId[]) expect(ids(p, [...base, extra])).toEqual([]);
    }
  });

  it("5.10: the split hook stops munmap, mprotect and MAP_FIXED, but move_vma never asks it: a partial mremap move still leaks the AUX area", () => {
    const base = [o.openAux("e0"), o.mmap("m0", "e0", 3), o.setAux("m0", 4, 4), o.mmap("m1", "e0", 4, 4)];
    for (const extra of [o.munmap("m1", 3, 1), o.mprotect("m1", "r", 1, 1), o.fixedAnon("m1", 1, 1)]) expect(ids("5.10", [...base, extra])).toEqual([]);
    const move = [...base, o.mremap("m1", 2, 2, { offset: 2, toFresh: true })];
    const { taken, end } = walk(move, "5.10");
    expect(taken[4].outcome).toEqual({ ok: true });
    expect(expectedAudit(end).liveAux).toBe(1);
    expect(ids("5.10", move)).toContain("conserve.aux_freed");
    // and the checker says so even when a 5.10 kernel does exactly what the profile predicts
    const v = checkTrace(move, CFG, "5.10", specTrace(move, "5.10"));
    expect(v.accepted).toBe(false);
    if (!v.accepted) expect(v.divergence.rule).toMatch(/^conserve[.]/);
  });

  it("7.2: after the saturation WARN the last unmap still detaches and refunds (events first); 6.18 never refunds the data pages", () => {
    const prog = [o.openAux("e0"), o.mmap("m0", "e0", 3), o.setAux("m0", 4, 4), o.openAux("e1"), o.setOutput("e1", "e0"), o.mmap("m1", "e1", 4, 4), o.munmap("m0"), o.munmap("m1")];
    expect(expectedAudit(walk(prog, "6.18").end).budgetPages).toBe(LIMIT - 3);
    expect(expectedAudit(walk(prog, "7.2").end).budgetPages).toBe(LIMIT);
    expect(ids("6.18", prog)).toContain("conserve.locked_vm");
    expect(ids("7.2", prog)).not.toContain("conserve.locked_vm");
    expect(ids("7.2", prog)).toContain("conserve.refcounts"); // the saturated event count
  });

  it("a failed AUX mmap leaves aux_mmap_count at 1 before the Aug 2025 fix (counters not back at zero)", () => {
    const prog = [o.open("e0"), o.mmap("m0", "e0", 3), o.setAux("m0", 4, 4), o.mmap("m1", "e0", 4, 4)];
    for (const p of PROFILES) {
      const { taken, end } = walk(prog, p);
      expect(taken[3].outcome).toEqual({ errno: p === "seed" ? "ENOTSUPP" : "EOPNOTSUPP" });
      const early = p === "seed" || p.endsWith("pre148") || p.endsWith("pre42") || p.endsWith("pre241");
      expect(checkInvariants(end, CFG).map((v) => v.id)).toEqual(early ? ["conserve.counters"] : []);
    }
  });

  it("seed: a setup_aux failure keeps the pages (aux_pgoff 0): closing the data VMA refunds AUX pages never charged", () => {
    const prog = [o.openAux("e0"), o.mmap("m0", "e0", 3), o.setAux("m0", 4, 2), o.fault(true), o.mmap("m1", "e0", 2, 4)];
    const { end } = walk(prog, "seed");
    const inv = checkInvariants(end, CFG).map((v) => v.id);
    expect(inv).toContain("conserve.locked_vm"); // locked_vm ends at -2
    expect(inv).toContain("conserve.counters"); // the stale AUX pages die with the buffer
    expect(expectedAudit(end).budgetPages).toBe(LIMIT + 2);
    for (const p of ["6.1-pre148", "6.1", "6.12", "6.18"] as ProfileId[]) expect(checkInvariants(walk(prog, p).end, CFG).map((v) => v.id)).toEqual(p === "6.1-pre148" ? ["conserve.counters"] : []);
  });

  it("6.18: an AUX mapping through a redirected event WARNs and saturates event->mmap_count", () => {
    const prog = [o.openAux("e0"), o.mmap("m0", "e0", 3), o.setAux("m0", 4, 4), o.openAux("e1"), o.setOutput("e1", "e0"), o.mmap("m1", "e1", 4, 4)];
    const { last, end } = walk(prog, "6.18");
    const e1 = abstractState(last, prog).events.find((e) => e.handle === "e1")!;
    expect(e1.mmapCount).toBe(-1073741824);
    expect(checkInvariants(end, CFG).map((v) => v.id)).toContain("conserve.refcounts");
    expect(checkInvariants(walk(prog, "6.12").end, CFG)).toEqual([]);
  });

  it("checkTrace reports the profile's own leak even when the trace matches its prediction", () => {
    const leak = [o.open("e0"), o.mmap("m0", "e0", 3), o.mmap("m1", "e0", 3)];
    const v = checkTrace(leak, CFG, "6.18", specTrace(leak, "6.18"));
    expect(v.accepted).toBe(false);
    if (!v.accepted) { expect(v.divergence.kind).toBe("invariant"); expect(v.divergence.rule).toBe("conserve.locked_vm"); }
    expect(checkTrace(leak, CFG, "6.12", specTrace(leak, "6.12")).accepted).toBe(true);
    const cve = [o.openAux("e0"), o.mmap("m0", "e0", 3), o.setAux("m0", 4, 4), o.mmap("m1", "e0", 4, 4), o.munmap("m1", 3, 1)];
    const w = checkTrace(cve, CFG, "seed", specTrace(cve, "seed"));
    expect(w.accepted).toBe(false);
    if (!w.accepted) { expect(w.divergence.kind).toBe("invariant"); expect(w.divergence.rule).toMatch(/^conserve\./); }
  });

  it("teardown closes everything: no buffer or event survives", () => {
    const prog = [o.open("e0"), o.mmap("m0", "e0", 3), o.open("e1", { outputTo: "e0" }), o.mremap("m0", 3, 3, { toFresh: true }), o.close("e0")];
    for (const p of PROFILES) {
      const { end } = walk(prog, p);
      const a = abstractState(end, prog);
      expect(a.buffers).toEqual([]);
      expect(a.events).toEqual([]);
      expect(checkInvariants(end, CFG)).toEqual([]);
    }
  });
});
