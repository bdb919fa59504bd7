/**
 * The VM backend's repetitions without QEMU (issue 14): GuestRunner.runRepeated sends a par
 * program's request with the C agent's `repeat` (and `jitterUs`) and a limit scaled by the
 * repetitions, other programs' requests as run() sends them; every repetition's trace comes
 * back; a repetition that left the kernel not fresh is the last kept and the programs after it
 * get a fresh guest; ParallelRunner spreads repeated runs over guests in order; vmWorkers counts
 * a guest's CPUs; and the CLI's race options (--guest-cpus, --repeat defaults).
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { GuestRunner, guestTimeoutMs, requestTimeoutMs, type GuestLike } from "../../hwtest/vm/backend.ts";
import { ParallelRunner, vmWorkers, type RunnerLike } from "../../hwtest/vm/parallel.ts";
import { GuestError } from "../../hwtest/vm/qemu.ts";
import { DEFAULT_RACE_GUEST_CPUS, DEFAULT_RACE_REPEAT, casesCpus, raceOptions } from "../../cli/main.ts";
import type { Config, Program } from "../../spec/program.ts";
import type { Trace } from "../../spec/trace.ts";

const CFG: Config = { pageSize: 4096, cpus: 2, mlockKb: 516, memlockPages: 2048, capIpcLock: false, paranoid: 2, pmus: { aux: "auxspec_pmu" } };
const PAR: Program = [{ op: "thread", proc: "p1", from: "p0" }, { op: "par", ops: 2 }, { op: "open", ev: "e0", pmu: "sw" }, { op: "open", ev: "e1", pmu: "sw", proc: "p1" }];
const PLAIN: Program = [{ op: "open", ev: "e0", pmu: "sw" }];
/** A par program whose 3rd repetition leaks an AUX buffer in the fake guest (live count 1 from then on). */
const LEAKY: Program = [...PAR, { op: "rlimit", memlockPages: 997 }];
/** A par program the fake guest answers with a `traces` list that is not traces. */
const BAD: Program = [...PAR, { op: "rlimit", memlockPages: 996 }];

interface Req { program: Program; timeoutMs: number; repeat?: number; jitterUs?: number }

/** Answers as the C agent in a guest does: `trace` (the first) and, with `repeat`, `traces`. */
class RepeatingGuest implements GuestLike {
  alive = true;
  requests: Req[] = [];
  watched: number[] = [];
  private liveAux = 0;
  private id = 1;
  async send<T>(msg: Record<string, unknown>): Promise<T & { id: number }> {
    if (!this.alive) throw new GuestError("dead", "console");
    const req = msg as unknown as Req;
    this.requests.push(req);
    await new Promise((r) => setImmediate(r));
    const last = req.program.at(-1)!;
    const one = (j: number): Trace => {
      if (last.op === "rlimit" && last.memlockPages === 997 && j === 2) this.liveAux = 1; // the third repetition leaks
      return { backend: "vm", kernel: "k", steps: req.program.map(() => ({ outcome: { ok: true }, vmPinKb: 0 })), audit: { vmPinKb: 0, liveAux: this.liveAux } };
    };
    const n = req.repeat ?? 1;
    const traces = Array.from({ length: n }, (_, j) => one(j));
    const answer: Record<string, unknown> = { id: this.id++, trace: traces[0] };
    if (req.repeat !== undefined) answer.traces = last.op === "rlimit" && last.memlockPages === 996 ? [{ steps: "nonsense" }] : traces;
    return answer as T & { id: number };
  }
  watch(ms: number): void { this.watched.push(ms); }
  consoleTail(): string { return "console"; }
  async close(): Promise<void> { this.alive = false; }
}

function setup() {
  const guests = [new RepeatingGuest()];
  const logs: string[] = [];
  const runner = new GuestRunner({
    name: "vm:test", kernel: "k", first: guests[0], log: (m) => logs.push(m),
    programMs: (p) => 1000 + p.length, hostExtraMs: 7,
    boot: async () => {
      const g = new RepeatingGuest();
      guests.push(g);
      return g;
    },
  });
  return { runner, guests, logs };
}

describe("requestTimeoutMs", () => {
  it("gives a repeated request its program's limit once per repetition", () => {
    expect(requestTimeoutMs(PAR)).toBe(guestTimeoutMs(PAR));
    expect(requestTimeoutMs(PAR, 20)).toBe(20 * guestTimeoutMs(PAR));
    expect(requestTimeoutMs(PAR, 20)).toBe(20 * (30_000 + 500 * PAR.length));
    expect(requestTimeoutMs(PAR, 0)).toBe(guestTimeoutMs(PAR)); // at least one repetition
    expect(requestTimeoutMs(PAR, 3, () => 10)).toBe(30);
  });
});

