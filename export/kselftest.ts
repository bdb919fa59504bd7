/**
 * `npm run export -- --kselftest DIR`: auxspec's regression cases as a kselftest directory
 * that drops into a kernel tree as tools/testing/selftests/perf_events/auxspec/ (or builds
 * alone with a kselftest.h shim).
 *
 * One C program per case: cases/known/*.json, cases/bugs/*.json (their programs, judged by
 * the spec: a kernel with the historic bug fails them) and litmus cases of cases/spec/ (by
 * default one per deciding rule). Each program carries, for every profile of
 * spec/program.ts PROFILES, the observation paths the spec allows (export/paths.ts), picks
 * its profile at run time with the boundaries of spec/profiles.ts profileFor (export/era.ts)
 * and prints KTAP through kselftest.h (export/c/auxspec_ksft.h). The C op layer is
 * runtime/auxspec.h, copied beside the programs unchanged.
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { PROFILES, programHandles, handleIndex, isMultiProcess, type Case, type Config, type Op, type ProfileId } from "../spec/program.ts";
import { showOp } from "../spec/trace.ts";
import type { Divergence } from "../spec/trace.ts";
import type { BackendInfo } from "../backend/contract.ts";
import { loadCase, listCases } from "../fuzz/cases.ts";
import { loadKnown, matchKnown, type KnownDivergence } from "../fuzz/known.ts";
import { code, cStr, comment, opData, teardownTable } from "../fuzz/repro-c.ts";
import { eraC } from "./era.ts";
import { enumeratePaths, TooManyPaths, type ObsPath } from "./paths.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const C_DIR = new URL("./c/", import.meta.url).pathname;

export type Kind = "known" | "bug" | "litmus";

export interface ExportEntry {
  /** The program's name (its .c file and binary). */
  program: string;
  kind: Kind;
  /** The case file, relative to the repository root. */
  source: string;
  /** The rule a litmus case decides (from its description), if any. */
  rule?: string;
  /** Profiles with no paths (too many, or the spec throws), with why. */
  uncovered: Record<string, string>;
  paths: Record<string, number>;
}

export interface ExportOptions {
  /** Litmus cases: "rules" (one per deciding rule, the default), "all" (one per litmus name), or the first N of "rules". */
  litmus?: "rules" | "all" | number;
  /** Repository root holding cases/ (default: this checkout). */
  root?: string;
  maxPaths?: number;
  /** Retarget every case to this many CPUs (the budget is per CPU): for machines that are not 2-CPU, e.g. the 1-CPU VM guests. */
  cpus?: number;
  /** Receives the cases left out, with why (the CLI prints them; the manifest lists them). */
  skipped?: SkippedCase[];
}

export interface SkippedCase { source: string; reason: string }

/** Why a case with several processes or users is not exported (issue 13). */
/** Why a case that arms the map_range() fault switch is not exported (no kernel can honour it). */
export const MAP_RANGE_FAULT_SKIP = "mapRangeFault: a model-only fault switch (map_range() is core kernel code; no test-PMU hook, and no fault-injection attribute for it): no kernel runs this case";
export const MULTI_PROCESS_SKIP = "several processes or users (fork, exit, setuid, sendFd, proc): the kselftest driver (export/c/auxspec_ksft.h) runs one process; its C reproducer (fuzz/repro-c.ts, runtime/procs.h) runs it";

const RULE_RE = /^\[([^\]]+)\]/;
const PROFILE_SUFFIX = /\.(seed|6\.1-pre148|6\.1|6\.12-pre42|6\.12|6\.18)\.json$/;

function programName(kind: Kind, file: string): string {
  const stem = basename(file).replace(PROFILE_SUFFIX, "").replace(/\.json$/, "");
  return `${kind}-${stem}`.replace(/[^A-Za-z0-9_-]/g, "_");
}

