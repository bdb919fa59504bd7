/**
 * Builds the two small C pieces of the host backend with gcc, at first use, into a cache
 * directory, and finds them again:
 * - auxprobe.so: page accesses that may fault, and VmPin (loaded with koffi by libc.ts);
 * - exec: the C executor the benchmark compares the koffi executor with (cexec.ts);
 * - agent: the C agent (runtime/agent.c), static: the VM guest's agent without Node, and the
 *   TypeScript agent's differential twin on the host.
 *
 * File names carry a hash of the source, so an edited source is rebuilt and a stale binary
 * is never used. Cache directories tried, in order: $AUXSPEC_NATIVE_DIR, <project>/.cache/native
 * (gitignored; the VM guest sees it read-only over 9p, so build on the host first:
 * `tsx hwtest/host/native/build.ts`), $XDG_CACHE_HOME/auxspec (or ~/.cache/auxspec), and
 * the temp dir. An existing binary is used from any of them; a new one goes to the first
 * writable one. The write is atomic (temp name + rename): concurrent workers may race.
 */
import { createHash } from "node:crypto";
import { execFileSync } from "node:child_process";
import { accessSync, constants, existsSync, mkdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));
export const PROJECT_ROOT = resolve(HERE, "../../..");

export interface NativeTarget { name: string; source: string; shared: boolean; static?: boolean }
export const AUXPROBE: NativeTarget = { name: "auxprobe", source: join(HERE, "auxprobe.c"), shared: true };
export const CEXEC: NativeTarget = { name: "exec", source: join(HERE, "exec.c"), shared: false };
export const CAGENT: NativeTarget = { name: "agent", source: join(PROJECT_ROOT, "runtime", "agent.c"), shared: false, static: true };

const CFLAGS = ["-O2", "-Wall", "-Wextra", "-std=gnu11"];

export function cacheDirs(): string[] {
  const dirs: string[] = [];
  if (process.env.AUXSPEC_NATIVE_DIR) dirs.push(process.env.AUXSPEC_NATIVE_DIR);
  dirs.push(join(PROJECT_ROOT, ".cache", "native"));
  const xdg = process.env.XDG_CACHE_HOME || (homedir() ? join(homedir(), ".cache") : "");
  if (xdg) dirs.push(join(xdg, "auxspec"));
  const uid = typeof process.getuid === "function" ? process.getuid() : 0;
  dirs.push(join(tmpdir(), `auxspec-native-${uid}`));
  return dirs;
}

/**
 * The source and every project header it includes with `#include "..."`, transitively
 * (runtime/auxspec.h for both targets), in include order: what the build hash covers.
 */
export function sourceClosure(source: string, seen: Set<string> = new Set()): string[] {
  const path = resolve(source);
  if (seen.has(path)) return [];
  seen.add(path);
  const out = [path];
  for (const m of readFileSync(path, "utf8").matchAll(/^\s*#\s*include\s+"([^"]+)"/gm)) {
    out.push(...sourceClosure(resolve(dirname(path), m[1]), seen));
  }
  return out;
}

function fileName(t: NativeTarget): string {
  const hash = createHash("sha1");
  for (const f of sourceClosure(t.source)) hash.update(readFileSync(f));
  const h = hash.update(process.arch).update(CFLAGS.join(" ")).update(String(t.shared)).update(t.static ? "static -s" : "").digest("hex").slice(0, 12);
  return `${t.name}-${process.arch}-${h}${t.shared ? ".so" : ""}`;
}

function writable(dir: string): boolean {
  try {
    mkdirSync(dir, { recursive: true });
    accessSync(dir, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/** Path of the built target, building it when no cache dir has it. Throws with gcc's output on failure. */
export function ensureBuilt(t: NativeTarget, log: (m: string) => void = () => {}): string {
  const name = fileName(t);
  const dirs = cacheDirs();
  for (const d of dirs) {
    const p = join(d, name);
    if (existsSync(p)) return p;
  }
  const dir = dirs.find(writable);
  if (!dir) throw new Error(`no writable cache directory for ${t.name} (tried ${dirs.join(", ")}); set AUXSPEC_NATIVE_DIR`);
  const out = join(dir, name);
  const tmp = `${out}.tmp-${process.pid}`;
  const args = [...CFLAGS, ...(t.shared ? ["-shared", "-fPIC"] : []), ...(t.static ? ["-static", "-s"] : []), "-o", tmp, t.source];
  log(`building ${t.name}: gcc ${args.join(" ")}`);
  try {
    execFileSync(process.env.CC || "gcc", args, { stdio: ["ignore", "pipe", "pipe"] });
  } catch (e) {
    const err = e as { stderr?: Buffer; message: string };
    rmSync(tmp, { force: true });
    throw new Error(`cannot build ${t.source} with gcc (${err.message.split("\n")[0]}):\n${err.stderr?.toString() ?? ""}`);
  }
  renameSync(tmp, out);
  return out;
}

export function auxprobePath(log?: (m: string) => void): string { return ensureBuilt(AUXPROBE, log); }
export function cexecPath(log?: (m: string) => void): string { return ensureBuilt(CEXEC, log); }
export function cagentPath(log?: (m: string) => void): string { return ensureBuilt(CAGENT, log); }

// `tsx hwtest/host/native/build.ts`: build both now (npm run setup calls this).
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  for (const t of [AUXPROBE, CEXEC, CAGENT]) {
    if (!existsSync(t.source)) continue;
    console.log(`${t.name}: ${ensureBuilt(t, (m) => console.log(m))}`);
  }
}
