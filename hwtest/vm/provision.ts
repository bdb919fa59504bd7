/**
 * Kernel provisioning for the VM backend: find any Debian kernel (5.10 ... 7.3) by query in a
 * private apt configuration (apt.ts: bullseye to sid, the machine's own archive URIs), download
 * its packages with `apt-get download` (the layout differs by era: release.ts kernelLayout),
 * extract only what a guest needs (vmlinuz, config, the virtio/9p modules and their
 * dependencies; the headers for the module build), build the test PMU module (hwtest/pmu/)
 * against those headers with the kernel's own compiler (toolchain.ts), and cache the result, so
 * that the second run starts in seconds. A release without headers in the archive boots without
 * the test PMU. See /work/shared/notes/vm-recipe.md and kernel-timeline.md.
 *
 * Cache: $AUXSPEC_VM_CACHE, else <project>/.cache/vm/ (gitignored). One folder per release:
 *   manifest.json, vmlinuz, config, modules/NAME.ko (uncompressed), auxspec_pmu.ko,
 *   headers/ (the extracted header packages), build/ (the module's build folder);
 *   apt/ (the private apt configuration and lists), toolchains/ (compilers of other suites).
 */
import { execFile, execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, readdirSync, realpathSync, renameSync, rmSync, statSync, writeFileSync, copyFileSync, openSync, closeSync, fstatSync, readSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { gunzipSync } from "node:zlib";
import {
  GUEST_MODULES, MODULE_CONFIG, REQUIRED_BUILTIN, buildDependencies, compareReleases, debField, kernelLayout, moduleDepends,
  moduleClosureFromDep, moduleLoadOrder, moduleName, modinfoField, newestRelease, parseModulesDep, parseKernelConfig, parseKernelRequest, parseModulesBuiltin, pickKernelFile,
  seriesOf, seriesQuery, suiteOfRelease, type Series,
} from "./release.ts";
import { PrivateApt } from "./apt.ts";
import { bzImagePayload } from "./pvh.ts";
import { kernelCompiler, provisionToolchain, wrapHostTools, type KernelCompiler, type Toolchain } from "./toolchain.ts";

export const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const PMU_SOURCE_DIR = join(PROJECT_ROOT, "hwtest", "pmu");
const MANIFEST_FORMAT = "auxspec-vm-kernel/2";

export interface ProvisionedKernel {
  /** `uname -r` of the kernel. */
  release: string;
  /** "5.10", "6.1", ..., "7.3", or null for a custom kernel. */
  series: Series | null;
  /** The Debian package version (e.g. "6.1.170-1"), null for a custom kernel. */
  debVersion: string | null;
  /** The cache folder of this kernel. */
  dir: string;
  vmlinuz: string;
  /** The built test PMU module (auxspec_pmu.ko); null when the archive has no headers for this kernel. */
  moduleKo: string | null;
  /** Uncompressed .ko files the guest loads before the test PMU, in load order. */
  guestModules: string[];
  /** Wanted modules that are built into this kernel. */
  builtin: string[];
  /** The headers folder the module was built against; null without headers. */
  headers: string | null;
  /** The compiler the module was built with ("system gcc-12", "trixie-gcc-14_14.2.0-19"), null without headers. */
  compiler: string | null;
  /** What was reused: "all" (nothing done), "kernel" (module rebuilt), "none" (cold). */
  cached: "all" | "kernel" | "none";
  /** Seconds spent, by phase (0 for phases skipped); toolchain counts unpacking a compiler (its download is in download). */
  seconds: { query: number; download: number; extract: number; toolchain: number; build: number; total: number };
  /** Things worth telling the user (no headers, offline, a compiler from another suite). */
  notes: string[];
  /**
   * Whether the guest can mount the 9p shares (the 9p modules were found or are built in).
   * False for a release whose archive has no linux-modules-R (6.19, 7.0, 7.1 in Dec 2026): it
   * boots with the C agent only (no 9p in the guest); agent "ts" is refused.
   */
  ninep: boolean;
}

interface Manifest {
  format: typeof MANIFEST_FORMAT;
  release: string;
  series: Series | null;
  debVersion: string | null;
  guestModules: string[];
  builtin: string[];
  /** Relative to the kernel's folder, or absolute (custom); null: no headers, no test PMU. */
  headers: string | null;
  /** The kernel's compiler as its headers name it (absent in caches made before 5.10/7.x support: the system's). */
  compiler?: KernelCompiler | null;
  /** The Debian suite of the release (for the toolchain's source). */
  suite?: string | null;
  /** What built the module ("gcc-14 14.2.0-19 (trixie-gcc-14_14.2.0-19, unpacked)"). */
  compilerUsed?: string;
  moduleHash: string;
  /** GUEST_MODULES when the cache was made (a change means a fresh extraction). */
  roots: string[];
  /** false: no 9p modules (no linux-modules-R in the archive): C agent only. Absent: true. */
  ninep?: boolean;
}

type Log = (msg: string) => void;

export function cacheRoot(): string {
  return process.env.AUXSPEC_VM_CACHE ? resolve(process.env.AUXSPEC_VM_CACHE) : join(PROJECT_ROOT, ".cache", "vm");
}

function run(cmd: string, args: readonly string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<{ stdout: string; stderr: string }> {
  return new Promise((res, rej) => {
    execFile(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err) {
        const e = new Error(`${cmd} ${args.join(" ")} failed: ${(stderr || err.message).trim().split("\n").slice(-15).join("\n")}`);
        (e as Error & { stdout?: string; stderr?: string; code?: unknown }).stdout = stdout;
        (e as Error & { stderr?: string }).stderr = stderr;
        (e as Error & { code?: unknown }).code = (err as NodeJS.ErrnoException).code;
        rej(e);
      } else res({ stdout, stderr });
    });
  });
}

