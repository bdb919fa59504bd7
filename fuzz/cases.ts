/**
 * Cases on disk: loading (Zod at the edge, errors name the path) and writing findings
 * as `auxspec-case/1` JSON plus a C reproducer.
 */
import { readFileSync, writeFileSync, mkdirSync, readdirSync, statSync, lstatSync, realpathSync, renameSync, unlinkSync, existsSync, constants, accessSync } from "node:fs";
import { createHash } from "node:crypto";
import { dirname, join, relative, resolve } from "node:path";
import { Case, CASE_FORMAT, formatZodError, type Config, type ProfileId } from "../spec/program.ts";
import { showOutcome } from "../spec/trace.ts";
import type { Finding } from "./campaign.ts";
import type { BackendInfo } from "../backend/contract.ts";
import { reproC } from "./repro-c.ts";

export class CaseError extends Error { override name = "CaseError"; }

export function loadCase(path: string): Case {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new CaseError(`${path}: ${(e as Error).message}`);
  }
  const r = Case.safeParse(raw);
  if (!r.success) throw new CaseError(`${path} is not a valid ${CASE_FORMAT} case:\n${formatZodError(r.error)}`);
  return r.data;
}

const fsWhy = (e: unknown): string => {
  const code = (e as NodeJS.ErrnoException).code;
  return code === "ENOENT" ? "does not exist" : code === "ELOOP" ? "is a symlink loop" : code === "EACCES" ? "cannot be read (permission denied)"
    : code === "ENOTDIR" ? "has a non-directory in its path" : `cannot be read (${code ?? (e as Error).message})`;
};

/**
 * Every *.json case under a directory (recursively), skipping the known-divergences list,
 * and every entry that cannot be used, with why: a dangling symlink, a symlink loop (a
 * directory reached twice), an unreadable directory. Symlinks to files and directories are
 * followed.
 */
export function listCasesChecked(dir: string): { files: string[]; problems: string[] } {
  const files: string[] = [];
  const problems: string[] = [];
  const seen = new Set<string>();
  const walk = (d: string) => {
    let real: string;
    try { real = realpathSync(d); } catch (e) { problems.push(`${d}: ${fsWhy(e)}`); return; }
    if (seen.has(real)) { problems.push(`${d}: a symlink loop (${real} is already listed)`); return; }
    seen.add(real);
    let names: string[];
    try { names = readdirSync(d).sort(); } catch (e) { problems.push(`${d}: ${fsWhy(e)}`); return; }
    for (const name of names) {
      const p = join(d, name);
      let st;
      try { st = statSync(p); } catch (e) {
        const link = (() => { try { return lstatSync(p).isSymbolicLink(); } catch { return false; } })();
        problems.push(`${p}: ${link ? `a symlink that ${fsWhy(e) === "does not exist" ? "dangles (its target does not exist)" : fsWhy(e)}` : fsWhy(e)}`);
        continue;
      }
      if (st.isDirectory()) walk(p);
      else if (name.endsWith(".json") && name !== "known-divergences.json") files.push(p);
    }
  };
  walk(dir);
  return { files, problems };
}

/** Every *.json case under a directory (recursively); throws a CaseError naming every problem. */
export function listCases(dir: string): string[] {
  const { files, problems } = listCasesChecked(dir);
  if (problems.length) throw new CaseError(`${dir}: ${problems.length} unusable entr${problems.length === 1 ? "y" : "ies"}:\n${problems.map((p) => `  ${p}`).join("\n")}`);
  return files;
}

/**
 * Checks before the first program that cases can be written to `dir`: created if missing,
 * a directory, writable. Throws a CaseError that says what is wrong.
 */
export function checkOutDir(dir: string): void {
  const abs = resolve(dir);
  if (existsSync(abs) && !statSync(abs).isDirectory()) throw new CaseError(`--out ${dir} is not a directory`);
  try {
    // One level at a time (mkdirSync's recursive mode spins forever on some pseudo file systems, /proc).
    const missing: string[] = [];
    for (let d = abs; !existsSync(d); d = dirname(d)) missing.unshift(d);
    for (const d of missing) mkdirSync(d);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new CaseError(`--out ${dir} cannot be created (${code === "ENOTDIR" || code === "EEXIST" ? "a file is in the way" : code === "EROFS" ? "read-only file system" : code === "EACCES" ? "permission denied" : code})`);
  }
  const probe = join(abs, `.auxspec-write-test-${process.pid}`);
  try {
    accessSync(abs, constants.W_OK);
    writeFileSync(probe, "");
    unlinkSync(probe);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new CaseError(`--out ${dir} is not writable (${code === "EROFS" ? "read-only file system" : code === "EACCES" ? "permission denied" : code})`);
  }
}

