/**
 * The koffi executor on the live kernel: programs whose outcomes notes/kernel-semantics.md
 * marks [seen on 6.18], plus the audit. Each program runs under its own fresh uid.
 */
import { describe, expect, it } from "vitest";
import type { Config, Op, Program } from "../../spec/program.ts";
import { showOutcome } from "../../spec/trace.ts";
import { runProgramHere } from "../../hwtest/host/executor.ts";
import { libc, MAP_SHARED, PAGE, PROT, RLIMIT_MEMLOCK } from "../../hwtest/host/libc.ts";
import { openDummy, probeBudget } from "../../hwtest/host/perf.ts";
import { is618, liveFacts, say, skipLive, skipRoot } from "./live.ts";

say(skipLive, "executor tests");
say(skipLive ? null : skipRoot, "root-only executor tests (fresh uids, budget)");

const mm = (map: string, ev: string, pages: number, extra: Partial<Extract<Op, { op: "mmap" }>> = {}): Op =>
  ({ op: "mmap", map, ev, pages, pgoff: 0, prot: "rw", shared: true, ...extra });
const open = (ev: string, extra: Partial<Extract<Op, { op: "open" }>> = {}): Op => ({ op: "open", ev, pmu: "sw", ...extra });

function run(program: Program, over: Partial<Config> = {}, touchMode?: "child" | "inproc") {
  const f = liveFacts!;
  const t = runProgramHere(program, { ...f.config, ...over }, f, { touchMode });
  expect(t.aborted).toBeUndefined();
  expect(t.steps).toHaveLength(program.length);
  return { trace: t, outcomes: t.steps.map((s) => showOutcome(s.outcome)) };
}

const limit = () => (liveFacts!.config.mlockKb >> 2) * liveFacts!.config.cpus;