describe("GuestRunner.runRepeated", () => {
  it("sends repeat, jitterUs and a scaled limit for par programs only, and returns every repetition", async () => {
    const { runner, guests } = setup();
    const reps = await runner.runRepeated([PAR, PLAIN, PAR], CFG, 5, 30);
    expect(reps.map((ts) => ts.length)).toEqual([5, 1, 5]);
    for (const ts of reps) for (const t of ts) expect(t.backend).toBe("vm:test");
    const [a, b] = guests[0].requests;
    expect(a).toMatchObject({ repeat: 5, jitterUs: 30, timeoutMs: 5 * (1000 + PAR.length) });
    expect(b.timeoutMs).toBe(1000 + PLAIN.length);
    expect("repeat" in b || "jitterUs" in b).toBe(false); // as run() sends it
    // the host's watchdog: the request's limit plus the grace
    expect(guests[0].watched).toEqual([5 * (1000 + PAR.length) + 7, 1000 + PLAIN.length + 7, 5 * (1000 + PAR.length) + 7]);
    expect(runner.repeatedPrograms).toBe(2);
    expect(runner.repetitions).toBe(10);
    await runner.close();
  });

  it("run() and runRepeated(.., 1) send no repeat field and answer one trace per program", async () => {
    const { runner, guests } = setup();
    const ts = await runner.run([PAR, PLAIN], CFG);
    expect(ts).toHaveLength(2);
    expect((await runner.runRepeated([PAR], CFG, 1))[0]).toHaveLength(1);
    for (const r of guests[0].requests) expect(r.repeat).toBeUndefined();
    expect(guests[0].requests[0].timeoutMs).toBe(1000 + PAR.length);
    await runner.close();
  });

  it("keeps the repetitions up to the first that leaked, drops the rest, and runs the next programs on a fresh guest", async () => {
    const { runner, guests, logs } = setup();
    const reps = await runner.runRepeated([LEAKY, PLAIN], CFG, 6);
    expect(reps[0]).toHaveLength(3);
    expect(reps[0].map((t) => t.audit!.liveAux)).toEqual([0, 0, 1]);
    expect(reps[1]).toHaveLength(1);
    expect(reps[1][0].audit!.liveAux).toBe(0); // not on the leaking guest
    expect(guests).toHaveLength(2);
    expect(guests[0].alive).toBe(false);
    expect(logs.join("\n")).toMatch(/repetition 3 of 6 of a program left 1 AUX buffer live .*the 3 repetitions after it are dropped/);
    await runner.close();
  });

  it("a `traces` list that is not traces aborts that program (a harness failure) and the guest is replaced", async () => {
    const { runner, guests } = setup();
    const reps = await runner.runRepeated([BAD, PAR], CFG, 4);
    expect(reps[0]).toHaveLength(1);
    expect(reps[0][0].aborted).toMatch(/^harness: guest k sent a malformed list of traces/);
    expect(reps[1]).toHaveLength(4);
    expect(guests).toHaveLength(2);
    await runner.close();
  });
});

describe("ParallelRunner.runRepeated", () => {
  const fake = (name: string, ms: number): RunnerLike => ({
    async run(ps) { return ps.map(() => ({ backend: name, kernel: null, steps: [], audit: null })); },
    async runRepeated(ps, _cfg, repeat) {
      await new Promise((r) => setTimeout(r, ms * ps.length));
      return ps.map((p) => Array.from({ length: p.some((o) => o.op === "par") ? repeat : 1 }, () =>
        ({ backend: name, kernel: null, steps: [], audit: { vmPinKb: (p[0] as { memlockPages: number }).memlockPages } }) as Trace));
    },
    async close() {},
  });
  it("spreads repeated runs over the guests in batches, answers in program order", async () => {
    const r = new ParallelRunner([fake("a", 1), fake("b", 2)], 3);
    const ps: Program[] = Array.from({ length: 20 }, (_, i) => (i % 2 ? [{ op: "rlimit", memlockPages: i }, { op: "par", ops: 0 }] : [{ op: "rlimit", memlockPages: i }]) as Program);
    const reps = await r.runRepeated(ps, CFG, 4);
    expect(reps.map((ts) => ts.length)).toEqual(ps.map((_, i) => (i % 2 ? 4 : 1)));
    expect(reps.map((ts) => ts[0].audit!.vmPinKb)).toEqual(ps.map((_, i) => i));
    expect(new Set(reps.map((ts) => ts[0].backend))).toEqual(new Set(["a", "b"]));
  });
  it("refuses when a runner cannot repeat", async () => {
    const r = new ParallelRunner([{ run: async () => [], close: async () => {} }]);
    await expect(r.runRepeated([PAR], CFG, 2)).rejects.toThrow(/cannot repeat/);
  });
});

