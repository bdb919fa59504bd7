/**
 * Every Debian kernel, 5.10 to 7.3 (issue 11), without network or QEMU: release names of each
 * era, the newest build per series from apt output, which package holds what (6.19+ meta
 * packages, 7.2+ vmlinuz under /usr/lib/modules), the kernel's compiler from its headers, the
 * compiler's suite, glibc needs of kbuild tools, the private apt sources, and module closures
 * from modules.dep.
 */
import { describe, expect, it } from "vitest";
import { parseDebianMirrors, parseMadison, privateSourcesList } from "../../hwtest/vm/apt.ts";
import {
  GUEST_MODULES, compareReleases, kernelLayout, moduleClosureFromDep, newestRelease, parseKernelRequest, parseModulesBuiltin,
  parseModulesDep, pickKernelFile, releasesIn, seriesOf, seriesQuery, suiteOfRelease,
} from "../../hwtest/vm/release.ts";
import { compilerSource, glibcRequired, kernelCompiler, loaderWrapper, versionLess } from "../../hwtest/vm/toolchain.ts";

/** `apt-cache search --names-only '^linux-(image|binary)-...'` as the private lists answered it (Dec 2026, trimmed). */
const APT = [
  "linux-image-5.10.0-30-amd64", "linux-image-5.10.0-46-amd64", "linux-image-5.10.0-46-cloud-amd64", "linux-image-5.10.0-46-rt-amd64",
  "linux-image-5.10.0-45-amd64-dbg", "linux-image-6.1.0-0.deb11.52-amd64", "linux-image-6.1.0-47-amd64", "linux-image-6.1.0-57-amd64",
  "linux-image-6.1.0-9-amd64", "linux-image-6.1-amd64", "linux-image-6.12.117+deb12-amd64", "linux-image-6.12.118+deb13-amd64",
  "linux-image-6.12.115+deb13.1-amd64", "linux-image-6.12.90+deb13-amd64", "linux-image-6.12-amd64", "linux-image-6.16.3+deb13-amd64",
  "linux-image-6.16.12+deb13-amd64", "linux-image-6.17.8+deb13-amd64", "linux-image-6.17.13+deb13-amd64", "linux-image-6.18.5+deb13-amd64",
  "linux-image-6.18.15+deb13-amd64", "linux-image-6.18.15+deb13-cloud-amd64", "linux-binary-6.19.14+deb13-amd64", "linux-image-6.19.14+deb13-amd64",
  "linux-binary-7.0.9+deb13-amd64", "linux-binary-7.0.13+deb13-amd64", "linux-binary-7.1.13+deb13-amd64", "linux-image-7.1.13+deb13-amd64",
  "linux-binary-7.2.12+deb13-amd64", "linux-binary-7.2.13+deb14-amd64", "linux-image-7.2.13+deb14-amd64", "linux-binary-7.3.4+deb13-amd64",
  "linux-image-7.3.4+deb13-amd64", "linux-image-7.3.4+deb13-amd64-unsigned",
].map((p) => `${p} - Linux for 64-bit PCs`).join("\n");

