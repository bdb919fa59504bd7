/**
 * What the machine is: kernel, profile, the Config programs run under, the AUX PMU, whether
 * perf and uid switching work. Reads a sysfs and a proc root (parameters, so tests can use a
 * fake tree in a temp dir); only with the real roots does it also try perf_event_open.
 */
import { existsSync, readdirSync, readFileSync, openSync, readSync, closeSync } from "node:fs";
import { join } from "node:path";
import type { Config, ProfileId } from "../../spec/program.ts";
import { profileFor } from "../../spec/profiles.ts";
import { libc } from "./libc.ts";
import { probeSoftwareEvent } from "./perf.ts";

export interface HostFacts {
  release: string;
  version: string;
  profile: ProfileId;
  profileWhy: string;
  config: Config;
  auxPmu: { name: string; type: number } | null;
  root: boolean;
  perfOk: boolean;
  perfError?: string;
  testPmuDir: string | null;
}

/** AUX-capable PMUs by sysfs name, best first (the test PMU has fault injection and counters). */
export const AUX_PMU_PATTERNS: readonly RegExp[] = [
  /^auxspec_pmu$/, /^intel_pt$/, /^intel_bts$/, /^arm_spe_\d+$/, /^cs_etm$/, /^hisi_ptt\d*(_\d+)?$/,
];
export const TEST_PMU = "auxspec_pmu";

const CAP_SETUID = 7;
const CAP_SETGID = 6;
const CAP_SYS_ADMIN = 21;
const CAP_PERFMON = 38;
const CAP_SYS_RESOURCE = 24;

function readText(path: string): string | null {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return null;
  }
}

/** The head of a file (smaps of a big process is large; the first page size line is near the top). */
function readHead(path: string, bytes: number): string | null {
  try {
    const fd = openSync(path, "r");
    try {
      const buf = Buffer.alloc(bytes);
      const n = readSync(fd, buf, 0, bytes, 0);
      return buf.subarray(0, n).toString("utf8");
    } finally {
      closeSync(fd);
    }
  } catch {
    return null;
  }
}

/** "0-1,4,6-7" -> 5 (num_online_cpus from /sys/devices/system/cpu/online). */
export function countCpuList(list: string): number {
  let n = 0;
  for (const part of list.trim().split(",")) {
    if (!part) continue;
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) throw new Error(`bad cpu list ${JSON.stringify(list)}`);
    n += m[2] === undefined ? 1 : Number(m[2]) - Number(m[1]) + 1;
  }
  return n;
}

function statusField(status: string, field: string): string | null {
  const m = new RegExp(`^${field}:\\s*(.*)$`, "m").exec(status);
  return m ? m[1].trim() : null;
}

function capBit(hex: string | null, bit: number): boolean {
  if (!hex) return false;
  return ((BigInt(`0x${hex}`) >> BigInt(bit)) & 1n) === 1n;
}

/** RLIMIT_MEMLOCK soft (field 1) or hard (field 2) limit in pages from /proc/self/limits. */
function memlockFromLimits(limits: string | null, pageSize: number, field: 1 | 2 = 1): number | "unlimited" {
  const m = limits ? /^Max locked memory\s+(\S+)\s+(\S+)/m.exec(limits) : null;
  if (!m) return 0;
  return m[field] === "unlimited" ? "unlimited" : Math.floor(Number(m[field]) / pageSize);
}

export function findAuxPmu(sys: string): { name: string; type: number } | null {
  const dir = join(sys, "bus/event_source/devices");
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return null;
  }
  for (const pat of AUX_PMU_PATTERNS) {
    for (const name of names.filter((n) => pat.test(n)).sort()) {
      const t = readText(join(dir, name, "type"));
      if (t !== null && /^\d+$/.test(t.trim())) return { name, type: Number(t.trim()) };
    }
  }
  return null;
}