describe("vmWorkers with guests of several CPUs", () => {
  it("counts one host core per guest CPU, and says so", () => {
    expect(vmWorkers(2, { cores: 2, freeMb: 8000, cpus: 2 })).toMatchObject({ workers: 1, why: expect.stringMatching(/guests of 2 CPUs/) });
    expect(vmWorkers(2, { cores: 4, freeMb: 8000, cpus: 2 })).toEqual({ workers: 2, why: null });
    expect(vmWorkers(3, { cores: 8, freeMb: 8000, cpus: 3 })).toMatchObject({ workers: 2 });
    expect(vmWorkers(1, { cores: 1, freeMb: 8000, cpus: 2 })).toEqual({ workers: 1, why: null }); // always one
  });
});

describe("CLI race options", () => {
  const base = { "no-races": false };
  it("vm backends default to 2-CPU guests and 20 repetitions with races on; 1 and 1 with --no-races", () => {
    const o = raceOptions("vm:6.1", base);
    expect(o.guestCpus).toBe(DEFAULT_RACE_GUEST_CPUS);
    expect(DEFAULT_RACE_GUEST_CPUS).toBe(2);
    expect(o.repeat({ name: "vm:6.1" }, true)).toBe(DEFAULT_RACE_REPEAT);
    expect(o.repeat({ name: "vm:6.1" }, false)).toBe(1); // the TypeScript agent: no runRepeated
    const off = raceOptions("vm:6.1", { "no-races": true });
    expect(off.guestCpus).toBe(1);
    expect(off.repeat({ name: "vm:6.1" }, true)).toBe(1);
  });
  it("--guest-cpus and --repeat win; --guest-cpus is refused for other backends", () => {
    const o = raceOptions("vm:6.12", { ...base, "guest-cpus": 4, repeat: 7 });
    expect(o.guestCpus).toBe(4);
    expect(o.repeat({ name: "vm:6.12" }, true)).toBe(7);
    expect(raceOptions("host", base).guestCpus).toBeUndefined();
    expect(raceOptions("host", base).repeat({ name: "host" }, true)).toBe(DEFAULT_RACE_REPEAT);
    expect(raceOptions("model", base).repeat({ name: "model" }, false)).toBe(1);
    expect(() => raceOptions("host", { ...base, "guest-cpus": 2 })).toThrow(/--guest-cpus applies to vm:KERNEL backends only/);
    expect(() => raceOptions(undefined, { ...base, "guest-cpus": 2 })).toThrow(/--guest-cpus/);
  });
  it("replay boots a guest with the CPU count most cases were made for", () => {
    expect(casesCpus([])).toBe(1);
    expect(casesCpus([2, 2, 1])).toBe(2);
    expect(casesCpus([1, 1, 2])).toBe(1);
    expect(casesCpus([1, 2])).toBe(2); // a tie: the larger
  });
  it("the command line: --help lists --guest-cpus; bad values exit 2 naming the option", () => {
    const ROOT = join(import.meta.dirname, "../..");
    const cli = (...args: string[]) => spawnSync(process.execPath, ["--import", "tsx", join(ROOT, "cli/main.ts"), ...args], { cwd: ROOT, encoding: "utf8", timeout: 60_000 });
    const h = cli("fuzz", "--help");
    expect(h.status).toBe(0);
    expect(h.stdout).toMatch(/--guest-cpus N CPUs of each vm guest/);
    expect(h.stdout).toMatch(/default 20 on the host\s+and on vm guests/);
    const zero = cli("fuzz", "--backend", "vm:6.1", "--guest-cpus", "0");
    expect(zero.status).toBe(2);
    expect(zero.stderr).toMatch(/--guest-cpus must be at least 1/);
    const many = cli("fuzz", "--backend", "vm:6.1", "--guest-cpus", "9");
    expect(many.status).toBe(2);
    expect(many.stderr).toMatch(/--guest-cpus must be at most 8/);
    const host = cli("fuzz", "--backend", "model", "--guest-cpus", "2", "--runs", "1");
    expect(host.status).toBe(2);
    expect(host.stderr).toMatch(/--guest-cpus applies to vm:KERNEL backends only/);
    expect(cli("replay", "--help").stdout).toMatch(/--guest-cpus N CPUs of the vm guest/);
    const rep = cli("replay", "cases", "--backend", "model", "--guest-cpus", "2");
    expect(rep.status).toBe(2);
    expect(rep.stderr).toMatch(/--guest-cpus applies to vm:KERNEL backends only/);
    const m = spawnSync(process.execPath, ["--import", "tsx", join(ROOT, "cli/matrix.ts"), "--help"], { cwd: ROOT, encoding: "utf8", timeout: 60_000 });
    expect(m.stdout).toMatch(/--guest-cpus N/);
    const mb = spawnSync(process.execPath, ["--import", "tsx", join(ROOT, "cli/matrix.ts"), "--guest-cpus", "0"], { cwd: ROOT, encoding: "utf8", timeout: 60_000 });
    expect(mb.status).toBe(2);
    expect(mb.stderr).toMatch(/--guest-cpus must be an integer >= 1/);
  }, 120_000);
});
