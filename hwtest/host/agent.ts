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
import { Config, Program } from "../../spec/program.ts";
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
    try {
      const req = JSON.parse(line) as { id?: unknown; program?: unknown; config?: unknown; uid?: unknown };
      id = req.id ?? null;
      // Zod at the edge: requests come from another process (or a serial line).
      const program = Program.safeParse(req.program);
      const config = Config.safeParse(req.config);
      if (!facts.perfOk) {
        trace = { backend: "host", kernel: facts.release, steps: [], audit: null, aborted: `perf unusable: ${facts.perfError}` };
      } else if (!program.success || !config.success) {
        const why = !program.success ? `bad program: ${program.error.issues[0]?.message}` : `bad config: ${config.success ? "" : config.error.issues[0]?.message}`;
        trace = { backend: "host", kernel: facts.release, steps: [], audit: null, aborted: why };
      } else {
        const uid = typeof req.uid === "number" && Number.isInteger(req.uid) && req.uid > 0 ? req.uid : undefined;
        trace = runProgramHere(program.data, config.data, facts, { ...opts, uid });
      }
    } catch (e) {
      trace = { backend: "host", kernel: facts.release, steps: [], audit: null, aborted: `agent error: ${(e as Error).message}` };
      dead = true;
    }
    writeSync(1, JSON.stringify({ id, trace }) + "\n");
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
