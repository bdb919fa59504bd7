/** Discovery against fake sysfs/proc trees (no kernel needed). */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { countCpuList, discoverHost } from "../../hwtest/host/discover.ts";

const dirs: string[] = [];
afterAll(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

interface Tree {
  release?: string;
  version?: string;
  online?: string;
  mlockKb?: string;
  paranoid?: string | null;
  uid?: number;
  capEff?: string;
  memlock?: string;
  pageKb?: number;
  pmus?: Record<string, number>;
  testPmu?: boolean;
}

function fakeTree(t: Tree): { sys: string; proc: string } {
  const root = mkdtempSync(join(tmpdir(), "auxspec-discover-"));
  dirs.push(root);
  const sys = join(root, "sys");
  const proc = join(root, "proc");
  const put = (p: string, text: string) => { mkdirSync(dirname(p), { recursive: true }); writeFileSync(p, text); };
  put(join(proc, "sys/kernel/osrelease"), `${t.release ?? "6.18.2-1-cloud"}\n`);
  put(join(proc, "version"), `${t.version ?? `Linux version ${t.release ?? "6.18.2-1-cloud"} (gcc) #1 SMP`}\n`);
  put(join(sys, "devices/system/cpu/online"), `${t.online ?? "0-1"}\n`);
  put(join(proc, "sys/kernel/perf_event_mlock_kb"), `${t.mlockKb ?? "516"}\n`);
  if (t.paranoid !== null) put(join(proc, "sys/kernel/perf_event_paranoid"), `${t.paranoid ?? "2"}\n`);
  const uid = t.uid ?? 0;
  put(join(proc, "self/status"), `Name:\tnode\nUid:\t${uid}\t${uid}\t${uid}\t${uid}\nVmPin:\t       0 kB\nCapEff:\t${t.capEff ?? (uid === 0 ? "000001ffffffffff" : "0000000000000000")}\n`);
  put(join(proc, "self/limits"), `Limit                     Soft Limit           Hard Limit           Units\nMax locked memory         ${t.memlock ?? "8388608"}              ${t.memlock ?? "8388608"}              bytes\n`);
  put(join(proc, "self/smaps"), `600000000000-600000001000 rw-p 00000000 00:00 0\nSize:                  4 kB\nKernelPageSize:        ${t.pageKb ?? 4} kB\n`);
  for (const [name, type] of Object.entries(t.pmus ?? { software: 1, tracepoint: 2, breakpoint: 5 })) {
    put(join(sys, "bus/event_source/devices", name, "type"), `${type}\n`);
  }
  if (t.testPmu) {
    for (const p of ["fail_setup_aux", "setups", "frees", "live"]) put(join(sys, "module/auxspec_pmu/parameters", p), p === "fail_setup_aux" ? "N\n" : "0\n");
  }
  return { sys, proc };
}

describe("discoverHost on a fake tree", () => {
  it("reads this machine's kind: 6.18, 2 CPUs, root, paranoid 2, no AUX PMU", () => {
    const f = discoverHost(fakeTree({}));
    expect(f.release).toBe("6.18.2-1-cloud");
    expect(f.profile).toBe("6.18");
    expect(f.config).toEqual({ pageSize: 4096, cpus: 2, mlockKb: 516, memlockPages: 2048, memlockHardPages: "unlimited" /* full caps: CAP_SYS_RESOURCE */, capIpcLock: false, paranoid: 2, pmus: { aux: null } });
    expect(f.auxPmu).toBeNull();
    expect(f.root).toBe(true);
    expect(f.perfOk).toBe(true);
    expect(f.testPmuDir).toBeNull();
  });

  it("takes the real patch level of a Debian 6.1 kernel from /proc/version", () => {
    const old = discoverHost(fakeTree({ release: "6.1.0-9-amd64", version: "Linux version 6.1.0-9-amd64 (debian-kernel@lists.debian.org) #1 SMP PREEMPT_DYNAMIC Debian 6.1.27-1 (2023-05-08)" }));
    expect(old.profile).toBe("6.1-pre148");
    const fixed = discoverHost(fakeTree({ release: "6.1.0-47-amd64", version: "Linux version 6.1.0-47-amd64 #1 SMP PREEMPT_DYNAMIC Debian 6.1.170-1 (2026-01-10)" }));
    expect(fixed.profile).toBe("6.1");
    expect(discoverHost(fakeTree({ release: "6.12.38+deb12-amd64" })).profile).toBe("6.12-pre42");
    expect(discoverHost(fakeTree({ release: "6.12.100+deb12-amd64" })).profile).toBe("6.12");
  });

  it("finds the test PMU first, then intel_pt, arm_spe_N, ... with their dynamic types", () => {
    const both = discoverHost(fakeTree({ pmus: { software: 1, intel_pt: 8, auxspec_pmu: 11 }, testPmu: true }));
    expect(both.auxPmu).toEqual({ name: "auxspec_pmu", type: 11 });
    expect(both.config.pmus.aux).toBe("auxspec_pmu");
    expect(both.testPmuDir).toMatch(/module\/auxspec_pmu\/parameters$/);
    expect(discoverHost(fakeTree({ pmus: { software: 1, intel_pt: 8, intel_bts: 9 } })).auxPmu).toEqual({ name: "intel_pt", type: 8 });
    expect(discoverHost(fakeTree({ pmus: { software: 1, arm_spe_0: 10 } })).auxPmu).toEqual({ name: "arm_spe_0", type: 10 });
    expect(discoverHost(fakeTree({ pmus: { software: 1, cs_etm: 12 } })).auxPmu).toEqual({ name: "cs_etm", type: 12 });
    expect(discoverHost(fakeTree({ pmus: { software: 1, hisi_ptt0_2: 13 } })).auxPmu).toEqual({ name: "hisi_ptt0_2", type: 13 });
    expect(discoverHost(fakeTree({ pmus: { software: 1, uprobe: 8, msr: 9 } })).auxPmu).toBeNull();
  });

  it("counts online CPUs, reads mlock_kb, RLIMIT_MEMLOCK and paranoid", () => {
    const f = discoverHost(fakeTree({ online: "0-3,8,10-11", mlockKb: "1028", memlock: "unlimited", paranoid: "-1" }));
    expect(f.config.cpus).toBe(7);
    expect(f.config.mlockKb).toBe(1028);
    expect(f.config.memlockPages).toBe("unlimited");
    expect(f.config.paranoid).toBe(-1);
    expect(countCpuList("0")).toBe(1);
    expect(() => countCpuList("x")).toThrow();
  });

  it("says what to change when perf is not permitted (Debian's paranoid 3, not root)", () => {
    const f = discoverHost(fakeTree({ paranoid: "3", uid: 1000 }));
    expect(f.root).toBe(false);
    expect(f.perfOk).toBe(false);
    expect(f.perfError).toMatch(/perf_event_paranoid is 3/);
    expect(f.perfError).toMatch(/kernel\.perf_event_paranoid=2/);
    // root may open events at any paranoid level
    expect(discoverHost(fakeTree({ paranoid: "3", uid: 0 })).perfOk).toBe(true);
    // CAP_PERFMON (bit 38) is enough too
    expect(discoverHost(fakeTree({ paranoid: "3", uid: 1000, capEff: "0000004000000000" })).perfOk).toBe(true);
  });

  it("is not root without CAP_SETUID even as euid 0, and refuses other page sizes", () => {
    expect(discoverHost(fakeTree({ capEff: "0000000000000000" })).root).toBe(false);
    const big = discoverHost(fakeTree({ pageKb: 64 }));
    expect(big.perfOk).toBe(false);
    expect(big.perfError).toMatch(/page size is 65536/);
  });
});
