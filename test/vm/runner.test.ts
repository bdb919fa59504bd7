/**
 * The VM backend's failure handling without QEMU: a fake guest that answers, dies (panic) or
 * hangs on chosen programs. A death or hang aborts exactly the program that was running, with
 * the console; the programs after it run on a fresh boot; the host never waits past its
 * watchdog; after too many deaths the rest are given up, not hung on.
 */
import { describe, expect, it } from "vitest";
import { GuestRunner, leftBehind, type GuestLike } from "../../hwtest/vm/backend.ts";
import { GuestError } from "../../hwtest/vm/qemu.ts";
import type { Config, Program } from "../../spec/program.ts";
import type { Trace } from "../../spec/trace.ts";

const CFG: Config = { pageSize: 4096, cpus: 1, mlockKb: 516, memlockPages: 2048, capIpcLock: false, paranoid: 2, pmus: { aux: "auxspec_pmu" } };
const ok = (n: number): Program => Array.from({ length: n }, () => ({ op: "open", ev: "e0", pmu: "aux" }) as const);
/** rlimit 999 makes the fake guest panic, 998 makes it hang. */
const DIE: Program = [{ op: "rlimit", memlockPages: 999 }];
const HANG: Program = [{ op: "rlimit", memlockPages: 998 }];
/** rlimit 997 leaks an AUX buffer: the fake guest's live count stays 1 from then on, as the test PMU's does. */
const LEAK: Program = [{ op: "rlimit", memlockPages: 997 }];

class FakeGuest implements GuestLike {
  alive = true;
  closed = false;
  handled: number[] = [];
  maxInflight = 0;
  private queue: Array<{ msg: { program: Program }; resolve: (v: unknown) => void; reject: (e: Error) => void }> = [];
  private busy = false;
  private watchdog: NodeJS.Timeout | null = null;
  private nextId = 1;
  private liveAux = 0;
  constructor(readonly serial: number) {}

  send<T>(msg: Record<string, unknown>): Promise<T & { id: number }> {
    if (!this.alive) return Promise.reject(new GuestError("dead", "console"));
    return new Promise<T & { id: number }>((resolve, reject) => {
      this.queue.push({ msg: msg as { program: Program }, resolve: resolve as (v: unknown) => void, reject });
      this.maxInflight = Math.max(this.maxInflight, this.queue.length);
      setImmediate(() => this.pump());
    });
  }

  private pump(): void {
    if (this.busy || !this.alive || this.queue.length === 0) return;
    const head = this.queue[0];
    const p = head.msg.program;
    if (p[0]?.op === "rlimit" && p[0].memlockPages === 999) {
      this.die("QEMU exited with code 0 (the guest powered off, panicked or failed to boot)", "Kernel panic - not syncing: sysrq triggered crash");
      return;
    }
    if (p[0]?.op === "rlimit" && p[0].memlockPages === 998) {
      this.busy = true; // never answers: the watchdog must fire
      return;
    }
    this.queue.shift();
    this.handled.push(p.length);
    if (p[0]?.op === "rlimit" && p[0].memlockPages === 997) this.liveAux = 1;
    const trace: Trace = { backend: "vm", kernel: "k", steps: p.map(() => ({ outcome: { ok: true }, vmPinKb: 0 })), audit: { vmPinKb: 0, liveAux: this.liveAux } };
    if (this.watchdog) clearTimeout(this.watchdog);
    this.watchdog = null;
    head.resolve({ id: this.nextId++, trace });
    setImmediate(() => this.pump());
  }

  private die(why: string, console: string): void {
    this.alive = false;
    if (this.watchdog) clearTimeout(this.watchdog);
    for (const q of this.queue.splice(0)) q.reject(new GuestError(`guest k: ${why}`, `boot...\n${console}`));
  }

  watch(ms: number): void {
    if (this.watchdog) clearTimeout(this.watchdog);
    this.watchdog = setTimeout(() => this.die(`no answer from the guest within ${ms} ms (hung); QEMU killed`, "rcu: INFO: rcu_sched self-detected stall"), ms);
  }

  consoleTail(): string {
    return "console";
  }

  async close(): Promise<void> {
    this.closed = true;
    this.alive = false;
    if (this.watchdog) clearTimeout(this.watchdog);
  }
}

function setup(opts: { failBootAfter?: number; maxReboots?: number; window?: number } = {}) {
  const guests: FakeGuest[] = [new FakeGuest(0)];
  let boots = 0;
  const runner = new GuestRunner({
    name: "vm:test", kernel: "k", first: guests[0], window: opts.window ?? 3, maxReboots: opts.maxReboots ?? 3,
    programMs: () => 40, hostExtraMs: 40,
    boot: async () => {
      boots++;
      if (opts.failBootAfter !== undefined && boots > opts.failBootAfter) throw new GuestError("guest k: no hello within 1 s", "early console");
      const g = new FakeGuest(guests.length);
      guests.push(g);
      return g;
    },
  });
  return { runner, guests, boots: () => boots };
}

const stepsOf = (t: Trace) => (t.aborted ? -1 : t.steps.length);

