/**
 * Op lowering: one function per op kind, from a spec Op to the syscalls (through koffi) and
 * its Outcome, matched exhaustively with ts-pattern. The C side of the same lowering is
 * runtime/auxspec.h (ax_run_op); both must give the same traces (test/hwtest/native.test.ts).
 *
 * Map handle m lives at its two slots (spec/audit.ts: SLOT_BASE + slotPage(m, 0|1) pages);
 * mmap places it at slot A with MAP_FIXED_NOREPLACE, mremap toFresh moves it to the other.
 */
import { join } from "node:path";
import { match } from "ts-pattern";
import type { Config, Op, Outcome } from "../../spec/program.ts";
import { handleIndex } from "../../spec/program.ts";
import { SLOT_BASE, SLOT_BYTES } from "../../spec/audit.ts";
import type { HostFacts } from "./discover.ts";
import { errnoName } from "./errno.ts";
import {
  ACCESS, MAP_ANONYMOUS, MAP_FIXED, MAP_FIXED_NOREPLACE, MAP_PRIVATE, MAP_SHARED, MREMAP_FIXED, MREMAP_MAYMOVE, PAGE,
  PERF_COUNT_SW_DUMMY, PERF_EVENT_IOC_SET_OUTPUT, PERF_FLAG_FD_CLOEXEC, PERF_FLAG_FD_OUTPUT, PERF_TYPE_SOFTWARE, PROT,
  SIGBUS, SIGSEGV, type Libc,
} from "./libc.ts";
import { writeAttr } from "./perf.ts";
import { HarnessError, type Ctx } from "./context.ts";
import { PROC_MLOCK, type Identity } from "./identity.ts";

/** A type no PMU has: what pmu "aux" opens on a machine without an AUX PMU (the kernel says ENOENT). */
export const NO_SUCH_PMU_TYPE = 0x7ffffff0;

/** One program's handles: event fds, where each map handle is now, mappings moved outside the slots. */
export interface Handles {
  evFd: Map<string, number>;
  base: Map<string, number>;
  strays: Array<[number, number]>;
  mapPages: Map<string, number>;
}

/** Everything an op needs. */
export interface Lowering {
  c: Ctx;
  l: Libc;
  id: Identity;
  h: Handles;
  facts: HostFacts;
  config: Config;
  access: Libc["access"];
  auxType: number;
}

const ok: Outcome = { ok: true };
const errnoCache = new Map<number, Outcome>();
function errOutcome(e: number): Outcome {
  let o = errnoCache.get(e);
  if (!o) { o = { errno: errnoName(e) }; errnoCache.set(e, o); }
  return o;
}

function toNumber(v: bigint): number {
  return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v);
}

export const slotA = (m: string): number => SLOT_BASE + handleIndex(m) * 2 * SLOT_BYTES;
const slotB = (m: string): number => slotA(m) + SLOT_BYTES;
const baseOf = (s: Lowering, m: string): number => s.h.base.get(m) ?? slotA(m);
const fdOf = (s: Lowering, e: string): number => s.h.evFd.get(e) ?? -1;
const done = (s: Lowering, r: number): Outcome => (r === 0 ? ok : errOutcome(s.l.errno()));

type OpOf<K extends Op["op"]> = Extract<Op, { op: K }>;

function accessOutcome(s: Lowering, kind: number, addr: number, a: bigint, b: bigint, out: BigUint64Array | null): Outcome {
  const r = s.access(kind, addr, a, b, out);
  if (r === 0) return ok;
  if (r === SIGBUS) return { signal: "SIGBUS" };
  if (r === SIGSEGV) return { signal: "SIGSEGV" };
  throw new HarnessError(`page access at 0x${addr.toString(16)} failed in the harness (auxprobe code ${r})`);
}

