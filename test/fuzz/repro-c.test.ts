/**
 * The C reproducers: every cases/known/*.c is byte for byte what the generator writes for its
 * case today (regenerate with `tsx fuzz/cli.ts` or reproC), each compiles alone with
 * `gcc -static -Wall -Werror` (the runtime is inlined, nothing is included from the project),
 * and the generated table holds the errno symbols of <errno.h>, not numbers.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
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
  it("cases/known has reproducers to check", () => {
    expect(sources.length).toBeGreaterThan(0);
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

  it("inlines the runtime and names errnos by their <errno.h> symbols", () => {
    const text = reproC(loadCase(join(KNOWN, "6.18-remap-leaks-locked-vm.json")));
    expect(text).toContain(runtimeText());
    expect(text).not.toMatch(/#include\s+"/);
    expect(text).toMatch(/\(const int\[\]\)\{ 0, ENOMEM \}/);
  });
});
