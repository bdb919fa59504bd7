/**
 * The `vm:KERNEL` backend: programs run on a Debian kernel (6.1, 6.12, a named release, or the
 * user's own bzImage) under QEMU TCG, with the auxspec_pmu test module loaded, so the AUX-area
 * paths run on real kernel code on machines without PT hardware.
 *
 * One boot per backend: the guest runs the host executor's agent (hwtest/host/agent.ts, under
 * tsx from the project shared read-only over 9p) behind the guest shim (guest/shim.mjs), which
 * attaches the kernel log's WARN/BUG/Oops lines of each program to its trace
 * (audit.warnings). Programs are sent a few at a time over a virtio-serial port and run one
 * after another in the guest. A guest that hangs or dies aborts the program in flight (its
 * trace carries the console tail) and is booted again for the programs after it.
 */
import { BackendUnavailable, type Backend, type BackendInfo } from "../../backend/contract.ts";
import { formatZodError, type Config, type Program } from "../../spec/program.ts";
import { profileFor } from "../../spec/profiles.ts";
import { Trace } from "../../spec/trace.ts";
import { provisionKernel, type ProvisionedKernel } from "./provision.ts";
import { AGENT_ARGS, GuestError, GuestVM, busyboxBinary, defaultAgent, qemuBinary, type GuestHello } from "./qemu.ts";
import { PROJECT_ROOT } from "./provision.ts";
import { bundleAgent } from "./bundle.ts";
import { ParallelRunner, vmWorkers } from "./parallel.ts";

export { provisionKernel, type ProvisionedKernel } from "./provision.ts";

export interface VmBackendOptions {
  /** kernel "custom": the kernel image to boot. */
  bzImage?: string;
  /** kernel "custom": a configured build or headers tree of that kernel (for the module build). */
  headers?: string;
  log?: (msg: string) => void;
  /** The guest's agent: "c" (default; runtime/agent.c in the initramfs, no Node or 9p in the
   *  guest) or "ts" (the Node shim and the TypeScript agent over 9p). */
  agent?: "ts" | "c";
  /** Guests of this kernel to boot and spread programs over (`--workers`; default 1). Fewer
   *  when the host's cores or memory cannot run more at full speed (parallel.ts vmWorkers). */
  workers?: number;
  /** CPUs of each guest (default 1; 2 for race campaigns: par blocks on two CPUs at once). */
  cpus?: number;
  /** Repetitions `runRepeated` gives a program with a par block when not told (default 1; the
   *  CLI passes --repeat). C agent only: the TypeScript agent has no `repeat` (nor par blocks). */
  repeat?: number;
  /** Upper bound of each par task's random spin after the barrier's release, us (the C agent's
   *  request field `jitterUs`; its default is 50). */
  jitterUs?: number;
}

/** Guest-side limit per program: generous, TCG is 10 to 50 times slower than the host. */
export function guestTimeoutMs(program: Program): number {
  return 30_000 + 500 * program.length;
}
/** Guest-side limit of one request that runs a program `repeat` times (the C agent's `repeat`:
 *  its supervisor times the whole request): each repetition gets the program's own limit, as the
 *  host pool's timeoutFor does. */
export function requestTimeoutMs(program: Program, repeat = 1, programMs: (p: Program) => number = guestTimeoutMs): number {
  return programMs(program) * Math.max(1, Math.floor(repeat));
}
/** The programs `repeat` repeats (as hwtest/host/backend.ts hasPar; not imported: that module
 *  loads the host executor). */
const hasPar = (p: Program): boolean => p.some((op) => op.op === "par");
/** A program may also pay an agent's start-up (tsx compiling the executor under TCG); the shim
 *  allows the same on its side when it starts a fresh agent. */
const AGENT_START_MS = 90_000;
/** The host kills QEMU when the guest shim has not answered this long after the guest limit. */
const HOST_GRACE_MS = 30_000;
/** Requests written ahead of the one running (the shim reads them into its queue). */
const WINDOW = 8;
/** Guest deaths per run() call survived (by booting again) before the rest are given up. */
const MAX_REBOOTS = 3;

