/**
 * Cases on disk: loading (Zod at the edge, errors name the path) and writing findings
 * as `auxspec-case/1` JSON plus a C reproducer.
 */
import { readFileSync, writeFileSync, mkdirSync, readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";
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

/** Every *.json case under a directory (recursively), skipping the known-divergences list. */
export function listCases(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (name.endsWith(".json") && name !== "known-divergences.json") out.push(p);
    }
  };
  walk(dir);
  return out;
}

const slug = (s: string) => s.replace(/[^A-Za-z0-9]+/g, "-").replace(/^-|-$/g, "").toLowerCase().slice(0, 60);

export function findingToCase(f: Finding, info: BackendInfo, profile: ProfileId, config: Config, bugs: readonly string[]): Case {
  const d = f.shrunkDivergence;
  const where = d.opIndex >= 0 ? `op ${d.opIndex}` : "the end-of-program audit";
  return {
    format: CASE_FORMAT,
    name: `${info.name}-${d.kind}-${slug(d.rule)}`,
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
    // On the model the outcomes are a regression record of the reference; a kernel's outcomes
    // are not asserted (a fixed kernel must be free to answer differently).
    ...(info.kernel === null ? { expect: f.trace.steps.map((s) => s.outcome) } : {}),
    ...(bugs.length ? { bugs: [...bugs] } : {}),
  };
}

export function writeCase(dir: string, c: Case, withRepro = true): { json: string; c?: string } {
  mkdirSync(dir, { recursive: true });
  const json = join(dir, `${c.name}.json`);
  writeFileSync(json, JSON.stringify(c, null, 2) + "\n");
  if (!withRepro) return { json };
  const cPath = join(dir, `${c.name}.c`);
  writeFileSync(cPath, reproC(c));
  return { json, c: cPath };
}

export function describeTraceOutcomes(steps: { outcome: Parameters<typeof showOutcome>[0] }[]): string {
  return steps.map((s, i) => `${i}:${showOutcome(s.outcome)}`).join(" ");
}

export const rel = (p: string) => relative(process.cwd(), p) || p;
