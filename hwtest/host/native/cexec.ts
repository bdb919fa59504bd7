/**
 * The C executor (exec.c) from TypeScript: serialise a batch of programs, run them in one
 * process, parse the traces back. For the benchmark (`runCBatch` reports the batch time
 * measured inside exec, parsing excluded) and for cross-checking the koffi executor (both
 * must give the same traces). sysctlMlock and auxFault are not supported here.
 */
import { execFileSync } from "node:child_process";
import type { Config, Op, Program, Outcome } from "../../../spec/program.ts";
import { programHandles, handleIndex } from "../../../spec/program.ts";
import type { Step, Trace } from "../../../spec/trace.ts";
import type { HostFacts } from "../discover.ts";
import { errnoName } from "../errno.ts";
import { cexecPath } from "./build.ts";

import { PROT } from "../libc.ts";

export interface CBatchOptions {
  /** uid for program i (root only); default: a fresh random range. 0 = stay as is. */
  uids?: number[];
  touchMode?: "child" | "inproc";
  noBudget?: boolean;
}

export function serialiseBatch(programs: readonly Program[], config: Config, uids: number[]): string {
  const lines: string[] = [`B ${programs.length}`];
  programs.forEach((p, pi) => {
    const { evs, maps, mapPages } = programHandles(p);
    const ev = new Map(evs.map((e, i) => [e, i]));
    const mem = config.memlockPages === "unlimited" ? -1 : config.memlockPages;
    lines.push(`P ${p.length} ${mem} ${config.capIpcLock ? 1 : 0} ${uids[pi] ?? 0}`);
    lines.push(`H ${evs.length} ${maps.length}${maps.map((m) => ` ${handleIndex(m)}`).join("")}`);
    const E = (h: string) => ev.get(h)!;
    const M = (h: string) => handleIndex(h);
    for (const op of p) lines.push(opLine(op, E, M, mapPages));
  });
  return lines.join("\n") + "\n";
}

function opLine(op: Op, E: (h: string) => number, M: (h: string) => number, mapPages: Map<string, number>): string {
  switch (op.op) {
    case "open": return `o ${E(op.ev)} ${op.pmu === "sw" ? 0 : 1} ${op.cpu ?? -1} ${op.inherit ? 1 : 0} ${op.outputTo !== undefined ? E(op.outputTo) : -1}`;
    case "close": return `c ${E(op.ev)}`;
    case "mmap": return `m ${M(op.map)} ${E(op.ev)} ${op.pages} ${op.pgoff} ${PROT[op.prot]} ${op.shared === false ? 0 : 1}`;
    case "munmap": return `u ${M(op.map)} ${op.offset ?? 0} ${op.pages ?? mapPages.get(op.map) ?? 0}`;
    case "mremap": return `r ${M(op.map)} ${op.offset ?? 0} ${op.oldPages} ${op.newPages} ${op.mayMove ? 1 : 0} ${op.toFresh ? 1 : 0}`;
    case "mprotect": return `p ${M(op.map)} ${op.offset ?? 0} ${op.pages ?? mapPages.get(op.map) ?? 0} ${PROT[op.prot]}`;
    case "mapFixedAnon": return `f ${M(op.map)} ${op.offset} ${op.pages}`;
    case "setAux": return `a ${M(op.map)} ${op.offsetPages} ${op.sizePages}`;
    case "setOutput": return `s ${E(op.ev)} ${op.target === null ? -2 : E(op.target)}`;
    case "rlimit": return `l ${op.memlockPages === "unlimited" ? -1 : op.memlockPages}`;
    case "touch": return `t ${M(op.map)} ${op.page} ${op.write ? 1 : 0}`;
    case "readUserPage": return `g ${M(op.map)}`;
    case "mapRangeFault": throw new Error("mapRangeFault cannot be injected on a real kernel (map_range() is core kernel code)");
    case "sysctlMlock": case "auxFault": case "fork": case "exit": case "setuid": case "sendFd": case "thread": case "par":
      throw new Error(`the C executor does not run ${op.op}`);
    default: {
      const never: never = op;
      throw new Error(`unknown op ${JSON.stringify(never)}`);
    }
  }
}

function parseStep(tok: string): Step {
  const colon = tok.lastIndexOf(":");
  const body = tok.slice(0, colon);
  const vmPinKb = Number(tok.slice(colon + 1));
  let outcome: Outcome;
  if (body === "o") outcome = { ok: true };
  else if (body[0] === "e") outcome = { errno: errnoName(Number(body.slice(1))) };
  else if (body[0] === "s") outcome = { signal: Number(body.slice(1)) === 7 ? "SIGBUS" : "SIGSEGV" };
  else if (body[0] === "p") {
    const [dataOffset, dataSize, auxHead, auxOffset, auxSize] = body.slice(1).split(",").map((x) => Math.min(Number(x), Number.MAX_SAFE_INTEGER));
    outcome = { ok: true, page: { dataOffset, dataSize, auxHead, auxOffset, auxSize } };
  } else throw new Error(`bad step ${tok}`);
  return { outcome, vmPinKb };
}

export function parseOutput(text: string, kernel: string | null): { traces: Trace[]; seconds: number } {
  const traces: Trace[] = [];
  let seconds = NaN;
  let cur: Trace | null = null;
  for (const line of text.split("\n")) {
    if (!line) continue;
    if (line[0] === "T") {
      cur = { backend: "host-c", kernel, steps: [], audit: null };
      traces.push(cur);
      for (const tok of line.slice(1).trim().split(" ")) if (tok) cur.steps.push(parseStep(tok));
    } else if (line[0] === "A" && cur) {
      const [, v, b] = line.split(" ");
      cur.audit = { vmPinKb: Number(v), ...(Number(b) >= 0 ? { budgetPages: Number(b) } : {}) };
    } else if (line[0] === "W" && cur?.audit) {
      (cur.audit.warnings ??= []).push(line.slice(2));
    } else if (line[0] === "X" && cur) {
      cur.aborted = line.slice(2);
    } else if (line[0] === "E") {
      seconds = Number(line.slice(2));
    }
  }
  return { traces, seconds };
}

/** Runs the batch in one C process; `seconds` is the run time of the batch inside it. */
export function runCBatch(programs: readonly Program[], config: Config, facts: HostFacts, opts: CBatchOptions = {}): { seconds: number; traces: Trace[] } {
  const exe = cexecPath();
  const base = 3_000_000 + Math.floor(Math.random() * 2_000_000_000);
  const uids = opts.uids ?? programs.map((_, i) => (facts.root ? base + i : 0));
  const args = ["--cpus", String(config.cpus), "--mlock-kb", String(config.mlockKb)];
  if (facts.auxPmu) args.push("--aux-type", String(facts.auxPmu.type));
  if (opts.touchMode === "inproc") args.push("--inproc");
  if (opts.noBudget) args.push("--no-budget");
  const out = execFileSync(exe, args, { input: serialiseBatch(programs, config, uids), maxBuffer: 1 << 26 }).toString();
  const r = parseOutput(out, facts.release);
  if (r.traces.length !== programs.length) throw new Error(`exec returned ${r.traces.length} traces for ${programs.length} programs`);
  return r;
}

export { cexecPath as buildCExec };
