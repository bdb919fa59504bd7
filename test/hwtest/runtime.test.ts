/**
 * runtime/auxspec.h against spec/audit.ts: the constants written once in the header equal
 * the TypeScript ones, the kernel-warning ERE compiles with regcomp and matches exactly the
 * lines the TypeScript regex matches, and the C budget probe walks the same greedy order.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  BUDGET_PROBE_MARGIN, KERNEL_WARNING, KERNEL_WARNING_ERE, PAGE_SIZE, SLOT_BASE, SLOT_BYTES, budgetCap, budgetProbe,
} from "../../spec/audit.ts";
import { MAX_PROCS, MAX_USERS, SLOT_PAGES } from "../../spec/program.ts";
import { sourceClosure } from "../../hwtest/host/native/build.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const HEADER = join(ROOT, "runtime/auxspec.h");

function hasGcc(): boolean {
  try { execFileSync("gcc", ["--version"], { stdio: "ignore" }); return true; } catch { return false; }
}
const gcc = hasGcc();
const dir = mkdtempSync(join(tmpdir(), "auxspec-runtime-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Compiles `body` (a main) against the header with the project's warnings as errors; returns stdout. */
function runC(name: string, body: string, input = ""): string {
  const src = join(dir, `${name}.c`);
  writeFileSync(src, `#include ${JSON.stringify(HEADER)}\n${body}\n`);
  execFileSync("gcc", ["-O2", "-Wall", "-Wextra", "-Werror", "-std=gnu11", "-o", join(dir, name), src]);
  return execFileSync(join(dir, name), { input }).toString();
}

const SAMPLES = [
  "WARNING: CPU: 1 PID: 4242 at kernel/events/core.c:6789 perf_mmap_close+0x1a/0x2b0",
  "BUG: KASAN: use-after-free in perf_mmap_close+0x10/0x200",
  "kernel BUG at mm/mmap.c:123!",
  "Oops: 0000 [#1] PREEMPT SMP",
  "general protection fault, probably for non-canonical address 0xdead000000000100",
  "refcount_t: underflow; use-after-free.",
  "UBSAN: shift-out-of-bounds in kernel/events/ring_buffer.c:700:19",
  "list_del corruption, ffff888003f4a000->next is LIST_POISON1",
  "list_add corruption. prev->next should be next",
  "Kernel panic - not syncing: Fatal exception",
  "rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:",
  "INFO: task auxspec:123 blocked for more than 120 seconds.",
  "BUG: Bad page state in process auxspec  pfn:12345",
  "Bad page map in process x",
  "auxspec: page allocation failure: order:10, mode:0x40cc0",
  "invalid opcode: 0000 [#1] SMP",
  "warning: something lower case",
  "perf: interrupt took too long (2502 > 2500), lowering kernel.perf_event_max_sample_rate",
  "systemd[1]: Started Session 3 of user root.",
  "EXT4-fs (vda): mounted filesystem",
  "list_move corruption",
  "a BUGGY driver",
  "audit: type=1400 apparmor=\"DENIED\"",
];

