/**
 * The compiler a Debian kernel was built with, for building the test PMU against its headers
 * (an out-of-tree module must be built with the kernel's own compiler: gcc-12 rejects gcc-14
 * kernels' -fmin-function-alignment, gcc-16 output needs sid's assembler). The headers name it
 * (CONFIG_CC_VERSION_TEXT, the Makefile's CC=). When this machine has that gcc, it is used;
 * otherwise the compiler, its binutils and its whole runtime (libc6, libstdc++6, libisl, libmpc,
 * libmpfr, libgmp, libzstd, ...) are downloaded from the suite that has it, unpacked with
 * `dpkg -x` into <cache>/toolchains/<suite>-gcc-N_<version>/root, and every ELF program in it
 * runs through that suite's own ld-linux-x86-64.so.2 with --library-path (a shell wrapper stands
 * where the program was, the program itself is renamed to NAME.real). Nothing is installed into
 * the system. The kernel's kbuild host tools (objtool, modpost, genksyms, resolve_btfids) that
 * need a newer glibc than the system's are wrapped the same way.
 */
import { execFile } from "node:child_process";
import { chmodSync, existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type { PrivateApt } from "./apt.ts";

export interface KernelCompiler {
  /** The command the kernel's Makefile runs ("gcc-10", "x86_64-linux-gnu-gcc-14"). */
  command: string;
  /** The Debian package ("gcc-14"). */
  pkg: string;
  major: number;
  /** Debian's version of that gcc ("14.2.0-19"), when the version text names it. */
  debVersion: string | null;
  /** CONFIG_CC_VERSION_TEXT as written, or null. */
  text: string | null;
}

/**
 * The kernel's compiler, from its `.config` (or include/config/auto.conf) CONFIG_CC_VERSION_TEXT,
 * e.g. "x86_64-linux-gnu-gcc-14 (Debian 14.2.0-19) 14.2.0", else from the headers' Makefile
 * (`CC = ... $(CROSS_COMPILE)gcc-14` with `CROSS_COMPILE = x86_64-linux-gnu-`). Null when neither names a gcc.
 */
export function kernelCompiler(config: string | null, makefile: string | null): KernelCompiler | null {
  const text = config ? /^CONFIG_CC_VERSION_TEXT="([^"]*)"/m.exec(config)?.[1] ?? null : null;
  if (text) {
    const m = /^(\S*?gcc(?:-(\d+))?)\s+\(Debian ([^)\s]+)\)\s+(\d+)/.exec(text);
    if (m) {
      const major = Number(m[2] ?? m[4]);
      return { command: m[1], pkg: `gcc-${major}`, major, debVersion: m[3], text };
    }
  }
  if (makefile) {
    const cc = /^CC\s*[:?]?=.*?(\$\(CROSS_COMPILE\))?(gcc-(\d+))\s*$/m.exec(makefile);
    if (cc) {
      const cross = cc[1] ? /^(?:override\s+)?CROSS_COMPILE\s*[:?]?=\s*(\S+)\s*$/m.exec(makefile)?.[1] ?? "" : "";
      const major = Number(cc[3]);
      return { command: `${cross}${cc[2]}`, pkg: `gcc-${major}`, major, debVersion: null, text };
    }
  }
  return null;
}

/**
 * Which suite to take `pkg` from, given `apt-cache madison` rows: the row with the exact version
 * the kernel names, else one from the kernel's own suite, else the first (newest) row.
 */
export function compilerSource(
  rows: ReadonlyArray<{ pkg: string; version: string; suite: string }>,
  cc: KernelCompiler,
  kernelSuite: string | null,
): { suite: string; version: string } | null {
  const mine = rows.filter((r) => r.pkg === cc.pkg);
  const exact = cc.debVersion ? mine.find((r) => r.version === cc.debVersion) : undefined;
  const pick = exact ?? (kernelSuite ? mine.find((r) => r.suite === kernelSuite || r.suite.startsWith(`${kernelSuite}-`)) : undefined) ?? mine[0];
  return pick ? { suite: pick.suite, version: pick.version } : null;
}

