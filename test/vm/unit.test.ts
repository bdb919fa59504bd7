/**
 * The VM backend's pure parts, without QEMU: kernel names and apt output, Depends lines,
 * module dependency order from modinfo, the initramfs file list and its cpio encoding,
 * /proc/version and the guest config.
 */
import { gunzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { profileFor } from "../../spec/profiles.ts";
import { guestConfig } from "../../hwtest/vm/backend.ts";
import { buildInitramfs, cpioNewc } from "../../hwtest/vm/initramfs.ts";
import type { GuestHello } from "../../hwtest/vm/qemu.ts";
import {
  GUEST_MODULES, buildDependencies, debField, debianVersionOf, initramfsEntries, moduleDepends, moduleLoadOrder, moduleName,
  modinfoField, newestRelease, parseDepends, parseKernelConfig, parseKernelRequest, releaseKey, seriesOf,
} from "../../hwtest/vm/release.ts";

const APT_61 = `linux-image-6.1.0-47-amd64 - Linux 6.1 for 64-bit PCs (signed)
linux-image-6.1.0-47-cloud-amd64 - Linux 6.1 for x86-64 cloud (signed)
linux-image-6.1.0-9-amd64 - Linux 6.1 for 64-bit PCs (signed)
linux-image-6.1.0-56-rt-amd64 - Linux 6.1 for 64-bit PCs, PREEMPT_RT (signed)
linux-image-6.1.0-55-amd64 - Linux 6.1 for 64-bit PCs (signed)
linux-image-6.1.0-55-amd64-unsigned - Linux 6.1 for 64-bit PCs
linux-image-6.1.0-100-amd64-dbg - Debug symbols for linux-image-6.1.0-100-amd64
`;
const APT_612 = `linux-image-6.12.99+deb12-amd64 - Linux 6.12 for 64-bit PCs (signed)
linux-image-6.12.117+deb12-amd64 - Linux 6.12 for 64-bit PCs (signed)
linux-image-6.12.200+deb12-cloud-amd64 - Linux 6.12 for x86-64 cloud (signed)
linux-image-6.12.113+deb12-amd64 - Linux 6.12 for 64-bit PCs (signed)
`;
const VERSION_61 =
  "Linux version 6.1.0-56-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.1.192-2 (2026-11-16)";

/** A fake module image: some ELF-ish bytes around a .modinfo section of NUL-separated strings. */
function fakeKo(fields: Record<string, string>): Uint8Array {
  const modinfo = Object.entries(fields).map(([k, v]) => `${k}=${v}\0`).join("");
  return Buffer.concat([Buffer.from("\x7fELF\x02\x01\x01\0garbage depends=notthis\0"), Buffer.from(`\0${modinfo}`), Buffer.from("\0tail")]);
}

describe("kernel names", () => {
  it("classifies series, full releases and custom, and rejects the rest", () => {
    expect(parseKernelRequest("6.1")).toEqual({ kind: "series", series: "6.1" });
    expect(parseKernelRequest("6.12")).toEqual({ kind: "series", series: "6.12" });
    expect(parseKernelRequest("6.1.0-47-amd64")).toEqual({ kind: "release", release: "6.1.0-47-amd64" });
    expect(parseKernelRequest("linux-image-6.12.100+deb12-amd64")).toEqual({ kind: "release", release: "6.12.100+deb12-amd64" });
    expect(parseKernelRequest("custom")).toEqual({ kind: "custom" });
    for (const bad of ["6.1.0-47-cloud-amd64", "6.12.100", "latest", "", "6", "6.1.0-47-rt-amd64"]) expect(() => parseKernelRequest(bad)).toThrow(/unknown kernel/);
  });

  it("picks the newest plain amd64 package by number, not by text", () => {
    expect(newestRelease("6.1", APT_61)).toBe("6.1.0-55-amd64");
    expect(newestRelease("6.12", APT_612)).toBe("6.12.117+deb12-amd64");
    expect(newestRelease("6.1", APT_612)).toBeNull();
    expect(newestRelease("6.12", "")).toBeNull();
  });

  it("orders and classifies releases", () => {
    expect(releaseKey("6.1.0-9-amd64")).toEqual([6, 1, 0, 9, 0, 0]);
    expect(releaseKey("6.12.117+deb12-amd64")).toEqual([6, 12, 117, 0, 12, 0]);
    expect(releaseKey("6.18.2-1-cloud")).toBeNull();
    expect(seriesOf("6.1.0-56-amd64")).toBe("6.1");
    expect(seriesOf("6.12.117+deb12-amd64")).toBe("6.12");
    expect(seriesOf("6.18.2-1-cloud")).toBeNull();
  });
});

describe("apt metadata", () => {
  const SHOW = `Package: linux-headers-6.12.117+deb12-amd64
Version: 6.12.117-1~deb12u1
Depends: linux-base (>= 4.12~), linux-headers-6.12.117+deb12-common (= 6.12.117-1~deb12u1), linux-image-6.12.117+deb12-amd64 (= 6.12.117-1~deb12u1) | linux-image-6.12.117+deb12-amd64-unsigned (= 6.12.117-1~deb12u1), linux-kbuild-6.12.117+deb12, gcc-12
Description: Header files
 continued

Package: other
Version: 0
`;
  it("reads fields of the first stanza", () => {
    expect(debField(SHOW, "Version")).toBe("6.12.117-1~deb12u1");
    expect(debField(SHOW, "Description")).toBe("Header files continued");
    expect(debField(SHOW, "Missing")).toBeNull();
  });

  it("parses Depends with versions and alternatives", () => {
    const d = parseDepends(debField(SHOW, "Depends")!);
    expect(d.map((x) => x.name)).toEqual([
      "linux-base", "linux-headers-6.12.117+deb12-common", "linux-image-6.12.117+deb12-amd64", "linux-kbuild-6.12.117+deb12", "gcc-12",
    ]);
    expect(d[1]).toEqual({ name: "linux-headers-6.12.117+deb12-common", relation: "=", version: "6.12.117-1~deb12u1" });
  });

  it("downloads -common pinned and kbuild by name, nothing else", () => {
    expect(buildDependencies(debField(SHOW, "Depends")!)).toEqual([
      "linux-headers-6.12.117+deb12-common=6.12.117-1~deb12u1", "linux-kbuild-6.12.117+deb12",
    ]);
    expect(buildDependencies("linux-headers-6.1.0-56-common (= 6.1.192-2), linux-kbuild-6.1 (>= 6.1.192-2), linux-compiler-gcc-12-x86")).toEqual([
      "linux-headers-6.1.0-56-common=6.1.192-2", "linux-kbuild-6.1",
    ]);
  });
});

describe("module dependencies", () => {
  // Debian 6.1's virtio and 9p modules, as their modinfo says.
  const DEPS_61: Record<string, string> = {
    virtio_ring: "", virtio: "", virtio_pci_modern_dev: "", virtio_pci_legacy_dev: "",
    virtio_pci: "virtio_pci_modern_dev,virtio_pci_legacy_dev,virtio_ring,virtio",
    virtio_console: "virtio_ring,virtio",
    "9pnet": "", "9pnet_virtio": "9pnet,virtio_ring,virtio", netfs: "", fscache: "netfs", "9p": "9pnet,netfs,fscache",
  };
  const images = new Map(Object.entries(DEPS_61).map(([n, d]) => [n, fakeKo({ license: "GPL", depends: d, name: n, vermagic: "6.1.0-56-amd64 SMP mod_unload" })]));

  it("reads depends= and other modinfo fields from a module image", () => {
    expect(moduleDepends(images.get("virtio_pci")!)).toEqual(["virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio_ring", "virtio"]);
    expect(moduleDepends(images.get("virtio")!)).toEqual([]);
    expect(moduleDepends(fakeKo({ license: "GPL" }))).toEqual([]);
    expect(modinfoField(images.get("9p")!, "vermagic")).toBe("6.1.0-56-amd64 SMP mod_unload");
    expect(moduleDepends(fakeKo({ depends: "virtio-rng,9pnet" }))).toEqual(["virtio_rng", "9pnet"]);
  });

  it("loads every module after its dependencies, each once", () => {
    const { order, absent } = moduleLoadOrder(GUEST_MODULES, (n) => (images.has(n) ? moduleDepends(images.get(n)!) : null));
    expect(absent).toEqual([]);
    expect(new Set(order).size).toBe(order.length);
    expect(order.length).toBe(Object.keys(DEPS_61).length);
    for (const [n, d] of Object.entries(DEPS_61)) {
      for (const dep of d.split(",").filter(Boolean)) expect(order.indexOf(dep), `${dep} before ${n}`).toBeLessThan(order.indexOf(n));
    }
    expect(order.slice(0, 5)).toEqual(["virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio_ring", "virtio", "virtio_pci"]);
  });

  it("reports modules without a file (built in) and keeps going", () => {
    // 6.12: virtio and virtio_console are built in; 9p needs netfs only.
    const deps612: Record<string, string[]> = { "9pnet": [], "9pnet_virtio": ["9pnet"], netfs: [], "9p": ["9pnet", "netfs"] };
    const { order, absent } = moduleLoadOrder(GUEST_MODULES, (n) => deps612[n] ?? null);
    expect(absent).toEqual(["virtio_pci", "virtio_console"]);
    expect(order).toEqual(["9pnet", "9pnet_virtio", "netfs", "9p"]);
  });

  it("refuses a dependency cycle", () => {
    expect(() => moduleLoadOrder(["a"], (n) => ({ a: ["b"], b: ["c"], c: ["a"] } as Record<string, string[]>)[n])).toThrow(/cycle: a -> b -> c -> a/);
  });

  it("names modules as the kernel does", () => {
    expect(moduleName("/x/kernel/drivers/char/hw_random/virtio-rng.ko.xz")).toBe("virtio_rng");
    expect(moduleName("9pnet_virtio.ko")).toBe("9pnet_virtio");
    expect(moduleName("netfs.ko.zst")).toBe("netfs");
  });
});

describe("kernel config and version", () => {
  it("parses .config values", () => {
    const c = parseKernelConfig("CONFIG_9P_FS=m\n# CONFIG_FOO is not set\nCONFIG_VIRTIO_PCI=y\nCONFIG_LOCALVERSION=\"-x\"\n");
    expect(c.get("CONFIG_9P_FS")).toBe("m");
    expect(c.get("CONFIG_VIRTIO_PCI")).toBe("y");
    expect(c.get("CONFIG_LOCALVERSION")).toBe("-x");
    expect(c.has("CONFIG_FOO")).toBe(false);
  });

  it("finds the kernel's Debian version past gcc's, so 6.1.0-N kernels get their real profile", () => {
    expect(debianVersionOf(VERSION_61, "6.1.0-56-amd64")).toBe("6.1.192-2");
    expect(debianVersionOf(VERSION_61, "6.12.1")).toBeNull();
    expect(profileFor("6.1.0-56-amd64", VERSION_61).profile).toBe("6.1");
    expect(profileFor("6.1.0-56-amd64", VERSION_61.replace("6.1.192", "6.1.140")).profile).toBe("6.1-pre148");
    expect(profileFor("6.12.117+deb12-amd64").profile).toBe("6.12");
  });
});

/** Parse a newc archive back into entries (name, mode, data). */
function parseNewc(buf: Buffer): Array<{ name: string; mode: number; data: Buffer }> {
  const out: Array<{ name: string; mode: number; data: Buffer }> = [];
  let off = 0;
  const align = (n: number) => (n + 3) & ~3;
  for (;;) {
    expect(buf.toString("ascii", off, off + 6)).toBe("070701");
    const field = (i: number) => parseInt(buf.toString("ascii", off + 6 + i * 8, off + 14 + i * 8), 16);
    const mode = field(1);
    const size = field(6);
    const namesize = field(11);
    const name = buf.toString("utf8", off + 110, off + 110 + namesize - 1);
    const dataStart = align(off + 110 + namesize);
    const data = buf.subarray(dataStart, dataStart + size);
    off = align(dataStart + size);
    if (name === "TRAILER!!!") break;
    out.push({ name, mode, data });
  }
  expect(off).toBe(buf.length);
  return out;
}

describe("initramfs", () => {
  const spec = {
    busybox: "/bin/busybox-not-read",
    modules: ["/c/modules/virtio_ring.ko", "/c/modules/9p.ko", "/c/auxspec_pmu.ko"],
    init: "#!/bin/sh\necho hi\n",
    mountPoints: ["/usr", "/work/main"],
    files: { "/auxspec.env": "AUXSPEC_PROJECT='/work/main'\n" },
  };

  it("lists busybox, init, the modules in load order, mount points and links", () => {
    const e = initramfsEntries(spec);
    const paths = e.map((x) => x.path);
    expect(paths).toContain("bin/busybox");
    expect(paths).toContain("init");
    expect(paths).toContain("auxspec.env");
    expect(paths.filter((p) => p.startsWith("modules/"))).toEqual(["modules/00-virtio_ring.ko", "modules/01-9p.ko", "modules/02-auxspec_pmu.ko"]);
    expect(e.find((x) => x.path === "lib")).toEqual({ path: "lib", type: "symlink", target: "usr/lib" });
    expect(e.find((x) => x.path === "lib64")).toEqual({ path: "lib64", type: "symlink", target: "usr/lib64" });
    expect(paths).toContain("work");
    expect(paths).toContain("work/main");
    // every parent directory precedes its children; directories are 0755 (a 0700 root stops non-root users)
    e.forEach((x, i) => {
      const parent = x.path.split("/").slice(0, -1).join("/");
      if (parent) expect(paths.indexOf(parent), x.path).toBeLessThan(i);
      if (x.type === "dir") expect(x.mode).toBe(0o755);
    });
    expect(e.find((x) => x.path === "init")).toMatchObject({ type: "file", mode: 0o755 });
    expect(() => initramfsEntries({ ...spec, mountPoints: ["relative/x"] })).toThrow(/absolute/);
  });

  it("encodes a newc archive the kernel can unpack (round trip)", () => {
    const entries = initramfsEntries({ ...spec, modules: [] }).filter((x) => !("source" in x));
    const buf = cpioNewc(entries);
    const back = parseNewc(buf);
    expect(back.map((b) => b.name)).toEqual(entries.map((x) => x.path));
    const init = back.find((b) => b.name === "init")!;
    expect(init.data.toString()).toBe(spec.init);
    expect(init.mode).toBe(0o100755);
    expect(back.find((b) => b.name === "lib")!.mode).toBe(0o120777);
    expect(back.find((b) => b.name === "lib")!.data.toString()).toBe("usr/lib");
    expect(back.find((b) => b.name === "tmp")!.mode).toBe(0o040755);
    expect(gunzipSync(buildInitramfs(entries)).equals(buf)).toBe(true);
  });
});

describe("guest config", () => {
  const hello: GuestHello = {
    release: "6.1.0-56-amd64", version: VERSION_61, cpus: 1, mlockKb: 516, paranoid: 2, memlockKb: 8192,
    auxPmu: "auxspec_pmu", auxType: 9, pmu: { setups: 0, frees: 0, live: 0, failSetupAux: false }, node: "v20", uptime: 4,
    bootWarnings: [], agent: [],
  };
  it("is the guest's, in pages, with the test PMU", () => {
    expect(guestConfig(hello)).toEqual({ pageSize: 4096, cpus: 1, mlockKb: 516, memlockPages: 2048, memlockHardPages: "unlimited", capIpcLock: false, paranoid: 2, pmus: { aux: "auxspec_pmu" } });
    expect(guestConfig({ ...hello, memlockKb: "unlimited", auxPmu: null }).memlockPages).toBe("unlimited");
    expect(guestConfig({ ...hello, memlockHardKb: 8192, capSysResource: false }).memlockHardPages).toBe(2048);
    expect(guestConfig({ ...hello, memlockHardKb: 8192, capSysResource: true }).memlockHardPages).toBe("unlimited");
  });
});
