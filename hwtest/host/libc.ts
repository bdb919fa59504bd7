/**
 * libc and kernel calls through koffi 3, plus the auxprobe helpers (native/auxprobe.c).
 *
 * koffi 3 notes: pointer returns are BigInt (MAP_FAILED = 0xffffffffffffffffn, never null),
 * so addresses are declared `intptr_t` here and travel as plain numbers (the slots live below
 * 2^47, exact in a double) and MAP_FAILED comes back as -1. `koffi.errno()` is read right
 * after each call (koffi saves errno per call on this thread).
 *
 * Variadic libc functions (syscall, ioctl, mremap) are declared with fixed prototypes: on
 * x86-64 and aarch64 Linux the fixed and variadic integer calling conventions agree, and a
 * fixed `unsigned long` third argument is what makes `(unsigned long)-1` reach
 * PERF_EVENT_IOC_SET_OUTPUT intact (a C int -1 through the variadic ioctl arrives as
 * 0xffffffff and gives EBADF: notes/kernel-semantics.md §8).
 */
import koffi from "koffi";
import { auxprobePath } from "./native/build.ts";

export const PAGE = 4096;

export const PROT = { none: 0, r: 1, rw: 3, rx: 5, rwx: 7 } as const;
export const MAP_SHARED = 0x01;
export const MAP_PRIVATE = 0x02;
export const MAP_FIXED = 0x10;
export const MAP_ANONYMOUS = 0x20;
export const MAP_FIXED_NOREPLACE = 0x100000;
export const MREMAP_MAYMOVE = 1;
export const MREMAP_FIXED = 2;
export const RLIMIT_MEMLOCK = 8;
export const RLIM_INFINITY = 0xffffffffffffffffn;
/** _IO('$', 5) */
export const PERF_EVENT_IOC_SET_OUTPUT = 0x2405;
export const PERF_FLAG_FD_OUTPUT = 1 << 1;
export const PERF_FLAG_FD_CLOEXEC = 1 << 3;
export const PERF_TYPE_SOFTWARE = 1;
export const PERF_COUNT_SW_DUMMY = 9;
/** include/uapi/linux/perf_event.h: PERF_ATTR_SIZE_VER8 (config3, 6.3+). Older kernels accept
 *  a larger attr when the bytes they do not know are zero (perf_copy_attr, copy_struct_from_user). */
export const PERF_ATTR_SIZE_VER8 = 136;
export const CAP_IPC_LOCK = 14;
export const SIGBUS = 7;
export const SIGSEGV = 11;

/** Syscall numbers the libc wrappers do not cover (or that we call raw). */
const SYSNO: Record<string, { perf_event_open: number; capget: number; capset: number; setresuid: number; setresgid: number }> = {
  x64: { perf_event_open: 298, capget: 125, capset: 126, setresuid: 117, setresgid: 119 },
  arm64: { perf_event_open: 241, capget: 90, capset: 91, setresuid: 147, setresgid: 149 },
};

export const ACCESS = { read: 0, write: 1, setAux: 2, readPage: 3 } as const;

export interface Libc {
  perfEventOpen(attr: Buffer, pid: number, cpu: number, groupFd: number, flags: number): number;
  mmap(addr: number, len: number, prot: number, flags: number, fd: number, off: number): number;
  munmap(addr: number, len: number): number;
  mremap(old: number, oldLen: number, newLen: number, flags: number, newAddr: number): number;
  mprotect(addr: number, len: number, prot: number): number;
  close(fd: number): number;
  /** ioctl(fd, req, (unsigned long)arg): arg as a bigint so that 2^64-1 passes whole. */
  ioctl(fd: number, req: number, arg: bigint): number;
  open(path: string, flags: number): number;
  read(fd: number, buf: Buffer, len: number): number;
  getrlimit(res: number, out: BigUint64Array): number;
  setrlimit(res: number, lim: BigUint64Array): number;
  /** glibc setresuid/setresgid: every thread of the process changes (SIGSETXID broadcast,
   *  about 0.3 ms with Node's threads). */
  setresuid(r: number, e: number, s: number): number;
  setresgid(r: number, e: number, s: number): number;
  /** The raw syscalls: only the calling thread changes (about 1 us). */
  setresuidThread(r: number, e: number, s: number): number;
  setresgidThread(r: number, e: number, s: number): number;
  getuid(): number;
  geteuid(): number;
  getpid(): number;
  capget(hdr: Uint32Array, data: Uint32Array): number;
  capset(hdr: Uint32Array, data: Uint32Array): number;
  errno(): number;
  /** native/auxprobe.c: 0, a signal number, or negative (harness failure). */
  access(kind: number, addr: number, a: bigint, b: bigint, out: BigUint64Array | null): number;
  accessInproc(kind: number, addr: number, a: bigint, b: bigint, out: BigUint64Array | null): number;
  /** kB (negative when pinned_vm is negative); a bigint or a huge negative value on failure. */
  vmpinKb(fd: number): number | bigint;
}

