/**
 * Several processes and users on the live kernel (issue 13, spec/notes/processes.md): hand-written
 * multi-process programs through the host backend, which sends them to the C agent
 * (runtime/agent.c + runtime/procs.h: real fork()s, fresh uids, SCM_RIGHTS). Every expectation
 * is derived from the kernel code (kernel/events/core.c, 6.1 .. 6.18), not from a run:
 * - perf_mmap() sets VM_DONTCOPY on the buffer VMA: a fork child has no mapping there (touch:
 *   SIGSEGV) but holds the fd (dup_fd), so its own mmap of the event works;
 * - a data mmap of an event with a buffer of another size: EINVAL (perf_mmap: "if (data_page_nr(rb)
 *   != nr_pages) -EINVAL"); when the last VMA goes (exit_mmap -> perf_mmap_close) the buffer is
 *   detached and another size maps;
 * - the charge of a new buffer: user_extra = nr_pages + 1 to current_user()->locked_vm, and what
 *   goes over user_lock_limit (perf_event_mlock_kb / 4 * cpus pages) to vma->vm_mm->pinned_vm
 *   (perf_mmap_calc_limits in 6.18, inline in perf_mmap in 6.1/6.12), so VmPin shows whose
 *   user and whose mm paid;
 * - SCM_RIGHTS of an fd the sender does not hold: EBADF (scm_fp_copy: fget fails).
 * Root only (fresh uids); skipped with the reason otherwise.
 */
import { spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, mkdtempSync, readdirSync, readlinkSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Config, Op, Program } from "../../spec/program.ts";
import { showOutcome, type Trace } from "../../spec/trace.ts";
import type { Backend } from "../../backend/contract.ts";
import { MULTI_PROCESS_OPS, hostBackend, hostInfo } from "../../hwtest/host/backend.ts";
import { MULTI_PROCESS_REASON, runProgramHere } from "../../hwtest/host/executor.ts";
import { cagentPath } from "../../hwtest/host/native/build.ts";
import { liveFacts, say, skipLive, skipRoot } from "./live.ts";

say(skipRoot, "multi-process programs on the host (C agent)");

const open = (ev: string, proc?: string): Op => ({ op: "open", ev, pmu: "sw", ...(proc ? { proc } : {}) });
const mmap = (map: string, ev: string, pages: number, proc?: string): Op =>
  ({ op: "mmap", map, ev, pages, pgoff: 0, prot: "rw", ...(proc ? { proc } : {}) });
const outcomes = (t: Trace) => t.steps.map((s) => showOutcome(s.outcome).split(" ")[0]);

let b: Backend;
let config: Config;
/** user_lock_limit in pages. */
let limit = 0;

beforeAll(async () => {
  if (skipRoot) return;
  b = await hostBackend({ workers: 1 });
  config = b.info.config;
  limit = (config.mlockKb >> 2) * config.cpus;
}, 60_000);
afterAll(async () => { await b?.close(); });

async function run(program: Program): Promise<Trace> {
  const [t] = await b.run([program]);
  expect(t.aborted, JSON.stringify(t)).toBeUndefined();
  expect(t.steps).toHaveLength(program.length);
  return t;
}