/** The Config the guest runs programs under, from the shim's hello (as discoverHost does on a host). */
export function guestConfig(h: GuestHello): Config {
  const pages = (kb: number | "unlimited" | null | undefined): number | "unlimited" => (kb === "unlimited" ? "unlimited" : Math.floor((kb ?? 0) / 4));
  return {
    pageSize: 4096,
    cpus: h.cpus,
    mlockKb: h.mlockKb ?? 516,
    memlockPages: pages(h.memlockKb),
    // As hwtest/host/discover.ts: with CAP_SYS_RESOURCE the executor raises the hard limit.
    memlockHardPages: h.capSysResource || h.memlockHardKb === undefined ? "unlimited" : pages(h.memlockHardKb),
    capIpcLock: false,
    paranoid: Math.max(-1, Math.min(4, h.paranoid ?? 2)),
    pmus: { aux: h.auxPmu },
  };
}

function consoleLines(text: string, lines = 40): string {
  return text.split("\n").filter((l) => l.trim()).slice(-lines).join("\n");
}

/** Make sure the agent's native helper exists on the host: the guest sees the project read-only. */
async function ensureNative(log: (m: string) => void): Promise<void> {
  try {
    const { ensureBuilt, AUXPROBE } = await import("../host/native/build.ts");
    ensureBuilt(AUXPROBE, log);
  } catch (e) {
    log(`could not build the agent's native helper on the host (${(e as Error).message.split("\n")[0]}); the guest agent will try`);
  }
}

/**
 * The agent command the guest runs: the bundled agent (bundle.ts; starts in about 1 s under
 * TCG) or, when bundling fails or AUXSPEC_VM_TSX=1, tsx on hwtest/host/agent.ts (10 to 20 s).
 */
export async function guestAgent(log: (m: string) => void): Promise<string[]> {
  if (process.env.AUXSPEC_VM_TSX !== "1") {
    try {
      const bundle = await bundleAgent(PROJECT_ROOT, log);
      return ["node", bundle, ...AGENT_ARGS];
    } catch (e) {
      log(`could not bundle the agent (${(e as Error).message.split("\n")[0]}); the guest runs it under tsx`);
    }
  }
  return defaultAgent(PROJECT_ROOT);
}

