/**
 * The matrix report model, shared by every rendering (markdown.ts, html.ts, write.ts): the
 * divergence rows, the rule rows and kernel x rule cells, agreement between kernel pairs,
 * per-column summaries, the case each divergence becomes, and the JSON form of a result.
 */
import { RULES, RULE_BY_ID } from "../spec/index.ts";
import { CASE_FORMAT, type Case, type ProfileId, type Program } from "../spec/program.ts";
import { sameOutcome, showOp, showOutcome, type Divergence, type Trace } from "../spec/trace.ts";
import type { Column, MatrixResult } from "./run.ts";
import type { KnownDivergence } from "../fuzz/known.ts";
import { kernelOrder, kernelRange, knownMarks, type TimelineMark } from "./record.ts";

export interface DivergenceRow {
  kernel: string;
  index: number;
  profile: ProfileId;
  divergence: Divergence;
  known: string | null;
  program: Program;
  trace: Trace;
}

export function divergences(r: MatrixResult): DivergenceRow[] {
  const rows: DivergenceRow[] = [];
  for (const c of r.columns) {
    for (const i of c.ran) {
      const v = c.verdicts.get(i)!;
      if (v.accepted) continue;
      rows.push({ kernel: c.name, index: i, profile: v.profile, divergence: v.divergence, known: c.known.get(i) ?? null, program: r.corpus[i], trace: c.traces.get(i)! });
    }
  }
  return rows;
}

/** Rules in RULES order, then ids the spec reported that RULES does not list. */
export function ruleRows(r: MatrixResult): string[] {
  const seen = new Set<string>();
  for (const c of r.columns) for (const id of c.hits.keys()) seen.add(id);
  for (const d of divergences(r)) seen.add(d.divergence.rule);
  const ordered = RULES.map((x) => x.id).filter((id) => seen.has(id));
  const extra = [...seen].filter((id) => !RULE_BY_ID.has(id)).sort();
  return [...ordered, ...extra];
}

export interface Cell { hits: number; programs: number; diverged: number; known: number }

export function cell(r: MatrixResult, c: Column, rule: string): Cell {
  const h = c.hits.get(rule) ?? { hits: 0, programs: 0 };
  let diverged = 0;
  let known = 0;
  for (const i of c.ran) {
    const v = c.verdicts.get(i)!;
    if (!v.accepted && v.divergence.rule === rule) {
      if (c.known.has(i)) known++;
      else diverged++;
    }
  }
  return { ...h, diverged, known };
}

function sameSteps(a: Trace, b: Trace): boolean {
  if (a.aborted || b.aborted || a.steps.length !== b.steps.length) return false;
  return a.steps.every((s, i) => sameOutcome(s.outcome, b.steps[i].outcome));
}

/** For each pair of columns that both ran programs: how many common programs had the same outcomes. */
export function pairAgreement(r: MatrixResult): Array<{ a: string; b: string; common: number; same: number }> {
  const out: Array<{ a: string; b: string; common: number; same: number }> = [];
  const cols = r.columns.filter((c) => !c.unavailable);
  for (let x = 0; x < cols.length; x++) {
    for (let y = x + 1; y < cols.length; y++) {
      let common = 0;
      let same = 0;
      for (const i of cols[x].ran) {
        const tb = cols[y].traces.get(i);
        if (!tb) continue;
        common++;
        if (sameSteps(cols[x].traces.get(i)!, tb)) same++;
      }
      out.push({ a: cols[x].name, b: cols[y].name, common, same });
    }
  }
  return out;
}

export function columnSummary(c: Column): { ran: number; accepted: number; diverged: number; known: number; aborted: number; skipped: number; perSecond: number } {
  let accepted = 0;
  let diverged = 0;
  let known = 0;
  let aborted = 0;
  for (const i of c.ran) {
    const v = c.verdicts.get(i)!;
    if (c.traces.get(i)!.aborted) aborted++;
    if (v.accepted) accepted++;
    else if (c.known.has(i)) known++;
    else diverged++;
  }
  return { ran: c.ran.length, accepted, diverged, known, aborted, skipped: c.skipped.length, perSecond: c.seconds > 0 ? c.ran.length / c.seconds : 0 };
}