describe.skipIf(skipRoot !== null)("multi-process programs through the host backend", () => {
  it("a fork child holds the fd but not the mapping: touch SIGSEGV, its own mmap of the event works", async () => {
    const t = await run([
      open("e0"), mmap("m0", "e0", 3),
      { op: "fork", proc: "p1", from: "p0" },
      { op: "touch", proc: "p1", map: "m0", page: 0, write: false }, // VM_DONTCOPY: nothing there
      { op: "touch", map: "m0", page: 0, write: false },             // p0 still has it
      mmap("m1", "e0", 3, "p1"),                                      // same size: attaches to the rb
      { op: "readUserPage", map: "m1" },                              // runs in p1 (the mmap's process)
      mmap("m2", "e0", 5, "p1"),                                      // another size: EINVAL
    ]);
    expect(outcomes(t)).toEqual(["ok", "ok", "ok", "SIGSEGV", "ok", "ok", "ok", "EINVAL"]);
    expect(t.steps[6].outcome).toEqual({ ok: true, page: { dataOffset: 4096, dataSize: 2 * 4096, auxHead: 0, auxOffset: 0, auxSize: 0 } });
    expect(t.audit?.vmPinKb).toBe(0);
  });

  it("exit releases the child's mapping: the buffer goes and another size maps", async () => {
    const t = await run([
      open("e0"),
      { op: "fork", proc: "p1", from: "p0" },
      mmap("m0", "e0", 3, "p1"),  // the child creates the buffer (2 data pages)
      mmap("m1", "e0", 5),        // p0: another size while it lives: EINVAL
      { op: "exit", proc: "p1" }, // exit_mmap -> perf_mmap_close: the last VMA, the rb detached
      mmap("m2", "e0", 5),        // now a new buffer of 4 data pages
      { op: "readUserPage", map: "m2" },
    ]);
    expect(outcomes(t)).toEqual(["ok", "ok", "ok", "EINVAL", "ok", "ok", "ok"]);
    expect(t.steps[6].outcome).toEqual({ ok: true, page: { dataOffset: 4096, dataSize: 4 * 4096, auxHead: 0, auxOffset: 0, auxSize: 0 } });
    expect(t.audit?.budgetPages).toBe(limit);
  });

  it("setuid to u1: the child's buffer charges u1 and the child's mm, not u0 or p0's mm", async () => {
    // 512 data pages + the user page = 513 pages: over user_lock_limit by 513 - limit pages
    const over = 513 - limit;
    expect(over).toBeGreaterThan(0);
    const t = await run([
      { op: "fork", proc: "p1", from: "p0" },
      { op: "setuid", proc: "p1", user: "u1" },
      open("e0", "p1"), mmap("m0", "e0", 513, "p1"), // u1: locked_vm limit, p1's pinned_vm `over`
      open("e1"), mmap("m1", "e1", 513),             // u0 untouched: the same split, in p0's mm
      { op: "exit", proc: "p1" },                     // VmPin 0: the mm is gone
    ]);
    expect(outcomes(t)).toEqual(["ok", "ok", "ok", "ok", "ok", "ok", "ok"]);
    expect(t.steps.map((s) => s.vmPinKb)).toEqual([0, 0, 0, over * 4, 0, over * 4, 0]);
    // teardown: p1's exit refunded u1 (rb->mmap_user) and its mm took its pinned pages along;
    // p0's munmap refunded u0 and p0's pinned_vm
    expect(t.audit).toMatchObject({ vmPinKb: 0, budgetPages: limit, budgets: { u1: limit } });
  });

  it("a re-map by u1 of u0's buffer charges u1 on 6.18, which perf_mmap_close never refunds", async () => {
    // 6.18 perf_mmap_rb charges a re-map (perf_mmap_account, user_extra) to current_user();
    // perf_mmap_close refunds rb->mmap_user (u0) once: u1 keeps the 2 pages. 6.1/6.12 charge nothing.
    const t = await run([
      open("e0"), mmap("m0", "e0", 2),
      { op: "fork", proc: "p1", from: "p0" },
      { op: "setuid", proc: "p1", user: "u1" },
      mmap("m1", "e0", 2, "p1"),
    ]);
    expect(outcomes(t)).toEqual(["ok", "ok", "ok", "ok", "ok"]);
    const leak = liveFacts!.profile === "6.18" ? 2 : 0;
    expect(t.audit).toMatchObject({ vmPinKb: 0, budgetPages: limit, budgets: { u1: limit - leak } });
  });

  it("sendFd passes an fd: the receiver maps the event; an fd not held answers EBADF", async () => {
    const t = await run([
      { op: "fork", proc: "p1", from: "p0" },
      open("e0", "p1"),                                 // only p1 holds it
      mmap("m0", "e0", 3),                               // p0 has no fd: EBADF
      { op: "sendFd", proc: "p0", to: "p1", ev: "e0" },  // p0 holds none: EBADF
      { op: "sendFd", proc: "p1", to: "p0", ev: "e0" },
      mmap("m1", "e0", 3),
      { op: "readUserPage", map: "m1" },
      { op: "sendFd", proc: "p1", to: "p0", ev: "e0" },  // a duplicate: closed at once by p0
      { op: "close", ev: "e0" },                         // p0's one fd
      { op: "close", ev: "e0" },                         // none left in p0
      { op: "fork", proc: "p2", from: "p1" },            // p2 inherits p1's fd
      mmap("m2", "e0", 3, "p2"),                         // same size as the live buffer (a re-map)
      { op: "close", proc: "p2", ev: "e0" },
      { op: "close", proc: "p2", ev: "e0" },
    ]);
    expect(outcomes(t)).toEqual(["ok", "ok", "EBADF", "EBADF", "ok", "ok", "ok", "ok", "ok", "EBADF", "ok", "ok", "ok", "EBADF"]);
    // p2's re-map of the live buffer: 6.18 charges u0 its 3 pages again, never refunded (the
    // known 6.18 re-map leak); 6.1/6.12 charge nothing
    const leak = liveFacts!.profile === "6.18" ? 3 : 0;
    expect(t.audit).toMatchObject({ vmPinKb: 0, budgetPages: limit - leak });
  });

  it("the TypeScript executor answers a multi-process program aborted, with the reason", () => {
    const t = runProgramHere([{ op: "fork", proc: "p1", from: "p0" }], liveFacts!.config, liveFacts!);
    expect(t.aborted).toBe(MULTI_PROCESS_REASON);
    expect(t.steps).toEqual([]);
  });

  it("single- and multi-process programs in one batch each go to their agent", async () => {
    const single: Program = [open("e0"), mmap("m0", "e0", 2)];
    const multi: Program = [open("e0"), { op: "fork", proc: "p1", from: "p0" }, { op: "close", proc: "p1", ev: "e0" }];
    const ts = await b.run([single, multi, single]);
    expect(ts.map((t) => t.aborted)).toEqual([undefined, undefined, undefined]);
    expect(ts.map(outcomes)).toEqual([["ok", "ok"], ["ok", "ok", "ok"], ["ok", "ok"]]);
    expect(b.info.unsupported.has("fork")).toBe(false);
  });
});