export async function vmBackend(kernel: string, opts: VmBackendOptions = {}): Promise<Backend> {
  const log = opts.log ?? (() => {});
  if (!qemuBinary()) throw new BackendUnavailable("qemu-system-x86_64 is not installed: run `bash scripts/setup-vm.sh` (as root) to install qemu-system-x86 and busybox-static");
  if (!busyboxBinary()) throw new BackendUnavailable("busybox is not installed: run `bash scripts/setup-vm.sh` (as root) to install busybox-static");
  let k: ProvisionedKernel;
  try {
    k = await provisionKernel(kernel, log, { bzImage: opts.bzImage, headers: opts.headers });
  } catch (e) {
    throw new BackendUnavailable(`cannot provision kernel ${kernel}: ${(e as Error).message}`);
  }
  const agentKind = opts.agent ?? "c";
  const repeat = Math.max(1, Math.floor(opts.repeat ?? 1));
  if (agentKind === "ts" && !k.ninep) {
    throw new BackendUnavailable(`kernel ${k.release} cannot run agent "ts": ${k.notes.find((n) => n.includes("linux-modules")) ?? "the guest has no 9p modules"}; the default C agent (agent "c") runs without 9p`);
  }
  let agent: string[] | undefined;
  if (agentKind === "ts") {
    await ensureNative(log);
    agent = await guestAgent(log);
  }
  const boot = async (): Promise<GuestVM> => {
    try {
      return await GuestVM.boot({ kernel: k, agent, agentKind, log, cpus: opts.cpus });
    } catch (e) {
      const c = e instanceof GuestError ? `\n--- console ---\n${consoleLines(e.console)}` : "";
      throw new BackendUnavailable(`guest ${k.release} did not come up: ${(e as Error).message}${c}`);
    }
  };
  const cpus = Math.max(1, Math.floor(opts.cpus ?? 1));
  const wc = vmWorkers(opts.workers ?? 1, { cpus });
  if (wc.why) log(wc.why);
  // All guests boot at once; one that fails to boot fails the backend (the others are closed).
  const booted = await Promise.allSettled(Array.from({ length: wc.workers }, () => boot()));
  const failed = booted.find((b): b is PromiseRejectedResult => b.status === "rejected");
  if (failed) {
    await Promise.all(booted.map((b) => (b.status === "fulfilled" ? b.value.close() : undefined)));
    throw failed.reason;
  }
  const vms = booted.map((b) => (b as PromiseFulfilledResult<GuestVM>).value);
  const vm = vms[0];
  const hello = vm.hello;
  if (!hello.auxPmu && k.moduleKo) {
    const c = vm.consoleTail();
    await Promise.all(vms.map((v) => v.close()));
    throw new BackendUnavailable(`the test PMU auxspec_pmu did not register in ${hello.release}:\n${consoleLines(c)}`);
  }
  const choice = profileFor(hello.release, hello.version ?? undefined);
  const name = `vm:${kernel}`;
  const info: BackendInfo = {
    name,
    kernel: hello.release,
    profile: choice.profile,
    config: guestConfig(hello),
    unsupported: new Set<string>(hello.auxPmu ? ["mapRangeFault"] : ["auxFault", "mapRangeFault"]), // mapRangeFault: model only (map_range() is core code; Debian kernels have no fault-injection hook for it)
    notes: [
      `Debian kernel ${hello.release}${k.debVersion ? ` (package ${k.debVersion})` : ""} under QEMU TCG, ${hello.cpus} CPU${hello.cpus === 1 ? "" : "s"}: profile ${choice.profile} (${choice.why})`,
      hello.auxPmu
        ? `AUX PMU: the auxspec_pmu test module (type ${hello.auxType}); auxFault switches its setup_aux to fail; the audit reads its live/setups/frees counters`
        : `no AUX PMU (${k.notes.join("; ") || "no test PMU"}): pmu "aux" opens a PMU type no PMU has (ENOENT); software-event programs run`,
      agentKind === "c"
        ? "the guest runs the C agent (runtime/agent.c: fresh uid per program, page accesses in-process); kernel WARN/BUG/Oops lines printed during a program (bracketed by markers in the kernel log) come back as audit.warnings"
        : "the guest runs the host executor's agent (fresh uid per program, page accesses in-process); kernel WARN/BUG/Oops lines of a program come back as audit.warnings",
      vms.length > 1
        ? `${vms.length} guests (boot took ${vms.map((v) => v.bootSeconds).join(", ")} s); programs are spread over them in batches, one at a time in each guest`
        : `boot took ${vm.bootSeconds} s; programs run one at a time in the guest`,
      ...(wc.why ? [wc.why] : []),
      ...(agentKind === "c"
        ? [`races: programs with a par block can run ${repeat > 1 ? `${repeat} times each` : "several times"} in one request (runRepeated; the C agent's repeat: a fresh uid, teardown, audit and kernel-log attribution per repetition, par tasks released by a futex barrier and spinning 0..${opts.jitterUs ?? 50} us) on ${hello.cpus} guest CPU${hello.cpus === 1 ? "" : "s"}${hello.cpus === 1 ? " (one CPU: the tasks only interleave where the guest's scheduler preempts them; --guest-cpus 2 runs them at once)" : ""}; a repetition that leaks an AUX buffer or makes the kernel print BUG/Oops is the last kept, the programs after it run on a fresh guest`]
        : ["the TypeScript agent has no repeat: this backend has no runRepeated (the C agent, the default, has)"]),
      ...(hello.bootWarnings.length ? [`kernel warnings during boot: ${hello.bootWarnings.join(" | ")}`] : []),
    ],
  };
  log(`${name}: ${hello.release}, profile ${choice.profile}, boot ${vm.bootSeconds} s`);

  const guests = vms.map((first) => new GuestRunner({
    name, kernel: hello.release, first, log,
    boot: () => GuestVM.boot({ kernel: k, agent, agentKind, log, cpus: opts.cpus }),
  }));
  const runner = new ParallelRunner(guests);
  let closed = false;
  const backend: Backend = {
    info,
    run: (programs: readonly Program[], config?: Config) => runner.run(programs, config ?? info.config),
    close: async () => {
      if (closed) return;
      closed = true;
      const n = guests.reduce((a, g) => a + g.repeatedPrograms, 0);
      if (n > 0) log(`${name}: ${n} par program request${n === 1 ? "" : "s"} repeated, ${guests.reduce((a, g) => a + g.repetitions, 0)} repetitions answered`);
      await runner.close();
    },
  };
  // The TypeScript agent has no `repeat` (and runs no par blocks): no runRepeated, so a
  // campaign runs each program once there.
  if (agentKind === "c") {
    backend.runRepeated = (programs: readonly Program[], config?: Config, r?: number) =>
      runner.runRepeated(programs, config ?? info.config, Math.max(1, Math.floor(r ?? repeat)), opts.jitterUs);
  }
  return backend;
}