/** The cases to export, in a stable order. */
export function selectCases(opts: ExportOptions = {}): { file: string; kind: Kind; rule?: string }[] {
  const root = opts.root ?? ROOT;
  const out: { file: string; kind: Kind; rule?: string }[] = [];
  for (const [dir, kind] of [["cases/known", "known"], ["cases/bugs", "bug"]] as const) {
    const d = join(root, dir);
    if (existsSync(d)) for (const f of listCases(d)) out.push({ file: f, kind });
  }
  const spec = join(root, "cases/spec");
  if (!existsSync(spec) || opts.litmus === 0) return out;
  // One program per litmus name (the per-profile files share the program); the 6.18 file
  // stands for it, else the newest profile's.
  const byName = new Map<string, string[]>();
  for (const f of listCases(spec)) {
    const name = basename(f).replace(PROFILE_SUFFIX, "");
    byName.set(name, [...(byName.get(name) ?? []), f]);
  }
  const rank = (f: string) => { const m = PROFILE_SUFFIX.exec(basename(f)); return m ? PROFILES.indexOf(m[1] as ProfileId) : -1; };
  const litmus: { file: string; kind: Kind; rule?: string }[] = [];
  const seenRules = new Set<string>();
  for (const name of [...byName.keys()].sort()) {
    const file = byName.get(name)!.sort((a, b) => rank(b) - rank(a))[0];
    const rule = RULE_RE.exec(loadCase(file).description ?? "")?.[1];
    if (opts.litmus !== "all") {
      const key = rule ?? name;
      if (seenRules.has(key)) continue;
      seenRules.add(key);
    }
    litmus.push({ file, kind: "litmus", ...(rule ? { rule } : {}) });
  }
  return [...out, ...(typeof opts.litmus === "number" ? litmus.slice(0, opts.litmus) : litmus)];
}

const HOST = { name: "host" } as BackendInfo;

function knownFor(known: readonly KnownDivergence[], kind: Divergence["kind"], rule: string, profile: ProfileId, rules: Set<string>): KnownDivergence | null {
  const d = { kind, rule, opIndex: -1, expected: [], observed: "", detail: "" } as Divergence;
  return matchKnown(known, d, profile, HOST, new Map([...rules].map((r) => [r, 1])));
}

/**
 * The config the spec judges the exported program with: the case's, with the hard memlock
 * limit a root run leaves (unlimited), and an AUX PMU when the program opens an AUX event
 * (the program skips without one, as replay does; replay judges with the machine's PMUs, so
 * a case made without a PMU, like the open.nopmu litmus, expects the open to succeed there).
 */
function judgeConfig(c: Case): Config {
  const { memlockHardPages: _drop, ...rest } = c.config;
  const usesAux = c.program.some((o) => o.op === "open" && o.pmu === "aux");
  return usesAux && rest.pmus.aux === null ? { ...rest, pmus: { aux: "auxspec_pmu" } } : rest;
}