describe("release names of every era", () => {
  it("accepts every series and exact release form, and rejects other flavours", () => {
    for (const s of ["5.10", "6.1", "6.12", "6.16", "6.17", "6.18", "6.19", "7.0", "7.1", "7.2", "7.3"]) {
      expect(parseKernelRequest(s)).toEqual({ kind: "series", series: s });
    }
    for (const r of ["5.10.0-46-amd64", "6.1.0-57-amd64", "6.1.0-0.deb11.52-amd64", "6.12.117+deb12-amd64", "6.12.115+deb13.1-amd64", "6.18.15+deb13-amd64", "7.2.13+deb14-amd64", "7.3.4+deb13-amd64"]) {
      expect(parseKernelRequest(r)).toEqual({ kind: "release", release: r });
    }
    expect(parseKernelRequest("linux-binary-7.3.4+deb13-amd64")).toEqual({ kind: "release", release: "7.3.4+deb13-amd64" });
    for (const bad of ["7.3.4+deb13-cloud-amd64", "5.10.0-46-rt-amd64", "7.3.4", "7.3.4+deb13", "vm:7.3", "7.x"]) expect(() => parseKernelRequest(bad)).toThrow(/unknown kernel/);
  });

  it("maps releases to their series and suites", () => {
    expect(seriesOf("5.10.0-46-amd64")).toBe("5.10");
    expect(seriesOf("6.1.0-0.deb11.52-amd64")).toBe("6.1");
    expect(seriesOf("7.3.4+deb13-amd64")).toBe("7.3");
    expect(seriesOf("7.3.4+deb13-cloud-amd64")).toBeNull();
    expect(suiteOfRelease("5.10.0-46-amd64")).toBe("bullseye");
    expect(suiteOfRelease("6.1.0-0.deb11.52-amd64")).toBe("bullseye");
    expect(suiteOfRelease("6.1.0-57-amd64")).toBe("bookworm");
    expect(suiteOfRelease("6.12.117+deb12-amd64")).toBe("bookworm");
    expect(suiteOfRelease("6.12.118+deb13-amd64")).toBe("trixie");
    expect(suiteOfRelease("7.2.13+deb14-amd64")).toBe("sid");
  });

  it("orders builds by number: backports before the suite's own, +deb13.1 after +deb13", () => {
    const sorted = ["6.1.0-57-amd64", "6.1.0-0.deb11.52-amd64", "6.1.0-9-amd64", "6.1.0-47-amd64"].sort(compareReleases);
    expect(sorted).toEqual(["6.1.0-0.deb11.52-amd64", "6.1.0-9-amd64", "6.1.0-47-amd64", "6.1.0-57-amd64"]);
    expect(compareReleases("6.12.115+deb13.1-amd64", "6.12.115+deb13-amd64")).toBeGreaterThan(0);
    expect(compareReleases("6.12.118+deb13-amd64", "6.12.117+deb12-amd64")).toBeGreaterThan(0);
    expect(compareReleases("7.2.13+deb14-amd64", "7.2.12+deb13-amd64")).toBeGreaterThan(0);
  });

  it("picks the newest build of each series from apt output (image or binary package)", () => {
    const want: Record<string, string | null> = {
      "5.10": "5.10.0-46-amd64", "6.1": "6.1.0-57-amd64", "6.12": "6.12.118+deb13-amd64", "6.16": "6.16.12+deb13-amd64",
      "6.17": "6.17.13+deb13-amd64", "6.18": "6.18.15+deb13-amd64", "6.19": "6.19.14+deb13-amd64", "7.0": "7.0.13+deb13-amd64",
      "7.1": "7.1.13+deb13-amd64", "7.2": "7.2.13+deb14-amd64", "7.3": "7.3.4+deb13-amd64", "7.4": null, "6.2": null,
    };
    for (const [s, r] of Object.entries(want)) expect(newestRelease(s, APT), s).toBe(r);
    expect(releasesIn(APT)).not.toContain("6.1-amd64");
    expect(releasesIn(APT).some((r) => r.includes("cloud") || r.includes("unsigned") || r.includes("dbg"))).toBe(false);
  });

  it("queries apt for image and binary packages of exactly that series", () => {
    const re = new RegExp(seriesQuery("6.1"));
    expect(re.test("linux-image-6.1.0-57-amd64")).toBe(true);
    expect(re.test("linux-image-6.12.117+deb12-amd64")).toBe(false);
    expect(new RegExp(seriesQuery("7.3")).test("linux-binary-7.3.4+deb13-amd64")).toBe(true);
  });
});

