/**
 * VM rows of `npm run bench`: cold and warm provisioning, boot to a ready guest and programs per
 * second inside a guest, for both guest agents side by side on the same kernel and the same
 * programs: the C agent (runtime/agent.c, the default) and the Node shim + TypeScript agent;
 * then two guests of the same kernel against one (C agent).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import type { Backend } from "../backend/contract.ts";
import type { Program } from "../spec/program.ts";
import { provisionKernel, vmBackend } from "../hwtest/vm/backend.ts";
import { qemuBinary } from "../hwtest/vm/qemu.ts";
import { decode, genesAt } from "../fuzz/generate.ts";

export interface Row { what: string; value: number; unit: string; target?: string; note?: string }

type Agent = "c" | "ts";
const AGENT_NAME: Record<Agent, string> = { c: "C agent", ts: "Node agent" };

interface AgentRun { boot: number; backendUp: number; rate: number; note: string }

/** Programs/s of `programs` on `b` (after a warm-up that pays any agent start-up). */
async function rate(b: Backend, programs: readonly Program[], warm: readonly Program[]): Promise<{ rate: number; note: string }> {
  await b.run(warm);
  const t = performance.now();
  const traces = await b.run(programs);
  const s = (performance.now() - t) / 1000;
  const ops = programs.reduce((n, p) => n + p.length, 0);
  return { rate: programs.length / s, note: `${programs.length} programs, ${(ops / programs.length).toFixed(1)} ops avg, ${traces.filter((x) => x.aborted).length} aborted` };
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
  await provisionKernel(kernel);
  rows.push({ what: `vm:${kernel} warm provisioning (cache hit)`, value: (performance.now() - t) / 1000, unit: "s" });

  // The same programs for both agents: 20 ops each (the issue's unit), generated for the guest.
  const n = quick ? 200 : 400;
  const runs = {} as Record<Agent, AgentRun>;
  let release = "";
  for (const agent of ["c", "ts"] as const) {
    const t0 = performance.now();
    const b = await vmBackend(kernel, { agent });
    const backendUp = (performance.now() - t0) / 1000;
    const boot = Number(/boot took ([\d.]+) s/.exec(b.info.notes.join("\n"))?.[1] ?? NaN);
    release = b.info.kernel ?? "";
    try {
      const gen = { config: b.info.config, minOps: 20, maxOps: 20, unsupported: b.info.unsupported };
      const programs = Array.from({ length: n }, (_, i) => decode(genesAt(3, i, gen), gen));
      const r = await rate(b, programs, programs.slice(0, 8));
      runs[agent] = { boot, backendUp, ...r };
    } finally {
      await b.close();
    }
  }
  for (const agent of ["c", "ts"] as const) {
    const r = runs[agent];
    rows.push({ what: `vm:${kernel} boot to a ready guest, ${AGENT_NAME[agent]} (QEMU start to hello)`, value: r.boot, unit: "s", target: agent === "c" ? "<= 4" : undefined, note: `backend up in ${r.backendUp.toFixed(1)} s; ${release}` });
  }
  for (const agent of ["c", "ts"] as const) {
    const r = runs[agent];
    rows.push({ what: `vm:${kernel} programs inside the guest (TCG), ${AGENT_NAME[agent]}`, value: r.rate, unit: "programs/s", target: agent === "c" ? ">= 300" : undefined, note: r.note });
  }
  // Two guests of the same kernel (C agent), the same programs spread over them.
  {
    const b = await vmBackend(kernel, { workers: 2 });
    try {
      const gen = { config: b.info.config, minOps: 20, maxOps: 20, unsupported: b.info.unsupported };
      const programs = Array.from({ length: n }, (_, i) => decode(genesAt(3, i, gen), gen));
      const r = await rate(b, programs, programs.slice(0, 16));
      const guests = /^(\d+) guests/m.exec(b.info.notes.join("\n"))?.[1] ?? "1";
      rows.push({ what: `vm:${kernel} programs inside ${guests} guests (TCG), C agent`, value: r.rate, unit: "programs/s", note: `${r.note}${b.info.notes.find((x) => x.startsWith("--workers")) ? `; ${b.info.notes.find((x) => x.startsWith("--workers"))}` : ""}` });
      rows.push({ what: `vm:${kernel} ${guests} guests / 1 guest, programs/s (C agent)`, value: r.rate / runs.c.rate, unit: "x", target: ">= 1.8 on 2 cores", note: `${availableParallelism()} host cores, shared` });
    } finally {
      await b.close();
    }
  }
  rows.push({ what: `vm:${kernel} C agent / Node agent, programs/s`, value: runs.c.rate / runs.ts.rate, unit: "x", target: ">= 10", note: "same kernel, same programs, one run" });
  rows.push({ what: `vm:${kernel} Node agent / C agent, boot to a ready guest`, value: runs.ts.boot / runs.c.boot, unit: "x" });
  return rows;
}
