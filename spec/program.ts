/**
 * The Program stage: the case format `auxspec-case/1`.
 *
 * A program is a list of ops over *symbolic handles*: events are `e0`, `e1`, ... and
 * mappings are `m0`, `m1`, .... Every `open` introduces a new event handle and every
 * `mmap` introduces a new map handle; later ops may only name handles introduced
 * earlier. That keeps a shrunk program valid and lets a case replay on any backend.
 *
 * Addresses. Each map handle owns two fixed address *slots* (A and B) of SLOT_PAGES
 * pages, so two handles can never alias, even after one was unmapped and the kernel
 * would have reused its address. A handle's *base* is slot A until a `mremap` with
 * `toFresh` succeeds, which moves the range to the other slot and flips the base.
 * Offsets and page numbers in ops are relative to the base. An op on a handle whose
 * `mmap` failed still runs, on the handle's (empty) slot: munmap of nothing is ok,
 * touching nothing is SIGSEGV, exactly as the kernel answers.
 *
 * Events. A handle whose `open` failed, or that was closed, stands for fd -1: every
 * syscall on it answers EBADF (the executor never lets a closed fd number be reused by
 * a later handle). Where a dead handle is an *argument*: `open {outputTo: dead}` passes
 * group_fd -1 (no group, so the open proceeds without output redirection, flags still
 * PERF_FLAG_FD_OUTPUT); `setOutput {target: dead}` passes the C int -1 through the
 * variadic ioctl, which arrives as 0xffffffff and answers EBADF (only `target: null`
 * passes (unsigned long)-1, "no output").
 *
 * This module holds the Zod schemas (parsed at the edges only) and the types derived
 * from them with z.infer; nothing here runs in the hot loop except `programHandles`.
 */
import { z } from "zod";

export const CASE_FORMAT = "auxspec-case/1" as const;

/** Largest mapping a program may ask for, in pages (keeps every op inside a slot). */
export const MAX_PAGES = 2048;
/** Pages per address slot; a handle's ops address [0, SLOT_PAGES) from its base. */
export const SLOT_PAGES = 8192;

export const EvHandle = z.string().regex(/^e\d+$/, "event handles are e0, e1, ...");
export const MapHandle = z.string().regex(/^m\d+$/, "map handles are m0, m1, ...");
const Pages = z.number().int().min(0).max(MAX_PAGES);
const Offset = z.number().int().min(0).max(SLOT_PAGES - MAX_PAGES);

export const Prot = z.enum(["none", "r", "rw", "rx", "rwx"]);
export type Prot = z.infer<typeof Prot>;

export const ProfileId = z.enum(["seed", "6.1-pre148", "6.1", "6.12-pre42", "6.12", "6.18"]);
export type ProfileId = z.infer<typeof ProfileId>;
export const PROFILES: readonly ProfileId[] = ProfileId.options;