function hasCommand(cmd: string): boolean {
  for (const d of (process.env.PATH ?? "/usr/bin:/bin").split(":")) {
    if (d && existsSync(join(d, cmd))) return true;
  }
  return false;
}

const isRoot = () => typeof process.getuid === "function" && process.getuid() === 0;

/** Hash of the test PMU's sources: a change rebuilds the module, nothing else. */
export function moduleSourceHash(): string {
  const h = createHash("sha256");
  for (const f of ["auxspec_pmu.c", "Kbuild"]) h.update(f).update(readFileSync(join(PMU_SOURCE_DIR, f)));
  return h.digest("hex").slice(0, 16);
}

let privateApt: PrivateApt | null = null;
/** The private apt configuration in <cache>/apt (apt.ts). */
export function cacheApt(log: Log = () => {}): PrivateApt {
  const dir = join(cacheRoot(), "apt");
  if (!privateApt || privateApt.dir !== dir) privateApt = new PrivateApt(dir, log);
  return privateApt;
}

/**
 * The newest Debian release of a series, by query in the private lists (updated when older than
 * a day, and once more when the series is not found). `offline` says the archive was unreachable.
 */
export async function findNewestRelease(series: Series, log: Log = () => {}): Promise<{ release: string; offline: boolean }> {
  if (!hasCommand("apt-cache")) throw new Error("no apt-cache on this machine: Debian kernels are found with apt (give --kernel bzImage --headers DIR instead)");
  if (!isRoot() && cacheApt(log).listsAgeMs() === Infinity) throw new Error("no private apt lists yet and `apt-get update` into them needs root");
  const apt = cacheApt(log);
  let state = await apt.update();
  let found = newestRelease(series, await apt.search(seriesQuery(series)));
  if (!found && state === "reused") {
    state = await apt.update(true);
    found = newestRelease(series, await apt.search(seriesQuery(series)));
  }
  if (!found) throw new Error(`no linux-image/linux-binary package of series ${series} in the apt lists (query ${seriesQuery(series)})`);
  return { release: found, offline: state === "offline" };
}

/** Extract members matching `patterns` from a .deb's data archive; members missing are tolerated. */
async function extractMembers(deb: string, dest: string, patterns: readonly string[]): Promise<void> {
  mkdirSync(dest, { recursive: true });
  const script = 'set -o pipefail; deb="$1"; dest="$2"; shift 2; dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$dest" --wildcards "$@"';
  try {
    await run("bash", ["-c", script, "extract", deb, dest, ...patterns]);
  } catch (e) {
    const stderr = (e as { stderr?: string }).stderr ?? "";
    const serious = stderr.split("\n").filter((l) => l.trim() && !/Not found in archive|Exiting with failure status due to previous errors/.test(l));
    if (serious.length > 0) throw e;
  }
}

function findFiles(root: string, pred: (path: string) => boolean): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    if (!existsSync(d)) return;
    for (const ent of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, ent.name);
      if (ent.isDirectory()) walk(p);
      else if (pred(p)) out.push(p);
    }
  };
  walk(root);
  return out;
}

async function readModule(path: string): Promise<Buffer> {
  if (path.endsWith(".ko")) return readFileSync(path);
  if (path.endsWith(".ko.gz")) return gunzipSync(readFileSync(path));
  if (path.endsWith(".ko.xz")) return decompress("xz", path);
  if (path.endsWith(".ko.zst")) return decompress("zstd", path);
  throw new Error(`unknown module file type: ${path}`);
}

function decompress(tool: "xz" | "zstd", path: string): Promise<Buffer> {
  return new Promise((res, rej) => {
    const p = spawn(tool, ["-dc", path], { stdio: ["ignore", "pipe", "pipe"] });
    const chunks: Buffer[] = [];
    let err = "";
    p.stdout.on("data", (c: Buffer) => chunks.push(c));
    p.stderr.on("data", (c: Buffer) => (err += c.toString()));
    p.on("error", (e) => rej(new Error(`${tool} is needed to decompress ${path}: ${e.message}`)));
    p.on("close", (code) => (code === 0 ? res(Buffer.concat(chunks)) : rej(new Error(`${tool} -dc ${path}: ${err.trim()}`))));
  });
}

