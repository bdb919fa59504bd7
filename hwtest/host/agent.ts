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
import { processIsClean, runProgramHere, DEFAULT_BUDGET_MARGIN, type RunOptions } from "./executor.ts";
import { libc, RLIMIT_MEMLOCK } from "./libc.ts";
import { probeBudget } from "./perf.ts";
import { dieWithParent } from "../../backend/lifecycle.ts";

export const EXIT_DIRTY = 3;
export const EXIT_NO_PERF = 2;

function log(msg: string): void {
  writeSync(2, `agent[${process.pid}]: ${msg}\n`);
}

/**
 * The current user's locked-memory budget, measured as the audit does (RLIMIT_MEMLOCK = VmPin,
 * map fresh buffers until EPERM; first maps never hit the re-map leak), for agents that run
 * as a shared uid (not root: --measure-budget). Null when the probe fails.
 */
function measureBudget(config: Config, vmPinKb: number): { pages: number } | { error: string } {
  const l = libc();
  const orig = new BigUint64Array(2);
  l.getrlimit(RLIMIT_MEMLOCK, orig);
  const lim = new BigUint64Array([BigInt(vmPinKb > 0 && vmPinKb < 2 ** 63 ? Math.ceil(vmPinKb / 4) : 0) * 4096n, orig[1]]);
  if (l.setrlimit(RLIMIT_MEMLOCK, lim) !== 0) return { error: `setrlimit for the budget probe failed (errno ${l.errno()})` };
  try {
    const p = probeBudget((config.mlockKb >> 2) * config.cpus + DEFAULT_BUDGET_MARGIN);
    return p.error ? { error: p.error } : { pages: p.pages };
  } finally {
    l.setrlimit(RLIMIT_MEMLOCK, orig);
  }
}

/**
 * Runs one program as the shared (non-root) user: the budget before it gives the start value of
 * user->locked_vm (earlier programs' leaks stay charged to the user), sent back as trace.config
 * when it is not 0; the budget after teardown becomes the audit's budgetPages, as for root.
 */
function runAsSharedUser(program: Program, config: Config, facts: ReturnType<typeof discoverHost>, opts: RunOptions): Trace {
  const abort = (why: string): Trace => ({ backend: "host", kernel: facts.release, steps: [], audit: null, aborted: why });
  const limit = (config.mlockKb >> 2) * config.cpus;
  const before = measureBudget(config, 0);
  if ("error" in before) return abort(`harness: budget probe before the program: ${before.error}`);
  const trace = runProgramHere(program, config, facts, { ...opts, noBudget: true });
  if (trace.aborted || !trace.audit) return trace;
  const after = measureBudget(config, trace.audit.vmPinKb);
  if ("error" in after) return abort(`harness: budget probe after the program: ${after.error}`);
  trace.audit.budgetPages = after.pages;
  const start = Math.max(0, limit - before.pages);
  if (start !== (config.lockedVmPages ?? 0)) trace.config = { ...config, lockedVmPages: start };
  return trace;
}

function main(): void {
  dieWithParent();
  const args = process.argv.slice(2);
  const sharedUser = args.includes("--measure-budget");
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
          trace = sharedUser && !facts.root
            ? runAsSharedUser(program.data, config.data, facts, opts)
            : runProgramHere(program.data, config.data, facts, { ...opts, uid });
        } catch (e) {
          // An unexpected failure inside the executor: this process may be in any state.
          trace = abort(`agent error: ${(e as Error).message}`);
          dead = true;
        }
      }
    }
    writeSync(1, JSON.stringify({ id, trace: trace! }) + "\n");
    dieWithParent(); // a uid change clears PR_SET_PDEATHSIG: arm it again
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
