/**
 * Worker processes for the host backend: each is an agent (agent.ts) running one program at a
 * time. The pool gives every program a fresh uid, restarts a worker that crashed or exited
 * dirty (status 3: VmPin != 0 after a program, mm->pinned_vm being per process), and kills a
 * worker whose program runs past its time-out (a hung kernel call): that program's trace is
 * `aborted` with what the worker was doing (/proc/PID/syscall and wchan).
 *
 * Several workers overlap each other's waits (the RCU grace period a re-map of an event after
 * its last munmap costs, notes §9).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import type { Config, Program } from "../../spec/program.ts";
import { Trace } from "../../spec/trace.ts";
import { formatZodError } from "../../spec/program.ts";
import { childEnv, underPdeathsig } from "../../backend/lifecycle.ts";
import { PROJECT_ROOT } from "./native/build.ts";

const AGENT = join(dirname(fileURLToPath(import.meta.url)), "agent.ts");
export const EXIT_DIRTY = 3;

export interface PoolOptions {
  workers: number;
  /** Per-program time-out, ms. Default: 5 s + 100 ms per op. */
  timeoutMs?: number;
  /** Requests sent to a worker ahead of its answers (pipelining hides the round trip). Default 2. */
  depth?: number;
  /** Extra agent arguments (--allow-sysctl, --touch=inproc, --no-budget). */
  agentArgs?: string[];
  /** The worker command (default: node --import tsx agent.ts ...agentArgs); for tests. */
  command?: { file: string; args: string[] };
  /** Kernel release, for traces the pool makes itself (aborted ones). */
  kernel: string | null;
  log?: (msg: string) => void;
  /** How long close() lets a worker finish its program before SIGKILL (default 2 s). */
  closeGraceMs?: number;
}

interface Task {
  program: Program;
  config: Config;
  /** Every repetition's trace (one without `repeat`). */
  resolve: (t: Trace[]) => void;
  uid: number;
  /** Repetitions (C agent only, issue 14): sent as the request's `repeat`; uid .. uid + repeat - 1 are this task's. */
  repeat?: number;
  /** Upper bound of each par task's jitter after the release, us (the agent's default: 50). */
  jitterUs?: number;
}

interface InFlight { id: number; task: Task }

interface Worker {
  proc: ChildProcess;
  /** Requests sent and not answered, oldest first; the worker runs them in this order. */
  inflight: InFlight[];
  /** Time-out of the head of `inflight` (the program running now). */
  timer: NodeJS.Timeout | null;
  stderrTail: string;
  gone: boolean;
  /** Has answered at least once (its start-up is behind it). */
  answered: boolean;
}

export class HostPool {
  private readonly queue: Task[] = [];
  private readonly workers: Worker[] = [];
  private nextId = 1;
  private uidNext = 2_000_000 + Math.floor(Math.random() * 2_000_000_000);
  private closed = false;
  /** Workers started (including restarts), for reports. */
  spawned = 0;

  constructor(private readonly opts: PoolOptions) {}

  run(program: Program, config: Config): Promise<Trace> {
    if (this.closed) return Promise.resolve(this.aborted("the host backend is closed"));
    return new Promise((resolve) => {
      this.queue.push({ program, config, resolve: (ts) => resolve(ts[0]), uid: this.uidNext++ });
      this.pump();
    });
  }

  /**
   * The program `repeat` times on one agent (the C agent's request field `repeat`: each
   * repetition from scratch under its own fresh uid, with teardown and audit). Resolves to every
   * repetition's trace in order: fewer than `repeat` when one aborted or left the worker dirty
   * (that one is the last), a single aborted trace when the whole request failed.
   */
  runRepeated(program: Program, config: Config, repeat: number, jitterUs?: number): Promise<Trace[]> {
    if (this.closed) return Promise.resolve([this.aborted("the host backend is closed")]);
    const n = Math.max(1, Math.floor(repeat));
    return new Promise((resolve) => {
      this.queue.push({ program, config, resolve, uid: this.uidNext, repeat: n, jitterUs });
      this.uidNext += n;
      this.pump();
    });
  }

