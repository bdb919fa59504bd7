/**
 * Pure helpers of the VM backend: kernel names, apt output, module metadata, initramfs
 * contents. Nothing here touches the disk or runs a process, so test/vm/unit.test.ts can
 * check all of it without QEMU.
 */

/**
 * A kernel series: "major.minor" ("5.10", "6.1", "6.12", "6.16", ..., "7.3"). Any such string
 * is accepted; whether Debian ships it is a question for apt (kernel-timeline.md).
 */
export type Series = string;

/** Every series Debian has shipped a kernel of, 5.10 to 7.3 (Dec 2026; kernel-timeline.md): `--kernels all`. */
export const DEBIAN_SERIES: readonly Series[] = ["5.10", "6.1", "6.12", "6.16", "6.17", "6.18", "6.19", "7.0", "7.1", "7.2", "7.3"];

export type KernelRequest =
  | { kind: "series"; series: Series }
  | { kind: "release"; release: string }
  | { kind: "custom" };

/**
 * Debian's plain amd64 kernel releases (what `uname -r` says), by era:
 *   5.10.0-46-amd64, 6.1.0-57-amd64 (ABI number),
 *   6.1.0-0.deb11.52-amd64 (a backport to the previous stable),
 *   6.12.117+deb12-amd64, 6.12.115+deb13.1-amd64, 7.3.4+deb13-amd64, 7.2.13+deb14-amd64 (upstream
 *   patch level + the Debian release it targets).
 * Other flavours (-cloud-amd64, -rt-amd64: no 9p in cloud) and -dbg/-unsigned packages do not match.
 */
const RELEASE_RE = /^((\d+)\.(\d+))\.(\d+)(?:-(\d+)|-0\.deb(\d+)\.(\d+)|\+deb(\d+)(?:\.(\d+))?)-amd64$/;

/**
 * Classify the `kernel` argument of vmBackend/provisionKernel: a series ("5.10", "6.1", "7.3"),
 * a full Debian release (what `uname -r` says in the guest), or "custom" (bzImage + headers).
 */
export function parseKernelRequest(kernel: string): KernelRequest {
  const k = kernel.trim();
  if (k === "custom") return { kind: "custom" };
  if (/^[1-9]\d*\.\d+$/.test(k)) return { kind: "series", series: k };
  const bare = k.replace(/^linux-(image|binary)-/, "");
  if (RELEASE_RE.test(bare)) return { kind: "release", release: bare };
  throw new Error(
    `unknown kernel ${JSON.stringify(kernel)}: give a series ("5.10", "6.1", "6.12", ..., "7.3"), a Debian ` +
      `release such as "5.10.0-46-amd64", "6.1.0-57-amd64", "6.12.117+deb12-amd64" or "7.3.4+deb13-amd64", ` +
      `or "custom" with bzImage and headers`,
  );
}

/**
 * The ordering key of a Debian release: numbers compared in order. 6.1.0-57 > 6.1.0-0.deb11.52
 * (the backport's ABI 0 sorts first), 6.12.118+deb13 > 6.12.117+deb12, 6.12.115+deb13.1 >
 * 6.12.115+deb13. Null when `release` is not a Debian amd64 release.
 */
export function releaseKey(release: string): number[] | null {
  const m = RELEASE_RE.exec(release);
  if (!m) return null;
  const n = (x: string | undefined) => (x === undefined ? 0 : Number(x));
  const patch = Number(m[4]);
  if (m[5] !== undefined) return [Number(m[2]), Number(m[3]), patch, Number(m[5]), 0, 0];
  if (m[6] !== undefined) return [Number(m[2]), Number(m[3]), patch, 0, Number(m[6]), Number(m[7])];
  return [Number(m[2]), Number(m[3]), patch, 0, n(m[8]), n(m[9])];
}

export function compareReleases(a: string, b: string): number {
  const ka = releaseKey(a) ?? [];
  const kb = releaseKey(b) ?? [];
  for (let i = 0; i < Math.max(ka.length, kb.length); i++) {
    const d = (ka[i] ?? -1) - (kb[i] ?? -1);
    if (d !== 0) return d;
  }
  return 0;
}