/** Short content hash of a program (and the machine it ran on): same program, same name. */
export function programHash(c: Pick<Case, "program" | "config">, chars = 8): string {
  return createHash("sha256").update(JSON.stringify({ program: c.program, config: c.config })).digest("hex").slice(0, chars);
}

/** Writes `text` to `path` atomically (temp file in the same dir, then rename). */
export function writeAtomic(path: string, text: string): void {
  const tmp = `${path}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  writeFileSync(tmp, text);
  try { renameSync(tmp, path); } catch (e) { try { unlinkSync(tmp); } catch { /* gone */ } throw e; }
}

const slug = (s: string) => s.replace(/[^A-Za-z0-9]+/g, "-").replace(/^-|-$/g, "").toLowerCase().slice(0, 60);

export function findingToCase(f: Finding, info: BackendInfo, profile: ProfileId, config: Config, bugs: readonly string[]): Case {
  const d = f.shrunkDivergence;
  const where = d.opIndex >= 0 ? `op ${d.opIndex}` : "the end-of-program audit";
  return {
    format: CASE_FORMAT,
    name: `${slug(info.name)}-${d.kind}-${slug(d.rule)}`,
    description: [
      `Found by auxspec fuzz on backend ${info.name}${info.kernel ? ` (kernel ${info.kernel})` : ""}, profile ${profile}, seed ${f.seed}, program #${f.index}.`,
      `Divergence (${d.kind}) at ${where}, rule ${d.rule}: spec allows ${d.expected.join(" | ")}; observed ${d.observed}.`,
      d.detail,
      `Shrunk from ${f.original.length} to ${f.shrunk.length} ops in ${f.shrinkRuns} runs.` +
        (f.confirmed ? ` Reproduced ${f.confirmed.reproduced}/${f.confirmed.of} re-runs.` : ""),
    ].join("\n"),
    profile,
    config,
    program: f.shrunk,
    ...(f.trace.config?.lockedVmPages !== undefined ? { config: { ...config, lockedVmPages: f.trace.config.lockedVmPages } } : {}),
    // On the model the outcomes are a regression record of the reference; a kernel's outcomes
    // are not asserted (a fixed kernel must be free to answer differently).
    ...(info.kernel === null ? { expect: f.trace.steps.map((s) => s.outcome) } : {}),
    ...(bugs.length ? { bugs: [...bugs] } : {}),
  };
}

/**
 * Writes a case (and its C reproducer) as NAME-HASH.json, HASH a short hash of its program:
 * the same program keeps its name (rewritten in place), a different one never replaces
 * another case (on a hash prefix clash the name takes a longer hash). Writes are atomic.
 */
export function writeCase(dir: string, c: Case, withRepro = true): { json: string; c?: string; noRepro?: string } {
  mkdirSync(dir, { recursive: true });
  let named = c;
  for (const chars of [8, 16, 64]) {
    named = { ...c, name: `${c.name}-${programHash(c, chars)}` };
    const p = join(dir, `${named.name}.json`);
    if (!existsSync(p)) break;
    try {
      const old = JSON.parse(readFileSync(p, "utf8"));
      if (JSON.stringify({ program: old.program, config: old.config }) === JSON.stringify({ program: c.program, config: c.config })) break;
    } catch { /* unreadable: take a longer name */ }
  }
  const json = join(dir, `${named.name}.json`);
  writeAtomic(json, JSON.stringify(named, null, 2) + "\n");
  if (!withRepro) return { json };
  const cPath = join(dir, `${named.name}.c`);
  let text: string;
  try {
    text = reproC(named);
  } catch (e) {
    // a case the C runtime cannot run yet: the JSON case is still written and replayable
    return { json, noRepro: (e as Error).message };
  }
  writeAtomic(cPath, text);
  return { json, c: cPath };
}

export function describeTraceOutcomes(steps: { outcome: Parameters<typeof showOutcome>[0] }[]): string {
  return steps.map((s, i) => `${i}:${showOutcome(s.outcome)}`).join(" ");
}

export const rel = (p: string) => relative(process.cwd(), p) || p;
