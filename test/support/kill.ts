/**
 * Kill the CLI at a random point and check that nothing is left behind: every process it
 * started (tracked through /proc while it ran) is gone, and so is every auxspec temp dir named
 * after it (auxspec-KIND-PID-*).
 */
import { spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const ROOT = join(import.meta.dirname, "../..");

function stat(pid: number): { ppid: number; start: string; comm: string } | null {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, "utf8");
    const r = s.slice(s.lastIndexOf(")") + 2).split(" ");
    return { ppid: Number(r[1]), start: r[19], comm: s.slice(s.indexOf("(") + 1, s.lastIndexOf(")")) };
  } catch { return null; }
}

/** Every descendant of `root` now, as pid -> "starttime comm". */
function descendants(root: number): Map<number, string> {
  const kids = new Map<number, number[]>();
  const info = new Map<number, string>();
  for (const n of readdirSync("/proc")) {
    if (!/^\d+$/.test(n)) continue;
    const s = stat(Number(n));
    if (!s) continue;
    info.set(Number(n), `${s.start} ${s.comm}`);
    if (!kids.has(s.ppid)) kids.set(s.ppid, []);
    kids.get(s.ppid)!.push(Number(n));
  }
  const out = new Map<number, string>();
  const stack = [root];
  while (stack.length) for (const k of kids.get(stack.pop()!) ?? []) { out.set(k, info.get(k)!); stack.push(k); }
  return out;
}

export interface KillResult {
  signal: NodeJS.Signals;
  afterMs: number;
  code: number | null;
  seen: number;
  comms: string[];
  leftProcesses: string[];
  leftDirs: string[];
  stderr: string;
}

/**
 * Starts `npm run fuzz -- ARGS` (as node cli/main.ts), waits until `ready` holds for its
 * descendants' names (e.g. QEMU started) and then `delayMs` more, sends `signal`, and reports
 * what is left `settleMs` after it exited.
 */
export async function killCli(args: string[], signal: NodeJS.Signals, delayMs: number, opts: { ready?: (comms: string[]) => boolean; readyTimeoutMs?: number; settleMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<KillResult> {
  const child = spawn(process.execPath, ["--import", "tsx", join(ROOT, "cli/main.ts"), "fuzz", ...args], { cwd: ROOT, stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, ...opts.env } });
  let stderr = "";
  child.stderr!.on("data", (d) => { stderr += d; });
  const exited = new Promise<number | null>((res) => child.on("exit", (code, sig) => res(code ?? (sig ? 128 + ({ SIGKILL: 9, SIGTERM: 15, SIGINT: 2, SIGHUP: 1 } as Record<string, number>)[sig] : null))));
  const seen = new Map<number, string>();
  const poll = setInterval(() => { for (const [p, s] of descendants(child.pid!)) seen.set(p, s); }, 50);
  const t0 = Date.now();
  const limit = opts.readyTimeoutMs ?? 120_000;
  while (opts.ready && !opts.ready([...seen.values()].map((s) => s.split(" ").slice(1).join(" "))) && Date.now() - t0 < limit) await new Promise((r) => setTimeout(r, 100));
  await new Promise((r) => setTimeout(r, delayMs));
  child.kill(signal);
  const code = await exited;
  clearInterval(poll);
  // Processes get settleMs to go (the kernel delivers the death signal at once, but a loaded
  // machine may take a moment to reap); the reaper polls once a second.
  const left = () => ({
    procs: [...seen].filter(([p, s]) => { const now = stat(p); return now !== null && `${now.start} ${now.comm}` === s; }).map(([p, s]) => `${p} ${s}`),
    dirs: readdirSync(tmpdir()).filter((n) => n.startsWith("auxspec-") && n.includes(`-${child.pid}-`)),
  });
  const until = Date.now() + (opts.settleMs ?? 5000);
  let l = left();
  while ((l.procs.length || l.dirs.length) && Date.now() < until) { await new Promise((r) => setTimeout(r, 200)); l = left(); }
  const leftProcesses = l.procs;
  const leftDirs = l.dirs;
  return { signal, afterMs: Date.now() - t0, code, seen: seen.size, comms: [...new Set([...seen.values()].map((s) => s.split(" ").slice(1).join(" ")))], leftProcesses, leftDirs, stderr };
}

export const SIGNAL_CODE: Record<string, number> = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129, SIGKILL: 137 };
