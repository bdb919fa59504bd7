/** The rules are data: well-formed, unique, and what the model emits is what they say. */
import { describe, expect, it } from "vitest";
import { NON_DECIDING, PROFILES, RULES, RULE_BY_ID, INVARIANTS } from "../../spec/index.ts";

describe("RULES", () => {
  it("ids are unique and dotted", () => {
    const ids = RULES.map((r) => r.id);
    expect(new Set(ids).size).toBe(ids.length);
    // underscores as in kernel names (the issue-13 markers munmap.refund.other_user/other_mm, like conserve.locked_vm)
    for (const id of ids) expect(id).toMatch(/^[a-z0-9-]+(\.[a-z0-9_-]+)+$/);
    expect(RULE_BY_ID.size).toBe(ids.length);
  });

  it("every rule names profiles, an errno name where it has one, and a kernel citation", () => {
    for (const r of RULES) {
      expect(r.profiles.length, r.id).toBeGreaterThan(0);
      for (const p of r.profiles) expect(PROFILES).toContain(p);
      if (r.errno !== undefined) expect(r.errno).toMatch(/^E[A-Z0-9]+$/);
      expect(r.cite.fn.length, r.id).toBeGreaterThan(0);
      expect(r.cite.file.length, r.id).toBeGreaterThan(0);
      expect(r.cite.version.length, r.id).toBeGreaterThan(0);
      expect(r.summary.length, r.id).toBeGreaterThan(10);
    }
  });

  it("non-deciding rules are rules", () => {
    for (const id of NON_DECIDING) expect(RULE_BY_ID.has(id), id).toBe(true);
  });

  it("errno order differs by era where the kernel's does: ENOTSUPP only in the seed, EBUSY/noexec only in 6.18+, the 1-page writable AUX EINVAL only in 5.10", () => {
    expect(RULE_BY_ID.get("mmap.aux.nosetup.enotsupp")!.profiles).toEqual(["seed"]);
    expect(RULE_BY_ID.get("mmap.aux.nosetup.enotsupp")!.errno).toBe("ENOTSUPP");
    expect(RULE_BY_ID.get("mmap.data.ebusy")!.profiles).toEqual(["6.18", "7.2"]);
    expect(RULE_BY_ID.get("mmap.noexec")!.profiles).toEqual(["6.16", "6.17", "6.18", "7.2"]);
    expect(RULE_BY_ID.get("munmap.split")!.profiles).toEqual(["5.10", "6.1", "6.12", "6.16", "6.17", "6.18", "7.2"]);
    expect(RULE_BY_ID.get("mmap.aux.rw-single")!.profiles).toEqual(["5.10-pre241", "5.10"]);
    // 5.10's move_vma never asks the split hook: the partial move duplicates instead of EINVAL
    expect(RULE_BY_ID.get("mremap.move.split")!.profiles).not.toContain("5.10");
    expect(RULE_BY_ID.get("mremap.move.split.dup")!.profiles).toEqual(["5.10"]);
  });

  it("6.16 (6.15.10+, 6.16.1+) is 6.15+ without the 6.17 mremap and the 6.18 refcount_t / EBUSY [6.16.12, 6.17.13, 6.18.15 under QEMU]", () => {
    const in616 = (id: string) => RULE_BY_ID.get(id)!.profiles.includes("6.16");
    // 6.15+: re-maps charge (0c8a4e4139ad; the 6.16.3 .. 7.3.4 leak), PROT_EXEC EPERM, may_split (6.16.1)
    for (const id of ["mmap.data.remap.charged", "mmap.aux.remap.charged", "acct.remap.charge", "mmap.noexec", "mprotect.exec", "munmap.split", "mapfixed.split", "mremap.move.split"]) expect(in616(id), id).toBe(true);
    // 6.17+: remap_move(); 6.18: refcount_t (448f97fba901) and EBUSY (d06bf78e55d5, 6.18.y): 6.16.12 and 6.17.13 map a redirected event
    for (const id of ["mremap.multi.ok", "mremap.multi.gap", "mremap.multi.partial", "mmap.data.ebusy", "mmap.aux.redirected.warn", "refcount.saturate"]) expect(in616(id), id).toBe(false);
    for (const id of ["mmap.data.remap", "mmap.aux.remap", "vma.noexec-ok"]) expect(in616(id), id).toBe(false);
    // an exited group leader: EINVAL on 6.16.12 (the fuzzer, under QEMU), ENODEV on 6.12.118 and 6.18.44
    expect(in616("open.group.exited")).toBe(false);
    // 6.17 = 6.16 + remap_move() [6.17.13: the multi-VMA move ok, EBUSY absent, EINVAL for an exited leader]
    const in617 = (id: string) => RULE_BY_ID.get(id)!.profiles.includes("6.17");
    for (const id of ["mremap.multi.ok", "mremap.multi.gap", "mremap.multi.partial", "mmap.data.remap.charged", "mmap.noexec"]) expect(in617(id), id).toBe(true);
    for (const id of ["mmap.data.ebusy", "mmap.aux.redirected.warn", "refcount.saturate", "open.group.exited"]) expect(in617(id), id).toBe(false);
  });

  it("every profile has its rule set", () => {
    const count = Object.fromEntries(PROFILES.map((p) => [p, RULES.filter((r) => r.profiles.includes(p)).length]));
    for (const p of PROFILES) expect(count[p]).toBeGreaterThan(80);
  });

  it("INVARIANTS are unique", () => {
    expect(new Set(INVARIANTS.map((i) => i.id)).size).toBe(INVARIANTS.length);
  });
});
