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
/** Most processes a program may have (p0 .. p3) and most users it may name (u0 .. u3). */
export const MAX_PROCS = 4;
export const MAX_USERS = 4;
/** Process handles: p0 is the program's initial process, every other one is introduced by a `fork`. */
export const ProcHandle = z.string().regex(/^p[0-3]$/, `process handles are p0 .. p${MAX_PROCS - 1}`);
/** User handles: u0 is the user every process starts as; others are named by `setuid`. */
export const UserHandle = z.string().regex(/^u[0-3]$/, `user handles are u0 .. u${MAX_USERS - 1}`);
const Proc = ProcHandle.optional();
const Pages = z.number().int().min(0).max(MAX_PAGES);
const Offset = z.number().int().min(0).max(SLOT_PAGES - MAX_PAGES);

export const Prot = z.enum(["none", "r", "rw", "rx", "rwx"]);
export type Prot = z.infer<typeof Prot>;

export const ProfileId = z.enum(["seed", "5.10-pre241", "5.10", "6.1-pre148", "6.1", "6.12-pre42", "6.12", "6.16", "6.17", "6.18", "7.2"]);
export type ProfileId = z.infer<typeof ProfileId>;
export const PROFILES: readonly ProfileId[] = ProfileId.options;

export const Op = z.discriminatedUnion("op", [
  /** perf_event_open(attr, pid=0, cpu, group_fd=outputTo, outputTo ? PERF_FLAG_FD_OUTPUT : 0).
   *  pmu "sw" is PERF_COUNT_SW_DUMMY; "aux" is the machine's AUX PMU. Events start disabled. */
  z.object({
    op: z.literal("open"),
    proc: Proc,
    ev: EvHandle,
    pmu: z.enum(["sw", "aux"]),
    cpu: z.number().int().min(-1).max(4095).optional(),
    inherit: z.boolean().optional(),
    outputTo: EvHandle.optional(),
  }).strict(),
  /** close(fd) */
  z.object({ op: z.literal("close"), proc: Proc, ev: EvHandle }).strict(),
  /** mmap(slot base, pages * PAGE_SIZE, prot, MAP_SHARED (MAP_PRIVATE when shared is false), fd, pgoff * PAGE_SIZE).
   *  `shared` defaults to true. */
  z.object({
    op: z.literal("mmap"),
    proc: Proc,
    map: MapHandle,
    ev: EvHandle,
    pages: Pages,
    pgoff: z.number().int().min(0).max(1 << 20),
    prot: Prot,
    shared: z.boolean().optional(),
  }).strict(),
  /** munmap(base + offset, pages); pages defaults to the handle's mmap size. */
  z.object({ op: z.literal("munmap"), proc: Proc, map: MapHandle, offset: Offset.optional(), pages: Pages.optional() }).strict(),
  /** mremap(base + offset, oldPages, newPages, flags). toFresh: MREMAP_MAYMOVE|MREMAP_FIXED to the
   *  same offset in the handle's other slot (the base flips on success). */
  z.object({
    op: z.literal("mremap"),
    proc: Proc,
    map: MapHandle,
    offset: Offset.optional(),
    oldPages: Pages,
    newPages: Pages,
    mayMove: z.boolean().optional(),
    toFresh: z.boolean().optional(),
  }).strict(),
  /** mprotect(base + offset, pages, prot); pages defaults to the handle's mmap size. */
  z.object({ op: z.literal("mprotect"), proc: Proc, map: MapHandle, offset: Offset.optional(), pages: Pages.optional(), prot: Prot }).strict(),
  /** mmap(base + offset, pages, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED, -1, 0) */
  z.object({ op: z.literal("mapFixedAnon"), proc: Proc, map: MapHandle, offset: Offset, pages: Pages.min(1) }).strict(),
  /** Writes aux_offset = offsetPages * PAGE_SIZE and aux_size = sizePages * PAGE_SIZE through the
   *  handle's page 0 (the user page when the handle maps a data buffer). */
  z.object({
    op: z.literal("setAux"),
    proc: Proc,
    map: MapHandle,
    offsetPages: z.number().int().min(0).max(1 << 20),
    sizePages: z.number().int().min(0).max(1 << 20),
  }).strict(),
  /** ioctl(fd, PERF_EVENT_IOC_SET_OUTPUT, target ? target fd : (unsigned long)-1) */
  z.object({ op: z.literal("setOutput"), proc: Proc, ev: EvHandle, target: EvHandle.nullable() }).strict(),
  /** setrlimit(RLIMIT_MEMLOCK) soft limit, in pages (hard limit stays unlimited). */
  z.object({ op: z.literal("rlimit"), proc: Proc, memlockPages: z.union([z.number().int().min(0).max(1 << 30), z.literal("unlimited")]) }).strict(),
  /** Writes /proc/sys/kernel/perf_event_mlock_kb (a global sysctl: model and VM backends only). */
  z.object({ op: z.literal("sysctlMlock"), kb: z.number().int().min(0).max(1 << 20) }).strict(),
  /** Makes the AUX PMU's setup_aux fail (return NULL) or succeed (test PMU and model only). */
  z.object({ op: z.literal("auxFault"), fail: z.boolean() }).strict(),
  /** Fault switch for map_range() (spec/notes/races.md): the next `times` map_range() calls of
   *  perf_mmap() (machine-wide, in linearization order) fail with -ENOMEM, as the kernel's
   *  fault-injection `times` attribute counts; each write sets the count (0 turns it off).
   *  Only eras with map_range() (6.14+: profiles 6.16, 6.17, 6.18, 7.2) consume it; elsewhere it does
   *  nothing. Model only: map_range() is core kernel code (no test-PMU hook), so the host and
   *  VM backends list it unsupported. */
  z.object({ op: z.literal("mapRangeFault"), times: z.number().int().min(0).max(3) }).strict(),
  /** Reads (or writes, when write) one byte of page `page` from the base, in a child process. */
  z.object({ op: z.literal("touch"), proc: Proc, map: MapHandle, page: z.number().int().min(0).max(SLOT_PAGES - 1), write: z.boolean() }).strict(),
  /** Reads data_offset, data_size, aux_head, aux_offset, aux_size from the handle's page 0. */
  z.object({ op: z.literal("readUserPage"), proc: Proc, map: MapHandle }).strict(),
  /** fork() in `from`: the child `proc` holds every fd `from` holds and copies of its VMAs
   *  except the perf mappings (perf_mmap sets VM_DONTCOPY); its mm starts with pinned_vm 0; it
   *  keeps `from`'s user, RLIMIT_MEMLOCK and capabilities. */
  z.object({ op: z.literal("fork"), proc: ProcHandle, from: ProcHandle }).strict(),
  /** _exit(0) of `proc` (never p0): exit_mm closes its VMAs in address order (perf_mmap_close
   *  with vma->vm_mm = this mm), then exit_files closes its fds. Its children live on. */
  z.object({ op: z.literal("exit"), proc: ProcHandle }).strict(),
  /** setresuid(U, U, saved) in `proc`: its user (current_user(): the one perf charges) becomes
   *  `user`. Without the right to switch (config.capSetuid false) another user answers EPERM. */
  z.object({ op: z.literal("setuid"), proc: ProcHandle, user: UserHandle }).strict(),
  /** sendmsg(SCM_RIGHTS) of `proc`'s fd for `ev` to `to`, which then holds an fd for the same
   *  file (one fd per handle and process: a duplicate is closed at once). EBADF when `proc`
   *  holds no fd for `ev`. */
  z.object({ op: z.literal("sendFd"), proc: ProcHandle, to: ProcHandle, ev: EvHandle }).strict(),
  /** A new task `proc` in `from`'s process (clone(CLONE_VM|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD)):
   *  it shares that process's mm, fd table and RLIMIT_MEMLOCK, starts as `from`'s user (setuid
   *  in a task changes that task's credentials only, as the raw syscall does), and is its own
   *  task for perf (pid 0 in an open monitors it: hw.target). `exit` of a task ends only that
   *  task; the mm and fds go when the last task of the process exits. */
  z.object({ op: z.literal("thread"), proc: ProcHandle, from: ProcHandle }).strict(),
  /** The next `ops` ops (2 or 3, each in a different task) are issued at once: released
   *  together from a barrier. Each syscall is atomic, so the allowed outcomes are those of
   *  some order of the block's ops (linearizability). Eligible: open, close, mmap, munmap,
   *  mremap, mprotect, setOutput, sendFd, exit; a handle introduced inside a block is used only
   *  after it. The marker's own step is {ok} with VmPin 0; the block's ops observe VmPin after
   *  the whole block. */
  z.object({ op: z.literal("par"), ops: z.number().int().min(2).max(3) }).strict(),
]);