/** Processes running the binary at `path` (by /proc/PID/exe). */
function running(path: string): number[] {
  const out: number[] = [];
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try { if (readlinkSync(`/proc/${d}/exe`) === path) out.push(Number(d)); } catch { /* gone or not ours */ }
  }
  return out;
}

describe.skipIf(skipRoot !== null)("the C agent's processes", () => {
  const dir = mkdtempSync(join(tmpdir(), "auxspec-cagent-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("leaves nothing running after a time-out in the middle of a multi-process program", () => {
    chmodSync(dir, 0o755);
    const bin = join(dir, "agent-timeout");
    copyFileSync(cagentPath(), bin);
    const ops: Op[] = [{ op: "fork", proc: "p1", from: "p0" }, { op: "fork", proc: "p2", from: "p1" }, { op: "setuid", proc: "p2", user: "u1" }];
    for (let i = 0; i < 300; i++) ops.push(open(`e${i}`, "p2"));
    const req = [
      JSON.stringify({ id: 1, program: ops, config: liveFacts!.config, timeoutMs: 5 }),
      JSON.stringify({ id: 2, program: [{ op: "fork", proc: "p1", from: "p0" }], config: liveFacts!.config }),
    ].join("\n") + "\n";
    const r = spawnSync(bin, [], { input: req, encoding: "utf8", timeout: 30_000 });
    const [late, next] = r.stdout.trim().split("\n").map((l) => JSON.parse(l));
    expect(late.trace.aborted).toMatch(/^timed out after 5 ms/);
    expect(next.trace.steps).toEqual([{ outcome: { ok: true }, vmPinKb: 0 }]);
    // the worker was killed; its children died with it (PR_SET_PDEATHSIG), the agent exited
    let left = running(bin);
    for (let i = 0; i < 50 && left.length; i++) { spawnSync("sleep", ["0.1"]); left = running(bin); }
    expect(left).toEqual([]);
  });

  it("works as an ordinary user: setuid to another user is the kernel's EPERM, budgets measured as agent.ts does", () => {
    chmodSync(dir, 0o755);
    const bin = join(dir, "agent-nonroot");
    copyFileSync(cagentPath(), bin);
    chmodSync(bin, 0o755);
    const drop = ["--reuid=65534", "--regid=65534", "--clear-groups"];
    if (spawnSync("setpriv", [...drop, "true"]).status !== 0) { console.log("[skip] setpriv cannot drop to uid 65534"); return; }
    const config: Config = { ...liveFacts!.config, capSetuid: false };
    const program: Program = [
      open("e0"), mmap("m0", "e0", 3),
      { op: "fork", proc: "p1", from: "p0" },
      { op: "setuid", proc: "p1", user: "u1" },  // no CAP_SETUID: EPERM
      { op: "setuid", proc: "p1", user: "u0" },  // already that user: ok
      { op: "touch", proc: "p1", map: "m0", page: 0, write: false },
      mmap("m1", "e0", 3, "p1"),
      { op: "exit", proc: "p1" },
    ];
    const req = [
      JSON.stringify({ id: 1, program, config }),
      JSON.stringify({ id: 2, program, config: liveFacts!.config }), // capSetuid true: not here
    ].join("\n") + "\n";
    const r = spawnSync("setpriv", [...drop, bin, "--measure-budget"], { input: req, encoding: "utf8", timeout: 30_000 });
    const [a, bad] = r.stdout.trim().split("\n").map((l) => JSON.parse(l).trace as Trace);
    expect(a.aborted, r.stderr).toBeUndefined();
    expect(outcomes(a)).toEqual(["ok", "ok", "ok", "EPERM", "ok", "SIGSEGV", "ok", "ok"]);
    expect(a.audit?.budgets).toBeUndefined();
    expect(typeof a.audit?.budgetPages).toBe("number");
    expect(bad.aborted).toMatch(/capSetuid/);
  });

  it("the host backend as an ordinary user routes a multi-process program to the C agent (capSetuid false, EPERM)", () => {
    const root = join(import.meta.dirname, "../..");
    const drop = ["--reuid=65534", "--regid=65534", "--clear-groups"];
    if (spawnSync("setpriv", [...drop, "test", "-r", join(root, "cli/main.ts")]).status !== 0) {
      console.log("[skip] backend as uid 65534: setpriv missing or the checkout is not readable by uid 65534");
      return;
    }
    const home = mkdtempSync(join(tmpdir(), "auxspec-home-"));
    chmodSync(home, 0o777);
    try {
      const code = `
        const { hostBackend } = await import("./hwtest/host/backend.ts");
        const b = await hostBackend({ workers: 1 });
        const p = [{ op: "open", ev: "e0", pmu: "sw" }, { op: "fork", proc: "p1", from: "p0" },
          { op: "setuid", proc: "p1", user: "u1" }, { op: "mmap", proc: "p1", map: "m0", ev: "e0", pages: 3, pgoff: 0, prot: "rw" },
          { op: "touch", map: "m0", page: 0, write: true }, { op: "exit", proc: "p1" }];
        const [t] = await b.run([p]);
        console.log(JSON.stringify({ config: b.info.config, unsupported: [...b.info.unsupported], trace: t }));
        await b.close();`;
      const r = spawnSync("setpriv", [...drop, "env", `HOME=${home}`, process.execPath, "--import", "tsx", "--input-type=module", "-e", code],
        { cwd: root, encoding: "utf8", timeout: 120_000 });
      expect(r.status, r.stderr.slice(-2000)).toBe(0);
      const j = JSON.parse(r.stdout.trim().split("\n").at(-1)!) as { config: Config; unsupported: string[]; trace: Trace };
      expect(j.config.capSetuid).toBe(false);
      expect(j.unsupported).not.toContain("fork");
      expect(j.trace.aborted, JSON.stringify(j.trace)).toBeUndefined();
      // setuid without CAP_SETUID: EPERM; the child's mmap and touch run in p1 (m0's process)
      expect(outcomes(j.trace)).toEqual(["ok", "ok", "EPERM", "ok", "ok", "ok"]);
      expect(j.trace.audit?.budgets).toBeUndefined();
      expect(typeof j.trace.audit?.budgetPages).toBe("number");
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  }, 150_000);
});

describe.skipIf(skipLive !== null)("without the C agent", () => {
  it("the host marks fork, exit, setuid, sendFd, thread and par unsupported, saying why", () => {
    const info = hostInfo(liveFacts!, {}, "cannot build runtime/agent.c with gcc (spawn gcc ENOENT)");
    for (const op of MULTI_PROCESS_OPS) expect(info.unsupported.has(op), op).toBe(true);
    expect(info.notes.some((n) => /fork, exit, setuid, sendFd, thread and par unsupported: .*cannot fork.*spawn gcc ENOENT/.test(n))).toBe(true);
    expect(hostInfo(liveFacts!, {}, null).unsupported.has("fork")).toBe(false);
    expect(hostInfo(liveFacts!, {}, null).unsupported.has("par")).toBe(false);
  });
});