  private aborted(reason: string): Trace {
    return { backend: "host", kernel: this.opts.kernel, steps: [], audit: null, aborted: reason };
  }

  private spawnWorker(): Worker {
    const cmd = this.opts.command ?? { file: process.execPath, args: ["--import", "tsx", AGENT, ...(this.opts.agentArgs ?? [])] };
    const armed = underPdeathsig(cmd.file, cmd.args); // dies with us even while it is still loading
    const proc = spawn(armed.file, armed.args, {
      cwd: PROJECT_ROOT,
      stdio: ["pipe", "pipe", "pipe"],
      // The agent arms PR_SET_PDEATHSIG (backend/lifecycle.ts): it dies with this process.
      env: childEnv({ NODE_OPTIONS: "" }),
    });
    this.spawned++;
    const w: Worker = { proc, inflight: [], timer: null, stderrTail: "", gone: false, answered: false };
    const rl = createInterface({ input: proc.stdout!, crlfDelay: Infinity });
    rl.on("line", (line) => this.onLine(w, line));
    proc.stderr!.on("data", (d: Buffer) => {
      const s = d.toString();
      w.stderrTail = (w.stderrTail + s).slice(-4000);
      this.opts.log?.(s.trimEnd());
    });
    proc.stdin!.on("error", () => { /* EPIPE when it died; handled by exit */ });
    proc.on("exit", (code, signal) => this.onExit(w, code, signal));
    proc.on("error", (err) => {
      w.stderrTail += `\nspawn error: ${err.message}`;
      this.onExit(w, null, null);
    });
    this.workers.push(w);
    return w;
  }

  private onLine(w: Worker, line: string): void {
    const head = w.inflight[0];
    if (!head) { this.opts.log?.(`worker ${w.proc.pid}: unexpected output ${line.slice(0, 200)}`); return; }
    // Zod at the edge: a reply that is not JSON, answers another request or is not a Trace is
    // a harness failure: the program it was for is aborted and the worker replaced.
    let msg: { id?: unknown; trace?: unknown; traces?: unknown };
    try {
      msg = JSON.parse(line);
    } catch {
      return this.malformed(w, `reply is not JSON: ${line.slice(0, 200)}`);
    }
    // An answer out of turn is dropped: the head's time-out decides about a worker stuck on it.
    if (msg?.id !== head.id) { this.opts.log?.(`worker ${w.proc.pid}: answer for ${JSON.stringify(msg?.id)}, expected ${head.id}`); return; }
    const trace = Trace.safeParse(msg.trace);
    if (!trace.success) return this.malformed(w, `reply is not a valid trace:\n${formatZodError(trace.error)}`);
    let traces: Trace[] = [trace.data];
    if (head.task.repeat !== undefined && msg.traces !== undefined) {
      // the repetitions: every one a Trace (an answer without them is an aborted request: `trace` alone)
      const all = Trace.array().min(1).safeParse(msg.traces);
      if (!all.success) return this.malformed(w, `reply's traces are not valid traces:\n${formatZodError(all.error)}`);
      traces = all.data;
    }
    w.inflight.shift();
    w.answered = true;
    this.armTimer(w);
    head.task.resolve(traces);
    this.pump();
  }

  /** A worker that answered nonsense: its running program is aborted, it is killed and replaced. */
  private malformed(w: Worker, why: string): void {
    if (w.gone) return;
    this.opts.log?.(`worker ${w.proc.pid}: ${why.split("\n")[0]}`);
    const head = this.retire(w, true);
    w.proc.kill("SIGKILL");
    head?.task.resolve([this.aborted(`harness: worker ${w.proc.pid} sent a malformed reply: ${why}`)]);
    this.pump();
  }

  /** (Re)starts the time-out for the program the worker runs now (the head). */
  private armTimer(w: Worker): void {
    if (w.timer) clearTimeout(w.timer);
    w.timer = null;
    const head = w.inflight[0];
    if (!head || w.gone) return;
    // The first program on a fresh worker also pays its start-up (node + tsx, ~0.5 s).
    const ms = this.timeoutFor(head.task) + (w.answered ? 0 : 20_000);
    w.timer = setTimeout(() => this.onTimeout(w), ms);
  }