export type Op = z.infer<typeof Op>;
export type OpKind = Op["op"];
export const OP_KINDS: readonly OpKind[] = Op.options.map((o) => o.shape.op.value);
/** The op kinds a `par` block may hold. */
export const PAR_KINDS: ReadonlySet<OpKind> = new Set<OpKind>(["open", "close", "mmap", "munmap", "mremap", "mprotect", "setOutput", "sendFd", "exit"]);

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
  /** whether the program runs with CAP_IPC_LOCK (every process, under every user) */
  capIpcLock: z.boolean(),
  /** whether `setuid` may switch a process to another user (root: each user handle is a fresh
   *  uid); false for a non-root host, where setuid to another user answers EPERM. Default true. */
  capSetuid: z.boolean().optional(),
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
 * Handle discipline: each open/mmap/fork introduces a fresh handle, every other reference names
 * one introduced earlier; a process handle is usable from its fork (p0: from the start) until
 * its exit, and p0 never exits. Returns the problems (empty when the program is valid).
 */
export function programProblems(program: readonly Op[]): ProgramProblem[] {
  const evs = new Set<string>();
  const maps = new Set<string>();
  const procs = new Map<string, boolean>([["p0", true]]); // handle -> alive
  const mapProc = new Map<string, string>(); // map handle -> the process of its mmap
  const out: ProgramProblem[] = [];
  const needEv = (i: number, field: string, h: string) => {
    if (!evs.has(h)) out.push({ index: i, field, message: `event handle ${h} is used before an open introduces it` });
  };
  const needMap = (i: number, h: string) => {
    if (!maps.has(h)) out.push({ index: i, field: "map", message: `map handle ${h} is used before an mmap introduces it` });
  };
  const needProc = (i: number, field: string, h: string | undefined) => {
    if (h === undefined) return;
    const alive = procs.get(h);
    if (alive === undefined) out.push({ index: i, field, message: `process handle ${h} is used before a fork introduces it` });
    else if (!alive) out.push({ index: i, field, message: `process handle ${h} is used after its exit` });
  };
  program.forEach((op, i) => {
    switch (op.op) {
      case "open":
        needProc(i, "proc", op.proc);
        if (op.outputTo !== undefined) needEv(i, "outputTo", op.outputTo);
        if (evs.has(op.ev)) out.push({ index: i, field: "ev", message: `event handle ${op.ev} is opened twice` });
        evs.add(op.ev);
        break;
      case "mmap":
        needProc(i, "proc", op.proc);
        needEv(i, "ev", op.ev);
        if (maps.has(op.map)) out.push({ index: i, field: "map", message: `map handle ${op.map} is mapped twice` });
        maps.add(op.map);
        mapProc.set(op.map, op.proc ?? "p0");
        break;
      case "close":
        needProc(i, "proc", op.proc);
        needEv(i, "ev", op.ev);
        break;
      case "setOutput":
        needProc(i, "proc", op.proc);
        needEv(i, "ev", op.ev);
        if (op.target !== null) needEv(i, "target", op.target);
        break;
      case "munmap": case "mremap": case "mprotect": case "mapFixedAnon": case "setAux": case "touch": case "readUserPage":
        needProc(i, "proc", op.proc);
        needMap(i, op.map);
        if (op.proc === undefined && mapProc.has(op.map) && procs.get(mapProc.get(op.map)!) === false) {
          out.push({ index: i, field: "proc", message: `map handle ${op.map} belongs to ${mapProc.get(op.map)}, which has exited: name the process with proc` });
        }
        break;
      case "rlimit":
        needProc(i, "proc", op.proc);
        break;
      case "sysctlMlock": case "auxFault": case "mapRangeFault":
        break;
      case "thread":
      case "fork":
        needProc(i, "from", op.from);
        if (procs.has(op.proc)) out.push({ index: i, field: "proc", message: `process handle ${op.proc} is forked twice (p0 is the initial process)` });
        else procs.set(op.proc, true);
        break;
      case "par": {
        if (i + op.ops >= program.length) out.push({ index: i, field: "ops", message: `par block of ${op.ops} ops runs past the end of the program` });
        break;
      }
      case "exit":
        needProc(i, "proc", op.proc);
        if (op.proc === "p0") out.push({ index: i, field: "proc", message: "p0 is the program's main task and cannot exit" });
        else if (procs.get(op.proc)) procs.set(op.proc, false);
        break;
      case "setuid":
        needProc(i, "proc", op.proc);
        break;
      case "sendFd":
        needProc(i, "proc", op.proc);
        needProc(i, "to", op.to);
        needEv(i, "ev", op.ev);
        break;
    }
  });
  parProblems(program, out);
  return out;
}