/**
 * Resolve the guest's virtio/9p modules: `available` maps module names to files found so far;
 * `fetchMore(names)` may make more names available (a second extraction pass) and returns the
 * new map. Writes uncompressed copies to outDir/NAME.ko. Wanted modules without a file must be
 * built in (config =y), else this throws.
 */
async function resolveGuestModules(
  available: Map<string, string>,
  config: Map<string, string> | null,
  outDir: string,
  fetchMore: (names: string[]) => Promise<Map<string, string>>,
): Promise<{ guestModules: string[]; builtin: string[] }> {
  const images = new Map<string, Buffer>();
  for (let pass = 0; pass < 4; pass++) {
    const missingDeps = new Set<string>();
    for (const [name, path] of available) if (!images.has(name)) images.set(name, await readModule(path));
    const { order, absent } = moduleLoadOrder(GUEST_MODULES, (name) => {
      const img = images.get(name);
      return img ? moduleDepends(img) : null;
    });
    const rootsAbsent = new Set<string>(GUEST_MODULES);
    const missing = absent.filter((n) => !rootsAbsent.has(n));
    for (const n of missing) missingDeps.add(n);
    if (missingDeps.size === 0) {
      const builtin: string[] = [];
      for (const n of absent) {
        const sym = MODULE_CONFIG[n];
        const v = sym && config ? config.get(sym) : undefined;
        if (config && v !== "y") throw new Error(`the kernel has neither a ${n} module nor ${sym}=y: the guest cannot mount its 9p shares`);
        builtin.push(n);
      }
      mkdirSync(outDir, { recursive: true });
      const guestModules = order.map((n) => {
        const p = join(outDir, `${n}.ko`);
        writeFileSync(p, images.get(n)!);
        return p;
      });
      return { guestModules, builtin };
    }
    available = await fetchMore([...missingDeps]);
    if ([...missingDeps].every((n) => !available.has(n))) throw new Error(`module dependencies not found in the kernel package: ${[...missingDeps].join(", ")}`);
  }
  throw new Error("module dependencies did not resolve after 4 extraction passes");
}

function moduleFilesUnder(root: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const p of findFiles(root, (f) => /\.ko(\.(xz|zst|gz))?$/.test(f))) m.set(moduleName(p), p);
  return m;
}

/** A guest without any module: virtio_pci and virtio_console must be in the image (the C agent's channel). */
function noModulesGuest(vmlinuz: string, release: string): { guestModules: string[]; builtin: string[] } {
  const want = ["virtio_pci", "virtio_console"];
  const found = namesInKernelImage(vmlinuz, want);
  if (!found) throw new Error(`the archive has no linux-modules-${release} and no config, and the kernel image could not be decompressed to check that virtio_pci and virtio_console are built in`);
  const lacking = want.filter((n) => !found.has(n));
  if (lacking.length) throw new Error(`the archive has no linux-modules-${release}, and the kernel image has no built-in ${lacking.join(", ")}: the guest has no channel to its agent`);
  return { guestModules: [], builtin: want };
}

function checkBuiltins(config: Map<string, string> | null, release: string, log: Log): void {
  if (!config) {
    log(`${release}: no kernel config found; assuming ${REQUIRED_BUILTIN.join(", ")} are built in`);
    return;
  }
  const lacking = REQUIRED_BUILTIN.filter((s) => config.get(s) !== "y");
  if (lacking.length) throw new Error(`kernel ${release} lacks ${lacking.map((s) => `${s}=y`).join(", ")}, which the guest needs`);
}

/** Build the test PMU against `headers` in `buildDir` with `tc` (the system's gcc when null); returns the .ko path. */
async function buildModule(headers: string, buildDir: string, release: string, log: Log, tc: Toolchain | null = null): Promise<string> {
  rmSync(buildDir, { recursive: true, force: true });
  mkdirSync(buildDir, { recursive: true });
  for (const f of ["auxspec_pmu.c", "Kbuild"]) copyFileSync(join(PMU_SOURCE_DIR, f), join(buildDir, f));
  log(`${release}: building auxspec_pmu.ko${tc && tc.name !== "system" ? ` with ${tc.name}` : ""}`);
  // 6.12+ headers ship vmlinux and would run pahole for BTF; this host has none (vm-recipe.md).
  const args = ["-s", "-C", headers, `M=${buildDir}`, "modules", "CONFIG_DEBUG_INFO_BTF_MODULES="];
  const env = { ...process.env };
  if (tc) {
    args.push(`CC=${tc.cc}`);
    if (tc.path.length) env.PATH = [...tc.path, env.PATH ?? "/usr/bin:/bin"].join(":");
  }
  await run("make", args, { env });
  const ko = join(buildDir, "auxspec_pmu.ko");
  if (!existsSync(ko)) throw new Error(`module build produced no ${ko}`);
  const vermagic = modinfoField(readFileSync(ko), "vermagic") ?? "";
  if (!vermagic.startsWith(`${release} `)) throw new Error(`auxspec_pmu.ko has vermagic "${vermagic}", not ${release}`);
  return ko;
}