/** The highest GLIBC_2.N symbol version an ELF file asks for ("2.38"), or null. */
export function glibcRequired(elf: Uint8Array): string | null {
  const text = Buffer.from(elf.buffer, elf.byteOffset, elf.byteLength).toString("latin1");
  let best: [number, number] | null = null;
  for (const m of text.matchAll(/GLIBC_(\d+)\.(\d+)\0/g)) {
    const v: [number, number] = [Number(m[1]), Number(m[2])];
    if (!best || v[0] > best[0] || (v[0] === best[0] && v[1] > best[1])) best = v;
  }
  return best ? `${best[0]}.${best[1]}` : null;
}

export function versionLess(a: string, b: string): boolean {
  const pa = a.split(".").map(Number);
  const pb = b.split(".").map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    if ((pa[i] ?? 0) !== (pb[i] ?? 0)) return (pa[i] ?? 0) < (pb[i] ?? 0);
  }
  return false;
}

/** The shell wrapper that runs `real` through another glibc's loader. */
export function loaderWrapper(loader: string, libPath: readonly string[], real: string): string {
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  return `#!/bin/sh\nexec ${q(loader)} --library-path ${q(libPath.join(":"))} ${q(real)} "$@"\n`;
}

/** This process's glibc ("2.36"). */
export function systemGlibc(): string {
  const header = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header;
  return header?.glibcVersionRuntime ?? "2.36";
}

function isElfExecutable(path: string): Buffer | null {
  try {
    const st = lstatSync(path);
    if (!st.isFile() || (st.mode & 0o111) === 0) return null;
    const buf = readFileSync(path);
    if (buf.length < 18 || buf.readUInt32BE(0) !== 0x7f454c46) return null;
    const type = buf.readUInt16LE(16);
    // ET_EXEC, or ET_DYN with an interpreter (PIE programs; shared libraries have none)
    if (type === 2) return buf;
    if (type === 3 && buf.includes("/ld-linux-x86-64.so.2\0")) return buf;
    return null;
  } catch {
    return null;
  }
}

function walk(dir: string, out: string[] = []): string[] {
  if (!existsSync(dir)) return out;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) walk(p, out);
    else if (e.isFile()) out.push(p);
  }
  return out;
}

/** A suite's runtime unpacked under `root`: its loader and library directories. */
export interface Runtime {
  root: string;
  loader: string;
  libPath: string[];
}

export function runtimeOf(root: string): Runtime | null {
  for (const l of ["usr/lib64/ld-linux-x86-64.so.2", "lib64/ld-linux-x86-64.so.2", "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"]) {
    if (existsSync(join(root, l))) {
      const libPath = ["lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu", "usr/lib64", "lib64"].map((d) => join(root, d)).filter((d) => existsSync(d));
      return { root, loader: join(root, l), libPath };
    }
  }
  return null;
}

/**
 * Replace every ELF program under `dirs` (for which `want` says so) by a wrapper running it
 * through `rt`'s loader; the program becomes NAME.real. Returns the wrapped paths.
 */
export function wrapPrograms(dirs: readonly string[], rt: Runtime, want: (elf: Buffer, path: string) => boolean = () => true): string[] {
  const wrapped: string[] = [];
  for (const d of dirs) {
    for (const p of walk(d)) {
      if (p.endsWith(".real")) continue;
      const elf = isElfExecutable(p);
      if (!elf || !want(elf, p)) continue;
      renameSync(p, `${p}.real`);
      writeFileSync(p, loaderWrapper(rt.loader, rt.libPath, `${p}.real`));
      chmodSync(p, 0o755);
      wrapped.push(p);
    }
  }
  return wrapped;
}

function run(cmd: string, args: readonly string[], env?: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((res, rej) => {
    execFile(cmd, args, { maxBuffer: 64 * 1024 * 1024, env: env ?? process.env }, (err, stdout, stderr) => {
      if (err) rej(new Error(`${cmd} ${args.join(" ")}: ${String(stderr).trim().split("\n").slice(-3).join(" | ") || err.message}`));
      else res(String(stdout));
    });
  });
}

function onPath(cmd: string): string | null {
  for (const d of (process.env.PATH ?? "/usr/bin:/bin").split(":")) if (d && existsSync(join(d, cmd))) return join(d, cmd);
  return null;
}