/** par blocks: eligible kinds, one op per task, no nesting, no handle introduced and used in one block. */
function parProblems(program: readonly Op[], out: ProgramProblem[]): void {
  const mapProc = new Map<string, string>();
  for (let i = 0; i < program.length; i++) {
    const op = program[i];
    if (op.op === "mmap") mapProc.set(op.map, op.proc ?? "p0");
    if (op.op !== "par") continue;
    const tasks = new Set<string>();
    const introduced = new Set<string>();
    for (let j = i + 1; j <= i + op.ops && j < program.length; j++) {
      const inner = program[j];
      if (!PAR_KINDS.has(inner.op)) {
        out.push({ index: j, field: "op", message: `${inner.op} cannot be inside a par block (allowed: ${[...PAR_KINDS].join(", ")})` });
        continue;
      }
      const task = opProc(inner, mapProc);
      if (tasks.has(task)) out.push({ index: j, field: "proc", message: `par block at op ${i} issues two ops from ${task}: each op of a block runs in its own task` });
      tasks.add(task);
      for (const h of opHandles(inner)) if (introduced.has(h)) out.push({ index: j, field: "op", message: `${h} is introduced inside the par block at op ${i} and used in it: use it after the block` });
      if (inner.op === "open") introduced.add(inner.ev);
      if (inner.op === "mmap") { introduced.add(inner.map); mapProc.set(inner.map, inner.proc ?? "p0"); }
    }
    i += op.ops;
  }
}