describe.skipIf(skipLive !== null)("host executor, live kernel", () => {
  it("maps a data buffer, reads the user page, re-maps the same size, refuses others", () => {
    const { trace, outcomes } = run([open("e0"), mm("m0", "e0", 9), { op: "readUserPage", map: "m0" }, mm("m1", "e0", 5), mm("m2", "e0", 1)]);
    expect(outcomes.map((o) => o.split(" ")[0])).toEqual(["ok", "ok", "ok", "EINVAL", "EINVAL"]);
    expect(trace.steps[2].outcome).toEqual({ ok: true, page: { dataOffset: 4096, dataSize: 8 * 4096, auxHead: 0, auxOffset: 0, auxSize: 0 } });
    expect(trace.steps.every((s) => s.vmPinKb === 0)).toBe(true);
    expect(trace.audit?.vmPinKb).toBe(0);
  });

  it("EINVAL: data pages not a power of 2, length 0, MAP_PRIVATE", () => {
    expect(run([open("e0"), mm("m0", "e0", 4), mm("m1", "e0", 0), mm("m2", "e0", 3, { shared: false }), mm("m3", "e0", 3)]).outcomes)
      .toEqual(["ok", "EINVAL", "EINVAL", "EINVAL", "ok"]);
  });

  it("AUX on a software event: EOPNOTSUPP; bad AUX offsets EINVAL; no buffer EINVAL", () => {
    const { trace, outcomes } = run([
      open("e0"), mm("m0", "e0", 3),
      { op: "setAux", map: "m0", offsetPages: 4, sizePages: 4 },
      { op: "readUserPage", map: "m0" },
      mm("m1", "e0", 4, { pgoff: 4 }),
      mm("m2", "e0", 4, { pgoff: 8 }),
      open("e1"), mm("m3", "e1", 4, { pgoff: 4 }),
    ]);
    expect(outcomes.filter((_, i) => i !== 3)).toEqual(["ok", "ok", "ok", "EOPNOTSUPP", "EINVAL", "ok", "EINVAL"]);
    expect(trace.steps[3].outcome).toEqual({ ok: true, page: { dataOffset: 4096, dataSize: 8192, auxHead: 0, auxOffset: 4 * 4096, auxSize: 4 * 4096 } });
  });

  it("pmu aux without an AUX PMU opens a type no PMU has: ENOENT", () => {
    if (liveFacts!.auxPmu) return; // a machine with an AUX PMU opens it instead
    expect(run([open("e0", { pmu: "aux" })]).outcomes).toEqual(["ENOENT"]);
  });

  it("touch: user page writable, data pages SIGBUS on write, PROT_READ SIGSEGV, beyond the map SIGSEGV", () => {
    for (const mode of ["child", "inproc"] as const) {
      const { outcomes } = run([
        open("e0"), mm("m0", "e0", 3),
        { op: "touch", map: "m0", page: 0, write: true },
        { op: "touch", map: "m0", page: 1, write: false },
        { op: "touch", map: "m0", page: 1, write: true },
        { op: "touch", map: "m0", page: 2, write: true },
        { op: "touch", map: "m0", page: 3, write: false },
        mm("m1", "e0", 3, { prot: "r" }),
        { op: "touch", map: "m1", page: 0, write: true },
        { op: "touch", map: "m1", page: 0, write: false },
        { op: "mprotect", map: "m0", prot: "r" },
        { op: "touch", map: "m0", page: 0, write: true },
        { op: "setAux", map: "m1", offsetPages: 4, sizePages: 1 },
      ], {}, mode);
      expect(outcomes, mode).toEqual(["ok", "ok", "ok", "ok", "SIGBUS", "SIGBUS", "SIGSEGV", "ok", "SIGSEGV", "ok", "ok", "SIGSEGV", "SIGSEGV"]);
    }
  });

  it("dead handles are fd -1: EBADF; an empty slot unmaps fine and touches SIGSEGV", () => {
    expect(run([
      open("e0"), { op: "close", ev: "e0" },
      mm("m0", "e0", 1),
      { op: "setOutput", ev: "e0", target: null },
      { op: "close", ev: "e0" },
      open("e1"),
      { op: "setOutput", ev: "e1", target: "e0" },
      { op: "munmap", map: "m0" },
      { op: "touch", map: "m0", page: 0, write: false },
      { op: "readUserPage", map: "m0" },
    ]).outcomes).toEqual(["ok", "ok", "EBADF", "EBADF", "EBADF", "ok", "EBADF", "ok", "SIGSEGV", "SIGSEGV"]);
  });

  it("SET_OUTPUT: self EINVAL, no buffer EINVAL, mapped source EINVAL, other CPU EINVAL, detach ok", () => {
    expect(run([
      open("e0"), open("e1"),
      { op: "setOutput", ev: "e0", target: "e0" },
      { op: "setOutput", ev: "e1", target: "e0" },
      mm("m0", "e0", 3),
      { op: "setOutput", ev: "e0", target: "e1" },
      { op: "setOutput", ev: "e0", target: null },
      { op: "setOutput", ev: "e1", target: "e0" },
      { op: "setOutput", ev: "e1", target: null },
      open("e2", { cpu: 0 }),
      { op: "setOutput", ev: "e2", target: "e0" },
      open("e3", { outputTo: "e0" }),
      open("e4", { cpu: 0, outputTo: "e0" }),
    ]).outcomes).toEqual(["ok", "ok", "EINVAL", "EINVAL", "ok", "EINVAL", "EINVAL", "ok", "ok", "ok", "EINVAL", "ok", "EINVAL"]);
  });

  it("mapping an event that only reaches a buffer through SET_OUTPUT: EBUSY (other size EINVAL)", () => {
    expect(run([
      open("e0"), mm("m0", "e0", 3), open("e1"),
      { op: "setOutput", ev: "e1", target: "e0" },
      mm("m1", "e1", 3), mm("m2", "e1", 5),
      { op: "munmap", map: "m0" },
      mm("m3", "e1", 3),
    ]).outcomes).toEqual(["ok", "ok", "ok", "ok", "EBUSY", "EINVAL", "ok", "ok"]);
  });

  it("VMA operations: partial munmap/mprotect/mremap EINVAL, grow EFAULT, move ok, inherit per-task EINVAL", () => {
    expect(run([
      open("e0"), mm("m0", "e0", 3),
      { op: "munmap", map: "m0", offset: 1, pages: 1 },
      { op: "munmap", map: "m0", offset: 2, pages: 1 },
      { op: "mprotect", map: "m0", offset: 1, pages: 1, prot: "r" },
      { op: "mremap", map: "m0", oldPages: 3, newPages: 5, mayMove: true },
      { op: "mremap", map: "m0", oldPages: 3, newPages: 2 },
      { op: "mapFixedAnon", map: "m0", offset: 1, pages: 1 },
      { op: "mremap", map: "m0", oldPages: 3, newPages: 3, toFresh: true },
      { op: "readUserPage", map: "m0" },
      { op: "munmap", map: "m0" },
      { op: "touch", map: "m0", page: 0, write: false },
      open("e1", { inherit: true }), mm("m1", "e1", 3),
    ]).outcomes).toEqual(["ok", "ok", "EINVAL", "EINVAL", "EINVAL", "EFAULT", "EINVAL", "EINVAL", "ok",
      'ok {"dataOffset":4096,"dataSize":8192,"auxHead":0,"auxOffset":0,"auxSize":0}', "ok", "SIGSEGV", "ok", "EINVAL"]);
  });

  it("6.15+: PROT_EXEC on a perf fd is EPERM", () => {
    if (!is618) return;
    expect(run([open("e0"), mm("m0", "e0", 3, { prot: "rwx" }), mm("m1", "e0", 3, { prot: "rx" })]).outcomes).toEqual(["ok", "EPERM", "EPERM"]);
  });
});

