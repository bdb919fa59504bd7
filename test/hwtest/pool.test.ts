/**
 * Worker processes: the pool against fake agents (time-out, crash, dirty exit), the real agent's
 * JSON-lines protocol, and the host backend end to end.
 */
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterAll, describe, expect, it } from "vitest";
import type { Program } from "../../spec/program.ts";
import { HostPool } from "../../hwtest/host/pool.ts";
import { hostBackend } from "../../hwtest/host/backend.ts";
import { PROJECT_ROOT } from "../../hwtest/host/native/build.ts";
import { liveFacts, say, skipLive, skipRoot } from "./live.ts";

const dir = mkdtempSync(join(tmpdir(), "auxspec-pool-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const fake = join(dir, "fake-agent.mjs");
// A stand-in agent: answers at once, except for programs starting with "close" (the trigger),
// where it hangs, crashes or answers and exits dirty, as told on its command line.
writeFileSync(fake, `
import { createInterface } from "node:readline";
const mode = process.argv[2];
createInterface({ input: process.stdin }).on("line", (line) => {
  const req = JSON.parse(line);
  const trigger = req.program[0] && req.program[0].op === "close";
  if (trigger && mode === "hang") return;
  if (trigger && mode === "malformed") { process.stdout.write(JSON.stringify({ id: req.id, trace: { backend: "fake", steps: "none" } }) + "\\n"); return; }
  if (trigger && mode === "crash") { process.stderr.write("fake agent crashing\\n"); process.exit(1); }
  process.stdout.write(JSON.stringify({ id: req.id, trace: { backend: "fake", kernel: null, steps: [], audit: { vmPinKb: 0 }, aborted: "pid " + process.pid + " uid " + req.uid } }) + "\\n");
  if (trigger && mode === "dirty") process.exit(3);
});
`);

const cfg = { pageSize: 4096 as const, cpus: 2, mlockKb: 516, memlockPages: 0, capIpcLock: false, paranoid: 2, pmus: { aux: null } };
const normal: Program = [{ op: "open", ev: "e0", pmu: "sw" }];
const trigger: Program = [{ op: "close", ev: "e0" } as never];
const pidOf = (t: { aborted?: string }) => /pid (\d+)/.exec(t.aborted ?? "")?.[1];

function fakePool(mode: string, timeoutMs = 1500) {
  return new HostPool({ workers: 1, timeoutMs, kernel: "fake", command: { file: process.execPath, args: [fake, mode] } });
}

describe("HostPool with fake agents", () => {
  it("a reply that is not a Trace (Zod) aborts that program, replaces the worker, and is never a verdict", async () => {
    const pool = fakePool("malformed", 5000);
    try {
      const first = await pool.run(normal, cfg);
      const [bad, after] = await Promise.all([pool.run(trigger, cfg), pool.run(normal, cfg)]);
      expect(bad.aborted).toMatch(/^harness: worker \d+ sent a malformed reply: reply is not a valid trace:[\s\S]*steps/);
      expect(bad.steps).toEqual([]);
      expect(pidOf(after)).toBeDefined();
      expect(pidOf(after)).not.toBe(pidOf(first));
    } finally {
      await pool.close();
    }
  });

  it("kills a worker whose program hangs, reports it aborted, and goes on with a new worker", async () => {
    const pool = fakePool("hang");
    try {
      const first = await pool.run(normal, cfg);
      const t0 = Date.now();
      const [hung, after] = await Promise.all([pool.run(trigger, cfg), pool.run(normal, cfg)]);
      expect(hung.aborted).toMatch(/timed out after 1500 ms .*syscall: .*wchan/);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(1400);
      expect(pidOf(after)).toBeDefined();
      expect(pidOf(after)).not.toBe(pidOf(first));
      expect(pool.spawned).toBe(2);
    } finally {
      await pool.close();
    }
  });

  it("reports a worker that dies during a program, with its stderr", async () => {
    const pool = fakePool("crash");
    try {
      const [dead, after] = await Promise.all([pool.run(trigger, cfg), pool.run(normal, cfg)]);
      expect(dead.aborted).toMatch(/exited \(status 1\) during the program; stderr: fake agent crashing/);
      expect(pidOf(after)).toBeDefined();
    } finally {
      await pool.close();
    }
  });

  it("runs the next program on a fresh worker when one exits dirty (status 3) after answering", async () => {
    const pool = fakePool("dirty");
    try {
      const [a, b, c] = await Promise.all([pool.run(trigger, cfg), pool.run(normal, cfg), pool.run(normal, cfg)]);
      expect(pidOf(a)).toBeDefined();
      expect(pidOf(b)).toBeDefined();
      expect(pidOf(b)).not.toBe(pidOf(a));
      expect(pidOf(c)).toBe(pidOf(b));
      // every program gets its own uid
      const uids = [a, b, c].map((t) => /uid (\d+)/.exec(t.aborted!)?.[1]);
      expect(new Set(uids).size).toBe(3);
    } finally {
      await pool.close();
    }
  });
});

say(skipLive, "agent and host backend");

describe.skipIf(skipLive !== null)("agent.ts protocol", () => {
  it("answers each JSON line in order, malformed ones with an aborted trace", async () => {
    const proc = spawn(process.execPath, ["--import", "tsx", join(PROJECT_ROOT, "hwtest/host/agent.ts")], { cwd: PROJECT_ROOT, stdio: ["pipe", "pipe", "pipe"] });
    const lines: string[] = [];
    const rl = createInterface({ input: proc.stdout! });
    const done = new Promise<number | null>((res) => proc.on("exit", (code) => res(code)));
    rl.on("line", (l) => lines.push(l));
    const config = liveFacts!.config;
    const prog: Program = [{ op: "open", ev: "e0", pmu: "sw" }, { op: "mmap", map: "m0", ev: "e0", pages: 2, pgoff: 0, prot: "rw", shared: true }, { op: "touch", map: "m0", page: 1, write: true }];
    proc.stdin!.write(JSON.stringify({ id: 7, program: prog, config }) + "\n");
    proc.stdin!.write(JSON.stringify({ id: 8, program: [{ op: "bogus" }], config }) + "\n");
    proc.stdin!.write("not json\n");
    proc.stdin!.write(JSON.stringify({ id: 9, program: [], config }) + "\n");
    proc.stdin!.end();
    expect(await done).toBe(0);
    const msgs = lines.map((l) => JSON.parse(l));
    expect(msgs.map((m) => m.id)).toEqual([7, 8, null, 9]);
    expect(msgs[0].trace.steps.map((s: { outcome: unknown }) => s.outcome)).toEqual([{ ok: true }, { ok: true }, { signal: "SIGBUS" }]);
    expect(msgs[1].trace.aborted).toMatch(/bad program/);
    expect(msgs[2].trace.aborted).toMatch(/agent error/);
    expect(msgs[3].trace.aborted).toBeUndefined();
  }, 30_000);
});

function hasSetpriv(): boolean {
  try { execFileSync("setpriv", ["--version"], { stdio: "ignore" }); return true; } catch { return false; }
}
const asNobody = skipRoot === null && hasSetpriv();
say(asNobody ? null : "needs root and setpriv", "agent as a non-root user");

describe.skipIf(!asNobody)("agent.ts as a non-root user (setpriv to nobody)", () => {
  it("runs as the current user, without the budget probe", () => {
    const config = liveFacts!.config;
    const prog: Program = [{ op: "open", ev: "e0", pmu: "sw" }, { op: "mmap", map: "m0", ev: "e0", pages: 3, pgoff: 0, prot: "rw", shared: true }, { op: "touch", map: "m0", page: 1, write: true }];
    const out = execFileSync("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--",
      "env", "HOME=/tmp", process.execPath, "--import", "tsx", join(PROJECT_ROOT, "hwtest/host/agent.ts")], {
      cwd: PROJECT_ROOT, input: JSON.stringify({ id: 1, program: prog, config }) + "\n", timeout: 30_000,
    }).toString();
    const msg = JSON.parse(out.trim().split("\n")[0]);
    expect(msg.id).toBe(1);
    expect(msg.trace.steps.map((s: { outcome: unknown }) => s.outcome)).toEqual([{ ok: true }, { ok: true }, { signal: "SIGBUS" }]);
    expect(msg.trace.audit).toEqual({ vmPinKb: 0 });
  }, 30_000);

  it("with --measure-budget: the budget after teardown in the audit, the measured start in trace.config", () => {
    const config = liveFacts!.config;
    const limit = (config.mlockKb >> 2) * config.cpus;
    const prog: Program = [{ op: "open", ev: "e0", pmu: "sw" }, { op: "mmap", map: "m0", ev: "e0", pages: 3, pgoff: 0, prot: "rw", shared: true }];
    const out = execFileSync("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--",
      "env", "HOME=/tmp", process.execPath, "--import", "tsx", join(PROJECT_ROOT, "hwtest/host/agent.ts"), "--measure-budget"], {
      cwd: PROJECT_ROOT, input: [1, 2].map((id) => JSON.stringify({ id, program: prog, config })).join("\n") + "\n", timeout: 30_000,
    }).toString();
    const msgs = out.trim().split("\n").map((l) => JSON.parse(l));
    expect(msgs.map((m) => m.trace.audit?.budgetPages)).toEqual([limit, limit]);
    expect(msgs.map((m) => m.trace.config)).toEqual([undefined, undefined]); // a fresh user starts at 0
  }, 30_000);
});