export const compactProgram = (p: Program) => p.map((op) => showOp(op)).join("; ");
/** "program 12" or "program 3 (fault)" for the hand-written ones. */
export const programLabel = (r: MatrixResult, i: number) => (i < r.builtin.length ? `program ${i} (${r.builtin[i]})` : `program ${i}`);
export const outcomesOf = (t: Trace) => (t.aborted ? `aborted: ${t.aborted.split("\n")[0]}` : t.steps.map((s) => showOutcome(s.outcome)).join(", "));

export function caseName(d: { kernel: string; index: number; divergence: Divergence }): string {
  return `matrix-${d.kernel.replace(/[^A-Za-z0-9.+-]/g, "_")}-p${d.index}-${d.divergence.rule.replace(/[^A-Za-z0-9.+-]/g, "_")}`;
}

export function divergenceCase(r: MatrixResult, d: DivergenceRow): Case {
  const col = r.columns.find((c) => c.name === d.kernel)!;
  return {
    format: CASE_FORMAT,
    name: caseName(d),
    description: `kernel matrix (seed ${r.options.seed}, ${programLabel(r, d.index)}) on ${d.kernel} (${col.kernel}): ${d.divergence.kind} under ${d.divergence.rule}: ` +
      `expected ${d.divergence.expected.join(" or ")}, observed ${d.divergence.observed}. ${d.divergence.detail}`,
    profile: d.profile,
    config: col.config!,
    program: d.program,
  };
}

/** JSON form of the result (Maps flattened). */
export function resultJson(r: MatrixResult, known?: readonly KnownDivergence[]): unknown {
  return {
    format: "auxspec-matrix/1",
    ...r.options,
    builtin: r.builtin,
    startedAt: r.startedAt,
    seconds: r.seconds,
    generatedWith: r.generatedWith,
    corpus: r.corpus,
    columns: r.columns.map((c) => ({
      name: c.name, kernel: c.kernel, profile: c.profile, config: c.config, notes: c.notes, unavailable: c.unavailable,
      seconds: c.seconds, openSeconds: c.openSeconds, summary: c.unavailable ? null : columnSummary(c),
      hits: Object.fromEntries(c.hits), skipped: c.skipped,
      results: c.ran.map((i) => ({ index: i, verdict: c.verdicts.get(i), known: c.known.get(i) ?? null, trace: c.traces.get(i) })),
    })),
    agreement: pairAgreement(r),
    ...(known ? { timeline: timeline(r, known) } : {}),
  };
}

export function renderSummary(r: MatrixResult): string {
  return r.columns.map((c) => {
    if (c.unavailable) return `${c.name}: unavailable (${c.unavailable.split("\n")[0]})`;
    const s = columnSummary(c);
    return `${c.name} (${c.kernel}, profile ${c.profile}): ${s.ran} ran, ${s.accepted} accepted, ${s.diverged} divergent, ${s.known} known, ${s.aborted} aborted, ${s.skipped} skipped, ${s.perSecond.toFixed(1)} programs/s`;
  }).join("\n");
}

export interface Timeline {
  /** The columns that ran, oldest kernel first (the host where its release sorts). */
  columns: Array<{ name: string; kernel: string }>;
  rows: Array<{ id: string; kind: string; rule: string; marks: TimelineMark[]; range: string }>;
}

/**
 * Kernels x known divergences: for each known divergence, seen / checked-absent / not-checked
 * on each kernel of this run (record.ts knownMarks), and the kernel range its list gives
 * (`known` after this run was merged in, when it was).
 */
export function timeline(r: MatrixResult, known: readonly KnownDivergence[]): Timeline {
  const cols = r.columns.filter((c) => !c.unavailable && c.kernel).sort((a, b) => kernelOrder(a.kernel!, b.kernel!));
  const marks = knownMarks(r, known);
  return {
    columns: cols.map((c) => ({ name: c.name, kernel: c.kernel! })),
    rows: known.map((k) => ({
      id: k.id, kind: k.kind, rule: k.rule,
      marks: cols.map((c) => marks.get(k.id)?.get(c.name) ?? "unchecked"),
      range: kernelRange(k),
    })),
  };
}
