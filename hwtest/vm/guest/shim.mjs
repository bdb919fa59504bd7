// The guest side of the VM backend (plain JavaScript: it runs under the guest's Node, before
// and around the TypeScript agent). It owns the host channel (stdin/stdout = ttyS1, raw):
//
//   guest -> host  {"hello":{...}}                      once, when the agent may be sent work
//   host  -> guest {"id":N,"program":[...],"config":{},"timeoutMs":T}  forwarded to the agent
//   guest -> host  {"id":N,"trace":{...}}                the agent's answer, plus kernel warnings
//   host  -> guest {"id":N,"probe":true}                 answered here: test PMU counters, kmsg
//   guest -> host  {"id":N,"probe":{...}}
//   host  -> guest {"id":N,"selftestWarn":true}           the test PMU raises a WARN (tests the scan)
//   host  -> guest {"id":N,"selftestPanic":true}          crash the kernel (tests panic reporting)
//   host  -> guest {"quit":true}                         stop the agent and power off
//
// Requests are handled one at a time, in order: a program's kernel-log lines are those that
// appear between the answer to the previous request and the answer to this one, attached as
// trace.audit.warnings (WARN/BUG/Oops lines). A serial line has no end-of-file, hence "quit".
// If the agent dies, the request in flight is answered with an aborted trace and the next
// request starts a fresh agent.
import { spawn } from "node:child_process";
import { closeSync, constants, openSync, readFileSync, readSync, existsSync, writeFileSync } from "node:fs";
import { createInterface } from "node:readline";
import os from "node:os";

const AGENT = JSON.parse(process.env.AUXSPEC_AGENT ?? "[]");
const CWD = process.env.AUXSPEC_PROJECT ?? process.cwd();
const PARAMS = "/sys/module/auxspec_pmu/parameters";
/** Extra time a program gets when it starts a fresh agent (tsx compiling under TCG). */
const AGENT_START_MS = 90_000;
const PMU_DIR = "/sys/bus/event_source/devices/auxspec_pmu";

const WARN_RE = /WARNING:|BUG:|kernel BUG|Oops|general protection fault|refcount_t:|UBSAN:|KASAN:|list_(add|del) corruption|Kernel panic|rcu.*detected stall|blocked for more than|Bad page|page allocation failure|invalid opcode/i;

const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const log = (msg) => process.stderr.write(`auxspec-shim: ${msg}\n`);

// --- kernel log --------------------------------------------------------------------------
let kmsgFd = -1;
try {
  kmsgFd = openSync("/dev/kmsg", constants.O_RDONLY | constants.O_NONBLOCK);
} catch (e) {
  log(`cannot open /dev/kmsg: ${e.message}`);
}
const kbuf = Buffer.alloc(8192);
/** Every kernel-log message since the last call (first line of each record). */
function drainKmsg() {
  const msgs = [];
  if (kmsgFd < 0) return msgs;
  for (;;) {
    let n;
    try {
      n = readSync(kmsgFd, kbuf, 0, kbuf.length, null);
    } catch (e) {
      if (e.code === "EAGAIN") break;
      if (e.code === "EPIPE") continue; // records overwritten before we read them
      log(`reading /dev/kmsg: ${e.message}`);
      break;
    }
    if (n <= 0) break;
    const rec = kbuf.toString("utf8", 0, n);
    const semi = rec.indexOf(";");
    const msg = rec.slice(semi + 1).split("\n")[0];
    msgs.push(msg.trim());
  }
  return msgs;
}
const warningsIn = (msgs) => msgs.filter((m) => WARN_RE.test(m)).slice(0, 50);