function profileData(c: Case, profile: ProfileId, known: readonly KnownDivergence[], usedKnown: Map<string, KnownDivergence>, maxPaths: number, v: string, config: Config):
  { text: string; uncovered?: string; npaths: number } {
  let paths: ObsPath[];
  try {
    paths = enumeratePaths(c.program, config, profile, maxPaths);
  } catch (e) {
    const why = e instanceof TooManyPaths ? e.message : `the spec fails on this program: ${(e as Error).message}`;
    return { text: "", uncovered: why, npaths: 0 };
  }
  if (paths.length === 0) return { text: "", uncovered: "the spec allows no complete run of this program", npaths: 0 };
  const hasPage = c.program.some((o) => o.op === "readUserPage");
  const id = (k: KnownDivergence | null) => { if (!k) return "NULL"; usedKnown.set(k.id, k); return cStr(k.id); };
  const lines: string[] = [];
  paths.forEach((p, j) => {
    const audits = p.audits.map((a) =>
      `{ ${a.vmPinKb}, ${a.budgetPages}, ${a.broken ? cStr(a.broken) : "NULL"}, ${a.broken ? id(knownFor(known, "invariant", a.broken, profile, p.rules)) : "NULL"} }`);
    lines.push(`static const struct ax_kaudit ${v}_a${j}[] = { ${audits.join(", ")} };`);
  });
  lines.push(`static const struct ax_kpath ${v}[] = {`);
  paths.forEach((p, j) => {
    const codes = p.steps.map((s) => code(s.outcome));
    const pins = p.steps.map((s) => s.vmPinKb);
    const page = hasPage
      ? `(const long *const[]){ ${p.steps.map((s) => ("ok" in s.outcome && s.outcome.page)
        ? `(const long[]){ ${s.outcome.page.dataOffset}, ${s.outcome.page.dataSize}, ${s.outcome.page.auxHead}, ${s.outcome.page.auxOffset}, ${s.outcome.page.auxSize} }`
        : "NULL").join(", ")} }`
      : "NULL";
    lines.push(`\t{ (const int[]){ ${codes.join(", ")} }, (const long[]){ ${pins.join(", ")} }, ${page}, ${v}_a${j}, ${p.audits.length},\n` +
      `\t  ${id(knownFor(known, "invariant", "conserve.pinned_vm", profile, p.rules))}, ${id(knownFor(known, "invariant", "conserve.locked_vm", profile, p.rules))}, ${id(knownFor(known, "kernel-warning", "kernel.warning", profile, p.rules))} },`);
  });
  lines.push("};");
  return { text: lines.join("\n"), npaths: paths.length };
}

/** The largest RLIMIT_MEMLOCK soft limit the program asks for (the config's and its rlimit ops'), in pages; -1: unlimited. */
function rlimitMax(c: Case): number {
  const all = [c.config.memlockPages, ...c.program.flatMap((o) => (o.op === "rlimit" ? [o.memlockPages] : []))];
  return all.includes("unlimited") ? -1 : Math.max(...(all as number[]));
}