export const Op = z.discriminatedUnion("op", [
  /** perf_event_open(attr, pid=0, cpu, group_fd=outputTo, outputTo ? PERF_FLAG_FD_OUTPUT : 0).
   *  pmu "sw" is PERF_COUNT_SW_DUMMY; "aux" is the machine's AUX PMU. Events start disabled. */
  z.object({
    op: z.literal("open"),
    ev: EvHandle,
    pmu: z.enum(["sw", "aux"]),
    cpu: z.number().int().min(-1).max(4095).optional(),
    inherit: z.boolean().optional(),
    outputTo: EvHandle.optional(),
  }).strict(),
  /** close(fd) */
  z.object({ op: z.literal("close"), ev: EvHandle }).strict(),
  /** mmap(slot base, pages * PAGE_SIZE, prot, MAP_SHARED (MAP_PRIVATE when shared is false), fd, pgoff * PAGE_SIZE).
   *  `shared` defaults to true. */
  z.object({
    op: z.literal("mmap"),
    map: MapHandle,
    ev: EvHandle,
    pages: Pages,
    pgoff: z.number().int().min(0).max(1 << 20),
    prot: Prot,
    shared: z.boolean().optional(),
  }).strict(),
  /** munmap(base + offset, pages); pages defaults to the handle's mmap size. */
  z.object({ op: z.literal("munmap"), map: MapHandle, offset: Offset.optional(), pages: Pages.optional() }).strict(),
  /** mremap(base + offset, oldPages, newPages, flags). toFresh: MREMAP_MAYMOVE|MREMAP_FIXED to the
   *  same offset in the handle's other slot (the base flips on success). */
  z.object({
    op: z.literal("mremap"),
    map: MapHandle,
    offset: Offset.optional(),
    oldPages: Pages,
    newPages: Pages,
    mayMove: z.boolean().optional(),
    toFresh: z.boolean().optional(),
  }).strict(),
  /** mprotect(base + offset, pages, prot); pages defaults to the handle's mmap size. */
  z.object({ op: z.literal("mprotect"), map: MapHandle, offset: Offset.optional(), pages: Pages.optional(), prot: Prot }).strict(),
  /** mmap(base + offset, pages, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED, -1, 0) */
  z.object({ op: z.literal("mapFixedAnon"), map: MapHandle, offset: Offset, pages: Pages.min(1) }).strict(),
  /** Writes aux_offset = offsetPages * PAGE_SIZE and aux_size = sizePages * PAGE_SIZE through the
   *  handle's page 0 (the user page when the handle maps a data buffer). */
  z.object({
    op: z.literal("setAux"),
    map: MapHandle,
    offsetPages: z.number().int().min(0).max(1 << 20),
    sizePages: z.number().int().min(0).max(1 << 20),
  }).strict(),
  /** ioctl(fd, PERF_EVENT_IOC_SET_OUTPUT, target ? target fd : (unsigned long)-1) */
  z.object({ op: z.literal("setOutput"), ev: EvHandle, target: EvHandle.nullable() }).strict(),
  /** setrlimit(RLIMIT_MEMLOCK) soft limit, in pages (hard limit stays unlimited). */
  z.object({ op: z.literal("rlimit"), memlockPages: z.union([z.number().int().min(0).max(1 << 30), z.literal("unlimited")]) }).strict(),
  /** Writes /proc/sys/kernel/perf_event_mlock_kb (a global sysctl: model and VM backends only). */
  z.object({ op: z.literal("sysctlMlock"), kb: z.number().int().min(0).max(1 << 20) }).strict(),
  /** Makes the AUX PMU's setup_aux fail (return NULL) or succeed (test PMU and model only). */
  z.object({ op: z.literal("auxFault"), fail: z.boolean() }).strict(),
  /** Reads (or writes, when write) one byte of page `page` from the base, in a child process. */
  z.object({ op: z.literal("touch"), map: MapHandle, page: z.number().int().min(0).max(SLOT_PAGES - 1), write: z.boolean() }).strict(),
  /** Reads data_offset, data_size, aux_head, aux_offset, aux_size from the handle's page 0. */
  z.object({ op: z.literal("readUserPage"), map: MapHandle }).strict(),
]);
export type Op = z.infer<typeof Op>;
export type OpKind = Op["op"];
export const OP_KINDS: readonly OpKind[] = Op.options.map((o) => o.shape.op.value);

/** The machine a program runs on. Backends report theirs; a case pins one. */
export const Config = z.object({
  pageSize: z.literal(4096),
  /** num_online_cpus() */
  cpus: z.number().int().min(1).max(4096),
  /** /proc/sys/kernel/perf_event_mlock_kb at the start */
  mlockKb: z.number().int().min(0).max(2147483647, "perf_event_mlock_kb is a C int: at most 2147483647"),
  /** RLIMIT_MEMLOCK soft limit at the start, in pages */
  memlockPages: z.union([z.number().int().min(0), z.literal("unlimited")]),
  /** RLIMIT_MEMLOCK hard limit, in pages (default unlimited). An `rlimit` op asking for a soft
   *  limit above it answers EINVAL (do_prlimit: rlim_cur > rlim_max); backends keep it as found. */
  memlockHardPages: z.union([z.number().int().min(0), z.literal("unlimited")]).optional(),
  /** user->locked_vm (pages) when the program starts: 0 for a fresh uid (default); a shared uid's
   *  measured start (non-root host runs: earlier programs' leaks stay charged to the user). */
  lockedVmPages: z.number().int().min(0).optional(),
  /** whether the program runs with CAP_IPC_LOCK */
  capIpcLock: z.boolean(),
  /** /proc/sys/kernel/perf_event_paranoid */
  paranoid: z.number().int().min(-1).max(4),
  /** Which PMUs exist. Software events always do; `aux` names the AUX-capable PMU, or null. */
  pmus: z.object({ aux: z.string().nullable() }).strict(),
}).strict();
export type Config = z.infer<typeof Config>;

export const Errno = z.string().regex(/^(E[A-Z0-9]+|ERRNO_\d+)$/, "an errno name such as EINVAL");
export type Errno = z.infer<typeof Errno>;

/** What readUserPage observes (bytes; numbers stay exact below 2^53, larger values saturate). */
export const UserPageObs = z.object({
  dataOffset: z.number(),
  dataSize: z.number(),
  auxHead: z.number(),
  auxOffset: z.number(),
  auxSize: z.number(),
}).strict();
export type UserPageObs = z.infer<typeof UserPageObs>;

