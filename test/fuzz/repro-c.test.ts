/**
 * The C reproducers: every cases/known/*.c is byte for byte what the generator writes for its
 * case today (regenerate with `tsx fuzz/cli.ts` or reproC), each compiles alone with
 * `gcc -static -Wall -Werror` (the runtime is inlined, nothing is included from the project),
 * and the generated table holds the errno symbols of <errno.h>, not numbers.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { Op } from "../../spec/program.ts";
import { loadCase } from "../../fuzz/cases.ts";
import { reproC, runtimeText } from "../../fuzz/repro-c.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const KNOWN = join(ROOT, "cases/known");
const sources = readdirSync(KNOWN).filter((f) => f.endsWith(".c")).sort();

function hasGcc(): boolean {
  try { execFileSync("gcc", ["--version"], { stdio: "ignore" }); return true; } catch { return false; }
}
const dir = mkdtempSync(join(tmpdir(), "auxspec-reproc-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("C reproducers", () => {
  it("cases/known has reproducers to check, one beside every case (npx tsx scripts/known-repros.ts)", () => {
    expect(sources.length).toBeGreaterThan(0);
    const cases = readdirSync(KNOWN).filter((f) => f.endsWith(".json")).sort();
    expect(cases.map((f) => f.replace(/\.json$/, ".c"))).toEqual(sources);
  });

  for (const f of sources) {
    it(`${f} is what the generator writes for its case`, () => {
      const json = join(KNOWN, f.replace(/\.c$/, ".json"));
      expect(existsSync(json), `${f} has no case beside it`).toBe(true);
      const want = reproC(loadCase(json));
      expect(readFileSync(join(KNOWN, f), "utf8") === want, `${f} differs from reproC(${json}): regenerate it`).toBe(true);
    });

    it.skipIf(!hasGcc())(`${f} compiles alone with gcc -static -Wall -Werror`, () => {
      execFileSync("gcc", ["-static", "-O2", "-Wall", "-Werror", "-o", join(dir, f.replace(/\.c$/, "")), join(KNOWN, f)], { cwd: dir });
    });
  }

  it.skipIf(!hasGcc())("a reproducer using every op kind compiles alone with gcc -static -Wall -Werror", () => {
    const base = loadCase(join(KNOWN, "6.18-remap-leaks-locked-vm.json"));
    const program: Op[] = [
      { op: "open", ev: "e0", pmu: "sw", inherit: true, cpu: 0 },
      { op: "open", ev: "e1", pmu: "aux", outputTo: "e0" },
      { op: "mmap", map: "m0", ev: "e0", pages: 3, pgoff: 0, prot: "rw" },
      { op: "readUserPage", map: "m0" },
      { op: "setAux", map: "m0", offsetPages: 4, sizePages: 4 },
      { op: "touch", map: "m0", page: 1, write: true },
      { op: "mprotect", map: "m0", prot: "r" },
      { op: "mremap", map: "m0", oldPages: 3, newPages: 3, toFresh: true },
      { op: "mapFixedAnon", map: "m0", offset: 0, pages: 1 },
      { op: "munmap", map: "m0", offset: 1, pages: 1 },
      { op: "setOutput", ev: "e1", target: null },
      { op: "rlimit", memlockPages: "unlimited" },
      { op: "sysctlMlock", kb: 516 },
      { op: "auxFault", fail: false },
      { op: "close", ev: "e0" },
    ];
    const kinds = new Set(program.map((o) => o.op));
    expect(kinds.size).toBe(14);
    const src = join(dir, "all-ops.c");
    writeFileSync(src, reproC({ ...base, name: "all-ops", program }));
    execFileSync("gcc", ["-static", "-O2", "-Wall", "-Werror", "-o", join(dir, "all-ops"), src], { cwd: dir });
    const text = readFileSync(src, "utf8");
    for (const c of ["AX_OPEN(1, 1, -1, 0, 0)", "AX_SYSCTL_MLOCK(516)", "AX_AUX_FAULT(0)", "AX_RLIMIT(-1)", "AX_SET_OUTPUT(1, -2)"]) expect(text).toContain(c);
  });

  it("inlines the runtime and names errnos by their <errno.h> symbols", () => {
    const text = reproC(loadCase(join(KNOWN, "6.18-remap-leaks-locked-vm.json")));
    expect(text).toContain(runtimeText());
    expect(text).not.toMatch(/#include\s+"/);
    expect(text).toMatch(/\(const int\[\]\)\{ 0, ENOMEM \}/);
  });
});