describe("package layouts", () => {
  const knownAll = (names: string[]) => (p: string) => names.includes(p);
  it("up to 6.18: one image package with vmlinuz, config and modules; headers when listed", () => {
    const l = kernelLayout("5.10.0-46-amd64", "kmod, linux-base (>= 4.3~), initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool",
      knownAll(["linux-image-5.10.0-46-amd64", "linux-headers-5.10.0-46-amd64"]));
    expect(l).toEqual({ kernelPkg: "linux-image-5.10.0-46-amd64", modulesPkg: "linux-image-5.10.0-46-amd64", extraPkgs: [], headersPkg: "linux-headers-5.10.0-46-amd64", missing: [] });
    const h = kernelLayout("6.18.15+deb13-amd64", "dracut | initramfs-tools, kmod, linux-base-6.18.15+deb13-amd64 (= 6.18.15-1~bpo13+1)",
      knownAll(["linux-image-6.18.15+deb13-amd64", "linux-base-6.18.15+deb13-amd64"]));
    expect(h.headersPkg).toBeNull();
    expect(h.kernelPkg).toBe("linux-image-6.18.15+deb13-amd64");
    expect(h.extraPkgs).toEqual(["linux-base-6.18.15+deb13-amd64"]);
    expect(h.missing).toEqual(["linux-headers-6.18.15+deb13-amd64"]);
  });

  it("6.19+: linux-image is a meta package; kernel in linux-binary, modules in linux-modules, config in linux-base", () => {
    const dep73 = "dracut | initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool, linux-base-7.3.4+deb13-amd64 (= 7.3.4-1~bpo13+1), linux-binary-7.3.4+deb13-amd64 (= 7.3.4-1~bpo13+1), linux-modules-7.3.4+deb13-amd64 (= 7.3.4-1~bpo13+1)";
    const r = "7.3.4+deb13-amd64";
    const l = kernelLayout(r, dep73, knownAll([`linux-image-${r}`, `linux-binary-${r}`, `linux-modules-${r}`, `linux-base-${r}`, `linux-headers-${r}`]));
    expect(l).toEqual({ kernelPkg: `linux-binary-${r}`, modulesPkg: `linux-modules-${r}`, extraPkgs: [`linux-base-${r}`], headersPkg: `linux-headers-${r}`, missing: [] });
    // 7.1.13: the modules package is not in the archive, nor are headers.
    const r71 = "7.1.13+deb13-amd64";
    const m = kernelLayout(r71, dep73.replaceAll("7.3.4", "7.1.13"), knownAll([`linux-image-${r71}`, `linux-binary-${r71}`, `linux-base-${r71}`]));
    expect(m.modulesPkg).toBeNull();
    expect(m.missing).toEqual([`linux-modules-${r71}`, `linux-headers-${r71}`]);
    // only the binary package known (image meta package gone)
    expect(kernelLayout(r, null, knownAll([`linux-binary-${r}`])).kernelPkg).toBe(`linux-binary-${r}`);
  });

  it("finds vmlinuz in /boot or (7.2+) /usr/lib/modules/R, and the config in either", () => {
    const old = ["x/boot/System.map-5.10.0-46-amd64", "x/boot/vmlinuz-5.10.0-46-amd64", "x/boot/config-5.10.0-46-amd64", "x/lib/modules/5.10.0-46-amd64/modules.builtin"];
    expect(pickKernelFile("vmlinuz", old)).toBe("x/boot/vmlinuz-5.10.0-46-amd64");
    expect(pickKernelFile("config", old)).toBe("x/boot/config-5.10.0-46-amd64");
    const neu = ["x/usr/lib/modules/7.3.4+deb13-amd64/vmlinuz", "x/usr/lib/modules/7.3.4+deb13-amd64/config", "x/usr/lib/modules/7.3.4+deb13-amd64/modules.builtin"];
    expect(pickKernelFile("vmlinuz", neu)).toBe(neu[0]);
    expect(pickKernelFile("config", neu)).toBe(neu[1]);
    expect(pickKernelFile("builtin", neu)).toBe(neu[2]);
    expect(pickKernelFile("vmlinuz", ["x/usr/lib/modules/7.3.4+deb13-amd64/kernel/fs/9p/9p.ko.xz"])).toBeNull();
  });
});

