/**
 * The C agent (runtime/agent.c) against the TypeScript agent (hwtest/host/agent.ts): the same
 * programs give the same traces (outcomes, VmPin, audit), on the host (the C agent driven
 * through its stdin/stdout as the host pool drives agent.ts) and in a 6.12 guest with the test
 * PMU (one boot per agent). Also: the C agent's protocol edges (bad JSON, bad programs, config
 * mismatches) and, in the guest, that a kernel warning is attributed to the request that caused
 * it (the test PMU's selftest WARN), never to the next program, and that a panic is reported;
 * and that two guests of the kernel (vmBackend workers 2) give the one guest's traces.
 */
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { describe, expect, it } from "vitest";
import type { Config, Program } from "../../spec/program.ts";
import type { Trace } from "../../spec/trace.ts";
import { runProgramHere } from "../../hwtest/host/executor.ts";
import { HostPool } from "../../hwtest/host/pool.ts";
import { MULTI_PROCESS_OPS } from "../../hwtest/host/backend.ts";
import { cagentPath } from "../../hwtest/host/native/build.ts";
import { decode, genesAt } from "../../fuzz/generate.ts";
import { liveFacts, say, skipRoot } from "../hwtest/live.ts";
import { AUX_PROGRAMS } from "../../hwtest/vm/programs.ts";
import { provisionKernel } from "../../hwtest/vm/provision.ts";
import { GuestError, GuestVM, busyboxBinary, qemuBinary } from "../../hwtest/vm/qemu.ts";
import { guestConfig, vmBackend } from "../../hwtest/vm/backend.ts";

say(skipRoot, "C agent vs TypeScript agent on the host");

/** Runs requests through one C agent process (stdin/stdout), in order. */
async function cAgent(requests: Array<object | string>, args: string[] = []): Promise<Array<{ id: unknown; trace: Trace }>> {
  const proc = spawn(cagentPath(), args, { stdio: ["pipe", "pipe", "inherit"] });
  const out: Array<{ id: unknown; trace: Trace }> = [];
  const rl = createInterface({ input: proc.stdout });
  rl.on("line", (l) => out.push(JSON.parse(l)));
  for (const r of requests) proc.stdin.write((typeof r === "string" ? r : JSON.stringify(r)) + "\n");
  proc.stdin.end();
  await new Promise((res) => proc.on("close", res));
  return out;
}

/** Generated programs; the differential leaves out the multi-process ops (MULTI_PROCESS_OPS): the
 *  TypeScript agent runs one process (test/hwtest/processes.test.ts checks the C agent's). */
function programs(config: Config, n: number, seed: number, unsupported: Set<string>): Program[] {
  const gen = { config, maxOps: 20, unsupported };
  return Array.from({ length: n }, (_, i) => decode(genesAt(seed, i, gen), gen));
}

/** What must agree: steps and audit (backend, kernel and aborted reasons may word things differently). */
function same(c: Trace, t: Trace, what: string): void {
  expect(c.aborted !== undefined, `${what}: aborted (C: ${c.aborted}; TS: ${t.aborted})`).toBe(t.aborted !== undefined);
  expect(c.steps, `${what}: steps`).toEqual(t.steps);
  expect(c.audit, `${what}: audit`).toEqual(t.audit);
}