/** Which series a Debian release belongs to ("7.3" for 7.3.4+deb13-amd64), or null. */
export function seriesOf(release: string): Series | null {
  return RELEASE_RE.exec(release)?.[1] ?? null;
}

/** The `apt-cache search --names-only` regex that lists a series' kernel packages (image and 6.19+ binary). */
export function seriesQuery(series: Series): string {
  return `^linux-(image|binary)-${series.replace(".", "\\.")}\\.[0-9].*-amd64$`;
}

/**
 * From `apt-cache search --names-only` output ("pkg - description" lines), the newest plain
 * amd64 release of the series (image or binary package), or null.
 */
export function newestRelease(series: Series, aptSearchOutput: string): string | null {
  let best: string | null = null;
  for (const r of releasesIn(aptSearchOutput)) {
    if (seriesOf(r) !== series) continue;
    if (!best || compareReleases(r, best) > 0) best = r;
  }
  return best;
}

/** Every plain amd64 release named by image or binary packages in apt-cache search output. */
export function releasesIn(aptSearchOutput: string): string[] {
  const out = new Set<string>();
  for (const line of aptSearchOutput.split("\n")) {
    const name = line.split(" - ")[0]?.trim();
    const m = name ? /^linux-(?:image|binary)-(.*)$/.exec(name) : null;
    if (m && RELEASE_RE.test(m[1])) out.add(m[1]);
  }
  return [...out];
}

/**
 * The Debian suite a release was built for, from its name: the suite whose compiler and libc
 * its headers' tools expect. 5.10.0-N and 6.1.0-0.deb11.N: bullseye; 6.1.0-N, +deb12: bookworm;
 * +deb13: trixie; +deb14: sid (forky is unreleased).
 */
export function suiteOfRelease(release: string): string | null {
  const m = RELEASE_RE.exec(release);
  if (!m) return null;
  const deb = m[6] ?? m[8];
  if (deb !== undefined) return ({ "11": "bullseye", "12": "bookworm", "13": "trixie", "14": "sid" } as Record<string, string>)[deb] ?? "sid";
  if (m[1] === "5.10") return "bullseye";
  if (m[1] === "4.19") return "buster";
  return "bookworm";
}

/**
 * Which packages hold what, from `apt-cache show linux-image-R`'s Depends and which names apt
 * knows. Up to 6.18 the image package holds vmlinuz (/boot), the config and the modules. From
 * 6.19 `linux-image-R` is a meta package: vmlinuz is in `linux-binary-R` (/boot, or from 7.2
 * /usr/lib/modules/R/vmlinuz), the modules in `linux-modules-R` (not always in the archive),
 * the config and modules.builtin in `linux-base-R`. Headers: `linux-headers-R` when apt knows it.
 */
export interface KernelLayout {
  /** The package with vmlinuz. */
  kernelPkg: string;
  /** The package with the modules, or null when the archive lacks it. */
  modulesPkg: string | null;
  /** Further packages to unpack for the config/modules.builtin (linux-base-R), possibly none. */
  extraPkgs: string[];
  /** linux-headers-R, or null when the archive has no headers for this release. */
  headersPkg: string | null;
  /** Packages the layout wanted but apt does not know (e.g. linux-modules-7.1.13+deb13-amd64). */
  missing: string[];
}

export function kernelLayout(release: string, imageDepends: string | null, known: (pkg: string) => boolean): KernelLayout {
  const image = `linux-image-${release}`;
  const binary = `linux-binary-${release}`;
  const modules = `linux-modules-${release}`;
  const base = `linux-base-${release}`;
  const headers = `linux-headers-${release}`;
  const deps = imageDepends ? parseDepends(imageDepends).map((d) => d.name) : [];
  const split = deps.includes(binary) || (!known(image) && known(binary));
  const missing: string[] = [];
  let layout: KernelLayout;
  if (split) {
    if (!known(binary)) missing.push(binary);
    if (!known(modules)) missing.push(modules);
    layout = {
      kernelPkg: binary,
      modulesPkg: known(modules) ? modules : null,
      extraPkgs: known(base) ? [base] : [],
      headersPkg: known(headers) ? headers : null,
      missing,
    };
  } else {
    layout = { kernelPkg: image, modulesPkg: image, extraPkgs: deps.includes(base) && known(base) ? [base] : [], headersPkg: known(headers) ? headers : null, missing };
  }
  if (!layout.headersPkg) layout.missing.push(headers);
  return layout;
}