/**
 * Why a program's trace says the guest's kernel is no longer fresh for the next program, or
 * null: an AUX buffer still live after the teardown (the test PMU's live count: free_aux never
 * ran, e.g. 5.10's mremap partial-move leak; every later audit would count it), or a BUG/Oops
 * in its kernel log (a task killed inside the kernel may hold locks or leak references).
 * A long campaign in one guest otherwise turns one leak into thousands of divergences (seen:
 * 10,000 programs on 5.10, every program after the first leak diverged).
 */
export function leftBehind(t: Trace): string | null {
  if (t.audit?.liveAux !== undefined && t.audit.liveAux > 0) return `left ${t.audit.liveAux} AUX buffer${t.audit.liveAux === 1 ? "" : "s"} live after its teardown (leaked)`;
  const oops = t.audit?.warnings?.find((w) => /\bBUG\b|\bOops\b/.test(w));
  if (oops) return `made the kernel print ${JSON.stringify(oops.slice(0, 120))}`;
  return null;
}

/** What GuestRunner needs of a guest (GuestVM; tests use a fake). */
export interface GuestLike {
  readonly alive: boolean;
  send<T>(msg: Record<string, unknown>): Promise<T & { id: number }>;
  watch(ms: number): void;
  consoleTail(chars?: number): string;
  close(): Promise<void>;
}

export interface GuestRunnerOptions {
  name: string;
  kernel: string;
  boot: () => Promise<GuestLike>;
  /** The guest already booted, if any. */
  first?: GuestLike | null;
  log?: (msg: string) => void;
  window?: number;
  maxReboots?: number;
  /** Guest-side limit per program (default guestTimeoutMs). */
  programMs?: (p: Program) => number;
  /** Added to the guest limit for the host's watchdog (default agent start-up + 30 s). */
  hostExtraMs?: number;
}

/**
 * Runs programs on one guest at a time, a window of requests ahead, in order. When the guest
 * dies or hangs (the watchdog kills it) the program it was running is aborted with the console
 * tail, a fresh guest is booted, and the programs after it go there; after maxReboots deaths in
 * one run() the rest are aborted unrun. run() calls queue behind each other.
 */
export class GuestRunner {
  private guest: GuestLike | null;
  private chain: Promise<unknown> = Promise.resolve();
  private closed = false;
  /** Guests booted after the first (for reports and tests). */
  reboots = 0;
  /** Par programs sent repeated, and the repetitions' traces they answered (for reports). */
  repeatedPrograms = 0;
  repetitions = 0;

  constructor(private readonly o: GuestRunnerOptions) {
    this.guest = o.first ?? null;
  }

  run(programs: readonly Program[], cfg: Config): Promise<Trace[]> {
    return this.queued(programs, cfg, 1).then((reps) => reps.map((ts) => ts[0]));
  }

  /**
   * Each program with a par block `repeat` times in one request (the C agent's `repeat`: a fresh
   * uid, teardown and audit per repetition, its kernel-log lines in its own audit), every other
   * program once: per program, its repetitions' traces in order. Fewer than `repeat` when one
   * aborted or left the agent's worker dirty (the agent stops there), or left the kernel not
   * fresh (leftBehind: a leaked AUX buffer, a BUG/Oops; the agent goes on, but what ran after it
   * ran on a tainted kernel, so those are dropped and the programs after it get a fresh guest).
   */
  runRepeated(programs: readonly Program[], cfg: Config, repeat: number, jitterUs?: number): Promise<Trace[][]> {
    return this.queued(programs, cfg, Math.max(1, Math.floor(repeat)), jitterUs);
  }

  private queued(programs: readonly Program[], cfg: Config, repeat: number, jitterUs?: number): Promise<Trace[][]> {
    if (this.closed) return Promise.reject(new Error(`${this.o.name} is closed`));
    const p = this.chain.then(() => this.runAll(programs, cfg, repeat, jitterUs));
    this.chain = p.catch(() => {});
    return p;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.chain;
    if (this.guest) await this.guest.close();
    this.guest = null;
  }