/**
 * The headers' compiler, its toolchain (unpacked from its suite when this machine lacks it),
 * and the kbuild host tools wrapped when they need a newer glibc. `offline`: cached toolchains only.
 */
async function prepareBuild(
  headersDir: string, kbuildRoot: string, cc: KernelCompiler | null, suite: string | null, release: string, log: Log, offline = false,
): Promise<{ tc: Toolchain | null; download: number; seconds: number }> {
  const t0 = performance.now();
  const apt = cacheApt(log);
  let tc: Toolchain | null = null;
  let download = 0;
  if (cc) {
    tc = await provisionToolchain(cc, suite, apt, cacheRoot(), (m) => log(`${release}: ${m}`), { offline });
    download = tc.download;
  } else {
    log(`${release}: the headers name no gcc; using the system's`);
  }
  const kbuild = existsSync(kbuildRoot) ? readdirSync(kbuildRoot).filter((d) => d.startsWith("linux-kbuild-")).map((d) => join(kbuildRoot, d)) : [];
  await wrapHostTools(kbuild, tc?.runtime ?? null, suite, apt, cacheRoot(), (m) => log(`${release}: ${m}`));
  return { tc, download, seconds: since(t0) - download };
}

function compilerName(tc: Toolchain | null, cc: KernelCompiler | null | undefined): string {
  const what = cc ? `${cc.pkg}${cc.debVersion ? ` ${cc.debVersion}` : ""}` : "gcc";
  return tc && tc.name !== "system" ? `${what} (${tc.name}, unpacked)` : `${what} (system)`;
}

function readManifest(dir: string): Manifest | null {
  try {
    const m = JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8")) as Manifest;
    return m.format === MANIFEST_FORMAT ? m : null;
  } catch {
    return null;
  }
}

function writeManifest(dir: string, m: Manifest): void {
  writeFileSync(join(dir, "manifest.json.tmp"), JSON.stringify(m, null, 2) + "\n");
  renameSync(join(dir, "manifest.json.tmp"), join(dir, "manifest.json"));
}

function fromManifest(dir: string, m: Manifest, cached: ProvisionedKernel["cached"], seconds: ProvisionedKernel["seconds"], notes: string[] = []): ProvisionedKernel {
  const headers = m.headers === null ? null : m.headers.startsWith("/") ? m.headers : join(dir, m.headers);
  return {
    release: m.release, series: m.series, debVersion: m.debVersion, dir,
    vmlinuz: join(dir, "vmlinuz"), moduleKo: headers ? join(dir, "auxspec_pmu.ko") : null,
    guestModules: m.guestModules.map((p) => join(dir, p)), builtin: m.builtin,
    headers, compiler: headers ? m.compilerUsed ?? compilerName(null, m.compiler) : null,
    cached, seconds,
    notes: [
      ...notes,
      ...(headers ? [] : [`the archive has no linux-headers-${m.release}: no test PMU (software events only)`]),
      ...(m.ninep === false ? [NO_MODULES_NOTE(m.release)] : []),
    ],
    ninep: m.ninep !== false,
  };
}

/** The note a kernel without its modules package carries (and why agent "ts" is refused). */
export const NO_MODULES_NOTE = (release: string) =>
  `the archive has no linux-modules-${release}: no 9p modules, so the guest runs the C agent only (agent "ts" needs the 9p shares); virtio_pci and virtio_console are built in`;

/**
 * Which of `names` occur as strings in the kernel image `vmlinuz` (its bzImage payload
 * decompressed): a built-in driver's KBUILD_MODNAME ("virtio_console") is in the image's
 * rodata, a modular one's is not. null when the payload cannot be read.
 */
export function namesInKernelImage(vmlinuz: string, names: readonly string[]): Set<string> | null {
  const p = bzImagePayload(readFileSync(vmlinuz));
  if (!p) return null;
  let img: Buffer;
  if (p.format === "gzip") img = gunzipSync(p.data);
  else {
    try {
      img = execFileSync(p.tool![0], p.tool!.slice(1), { input: p.data, maxBuffer: 1 << 30, stdio: ["pipe", "pipe", "ignore"] });
    } catch (e) {
      img = (e as { stdout?: Buffer }).stdout ?? Buffer.alloc(0); // the appended size makes the tools exit 1
    }
  }
  if (img.length < 1 << 20) return null;
  return new Set(names.filter((n) => img.includes(Buffer.from(`${n}\0`, "latin1"))));
}

const since = (t0: number) => Math.round((performance.now() - t0) / 10) / 100;

const ZERO = { query: 0, download: 0, extract: 0, toolchain: 0, build: 0 };