let cached: Libc | null = null;

export function libc(): Libc {
  if (cached) return cached;
  const nr = SYSNO[process.arch];
  if (!nr) throw new Error(`the host backend knows syscall numbers for x64 and arm64 only, not ${process.arch}`);
  const lib = koffi.load("libc.so.6");
  const probe = koffi.load(auxprobePath());
  const perf = lib.func("long syscall(long nr, void *attr, int pid, int cpu, int group_fd, unsigned long flags)");
  const cap = lib.func("long syscall(long nr, void *hdr, void *data)");
  const ids = lib.func("long syscall(long nr, uint32_t r, uint32_t e, uint32_t s)");
  const access = probe.func("int auxprobe_access(int kind, uint64_t addr, uint64_t a, uint64_t b, uint64_t *out)");
  const accessInproc = probe.func("int auxprobe_access_inproc(int kind, uint64_t addr, uint64_t a, uint64_t b, uint64_t *out)");
  const l: Libc = {
    perfEventOpen: (attr, pid, cpu, gfd, flags) => Number(perf(nr.perf_event_open, attr, pid, cpu, gfd, flags)),
    mmap: lib.func("intptr_t mmap(intptr_t addr, size_t len, int prot, int flags, int fd, intptr_t off)"),
    munmap: lib.func("int munmap(intptr_t addr, size_t len)"),
    mremap: lib.func("intptr_t mremap(intptr_t old, size_t old_len, size_t new_len, int flags, intptr_t new_addr)"),
    mprotect: lib.func("int mprotect(intptr_t addr, size_t len, int prot)"),
    close: lib.func("int close(int fd)"),
    ioctl: lib.func("int ioctl(int fd, unsigned long req, uint64_t arg)"),
    open: lib.func("int open(const char *path, int flags)"),
    read: lib.func("long read(int fd, void *buf, size_t len)"),
    getrlimit: lib.func("int getrlimit(int res, uint64_t *lim)"),
    setrlimit: lib.func("int setrlimit(int res, const uint64_t *lim)"),
    setresuid: lib.func("int setresuid(uint32_t r, uint32_t e, uint32_t s)"),
    setresgid: lib.func("int setresgid(uint32_t r, uint32_t e, uint32_t s)"),
    setresuidThread: (r, e, s) => Number(ids(nr.setresuid, r, e, s)),
    setresgidThread: (r, e, s) => Number(ids(nr.setresgid, r, e, s)),
    getuid: lib.func("uint32_t getuid()"),
    geteuid: lib.func("uint32_t geteuid()"),
    getpid: lib.func("int getpid()"),
    capget: (hdr, data) => Number(cap(nr.capget, hdr, data)),
    capset: (hdr, data) => Number(cap(nr.capset, hdr, data)),
    errno: () => koffi.errno(),
    access: (kind, addr, a, b, out) => access(kind, addr, a, b, out),
    accessInproc: (kind, addr, a, b, out) => accessInproc(kind, addr, a, b, out),
    vmpinKb: probe.func("long auxprobe_vmpin_kb(int fd)"),
  };
  cached = l;
  return l;
}

/** _LINUX_CAPABILITY_VERSION_3 capget/capset on this thread. */
const CAP_V3 = 0x20080522;
export interface Caps { effective: bigint; permitted: bigint; inheritable: bigint }

export function capGet(): Caps {
  const l = libc();
  const hdr = new Uint32Array([CAP_V3, 0]);
  const data = new Uint32Array(6);
  if (l.capget(hdr, data) !== 0) throw new Error(`capget: errno ${l.errno()}`);
  const join = (lo: number, hi: number) => BigInt(lo) | (BigInt(hi) << 32n);
  return { effective: join(data[0], data[3]), permitted: join(data[1], data[4]), inheritable: join(data[2], data[5]) };
}

const fastHdr = new Uint32Array(2);
const fastData = new Uint32Array(6);
/** Whether `cap` (< 32) is in this thread's effective set; one capget, no allocation. */
export function capEffective(cap: number): boolean {
  fastHdr[0] = CAP_V3; fastHdr[1] = 0;
  if (libc().capget(fastHdr, fastData) !== 0) throw new Error(`capget: errno ${libc().errno()}`);
  return ((fastData[0] >>> cap) & 1) === 1;
}

/** Sets this thread's capability sets; returns errno (0 on success). */
export function capSet(c: Caps): number {
  const l = libc();
  const hdr = new Uint32Array([CAP_V3, 0]);
  const lo = (v: bigint) => Number(v & 0xffffffffn);
  const hi = (v: bigint) => Number((v >> 32n) & 0xffffffffn);
  const data = new Uint32Array([lo(c.effective), lo(c.permitted), lo(c.inheritable), hi(c.effective), hi(c.permitted), hi(c.inheritable)]);
  return l.capset(hdr, data) === 0 ? 0 : l.errno();
}

export function hasCap(set: bigint, cap: number): boolean {
  return ((set >> BigInt(cap)) & 1n) === 1n;
}
