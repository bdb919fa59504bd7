/**
 * Write a case as a standalone C reproducer that drops into tools/testing/selftests:
 * `gcc -static -o repro repro.c && ./repro`. It prints kselftest/TAP lines, one per op
 * plus the end-of-program audit, and exits 0 when the kernel agrees with the spec (under
 * the case's profile), 1 when it diverges, 4 (KSFT_SKIP) when it cannot run (no perf
 * permission, no AUX PMU, not root for a sysctl op, or the kernel took another allowed
 * path than the one recorded).
 *
 * The C runtime is not written here: runtime/auxspec.h (the ops, page access, teardown,
 * budget probe and kernel-log scan, shared with the host's C executor) and runtime/repro.h
 * (the kselftest driver) are inlined as they are, so the file compiles alone. This module
 * adds only the case as data: its config, the op table with the spec's expectations
 * (fuzz/expect.ts: each op's allowed outcomes and VmPin) and the teardown steps
 * (spec/audit.ts teardownSteps).
 */
import { readFileSync } from "node:fs";
import type { Case, Op, Outcome } from "../spec/program.ts";
import { programHandles, handleIndex, isMultiProcess, opProc } from "../spec/program.ts";
import { teardownSteps } from "../spec/audit.ts";
import { showOp } from "../spec/trace.ts";
import { expectProgram, type ProgramExpectation } from "./expect.ts";

const RUNTIME = ["auxspec.h", "repro.h"].map((f) => new URL(`../runtime/${f}`, import.meta.url));
/** What a case with several processes or users adds: runtime/procs.h and its driver. */
const RUNTIME_PROCS = ["procs.h", "repro-procs.h"].map((f) => new URL(`../runtime/${f}`, import.meta.url));

/** The runtime headers' text, read at generation time (a generated file never includes them);
 *  `procs` adds the multi-process layer (only cases with processes inline it, so the text of
 *  single-process reproducers does not change with it). */
export function runtimeText(procs = false): string {
  return [...RUNTIME, ...(procs ? RUNTIME_PROCS : [])]
    .map((u) => `/* ---- runtime/${u.pathname.split("/").pop()} (inlined) ---- */\n${readFileSync(u, "utf8")}`).join("\n");
}

/** An outcome as a C result-code expression: 0, the errno's symbol from <errno.h>, -SIGBUS/-SIGSEGV. */
export function code(o: Outcome): string {
  if ("ok" in o) return "0";
  if ("signal" in o) return o.signal === "SIGBUS" ? "-SIGBUS" : "-SIGSEGV";
  const n = /^ERRNO_(\d+)$/.exec(o.errno);
  if (n) return n[1];
  if (!/^E[A-Z0-9_]+$/.test(o.errno)) throw new Error(`no errno symbol for ${o.errno}`);
  return o.errno;
}

const PROT: Record<string, string> = {
  none: "PROT_NONE", r: "PROT_READ", rw: "PROT_READ|PROT_WRITE", rx: "PROT_READ|PROT_EXEC", rwx: "PROT_READ|PROT_WRITE|PROT_EXEC",
};

export function cStr(s: string): string {
  return JSON.stringify(s).replace(/\?/g, "\\?");
}

