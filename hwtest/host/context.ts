/**
 * What the host executor keeps across programs (one per process): the libc bindings, the
 * /proc/thread-self/status fd for VmPin, the /dev/kmsg fd (root), reusable buffers and the
 * next fresh uid; and the error a harness failure throws (the program's trace is then aborted).
 */
import { errnoName } from "./errno.ts";
import { libc, PERF_ATTR_SIZE_VER8, type Libc } from "./libc.ts";

/** The executor's own failure (not the kernel's answer): the trace becomes `aborted`. */
export class HarnessError extends Error {}

export interface Ctx {
  l: Libc;
  statusFd: number;
  kmsgFd: number | null;
  pid: number;
  attr: Buffer;
  page: BigUint64Array;
  rlim: BigUint64Array;
  uidNext: number;
  /** RLIMIT_MEMLOCK hard limit this process can set (RLIM_INFINITY once raised), or null before the first try. */
  hardLimit: bigint | null;
  kmsgBuf: Buffer;
  initUid: number;
  initEuid: number;
}
let ctx: Ctx | null = null;

export function context(): Ctx {
  if (ctx) return ctx;
  const l = libc();
  // thread-self: the same mm-wide VmPin, a little cheaper to generate than the tgid view.
  const statusFd = l.open("/proc/thread-self/status", 0 /* O_RDONLY */ | 0o2000000 /* O_CLOEXEC */);
  if (statusFd < 0) throw new Error(`cannot open /proc/thread-self/status: ${errnoName(l.errno())}`);
  let kmsgFd: number | null = null;
  if (l.geteuid() === 0) {
    const fd = l.open("/dev/kmsg", 0o4000 /* O_NONBLOCK */ | 0o2000000);
    if (fd >= 0) {
      kmsgSeekEnd(l, fd);
      kmsgFd = fd;
    }
  }
  ctx = {
    l, statusFd, kmsgFd, pid: l.getpid(), initUid: l.getuid(), initEuid: l.geteuid(),
    attr: Buffer.alloc(PERF_ATTR_SIZE_VER8),
    page: new BigUint64Array(5),
    rlim: new BigUint64Array(2),
    hardLimit: null,
    kmsgBuf: Buffer.alloc(8192),
    // A random base per process: uids above 1e6 that no real account uses; two processes collide
    // only if their bases fall within their program counts of each other.
    uidNext: 1_000_000 + Math.floor(Math.random() * 2_000_000_000),
  };
  return ctx;
}

/** Skips the kernel log backlog: reads every record present now (non-blocking fd). */
function kmsgSeekEnd(l: Libc, fd: number): void {
  const buf = Buffer.alloc(8192);
  for (let i = 0; i < 1_000_000; i++) {
    if (l.read(fd, buf, buf.length) < 0 && l.errno() !== 32 /* EPIPE: overwritten, go on */) return;
  }
}

/** VmPin in kB (mm->pinned_vm; negative when it went below 0). */
export function vmPin(c: Ctx): number {
  const v: number | bigint = c.l.vmpinKb(c.statusFd);
  if (typeof v !== "number" || v < -(2 ** 52)) throw new HarnessError("cannot read VmPin from /proc/self/status");
  return v;
}

/** For tests: closes the process-wide fds (the next program reopens them). */
export function resetContext(): void {
  if (!ctx) return;
  ctx.l.close(ctx.statusFd);
  if (ctx.kmsgFd !== null) ctx.l.close(ctx.kmsgFd);
  ctx = null;
}