async function provisionDebian(release: string, log: Log, t0: number, tQuery: number, offline = false): Promise<ProvisionedKernel> {
  const series = seriesOf(release);
  const dir = join(cacheRoot(), release);
  const hash = moduleSourceHash();
  const m = readManifest(dir);
  const offNote = offline ? ["the archive was unreachable: provisioned from the cache"] : [];
  if (m && existsSync(join(dir, "vmlinuz")) && m.roots?.join() === GUEST_MODULES.join()) {
    if (m.headers === null || (m.moduleHash === hash && existsSync(join(dir, "auxspec_pmu.ko")))) {
      return fromManifest(dir, m, "all", { ...ZERO, query: tQuery, total: since(t0) }, offNote);
    }
    const headersDir = join(dir, m.headers);
    const prep = await prepareBuild(headersDir, join(dir, "headers", "usr", "lib"), m.compiler ?? null, m.suite ?? suiteOfRelease(release), release, log, offline);
    const tb = performance.now();
    const ko = await buildModule(headersDir, join(dir, "build"), release, log, prep.tc);
    copyFileSync(ko, join(dir, "auxspec_pmu.ko"));
    const m2: Manifest = { ...m, moduleHash: hash, compilerUsed: compilerName(prep.tc, m.compiler) };
    writeManifest(dir, m2);
    return fromManifest(dir, m2, "kernel", { ...ZERO, query: tQuery, download: prep.download, toolchain: prep.seconds, build: since(tb), total: since(t0) }, offNote);
  }
  if (offline) throw new Error(`${release} is not in the cache and the archive is unreachable`);

  // Cold: work in a fresh folder and rename it into place at the end (a crash leaves no half cache).
  mkdirSync(cacheRoot(), { recursive: true });
  const work = `${dir}.tmp-${process.pid}`;
  rmSync(work, { recursive: true, force: true });
  mkdirSync(join(work, "debs"), { recursive: true });
  const apt = cacheApt(log);
  const notes: string[] = [];
  const tResolve = performance.now();
  try {
    await apt.update();
    const image = `linux-image-${release}`;
    const names = [image, `linux-binary-${release}`, `linux-modules-${release}`, `linux-base-${release}`, `linux-headers-${release}`];
    const shows = await apt.showMany(names);
    const layout = kernelLayout(release, shows.get(image) ? debField(shows.get(image)!, "Depends") : null, (n) => !!shows.get(n));
    const kernelShow = shows.get(layout.kernelPkg);
    if (!kernelShow) throw new Error(`apt knows neither ${image} nor linux-binary-${release}`);
    const debVersion = debField(kernelShow, "Version");
    const headersShow = layout.headersPkg ? shows.get(layout.headersPkg)! : null;
    const deps = headersShow ? buildDependencies(debField(headersShow, "Depends") ?? "") : [];
    const pkgs = [...new Set([layout.kernelPkg, ...(layout.modulesPkg ? [layout.modulesPkg] : []), ...layout.extraPkgs, ...(layout.headersPkg ? [layout.headersPkg] : []), ...deps])];
    if (layout.missing.length) log(`${release}: not in the archive: ${layout.missing.join(", ")}`);
    const resolveSecs = since(tResolve);
    const td = performance.now();
    log(`${release}: apt-get download ${pkgs.join(" ")}`);
    await apt.download(pkgs, join(work, "debs"));
    const download = since(td);
    const debs = readdirSync(join(work, "debs")).filter((f) => f.endsWith(".deb"));
    const debOf = (pkg: string) => debs.find((f) => f.startsWith(`${pkg}_`)) ?? null;
    const kernelDeb = debOf(layout.kernelPkg);
    if (!kernelDeb) throw new Error(`apt-get download left no ${layout.kernelPkg}_*.deb`);
    const modulesDeb = layout.modulesPkg ? debOf(layout.modulesPkg) : null;
    const headerDebs = [layout.headersPkg, ...deps.map((d) => d.split("=")[0])].filter((x): x is string => !!x).map(debOf).filter((x): x is string => !!x);
    const extraDebs = layout.extraPkgs.map(debOf).filter((x): x is string => !!x);

    const te = performance.now();
    log(`${release}: extracting`);
    const root = join(work, "image");
    const kernelFiles = ["*/boot/vmlinuz-*", "*/boot/config-*", "*/modules/*/vmlinuz", "*/modules/*/config", "*/modules/*/modules.builtin"];
    // The usual homes of the guest's modules and their dependencies (9p needs netfs, and
    // fscache on 6.1); a dependency found elsewhere costs a second pass (resolveGuestModules).
    const moduleFiles = [
      "*/modules/*/kernel/drivers/virtio/*", "*/modules/*/kernel/net/9p/*", "*/modules/*/kernel/fs/9p/*", "*/modules/*/kernel/fs/netfs/*",
      "*/modules/*/kernel/fs/fscache/*", "*/modules/*/kernel/drivers/char/virtio_console.ko*", "*/modules/*/modules.builtin",
    ];
    const hdrRoot = join(work, "headers");
    // Header packages unpack in parallel with the kernel's (xz is the cost).
    const headersDone = Promise.all(headerDebs.map((f) => run("dpkg", ["-x", join(work, "debs", f), hdrRoot])));
    headersDone.catch(() => {});
    await Promise.all([
      extractMembers(join(work, "debs", kernelDeb), root, modulesDeb === kernelDeb ? [...kernelFiles, ...moduleFiles] : kernelFiles),
      ...(modulesDeb && modulesDeb !== kernelDeb ? [extractMembers(join(work, "debs", modulesDeb), root, moduleFiles)] : []),
      ...extraDebs.map((f) => run("dpkg", ["-x", join(work, "debs", f), root])),
    ]);
    const files = findFiles(root, () => true);
    const vmlinuz = pickKernelFile("vmlinuz", files);
    if (!vmlinuz) throw new Error(`${kernelDeb} has neither /boot/vmlinuz-* nor /usr/lib/modules/*/vmlinuz`);
    renameSync(vmlinuz, join(work, "vmlinuz"));
    await headersDone;
    const headersRel = layout.headersPkg ? join("headers", "usr", "src", layout.headersPkg) : null;
    const headersDir = headersRel ? join(work, headersRel) : null;
    let cfgPath = pickKernelFile("config", files);
    if (!cfgPath && headersDir && existsSync(join(headersDir, ".config"))) cfgPath = join(headersDir, ".config");
    const configText = cfgPath ? readFileSync(cfgPath, "utf8") : null;
    const config = configText ? parseKernelConfig(configText) : null;
    if (configText) writeFileSync(join(work, "config"), configText);
    checkBuiltins(config, release, log);
    const builtinPath = pickKernelFile("builtin", files);
    const builtinSet = builtinPath ? parseModulesBuiltin(readFileSync(builtinPath, "utf8")) : null;
    const cfgForModules = config ?? (builtinSet ? new Map([...Object.entries(MODULE_CONFIG)].filter(([n]) => builtinSet.has(n)).map(([, sym]) => [sym, "y"])) : null);
    let resolved: { guestModules: string[]; builtin: string[] };
    let ninep = true;
    if (!layout.modulesPkg && !config && !builtinSet) {
      // No modules package and no config (6.19, 7.0, 7.1): no 9p, but the C agent needs none,
      // only virtio_pci and virtio_console, which the image itself must show to be built in.
      resolved = noModulesGuest(join(work, "vmlinuz"), release);
      ninep = false;
    } else {
      try {
        resolved = await resolveGuestModules(moduleFilesUnder(root), cfgForModules, join(work, "modules"), async (wanted) => {
          if (!modulesDeb) return moduleFilesUnder(root);
          log(`${release}: second extraction pass for ${wanted.join(", ")}`);
          await extractMembers(join(work, "debs", modulesDeb), root, wanted.map((n) => `*/${n.replace(/_/g, "[-_]")}.ko*`));
          return moduleFilesUnder(root);
        });
      } catch (e) {
        if (layout.modulesPkg) throw e;
        // The config says 9p is modular and there is no package to take it from: C agent only.
        if (config && (config.get("CONFIG_VIRTIO_PCI") !== "y" || config.get("CONFIG_VIRTIO_CONSOLE") !== "y")) {
          throw new Error(`the archive has no linux-modules-${release}, and virtio_pci/virtio_console are not built in: the guest has no channel to its agent`);
        }
        resolved = { guestModules: [], builtin: ["virtio_pci", "virtio_console"] };
        ninep = false;
      }
    }
    if (!ninep) log(`${release}: ${NO_MODULES_NOTE(release)}`);
    const { guestModules, builtin } = resolved;
    rmSync(root, { recursive: true, force: true });

    let cc: KernelCompiler | null = null;
    if (headersDir) {
      // The headers' Makefile names the -common tree (and, from 7.x, KBUILD_OUTPUT) by absolute path; point them here.
      const mk = join(headersDir, "Makefile");
      if (!existsSync(mk)) throw new Error(`${layout.headersPkg} has no Makefile at ${mk}`);
      const mkText = readFileSync(mk, "utf8");
      writeFileSync(mk, mkText.replace(/(^|[\s=])\/usr\/src\//gm, `$1${join(dir, "headers", "usr", "src")}/`));
      const autoConf = join(headersDir, "include", "config", "auto.conf");
      cc = kernelCompiler(configText ?? (existsSync(autoConf) ? readFileSync(autoConf, "utf8") : null), mkText);
    } else {
      notes.push(`the archive has no linux-headers-${release}: no test PMU (software events only)`);
    }
    rmSync(join(work, "debs"), { recursive: true, force: true });
    const extract = since(te);

    // The build runs in the final place (the Makefile now names it), so rename first.
    rmSync(dir, { recursive: true, force: true });
    renameSync(work, dir);
    const suite = suiteOfRelease(release);
    let prep = { tc: null as Toolchain | null, download: 0, seconds: 0 };
    let build = 0;
    if (headersRel) {
      prep = await prepareBuild(join(dir, headersRel), join(dir, "headers", "usr", "lib"), cc, suite, release, log);
      const tb = performance.now();
      const ko = await buildModule(join(dir, headersRel), join(dir, "build"), release, log, prep.tc);
      copyFileSync(ko, join(dir, "auxspec_pmu.ko"));
      build = since(tb);
    }
    const manifest: Manifest = {
      format: MANIFEST_FORMAT, release, series, debVersion, suite, compiler: cc, ...(headersRel ? { compilerUsed: compilerName(prep.tc, cc) } : {}),
      guestModules: guestModules.map((p) => p.slice(work.length + 1)), builtin, headers: headersRel, moduleHash: hash, roots: [...GUEST_MODULES],
      ...(ninep ? {} : { ninep: false }),
    };
    writeManifest(dir, manifest);
    return fromManifest(dir, manifest, "none", { query: Math.round((tQuery + resolveSecs) * 100) / 100, download: Math.round((download + prep.download) * 100) / 100, extract, toolchain: prep.seconds, build, total: since(t0) }, notes.filter((n) => !n.startsWith("the archive has no linux-headers")));
  } catch (e) {
    rmSync(work, { recursive: true, force: true });
    throw e;
  }
}

/**
 * Why `path` is not a bootable x86 bzImage, or null: the boot protocol's setup header carries
 * the magic "HdrS" at offset 0x202 (Documentation/arch/x86/boot.rst).
 */
export function checkBzImage(path: string): string | null {
  let fd: number;
  try { fd = openSync(path, "r"); } catch (e) { return `cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`; }
  try {
    if (!fstatSync(fd).isFile()) return `${path} is not a regular file`;
    const buf = Buffer.alloc(4);
    const n = readSync(fd, buf, 0, 4, 0x202);
    return n === 4 && buf.toString("latin1") === "HdrS" ? null : `${path} is not a bzImage (no "HdrS" setup header magic at offset 0x202)`;
  } catch (e) {
    return `cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`;
  } finally {
    closeSync(fd);
  }
}

/** A user's own kernel: `bzImage` plus a configured headers/build tree (modules in ../kernel if any). */
async function provisionCustom(bzImage: string, headers: string, log: Log, t0: number): Promise<ProvisionedKernel> {
  if (!existsSync(bzImage)) throw new Error(`no kernel image at ${bzImage}`);
  const notKernel = checkBzImage(bzImage); // before anything is cached
  if (notKernel) throw new Error(notKernel);
  if (!existsSync(join(headers, "Makefile"))) throw new Error(`${headers} is not a kernel build or headers tree (no Makefile)`);
  const relFile = join(headers, "include", "config", "kernel.release");
  if (!existsSync(relFile)) throw new Error(`${relFile} is missing: is ${headers} a configured kernel tree?`);
  const release = readFileSync(relFile, "utf8").trim();
  const st = statSync(bzImage);
  const key = createHash("sha256").update(realpathSync(bzImage)).update(String(st.size)).update(String(st.mtimeMs)).update(realpathSync(headers)).digest("hex").slice(0, 12);
  const dir = join(cacheRoot(), `custom-${release}-${key}`);
  const hash = moduleSourceHash();
  const m = readManifest(dir);
  if (m && m.moduleHash === hash && m.roots?.join() === GUEST_MODULES.join() && existsSync(join(dir, "auxspec_pmu.ko"))) {
    return fromManifest(dir, m, "all", { ...ZERO, total: since(t0) });
  }
  mkdirSync(dir, { recursive: true });
  copyFileSync(bzImage, join(dir, "vmlinuz"));
  const cfgFile = join(headers, ".config");
  const config = existsSync(cfgFile) ? parseKernelConfig(readFileSync(cfgFile, "utf8")) : null;
  checkBuiltins(config, release, log);
  // Where the kernel's own modules may be: /lib/modules/R/build -> /lib/modules/R/kernel (a
  // distribution's layout), or the build tree itself after `make modules`.
  const realHeaders = realpathSync(headers);
  const candidates = [join(headers, "..", "kernel"), join(realHeaders, "..", "kernel"), join("/lib/modules", release, "kernel")];
  let modRoot = candidates.find((c) => existsSync(c)) ?? null;
  if (!modRoot && existsSync(join(realHeaders, "fs")) && existsSync(join(realHeaders, "drivers"))) modRoot = realHeaders;
  let available = modRoot ? moduleFilesUnder(modRoot) : new Map<string, string>();
  // With depmod's modules.dep beside the tree, only the guest's modules and their dependencies
  // are read (and decompressed), not all of them.
  const depFile = modRoot ? join(modRoot, "..", "modules.dep") : null;
  if (depFile && existsSync(depFile)) {
    const builtinFile = join(modRoot!, "..", "modules.builtin");
    const closure = moduleClosureFromDep(GUEST_MODULES, parseModulesDep(readFileSync(depFile, "utf8")), existsSync(builtinFile) ? parseModulesBuiltin(readFileSync(builtinFile, "utf8")) : new Set());
    const wanted = new Set(closure.order);
    available = new Map([...available].filter(([n]) => wanted.has(n)));
  }
  log(modRoot ? `${release}: modules from ${modRoot} (${available.size} found)` : `${release}: no module tree found next to ${headers}; virtio, virtio_console and 9p must be built in`);
  const { guestModules, builtin } = await resolveGuestModules(available, config, join(dir, "modules"), async () => available);
  const tb = performance.now();
  const ko = await buildModule(headers, join(dir, "build"), release, log);
  copyFileSync(ko, join(dir, "auxspec_pmu.ko"));
  const manifest: Manifest = {
    format: MANIFEST_FORMAT, release, series: seriesOf(release), debVersion: null,
    guestModules: guestModules.map((p) => p.slice(dir.length + 1)), builtin, headers: realHeaders, moduleHash: hash, roots: [...GUEST_MODULES],
  };
  writeManifest(dir, manifest);
  return fromManifest(dir, manifest, "none", { ...ZERO, build: since(tb), total: since(t0) });
}

/**
 * Provision a kernel for the VM backend.
 * - a series ("5.10", "6.1", "6.12", "6.16", ..., "7.3"): the newest Debian package of it, by query.
 * - a full Debian release ("5.10.0-46-amd64", "6.1.0-57-amd64", "6.12.117+deb12-amd64", "7.3.4+deb13-amd64"): that one.
 * - "custom": opts.bzImage and opts.headers (a configured build or headers tree).
 * A second call with the same kernel reuses the cache (manifest.json) and takes about a second.
 * Offline (the archive unreachable), a series resolves to its newest cached release.
 */
export async function provisionKernel(
  kernel: string,
  log: Log = () => {},
  opts: { bzImage?: string; headers?: string } = {},
): Promise<ProvisionedKernel> {
  const t0 = performance.now();
  const req = parseKernelRequest(kernel);
  if (req.kind === "custom") {
    if (!opts.bzImage || !opts.headers) throw new Error('kernel "custom" needs bzImage and headers');
    return provisionCustom(resolve(opts.bzImage), resolve(opts.headers), log, t0);
  }
  for (const tool of ["apt-get", "dpkg-deb", "dpkg", "tar", "make"]) {
    if (!hasCommand(tool)) throw new Error(`provisioning a Debian kernel needs ${tool}, which this machine lacks`);
  }
  if (req.kind === "release") {
    const m = readManifest(join(cacheRoot(), req.release));
    // A cached release needs no apt at all (offline included).
    if (m) {
      try {
        return await provisionDebian(req.release, log, t0, 0, false);
      } catch (e) {
        log(`${req.release}: ${(e as Error).message.split("\n")[0]}`);
        throw e;
      }
    }
    return provisionDebian(req.release, log, t0, 0);
  }
  // A series resolves by query on every call (apt-cache on the private lists, about a second);
  // offline (no lists, no download), the newest cached release of the series stands in.
  const series = req.series;
  let found: { release: string; offline: boolean } | null = null;
  let why = "";
  try {
    found = await findNewestRelease(series, log);
    log(`${kernel}: newest Debian package is ${found.release}${found.offline ? " (lists from the cache: the archive is unreachable)" : ""}`);
  } catch (e) {
    why = (e as Error).message.split("\n")[0];
  }
  const tQuery = since(t0);
  if (found) {
    try {
      const k = await provisionDebian(found.release, log, t0, tQuery, false);
      if (found.offline) k.notes.push("the archive was unreachable: the package lists and this kernel came from the cache");
      return k;
    } catch (e) {
      why = (e as Error).message.split("\n")[0];
      if (!found.offline && !/fetch|resolve|connect|unreachable|Temporary failure|Could not/i.test(why)) throw e;
    }
  }
  const cached = cachedReleases(series);
  if (cached.length === 0) {
    if (found?.offline) throw new Error(`cannot provision ${kernel}: the archive is unreachable and no ${series} kernel is cached (${found.release} is the newest the cached lists name)`);
    throw new Error(`cannot provision ${kernel}: ${why}`);
  }
  const fallback = cached[cached.length - 1];
  log(`${kernel}: ${why}; offline: using the cached ${fallback}`);
  return provisionDebian(fallback, log, t0, tQuery, true);
}

/** Releases of a series with a complete cache entry, oldest first. */
export function cachedReleases(series: Series): string[] {
  if (!existsSync(cacheRoot())) return [];
  return readdirSync(cacheRoot())
    .filter((d) => seriesOf(d) === series && readManifest(join(cacheRoot(), d)) !== null && existsSync(join(cacheRoot(), d, "vmlinuz")))
    .sort(compareReleases);
}
