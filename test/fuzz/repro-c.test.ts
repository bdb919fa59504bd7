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
import { spawnSync } from "node:child_process";
import type { Case, Config, Op, Outcome } from "../../spec/program.ts";
import { loadCase, writeCase } from "../../fuzz/cases.ts";
import { MAP_RANGE_FAULT_NO_C, reproC, runtimeText } from "../../fuzz/repro-c.ts";
import type { ProgramExpectation } from "../../fuzz/expect.ts";
import { liveFacts, skipRoot } from "../hwtest/live.ts";

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

  // A case with processes and users, with its expectation derived by hand from the kernel
  // (kernel/events/core.c 6.1 .. 6.18): VM_DONTCOPY leaves the fork child no mapping (SIGSEGV);
  // a new buffer of 512 data pages + 1 charges current_user() up to user_lock_limit and the
  // mapping mm's pinned_vm beyond it (perf_mmap_calc_limits 6.18, inline in perf_mmap 6.1/6.12);
  // the child's exit refunds u1 (rb->mmap_user) and its mm goes with its pinned pages.
  const mpCase = (config: Config): { c: Case; exp: ProgramExpectation } => {
    const limit = (config.mlockKb >> 2) * config.cpus;
    const over = Math.max(0, 513 - limit) * 4;
    const ok: Outcome = { ok: true };
    const steps: Array<[Op, Outcome, number]> = [
      [{ op: "open", ev: "e0", pmu: "sw" }, ok, 0],
      [{ op: "mmap", map: "m0", ev: "e0", pages: 3, pgoff: 0, prot: "rw" }, ok, 0],
      [{ op: "fork", proc: "p1", from: "p0" }, ok, 0],
      [{ op: "touch", proc: "p1", map: "m0", page: 0, write: false }, { signal: "SIGSEGV" }, 0],
      [{ op: "setuid", proc: "p1", user: "u1" }, ok, 0],
      [{ op: "open", proc: "p1", ev: "e1", pmu: "sw" }, ok, 0],
      [{ op: "mmap", proc: "p1", map: "m1", ev: "e1", pages: 513, pgoff: 0, prot: "rw" }, ok, over],
      [{ op: "sendFd", proc: "p1", to: "p0", ev: "e1" }, ok, over],
      [{ op: "readUserPage", map: "m1" }, { ok: true, page: { dataOffset: 4096, dataSize: 512 * 4096, auxHead: 0, auxOffset: 0, auxSize: 0 } }, over],
      [{ op: "sendFd", proc: "p0", to: "p1", ev: "e0" }, ok, 0],
      [{ op: "close", ev: "e1" }, ok, 0],
      [{ op: "close", ev: "e1" }, { errno: "EBADF" }, 0],
      [{ op: "exit", proc: "p1" }, ok, 0],
    ];
    return {
      c: { format: "auxspec-case/1", name: "processes-and-users", config, program: steps.map((s) => s[0]) },
      exp: {
        perOp: steps.map(([, o, pin]) => ({ preferred: o, allowed: [o], allowedVmPinKb: [pin], rule: "hand-derived" })),
        audit: { vmPinKb: 0, budgetPages: limit, liveAux: 0 },
        brokenInvariants: [],
      },
    };
  };

  it.skipIf(!hasGcc())("a case with processes inlines runtime/procs.h, compiles alone and the known ones do not change", () => {
    const base = loadCase(join(KNOWN, "6.18-remap-leaks-locked-vm.json"));
    const { c, exp } = mpCase(base.config);
    const text = reproC(c, "6.18", exp);
    expect(text).toContain(runtimeText(true));
    expect(runtimeText()).not.toContain("AUXSPEC_PROCS_H");
    for (const s of ["AX_FORK(1, 0)", "AX_SETUID(1, 1)", "AX_SEND_FD(1, 0, 1)", "AX_EXIT(1)", "step_procs[] = { 0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1 }", "static const int users[] = { 1 };"]) expect(text).toContain(s);
    writeFileSync(join(dir, "procs.c"), text);
    execFileSync("gcc", ["-static", "-O2", "-Wall", "-Werror", "-o", join(dir, "procs"), join(dir, "procs.c")], { cwd: dir });
  });

  it.skipIf(!hasGcc() || skipRoot !== null)("a case with processes runs on this kernel and agrees with the hand-derived expectation (root)", () => {
    const { c, exp } = mpCase(liveFacts!.config);
    writeFileSync(join(dir, "procs-live.c"), reproC(c, liveFacts!.profile, exp));
    execFileSync("gcc", ["-static", "-O2", "-Wall", "-Werror", "-o", join(dir, "procs-live"), join(dir, "procs-live.c")], { cwd: dir });
    const r = spawnSync(join(dir, "procs-live"), [], { encoding: "utf8", timeout: 60_000 });
    expect(r.status, r.stdout).toBe(0);
    expect(r.stdout).toMatch(/ok \d+ - audit: u1 locked-memory budget \d+ pages back in full/);
    expect(r.stdout).toContain("# PASS");
    expect(r.stdout).not.toContain("not ok");
  });

  it("inlines the runtime and names errnos by their <errno.h> symbols", () => {
    const text = reproC(loadCase(join(KNOWN, "6.18-remap-leaks-locked-vm.json")));
    expect(text).toContain(runtimeText());
    expect(text).not.toMatch(/#include\s+"/);
    expect(text).toMatch(/\(const int\[\]\)\{ 0, ENOMEM \}/);
  });
});

