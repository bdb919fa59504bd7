/**
 * One QEMU (TCG) guest running a provisioned kernel, busybox as init, the host's /usr and the
 * project shared read-only over 9p, and the guest shim (guest/shim.mjs) on the second serial
 * port. The host side never hangs: every wait has a time-out, after which QEMU is killed and
 * the error carries the tail of the guest console.
 *
 * Channel: a virtio-serial port named "auxspec" (/dev/vportNpM in the guest) <-> a Unix socket
 * (QEMU chardev server) that this process connects to right after QEMU starts, long before
 * the guest opens the port; JSON lines both ways (see guest/shim.mjs). A second 16550 port
 * would do too, but QEMU paces it at 115200 baud (about 11 kB/s: seconds per large trace).
 * Console: ttyS0 <-> QEMU's stdout, kept in memory (last MiB).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { join } from "node:path";
import { makeTempDir, removeTempDir } from "../../backend/lifecycle.ts";
import { buildInitramfs } from "./initramfs.ts";
import { PROJECT_ROOT, type ProvisionedKernel } from "./provision.ts";
import { initramfsEntries, type InitramfsEntry } from "./release.ts";
import { cagentPath } from "../host/native/build.ts";
import { pvhKernel } from "./pvh.ts";

export const GUEST_DIR = join(PROJECT_ROOT, "hwtest", "vm", "guest");

/** The guest's facts, sent by the shim once it is ready for work. */
export interface GuestHello {
  release: string;
  version: string | null;
  cpus: number;
  mlockKb: number | null;
  paranoid: number | null;
  memlockKb: number | "unlimited" | null;
  memlockHardKb?: number | "unlimited" | null;
  /** The guest's root has CAP_SYS_RESOURCE (the agent may raise the hard limit). */
  capSysResource?: boolean;
  auxPmu: string | null;
  auxType: number | null;
  pmu: PmuCounters | null;
  node: string;
  uptime: number;
  bootWarnings: string[];
  agent: string[];
  /** "c" when the C agent (runtime/agent.c) answers; absent from the Node shim. */
  agentKind?: "c";
}

export interface PmuCounters {
  setups: number | null;
  frees: number | null;
  live: number | null;
  failSetupAux: boolean;
}

export interface Probe {
  pmu: PmuCounters | null;
  warnings: string[];
  uptime: number;
}

export interface BootOptions {
  kernel: ProvisionedKernel;
  /**
   * Which agent the guest runs (default "c", or "ts" when `agent` is given): the static C agent (runtime/agent.c) in the
   * initramfs, which is also the guest's channel owner (no Node, no 9p share in the guest), or
   * "ts": the Node shim (guest/shim.mjs) running `agent` from the host's /usr and the project
   * shared over 9p.
   */
  agentKind?: "ts" | "c";
  /** agentKind "ts": the agent command line in the guest; default: tsx running hwtest/host/agent.ts --allow-sysctl. */
  agent?: readonly string[];
  /** Project folder shared with the guest at the same path (default: this checkout). */
  project?: string;
  memMb?: number;
  /** Limit for boot until the shim's hello (default 180 s: TCG on a loaded 2-core host). */
  bootTimeoutMs?: number;
  log?: (msg: string) => void;
  /** Extra kernel command line. */
  append?: string;
  /** QEMU's -cpu model (default GUEST_CPU). */
  cpu?: string;
  /** Boot the uncompressed vmlinux through its PVH entry where the kernel has one (pvh.ts; default true). */
  pvh?: boolean;
  /** Guest CPUs (QEMU -smp; default 1). Race runs want 2 (spec/notes/races.md: a par block's
   *  tasks on two CPUs at once); TCG then runs one host thread per guest CPU. */
  cpus?: number;
}

/**
 * The guest agent's flags: sysctlMlock is allowed (the guest is ours alone), and page accesses
 * run in-process as the host backend does by default (hwtest/host/backend.ts). In "child" mode
 * the agent reported ENODEV for a failing perf_event_open after a SIGSEGV in an earlier
 * program, on the host kernel too (a harness artefact, reported to the lead).
 */
export const AGENT_ARGS = ["--allow-sysctl", "--touch=inproc"] as const;

export function defaultAgent(project: string): string[] {
  return ["node", join(project, "node_modules", "tsx", "dist", "cli.mjs"), join(project, "hwtest", "host", "agent.ts"), ...AGENT_ARGS];
}

