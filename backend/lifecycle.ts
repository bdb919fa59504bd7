/**
 * Process lifecycle shared by every layer that starts children or makes temp dirs:
 *
 * - dieWithParent(): a child (host agent, model worker) asks the kernel for SIGKILL when its
 *   parent dies (prctl(PR_SET_PDEATHSIG)), so that nothing outlives a SIGKILLed CLI. QEMU gets
 *   the same through `setpriv --pdeathsig KILL` (hwtest/vm/qemu.ts). The setting is cleared when
 *   the process changes its effective uid, so an agent re-arms it after every program.
 * - makeTempDir()/sweepStaleTempDirs(): temp dirs are named auxspec-KIND-PID-XXXXXX; a dir whose
 *   PID is gone (a SIGKILLed run) is removed by the next run's sweep, and dirs of this process
 *   are removed on exit and by the CLI's signal handler (removeOwnTempDirs).
 */
import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const PARENT_ENV = "AUXSPEC_PARENT_PID";

let prctl: ((option: number, a: number, b: number, c: number, d: number) => number) | null | undefined;

/** Arms PR_SET_PDEATHSIG = SIGKILL (again) and exits now if the parent is already gone. */
export function dieWithParent(): void {
  if (prctl === undefined) {
    try {
      const koffi = createRequire(import.meta.url)("koffi");
      prctl = koffi.load("libc.so.6").func("int prctl(int, unsigned long, unsigned long, unsigned long, unsigned long)");
    } catch {
      prctl = null;
    }
  }
  prctl?.(1 /* PR_SET_PDEATHSIG */, 9 /* SIGKILL */, 0, 0, 0);
  const want = Number(process.env[PARENT_ENV] ?? 0);
  if (want > 0 && process.ppid !== want) process.exit(1); // the parent died before we armed it
}

let setpriv: string | null | undefined;

/** util-linux setpriv, or null. */
export function setprivPath(): string | null {
  if (setpriv === undefined) {
    setpriv = null;
    for (const d of (process.env.PATH ?? "").split(":").concat(["/usr/bin", "/bin"])) {
      if (d && existsSync(join(d, "setpriv"))) { setpriv = join(d, "setpriv"); break; }
    }
  }
  return setpriv;
}

/**
 * A command line that has PR_SET_PDEATHSIG armed before the program even starts (setpriv
 * --pdeathsig KILL execs it): a child still loading when its parent is SIGKILLed dies too,
 * not only once it reaches dieWithParent().
 */
export function underPdeathsig(file: string, args: readonly string[]): { file: string; args: string[] } {
  const sp = setprivPath();
  return sp ? { file: sp, args: ["--pdeathsig", "KILL", "--", file, ...args] } : { file, args: [...args] };
}

/** Environment for a child that calls dieWithParent(). */
export function childEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { ...process.env, ...extra, [PARENT_ENV]: String(process.pid) };
}

const own = new Set<string>();
let exitHook = false;

/**
 * A fresh temp dir auxspec-KIND-PID-XXXXXX, removed when this process exits; if it is
 * SIGKILLed, a tiny reaper (sh, polling once a second, detached) removes it within a second or
 * two, and any run's sweep removes what is left by then.
 */
export function makeTempDir(kind: string): string {
  const dir = mkdtempSync(join(tmpdir(), `auxspec-${kind}-${process.pid}-`));
  own.add(dir);
  if (!exitHook) { exitHook = true; process.on("exit", removeOwnTempDirs); }
  try {
    const reaper = spawn("/bin/sh", ["-c", 'while kill -0 "$1" 2>/dev/null; do sleep 1; done; rm -rf -- "$2"', "reaper", String(process.pid), dir],
      { detached: true, stdio: "ignore" });
    reaper.on("error", () => { /* no sh: the sweep still runs */ });
    reaper.unref();
  } catch { /* the sweep still runs */ }
  return dir;
}

/** Removes a temp dir made by makeTempDir (idempotent). */
export function removeTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  own.delete(dir);
}

export function removeOwnTempDirs(): void {
  for (const d of [...own]) { try { removeTempDir(d); } catch { /* best effort */ } }
}

function alive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch (e) { return (e as NodeJS.ErrnoException).code === "EPERM"; }
}

/** Removes auxspec-*-PID-* temp dirs whose PID no longer runs; returns what it removed. */
export function sweepStaleTempDirs(dir = tmpdir()): string[] {
  const removed: string[] = [];
  let names: string[];
  try { names = readdirSync(dir); } catch { return removed; }
  for (const name of names) {
    const m = /^auxspec-[a-z0-9]+-(\d+)-[A-Za-z0-9]{6}$/.exec(name);
    if (!m || alive(Number(m[1]))) continue;
    const p = join(dir, name);
    try {
      if (!statSync(p).isDirectory()) continue;
      rmSync(p, { recursive: true, force: true });
      removed.push(p);
    } catch { /* another sweeper, or not ours to remove */ }
  }
  return removed;
}