describe.skipIf(skipRoot !== null)("C agent on the host", () => {
  it("answers protocol edges as agent.ts does", async () => {
    const f = liveFacts!;
    const [notJson, badOp, useBefore, mismatch, ok] = await cAgent([
      "not json",
      { id: 2, program: [{ op: "frobnicate" }], config: f.config },
      { id: 3, program: [{ op: "close", ev: "e0" }], config: f.config },
      { id: 4, program: [], config: { ...f.config, cpus: f.config.cpus + 1 } },
      { id: 5, program: [{ op: "open", ev: "e0", pmu: "sw" }], config: f.config, uid: 4_000_123 },
    ]);
    expect(notJson.id).toBeNull();
    expect(notJson.trace.aborted).toMatch(/^agent error: request is not JSON/);
    expect(badOp).toMatchObject({ id: 2, trace: { steps: [], audit: null } });
    expect(badOp.trace.aborted).toMatch(/^bad program/);
    expect(useBefore.trace.aborted).toBe("bad program: op 0: event handle e0 is used before an open introduces it");
    expect(mismatch.trace.aborted).toBe(runProgramHere([], { ...f.config, cpus: f.config.cpus + 1 }, f).aborted);
    expect(ok).toMatchObject({ id: 5, trace: { backend: "host", kernel: f.release, steps: [{ outcome: { ok: true }, vmPinKb: 0 }] } });
  });

  it("gives the same traces as the TypeScript executor on 60 generated programs (child and in-process page access)", async () => {
    const f = liveFacts!;
    const config = f.config;
    const ps = [...programs(config, 60, 11, new Set(["sysctlMlock", "auxFault", "mapRangeFault", ...MULTI_PROCESS_OPS])), ...Object.values(AUX_PROGRAMS).filter((p) => !p.some((o) => o.op === "auxFault"))];
    for (const touch of ["child", "inproc"] as const) {
      // child mode's page-access task is a clone: it inherits attr.inherit events
      // (perf_event_init_task), and the context-switch optimisation may move the original into
      // it, so an inherit event's group checks may answer ENODEV once it exits: not a program's
      // doing, so those programs are compared in-process only (hwtest/host/README.md)
      const qs = touch === "child" ? ps.filter((p) => !p.some((o) => o.op === "open" && o.inherit === true)) : ps;
      const c = await cAgent(qs.map((program, id) => ({ id, program, config })), [`--touch=${touch}`]);
      expect(c.map((a) => a.id)).toEqual(qs.map((_, i) => i));
      qs.forEach((p, i) => same(c[i].trace, runProgramHere(p, config, f, { touchMode: touch }), `program ${i} (${touch}) ${JSON.stringify(p)}`));
    }
  }, 120_000);

  it("kills a worker past its timeoutMs (aborted, where it was) and runs the next request on a fresh one", async () => {
    const f = liveFacts!;
    // 300 opens (and their closes, and the budget probe) do not finish in 1 ms
    const opens = Array.from({ length: 300 }, (_, i) => ({ op: "open", ev: `e${i}`, pmu: "sw" }));
    const [late, next] = await cAgent([
      { id: 1, program: opens, config: f.config, timeoutMs: 1 },
      { id: 2, program: [{ op: "open", ev: "e0", pmu: "sw" }], config: f.config },
    ]);
    expect(late.id).toBe(1);
    expect(late.trace.aborted).toMatch(/^timed out after 1 ms in the guest \(agent \d+: .*\); agent killed$/);
    expect(next).toMatchObject({ id: 2, trace: { steps: [{ outcome: { ok: true }, vmPinKb: 0 }], audit: { vmPinKb: 0 } } });
  });

  it("works as the host pool's worker (pipelined, fresh uid per program)", async () => {
    const f = liveFacts!;
    const pool = new HostPool({ workers: 2, kernel: f.release, command: { file: cagentPath(), args: [] } });
    try {
      const ps = programs(f.config, 20, 5, new Set(["sysctlMlock", "auxFault", "mapRangeFault", ...MULTI_PROCESS_OPS]));
      const traces = await Promise.all(ps.map((p) => pool.run(p, f.config)));
      ps.forEach((p, i) => same(traces[i], runProgramHere(p, f.config, f), `program ${i}`));
    } finally {
      await pool.close();
    }
  }, 60_000);
});

const vmSkip = !qemuBinary() || !busyboxBinary() ? "QEMU or busybox is not installed" : skipRoot;
say(vmSkip, "C agent vs TypeScript agent in a 6.12 guest");

let lastC: Trace[] | null = null;

describe.skipIf(vmSkip !== null)("C agent in a 6.12 guest", () => {
  it("gives the TypeScript agent's traces, and attributes a kernel warning to the request that caused it", async () => {
    const k = await provisionKernel("6.12");
    const run = async (agent: "c" | "ts", ps: (cfg: Config) => Program[]) => {
      const vm = await GuestVM.boot({ kernel: k, agentKind: agent });
      try {
        const cfg = guestConfig(vm.hello);
        const traces: Trace[] = [];
        for (const p of ps(cfg)) traces.push((await vm.request<{ trace: Trace }>({ program: p, config: cfg, timeoutMs: 60_000 }, 120_000)).trace);
        let attribution: { warn: { selftestWarn: boolean; warnings?: string[] }; next: Trace } | null = null;
        if (agent === "c") {
          // sent together (as the host's request window does): the agent takes them in order
          const prog = [{ op: "open", ev: "e0", pmu: "aux" }];
          const [, warn, next] = await Promise.all([
            vm.request<{ trace: Trace }>({ program: prog, config: cfg }, 60_000),
            vm.request<{ selftestWarn: boolean; warnings?: string[] }>({ selftestWarn: true }, 30_000),
            vm.request<{ trace: Trace }>({ program: prog, config: cfg }, 60_000),
          ]);
          attribution = { warn, next: next.trace };
          expect((await vm.probe()).pmu?.live).toBe(0);
          // a kernel panic: the request fails at once with the console, QEMU is gone
          const err = await vm.request({ selftestPanic: true }, 60_000).then(() => null, (e: unknown) => e);
          expect(err).toBeInstanceOf(GuestError);
          expect((err as GuestError).console).toMatch(/Kernel panic - not syncing/);
          expect(vm.alive).toBe(false);
        }
        return { hello: vm.hello, boot: vm.bootSeconds, traces, attribution };
      } finally {
        await vm.close();
      }
    };
    const gen = (cfg: Config) => [...Object.values(AUX_PROGRAMS), ...programs(cfg, 40, 23, new Set(["mapRangeFault", ...MULTI_PROCESS_OPS]))];
    const c = await run("c", gen);
    lastC = c.traces;
    const t = await run("ts", gen);
    console.log(`test/vm/cagent: boot to hello: C agent ${c.boot} s, TypeScript agent ${t.boot} s`);
    expect(c.hello.agentKind).toBe("c");
    expect(c.hello.bootWarnings).toEqual([]);
    expect(guestConfig(c.hello)).toEqual(guestConfig(t.hello));
    expect(c.traces.length).toBe(t.traces.length);
    c.traces.forEach((ct, i) => same(ct, t.traces[i], `program ${i}`));
    expect(c.traces.every((x) => x.aborted === undefined)).toBe(true);
    // the WARN comes back with the selftestWarn request, the program after it is clean
    expect(c.attribution!.warn.selftestWarn).toBe(true);
    expect(c.attribution!.warn.warnings?.some((w) => /^WARNING: CPU: \d+ PID: \d+ at .*auxspec_pmu/.test(w))).toBe(true);
    expect(c.attribution!.next.aborted).toBeUndefined();
    expect(c.attribution!.next.audit?.warnings).toBeUndefined();
  }, 600_000);

  it("two guests of the kernel (vmBackend workers 2) give the one guest's traces", async () => {
    const b = await vmBackend("6.12", { workers: 2 });
    try {
      const guests = /^(\d+) guests/m.exec(b.info.notes.join("\n"))?.[1] ?? "1";
      console.log(`test/vm/cagent: workers 2 -> ${guests} guest(s)${b.info.notes.find((n) => n.startsWith("--workers")) ? ` (${b.info.notes.find((n) => n.startsWith("--workers"))})` : ""}`);
      const ps = [...Object.values(AUX_PROGRAMS), ...programs(b.info.config, 40, 23, new Set(["mapRangeFault", ...MULTI_PROCESS_OPS]))];
      const traces = await b.run(ps);
      expect(lastC, "the first test ran").not.toBeNull();
      traces.forEach((t, i) => same(t, lastC![i], `program ${i}`));
    } finally {
      await b.close();
    }
  }, 300_000);
});