export function qemuBinary(): string | null {
  for (const d of (process.env.PATH ?? "/usr/bin:/bin").split(":")) {
    const p = join(d, "qemu-system-x86_64");
    if (d && existsSync(p)) return p;
  }
  return null;
}

/** util-linux setpriv (for --pdeathsig), or null. */
export function setprivBinary(): string | null {
  for (const d of (process.env.PATH ?? "/usr/bin:/bin").split(":").concat(["/usr/bin", "/bin"])) {
    const p = join(d, "setpriv");
    if (d && existsSync(p)) return p;
  }
  return null;
}

export function busyboxBinary(): string | null {
  for (const p of ["/bin/busybox", "/usr/bin/busybox"]) if (existsSync(p)) return p;
  return null;
}

/**
 * Kernel command line for speed under TCG. Boot: built-in initcalls that cost 0.1 to 0.4 s
 * each and nothing the guest needs (the system certificate list, the jitter entropy source,
 * BPF struct-ops registrations, the Opal and KDF self-tests, DMAR clean-up), and no lockup
 * detector. Programs: expedited RCU grace periods (rcupdate.rcu_expedited=1): re-mapping an
 * event after its last munmap waits for a grace period (ring_buffer_attach ->
 * cond_synchronize_rcu), and the budget probe's closes queue RCU work; expedited, the 20-op
 * programs run twice as fast in a 1-CPU guest, with byte-identical traces (measured on 6.12).
 * Also (measured with initcall_debug on 6.12.118, one boot each): cryptomgr.notests skips the
 * crypto self-tests that crypto_algapi_init runs at boot (crypto/algapi.c -> crypto_start_tests;
 * 343 ms -> 25 ms), and rodata=off skips mark_rodata_ro's page-attribute changes and the W+X
 * page-table walk (ptdump_check_wx) after the initcalls (0.73 s -> 7 ms from freeing initmem to
 * running /init). Kernel self-protection and crypto self-checks, nothing on perf's paths.
 * (acpi=off was slower: the guest lost its fast clocksource; mitigations=off changed nothing
 * measurable: the TCG CPU model reports AMD, no PTI.)
 * Together, boot to a ready 6.12 guest: QEMU CPU 3.35 -> 2.62 s (mean of 4 boots each,
 * alternated, on the loaded 2-core host; wall 7.9 -> 4.9 s there); 5.10 and 7.3 boot too.
 * None of this changes what perf answers (the same traces, hashed, with and without).
 * no_timer_check: timer_irq_works() answers yes at once (arch/x86/kernel/apic/io_apic.c),
 * which under a loaded TCG host can take too long and print "MP-BIOS bug: 8254 timer not
 * connected to IO-APIC", a boot warning about the emulated board that failed the guest
 * differential test 2 times in 5 (cloud images boot with it for the same reason).
 */
export const FAST_BOOT = "nowatchdog no_timer_check rcupdate.rcu_expedited=1 cryptomgr.notests rodata=off initcall_blacklist=load_system_certificate_list,jent_mod_init,bpf_tcp_ca_kfunc_init,bpf_dummy_struct_ops_init,sed_opal_init,crypto_kdf108_init,dmar_free_unused_resources";

/**
 * The guest's CPU model: qemu64 (x86-64 baseline: SSE2, no AVX, SMAP/SMEP, PCID or XSAVE
 * extensions), which every Debian amd64 kernel runs on. Under TCG it runs the programs faster
 * than "max" (QEMU 7.2 emulates AVX2, which glibc's string functions in the static agent then
 * pick, and the kernel saves a larger xstate per context switch): 6.12.118, 300 20-op programs,
 * alternated boots on the loaded 2-core host: 113 against 78 programs per QEMU CPU-second (mean
 * of 4 each; wall 70 against 43/s), 5.10 200 against 75; traces identical (hashed) on 5.10,
 * 6.12 and 7.3. (Nehalem, x86-64-v2, was no faster than max.)
 */
export const GUEST_CPU = "qemu64";

const shq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** Modules only the 9p shares need: left out of a C-agent guest (it shares nothing). */
const NINEP_ONLY = /^(9p|9pnet|9pnet_virtio|netfs|fscache|cachefiles)$/;

/**
 * What a C-agent guest adds to the initramfs: the static agent as /bin/auxspec-agent (built on
 * the host, hwtest/host/native/build.ts), the guest modules without the 9p ones, and the
 * environment init.sh reads (AUXSPEC_AGENT_KIND=c and the agent's flags).
 */