// A case with a par block (issue 14), its expectation derived by hand from the kernel
// (kernel/events/core.c perf_mmap, 6.1 .. 6.18): two processes map one event at once, 2 and 4
// data pages; whichever comes first creates the rb, the other finds a buffer of another size
// (data_page_nr(rb) != nr_pages: EINVAL). Every order allows ok or EINVAL for each, VmPin 0
// (3 and 5 pages stay under user_lock_limit). `wrong` claims p0 always wins (a divergence the
// repetitions must show).
describe("C reproducers of par blocks", () => {
  const parCase = (config: Config, wrong = false): { c: Case; exp: ProgramExpectation } => {
    const limit = (config.mlockKb >> 2) * config.cpus;
    const ok: Outcome = { ok: true };
    const einval: Outcome = { errno: "EINVAL" };
    const steps: Array<[Op, Outcome[]]> = [
      [{ op: "open", ev: "e0", pmu: "sw" }, [ok]],
      [{ op: "fork", proc: "p1", from: "p0" }, [ok]],
      [{ op: "thread", proc: "p2", from: "p1" }, [ok]],
      [{ op: "par", ops: 2 }, [ok]],
      [{ op: "mmap", map: "m0", ev: "e0", pages: 3, pgoff: 0, prot: "rw" }, wrong ? [ok] : [ok, einval]],
      [{ op: "mmap", proc: "p2", map: "m1", ev: "e0", pages: 5, pgoff: 0, prot: "rw" }, wrong ? [einval] : [einval, ok]],
    ];
    return {
      c: { format: "auxspec-case/1", name: "par-mmap-sizes", config, program: steps.map((s) => s[0]) },
      exp: {
        perOp: steps.map(([, os]) => ({ preferred: os[0], allowed: os, allowedVmPinKb: [0], rule: "hand-derived" })),
        audit: { vmPinKb: 0, budgetPages: limit, liveAux: 0 },
        brokenInvariants: [],
      },
    };
  };

  it.skipIf(!hasGcc())("a case with a par block holds AX_THREAD and AX_PAR, a repeat count, and compiles alone", () => {
    const base = loadCase(join(KNOWN, "6.18-remap-leaks-locked-vm.json"));
    const { c, exp } = parCase(base.config);
    const text = reproC(c, "6.18", exp, 500);
    for (const s of ["AX_THREAD(2, 1)", "AX_PAR(2)", ".repeat = 500,", "step_procs[] = { 0, 1, 2, 0, 0, 2 }"]) expect(text).toContain(s);
    writeFileSync(join(dir, "par.c"), text);
    execFileSync("gcc", ["-static", "-O2", "-Wall", "-Werror", "-o", join(dir, "par"), join(dir, "par.c")], { cwd: dir });
  });

  it.skipIf(!hasGcc() || skipRoot !== null)("runs the block with the barrier, repeated: passes with the true expectation, fails with a wrong one (root)", () => {
    for (const wrong of [false, true]) {
      const { c, exp } = parCase(liveFacts!.config, wrong);
      const name = wrong ? "par-wrong" : "par-live";
      writeFileSync(join(dir, `${name}.c`), reproC(c, liveFacts!.profile, exp));
      execFileSync("gcc", ["-static", "-O2", "-Wall", "-Werror", "-o", join(dir, name), join(dir, `${name}.c`)], { cwd: dir });
      const r = spawnSync(join(dir, name), [], { encoding: "utf8", timeout: 120_000, env: { ...process.env, AUXSPEC_REPEAT: "300" } });
      if (!wrong) {
        expect(r.status, r.stdout).toBe(0);
        expect(r.stdout).toMatch(/ok \d+ - 299 more repetitions: every result allowed/);
        expect(r.stdout).toMatch(/# par block at op 3: \S+ \S+ x\d+/);
        expect(r.stdout).not.toContain("not ok");
      } else {
        // p1's task wins some of the 300 races: the first repetition or a later one diverges
        expect(r.status, r.stdout).toBe(1);
        expect(r.stdout).toMatch(/not ok \d+ - (repetition \d+ of 300 diverges: op [45]|mmap)/);
      }
    }
  }, 120_000);

  it("a case that arms the map_range() fault switch has no C reproducer: writeCase writes its JSON only, saying why", () => {
    const c: Case = {
      format: "auxspec-case/1", name: "fault", profile: "6.18",
      config: { pageSize: 4096, cpus: 2, mlockKb: 516, memlockPages: 16, capIpcLock: false, paranoid: 2, pmus: { aux: null } },
      program: [{ op: "open", ev: "e0", pmu: "sw" }, { op: "mapRangeFault", times: 1 }, { op: "mmap", map: "m0", ev: "e0", pages: 3, pgoff: 0, prot: "rw" }],
    };
    expect(() => reproC(c)).toThrow(MAP_RANGE_FAULT_NO_C);
    const d = mkdtempSync(join(tmpdir(), "auxspec-fault-case-"));
    try {
      const w = writeCase(d, c);
      expect(w.c).toBeUndefined();
      expect(w.noRepro).toBe(MAP_RANGE_FAULT_NO_C);
      expect(readdirSync(d).filter((f) => f.endsWith(".c"))).toEqual([]);
      expect(loadCase(w.json).program).toEqual(c.program);
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });
});