/** One exported program's C source, and its manifest entry. */
export function kselftestC(c: Case, entry: { program: string; kind: Kind; source: string; rule?: string }, known: readonly KnownDivergence[], maxPaths = 256): { text: string; entry: ExportEntry } {
  if (c.program.some((o) => o.op === "mapRangeFault")) throw new Error(`${entry.source}: ${MAP_RANGE_FAULT_SKIP}`);
  if (isMultiProcess(c.program)) throw new Error(`${entry.source}: ${MULTI_PROCESS_SKIP}`);
  const { evs, maps, mapPages } = programHandles(c.program);
  const nEv = Math.max(1, ...evs.map(handleIndex).map((i) => i + 1));
  const nMap = Math.max(1, ...maps.map(handleIndex).map((i) => i + 1));
  const has = (k: Op["op"]) => c.program.some((o) => o.op === k);
  const usesAux = c.program.some((o) => o.op === "open" && o.pmu === "aux");
  const usedKnown = new Map<string, KnownDivergence>();
  const uncovered: Record<string, string> = {};
  const npaths: Record<string, number> = {};
  const blocks: string[] = [];
  const tables = (prefix: string, config: Config, record: boolean): string[] => {
    const profs: string[] = [];
    PROFILES.forEach((p, i) => {
      const v = `${prefix}${i}`;
      const d = profileData(c, p, known, usedKnown, maxPaths, v, config);
      if (record) npaths[p] = d.npaths;
      if (d.uncovered) {
        if (record) uncovered[p] = d.uncovered;
        profs.push(`\t{ ${cStr(p)}, ${cStr(d.uncovered)}, NULL, 0 },`);
      } else {
        blocks.push(`/* profile ${p}${prefix === "h" ? `, RLIMIT_MEMLOCK hard limit ${c.config.memlockHardPages} pages` : ""}: ${d.npaths} path(s) */\n${d.text}`);
        profs.push(`\t{ ${cStr(p)}, NULL, ${v}, ${d.npaths} },`);
      }
    });
    return profs;
  };
  const profs = tables("p", judgeConfig(c), true);
  const hard = typeof c.config.memlockHardPages === "number" && c.program.some((o) => o.op === "rlimit") ? c.config.memlockHardPages : null;
  const profsHard = hard !== null ? tables("h", { ...judgeConfig(c), memlockHardPages: hard }, false) : null;
  const cfg = c.config;
  const knownTexts = [...usedKnown.values()].map((k) => `\t{ ${cStr(k.id)}, ${cStr(k.explanation)} },`);
  const text = `// SPDX-License-Identifier: GPL-2.0
/*
 * auxspec ${entry.kind} case ${comment(c.name)} (${comment(entry.source)})
${(c.description ?? "").split("\n").map((l) => ` * ${comment(l)}`).join("\n")}
 *
 * Generated by \`npm run export -- --kselftest\` (auxspec); do not edit. The expectations
 * are the spec's, for every profile; the program picks the running kernel's at run time.
 * Config of the case: cpus=${cfg.cpus} perf_event_mlock_kb=${cfg.mlockKb} perf_event_paranoid=${cfg.paranoid} RLIMIT_MEMLOCK=${cfg.memlockPages} pages CAP_IPC_LOCK=${cfg.capIpcLock}
 */
#include "auxspec_ksft.h"

static const char *const desc[] = {
${c.program.map((op) => `\t${cStr(showOp(op))},`).join("\n")}
};

static const struct ax_op ops[] = {
${c.program.map((op) => `\t${opData(op, mapPages)},`).join("\n")}
};

/* Teardown (spec/audit.ts teardownSteps): restore, both slots of every map handle, close every event handle. */
static const struct ax_td_step teardown[] = {
${teardownTable(c.program).join("\n")}
};

${blocks.join("\n\n")}

static const struct ax_kprofile profiles[] = {
${profs.join("\n")}
};
${profsHard ? `\nstatic const struct ax_kprofile profiles_hard[] = {\n${profsHard.join("\n")}\n};\n` : ""}${knownTexts.length ? `\nstatic const struct ax_known_text known[] = {\n${knownTexts.join("\n")}\n};\n` : ""}
static const struct ax_kcase the_case = {
	.name = ${cStr(c.name)},
	.source = ${cStr(entry.source)},
	.desc = desc,
	.ops = ops,
	.nsteps = ${c.program.length},
	.teardown = teardown,
	.nteardown = ${teardownTable(c.program).length},
	.nev = ${nEv},
	.nmap = ${nMap},
	.mlock_kb = ${cfg.mlockKb},
	.memlock_pages = ${cfg.memlockPages === "unlimited" ? -1 : cfg.memlockPages},
	.cpus = ${cfg.cpus},
	.rlimit_max = ${rlimitMax(c)},
	.paranoid = ${cfg.paranoid},
	.cap_ipc_lock = ${cfg.capIpcLock ? 1 : 0},
	.uses_aux = ${usesAux ? 1 : 0},
	.needs_sysctl = ${has("sysctlMlock") ? 1 : 0},
	.needs_fault = ${has("auxFault") ? 1 : 0},
	.profiles = profiles,
	.profiles_hard = ${profsHard ? "profiles_hard" : "NULL"},
	.hard_pages = ${hard ?? -1},
	.known = ${knownTexts.length ? "known" : "NULL"},
	.nknown = ${knownTexts.length},
};

int main(void)
{
	return ax_kselftest_main(&the_case);
}
`;
  return { text, entry: { ...entry, uncovered, paths: npaths } };
}