  private async runAll(programs: readonly Program[], cfg: Config, repeat: number, jitterUs?: number): Promise<Trace[][]> {
    const { name, kernel } = this.o;
    const log = this.o.log ?? (() => {});
    const window = this.o.window ?? WINDOW;
    const maxReboots = this.o.maxReboots ?? MAX_REBOOTS;
    const programMs = this.o.programMs ?? guestTimeoutMs;
    const hostExtra = this.o.hostExtraMs ?? AGENT_START_MS + HOST_GRACE_MS;
    const traces: Array<Trace[] | undefined> = new Array(programs.length);
    const aborted = (why: string): Trace => ({ backend: name, kernel, steps: [], audit: null, aborted: why });
    // Repetitions per request: only par programs repeat; the others' requests are as run()'s.
    const reps = (p: Program): number => (repeat > 1 && hasPar(p) ? repeat : 1);
    const limit = (p: Program): number => requestTimeoutMs(p, reps(p), programMs);
    const extra = (p: Program): Record<string, number> => (reps(p) > 1 ? { repeat: reps(p), ...(jitterUs !== undefined ? { jitterUs } : {}) } : {});
    let deaths = 0;
    let i = 0; // every program before i has its trace
    while (i < programs.length) {
      if (!this.guest || !this.guest.alive) {
        if (this.guest) await this.guest.close();
        this.guest = null;
        if (deaths > maxReboots) {
          for (let j = i; j < programs.length; j++) traces[j] = [aborted(`not run: the guest died ${deaths} times in this run`)];
          break;
        }
        this.reboots++;
        log(`${name}: booting the guest again (${this.reboots})`);
        try {
          this.guest = await this.o.boot();
        } catch (e) {
          const c = e instanceof GuestError ? `\n${consoleLines(e.console)}` : "";
          for (let j = i; j < programs.length; j++) traces[j] = [aborted(`not run: the guest did not boot again: ${(e as Error).message}${c}`)];
          break;
        }
      }
      const guest = this.guest;
      const inflight: Array<{ index: number; answer: Promise<{ trace: Trace; traces?: unknown } | Error> }> = [];
      let sendIdx = i;
      const fill = () => {
        while (inflight.length < window && sendIdx < programs.length) {
          const index = sendIdx++;
          const p = programs[index];
          const answer = guest
            .send<{ trace: Trace; traces?: unknown }>({ program: p, config: cfg, timeoutMs: limit(p), ...extra(p) })
            .catch((e: Error) => e);
          inflight.push({ index, answer });
        }
      };
      fill();
      while (inflight.length > 0) {
        const f = inflight[0];
        guest.watch(limit(programs[f.index]) + hostExtra);
        const r = await f.answer;
        inflight.shift();
        i = f.index + 1;
        if (r instanceof Error) {
          // The guest died or hung while f was its running program: f is aborted with the
          // console; the programs sent after it go again to the next boot.
          deaths++;
          const c = r instanceof GuestError ? r.console : guest.consoleTail();
          traces[f.index] = [aborted(`guest ${kernel} died while running this program: ${r.message}\n--- console ---\n${consoleLines(c)}`)];
          break;
        }
        // Zod at the edge: a reply that is not a Trace is a harness failure, never a verdict.
        // A repeated request answers every repetition in `traces` (an aborted request: `trace` alone).
        const repeated = reps(programs[f.index]) > 1 && r.traces !== undefined;
        const parsed = repeated ? Trace.array().min(1).safeParse(r.traces) : Trace.safeParse(r.trace);
        if (!parsed.success) {
          deaths++;
          traces[f.index] = [aborted(`harness: guest ${kernel} sent a malformed ${repeated ? "list of traces" : "trace"}:\n${formatZodError(parsed.error)}`)];
          await guest.close(); // its agent is in an unknown state: the next programs get a fresh boot
          this.guest = null;
          break;
        }
        const got = Array.isArray(parsed.data) ? parsed.data : [parsed.data];
        // The first repetition that left the kernel not fresh is the last one kept: the agent
        // ran the rest on that kernel (it stops only for its own worker's state).
        const k = got.findIndex((t) => leftBehind(t) !== null);
        const kept = k < 0 ? got : got.slice(0, k + 1);
        traces[f.index] = kept.map((t) => ({ ...t, backend: name }));
        if (reps(programs[f.index]) > 1) {
          this.repeatedPrograms++;
          this.repetitions += kept.length;
        }
        const why = k < 0 ? null : leftBehind(got[k]);
        if (why) {
          // The kernel state this program left would show in every program after it (a leaked
          // AUX buffer stays in the test PMU's live count for the guest's lifetime): those, and
          // the ones already sent, run on a fresh guest. Not a death: no reboot limit.
          const which = got.length > 1 ? `repetition ${k + 1} of ${got.length} of a program` : "a program";
          log(`${name}: ${which} ${why}; ${got.length > k + 1 ? `the ${got.length - k - 1} repetitions after it are dropped and ` : ""}the programs after it run on a fresh guest`);
          await guest.close();
          this.guest = null;
          break;
        }
        fill();
      }
    }
    return traces.map((t) => t ?? [aborted("not run")]);
  }
}
