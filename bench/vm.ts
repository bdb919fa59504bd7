/**
 * VM rows of `npm run bench`: cold and warm provisioning, then both guest agents side by side on
 * the same kernel and the same single-process 20-op programs: the C agent (runtime/agent.c, the
 * default) and the Node shim + TypeScript agent; boot to a ready guest and programs per second,
 * each as wall time and per QEMU CPU-second (the guest's work, which a busy shared host does not
 * inflate); the C agent also on the generator's full mix (with processes), and where its time
 * goes (its per-phase medians);
 * then two guests of the same kernel against one (C agent, through vmBackend --workers 2);
 * then, per kernel of 5.10, 6.12 and 7.3 (newest build, with the test PMU): cold provisioning
 * without the download, boot to a ready guest and programs/s in it (C agent).
 */
import { existsSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import type { Program } from "../spec/program.ts";
import { GuestRunner, guestAgent, guestConfig, provisionKernel, vmBackend } from "../hwtest/vm/backend.ts";
import { cacheRoot } from "../hwtest/vm/provision.ts";
import { GuestVM, qemuBinary } from "../hwtest/vm/qemu.ts";
import { decode, genesAt } from "../fuzz/generate.ts";
import { MULTI_PROCESS_OPS } from "../hwtest/host/backend.ts";

export interface Row { what: string; value: number; unit: string; target?: string; note?: string }

type Agent = "c" | "ts";
const AGENT_NAME: Record<Agent, string> = { c: "C agent", ts: "Node agent" };

interface AgentRun { boot: number; bootCpu: number; rate: number; cpuRate: number; note: string; timing?: AgentTiming }

/** The C agent's answer to {"timing": true} (runtime/agent.c write_timing): medians in microseconds. */
interface AgentTiming { requests: number; medianUs: Record<string, number>; opMedianUs: Record<string, [number, number]> }

/** Where a program's time goes in the guest, as a row note: each phase's median (ms). */
function timingNote(t: AgentTiming): string {
  const ms = (us: number) => (us / 1000).toFixed(2);
  const phases = Object.entries(t.medianUs).filter(([k]) => k !== "worker").map(([k, v]) => `${k} ${ms(v)}`).join(", ");
  const ops = Object.entries(t.opMedianUs).sort((a, b) => b[1][0] * b[1][1] - a[1][0] * a[1][1]).slice(0, 8).map(([k, [n, v]]) => `${k} ${ms(v)} (x${n})`).join(", ");
  return `medians over ${t.requests} requests, ms: ${phases}; slowest op kinds by total (median each, count): ${ops}`;
}

export async function vmRows(quick: boolean): Promise<Row[]> {
  if (!qemuBinary()) return [{ what: "vm: skipped", value: 0, unit: "", note: "qemu-system-x86_64 not installed (npm run setup)" }];
  const rows: Row[] = [];
  const kernel = "6.12";
  if (!quick) {
    // Cold: an empty cache (apt-get download, extract, module build).
    const cache = mkdtempSync(join(tmpdir(), "auxspec-vmcache-"));
    const saved = process.env.AUXSPEC_VM_CACHE;
    process.env.AUXSPEC_VM_CACHE = cache;
    try {
      const t = performance.now();
      const p = await provisionKernel(kernel);
      rows.push({ what: `vm:${kernel} cold provisioning (download, extract, build)`, value: (performance.now() - t) / 1000, unit: "s", note: p.release });
    } finally {
      if (saved === undefined) delete process.env.AUXSPEC_VM_CACHE; else process.env.AUXSPEC_VM_CACHE = saved;
      rmSync(cache, { recursive: true, force: true });
    }
  }
  const t = performance.now();
  const k = await provisionKernel(kernel);
  rows.push({ what: `vm:${kernel} warm provisioning (cache hit)`, value: (performance.now() - t) / 1000, unit: "s" });

  // The same programs for both agents: 20 ops each (the issue's unit), generated for the guest.
  const n = quick ? 200 : 400;
  // Two sets of 20-op programs for the same guest config: single-process ones (the generator
  // without MULTI_PROCESS_OPS), which both agents run, for the C / Node comparison (the Node
  // agent answers a multi-process program "aborted" at once: it cannot fork, README, so a mix
  // with processes compares unequal work); and the generator's full mix (fork, thread, par,
  // setuid, sendFd too), which the C agent runs as the VM backend does.
  let programs: Program[] = [];
  let single: Program[] = [];
  const runs = {} as Record<Agent, AgentRun>;
  let mixed: AgentRun | undefined;
  const tsAgent = await guestAgent(() => {});
  for (const agent of ["c", "ts"] as const) {
    const vm = await GuestVM.boot({ kernel: k, agentKind: agent, agent: agent === "ts" ? tsAgent : undefined });
    const bootCpu = vm.cpuSeconds();
    const cfg = guestConfig(vm.hello);
    // A program that leaks kernel state is followed by a fresh guest (backend.ts leftBehind): the
    // rate counts those boots; the per-CPU-second figure is given only without one.
    const runner = new GuestRunner({ name: `vm:${kernel}`, kernel: vm.hello.release, first: vm, boot: () => GuestVM.boot({ kernel: k, agentKind: agent, agent: agent === "ts" ? tsAgent : undefined }) });
    try {
      if (!programs.length) {
        const gen = { config: cfg, minOps: 20, maxOps: 20, unsupported: new Set<string>(["mapRangeFault"]) }; // model only
        programs = Array.from({ length: n }, (_, i) => decode(genesAt(3, i, gen), gen));
        const gen1 = { ...gen, unsupported: new Set<string>([...gen.unsupported, ...MULTI_PROCESS_OPS]) };
        single = Array.from({ length: n }, (_, i) => decode(genesAt(3, i, gen1), gen1));
      }
      await runner.run(programs.slice(0, 8), cfg); // the first programs pay the agent's start-up
      // the C agent's phase timings: reset before a timed run, read after it (runtime/agent.c write_timing)
      const timing = () => (agent === "c" && vm.alive ? vm.send<{ timing?: AgentTiming }>({ timing: true }).then((a) => a.timing, () => undefined) : Promise.resolve(undefined));
      const timed = async (ps: Program[]): Promise<AgentRun> => {
        const reboots = runner.reboots;
        await timing();
        const t0 = performance.now();
        const c0 = vm.cpuSeconds();
        const traces = await runner.run(ps, cfg);
        const s = (performance.now() - t0) / 1000;
        const cpu = vm.cpuSeconds() - c0;
        const phases = await timing();
        const ops = ps.reduce((m, p) => m + p.length, 0);
        const fresh = runner.reboots - reboots;
        return {
          boot: vm.bootSeconds, bootCpu, rate: ps.length / s, cpuRate: fresh || runner.reboots ? NaN : ps.length / cpu, timing: phases,
          note: `${ps.length} programs, ${(ops / ps.length).toFixed(1)} ops avg, ${traces.filter((x) => x.aborted).length} aborted${fresh ? `, ${fresh} fresh guest(s) after leaks` : ""}`,
        };
      };
      runs[agent] = await timed(single);
      if (agent === "c") mixed = await timed(programs);
    } finally {
      await runner.close();
    }
  }
  for (const agent of ["c", "ts"] as const) {
    const r = runs[agent];
    rows.push({ what: `vm:${kernel} boot to a ready guest, ${AGENT_NAME[agent]} (QEMU start to hello)`, value: r.boot, unit: "s", target: agent === "c" ? "<= 4" : undefined, note: `QEMU CPU ${r.bootCpu.toFixed(2)} s; ${k.release}` });
  }
  for (const agent of ["c", "ts"] as const) {
    const r = runs[agent];
    rows.push({ what: `vm:${kernel} programs inside the guest (TCG), ${AGENT_NAME[agent]}, single-process`, value: r.rate, unit: "programs/s", target: agent === "c" ? ">= 300" : undefined, note: `${r.cpuRate.toFixed(1)} per QEMU CPU-second; ${r.note}` });
  }
  rows.push({ what: `vm:${kernel} C agent / Node agent, programs/s (wall)`, value: runs.c.rate / runs.ts.rate, unit: "x", target: ">= 10", note: `per QEMU CPU-second: ${(runs.c.cpuRate / runs.ts.cpuRate).toFixed(2)}x; same kernel, same single-process programs, one run` });
  rows.push({ what: `vm:${kernel} Node agent / C agent, boot to a ready guest (wall)`, value: runs.ts.boot / runs.c.boot, unit: "x", note: `QEMU CPU: ${(runs.ts.bootCpu / runs.c.bootCpu).toFixed(2)}x` });
  if (runs.c.timing) {
    const t = runs.c.timing;
    rows.push({ what: `vm:${kernel} C agent, single-process: median worker time per program`, value: (t.medianUs.worker ?? 0) / 1000, unit: "ms", note: timingNote(t) });
  }
  if (mixed) {
    rows.push({ what: `vm:${kernel} programs inside the guest (TCG), C agent, with processes`, value: mixed.rate, unit: "programs/s", note: `${mixed.cpuRate.toFixed(1)} per QEMU CPU-second; the generator's full mix; ${mixed.note}` });
    if (mixed.timing) rows.push({ what: `vm:${kernel} C agent, with processes: median worker time per program`, value: (mixed.timing.medianUs.worker ?? 0) / 1000, unit: "ms", note: timingNote(mixed.timing) });
  }

  // Two guests of the same kernel against one (C agent, vmBackend workers 2 vs 1), the same
  // programs; alternated twice and the better of each kept (the host's other load comes and goes).
  const par: Record<number, number[]> = { 1: [], 2: [] };
  let used = 2;
  let why: string | undefined;
  for (const w of [1, 2, 1, 2]) {
    const b = await vmBackend(kernel, { workers: w });
    try {
      await b.run(programs.slice(0, 16));
      const t0 = performance.now();
      await b.run(programs);
      par[w].push(programs.length / ((performance.now() - t0) / 1000));
      if (w === 2) {
        used = Number(/^(\d+) guests/m.exec(b.info.notes.join("\n"))?.[1] ?? "1");
        why = b.info.notes.find((x) => x.startsWith("--workers"));
      }
    } finally {
      await b.close();
    }
  }
  const best = (xs: number[]) => Math.max(...xs);
  rows.push({ what: `vm:${kernel} programs inside 1 guest (vmBackend), C agent`, value: best(par[1]), unit: "programs/s", note: `runs: ${par[1].map((x) => x.toFixed(1)).join(", ")}` });
  rows.push({ what: `vm:${kernel} programs inside ${used} guest(s) (vmBackend workers 2), C agent`, value: best(par[2]), unit: "programs/s", note: `runs: ${par[2].map((x) => x.toFixed(1)).join(", ")}${why ? `; ${why}` : ""}` });
  rows.push({ what: `vm:${kernel} ${used} guest(s) / 1 guest, programs/s (C agent)`, value: best(par[2]) / best(par[1]), unit: "x", target: ">= 1.8 on 2 cores", note: `best of 2 alternated runs each; ${availableParallelism()} host cores, shared with other work` });
  rows.push(...(await kernelRows(BENCH_KERNELS, quick ? 100 : 300)));
  return rows;
}

/** The kernels of the per-kernel rows: the oldest and newest LTS Debian ships and the newest. */
export const BENCH_KERNELS = ["5.10", "6.12", "7.3"];

/**
 * Per kernel: cold provisioning without the download (a fresh cache folder for the kernel,
 * which shares the real cache's apt lists and unpacked toolchains: query, extract, module
 * build; apt-get download of the kernel's .debs excluded), boot to a ready guest, and
 * programs/s inside it (C agent, 20-op programs generated for the guest's config).
 */
export async function kernelRows(kernels: readonly string[], n: number): Promise<Row[]> {
  const rows: Row[] = [];
  const real = cacheRoot();
  for (const kernel of kernels) {
    const cache = mkdtempSync(join(tmpdir(), "auxspec-vmcache-"));
    for (const shared of ["apt", "toolchains"]) if (existsSync(join(real, shared))) symlinkSync(join(real, shared), join(cache, shared));
    const saved = process.env.AUXSPEC_VM_CACHE;
    process.env.AUXSPEC_VM_CACHE = cache;
    try {
      const p = await provisionKernel(kernel);
      const s = p.seconds;
      rows.push({
        what: `vm:${kernel} cold provisioning, download excluded (empty cache folder; apt lists and toolchains reused)`, value: s.total - s.download, unit: "s",
        note: `${p.release}: query ${s.query} s, extract ${s.extract} s, toolchain ${s.toolchain} s, module build ${s.build} s; download ${s.download} s not counted; ${p.moduleKo ? "test PMU" : "no test PMU"}`,
      });
      const vm = await GuestVM.boot({ kernel: p });
      const cfg = guestConfig(vm.hello);
      const runner = new GuestRunner({ name: `vm:${kernel}`, kernel: vm.hello.release, first: vm, boot: () => GuestVM.boot({ kernel: p }) });
      try {
        rows.push({ what: `vm:${kernel} boot to a ready guest, C agent (QEMU start to hello)`, value: vm.bootSeconds, unit: "s", note: `QEMU CPU ${vm.cpuSeconds().toFixed(2)} s; test PMU ${vm.hello.auxPmu ? "loaded" : "absent"}` });
        const gen = { config: cfg, minOps: 20, maxOps: 20, unsupported: new Set<string>(["mapRangeFault"]) }; // model only
        const programs = Array.from({ length: n }, (_, i) => decode(genesAt(3, i, gen), gen));
        await runner.run(programs.slice(0, 8), cfg);
        const t0 = performance.now();
        const c0 = vm.cpuSeconds();
        const traces = await runner.run(programs, cfg);
        const sec = (performance.now() - t0) / 1000;
        const perCpu = runner.reboots ? `${runner.reboots} fresh guest(s) after programs that leaked kernel state (boots included)` : `${(programs.length / (vm.cpuSeconds() - c0)).toFixed(1)} per QEMU CPU-second`;
        rows.push({ what: `vm:${kernel} programs inside the guest (TCG), C agent`, value: programs.length / sec, unit: "programs/s", note: `${perCpu}; ${programs.length} programs of 20 ops, ${traces.filter((x) => x.aborted).length} aborted` });
      } finally {
        await runner.close();
      }
    } finally {
      if (saved === undefined) delete process.env.AUXSPEC_VM_CACHE; else process.env.AUXSPEC_VM_CACHE = saved;
      rmSync(cache, { recursive: true, force: true });
    }
  }
  return rows;
}