export function discoverHost(roots?: { sys?: string; proc?: string }): HostFacts {
  const sys = roots?.sys ?? "/sys";
  const proc = roots?.proc ?? "/proc";
  const live = roots?.sys === undefined && roots?.proc === undefined;

  const release = (readText(join(proc, "sys/kernel/osrelease")) ?? "").trim();
  const version = (readText(join(proc, "version")) ?? "").trim();
  if (!release) throw new Error(`cannot read the kernel release from ${join(proc, "sys/kernel/osrelease")}`);
  const choice = profileFor(release, version);

  const online = readText(join(sys, "devices/system/cpu/online"));
  const cpus = online ? countCpuList(online) : 1;
  const smaps = readHead(join(proc, "self/smaps"), 8192);
  const kps = smaps ? /^KernelPageSize:\s+(\d+) kB/m.exec(smaps) : null;
  const pageSize = kps ? Number(kps[1]) * 1024 : 4096;
  const mlockKb = Number((readText(join(proc, "sys/kernel/perf_event_mlock_kb")) ?? "516").trim());
  const paranoidText = readText(join(proc, "sys/kernel/perf_event_paranoid"));
  const paranoid = paranoidText === null ? 2 : Number(paranoidText.trim());
  const status = readText(join(proc, "self/status")) ?? "";
  const uids = (statusField(status, "Uid") ?? "").split(/\s+/).map(Number);
  const capEff = statusField(status, "CapEff");
  const root = uids[1] === 0 && capBit(capEff, CAP_SETUID) && capBit(capEff, CAP_SETGID);
  const limits = readText(join(proc, "self/limits"));
  const memlockPages = memlockFromLimits(limits, pageSize);
  // The executor raises the hard limit to unlimited where it may (CAP_SYS_RESOURCE); else it stays.
  const memlockHardPages = capBit(capEff, CAP_SYS_RESOURCE) ? "unlimited" : memlockFromLimits(limits, pageSize, 2);

  const auxPmu = findAuxPmu(sys);
  const paramDir = join(sys, "module", TEST_PMU, "parameters");
  const testPmuDir = existsSync(paramDir) ? paramDir : null;

  const config: Config = {
    pageSize: 4096,
    cpus,
    mlockKb,
    memlockPages,
    memlockHardPages,
    capIpcLock: false,
    // Not root: setuid to another user answers EPERM (no CAP_SETUID); root switches (default true).
    ...(root ? {} : { capSetuid: false }),
    paranoid: Math.max(-1, Math.min(4, paranoid)),
    pmus: { aux: auxPmu?.name ?? null },
  };

  let perfOk = true;
  let perfError: string | undefined;
  const privileged = uids[1] === 0 || capBit(capEff, CAP_PERFMON) || capBit(capEff, CAP_SYS_ADMIN);
  if (pageSize !== 4096) {
    perfOk = false;
    perfError = `page size is ${pageSize} bytes; auxspec programs assume 4096`;
  } else if (paranoidText === null && live) {
    perfOk = false;
    perfError = `${join(proc, "sys/kernel/perf_event_paranoid")} does not exist: this kernel has no perf events (CONFIG_PERF_EVENTS)`;
  } else if (paranoid > 2 && !privileged) {
    perfOk = false;
    perfError = paranoidAdvice(paranoid, "EACCES is what perf_event_open would return");
  }
  if (perfOk && live) {
    const err = probePerf();
    if (err) {
      perfOk = false;
      perfError = /EACCES|EPERM/.test(err) ? paranoidAdvice(paranoid, err) : err;
    }
  }
  return {
    release,
    version,
    profile: choice.profile,
    profileWhy: choice.why + (choice.exact ? "" : " (nearest profile)"),
    config,
    auxPmu,
    root,
    perfOk,
    ...(perfError ? { perfError } : {}),
    testPmuDir,
  };
}

function paranoidAdvice(paranoid: number, what: string): string {
  return `perf_event_open is not permitted (${what}): /proc/sys/kernel/perf_event_paranoid is ${paranoid}; ` +
    `set it to 2 or lower (sysctl -w kernel.perf_event_paranoid=2) or run as root / with CAP_PERFMON`;
}

/** Opens, maps (1 page) and closes a software dummy event; null when that works, else what failed. */
function probePerf(): string | null {
  try {
    libc();
  } catch (e) {
    return `cannot load the libc bindings or build native/auxprobe.c: ${(e as Error).message}`;
  }
  return probeSoftwareEvent();
}