/**
 * Where a package tree keeps vmlinuz, the config and the modules (both /boot and /lib layouts,
 * /lib or /usr/lib): tar wildcards for the first extraction pass of a kernel package.
 */
export const KERNEL_FILE_PATTERNS = {
  vmlinuz: [/\/boot\/vmlinuz-[^/]+$/, /\/modules\/[^/]+\/vmlinuz$/],
  config: [/\/boot\/config-[^/]+$/, /\/modules\/[^/]+\/config$/],
  builtin: [/\/modules\/[^/]+\/modules\.builtin$/],
} as const;

/** Which of `paths` is the kernel image / config / modules.builtin (first match by the patterns above). */
export function pickKernelFile(kind: keyof typeof KERNEL_FILE_PATTERNS, paths: readonly string[]): string | null {
  for (const re of KERNEL_FILE_PATTERNS[kind]) {
    const p = paths.find((x) => re.test(x));
    if (p) return p;
  }
  return null;
}

export interface DebDependency {
  name: string;
  /** "=" pins an exact version; other relations are left to apt's candidate. */
  relation?: string;
  version?: string;
}

/** Parse a Debian `Depends:` value into its first alternatives ("a (= 1) | b, c"). */
export function parseDepends(value: string): DebDependency[] {
  const out: DebDependency[] = [];
  for (const clause of value.split(",")) {
    const first = clause.split("|")[0]?.trim();
    if (!first) continue;
    const m = /^([a-z0-9][a-z0-9+.-]*)(?::\w+)?\s*(?:\(\s*([<>=]+)\s*([^)\s]+)\s*\))?$/.exec(first);
    if (!m) continue;
    out.push(m[2] ? { name: m[1], relation: m[2], version: m[3] } : { name: m[1] });
  }
  return out;
}

/** A field of an `apt-cache show` stanza (the first stanza only). */
export function debField(stanza: string, field: string): string | null {
  const lines = stanza.split("\n");
  for (let i = 0; i < lines.length; i++) {
    if (lines[i] === "") break;
    if (lines[i].startsWith(`${field}:`)) {
      let v = lines[i].slice(field.length + 1).trim();
      while (i + 1 < lines.length && /^[ \t]/.test(lines[i + 1])) v += " " + lines[++i].trim();
      return v;
    }
  }
  return null;
}

/**
 * The packages a kernel's module build needs besides image and headers: the headers'
 * `-common` and `linux-kbuild-*` dependencies, as `apt-get download` arguments
 * (`name=version` where Depends pins one).
 */
export function buildDependencies(headersDepends: string): string[] {
  return parseDepends(headersDepends)
    .filter((d) => /^linux-headers-.*-common$/.test(d.name) || /^linux-kbuild-/.test(d.name))
    .map((d) => (d.relation === "=" && d.version ? `${d.name}=${d.version}` : d.name));
}

/** Kernel module names treat '-' and '_' alike (virtio-rng.ko is module virtio_rng). */
export function moduleName(fileOrName: string): string {
  const base = fileOrName.split("/").pop() ?? fileOrName;
  return base.replace(/\.ko(\.(xz|zst|gz))?$/, "").replace(/-/g, "_");
}

/**
 * modinfo fields of a module image: the NUL-separated `key=value` strings of its `.modinfo`
 * section. Scanning the whole file for them is enough for `depends=` and `name=` (they cannot
 * occur elsewhere with a NUL before them and a valid value after).
 */
export function modinfoField(ko: Uint8Array, key: string): string | null {
  const text = Buffer.from(ko.buffer, ko.byteOffset, ko.byteLength).toString("latin1");
  const needle = `\0${key}=`;
  const at = text.indexOf(needle);
  if (at < 0) return null;
  const start = at + needle.length;
  const end = text.indexOf("\0", start);
  return text.slice(start, end < 0 ? undefined : end);
}

/** The `depends=` list of a module image ([] when it depends on nothing). */
export function moduleDepends(ko: Uint8Array): string[] {
  const v = modinfoField(ko, "depends");
  return v ? v.split(",").map((s) => moduleName(s.trim())).filter(Boolean) : [];
}