export function cAgentInitramfs(modules: readonly string[], args: readonly string[]): { modules: string[]; env: string; entry: InitramfsEntry } {
  const name = (m: string) => m.split("/").pop()!.replace(/\.ko(\.(xz|zst|gz))?$/, "").replace(/-/g, "_");
  return {
    modules: modules.filter((m) => !NINEP_ONLY.test(name(m))),
    env: `AUXSPEC_AGENT_KIND=c\nAUXSPEC_AGENT_ARGS=${shq(args.join(" "))}\nexport AUXSPEC_AGENT_KIND AUXSPEC_AGENT_ARGS\n`,
    entry: { path: "bin/auxspec-agent", type: "file", mode: 0o755, source: cagentPath() },
  };
}

/** Keeps the last `max` characters of a stream. */
class Tail {
  private parts: string[] = [];
  private size = 0;
  constructor(private readonly max: number) {}
  push(s: string): void {
    this.parts.push(s);
    this.size += s.length;
    while (this.size > this.max && this.parts.length > 1) this.size -= this.parts.shift()!.length;
  }
  text(): string {
    const t = this.parts.join("");
    return t.length > this.max ? t.slice(t.length - this.max) : t;
  }
}

type Pending = { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout | undefined };

interface GuestState {
  dead: string | null;
  exited: Promise<void>;
  die: (why: string) => void;
  watchdog: NodeJS.Timeout | null;
}

export class GuestError extends Error {
  override name = "GuestError";
  constructor(message: string, readonly console: string) {
    super(message);
  }
}

export class GuestVM {
  readonly hello: GuestHello;
  /** Seconds from QEMU start to the shim's hello. */
  readonly bootSeconds: number;
  private nextId = 1;

  private constructor(
    private readonly proc: ChildProcess,
    private readonly sock: Socket,
    private readonly console: Tail,
    private readonly pending: Map<number, Pending>,
    private readonly state: GuestState,
    private readonly tmp: string,
    hello: GuestHello,
    bootSeconds: number,
  ) {
    this.hello = hello;
    this.bootSeconds = bootSeconds;
  }

  get alive(): boolean {
    return this.state.dead === null;
  }

  /** Why the guest stopped, or null while it runs. */
  get deadReason(): string | null {
    return this.state.dead;
  }

  /** CPU seconds QEMU has used so far (user + system, /proc/PID/stat): a measure of the guest's
   *  work that a busy host does not inflate as it does wall time. NaN when unreadable. */
  cpuSeconds(): number {
    try {
      const f = readFileSync(`/proc/${this.proc.pid}/stat`, "utf8").split(") ")[1].split(" ");
      return (Number(f[11]) + Number(f[12])) / 100;
    } catch {
      return NaN;
    }
  }

  consoleTail(chars = 6000): string {
    const t = this.console.text();
    return t.length > chars ? t.slice(t.length - chars) : t;
  }