// --- facts ---------------------------------------------------------------------------------
const readText = (p) => {
  try {
    return readFileSync(p, "utf8").trim();
  } catch {
    return null;
  }
};
const readInt = (p) => {
  const t = readText(p);
  if (t === null) return null;
  if (t === "Y" || t === "N") return t === "Y" ? 1 : 0;
  const n = Number(t);
  return Number.isFinite(n) ? n : null;
};
function onlineCpus() {
  const t = readText("/sys/devices/system/cpu/online");
  if (!t) return os.cpus().length;
  let n = 0;
  for (const part of t.split(",")) {
    const [a, b] = part.split("-").map(Number);
    n += b === undefined ? 1 : b - a + 1;
  }
  return n;
}
/** RLIMIT_MEMLOCK soft (field 1) or hard (field 2) limit in kB. */
function memlockKb(field = 1) {
  const t = readText("/proc/self/limits") ?? "";
  const m = /^Max locked memory\s+(\S+)\s+(\S+)/m.exec(t);
  if (!m) return null;
  return m[field] === "unlimited" ? "unlimited" : Number(m[field]) / 1024;
}
/** CAP_SYS_RESOURCE (bit 24) in CapEff: the agent may raise the hard limit. */
function capSysResource() {
  const m = /^CapEff:\s*([0-9a-f]+)/m.exec(readText("/proc/self/status") ?? "");
  return m ? ((BigInt(`0x${m[1]}`) >> 24n) & 1n) === 1n : false;
}
function pmuCounters() {
  if (!existsSync(PARAMS)) return null;
  return {
    setups: readInt(`${PARAMS}/setups`),
    frees: readInt(`${PARAMS}/frees`),
    live: readInt(`${PARAMS}/live`),
    failSetupAux: readInt(`${PARAMS}/fail_setup_aux`) === 1,
  };
}

// --- agent ---------------------------------------------------------------------------------
let agent = null; // { proc, lines: AsyncIterator<string>, exited: Promise<string> }
function startAgent() {
  if (AGENT.length === 0) throw new Error("AUXSPEC_AGENT names no command");
  const proc = spawn(AGENT[0], AGENT.slice(1), { cwd: CWD, stdio: ["pipe", "pipe", "inherit"] });
  const rl = createInterface({ input: proc.stdout, crlfDelay: Infinity });
  const waiting = [];
  const queued = [];
  let closed = null;
  rl.on("line", (line) => {
    if (!line.startsWith("{")) {
      log(`agent said: ${line.slice(0, 300)}`);
      return;
    }
    const w = waiting.shift();
    if (w) w.resolve(line);
    else queued.push(line);
  });
  const exited = new Promise((res) => {
    proc.on("exit", (code, signal) => res(signal ? `signal ${signal}` : `exit code ${code}`));
    proc.on("error", (e) => res(`could not start: ${e.message}`));
  });
  exited.then((why) => {
    closed = why;
    for (const w of waiting.splice(0)) w.reject(new Error(`agent ended (${why})`));
  });
  proc.stdin.on("error", () => {});
  const next = () => {
    if (queued.length) return Promise.resolve(queued.shift());
    if (closed) return Promise.reject(new Error(`agent ended (${closed})`));
    return new Promise((resolve, reject) => waiting.push({ resolve, reject }));
  };
  agent = { proc, next, exited, isClosed: () => closed !== null };
  exited.then(() => {
    if (agent && agent.proc === proc) agent = null;
  });
  return agent;
}

function abortedTrace(why) {
  return { backend: "vm", kernel: os.release(), steps: [], audit: null, aborted: why };
}

/** Where a stuck process is in the kernel (for the aborted trace of a timed-out program). */
function whereIs(pid) {
  const wchan = readText(`/proc/${pid}/wchan`);
  const stack = readText(`/proc/${pid}/stack`);
  const state = /^State:\s*(.*)$/m.exec(readText(`/proc/${pid}/status`) ?? "")?.[1];
  return [state && `state ${state}`, wchan && `wchan ${wchan}`, stack && `stack ${stack.split("\n").slice(0, 8).join(" | ")}`].filter(Boolean).join("; ");
}

/**
 * Run one program on the agent. The agent exits with status 3 right after a program that left
 * its process dirty (VmPin != 0): a request it never answered is then sent again to a fresh
 * agent. Any other death of the agent aborts the program in flight. A program running past
 * req.timeoutMs has its agent killed (the kernel may still be fine; the host kills QEMU only
 * when the shim itself stops answering).
 */