export const Outcome = z.union([
  z.object({ ok: z.literal(true), page: UserPageObs.optional() }).strict(),
  z.object({ errno: Errno }).strict(),
  z.object({ signal: z.enum(["SIGBUS", "SIGSEGV"]) }).strict(),
]);
export type Outcome = z.infer<typeof Outcome>;

export const Program = z.array(Op).max(256);
export type Program = z.infer<typeof Program>;

export const Case = z.object({
  format: z.literal(CASE_FORMAT),
  name: z.string().min(1),
  description: z.string().optional(),
  profile: ProfileId.optional(),
  config: Config,
  program: Program,
  /** The outcome of each op that the case asserts (same length as program). */
  expect: z.array(Outcome).optional(),
  /** The verdict the spec gives the case under its profile, when it is not "accepted": a
   *  profile whose own rules break a conservation invariant (the seed, the pre-fix LTS
   *  kernels) or predict a kernel warning must say so. Replay on the model checks it. */
  verdict: z.union([
    z.literal("accepted"),
    z.object({ kind: z.enum(["outcome", "vmpin", "invariant", "kernel-warning"]), rule: z.string().min(1) }).strict(),
  ]).optional(),
  /** Reference-model bugs this case was found with (reference/bugs.ts ids). */
  bugs: z.array(z.string()).optional(),
}).strict().superRefine((c, ctx) => {
  const problems = programProblems(c.program);
  for (const p of problems) ctx.addIssue({ code: "custom", path: ["program", p.index, p.field], message: p.message });
  if (c.expect && c.expect.length !== c.program.length) {
    ctx.addIssue({ code: "custom", path: ["expect"], message: `expect has ${c.expect.length} outcomes for ${c.program.length} ops` });
  }
});
export type Case = z.infer<typeof Case>;

export interface ProgramProblem { index: number; field: string; message: string }

/**
 * Handle discipline: each open/mmap introduces a fresh handle, every other reference names
 * one introduced earlier. Returns the problems (empty when the program is valid).
 */
export function programProblems(program: readonly Op[]): ProgramProblem[] {
  const evs = new Set<string>();
  const maps = new Set<string>();
  const out: ProgramProblem[] = [];
  const needEv = (i: number, field: string, h: string) => {
    if (!evs.has(h)) out.push({ index: i, field, message: `event handle ${h} is used before an open introduces it` });
  };
  const needMap = (i: number, h: string) => {
    if (!maps.has(h)) out.push({ index: i, field: "map", message: `map handle ${h} is used before an mmap introduces it` });
  };
  program.forEach((op, i) => {
    switch (op.op) {
      case "open":
        if (op.outputTo !== undefined) needEv(i, "outputTo", op.outputTo);
        if (evs.has(op.ev)) out.push({ index: i, field: "ev", message: `event handle ${op.ev} is opened twice` });
        evs.add(op.ev);
        break;
      case "mmap":
        needEv(i, "ev", op.ev);
        if (maps.has(op.map)) out.push({ index: i, field: "map", message: `map handle ${op.map} is mapped twice` });
        maps.add(op.map);
        break;
      case "close":
        needEv(i, "ev", op.ev);
        break;
      case "setOutput":
        needEv(i, "ev", op.ev);
        if (op.target !== null) needEv(i, "target", op.target);
        break;
      case "munmap": case "mremap": case "mprotect": case "mapFixedAnon": case "setAux": case "touch": case "readUserPage":
        needMap(i, op.map);
        break;
      case "rlimit": case "sysctlMlock": case "auxFault":
        break;
    }
  });
  return out;
}

/** Handles in order of introduction, and each map handle's mmap size (the default for munmap/mprotect). */
export function programHandles(program: readonly Op[]): { evs: string[]; maps: string[]; mapPages: Map<string, number> } {
  const evs: string[] = [];
  const maps: string[] = [];
  const mapPages = new Map<string, number>();
  for (const op of program) {
    if (op.op === "open") evs.push(op.ev);
    else if (op.op === "mmap") { maps.push(op.map); mapPages.set(op.map, op.pages); }
  }
  return { evs, maps, mapPages };
}

/** Index of a handle: e3 -> 3, m12 -> 12 (slot addresses are derived from it). */
export function handleIndex(h: string): number {
  return Number(h.slice(1));
}

/** Format a Zod error as `path: message` lines (for the CLI and case loading). */
export function formatZodError(err: z.ZodError): string {
  return err.issues.map((i) => `  ${i.path.length ? i.path.join(".") : "(root)"}: ${i.message}`).join("\n");
}