/**
 * Load order for `wanted` modules and everything they depend on, dependencies first
 * (a depth-first topological sort; ties keep the order of `wanted`). `depends(name)` gives a
 * module's dependencies, or null when the module is not available as a file (built in, or
 * missing: the caller decides which, e.g. from modules.builtin or the kernel config).
 * Throws on a cycle.
 */
export function moduleLoadOrder(
  wanted: readonly string[],
  depends: (name: string) => readonly string[] | null,
): { order: string[]; absent: string[] } {
  const order: string[] = [];
  const absent: string[] = [];
  const state = new Map<string, "visiting" | "done">();
  const visit = (raw: string, path: string[]) => {
    const name = moduleName(raw);
    const s = state.get(name);
    if (s === "done") return;
    if (s === "visiting") throw new Error(`module dependency cycle: ${[...path, name].join(" -> ")}`);
    state.set(name, "visiting");
    const deps = depends(name);
    if (deps === null) {
      absent.push(name);
    } else {
      for (const d of deps) visit(d, [...path, name]);
      order.push(name);
    }
    state.set(name, "done");
  };
  for (const w of wanted) visit(w, []);
  return { order, absent };
}

/**
 * `modules.dep` (depmod's output: "kernel/fs/9p/9p.ko.xz: kernel/fs/netfs/netfs.ko.xz kernel/net/9p/9pnet.ko.xz")
 * as module name -> { path, deps }. Debian's packages do not ship it (depmod writes it at
 * install time), but a custom kernel's /lib/modules/R does.
 */
export function parseModulesDep(text: string): Map<string, { path: string; deps: string[] }> {
  const out = new Map<string, { path: string; deps: string[] }>();
  for (const line of text.split("\n")) {
    const at = line.indexOf(":");
    if (at <= 0) continue;
    const path = line.slice(0, at).trim();
    const deps = line.slice(at + 1).trim().split(/\s+/).filter(Boolean).map(moduleName);
    out.set(moduleName(path), { path, deps });
  }
  return out;
}

/** Module names listed in `modules.builtin` ("kernel/drivers/virtio/virtio_pci.ko" lines). */
export function parseModulesBuiltin(text: string): Set<string> {
  return new Set(text.split("\n").map((l) => l.trim()).filter(Boolean).map(moduleName));
}

/**
 * The modules the guest loads, from modules.dep: `wanted` and their dependencies, in load order,
 * plus the wanted names that are built in (in `builtin`) or missing (neither).
 */
export function moduleClosureFromDep(
  wanted: readonly string[],
  dep: Map<string, { path: string; deps: string[] }>,
  builtin: ReadonlySet<string> = new Set(),
): { order: string[]; paths: string[]; builtin: string[]; missing: string[] } {
  const { order, absent } = moduleLoadOrder(wanted, (n) => dep.get(n)?.deps ?? null);
  return {
    order,
    paths: order.map((n) => dep.get(n)!.path),
    builtin: absent.filter((n) => builtin.has(n)),
    missing: absent.filter((n) => !builtin.has(n)),
  };
}

/**
 * Modules the guest needs: virtio PCI, the 9p shares (host /usr and the project) and the
 * virtio console that carries the agent channel (a 16550 serial port is paced at 115200 baud
 * by QEMU: about 11 kB/s, too slow for traces). The roots of the load order.
 */
export const GUEST_MODULES = ["virtio_pci", "virtio_console", "9pnet_virtio", "9p"] as const;

/** Kernel config symbols that provide each wanted module when it is built in. */
export const MODULE_CONFIG: Record<string, string> = {
  virtio_pci: "CONFIG_VIRTIO_PCI",
  virtio_console: "CONFIG_VIRTIO_CONSOLE",
  "9pnet_virtio": "CONFIG_NET_9P_VIRTIO",
  "9p": "CONFIG_9P_FS",
};

/** Options the guest needs built in (no module can stand in for them). */
export const REQUIRED_BUILTIN = ["CONFIG_DEVTMPFS", "CONFIG_SERIAL_8250", "CONFIG_SERIAL_8250_CONSOLE", "CONFIG_BLK_DEV_INITRD", "CONFIG_PERF_EVENTS", "CONFIG_MODULES"] as const;

