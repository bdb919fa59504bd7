/**
 * Accounting: what each era charges and refunds (VmPin = pinned_vm * 4 kB; the audit's
 * budget = limit - locked_vm). Numbers worked by hand from perf_mmap (3.18+v8 patch:
 * no clamp, full user_extra to locked_vm; 6.1/6.12 perf_mmap and 6.18
 * perf_mmap_calc_limits: locked_vm clamped to the limit, user_extra -= extra).
 */
import { describe, expect, it } from "vitest";
import { checkInvariants, expectedAudit, initialState, step, type ProfileId } from "../../spec/index.ts";
import { CFG, LIMIT, PROFILES, o, walk } from "./helpers.ts";

describe("accounting", () => {
  it("a buffer within the limit charges locked_vm only, and comes back", () => {
    for (const p of PROFILES) {
      const { taken, end } = walk([o.open("e0"), o.mmap("m0", "e0", 9), o.munmap("m0")], p);
      expect(taken.map((t) => t.vmPinKb)).toEqual([0, 0, 0]);
      expect(expectedAudit(end)).toEqual({ vmPinKb: 0, budgetPages: LIMIT, liveAux: 0 });
    }
  });

  it("over the limit the excess goes to pinned_vm (VmPin); seed and clamped eras differ on the second buffer", () => {
    // 513 pages: user_locked 513 > 258 -> extra 255 -> VmPin 1020 kB in every era.
    // Second buffer of 3 pages: 6.1+ clamp locked_vm (258) -> 261 -> extra 3 -> VmPin 1032;
    // the seed adds the full 513 to locked_vm, so 513 + 3 - 258 = 258 more -> VmPin 2052.
    const prog = [o.rlimit("unlimited"), o.open("e0"), o.mmap("m0", "e0", 513), o.open("e1"), o.mmap("m1", "e1", 3), o.munmap("m1"), o.munmap("m0")];
    for (const p of PROFILES) {
      const { taken, end } = walk(prog, p);
      const pins = taken.map((t) => t.vmPinKb);
      expect(pins[2]).toBe(1020);
      expect(pins[4]).toBe(p === "seed" ? 2052 : 1032);
      expect(pins[5]).toBe(1020);
      expect(pins[6]).toBe(0);
      expect(checkInvariants(end, CFG)).toEqual([]);
    }
  });

  it("lowering perf_event_mlock_kb below what is charged: 6.1+ clamp locked_vm to the new limit, the seed does not", () => {
    // locked_vm 9; limit 0 after the sysctl; a 2-page buffer: clamp -> 0 + 2 -> extra 2 (EPERM at rlimit 0).
    const base = [o.open("e0"), o.mmap("m0", "e0", 9), o.sysctl(0), o.open("e1")];
    for (const p of PROFILES) {
      const { taken } = walk([...base, o.mmap("m1", "e1", 2)], p);
      expect(taken[4].outcome).toEqual({ errno: "EPERM" });
      // 6.1+: extra = 2 (clamped); the seed: 9 + 2 - 0 = 11 pages of extra
      const need = p === "seed" ? 11 : 2;
      const short = walk([...base, o.rlimit(need - 1), o.mmap("m1", "e1", 2)], p);
      expect(short.taken[5].outcome).toEqual({ errno: "EPERM" });
      const ok = walk([...base, o.rlimit(need), o.mmap("m1", "e1", 2), o.munmap("m1"), o.munmap("m0")], p);
      expect(ok.taken[5].outcome).toEqual({ ok: true });
      expect(ok.taken[5].vmPinKb).toBe(need * 4);
      expect(expectedAudit(ok.end).vmPinKb).toBe(0);
    }
  });

  it("EPERM fires with extra 0 when pinned_vm already exceeds a lowered rlimit (6.1+: clamp)", () => {
    const prog = [o.rlimit("unlimited"), o.open("e0"), o.mmap("m0", "e0", 513), o.rlimit(0), o.open("e1"), o.mmap("m1", "e1", 1)];
    for (const p of ["6.1", "6.12", "6.18"] as ProfileId[]) {
      const { taken } = walk(prog, p);
      // user_locked = min(258, 258) + 1 = 259 -> extra 1; pinned 255 + 1 > 0 -> EPERM
      expect(taken[5].outcome).toEqual({ errno: "EPERM" });
    }
  });

  it("re-mapping is free before 6.18; 6.18 charges the VMA's pages again and never refunds them [seen on 6.18]", () => {
    const prog = [o.open("e0"), o.mmap("m0", "e0", 3), o.mmap("m1", "e0", 3), o.mmap("m2", "e0", 3)];
    for (const p of PROFILES) {
      const { end } = walk(prog, p);
      const audit = expectedAudit(end);
      // hwtest/host executor test on 6.18: three maps of 3 pages -> budget limit - 6
      expect(audit.budgetPages).toBe(p === "6.18" ? LIMIT - 6 : LIMIT);
      const inv = checkInvariants(end, CFG).map((v) => v.id);
      expect(inv.includes("conserve.locked_vm")).toBe(p === "6.18");
    }
  });

  it("an AUX area is charged and refunded like the data buffer; the seed refunds the full aux_nr_pages", () => {
    const prog = [o.rlimit("unlimited"), o.openAux("e0"), o.mmap("m0", "e0", 129), o.setAux("m0", 256, 256), o.mmap("m1", "e0", 256, 256), o.munmap("m1"), o.munmap("m0")];
    for (const p of PROFILES) {
      const { taken, end } = walk(prog, p);
      // data: 129 <= 258, no extra. AUX 256: modern 129 + 256 - 258 = 127 extra; seed same extra (locked 129 + 256).
      expect(taken[4].outcome).toEqual({ ok: true });
      expect(taken[4].vmPinKb).toBe(127 * 4);
      expect(taken[5].vmPinKb).toBe(0);
      expect(checkInvariants(end, CFG)).toEqual([]);
      expect(expectedAudit(end)).toEqual({ vmPinKb: 0, budgetPages: LIMIT, liveAux: 0 });
    }
  });

  it("a state keeps the profile it was made for, step may re-bind it", () => {
    const s = initialState(CFG, "6.1");
    const t = step(s, o.mmap("m0", "e0", 1), "6.18");
    expect(t[0].outcome).toEqual({ errno: "EBADF" });
  });
});