describe.skipIf(skipRoot !== null)("host executor as a fresh uid (root)", () => {
  it("over the user budget with RLIMIT_MEMLOCK 0: EPERM, AUX over budget EPERM before EOPNOTSUPP", () => {
    const L = limit();
    // the largest 2^k + 1 pages that fit, then count what is left
    let k = 0;
    while (2 ** (k + 1) + 1 <= L) k++;
    const big = 2 ** k + 1;
    const left = L - big; // 1 with 2 CPUs x 129 pages
    const { outcomes, trace } = run([
      open("e0"), mm("m0", "e0", big),
      open("e1"), mm("m1", "e1", 3), // 3 pages charged: more than is left when left < 3
      mm("m2", "e1", 1),
      { op: "setAux", map: "m0", offsetPages: 4096, sizePages: 4 },
      mm("m3", "e0", 4, { pgoff: 4096 }),
    ], { memlockPages: 0 });
    expect(outcomes).toEqual([
      "ok", "ok", "ok", left >= 3 ? "ok" : "EPERM",
      left >= 1 ? "ok" : "EPERM", "ok",
      // the accounting check comes before the PMU's setup_aux: over budget is EPERM even on a software event
      left - 1 >= 4 ? "EOPNOTSUPP" : "EPERM",
    ]);
    expect(trace.steps.every((s) => s.vmPinKb === 0)).toBe(true);
    expect(trace.audit).toEqual({ vmPinKb: 0, budgetPages: L });
  });

  it("charges beyond the user budget go to pinned_vm (VmPin) when RLIMIT_MEMLOCK allows, and come back", () => {
    // with 2 CPUs x 129 pages (this machine): 257 + 5 pages -> 4 pages over -> 16 kB pinned
    if (limit() === 258) {
      const t2 = run([open("e0"), mm("m0", "e0", 257), open("e1"), mm("m1", "e1", 5), { op: "munmap", map: "m0" }, { op: "munmap", map: "m1" }], { memlockPages: 16 }).trace;
      expect(t2.steps.map((s) => s.vmPinKb)).toEqual([0, 0, 0, 16, 16, 0]);
      expect(t2.audit).toEqual({ vmPinKb: 0, budgetPages: 258 });
      const t3 = run([open("e0"), mm("m0", "e0", 257), open("e1"), mm("m1", "e1", 5)], { memlockPages: 0, capIpcLock: true }).trace;
      expect(t3.steps.map((s) => showOutcome(s.outcome))).toEqual(["ok", "ok", "ok", "ok"]);
      expect(t3.steps[3].vmPinKb).toBe(16);
    }
  });

  it("the audit finds the whole budget again after a clean program: (mlock_kb >> 2) * cpus", () => {
    const { trace } = run([open("e0"), mm("m0", "e0", 17), open("e1"), mm("m1", "e1", 2), { op: "munmap", map: "m1" }]);
    expect(trace.audit).toEqual({ vmPinKb: 0, budgetPages: limit() });
  });

  it("the budget probe sees a single page still charged (a 1-page buffer kept mapped during the probe)", () => {
    const l = libc();
    const uid = 4_000_000 + Math.floor(Math.random() * 1_000_000_000);
    const orig = new BigUint64Array(2);
    l.getrlimit(RLIMIT_MEMLOCK, orig);
    expect(l.setresgidThread(uid, uid, 0)).toBe(0);
    expect(l.setresuidThread(uid, uid, 0)).toBe(0);
    let fd = -1, addr = -1;
    try {
      expect(l.setrlimit(RLIMIT_MEMLOCK, new BigUint64Array([0n, orig[1]]))).toBe(0);
      expect(probeBudget(limit() + 16).pages).toBe(limit());
      fd = openDummy();
      expect(fd).toBeGreaterThanOrEqual(0);
      addr = l.mmap(0, PAGE, PROT.rw, MAP_SHARED, fd, 0); // the user page alone: 1 page charged
      expect(addr).not.toBe(-1);
      expect(probeBudget(limit() + 16).pages).toBe(limit() - 1);
      l.munmap(addr, PAGE);
      addr = -1;
      expect(probeBudget(limit() + 16).pages).toBe(limit());
      // the cap: a probe never counts past it
      expect(probeBudget(5)).toMatchObject({ pages: 5, capped: true });
    } finally {
      if (addr !== -1) l.munmap(addr, PAGE);
      if (fd >= 0) l.close(fd);
      l.setresuidThread(0, 0, 0);
      l.setresgidThread(0, 0, 0);
      l.setrlimit(RLIMIT_MEMLOCK, orig);
    }
    expect(l.geteuid()).toBe(0);
  });

  it("6.18: mapping an existing buffer again charges its pages to locked_vm for good (budget short after teardown)", () => {
    if (!is618) return;
    const three = run([open("e0"), mm("m0", "e0", 3), mm("m1", "e0", 3), mm("m2", "e0", 3)]).trace;
    expect(three.audit).toEqual({ vmPinKb: 0, budgetPages: limit() - 6 });
    // a move (perf_mmap_open) and an unmap + fresh map charge nothing extra
    expect(run([open("e0"), mm("m0", "e0", 3), { op: "mremap", map: "m0", oldPages: 3, newPages: 3, toFresh: true }]).trace.audit)
      .toEqual({ vmPinKb: 0, budgetPages: limit() });
  });

  it("a config this machine cannot provide aborts before running anything", () => {
    const f = liveFacts!;
    const t = runProgramHere([open("e0")], { ...f.config, cpus: f.config.cpus + 1 }, f);
    expect(t.aborted).toMatch(/cpus/);
    expect(t.steps).toEqual([]);
    const s = runProgramHere([{ op: "sysctlMlock", kb: 100 }], f.config, f);
    expect(s.aborted).toMatch(/sysctlMlock/);
  });
});
