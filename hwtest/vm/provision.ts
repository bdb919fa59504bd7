/**
 * Kernel provisioning for the VM backend: find a Debian kernel by query, download image and
 * headers with `apt-get download`, extract only what a guest needs (vmlinuz, config, the
 * virtio/9p modules and their dependencies; the headers for the module build), build the test
 * PMU module (hwtest/pmu/) against those headers, and cache the result, so that the second
 * run starts in seconds. See /work/shared/notes/vm-recipe.md for the recipe and its pitfalls.
 *
 * Cache: $AUXSPEC_VM_CACHE, else <project>/.cache/vm/ (gitignored). One folder per release:
 *   manifest.json, vmlinuz, config, modules/NAME.ko (uncompressed), auxspec_pmu.ko,
 *   headers/ (the extracted header packages), build/ (the module's build folder).
 */
import { execFile, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, readdirSync, realpathSync, renameSync, rmSync, statSync, writeFileSync, copyFileSync, openSync, closeSync, fstatSync, readSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { gunzipSync } from "node:zlib";
import {
  GUEST_MODULES, MODULE_CONFIG, REQUIRED_BUILTIN, SERIES, buildDependencies, debField, moduleDepends, moduleLoadOrder,
  moduleName, modinfoField, newestRelease, parseKernelConfig, parseKernelRequest, releaseKey, seriesOf, type Series,
} from "./release.ts";

export const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const PMU_SOURCE_DIR = join(PROJECT_ROOT, "hwtest", "pmu");
const MANIFEST_FORMAT = "auxspec-vm-kernel/2";

export interface ProvisionedKernel {
  /** `uname -r` of the kernel. */
  release: string;
  /** "6.1", "6.12", or null for a custom kernel. */
  series: Series | null;
  /** The Debian package version (e.g. "6.1.170-1"), null for a custom kernel. */
  debVersion: string | null;
  /** The cache folder of this kernel. */
  dir: string;
  vmlinuz: string;
  /** The built test PMU module (auxspec_pmu.ko). */
  moduleKo: string;
  /** Uncompressed .ko files the guest loads before the test PMU, in load order. */
  guestModules: string[];
  /** Wanted modules that are built into this kernel. */
  builtin: string[];
  /** The headers folder the module was built against. */
  headers: string;
  /** What was reused: "all" (nothing done), "kernel" (module rebuilt), "none" (cold). */
  cached: "all" | "kernel" | "none";
  /** Seconds spent, by phase (0 for phases skipped). */
  seconds: { query: number; download: number; extract: number; build: number; total: number };
}

interface Manifest {
  format: typeof MANIFEST_FORMAT;
  release: string;
  series: Series | null;
  debVersion: string | null;
  guestModules: string[];
  builtin: string[];
  headers: string;
  moduleHash: string;
  /** GUEST_MODULES when the cache was made (a change means a fresh extraction). */
  roots: string[];
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

let aptUpdated = false;
async function aptUpdate(log: Log): Promise<void> {
  if (aptUpdated) return;
  if (!isRoot()) throw new Error("the apt package lists lack the kernel packages and `apt-get update` needs root");
  log("apt-get update (package lists are missing or stale)");
  await run("apt-get", ["update", "-q"]);
  aptUpdated = true;
}

async function aptSearch(series: Series): Promise<string> {
  return (await run("apt-cache", ["search", "--names-only", SERIES[series].query])).stdout;
}

async function aptShow(pkg: string): Promise<string | null> {
  try {
    return (await run("apt-cache", ["show", "--no-all-versions", pkg])).stdout;
  } catch {
    return null;
  }
}

/** The newest Debian release of a series, by query (`apt-get update` once when nothing is found). */
export async function findNewestRelease(series: Series, log: Log = () => {}): Promise<string> {
  if (!hasCommand("apt-cache")) throw new Error("no apt-cache on this machine: Debian kernels are found with apt (give --kernel bzImage --headers DIR instead)");
  let found = newestRelease(series, await aptSearch(series));
  if (!found) {
    await aptUpdate(log);
    found = newestRelease(series, await aptSearch(series));
  }
  if (!found) throw new Error(`no linux-image package of series ${series} in the apt lists (query ${SERIES[series].query})`);
  return found;
}

function aptDownloadArgs(): string[] {
  // As root, apt's download sandbox user (_apt) cannot write a root-owned folder; say so plainly.
  return isRoot() ? ["-o", "APT::Sandbox::User=root"] : [];
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

function checkBuiltins(config: Map<string, string> | null, release: string, log: Log): void {
  if (!config) {
    log(`${release}: no kernel config found; assuming ${REQUIRED_BUILTIN.join(", ")} are built in`);
    return;
  }
  const lacking = REQUIRED_BUILTIN.filter((s) => config.get(s) !== "y");
  if (lacking.length) throw new Error(`kernel ${release} lacks ${lacking.map((s) => `${s}=y`).join(", ")}, which the guest needs`);
}

/** Build the test PMU against `headers` in `buildDir`; returns the .ko path. */
async function buildModule(headers: string, buildDir: string, release: string, log: Log): Promise<string> {
  rmSync(buildDir, { recursive: true, force: true });
  mkdirSync(buildDir, { recursive: true });
  for (const f of ["auxspec_pmu.c", "Kbuild"]) copyFileSync(join(PMU_SOURCE_DIR, f), join(buildDir, f));
  log(`${release}: building auxspec_pmu.ko`);
  // 6.12 headers ship vmlinux and would run pahole for BTF; this host has none (vm-recipe.md).
  await run("make", ["-s", "-C", headers, `M=${buildDir}`, "modules", "CONFIG_DEBUG_INFO_BTF_MODULES="]);
  const ko = join(buildDir, "auxspec_pmu.ko");
  if (!existsSync(ko)) throw new Error(`module build produced no ${ko}`);
  const vermagic = modinfoField(readFileSync(ko), "vermagic") ?? "";
  if (!vermagic.startsWith(`${release} `)) throw new Error(`auxspec_pmu.ko has vermagic "${vermagic}", not ${release}`);
  return ko;
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

function fromManifest(dir: string, m: Manifest, cached: ProvisionedKernel["cached"], seconds: ProvisionedKernel["seconds"]): ProvisionedKernel {
  return {
    release: m.release, series: m.series, debVersion: m.debVersion, dir,
    vmlinuz: join(dir, "vmlinuz"), moduleKo: join(dir, "auxspec_pmu.ko"),
    guestModules: m.guestModules.map((p) => join(dir, p)), builtin: m.builtin,
    headers: m.headers.startsWith("/") ? m.headers : join(dir, m.headers), cached, seconds,
  };
}

const since = (t0: number) => Math.round((performance.now() - t0) / 10) / 100;

async function provisionDebian(release: string, log: Log, t0: number, tQuery: number): Promise<ProvisionedKernel> {
  const series = seriesOf(release);
  const dir = join(cacheRoot(), release);
  const hash = moduleSourceHash();
  const m = readManifest(dir);
  if (m && existsSync(join(dir, "vmlinuz")) && m.roots?.join() === GUEST_MODULES.join()) {
    if (m.moduleHash === hash && existsSync(join(dir, "auxspec_pmu.ko"))) {
      return fromManifest(dir, m, "all", { query: tQuery, download: 0, extract: 0, build: 0, total: since(t0) });
    }
    const tb = performance.now();
    const ko = await buildModule(join(dir, m.headers), join(dir, "build"), release, log);
    copyFileSync(ko, join(dir, "auxspec_pmu.ko"));
    writeManifest(dir, { ...m, moduleHash: hash });
    return fromManifest(dir, { ...m, moduleHash: hash }, "kernel", { query: tQuery, download: 0, extract: 0, build: since(tb), total: since(t0) });
  }

  // Cold: work in a fresh folder and rename it into place at the end (a crash leaves no half cache).
  mkdirSync(cacheRoot(), { recursive: true });
  const work = `${dir}.tmp-${process.pid}`;
  rmSync(work, { recursive: true, force: true });
  mkdirSync(join(work, "debs"), { recursive: true });
  try {
    const image = `linux-image-${release}`;
    const headersPkg = `linux-headers-${release}`;
    let show = await aptShow(headersPkg);
    if (!show) {
      await aptUpdate(log);
      show = await aptShow(headersPkg);
    }
    if (!show) throw new Error(`apt knows no package ${headersPkg}`);
    const imageShow = await aptShow(image);
    if (!imageShow) throw new Error(`apt knows no package ${image}`);
    const debVersion = debField(imageShow, "Version");
    const deps = buildDependencies(debField(show, "Depends") ?? "");
    const pkgs = [image, headersPkg, ...deps];
    const td = performance.now();
    log(`${release}: apt-get download ${pkgs.join(" ")}`);
    await run("apt-get", [...aptDownloadArgs(), "download", ...pkgs], { cwd: join(work, "debs") });
    const download = since(td);
    const debs = readdirSync(join(work, "debs")).filter((f) => f.endsWith(".deb"));
    const imageDeb = debs.find((f) => f.startsWith(`${image}_`));
    if (!imageDeb) throw new Error(`apt-get download left no ${image}_*.deb`);

    const te = performance.now();
    log(`${release}: extracting`);
    const root = join(work, "image");
    // The usual homes of the guest's modules and their dependencies (9p needs netfs, and
    // fscache on 6.1); a dependency found elsewhere costs a second pass (resolveGuestModules).
    const firstPass = [
      "*/boot/vmlinuz-*", "*/boot/config-*", "*/modules/*/kernel/drivers/virtio/*", "*/modules/*/kernel/net/9p/*",
      "*/modules/*/kernel/fs/9p/*", "*/modules/*/kernel/fs/netfs/*", "*/modules/*/kernel/fs/fscache/*",
      "*/modules/*/kernel/drivers/char/virtio_console.ko*",
    ];
    const hdrRoot = join(work, "headers");
    // Image and header packages unpack in parallel (xz is the cost).
    const headersDone = Promise.all(debs.filter((f) => f !== imageDeb).map((f) => run("dpkg", ["-x", join(work, "debs", f), hdrRoot])));
    headersDone.catch(() => {});
    await extractMembers(join(work, "debs", imageDeb), root, firstPass);
    const vmlinuz = findFiles(root, (p) => /\/boot\/vmlinuz-/.test(p))[0];
    if (!vmlinuz) throw new Error(`${imageDeb} has no /boot/vmlinuz-*`);
    renameSync(vmlinuz, join(work, "vmlinuz"));
    const cfgPath = findFiles(root, (p) => /\/boot\/config-/.test(p))[0];
    const config = cfgPath ? parseKernelConfig(readFileSync(cfgPath, "utf8")) : null;
    if (cfgPath) renameSync(cfgPath, join(work, "config"));
    checkBuiltins(config, release, log);
    const { guestModules, builtin } = await resolveGuestModules(moduleFilesUnder(root), config, join(work, "modules"), async (names) => {
      log(`${release}: second extraction pass for ${names.join(", ")}`);
      const pats = names.map((n) => `*/${n.replace(/_/g, "[-_]")}.ko*`);
      await extractMembers(join(work, "debs", imageDeb), root, pats);
      return moduleFilesUnder(root);
    });
    rmSync(root, { recursive: true, force: true });
    await headersDone;

    const headersRel = join("headers", "usr", "src", headersPkg);
    const headersDir = join(work, headersRel);
    // The headers' Makefile includes the -common tree by absolute path; point it at the copy here.
    const mk = join(headersDir, "Makefile");
    if (!existsSync(mk)) throw new Error(`${headersPkg} has no Makefile at ${mk}`);
    writeFileSync(mk, readFileSync(mk, "utf8").replace(/^include \/usr\/src\//m, `include ${join(dir, "headers", "usr", "src")}/`));
    rmSync(join(work, "debs"), { recursive: true, force: true });
    const extract = since(te);

    // The build runs in the final place (the Makefile now names it), so rename first.
    rmSync(dir, { recursive: true, force: true });
    renameSync(work, dir);
    const tb = performance.now();
    const ko = await buildModule(join(dir, headersRel), join(dir, "build"), release, log);
    copyFileSync(ko, join(dir, "auxspec_pmu.ko"));
    const manifest: Manifest = {
      format: MANIFEST_FORMAT, release, series, debVersion,
      guestModules: guestModules.map((p) => p.slice(work.length + 1)), builtin, headers: headersRel, moduleHash: hash, roots: [...GUEST_MODULES],
    };
    writeManifest(dir, manifest);
    return fromManifest(dir, manifest, "none", { query: tQuery, download, extract, build: since(tb), total: since(t0) });
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
    return fromManifest(dir, m, "all", { query: 0, download: 0, extract: 0, build: 0, total: since(t0) });
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
  const available = modRoot ? moduleFilesUnder(modRoot) : new Map<string, string>();
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
  return fromManifest(dir, manifest, "none", { query: 0, download: 0, extract: 0, build: since(tb), total: since(t0) });
}

/**
 * Provision a kernel for the VM backend.
 * - "6.1" / "6.12": the newest Debian package of that series, found by query.
 * - a full Debian release ("6.1.0-47-amd64", "6.12.100+deb12-amd64"): that one.
 * - "custom": opts.bzImage and opts.headers (a configured build or headers tree).
 * A second call with the same kernel reuses the cache (manifest.json) and takes well under a second.
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
  if (req.kind === "release") return provisionDebian(req.release, log, t0, since(t0));
  // A series resolves by query on every call; when the newest is already cached the query is
  // the only cost (apt-cache is local, under a second). Offline (no lists, no download), the
  // newest release of the series already in the cache stands in, with a log line saying so.
  const series = req.series;
  try {
    const release = await findNewestRelease(series, log);
    log(`${kernel}: newest Debian package is ${release}`);
    return await provisionDebian(release, log, t0, since(t0));
  } catch (e) {
    const cached = cachedReleases(series);
    if (cached.length === 0) throw e;
    const fallback = cached[cached.length - 1];
    log(`${kernel}: ${(e as Error).message.split("\n")[0]}; using the cached ${fallback}`);
    return provisionDebian(fallback, log, t0, since(t0));
  }
}

/** Releases of a series with a complete cache entry, oldest first. */
export function cachedReleases(series: Series): string[] {
  if (!existsSync(cacheRoot())) return [];
  return readdirSync(cacheRoot())
    .filter((d) => seriesOf(d) === series && readManifest(join(cacheRoot(), d)) !== null && existsSync(join(cacheRoot(), d, "vmlinuz")))
    .sort((a, b) => (releaseKey(series, a) ?? 0) - (releaseKey(series, b) ?? 0));
}