function opHandles(op: Op): string[] {
  const out: string[] = [];
  if ("ev" in op && op.op !== "open") out.push(op.ev);
  if (op.op === "open" && op.outputTo !== undefined) out.push(op.outputTo);
  if (op.op === "setOutput" && op.target !== null) out.push(op.target);
  if ("map" in op && op.op !== "mmap") out.push(op.map);
  return out;
}

/** Handles in order of introduction, each map handle's mmap size (the default for
 *  munmap/mprotect) and owner (the process whose mmap introduced it: the default `proc` of
 *  the ops on the handle), the processes (p0 first, then in fork order) and the users named. */
export function programHandles(program: readonly Op[]): { evs: string[]; maps: string[]; mapPages: Map<string, number>; mapProc: Map<string, string>; procs: string[]; users: string[] } {
  const evs: string[] = [];
  const maps: string[] = [];
  const mapPages = new Map<string, number>();
  const mapProc = new Map<string, string>();
  const procs: string[] = ["p0"];
  const users: string[] = ["u0"];
  for (const op of program) {
    if (op.op === "open") evs.push(op.ev);
    else if (op.op === "mmap") { maps.push(op.map); mapPages.set(op.map, op.pages); mapProc.set(op.map, op.proc ?? "p0"); }
    else if (op.op === "fork" || op.op === "thread") procs.push(op.proc);
    else if (op.op === "setuid" && !users.includes(op.user)) users.push(op.user);
  }
  return { evs, maps, mapPages, mapProc, procs, users };
}

/** Whether a program uses more than one process or user (needs a multi-process executor). */
export function isMultiProcess(program: readonly Op[]): boolean {
  for (const op of program) {
    if (op.op === "fork" || op.op === "exit" || op.op === "setuid" || op.op === "sendFd" || op.op === "thread" || op.op === "par") return true;
    if ("proc" in op && op.proc !== undefined && op.proc !== "p0") return true;
  }
  return false;
}

/**
 * The process an op runs in: its `proc`; for ops on a map handle without one, the process
 * whose mmap introduced the handle (`mapProc` from programHandles); p0 otherwise (sysctlMlock,
 * auxFault and mapRangeFault are machine-wide and run in p0).
 */
export function opProc(op: Op, mapProc: ReadonlyMap<string, string>): string {
  if ("proc" in op && op.proc !== undefined) return op.proc;
  if ("map" in op && op.op !== "mmap") return mapProc.get(op.map) ?? "p0";
  return "p0";
}

/** Index of a handle: e3 -> 3, m12 -> 12 (slot addresses are derived from it). */
export function handleIndex(h: string): number {
  return Number(h.slice(1));
}

/** Format a Zod error as `path: message` lines (for the CLI and case loading). */
export function formatZodError(err: z.ZodError): string {
  return err.issues.map((i) => `  ${i.path.length ? i.path.join(".") : "(root)"}: ${i.message}`).join("\n");
}
