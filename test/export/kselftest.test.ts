/**
 * The kselftest export's shape (no kernel needed): the directory holds the Makefile, config,
 * settings, the unchanged runtime header and one program per selected case; every program
 * has expectations for every profile; a few programs build alone (shim kselftest.h) with
 * -Wall -Werror and skip cleanly where they cannot run.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { PROFILES } from "../../spec/program.ts";
import { exportKselftest, runtimeHeader, selectCases } from "../../export/kselftest.ts";
import { main as exportMain } from "../../export/cli.ts";

const dir = mkdtempSync(join(tmpdir(), "auxspec-ksft-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function hasGcc(): boolean {
  try { execFileSync("gcc", ["--version"], { stdio: "ignore" }); return true; } catch { return false; }
}

describe("kselftest export", () => {
  const entries = exportKselftest(dir);

  it("selects every known and bug case and one litmus case per deciding rule", () => {
    const kinds = (k: string) => entries.filter((e) => e.kind === k).length;
    expect(kinds("known")).toBe(readdirSync("cases/known").filter((f) => f.endsWith(".json")).length);
    expect(kinds("bug")).toBe(readdirSync("cases/bugs").filter((f) => f.endsWith(".json")).length);
    const rules = entries.filter((e) => e.kind === "litmus").map((e) => e.rule);
    expect(rules.length).toBeGreaterThan(50);
    expect(new Set(rules).size).toBe(rules.length);
    expect(selectCases({ litmus: "all" }).filter((s) => s.kind === "litmus").length).toBeGreaterThan(rules.length);
    expect(selectCases({ litmus: 3 }).filter((s) => s.kind === "litmus").length).toBe(3);
    expect(selectCases({ litmus: 0 }).filter((s) => s.kind === "litmus").length).toBe(0);
  });

  it("writes the kselftest files, the runtime header unchanged and a program per case", () => {
    for (const f of ["Makefile", "config", "settings", "README", "auxspec.h", "auxspec_era.h", "auxspec_ksft.h", "shim/kselftest.h", "auxspec-export.json"]) {
      expect(existsSync(join(dir, f)), f).toBe(true);
    }
    expect(readFileSync(join(dir, "auxspec.h"), "utf8")).toBe(runtimeHeader());
    const mk = readFileSync(join(dir, "Makefile"), "utf8");
    expect(mk).toMatch(/^TEST_GEN_PROGS := /m);
    expect(mk).toContain("include $(KSFT_DIR)/lib.mk");
    for (const e of entries) {
      expect(existsSync(join(dir, `${e.program}.c`)), e.program).toBe(true);
      expect(mk).toContain(`\t${e.program}`);
    }
    expect(readFileSync(join(dir, "config"), "utf8")).toContain("CONFIG_PERF_EVENTS=y");
    expect(readFileSync(join(dir, "settings"), "utf8")).toMatch(/^timeout=\d+$/m);
    const manifest = JSON.parse(readFileSync(join(dir, "auxspec-export.json"), "utf8"));
    expect(manifest.programs.map((p: { program: string }) => p.program)).toEqual(entries.map((e) => e.program));
  });

  it("has the spec's paths for every profile of every program (none uncovered)", () => {
    const uncovered = entries.flatMap((e) => Object.entries(e.uncovered).map(([p, w]) => `${e.program} ${p}: ${w}`));
    expect(uncovered).toEqual([]);
    for (const e of entries) expect(Object.keys(e.paths).sort()).toEqual([...PROFILES].sort());
  });

  it("the known case carries its known divergence for profile 6.18 only", () => {
    const src = readFileSync(join(dir, "known-6_18-remap-leaks-locked-vm.c"), "utf8");
    expect(src).toContain(`"6.18-remap-leaks-locked-vm"`);
    expect(src).toMatch(/static const struct ax_known_text known\[\]/);
  });

  it.skipIf(!hasGcc())("programs build alone with the shim (-Wall -Werror) and print KTAP", () => {
    const some = ["known-6_18-remap-leaks-locked-vm", entries.find((e) => e.kind === "bug")!.program, entries.find((e) => e.kind === "litmus")!.program];
    execFileSync("make", ["-s", "-C", dir, "USERCFLAGS=-Werror", "CFLAGS=-O1 -Wall -Werror -I. -Ishim", ...some], { stdio: "pipe" });
    for (const p of some) {
      const r = spawnSync(join(dir, p), { encoding: "utf8", timeout: 60_000 });
      expect([0, 1, 4], `${p} exit ${r.status}: ${r.stdout}`).toContain(r.status);
      expect(r.stdout).toMatch(/^TAP version 13\n/);
      expect(r.stdout).toMatch(/^1\.\.\d+/m);
    }
  });

  it("the CLI refuses a missing --kselftest and a bad --litmus", () => {
    expect(exportMain([])).toBe(2);
    expect(exportMain(["--kselftest", join(dir, "x"), "--litmus", "some"])).toBe(2);
  });
});