describe("the kernel's compiler", () => {
  it("reads CONFIG_CC_VERSION_TEXT of each era", () => {
    expect(kernelCompiler('CONFIG_CC_VERSION_TEXT="gcc-10 (Debian 10.2.1-6) 10.2.1 20210110"\nCONFIG_CC_IS_GCC=y\n', null)).toEqual({
      command: "gcc-10", pkg: "gcc-10", major: 10, debVersion: "10.2.1-6", text: "gcc-10 (Debian 10.2.1-6) 10.2.1 20210110",
    });
    expect(kernelCompiler('CONFIG_CC_VERSION_TEXT="gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0"\n', null)).toMatchObject({ command: "gcc-12", major: 12, debVersion: "12.2.0-14+deb12u1" });
    expect(kernelCompiler('CONFIG_CC_VERSION_TEXT="x86_64-linux-gnu-gcc-14 (Debian 14.2.0-19) 14.2.0"\n', null)).toMatchObject({ command: "x86_64-linux-gnu-gcc-14", pkg: "gcc-14", debVersion: "14.2.0-19" });
    expect(kernelCompiler('CONFIG_CC_VERSION_TEXT="x86_64-linux-gnu-gcc-16 (Debian 16.2.0-4) 16.2.0"\n', null)).toMatchObject({ pkg: "gcc-16", major: 16 });
  });

  it("falls back to the headers' Makefile (CC with CROSS_COMPILE)", () => {
    const mk73 = [
      "KBUILD_OUTPUT=/usr/src/linux-headers-7.3.4+deb13-amd64", "include /usr/src/linux-headers-7.3.4+deb13-common/Makefile",
      "CCACHE = ccache", "CC = $(if $(DEBIAN_KERNEL_USE_CCACHE),$(CCACHE)) $(CROSS_COMPILE)gcc-14", "override CROSS_COMPILE = x86_64-linux-gnu-",
    ].join("\n");
    expect(kernelCompiler(null, mk73)).toEqual({ command: "x86_64-linux-gnu-gcc-14", pkg: "gcc-14", major: 14, debVersion: null, text: null });
    const mk510 = "include /usr/src/linux-headers-5.10.0-46-common/Makefile\nCC = $(if $(DEBIAN_KERNEL_USE_CCACHE),$(CCACHE)) $(CROSS_COMPILE)gcc-10\nifneq ($(DEB_BUILD_ARCH),$(DEB_HOST_ARCH))\noverride CROSS_COMPILE = $(DEB_HOST_GNU_TYPE)-\nendif\n";
    expect(kernelCompiler("CONFIG_X=y\n", mk510)?.pkg).toBe("gcc-10");
    expect(kernelCompiler(null, "all:\n")).toBeNull();
  });

  it("takes the compiler from the suite with its exact version, else the kernel's suite", () => {
    const rows = parseMadison([
      "    gcc-14 |   14.4.0-3 | http://deb.debian.org/debian sid/main amd64 Packages",
      "    gcc-14 |  14.2.0-19 | http://deb.debian.org/debian trixie/main amd64 Packages",
      "    gcc-10 |   10.2.1-6 | http://deb.debian.org/debian bullseye/main amd64 Packages",
    ].join("\n"));
    expect(rows[1]).toEqual({ pkg: "gcc-14", version: "14.2.0-19", suite: "trixie" });
    const cc14 = kernelCompiler('CONFIG_CC_VERSION_TEXT="x86_64-linux-gnu-gcc-14 (Debian 14.2.0-19) 14.2.0"', null)!;
    expect(compilerSource(rows, cc14, "sid")).toEqual({ suite: "trixie", version: "14.2.0-19" });
    expect(compilerSource(rows, { ...cc14, debVersion: "14.2.0-7" }, "trixie")).toEqual({ suite: "trixie", version: "14.2.0-19" });
    expect(compilerSource(rows, { ...cc14, debVersion: null }, null)).toEqual({ suite: "sid", version: "14.4.0-3" });
    expect(compilerSource(rows, { ...cc14, pkg: "gcc-16" }, "sid")).toBeNull();
  });

  it("reads the glibc an ELF program needs, to wrap only kbuild tools newer than the system's", () => {
    const elf = Buffer.concat([Buffer.from("\x7fELF"), Buffer.from("\0GLIBC_2.2.5\0GLIBC_2.38\0GLIBC_2.34\0GLIBC_PRIVATE\0")]);
    expect(glibcRequired(elf)).toBe("2.38");
    expect(glibcRequired(Buffer.from("\x7fELF nothing"))).toBeNull();
    expect(versionLess("2.36", "2.38")).toBe(true);
    expect(versionLess("2.36", "2.14")).toBe(false);
    expect(versionLess("2.36", "2.36")).toBe(false);
    expect(loaderWrapper("/c/root/usr/lib64/ld-linux-x86-64.so.2", ["/c/root/usr/lib/x86_64-linux-gnu"], "/c/it's/objtool.real")).toBe(
      "#!/bin/sh\nexec '/c/root/usr/lib64/ld-linux-x86-64.so.2' --library-path '/c/root/usr/lib/x86_64-linux-gnu' '/c/it'\\''s/objtool.real' \"$@\"\n",
    );
  });
});

