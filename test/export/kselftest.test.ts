/**
 * The kselftest export's shape (no kernel needed): the directory holds the Makefile, config,
 * settings, the unchanged runtime header and one program per selected case; every program
 * has expectations for every profile; a few programs build alone (shim kselftest.h) with
 * -Wall -Werror and skip cleanly where they cannot run.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { PROFILES, isMultiProcess } from "../../spec/program.ts";
import { MAP_RANGE_FAULT_SKIP, MULTI_PROCESS_SKIP, exportKselftest, runtimeHeader, selectCases, type SkippedCase } from "../../export/kselftest.ts";
import { loadCase } from "../../fuzz/cases.ts";
import { main as exportMain } from "../../export/cli.ts";

const dir = mkdtempSync(join(tmpdir(), "auxspec-ksft-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function hasGcc(): boolean {
  try { execFileSync("gcc", ["--version"], { stdio: "ignore" }); return true; } catch { return false; }
}

describe("kselftest export", () => {
  const entries = exportKselftest(dir);

  it("leaves out a case with several processes, with the reason in the manifest and for the CLI", () => {
    const root = mkdtempSync(join(tmpdir(), "auxspec-ksft-root-"));
    const out = join(root, "out");
    try {
      mkdirSync(join(root, "cases/known"), { recursive: true });
      copyFileSync("cases/known-divergences.json", join(root, "cases/known-divergences.json"));
      const single = loadCase("cases/known/6.18-remap-leaks-locked-vm.json");
      writeFileSync(join(root, "cases/known/single.json"), JSON.stringify(single));
      writeFileSync(join(root, "cases/known/procs.json"), JSON.stringify({
        ...single, name: "procs",
        program: [{ op: "open", ev: "e0", pmu: "sw" }, { op: "fork", proc: "p1", from: "p0" }, { op: "close", proc: "p1", ev: "e0" }],
      }));
      // and one that arms the model-only map_range() fault switch (one process)
      writeFileSync(join(root, "cases/known/fault.json"), JSON.stringify({
        ...single, name: "fault",
        program: [{ op: "open", ev: "e0", pmu: "sw" }, { op: "mapRangeFault", times: 1 }, { op: "mmap", map: "m0", ev: "e0", pages: 3, pgoff: 0, prot: "rw" }],
      }));
      const skipped: SkippedCase[] = [];
      const es = exportKselftest(out, { root, litmus: 0, skipped });
      expect(es.map((e) => e.program)).toEqual(["known-single"]);
      expect(skipped).toEqual([{ source: "cases/known/fault.json", reason: MAP_RANGE_FAULT_SKIP }, { source: "cases/known/procs.json", reason: MULTI_PROCESS_SKIP }]);
      expect(existsSync(join(out, "known-procs.c"))).toBe(false);
      expect(JSON.parse(readFileSync(join(out, "auxspec-export.json"), "utf8")).skipped).toEqual(skipped);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it("selects every known and bug case and one litmus case per deciding rule", () => {
    const kinds = (k: string) => entries.filter((e) => e.kind === k).length;
    // multi-process known cases are left out (the export's `skipped`, with the reason)
    const knownFiles = readdirSync("cases/known").filter((f) => f.endsWith(".json"));
    const multi = knownFiles.filter((f) => isMultiProcess(JSON.parse(readFileSync(join("cases/known", f), "utf8")).program));
    expect(multi.length).toBeGreaterThan(0);
    expect(kinds("known")).toBe(knownFiles.length - multi.length);
    const bugFiles = readdirSync("cases/bugs").filter((f) => f.endsWith(".json"));
    const multiBugs = bugFiles.filter((f) => isMultiProcess(JSON.parse(readFileSync(join("cases/bugs", f), "utf8")).program));
    expect(kinds("bug")).toBe(bugFiles.length - multiBugs.length);
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
