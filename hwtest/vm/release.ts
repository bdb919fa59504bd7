/**
 * Pure helpers of the VM backend: kernel names, apt output, module metadata, initramfs
 * contents. Nothing here touches the disk or runs a process, so test/vm/unit.test.ts can
 * check all of it without QEMU.
 */

/** The Debian kernel series the backend knows how to find by query (vm-recipe.md). */
export const SERIES = {
  "6.1": {
    /** What `apt-cache search --names-only` is asked (a POSIX regex, as vm-recipe.md gives it). */
    query: "^linux-image-6\\.1\\.0-.*-amd64$",
    /** The plain amd64 flavour only (the query also matches -cloud-amd64 and -rt-amd64). */
    pkg: /^linux-image-(6\.1\.0-(\d+)-amd64)$/,
  },
  "6.12": {
    query: "^linux-image-6\\.12\\..*+deb12-amd64$",
    pkg: /^linux-image-(6\.12\.(\d+)\+deb12-amd64)$/,
  },
} as const;
export type Series = keyof typeof SERIES;

export type KernelRequest =
  | { kind: "series"; series: Series }
  | { kind: "release"; release: string }
  | { kind: "custom" };

/** Full Debian release names the backend accepts ("6.1.0-47-amd64", "6.12.100+deb12-amd64"). */
const RELEASE_RE = /^(6\.1\.0-\d+-amd64|6\.12\.\d+\+deb12-amd64)$/;

/**
 * Classify the `kernel` argument of vmBackend/provisionKernel: a series ("6.1", "6.12"),
 * a full Debian release (what `uname -r` says in the guest), or "custom" (bzImage + headers).
 */
export function parseKernelRequest(kernel: string): KernelRequest {
  const k = kernel.trim();
  if (k === "custom") return { kind: "custom" };
  if (k === "6.1" || k === "6.12") return { kind: "series", series: k };
  const bare = k.replace(/^linux-image-/, "");
  if (RELEASE_RE.test(bare)) return { kind: "release", release: bare };
  throw new Error(
    `unknown kernel ${JSON.stringify(kernel)}: give "6.1", "6.12", a Debian release such as ` +
      `"6.1.0-47-amd64" or "6.12.100+deb12-amd64", or "custom" with bzImage and headers`,
  );
}

/** The ordering key of a release within its series (the ABI number for 6.1, the patch level for 6.12). */
export function releaseKey(series: Series, release: string): number | null {
  const m = SERIES[series].pkg.exec(`linux-image-${release}`);
  return m ? Number(m[2]) : null;
}

/**
 * From `apt-cache search --names-only QUERY` output ("pkg - description" lines), the newest
 * release of the series, or null. Other flavours (cloud, rt, dbg, unsigned) are ignored.
 */
export function newestRelease(series: Series, aptSearchOutput: string): string | null {
  let best: { release: string; key: number } | null = null;
  for (const line of aptSearchOutput.split("\n")) {
    const name = line.split(" - ")[0]?.trim();
    if (!name) continue;
    const m = SERIES[series].pkg.exec(name);
    if (!m) continue;
    const key = Number(m[2]);
    if (!best || key > best.key) best = { release: m[1], key };
  }
  return best?.release ?? null;
}

/** Which series a Debian release belongs to. */
export function seriesOf(release: string): Series | null {
  if (SERIES["6.1"].pkg.test(`linux-image-${release}`)) return "6.1";
  if (SERIES["6.12"].pkg.test(`linux-image-${release}`)) return "6.12";
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