function makefile(programs: string[]): string {
  return `# SPDX-License-Identifier: GPL-2.0
# auxspec: perf ring-buffer / AUX mmap regression and litmus tests, generated by
# \`npm run export -- --kselftest\` from auxspec's cases and spec; do not edit.
#
# In a kernel tree (tools/testing/selftests/perf_events/auxspec/): make, make run_tests,
# or from tools/testing/selftests: make TARGETS=perf_events/auxspec run_tests.
# Alone (no ../../lib.mk): the same targets, with shim/kselftest.h and a small runner.

TEST_GEN_PROGS := \\
${programs.map((p) => `\t${p}`).join(" \\\n")}

LOCAL_HDRS += auxspec.h auxspec_era.h auxspec_ksft.h
CFLAGS += -O2 -Wall -I.

KSFT_DIR ?= ../..
ifneq ($(wildcard $(KSFT_DIR)/lib.mk),)
CFLAGS += -I$(KSFT_DIR)
include $(KSFT_DIR)/lib.mk
else
SHELL := /bin/bash
CFLAGS += -Ishim
OUTPUT ?= $(CURDIR)
TIMEOUT := $(shell sed -n 's/^timeout=//p' settings 2>/dev/null || echo 45)
all: $(addprefix $(OUTPUT)/,$(TEST_GEN_PROGS))
$(OUTPUT)/%: %.c $(LOCAL_HDRS) shim/kselftest.h
\t$(CC) $(CFLAGS) $(LDFLAGS) $< $(LDLIBS) -o $@
run_tests: all
\t@echo "TAP version 13"; set -- $(TEST_GEN_PROGS); echo "1..$$#"; n=0; \\
\tfor t in $(TEST_GEN_PROGS); do n=$$((n + 1)); echo "# selftests: perf_events/auxspec: $$t"; \\
\t\ttimeout $(TIMEOUT) $(OUTPUT)/$$t 2>&1 | sed 's/^/# /'; rc=$\${PIPESTATUS[0]}; \\
\t\tif [ $$rc = 0 ]; then echo "ok $$n selftests: perf_events/auxspec: $$t"; \\
\t\telif [ $$rc = 4 ]; then echo "ok $$n selftests: perf_events/auxspec: $$t # SKIP"; \\
\t\telif [ $$rc = 124 ]; then echo "not ok $$n selftests: perf_events/auxspec: $$t # TIMEOUT $(TIMEOUT) seconds"; \\
\t\telse echo "not ok $$n selftests: perf_events/auxspec: $$t # exit=$$rc"; fi; \\
\tdone
clean:
\trm -f $(addprefix $(OUTPUT)/,$(TEST_GEN_PROGS))
.PHONY: all run_tests clean
endif
`;
}

const CONFIG = `CONFIG_PERF_EVENTS=y
CONFIG_HAVE_PERF_EVENTS=y
CONFIG_MMU=y
`;

function readme(entries: ExportEntry[]): string {
  const count = (k: Kind) => entries.filter((e) => e.kind === k).length;
  return `auxspec kselftests
==================

Generated by \`npm run export -- --kselftest DIR\` (auxspec); regenerate rather than edit.

${entries.length} programs: ${count("known")} known kernel bugs (cases/known), ${count("bug")} historic bugs
(cases/bugs), ${count("litmus")} litmus cases (cases/spec). Each runs one perf_event_open/mmap/munmap/
mremap/mprotect/ioctl program, prints one KTAP result per op, then the audit after teardown
(VmPin, the uid's locked-memory budget, conservation, kernel log).

The expectations come from auxspec's spec for every profile (seed, 6.1-pre148, 6.1,
6.12-pre42, 6.12, 6.18); the program picks the running kernel's profile from uname -r and,
for Debian's 6.1.0-N releases, /proc/version, with the boundaries of spec/profiles.ts.
A kernel no profile was written for (6.2..6.11, 6.13, 6.14, 6.20+, 7.x, <6) is skipped.

Results: PASS the kernel agrees with the spec; FAIL it diverges (the TAP comments say at
which op, what came back and what the spec allows); XFAIL a known divergence (a kernel bug
the spec models: cases/known-divergences.json); SKIP the machine cannot run the case: no
AUX PMU (load auxspec's test PMU, hwtest/pmu/auxspec_pmu.ko, to run those), no root for a
sysctl / CAP_IPC_LOCK / the test PMU's fault switch, or another perf_event_paranoid, CPU
count or perf_event_mlock_kb than the case was made for (cases assume 2 CPUs, 516 kB,
paranoid 2 unless stated in the .c header).

Run as root: each program switches to a fresh uid (user->locked_vm is per uid) and probes
that uid's locked-memory budget after teardown.

In a kernel tree: copy this directory to tools/testing/selftests/perf_events/auxspec/, then
  make -C tools/testing/selftests/perf_events/auxspec run_tests
or add perf_events/auxspec to TARGETS. Alone: make run_tests here (uses shim/kselftest.h).
`;
}