describe.skipIf(!gcc)("runtime/auxspec.h and spec/audit.ts", () => {
  it("define the same constants", () => {
    const out = runC("consts", `int main(void) {
  printf("%lu %lu %lu %lu %d %ld\\n", AX_PAGE_SIZE, AX_SLOT_PAGES, AX_SLOT_BYTES, AX_SLOT_BASE, AX_BUDGET_PROBE_MARGIN, ax_budget_cap(516, 3));
  printf("%s\\n", AX_KERNEL_WARNING_ERE);
  return 0;
}`);
    const [nums, ere] = out.split("\n");
    expect(nums.split(" ").map(Number)).toEqual([PAGE_SIZE, SLOT_PAGES, SLOT_BYTES, SLOT_BASE, BUDGET_PROBE_MARGIN, budgetCap(516, 3)]);
    expect(ere).toBe(KERNEL_WARNING_ERE);
  });

  it("runtime/procs.h compiles with the project's warnings as errors and holds spec/program.ts's process and user counts", () => {
    const src = join(dir, "procs.c");
    writeFileSync(src, `#include ${JSON.stringify(HEADER)}\n#include ${JSON.stringify(join(ROOT, "runtime/procs.h"))}\nint main(void) { printf("%d %d\\n", AX_MAX_PROCS, AX_MAX_USERS); return 0; }\n`);
    execFileSync("gcc", ["-O2", "-Wall", "-Wextra", "-Werror", "-std=gnu11", "-o", join(dir, "procs"), src]);
    expect(execFileSync(join(dir, "procs")).toString().trim().split(" ").map(Number)).toEqual([MAX_PROCS, MAX_USERS]);
  });

  it("the warning ERE compiles with regcomp and matches the lines the TypeScript regex matches", () => {
    const out = runC("ere", `int main(void) {
  regex_t re; char line[512];
  if (regcomp(&re, AX_KERNEL_WARNING_ERE, REG_EXTENDED | REG_ICASE | REG_NOSUB)) { printf("regcomp failed\\n"); return 1; }
  while (fgets(line, sizeof line, stdin)) { line[strcspn(line, "\\n")] = 0; printf("%d", regexec(&re, line, 0, NULL, 0) == 0); }
  printf("\\n");
  return 0;
}`, SAMPLES.join("\n") + "\n");
    const js = SAMPLES.map((s) => (KERNEL_WARNING.test(s) ? "1" : "0")).join("");
    expect(out.trim()).toBe(js);
    // both kinds of line are in the samples, so a pattern that matches all or nothing fails
    expect(js).toMatch(/1/);
    expect(js).toMatch(/0/);
  });

  it("the budget probe tries the same sizes in the same order as budgetProbe", () => {
    // The probe's greedy loop, with mmap replaced by a simulated budget: the C copy must be
    // the one in the header, so the header's loop is compiled with a mock perf/mmap pair.
    const out = runC("probe", `
static long budget_left, tries[4096]; static int ntries;
#define ax_perf_open(...) 100
#define mmap(a, len, prot, flags, fd, off) (tries[ntries++] = (long)((len) / AX_PAGE_SIZE) - 1, (long)((len) / AX_PAGE_SIZE) <= budget_left ? (budget_left -= (len) / AX_PAGE_SIZE, (void *)0x1000) : (errno = EPERM, MAP_FAILED))
#define munmap(a, len) ((void)(a))
#define close(fd) ((void)(fd))
${probeBody()}
int main(void) {
  long cap, budget;
  while (scanf("%ld %ld", &cap, &budget) == 2) {
    budget_left = budget; ntries = 0;
    long pages = probe(cap);
    printf("%ld", pages);
    for (int i = 0; i < ntries; i++) printf(" %ld", tries[i]);
    printf("\\n");
  }
  return 0;
}`, CASES.map(([c, b]) => `${c} ${b}`).join("\n") + "\n");
    const lines = out.trim().split("\n");
    CASES.forEach(([cap, budget], i) => {
      let left = budget;
      const tries: number[] = [];
      const pages = budgetProbe(cap, (n) => { tries.push(n); if (n + 1 <= left) { left -= n + 1; return true; } return false; });
      expect(lines[i], `cap ${cap} budget ${budget}`).toBe([pages, ...tries].join(" "));
    });
  });

  it("is what the native build hash covers", () => {
    expect(sourceClosure(join(ROOT, "hwtest/host/native/exec.c"))).toContain(HEADER);
    expect(sourceClosure(join(ROOT, "hwtest/host/native/auxprobe.c"))).toContain(HEADER);
  });
});

describe("the kernel-warning pattern", () => {
  it("of the guest shim (plain JavaScript, cannot import spec/audit.ts) is KERNEL_WARNING", () => {
    const shim = readFileSync(join(ROOT, "hwtest/vm/guest/shim.mjs"), "utf8");
    const m = /^const WARN_RE = \/(.*)\/([a-z]*);$/m.exec(shim);
    expect(m, "WARN_RE not found in hwtest/vm/guest/shim.mjs").not.toBeNull();
    expect({ source: m![1], flags: m![2] }).toEqual({ source: KERNEL_WARNING.source, flags: KERNEL_WARNING.flags });
  });
});

const CASES: Array<[number, number]> = [[274, 258], [274, 256], [274, 0], [274, 274], [1, 1], [40, 7], [2064, 2048], [18, 3]];

/** ax_budget_probe's text from the header, renamed, so the mock macros above apply to it. */
function probeBody(): string {
  const text = execFileSync("sed", ["-n", "/^AX_FN long ax_budget_probe/,/^}/p", HEADER]).toString();
  if (!text.includes("ax_budget_probe")) throw new Error("ax_budget_probe not found in runtime/auxspec.h");
  return text.replace("AX_FN long ax_budget_probe", "static long probe");
}