describe.skipIf(vmSkip !== null)("C agent in a 6.12 guest: several processes and users with the test PMU", () => {
  it("an AUX area mapped by u1 in a child is charged to u1 and refunded to the buffer's creator u0", async () => {
    // Derived from kernel/events/core.c 6.12: perf_mmap charges a new AUX area to
    // current_user()->locked_vm (u1, in p1); perf_mmap_close, when p1's exit closes the AUX VMA,
    // subtracts rb->aux_nr_pages - rb->aux_mmap_locked from rb->mmap_user (u0, who created the
    // data buffer) and rb_free_aux frees the area. So u1 ends 4 pages short, and u0's locked_vm
    // ends at -4: perf_mmap reads it into an *unsigned long* user_locked (perf_mmap in 6.1/6.12,
    // perf_mmap_calc_limits in 6.18), which is then above user_lock_limit and clamped to it, so
    // every page of a new buffer goes to pinned_vm: with the probe's RLIMIT_MEMLOCK 0 the first
    // map is EPERM and u0's budget reads 0 (not limit + 4).
    const k = await provisionKernel("6.12");
    const vm = await GuestVM.boot({ kernel: k, agentKind: "c" });
    try {
      const cfg = guestConfig(vm.hello);
      const limit = (cfg.mlockKb >> 2) * cfg.cpus;
      const program: Program = [
        { op: "open", ev: "e0", pmu: "aux" },
        { op: "mmap", map: "m0", ev: "e0", pages: 2, pgoff: 0, prot: "rw" },
        { op: "setAux", map: "m0", offsetPages: 2, sizePages: 4 },
        { op: "fork", proc: "p1", from: "p0" },
        { op: "touch", proc: "p1", map: "m0", page: 0, write: false }, // VM_DONTCOPY
        { op: "setuid", proc: "p1", user: "u1" },
        { op: "mmap", proc: "p1", map: "m1", ev: "e0", pages: 4, pgoff: 2, prot: "rw" },
        { op: "exit", proc: "p1" },
      ];
      const t = (await vm.request<{ trace: Trace }>({ program, config: cfg, timeoutMs: 60_000 }, 120_000)).trace;
      expect(t.aborted, JSON.stringify(t)).toBeUndefined();
      expect(t.steps.map((s) => s.outcome)).toEqual([{ ok: true }, { ok: true }, { ok: true }, { ok: true }, { signal: "SIGSEGV" }, { ok: true }, { ok: true }, { ok: true }]);
      expect(t.steps.map((s) => s.vmPinKb)).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
      expect(t.audit).toMatchObject({ vmPinKb: 0, budgetPages: 0, budgets: { u1: limit - 4 }, liveAux: 0, auxSetups: 1, auxFrees: 1 });
      expect(t.audit?.warnings).toBeUndefined();
    } finally {
      await vm.close();
    }
  }, 300_000);
});
