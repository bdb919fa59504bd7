/**
 * The C agent's budget probe (runtime/agent.c agent_budget_probe) against spec/audit.ts
 * budgetProbe: it leaves out tries whose answer follows from the kernel's limit check being
 * monotone in the buffer size (agent.c says why), so it must end with the same pages as the
 * greedy order for every budget and cap, and each buffer it maps for a moment and unmaps must
 * leave the budget as it was. The agent's code is compiled as it is, with perf_event_open and
 * mmap replaced by a simulated budget (as test/hwtest/runtime.test.ts does for the header's
 * literal probe): a buffer of n data pages maps iff n + 1 <= the pages left (the kernel's
 * check at a fixed pinned_vm and rlimit), munmap gives them back.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { budgetCap, budgetProbe } from "../../spec/audit.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const HEADER = join(ROOT, "runtime/auxspec.h");
const AGENT = join(ROOT, "runtime/agent.c");

function hasGcc(): boolean {
  try { execFileSync("gcc", ["--version"], { stdio: "ignore" }); return true; } catch { return false; }
}
const gcc = hasGcc();
const dir = mkdtempSync(join(tmpdir(), "auxspec-agent-probe-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** agent.c's probe section, from its first line to its end marker. */
function probeSection(): string {
  const text = readFileSync(AGENT, "utf8");
  const a = text.indexOf("/* ---- the audit's budget probe");
  const b = text.indexOf("/* ---- end of the budget probe ---- */");
  if (a < 0 || b < a) throw new Error("the budget probe's section markers are not in runtime/agent.c");
  return text.slice(a, b);
}

/** Runs the agent's probe for each [cap, budget]: "pages tries maps" per line, tries = mmaps tried. */
function runProbe(cases: ReadonlyArray<readonly [number, number]>): string[] {
  const src = join(dir, "probe.c");
  writeFileSync(src, `#include ${JSON.stringify(HEADER)}
static long budget_left, tries, maps, live;
#define ax_perf_open(...) 100
#define mmap(a, len, prot, flags, fd, off) (tries++, (long)((len) / AX_PAGE_SIZE) <= budget_left ? (budget_left -= (len) / AX_PAGE_SIZE, maps++, live++, (void *)0x1000) : (errno = EPERM, MAP_FAILED))
#define munmap(a, len) ((void)(a), budget_left += (len) / AX_PAGE_SIZE, live--)
#define close(fd) ((void)(fd))
${probeSection()}
int main(void) {
  long cap, budget;
  while (scanf("%ld %ld", &cap, &budget) == 2) {
    budget_left = budget; tries = maps = live = 0;
    long pages = agent_budget_probe(cap, 0);
    /* everything unmapped again: the budget as it was */
    if (live != 0 || budget_left != budget) { printf("leak %ld %ld\\n", live, budget_left); continue; }
    printf("%ld %ld %ld\\n", pages, tries, maps);
  }
  return 0;
}
`);
  execFileSync("gcc", ["-O2", "-Wall", "-Wextra", "-Werror", "-std=gnu11", "-Wno-unused-function", "-o", join(dir, "probe"), src]);
  return execFileSync(join(dir, "probe"), { input: cases.map(([c, b]) => `${c} ${b}`).join("\n") + "\n" }).toString().trim().split("\n");
}

describe.skipIf(!gcc)("the C agent's budget probe", () => {
  it("ends with budgetProbe's pages for every budget under several caps, and leaves the budget as it was", () => {
    const cases: Array<[number, number]> = [];
    for (const cap of [1, 2, 3, 18, 40, budgetCap(516, 1), budgetCap(516, 2), budgetCap(516, 16), budgetCap(2048, 3)])
      for (let budget = 0; budget <= cap + 20; budget++) cases.push([cap, budget]);
    const lines = runProbe(cases);
    expect(lines.length).toBe(cases.length);
    cases.forEach(([cap, budget], i) => {
      let left = budget;
      let tries = 0;
      const pages = budgetProbe(cap, (n) => { tries++; if (n + 1 <= left) { left -= n + 1; return true; } return false; });
      const [p, t, maps] = lines[i].split(" ").map(Number);
      expect(lines[i], `cap ${cap} budget ${budget}`).not.toMatch(/^leak/);
      expect(p, `cap ${cap} budget ${budget}: pages`).toBe(pages);
      // at most one look-ahead try per buffer that mapped
      expect(t, `cap ${cap} budget ${budget}: tries`).toBeLessThanOrEqual(tries + maps);
    });
    // it saves work: the usual guest budget (129 pages, cap 145) in 2 mmaps, not budgetProbe's 6
    // (128 maps; then 8, 4, 2, 1 and 0 fail: the sizes that still fit under the cap)
    const usual = runProbe([[budgetCap(516, 1), 129]])[0].split(" ").map(Number);
    expect(usual).toEqual([129, 2, 1]);
    let greedy = 0;
    budgetProbe(budgetCap(516, 1), (n) => { greedy++; return n === 128; });
    expect(greedy).toBe(6);
  });
});