async function runProgram(req) {
  // The test PMU's setups/frees count from 0 for each program (live is left alone), so the
  // audit's auxSetups/auxFrees are this program's own, as the spec predicts them.
  try {
    writeFileSync(`${PARAMS}/reset_counts`, "1");
  } catch (e) {
    if (e.code !== "ENOENT") log(`reset_counts: ${e.message}`);
  }
  let answer = null;
  for (let attempt = 0; attempt < 3 && !answer; attempt++) {
    const fresh = !(agent && !agent.isClosed());
    const a = fresh ? startAgent() : agent;
    a.proc.stdin.write(JSON.stringify({ id: req.id, program: req.program, config: req.config }) + "\n");
    let timer = null;
    let timedOut = null;
    if (req.timeoutMs) {
      const ms = req.timeoutMs + (fresh ? AGENT_START_MS : 0);
      timer = setTimeout(() => {
        timedOut = `timed out after ${ms} ms in the guest (agent ${a.proc.pid}: ${whereIs(a.proc.pid)}); agent killed`;
        a.proc.kill("SIGKILL");
      }, ms);
    }
    try {
      answer = JSON.parse(await a.next());
    } catch (e) {
      const why = await a.exited;
      if (timedOut) answer = { id: req.id, trace: abortedTrace(timedOut) };
      else if (why === "exit code 3" && attempt < 2) log(`agent exited dirty before request ${req.id}; sending it to a fresh agent`);
      else answer = { id: req.id, trace: abortedTrace(`guest agent failed: ${e.message}`) };
    } finally {
      if (timer) clearTimeout(timer);
    }
  }
  const warnings = warningsIn(drainKmsg());
  if (answer.trace && warnings.length) {
    if (answer.trace.audit) {
      // The agent reports its own PID's warnings too; keep each line once.
      const had = answer.trace.audit.warnings ?? [];
      const merged = [...had, ...warnings.filter((w) => !had.includes(w))];
      if (merged.length) answer.trace.audit.warnings = merged;
    }
    else answer.trace.aborted = `${answer.trace.aborted ?? "aborted"}; kernel log: ${warnings.join(" | ")}`;
  }
  if (answer.id !== req.id) log(`agent answered id ${answer.id} to request ${req.id}`);
  answer.id = req.id;
  return answer;
}

// --- main loop -----------------------------------------------------------------------------
const bootMsgs = drainKmsg();
out({
  hello: {
    release: os.release(),
    version: readText("/proc/version"),
    cpus: onlineCpus(),
    mlockKb: readInt("/proc/sys/kernel/perf_event_mlock_kb"),
    paranoid: readInt("/proc/sys/kernel/perf_event_paranoid"),
    memlockKb: memlockKb(1),
    memlockHardKb: memlockKb(2),
    capSysResource: capSysResource(),
    auxPmu: existsSync(PMU_DIR) ? "auxspec_pmu" : null,
    auxType: readInt(`${PMU_DIR}/type`),
    pmu: pmuCounters(),
    node: process.version,
    uptime: Number((readText("/proc/uptime") ?? "0").split(" ")[0]),
    bootWarnings: warningsIn(bootMsgs),
    agent: AGENT,
  },
});

const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
const queue = [];
let wake = null;
let done = false;
rl.on("line", (line) => {
  line = line.trim();
  if (!line) return;
  let msg;
  try {
    msg = JSON.parse(line);
  } catch {
    log(`bad request line: ${line.slice(0, 200)}`);
    return;
  }
  queue.push(msg);
  if (wake) wake();
});
rl.on("close", () => {
  done = true;
  if (wake) wake();
});

for (;;) {
  if (queue.length === 0) {
    if (done) break;
    await new Promise((r) => (wake = r));
    wake = null;
    continue;
  }
  const msg = queue.shift();
  if (msg.quit) break;
  if (msg.probe) {
    out({ id: msg.id, probe: { pmu: pmuCounters(), warnings: warningsIn(drainKmsg()), uptime: Number((readText("/proc/uptime") ?? "0").split(" ")[0]) } });
    continue;
  }
  if (msg.selftestWarn) {
    // The test PMU raises a WARN; it is reported with the next program or probe.
    let error = null;
    try {
      writeFileSync(`${PARAMS}/selftest_warn`, "1");
    } catch (e) {
      error = e.message;
    }
    out({ id: msg.id, selftestWarn: error === null, error });
    continue;
  }
  if (msg.selftestPanic) {
    // Crash the guest kernel (sysrq c): tests that the host reports a panic with the console.
    writeFileSync("/proc/sysrq-trigger", "c");
    continue;
  }
  if (msg.program) {
    out(await runProgram(msg));
    continue;
  }
  log(`unknown request: ${JSON.stringify(msg).slice(0, 200)}`);
}

if (agent) {
  agent.proc.stdin.end();
  const t = setTimeout(() => agent?.proc.kill("SIGKILL"), 2000);
  await agent.exited;
  clearTimeout(t);
}
if (kmsgFd >= 0) closeSync(kmsgFd);
// process.exit() would wait for libuv's thread pool, where a read() of the virtio port blocks
// until the host writes again (forever): end this process the hard way; /init powers off next.
log("quit");
process.kill(process.pid, "SIGKILL");