function open(s: Lowering, op: OpOf<"open">): Outcome {
  const out = op.outputTo !== undefined ? fdOf(s, op.outputTo) : -1;
  const sw = op.pmu === "sw";
  writeAttr(s.c.attr, {
    type: sw ? PERF_TYPE_SOFTWARE : s.auxType,
    config: sw ? BigInt(PERF_COUNT_SW_DUMMY) : 0n,
    inherit: op.inherit === true,
    excludeKernel: true,
  });
  const flags = PERF_FLAG_FD_CLOEXEC | (op.outputTo !== undefined ? PERF_FLAG_FD_OUTPUT : 0);
  const fd = s.l.perfEventOpen(s.c.attr, 0, op.cpu ?? -1, out, flags);
  if (fd < 0) { const e = s.l.errno(); s.h.evFd.set(op.ev, -1); return errOutcome(e); }
  s.h.evFd.set(op.ev, fd);
  return ok;
}

function close(s: Lowering, op: OpOf<"close">): Outcome {
  const fd = fdOf(s, op.ev);
  s.h.evFd.set(op.ev, -1); // never reuse the number for this handle, whatever close says
  return done(s, s.l.close(fd));
}

function mmap(s: Lowering, op: OpOf<"mmap">): Outcome {
  const addr = slotA(op.map);
  s.h.base.set(op.map, addr);
  const flags = (op.shared === false ? MAP_PRIVATE : MAP_SHARED) | MAP_FIXED_NOREPLACE; // shared defaults to true
  const r = s.l.mmap(addr, op.pages * PAGE, PROT[op.prot], flags, fdOf(s, op.ev), op.pgoff * PAGE);
  if (r === -1) return errOutcome(s.l.errno());
  if (r !== addr) {
    s.h.strays.push([r, op.pages * PAGE]);
    throw new HarnessError(`mmap at 0x${addr.toString(16)} landed at 0x${r.toString(16)} (MAP_FIXED_NOREPLACE ignored?)`);
  }
  return ok;
}

function munmap(s: Lowering, op: OpOf<"munmap">): Outcome {
  const pages = op.pages ?? s.h.mapPages.get(op.map) ?? 0;
  return done(s, s.l.munmap(baseOf(s, op.map) + (op.offset ?? 0) * PAGE, pages * PAGE));
}

function mremap(s: Lowering, op: OpOf<"mremap">): Outcome {
  const b = baseOf(s, op.map);
  const from = b + (op.offset ?? 0) * PAGE;
  const other = b === slotA(op.map) ? slotB(op.map) : slotA(op.map);
  let flags = op.mayMove ? MREMAP_MAYMOVE : 0;
  let to = 0;
  if (op.toFresh) { flags |= MREMAP_MAYMOVE | MREMAP_FIXED; to = other + (op.offset ?? 0) * PAGE; }
  const r = s.l.mremap(from, op.oldPages * PAGE, op.newPages * PAGE, flags, to);
  if (r === -1) return errOutcome(s.l.errno());
  if (op.toFresh) s.h.base.set(op.map, other);
  else if (r !== from) s.h.strays.push([r, op.newPages * PAGE]); // moved outside the slots
  return ok;
}

function mprotect(s: Lowering, op: OpOf<"mprotect">): Outcome {
  const pages = op.pages ?? s.h.mapPages.get(op.map) ?? 0;
  return done(s, s.l.mprotect(baseOf(s, op.map) + (op.offset ?? 0) * PAGE, pages * PAGE, PROT[op.prot]));
}