/** `CONFIG_X=y|m|...` values of a kernel .config (unset options absent). */
export function parseKernelConfig(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split("\n")) {
    const m = /^(CONFIG_[A-Za-z0-9_]+)=(.*)$/.exec(line);
    if (m) out.set(m[1], m[2].replace(/^"(.*)"$/, "$1"));
  }
  return out;
}

/**
 * Real version of a Debian kernel from /proc/version. The line names gcc's Debian version too
 * ("(gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0, ...) #1 SMP PREEMPT_DYNAMIC Debian 6.1.192-2"),
 * so the match must be the one with the release's major.minor; e.g. "6.1.192-2".
 */
export function debianVersionOf(procVersion: string, release: string): string | null {
  const mm = /^(\d+)\.(\d+)/.exec(release);
  if (!mm) return null;
  let found: string | null = null;
  for (const m of procVersion.matchAll(/Debian (\d+)\.(\d+)\.(\d+)(\S*)/g)) {
    if (m[1] === mm[1] && m[2] === mm[2]) found = `${m[1]}.${m[2]}.${m[3]}${m[4]}`;
  }
  return found;
}

/** One file of the initramfs. */
export type InitramfsEntry =
  | { path: string; type: "dir"; mode: number }
  | { path: string; type: "file"; mode: number; source: string }
  | { path: string; type: "file"; mode: number; data: string | Uint8Array }
  | { path: string; type: "symlink"; target: string };

export interface InitramfsSpec {
  /** Host path of a static busybox. */
  busybox: string;
  /** Host paths of the modules to load, in load order (the test PMU last). */
  modules: readonly string[];
  /** The /init script text. */
  init: string;
  /** Host directories that become 9p mount points in the guest (absolute paths). */
  mountPoints: readonly string[];
  /** Extra small files (path in the guest -> contents). */
  files?: Readonly<Record<string, string>>;
}

/**
 * The initramfs file list: busybox (its applets are linked at boot), /init, the modules as
 * /modules/NN-name.ko (the number is the load order), empty mount points, and /lib, /lib64
 * and /bin/sh as links so that the host's /usr (mounted over 9p) can run dynamically linked
 * programs. Parent directories come before their children; every directory is 0755.
 */
export function initramfsEntries(spec: InitramfsSpec): InitramfsEntry[] {
  const entries: InitramfsEntry[] = [];
  const dirs = new Set<string>();
  const dir = (p: string) => {
    const parts = p.split("/").filter(Boolean);
    for (let i = 1; i <= parts.length; i++) {
      const d = parts.slice(0, i).join("/");
      if (!dirs.has(d)) {
        dirs.add(d);
        entries.push({ path: d, type: "dir", mode: 0o755 });
      }
    }
  };
  for (const d of ["bin", "sbin", "dev", "proc", "sys", "tmp", "etc", "modules", "run", "root", "usr"]) dir(d);
  entries.push({ path: "bin/busybox", type: "file", mode: 0o755, source: spec.busybox });
  entries.push({ path: "bin/sh", type: "symlink", target: "busybox" });
  entries.push({ path: "lib", type: "symlink", target: "usr/lib" });
  entries.push({ path: "lib64", type: "symlink", target: "usr/lib64" });
  entries.push({ path: "init", type: "file", mode: 0o755, data: spec.init });
  spec.modules.forEach((m, i) => {
    entries.push({ path: `modules/${String(i).padStart(2, "0")}-${moduleName(m)}.ko`, type: "file", mode: 0o644, source: m });
  });
  for (const mp of spec.mountPoints) {
    if (!mp.startsWith("/")) throw new Error(`mount point must be absolute: ${mp}`);
    if (mp === "/usr") continue;
    dir(mp.slice(1));
  }
  entries.push({ path: "etc/passwd", type: "file", mode: 0o644, data: "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n" });
  entries.push({ path: "etc/group", type: "file", mode: 0o644, data: "root:x:0:\nnogroup:x:65534:\n" });
  for (const [p, data] of Object.entries(spec.files ?? {})) {
    const rel = p.replace(/^\/+/, "");
    const parent = rel.split("/").slice(0, -1).join("/");
    if (parent) dir(parent);
    entries.push({ path: rel, type: "file", mode: 0o644, data });
  }
  return entries;
}