export interface Toolchain {
  /** "system" (this machine's gcc) or "<suite>-gcc-N_<version>". */
  name: string;
  /** The compiler to pass as CC=. */
  cc: string;
  /** Directories to put first on PATH for the build (the unpacked toolchain's wrappers), possibly none. */
  path: string[];
  /** The suite runtime the toolchain runs on (to wrap kbuild host tools), null for the system's. */
  runtime: Runtime | null;
  /** Seconds spent (0 when cached), and of that the download. */
  seconds: number;
  download: number;
}

const since = (t0: number) => Math.round((performance.now() - t0) / 10) / 100;

/**
 * Run `make` (which fills `dir` and writes dir/ready) unless dir/ready exists, with `dir.lock`
 * (mkdir is atomic) so that two processes sharing the cache (several worktrees) do not unpack
 * into the same folder at once; the second waits for the first's `ready` (a lock older than
 * 10 minutes is taken as stale).
 */
async function once(dir: string, make: () => Promise<void>): Promise<void> {
  const lock = `${dir}.lock`;
  for (let waited = 0; !existsSync(join(dir, "ready")); waited += 500) {
    mkdirSync(dirname(dir), { recursive: true });
    try {
      mkdirSync(lock);
    } catch {
      let age = 0;
      try {
        age = Date.now() - lstatSync(lock).mtimeMs;
      } catch {
        continue;
      }
      if (age > 600_000) rmSync(lock, { recursive: true, force: true });
      else if (waited > 900_000) throw new Error(`${lock} held for ${Math.round(age / 1000)} s`);
      await new Promise((r) => setTimeout(r, 500));
      continue;
    }
    try {
      if (!existsSync(join(dir, "ready"))) await make();
    } finally {
      rmSync(lock, { recursive: true, force: true });
    }
  }
}

async function unpackClosure(apt: PrivateApt, pkgs: string[], suite: string, dir: string, log: (m: string) => void): Promise<{ download: number }> {
  const debs = join(dir, "debs");
  const root = join(dir, "root");
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(root, { recursive: true });
  const td = performance.now();
  log(`downloading ${pkgs.join(" ")} and their dependencies from ${suite}`);
  await apt.downloadClosure(pkgs, suite, debs);
  const download = since(td);
  const files = readdirSync(debs).filter((f) => f.endsWith(".deb"));
  if (files.length === 0) throw new Error(`apt downloaded nothing for ${pkgs.join(" ")}`);
  await Promise.all(files.map((f) => run("dpkg", ["-x", join(debs, f), root])));
  rmSync(debs, { recursive: true, force: true });
  return { download };
}

/**
 * The toolchain for `cc`: the system's gcc when it has the same major version, else the
 * compiler unpacked from the suite that has it (cached under cacheRoot/toolchains).
 */