/** Write the kselftest directory. Returns the manifest entries. */
export function exportKselftest(dir: string, opts: ExportOptions = {}): ExportEntry[] {
  const root = opts.root ?? ROOT;
  const known = loadKnown(join(root, "cases/known-divergences.json"));
  mkdirSync(join(dir, "shim"), { recursive: true });
  mkdirSync(join(dir, "cases"), { recursive: true });
  const entries: ExportEntry[] = [];
  const names = new Set<string>();
  const skipped: SkippedCase[] = [];
  for (const s of selectCases(opts)) {
    const loaded = loadCase(s.file);
    const skip = loaded.program.some((o) => o.op === "mapRangeFault") ? MAP_RANGE_FAULT_SKIP : isMultiProcess(loaded.program) ? MULTI_PROCESS_SKIP : null;
    if (skip !== null) {
      skipped.push({ source: s.file.startsWith(root) ? s.file.slice(root.length).replace(/^\//, "") : s.file, reason: skip });
      continue;
    }
    // A bug case's `bugs` and `expect` are the buggy model's; on a kernel its program is judged like any other.
    const { bugs: _bugs, expect: _expect, ...plain } = loaded;
    const base: Case = s.kind === "bug" ? plain : loaded;
    const c: Case = opts.cpus !== undefined ? { ...base, config: { ...base.config, cpus: opts.cpus } } : base;
    let program = programName(s.kind, s.file);
    for (let n = 2; names.has(program); n++) program = `${programName(s.kind, s.file)}-${n}`;
    names.add(program);
    const source = s.file.startsWith(root) ? s.file.slice(root.length).replace(/^\//, "") : s.file;
    const { text, entry } = kselftestC(c, { program, kind: s.kind, source, ...(s.rule ? { rule: s.rule } : {}) }, known, opts.maxPaths);
    writeFileSync(join(dir, `${program}.c`), text);
    // The case exactly as judged (retargeted), so that `npm run replay -- DIR/cases` replays what runs here.
    writeFileSync(join(dir, "cases", `${program}.json`), `${JSON.stringify(c, null, 1)}\n`);
    entries.push(entry);
  }
  copyFileSync(new URL("../runtime/auxspec.h", import.meta.url), join(dir, "auxspec.h"));
  copyFileSync(join(C_DIR, "auxspec_ksft.h"), join(dir, "auxspec_ksft.h"));
  copyFileSync(join(C_DIR, "kselftest-shim.h"), join(dir, "shim", "kselftest.h"));
  writeFileSync(join(dir, "auxspec_era.h"), `/* SPDX-License-Identifier: GPL-2.0 */\n/* Generated by auxspec export/era.ts; do not edit. */\n#ifndef AUXSPEC_ERA_H\n#define AUXSPEC_ERA_H\n${eraC(PROFILES)}#endif\n`);
  writeFileSync(join(dir, "Makefile"), makefile(entries.map((e) => e.program)));
  writeFileSync(join(dir, "config"), CONFIG);
  writeFileSync(join(dir, "settings"), "timeout=60\n");
  writeFileSync(join(dir, ".gitignore"), entries.map((e) => `${e.program}\n`).join(""));
  writeFileSync(join(dir, "README"), readme(entries));
  writeFileSync(join(dir, "auxspec-export.json"), `${JSON.stringify({ format: "auxspec-kselftest/1", ...(opts.cpus !== undefined ? { cpus: opts.cpus } : {}), programs: entries, ...(skipped.length ? { skipped } : {}) }, null, 2)}\n`);
  opts.skipped?.push(...skipped);
  return entries;
}

/** For tests: the runtime header text this export copies (it must equal runtime/auxspec.h). */
export function runtimeHeader(): string {
  return readFileSync(new URL("../runtime/auxspec.h", import.meta.url), "utf8");
}
