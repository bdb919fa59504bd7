/**
 * The host executor as a process: `tsx hwtest/host/agent.ts [--allow-sysctl] [--touch=inproc] [--no-budget]`.
 *
 * Protocol (JSON lines): reads `{"id":N,"program":[...],"config":{...}}` on stdin (an optional
 * `"uid":U` picks the uid the program runs as; otherwise the agent takes fresh ones), writes
 * `{"id":N,"trace":{...}}` on stdout, one line per request, in order, each flushed before the
 * next request is read. stderr carries logs. Malformed requests get a trace with `aborted`.
 *
 * The agent runs programs in its own process (runProgramHere). mm->pinned_vm is per process,
 * so when a program leaves VmPin != 0 (a kernel leak, or a refund that went to this mm) or the
 * process could not be put back to its clean state, the agent writes that program's trace and
 * then exits with status 3: the caller starts a fresh agent for the next programs (the host
 * backend's pool does this; so must the VM helper). When perf is unusable here the reason goes
 * to stderr and into the `aborted` of every trace, and the exit status at end of input is 2.
 *
 * It needs only Node, the project tree (read-only is fine) and the built native helper
 * (hwtest/host/native/build.ts builds it into <project>/.cache/native on the host, or into a
 * writable cache dir here when gcc is available).
 */
import { writeSync } from "node:fs";
import { resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { Config, Program, programProblems } from "../../spec/program.ts";
import type { Trace } from "../../spec/trace.ts";
import { discoverHost } from "./discover.ts";
import { processIsClean, runProgramHere, type RunOptions } from "./executor.ts";

export const EXIT_DIRTY = 3;
export const EXIT_NO_PERF = 2;

function log(msg: string): void {
  writeSync(2, `agent[${process.pid}]: ${msg}\n`);
}

function main(): void {
  const args = process.argv.slice(2);
  const opts: RunOptions = {
    allowSysctl: args.includes("--allow-sysctl"),
    touchMode: args.includes("--touch=inproc") ? "inproc" : "child",
    noBudget: args.includes("--no-budget"),
  };
  const facts = discoverHost();
  if (!facts.perfOk) log(`perf is not usable: ${facts.perfError}`);
  const rl = createInterface({ input: process.stdin, crlfDelay: Infinity, terminal: false });
  let dead = false;
  rl.on("line", (line) => {
    if (dead || !line.trim()) return;
    let id: unknown = null;
    let trace: Trace;
    const abort = (why: string): Trace => ({ backend: "host", kernel: facts.release, steps: [], audit: null, aborted: why });
    let req: { id?: unknown; program?: unknown; config?: unknown; uid?: unknown } | null = null;
    try {
      req = JSON.parse(line);
    } catch (e) {
      req = null;
      trace = abort(`agent error: request is not JSON (${(e as Error).message})`);
    }
    if (req !== null) {
      id = typeof req === "object" ? req.id ?? null : null;
      // Zod at the edge: requests come from another process (or a serial line).
      const program = Program.safeParse(req?.program);
      const config = Config.safeParse(req?.config);
      if (!facts.perfOk) {
        trace = abort(`perf unusable: ${facts.perfError}`);
      } else if (!program.success) {
        trace = abort(`bad program: ${program.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
      } else if (programProblems(program.data).length) {
        trace = abort(`bad program: ${programProblems(program.data).map((p) => `op ${p.index}: ${p.message}`).join("; ")}`);
      } else if (!config.success) {
        trace = abort(`bad config: ${config.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
      } else {
        const uid = typeof req.uid === "number" && Number.isInteger(req.uid) && req.uid > 0 ? req.uid : undefined;
        try {
          trace = runProgramHere(program.data, config.data, facts, { ...opts, uid });
        } catch (e) {
          // An unexpected failure inside the executor: this process may be in any state.
          trace = abort(`agent error: ${(e as Error).message}`);
          dead = true;
        }
      }
    }
    writeSync(1, JSON.stringify({ id, trace: trace! }) + "\n");
    if (!facts.perfOk) { process.exitCode = EXIT_NO_PERF; return; }
    let clean = false;
    try { clean = !dead && processIsClean(); } catch { clean = false; }
    if (!clean) {
      log("process is no longer clean (VmPin != 0 or identity not restored): exiting for a fresh agent");
      dead = true;
      rl.close();
      process.exit(EXIT_DIRTY);
    }
  });
  rl.on("close", () => { /* stdin closed: exit when the loop drains */ });
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();