  static async boot(opts: BootOptions): Promise<GuestVM> {
    const log = opts.log ?? (() => {});
    const qemu = qemuBinary();
    if (!qemu) throw new Error("qemu-system-x86_64 is not installed (run scripts/setup-vm.sh)");
    const busybox = busyboxBinary();
    if (!busybox) throw new Error("busybox is not installed (run scripts/setup-vm.sh)");
    const project = opts.project ?? PROJECT_ROOT;
    const agent = [...(opts.agent ?? defaultAgent(project))];
    const k = opts.kernel;

    const kind = opts.agentKind ?? (opts.agent ? "ts" : "c");

    const tmp = makeTempDir("vm"); // auxspec-vm-PID-*: removed on exit, or by the next run's sweep
    const c = kind === "c" ? cAgentInitramfs(k.guestModules, AGENT_ARGS) : null;
    const entries = initramfsEntries({
      busybox,
      modules: [...(c ? c.modules : k.guestModules), ...(k.moduleKo ? [k.moduleKo] : [])],
      init: readFileSync(join(GUEST_DIR, "init.sh"), "utf8"),
      mountPoints: c ? [] : ["/usr", project],
      files: { "/auxspec.env": c ? c.env : `AUXSPEC_PROJECT=${shq(project)}\nAUXSPEC_AGENT=${shq(JSON.stringify(agent))}\nexport AUXSPEC_PROJECT AUXSPEC_AGENT\n` },
    });
    if (c) entries.push(c.entry);
    writeFileSync(join(tmp, "initrd.gz"), buildInitramfs(entries, { gzip: kind !== "c" }));
    const configPath = join(k.dir, "config");
    const image = (opts.pvh ?? true) ? pvhKernel(k.vmlinuz, existsSync(configPath) ? readFileSync(configPath, "utf8") : null, join(PROJECT_ROOT, ".cache"), log) ?? k.vmlinuz : k.vmlinuz;
    const sockPath = join(tmp, "agent.sock");
    const args = [
      "-accel", "tcg", "-cpu", opts.cpu ?? GUEST_CPU, "-m", String(opts.memMb ?? 1024), "-smp", String(Math.max(1, Math.floor(opts.cpus ?? 1))),
      "-display", "none", "-monitor", "none", "-no-reboot", "-nodefaults",
      "-serial", "stdio",
      "-device", "virtio-serial-pci",
      "-chardev", `socket,id=agent,path=${sockPath},server=on,wait=off`,
      "-device", "virtserialport,chardev=agent,name=auxspec",
      "-kernel", image, "-initrd", join(tmp, "initrd.gz"),
      "-append", `console=ttyS0 panic=-1 quiet ${FAST_BOOT} ${opts.append ?? ""}`.trim(),
      ...(c ? [] : [
        "-virtfs", "local,path=/usr,mount_tag=hostusr,security_model=none,readonly=on,multidevs=remap",
        "-virtfs", `local,path=${project},mount_tag=project,security_model=none,readonly=on,multidevs=remap`,
      ]),
    ];
    const t0 = performance.now();
    log(`booting ${k.release} under QEMU TCG`);
    // QEMU dies with this process, even a SIGKILLed one: setpriv arms PR_SET_PDEATHSIG and execs it.
    const setpriv = setprivBinary();
    const proc = setpriv
      ? spawn(setpriv, ["--pdeathsig", "KILL", "--", qemu, ...args], { stdio: ["ignore", "pipe", "pipe"] })
      : spawn(qemu, args, { stdio: ["ignore", "pipe", "pipe"] });
    const con = new Tail(1 << 20);
    proc.stdout!.setEncoding("utf8");
    proc.stderr!.setEncoding("utf8");
    proc.stdout!.on("data", (s: string) => con.push(s));
    proc.stderr!.on("data", (s: string) => con.push(`[qemu] ${s}`));
    const pending = new Map<number, Pending>();
    let helloWait: { resolve: (h: GuestHello) => void; reject: (e: Error) => void } | null = null;
    const state: GuestState = { dead: null, exited: Promise.resolve(), die: () => {}, watchdog: null };
    const die = (why: string) => {
      if (state.dead) return;
      state.dead = why;
      if (state.watchdog) clearTimeout(state.watchdog);
      const err = new GuestError(`guest ${k.release}: ${why}`, con.text().slice(-6000));
      for (const [, p] of pending) {
        clearTimeout(p.timer);
        p.reject(err);
      }
      pending.clear();
      helloWait?.reject(err);
    };
    state.die = die;
    state.exited = new Promise<void>((res) => {
      // "close": after QEMU's stdout (the console) has been read to its end.
      proc.on("close", (code, signal) => {
        die(signal ? `QEMU killed by ${signal}` : `QEMU exited with code ${code} (the guest powered off, panicked or failed to boot)`);
        res();
      });
      proc.on("error", (e) => {
        die(`QEMU could not start: ${e.message}`);
        res();
      });
    });

    const fail = async (e: unknown): Promise<never> => {
      proc.kill("SIGKILL");
      await state.exited;
      removeTempDir(tmp);
      throw e;
    };

    // Connect to the channel (QEMU creates the socket at start-up).
    let sock: Socket | null = null;
    for (let i = 0; i < 250 && !sock && !state.dead; i++) {
      if (existsSync(sockPath)) {
        sock = await new Promise<Socket | null>((res) => {
          const s = connect(sockPath);
          s.once("connect", () => res(s));
          s.once("error", () => res(null));
        });
      }
      if (!sock) await new Promise((r) => setTimeout(r, 20));
    }
    if (!sock) return fail(new GuestError(`guest ${k.release}: cannot connect to QEMU's agent socket${state.dead ? ` (${state.dead})` : ""}`, con.text()));
    sock.setEncoding("utf8");
    let buf = "";
    const helloP = new Promise<GuestHello>((resolve, reject) => (helloWait = { resolve, reject }));
    helloP.catch(() => {});
    sock.on("data", (chunk: string) => {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl).replace(/\r$/, "");
        buf = buf.slice(nl + 1);
        if (!line.startsWith("{")) {
          if (line.trim()) log(`guest channel noise: ${line.slice(0, 200)}`);
          continue;
        }
        let msg: { hello?: GuestHello; id?: number };
        try {
          msg = JSON.parse(line);
        } catch {
          log(`guest channel: unparsable line: ${line.slice(0, 200)}`);
          continue;
        }
        if (msg.hello) {
          helloWait?.resolve(msg.hello);
          helloWait = null;
        } else if (typeof msg.id === "number") {
          const p = pending.get(msg.id);
          if (state.watchdog) {
            clearTimeout(state.watchdog);
            state.watchdog = null;
          }
          if (p) {
            pending.delete(msg.id);
            clearTimeout(p.timer);
            p.resolve(msg);
          } else log(`guest channel: answer to unknown request ${msg.id}`);
        }
      }
    });
    sock.on("error", (e) => die(`agent channel error: ${e.message}`));
    // QEMU closes the channel as it exits: give the exit (and its console) a moment to be the reason.
    sock.on("close", () => setTimeout(() => die("agent channel closed"), 3000).unref());

    const bootLimit = opts.bootTimeoutMs ?? 180_000;
    const timer = setTimeout(() => {
      die(`no hello from the guest within ${bootLimit / 1000} s`);
      proc.kill("SIGKILL");
    }, bootLimit);
    let hello: GuestHello;
    try {
      hello = await helloP;
    } catch (e) {
      clearTimeout(timer);
      return fail(e);
    } finally {
      clearTimeout(timer);
    }
    const bootSeconds = Math.round((performance.now() - t0) / 10) / 100;
    log(`${hello.release} ready after ${bootSeconds} s (guest uptime ${hello.uptime} s, ${hello.agentKind === "c" ? "C agent" : `node ${hello.node}`})`);
    return new GuestVM(proc, sock, con, pending, state, tmp, hello, bootSeconds);
  }

  /**
   * Send one request (an object with no id; one is assigned); the answer, or a GuestError when
   * the guest dies first. No time-out of its own: see watch().
   */
  send<T>(msg: Record<string, unknown>): Promise<T & { id: number }> {
    if (this.state.dead) return Promise.reject(new GuestError(`guest ${this.hello.release}: ${this.state.dead}`, this.consoleTail()));
    const id = this.nextId++;
    return new Promise<T & { id: number }>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer: undefined });
      this.sock.write(JSON.stringify({ ...msg, id }) + "\n");
    });
  }

  /**
   * Watchdog: unless some answer arrives within `ms` from now, QEMU is killed (and every
   * request waiting fails with the console tail). Each answer disarms it.
   */
  watch(ms: number): void {
    if (this.state.watchdog) clearTimeout(this.state.watchdog);
    this.state.watchdog = setTimeout(() => this.kill(`no answer from the guest within ${Math.round(ms / 1000)} s (hung); QEMU killed`), ms);
  }

  /** Send one request and wait for its answer, killing QEMU after timeoutMs. */
  request<T>(msg: Record<string, unknown>, timeoutMs: number): Promise<T & { id: number }> {
    if (this.state.dead) return Promise.reject(new GuestError(`guest ${this.hello.release}: ${this.state.dead}`, this.consoleTail()));
    const id = this.nextId++;
    return new Promise<T & { id: number }>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new GuestError(`guest ${this.hello.release}: no answer to request ${id} within ${Math.round(timeoutMs / 1000)} s; QEMU killed`, this.consoleTail()));
        this.kill(`request ${id} timed out`);
      }, timeoutMs);
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      this.sock.write(JSON.stringify({ ...msg, id }) + "\n");
    });
  }

  /** Test PMU counters and new kernel-log warnings, after every earlier request. */
  async probe(timeoutMs = 30_000): Promise<Probe> {
    return (await this.request<{ probe: Probe }>({ probe: true }, timeoutMs)).probe;
  }

  private kill(why: string): void {
    this.state.die(why);
    this.proc.kill("SIGKILL");
  }

  /** Ask the guest to power off (15 s grace), then make sure QEMU is gone. Idempotent. */
  async close(): Promise<void> {
    if (!this.state.dead) {
      this.sock.write(JSON.stringify({ quit: true }) + "\n");
      const t = setTimeout(() => this.kill("did not power off within 15 s"), 15_000);
      await this.state.exited;
      clearTimeout(t);
    } else {
      this.proc.kill("SIGKILL");
      await this.state.exited;
    }
    this.sock.destroy();
    removeTempDir(this.tmp);
  }
}