function mapFixedAnon(s: Lowering, op: OpOf<"mapFixedAnon">): Outcome {
  const r = s.l.mmap(baseOf(s, op.map) + op.offset * PAGE, op.pages * PAGE, PROT.rw, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
  return r === -1 ? errOutcome(s.l.errno()) : ok;
}

function setAux(s: Lowering, op: OpOf<"setAux">): Outcome {
  return accessOutcome(s, ACCESS.setAux, baseOf(s, op.map), BigInt(op.offsetPages) * 4096n, BigInt(op.sizePages) * 4096n, null);
}

function setOutput(s: Lowering, op: OpOf<"setOutput">): Outcome {
  // target null: (unsigned long)-1, "no output". A dead target handle is the C int -1
  // widened through the variadic ioctl (0xffffffff): EBADF, like any syscall on fd -1.
  let arg: bigint;
  if (op.target === null) arg = 0xffffffffffffffffn;
  else { const t = fdOf(s, op.target); arg = t < 0 ? 0xffffffffn : BigInt(t); }
  return done(s, s.l.ioctl(fdOf(s, op.ev), PERF_EVENT_IOC_SET_OUTPUT, arg));
}

function rlimit(s: Lowering, op: OpOf<"rlimit">): Outcome {
  const e = s.id.setMemlock(op.memlockPages);
  return e === 0 ? ok : errOutcome(e);
}

function sysctlMlock(s: Lowering, op: OpOf<"sysctlMlock">): Outcome {
  const o = s.id.writeFile(PROC_MLOCK, String(op.kb));
  s.id.mlockTouched = true;
  return o;
}

function auxFault(s: Lowering, op: OpOf<"auxFault">): Outcome {
  s.id.auxFaultTouched = true;
  return s.id.writeFile(join(s.facts.testPmuDir!, "fail_setup_aux"), op.fail ? "Y" : "N");
}

function touch(s: Lowering, op: OpOf<"touch">): Outcome {
  return accessOutcome(s, op.write ? ACCESS.write : ACCESS.read, baseOf(s, op.map) + op.page * PAGE, 0n, 0n, null);
}

function readUserPage(s: Lowering, op: OpOf<"readUserPage">): Outcome {
  const o = accessOutcome(s, ACCESS.readPage, baseOf(s, op.map), 0n, 0n, s.c.page);
  if (!("ok" in o)) return o;
  const p = s.c.page;
  return { ok: true, page: { dataOffset: toNumber(p[0]), dataSize: toNumber(p[1]), auxHead: toNumber(p[2]), auxOffset: toNumber(p[3]), auxSize: toNumber(p[4]) } };
}

/** The model-only map_range() fault switch (spec/program.ts): no kernel hook can make map_range() fail. */
const MAP_RANGE_FAULT_REFUSED = "mapRangeFault cannot be injected on a real kernel (map_range() is core kernel code; the backend lists it unsupported)";

/** Runs one op on the live kernel: its Outcome (errno by name, signal), or throws HarnessError. */
export function lowerOp(s: Lowering, op: Op): Outcome {
  return match(op)
    .with({ op: "open" }, (o) => open(s, o))
    .with({ op: "close" }, (o) => close(s, o))
    .with({ op: "mmap" }, (o) => mmap(s, o))
    .with({ op: "munmap" }, (o) => munmap(s, o))
    .with({ op: "mremap" }, (o) => mremap(s, o))
    .with({ op: "mprotect" }, (o) => mprotect(s, o))
    .with({ op: "mapFixedAnon" }, (o) => mapFixedAnon(s, o))
    .with({ op: "setAux" }, (o) => setAux(s, o))
    .with({ op: "setOutput" }, (o) => setOutput(s, o))
    .with({ op: "rlimit" }, (o) => rlimit(s, o))
    .with({ op: "sysctlMlock" }, (o) => sysctlMlock(s, o))
    .with({ op: "auxFault" }, (o) => auxFault(s, o))
    .with({ op: "mapRangeFault" }, () => { throw new HarnessError(MAP_RANGE_FAULT_REFUSED); })
    .with({ op: "touch" }, (o) => touch(s, o))
    .with({ op: "readUserPage" }, (o) => readUserPage(s, o))
    // One process only: runProgramHere refuses multi-process programs before any op runs (the
    // host backend sends them to the C agent, runtime/agent.c + runtime/procs.h).
    .with({ op: "fork" }, { op: "exit" }, { op: "setuid" }, { op: "sendFd" }, { op: "thread" }, { op: "par" }, (o) => {
      throw new HarnessError(`${o.op}: the TypeScript executor runs one process (the C agent runs multi-process programs)`);
    })
    .exhaustive();
}