export function comment(s: string): string {
  return s.replace(/\*\//g, "* /");
}

/** The op as an AX_* constructor of runtime/auxspec.h (handles by number). */
export function opData(op: Op, mapPages: Map<string, number>): string {
  const h = handleIndex;
  switch (op.op) {
    case "open": return `AX_OPEN(${h(op.ev)}, ${op.pmu === "aux" ? 1 : 0}, ${op.cpu ?? -1}, ${op.inherit ? 1 : 0}, ${op.outputTo !== undefined ? h(op.outputTo) : -1})`;
    case "close": return `AX_CLOSE(${h(op.ev)})`;
    case "mmap": return `AX_MMAP(${h(op.map)}, ${h(op.ev)}, ${op.pages}, ${op.pgoff}, ${PROT[op.prot]}, ${op.shared === false ? 0 : 1})`;
    case "munmap": return `AX_MUNMAP(${h(op.map)}, ${op.offset ?? 0}, ${op.pages ?? mapPages.get(op.map) ?? 0})`;
    case "mremap": return `AX_MREMAP(${h(op.map)}, ${op.offset ?? 0}, ${op.oldPages}, ${op.newPages}, ${op.mayMove ? 1 : 0}, ${op.toFresh ? 1 : 0})`;
    case "mprotect": return `AX_MPROTECT(${h(op.map)}, ${op.offset ?? 0}, ${op.pages ?? mapPages.get(op.map) ?? 0}, ${PROT[op.prot]})`;
    case "mapFixedAnon": return `AX_MAP_FIXED_ANON(${h(op.map)}, ${op.offset}, ${op.pages})`;
    case "setAux": return `AX_SET_AUX(${h(op.map)}, ${op.offsetPages}, ${op.sizePages})`;
    case "setOutput": return `AX_SET_OUTPUT(${h(op.ev)}, ${op.target === null ? -2 : h(op.target)})`;
    case "rlimit": return `AX_RLIMIT(${op.memlockPages === "unlimited" ? -1 : op.memlockPages})`;
    case "sysctlMlock": return `AX_SYSCTL_MLOCK(${op.kb})`;
    case "auxFault": return `AX_AUX_FAULT(${op.fail ? 1 : 0})`;
    case "touch": return `AX_TOUCH(${h(op.map)}, ${op.page}, ${op.write ? 1 : 0})`;
    case "readUserPage": return `AX_READ_USER_PAGE(${h(op.map)})`;
    case "fork": return `AX_FORK(${h(op.proc)}, ${h(op.from)})`;
    case "exit": return `AX_EXIT(${h(op.proc)})`;
    case "setuid": return `AX_SETUID(${h(op.proc)}, ${h(op.user)})`;
    case "sendFd": return `AX_SEND_FD(${h(op.proc)}, ${h(op.to)}, ${h(op.ev)})`;
    case "thread": return `AX_THREAD(${h(op.proc)}, ${h(op.from)})`;
    case "par": return `AX_PAR(${op.ops})`;
    case "mapRangeFault": throw new Error(MAP_RANGE_FAULT_NO_C);
  }
}

/** reproC's answer for a case that arms the map_range() fault switch (writeCase then writes the JSON only). */
export const MAP_RANGE_FAULT_NO_C = "mapRangeFault cannot be injected on a real kernel (map_range() is core kernel code): no C reproducer; replay the JSON case on the model";

/** The teardown steps (spec/audit.ts teardownSteps) as struct ax_td_step initialisers, one a line. */
export function teardownTable(program: readonly Op[]): string[] {
  return teardownSteps(program).map((t) => {
    switch (t.kind) {
      case "restore": return `\t{ 'r', 0, 0 },`;
      case "munmap": return `\t{ 'u', ${handleIndex(t.map)}, ${t.slot} },`;
      case "close": return `\t{ 'c', ${handleIndex(t.ev)}, 0 },`;
      case "exit": return `\t{ 'x', ${handleIndex(t.proc)}, 0 },`; // runtime/repro-procs.h
    }
  });
}

/**
 * The reproducer of a case. `exp` (tests only) replaces the spec's expectation: a hand-derived
 * one for a program the spec cannot walk yet. For an op of a par block, `allowed` and
 * `allowedVmPinKb` are those of every order of the block (the reproducer accepts a result and
 * VmPin some order allows). A case with a par block repeats the whole program `repeat` times
 * (default PAR_REPEAT; runtime/repro-procs.h), until a repetition diverges.
 */
export function reproC(c: Case, profile = c.profile ?? "6.18", exp: ProgramExpectation = expectProgram(c.program, c.config, profile), repeat = PAR_REPEAT): string {
  if (c.program.some((o) => o.op === "mapRangeFault")) throw new Error(MAP_RANGE_FAULT_NO_C);
  const { evs, maps, mapPages, mapProc, users } = programHandles(c.program);
  const multi = isMultiProcess(c.program);
  const nEv = Math.max(1, ...evs.map(handleIndex).map((i) => i + 1));
  const nMap = Math.max(1, ...maps.map(handleIndex).map((i) => i + 1));
  const usesAux = c.program.some((o) => o.op === "open" && o.pmu === "aux");
  const needsRoot = c.program.some((o) => o.op === "sysctlMlock" || o.op === "auxFault");
  const steps = c.program.map((op, i) => {
    const x = exp.perOp[i];
    const allowed = x.allowed.map(code);
    const page = "ok" in x.preferred && x.preferred.page ? x.preferred.page : null;
    return `\t/* ${i}: ${comment(showOp(op))} -- spec rule ${x.rule} */\n` +
      `\t{ ${cStr(showOp(op))}, ${opData(op, mapPages)}, ${code(x.preferred)},\n` +
      `\t  (const int[]){ ${allowed.join(", ")} }, ${allowed.length}, (const long[]){ ${x.allowedVmPinKb.join(", ")} }, ${x.allowedVmPinKb.length},\n` +
      `\t  ${page ? `(const long[]){ ${page.dataOffset}, ${page.dataSize}, ${page.auxHead}, ${page.auxOffset}, ${page.auxSize} }` : "NULL"} },`;
  });
  const teardown = teardownTable(c.program);
  const config = c.config;
  return `// SPDX-License-Identifier: GPL-2.0
/*
 * auxspec reproducer: ${comment(c.name)}
${(c.description ?? "").split("\n").map((l) => ` * ${comment(l)}`).join("\n")}
 *
 * Generated by auxspec (format auxspec-case/1) under profile ${profile}.
 * Build: gcc -static -O2 -o repro repro.c    Run: ./repro   (as root for a fresh uid)
 * Exit: 0 the kernel agrees with the spec, 1 it diverges, 4 cannot run here (KSFT_SKIP).
 * Config of the case: cpus=${config.cpus} perf_event_mlock_kb=${config.mlockKb} RLIMIT_MEMLOCK=${config.memlockPages} pages CAP_IPC_LOCK=${config.capIpcLock}
 * The case itself is at the end of the file, after auxspec's C runtime.
 */
${runtimeText(multi)}
/* ---- the case ---- */
static const struct ax_step steps[] = {
${steps.join("\n")}
};

/* Teardown (spec/audit.ts teardownSteps): restore, both slots of every map handle, close every event handle. */
static const struct ax_td_step teardown[] = {
${teardown.join("\n")}
};

static const struct ax_case the_case = {
	.profile = ${cStr(profile)},
	.nev = ${nEv},
	.nmap = ${nMap},
	.mlock_kb = ${config.mlockKb},
	.memlock_pages = ${config.memlockPages === "unlimited" ? -1 : config.memlockPages},
	.cap_ipc_lock = ${config.capIpcLock ? 1 : 0},
	.uses_aux = ${usesAux ? 1 : 0},
	.needs_root = ${needsRoot ? 1 : 0},
	.expect_vmpin_kb = ${exp.audit.vmPinKb},
	.steps = steps,
	.nsteps = ${c.program.length},
	.teardown = teardown,
	.nteardown = ${teardownSteps(c.program).length},
};

${multi ? procsMain(c, mapProc, users, repeat) : `int main(void)
{
	return ax_repro_main(&the_case);
}
`}`;
}

/** Repetitions a reproducer of a case with a par block runs by default (AUXSPEC_REPEAT overrides). */
export const PAR_REPEAT = 1000;

/** main() of a case with processes: each op's process (opProc) and the users it names. */
function procsMain(c: Case, mapProc: Map<string, string>, users: string[], repeat: number): string {
  const par = c.program.some((op) => op.op === "par");
  const others = users.filter((u) => u !== "u0").map(handleIndex);
  return `/* The process each op runs in (spec/program.ts opProc). */
static const int step_procs[] = { ${c.program.map((op) => handleIndex(opProc(op, mapProc))).join(", ")} };
${others.length ? `static const int users[] = { ${others.join(", ")} };\n` : ""}
int main(void)
{
	static const struct ax_case_procs cp = {
		.c = &the_case,
		.step_procs = step_procs,
		.users = ${others.length ? "users" : "NULL"},
		.nusers = ${others.length},
		.cap_setuid = ${c.config.capSetuid === false ? 0 : 1},${par ? `
		.repeat = ${Math.max(1, Math.floor(repeat))}, /* par: the whole program, each from scratch, until one diverges */` : ""}
	};

	(void)ax_repro_main; /* repro.h's single-process driver: not this case's */
	return ax_repro_procs_main(&cp);
}
`;
}
