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
    expect(RULE_BY_ID.get("mmap.noexec")!.profiles).toEqual(["6.18", "7.2"]);
    expect(RULE_BY_ID.get("munmap.split")!.profiles).toEqual(["5.10", "6.1", "6.12", "6.18", "7.2"]);
    expect(RULE_BY_ID.get("mmap.aux.rw-single")!.profiles).toEqual(["5.10-pre241", "5.10"]);
    // 5.10's move_vma never asks the split hook: the partial move duplicates instead of EINVAL
    expect(RULE_BY_ID.get("mremap.move.split")!.profiles).not.toContain("5.10");
    expect(RULE_BY_ID.get("mremap.move.split.dup")!.profiles).toEqual(["5.10"]);
  });

  it("every profile has its rule set", () => {
    const count = Object.fromEntries(PROFILES.map((p) => [p, RULES.filter((r) => r.profiles.includes(p)).length]));
    for (const p of PROFILES) expect(count[p]).toBeGreaterThan(80);
  });

  it("INVARIANTS are unique", () => {
    expect(new Set(INVARIANTS.map((i) => i.id)).size).toBe(INVARIANTS.length);
  });
});