describe("GuestRunner", () => {
  it("runs programs in order with at most `window` in flight", async () => {
    const { runner, guests } = setup({ window: 3 });
    const progs = [1, 2, 3, 4, 5, 6, 7].map(ok);
    const traces = await runner.run(progs, CFG);
    expect(traces.map(stepsOf)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(traces.every((t) => t.backend === "vm:test")).toBe(true);
    expect(guests[0].handled).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(guests[0].maxInflight).toBeLessThanOrEqual(3);
    expect(runner.reboots).toBe(0);
    await runner.close();
    expect(guests[0].closed).toBe(true);
  });

  it("aborts only the program a panicking guest was running, with its console, and reboots for the rest", async () => {
    const { runner, guests, boots } = setup();
    const traces = await runner.run([ok(1), ok(2), DIE, ok(4), ok(5)], CFG);
    expect(traces.map(stepsOf)).toEqual([1, 2, -1, 4, 5]);
    expect(traces[2].aborted).toMatch(/died while running this program: guest k: QEMU exited/);
    expect(traces[2].aborted).toMatch(/--- console ---\n[\s\S]*Kernel panic - not syncing/);
    expect(boots()).toBe(1);
    expect(guests[0].closed).toBe(true);
    expect(guests[1].handled).toEqual([4, 5]);
    await runner.close();
  });

  it("boots a fresh guest after a program that leaked an AUX buffer, so the leak never shows in the programs after it", async () => {
    const { runner, guests, boots } = setup();
    const traces = await runner.run([ok(1), LEAK, ok(3), ok(4), LEAK, ok(6)], CFG);
    expect(traces.map(stepsOf)).toEqual([1, 1, 3, 4, 1, 6]);
    expect(traces.map((t) => t.audit?.liveAux)).toEqual([0, 1, 0, 0, 1, 0]);
    expect(traces.every((t) => !t.aborted)).toBe(true);
    expect(boots()).toBe(2); // not deaths: no reboot limit applies
    expect(guests[0].closed && guests[1].closed).toBe(true);
    expect(guests[1].handled).toEqual([3, 4, 1]);
    expect(guests[2].handled).toEqual([6]);
    await runner.close();
  });
  it("names what a program left behind: a live AUX buffer, a BUG or Oops", () => {
    const t = (audit: Trace["audit"]): Trace => ({ backend: "vm", kernel: "k", steps: [], audit });
    expect(leftBehind(t({ vmPinKb: 0, liveAux: 0 }))).toBeNull();
    expect(leftBehind(t(null))).toBeNull();
    expect(leftBehind(t({ vmPinKb: 0, liveAux: 2 }))).toMatch(/left 2 AUX buffers live/);
    expect(leftBehind(t({ vmPinKb: 0, warnings: ["WARNING: CPU: 0 PID: 9 at kernel/events/core.c:6000 perf_mmap+0x1"] }))).toBeNull();
    expect(leftBehind(t({ vmPinKb: 0, warnings: ["BUG: unable to handle page fault for address: 0"] }))).toMatch(/BUG: unable/);
  });
  it("kills a hung guest through the watchdog instead of waiting", async () => {
    const { runner, guests } = setup();
    const t0 = performance.now();
    const traces = await runner.run([ok(1), HANG, ok(3)], CFG);
    expect(performance.now() - t0).toBeLessThan(5_000);
    expect(traces.map(stepsOf)).toEqual([1, -1, 3]);
    expect(traces[1].aborted).toMatch(/no answer from the guest within 80 ms \(hung\)/);
    expect(guests).toHaveLength(2);
    await runner.close();
  });

  it("gives up after too many deaths, and when the guest does not boot again", async () => {
    const a = setup({ maxReboots: 1 });
    const t1 = await a.runner.run([DIE, DIE, DIE, ok(4)], CFG);
    expect(t1.map(stepsOf)).toEqual([-1, -1, -1, -1]);
    expect(t1[2].aborted).toMatch(/^not run: the guest died 2 times in this run/);
    expect(t1[3].aborted).toMatch(/^not run/);
    await a.runner.close();

    const b = setup({ failBootAfter: 0 });
    const t2 = await b.runner.run([DIE, ok(2), ok(3)], CFG);
    expect(t2[0].aborted).toMatch(/died while running/);
    expect(t2[1].aborted).toMatch(/^not run: the guest did not boot again: guest k: no hello within 1 s\nearly console/);
    expect(t2[2].aborted).toBe(t2[1].aborted);
    await b.runner.close();
  });

  it("queues run() calls behind each other and refuses work after close", async () => {
    const { runner, guests } = setup();
    const [x, y] = await Promise.all([runner.run([ok(1), ok(2)], CFG), runner.run([ok(3)], CFG)]);
    expect(x.map(stepsOf)).toEqual([1, 2]);
    expect(y.map(stepsOf)).toEqual([3]);
    expect(guests[0].handled).toEqual([1, 2, 3]);
    await runner.close();
    await runner.close();
    await expect(runner.run([ok(1)], CFG)).rejects.toThrow(/closed/);
  });
});