export async function provisionToolchain(
  cc: KernelCompiler,
  kernelSuite: string | null,
  apt: PrivateApt,
  cacheRoot: string,
  log: (m: string) => void,
  opts: { offline?: boolean } = {},
): Promise<Toolchain> {
  const t0 = performance.now();
  const sys = onPath(cc.command) ?? onPath(cc.pkg) ?? onPath(`x86_64-linux-gnu-${cc.pkg}`);
  if (sys) return { name: "system", cc: sys, path: [], runtime: null, seconds: 0, download: 0 };
  const tcRoot = join(cacheRoot, "toolchains");
  // Offline: any cached toolchain of this gcc (newest name first).
  const cachedOf = () =>
    existsSync(tcRoot) ? readdirSync(tcRoot).filter((d) => d.includes(`-${cc.pkg}_`) && existsSync(join(tcRoot, d, "ready"))).sort().reverse() : [];
  let dirName: string;
  let suite: string | null = null;
  let version: string | null = null;
  if (!opts.offline) {
    const src = compilerSource(await apt.madison(cc.pkg), cc, kernelSuite);
    if (src) {
      suite = src.suite;
      version = src.version;
    }
  }
  if (suite && version) dirName = `${suite}-${cc.pkg}_${version}`.replace(/[^A-Za-z0-9._+-]/g, "_");
  else {
    const c = cachedOf();
    if (c.length === 0) throw new Error(`the kernel was built with ${cc.text ?? cc.command}; this machine has no ${cc.pkg} and apt knows none`);
    dirName = c[0];
    log(`${cc.pkg}: apt has no source now; using the cached toolchain ${dirName}`);
  }
  const dir = join(tcRoot, dirName);
  let download = 0;
  if (!existsSync(join(dir, "ready"))) {
    if (!suite || !version) throw new Error(`no cached ${cc.pkg} toolchain`);
  }
  await once(dir, async () => {
    if (!suite || !version) throw new Error(`no cached ${cc.pkg} toolchain`);
    log(`${cc.pkg}: unpacking ${cc.pkg}=${version} from ${suite} into ${dir}`);
    ({ download } = await unpackClosure(apt, [`${cc.pkg}=${version}`, "binutils", "libelf1", "zlib1g"], suite, dir, log));
    const root = join(dir, "root");
    const rt = runtimeOf(root);
    if (!rt) throw new Error(`${suite}'s libc6 left no ld-linux-x86-64.so.2 under ${root}`);
    wrapPrograms([join(root, "usr/bin"), join(root, "usr/libexec"), join(root, "usr/lib/gcc")], rt);
    // bin/: the toolchain's programs, with the unprefixed names kbuild may call (as, ld, nm, ...).
    const bin = join(dir, "bin");
    mkdirSync(bin, { recursive: true });
    for (const f of readdirSync(join(root, "usr/bin"))) {
      if (f.endsWith(".real")) continue;
      symlinkSync(join(root, "usr/bin", f), join(bin, f));
      const plain = f.replace(/^x86_64-linux-gnu-/, "");
      if (plain !== f && !existsSync(join(bin, plain)) && !existsSync(join(root, "usr/bin", plain))) symlinkSync(join(root, "usr/bin", f), join(bin, plain));
    }
    writeFileSync(join(dir, "ready"), JSON.stringify({ pkg: cc.pkg, version, suite, loader: rt.loader }) + "\n");
  });
  const root = join(dir, "root");
  const rt = runtimeOf(root);
  if (!rt) throw new Error(`broken toolchain cache ${dir}`);
  const bin = join(dir, "bin");
  const ccPath = [cc.command, cc.pkg, `x86_64-linux-gnu-${cc.pkg}`].map((c) => join(bin, c)).find((p) => existsSync(p));
  if (!ccPath) throw new Error(`${dir} has no ${cc.command}`);
  return { name: dirName, cc: ccPath, path: [bin], runtime: rt, seconds: since(t0), download };
}

/**
 * Wrap the kbuild host tools under `dirs` that need a newer glibc than this machine's through
 * `rt` (or, when rt is null, a runtime of `suite` unpacked into cacheRoot/runtimes). Returns
 * the wrapped paths.
 */
export async function wrapHostTools(
  dirs: readonly string[],
  rt: Runtime | null,
  suite: string | null,
  apt: PrivateApt,
  cacheRoot: string,
  log: (m: string) => void,
): Promise<string[]> {
  const sys = systemGlibc();
  const needs = (elf: Buffer) => {
    const g = glibcRequired(elf);
    return g !== null && versionLess(sys, g);
  };
  const pending = dirs.flatMap((d) => walk(d)).filter((p) => !p.endsWith(".real") && (() => { const e = isElfExecutable(p); return e !== null && needs(e); })());
  if (pending.length === 0) return [];
  let runtime = rt;
  if (!runtime) {
    if (!suite) throw new Error(`kbuild tools need a newer glibc than ${sys} and the kernel's suite is unknown`);
    const dir = join(cacheRoot, "runtimes", suite);
    await once(dir, async () => {
      await unpackClosure(apt, ["libc6", "libelf1", "zlib1g"], suite, dir, log);
      writeFileSync(join(dir, "ready"), "");
    });
    runtime = runtimeOf(join(dir, "root"));
    if (!runtime) throw new Error(`no ld-linux-x86-64.so.2 in ${dir}`);
  }
  log(`wrapping ${pending.length} kbuild host tools (they need glibc > ${sys}) through ${runtime.loader}`);
  return wrapPrograms(dirs, runtime, (elf) => needs(elf));
}