import { probeBudget } from "../../spec/model/check.ts";
import { initial } from "../../spec/model/state.ts";

describe("the audit's budget probe (hwtest/host/perf.ts probeBudget: 2^k + 1 page buffers largest first, then 1-page ones, up to limit + 16)", () => {
  const at = (p: ProfileId, lockedVm: number, extra: Partial<typeof CFG> = {}) => probeBudget({ ...initial({ ...CFG, ...extra }, p), lockedVm });
  it("measures limit - locked_vm when locked_vm is in range", () => {
    for (const p of PROFILES) { expect(at(p, 0)).toBe(LIMIT); expect(at(p, 10)).toBe(LIMIT - 10); expect(at(p, LIMIT + 5)).toBe(0); }
  });
  it("6.1+: a negative locked_vm is a huge unsigned value, clamped to the limit: 0", () => {
    for (const p of PROFILES.filter((x) => x !== "seed")) expect(at(p, -2)).toBe(0);
  });
  it("seed: no clamp; -2 + 257 fits, so the probe finds limit + 2; a very negative locked_vm fits nothing", () => {
    expect(at("seed", -2)).toBe(LIMIT + 2);
    expect(at("seed", -1000)).toBe(0);
  });
  it("perf_event_paranoid -1 never refuses: the probe stops at its cap", () => {
    expect(at("6.18", 0, { paranoid: -1 })).toBe(LIMIT + 16);
  });
});