describe("private apt sources", () => {
  const DEB822 = `Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
`;
  it("takes the machine's archive and security URIs from deb822 or one-line sources", () => {
    expect(parseDebianMirrors([DEB822])).toEqual({ archive: "http://deb.debian.org/debian", security: "http://deb.debian.org/debian-security" });
    expect(parseDebianMirrors(["# deb http://x/ sid main\ndeb [arch=amd64] http://mirror.example/debian/ bookworm main\ndeb http://sec.example/debian-security bookworm-security main\n"])).toEqual({
      archive: "http://mirror.example/debian", security: "http://sec.example/debian-security",
    });
    expect(parseDebianMirrors(["Types: deb-src\nURIs: http://src.example/debian\nSuites: bookworm\n"])).toBeNull();
    expect(parseDebianMirrors([""])).toBeNull();
  });

  it("lists every suite with kernels, security suites from the security archive", () => {
    const text = privateSourcesList({ archive: "http://m/debian", security: "http://m/debian-security" });
    const lines = text.trim().split("\n");
    for (const s of ["bullseye", "bookworm", "trixie", "trixie-backports", "sid"]) expect(lines).toContain(`deb http://m/debian ${s} main`);
    for (const s of ["bullseye-security", "bookworm-security", "trixie-security"]) expect(lines).toContain(`deb http://m/debian-security ${s} main`);
    expect(privateSourcesList({ archive: "http://m/debian", security: null })).not.toMatch(/-security/);
  });
});

describe("modules.dep closure", () => {
  const DEP = [
    "kernel/fs/9p/9p.ko.xz: kernel/fs/netfs/netfs.ko.xz kernel/net/9p/9pnet.ko.xz",
    "kernel/fs/netfs/netfs.ko.xz:",
    "kernel/net/9p/9pnet.ko.xz:",
    "kernel/net/9p/9pnet_virtio.ko.xz: kernel/net/9p/9pnet.ko.xz",
    "kernel/drivers/char/hw_random/virtio-rng.ko.xz:",
    "kernel/fs/ext4/ext4.ko.xz: kernel/fs/jbd2/jbd2.ko.xz kernel/lib/crc16.ko.xz",
  ].join("\n");

  it("parses modules.dep and modules.builtin", () => {
    const d = parseModulesDep(DEP);
    expect(d.get("9p")).toEqual({ path: "kernel/fs/9p/9p.ko.xz", deps: ["netfs", "9pnet"] });
    expect(d.has("virtio_rng")).toBe(true);
    expect([...parseModulesBuiltin("kernel/drivers/virtio/virtio_pci.ko\nkernel/drivers/char/virtio_console.ko\n")]).toEqual(["virtio_pci", "virtio_console"]);
  });

  it("loads only the guest's modules and their dependencies, built-ins left out", () => {
    const r = moduleClosureFromDep(GUEST_MODULES, parseModulesDep(DEP), new Set(["virtio_pci", "virtio_console"]));
    expect(r.order).toEqual(["9pnet", "9pnet_virtio", "netfs", "9p"]);
    expect(r.paths).toContain("kernel/fs/netfs/netfs.ko.xz");
    expect(r.builtin).toEqual(["virtio_pci", "virtio_console"]);
    expect(r.missing).toEqual([]);
    expect(moduleClosureFromDep(GUEST_MODULES, parseModulesDep(DEP)).missing).toEqual(["virtio_pci", "virtio_console"]);
  });
});