  /** Removes a worker from the pool; its unstarted requests go back to the front of the queue. */
  private retire(w: Worker, keepHead: boolean): InFlight | undefined {
    w.gone = true;
    if (w.timer) clearTimeout(w.timer);
    w.timer = null;
    const i = this.workers.indexOf(w);
    if (i >= 0) this.workers.splice(i, 1);
    const head = keepHead ? w.inflight.shift() : undefined;
    this.queue.unshift(...w.inflight.map((f) => f.task));
    w.inflight = [];
    return head;
  }

  private onExit(w: Worker, code: number | null, signal: NodeJS.Signals | null): void {
    if (w.gone) return;
    // Status 3: it exited right after answering its previous program, so none of the requests
    // still in flight had started: all go back to the queue. Otherwise the head was running.
    const head = this.retire(w, code !== EXIT_DIRTY);
    if (head) {
      const how = signal ? `signal ${signal}` : `status ${code}`;
      head.task.resolve([this.aborted(`worker ${w.proc.pid} exited (${how}) during the program; stderr: ${w.stderrTail.trim().slice(-600)}`)]);
    } else if (code !== EXIT_DIRTY && code !== 0 && !this.closed) {
      this.opts.log?.(`worker ${w.proc.pid} exited (${signal ?? code}); stderr: ${w.stderrTail.trim().slice(-600)}`);
    }
    this.pump();
  }

  private onTimeout(w: Worker): void {
    if (w.gone || !w.inflight.length) return;
    const pid = w.proc.pid;
    const peek = (f: string) => { try { return readFileSync(`/proc/${pid}/${f}`, "utf8").trim(); } catch { return "?"; } };
    const where = `syscall: ${peek("syscall")}; wchan: ${peek("wchan")}`;
    const head = this.retire(w, true)!;
    w.proc.kill("SIGKILL");
    head.task.resolve([this.aborted(`timed out after ${this.timeoutFor(head.task)} ms (worker ${pid} ${where}); worker killed`)]);
    this.pump();
  }

  /** Per program; a repeated request gets it once per repetition. */
  private timeoutFor(t: Task): number {
    return (this.opts.timeoutMs ?? 5000 + 100 * t.program.length) * (t.repeat ?? 1);
  }

  private pump(): void {
    const depth = Math.max(1, this.opts.depth ?? 2);
    while (this.queue.length && !this.closed) {
      let w: Worker | undefined;
      for (const x of this.workers) if (!x.gone && x.inflight.length < depth && (!w || x.inflight.length < w.inflight.length)) w = x;
      // Prefer starting another worker over queueing behind a busy one.
      if ((!w || w.inflight.length > 0) && this.workers.length < this.opts.workers) w = this.spawnWorker();
      if (!w) return;
      const task = this.queue.shift()!;
      const id = this.nextId++;
      w.inflight.push({ id, task });
      if (w.inflight.length === 1) this.armTimer(w);
      const extra = task.repeat !== undefined ? { repeat: task.repeat, ...(task.jitterUs !== undefined ? { jitterUs: task.jitterUs } : {}) } : {};
      w.proc.stdin!.write(JSON.stringify({ id, program: task.program, config: task.config, uid: task.uid, ...extra }) + "\n");
    }
  }

  /** Starts `n` workers now (so that the first programs do not pay the start-up). */
  async warm(): Promise<void> {
    while (this.workers.length < this.opts.workers) this.spawnWorker();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.queue.splice(0)) t.resolve([this.aborted("the host backend was closed")]);
    for (const w of this.workers) {
      for (const f of w.inflight.splice(0)) f.task.resolve([this.aborted("the host backend was closed")]);
      if (w.timer) clearTimeout(w.timer);
    }
    const exits = this.workers.map((w) => new Promise<void>((res) => {
      if (w.gone) return res();
      const timer = setTimeout(() => { w.proc.kill("SIGKILL"); res(); }, this.opts.closeGraceMs ?? 2000);
      w.proc.once("exit", () => { clearTimeout(timer); res(); });
      w.proc.stdin!.end();
    }));
    await Promise.all(exits);
  }
}