describe.skipIf(skipLive !== null)("hostBackend", () => {
  it("runs programs on 2 workers, in order, each audited", async () => {
    const b = await hostBackend({ workers: 2 });
    try {
      expect(b.info.name).toBe("host");
      expect(b.info.kernel).toBe(liveFacts!.release);
      expect(b.info.unsupported.has("sysctlMlock")).toBe(true);
      const progs: Program[] = Array.from({ length: 12 }, (_, i) => [
        { op: "open", ev: "e0", pmu: "sw" },
        { op: "mmap", map: "m0", ev: "e0", pages: 1 + 2 ** (i % 4), pgoff: 0, prot: "rw", shared: true },
        { op: "readUserPage", map: "m0" },
      ]);
      const traces = await b.run(progs);
      expect(traces).toHaveLength(12);
      traces.forEach((t, i) => {
        expect(t.aborted).toBeUndefined();
        expect(t.steps[2].outcome).toMatchObject({ ok: true, page: { dataSize: 4096 * 2 ** (i % 4) } });
        expect(t.audit?.vmPinKb).toBe(0);
        if (skipRoot === null) expect(t.audit?.budgetPages).toBe((liveFacts!.config.mlockKb >> 2) * liveFacts!.config.cpus);
      });
      const many = await hostBackend({ workers: 64 });
      expect(many.info.notes.join("\n")).toMatch(skipRoot === null ? /--workers 64 capped at \d+ \(2 per CPU\)/ : /one worker only/);
      await many.close();
      const bad = await b.run([normal], { ...b.info.config, cpus: 99 });
      expect(bad[0].aborted).toMatch(/cpus 99/);
    } finally {
      await b.close();
      await b.close();
    }
  }, 30_000);
});
