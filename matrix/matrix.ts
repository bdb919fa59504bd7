/**
 * The kernel matrix: one seeded program corpus, run on the host kernel and on each VM kernel
 * (Debian 6.1 and 6.12 under QEMU with the auxspec_pmu test module), every trace judged by the
 * spec under that kernel's profile, and a report (Markdown and a self-contained HTML page):
 * kernels x rules with hits and agreement, each divergence with its kernel, kind and program,
 * and how often the kernels observed the same outcomes.
 *
^ *   npm run matrix -- [--seed N] [--programs N] [--max-ops N] [--kernels 6.1,6.12] [--no-host]
 *                     [--no-builtin] [--kernel bzImage --headers DIR] [--out DIR] [--strict]
 *
 * The corpus opens with the hand-written AUX programs of programs.ts (so the main AUX rules are
 * hit whatever the seed), then `--programs` random ones from fuzz/generate.ts.
 *
 * Writes OUT/matrix.md, OUT/matrix.html, OUT/matrix.json and OUT/cases/*.json (each divergent
 * program as an auxspec-case/1, replayable with `npm run replay -- CASE --backend B`).
 * Exit status: 0 when the matrix ran (with --strict: and no unexplained divergence or aborted
 * trace), 1 for --strict failures, 2 for usage errors or when no backend could run.
 */
import fc from "fast-check";
import { mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BackendUnavailable, type Backend } from "../backend/contract.ts";
import { programArb } from "../fuzz/generate.ts";
import { matchKnown, type KnownDivergence } from "../fuzz/known.ts";
import { RULES, RULE_BY_ID, checkTrace } from "../spec/index.ts";
import { CASE_FORMAT, type Case, type Config, type ProfileId, type Program } from "../spec/program.ts";
import { sameOutcome, showOp, showOutcome, type Divergence, type Trace, type Verdict } from "../spec/trace.ts";
import { AUX_PROGRAMS } from "../hwtest/vm/programs.ts";

export interface MatrixOptions {
  seed: number;
  programs: number;
  maxOps: number;
  /** Put the hand-written AUX programs (programs.ts) ahead of the random ones (default true). */
  builtin?: boolean;
  log?: (msg: string) => void;
  /** Divergences already classified (cases/known-divergences.json). */
  known?: readonly KnownDivergence[];
}

/** One kernel's column of the matrix. */
export interface Column {
  name: string;
  kernel: string | null;
  profile: ProfileId | null;
  config: Config | null;
  notes: string[];
  /** Why the backend could not run (then nothing else is set). */
  unavailable?: string;
  /** Indexes of corpus programs this backend ran (it skips programs with ops it cannot run). */
  ran: number[];
  skipped: Array<{ index: number; why: string }>;
  traces: Map<number, Trace>;
  verdicts: Map<number, Verdict>;
  known: Map<number, string>;
  /** rule id -> [hits, programs that hit it] */
  hits: Map<string, { hits: number; programs: number }>;
  seconds: number;
  /** Seconds to open the backend (provision + boot for VMs). */
  openSeconds: number;
  warnings: Array<{ index: number; lines: string[] }>;
}

export interface MatrixResult {
  options: { seed: number; programs: number; maxOps: number };
  /** Names of the hand-written programs at the start of the corpus (their index is their position). */
  builtin: string[];
  generatedWith: { backend: string; config: Config };
  corpus: Program[];
  columns: Column[];
  startedAt: string;
  seconds: number;
}

export interface BackendSlot {
  name: string;
  open: () => Promise<Backend>;
}

function emptyColumn(name: string): Column {
  return {
    name, kernel: null, profile: null, config: null, notes: [], ran: [], skipped: [], traces: new Map(), verdicts: new Map(),
    known: new Map(), hits: new Map(), seconds: 0, openSeconds: 0, warnings: [],
  };
}

/** The random corpus: `programs` programs from the lead's generator, seeded (same seed, same corpus). */
export function sampleCorpus(config: Config, seed: number, programs: number, maxOps: number): Program[] {
  return fc.sample(programArb({ config, maxOps }), { seed, numRuns: programs });
}

/** Run the corpus on one opened backend and judge every trace. */
export async function runColumn(col: Column, b: Backend, corpus: readonly Program[], opts: MatrixOptions): Promise<void> {
  const info = b.info;
  col.kernel = info.kernel;
  col.profile = info.profile;
  col.config = info.config;
  col.notes = [...info.notes];
  const runnable: number[] = [];
  corpus.forEach((p, i) => {
    const bad = p.find((op) => info.unsupported.has(op.op));
    if (bad) col.skipped.push({ index: i, why: `${info.name} cannot run ${bad.op}` });
    else runnable.push(i);
  });
  const t0 = performance.now();
  const traces = await b.run(runnable.map((i) => corpus[i]), info.config);
  col.seconds = (performance.now() - t0) / 1000;
  runnable.forEach((i, k) => {
    const trace = traces[k];
    const cov = new Map<string, number>();
    const v = checkTrace(corpus[i], info.config, info.profile, trace, cov);
    col.ran.push(i);
    col.traces.set(i, trace);
    col.verdicts.set(i, v);
    for (const [rule, n] of cov) {
      const h = col.hits.get(rule) ?? { hits: 0, programs: 0 };
      h.hits += n;
      h.programs += 1;
      col.hits.set(rule, h);
    }
    if (!v.accepted && opts.known) {
      const k = matchKnown(opts.known, v.divergence, v.profile, info, cov);
      if (k) col.known.set(i, k.id);
    }
    if (trace.audit?.warnings?.length) col.warnings.push({ index: i, lines: trace.audit.warnings });
  });
}

/**
 * Open each backend, run the corpus on it and judge. Backends are opened and run
 * concurrently (each VM is one QEMU thread); one that cannot open becomes a column that says why.
 * The corpus is generated with the config of the first backend whose config has an AUX PMU
 * (else the first one), so AUX paths are exercised; every backend runs it under its own config.
 */
export async function runMatrix(slots: readonly BackendSlot[], opts: MatrixOptions): Promise<MatrixResult> {
  const log = opts.log ?? (() => {});
  const startedAt = new Date().toISOString();
  const t0 = performance.now();
  const opened = await Promise.all(slots.map(async (s) => {
    const t = performance.now();
    try {
      const b = await s.open();
      log(`${s.name}: up (${b.info.kernel}, profile ${b.info.profile}) in ${((performance.now() - t) / 1000).toFixed(1)} s`);
      return { slot: s, backend: b, seconds: (performance.now() - t) / 1000, error: null as string | null };
    } catch (e) {
      const why = e instanceof BackendUnavailable ? e.message : `${(e as Error).message}`;
      log(`${s.name}: unavailable: ${why.split("\n")[0]}`);
      return { slot: s, backend: null, seconds: (performance.now() - t) / 1000, error: why };
    }
  }));
  const up = opened.filter((o) => o.backend);
  const gen = up.find((o) => o.backend!.info.config.pmus.aux !== null) ?? up[0];
  const columns = opened.map((o) => {
    const c = emptyColumn(o.slot.name);
    c.openSeconds = o.seconds;
    if (o.error) c.unavailable = o.error;
    return c;
  });
  if (!gen) {
    return { options: { seed: opts.seed, programs: opts.programs, maxOps: opts.maxOps }, builtin: [], generatedWith: { backend: "none", config: null as unknown as Config }, corpus: [], columns, startedAt, seconds: (performance.now() - t0) / 1000 };
  }
  const genConfig = gen.backend!.info.config;
  const builtin = opts.builtin === false ? [] : Object.keys(AUX_PROGRAMS);
  const corpus = [
    ...builtin.map((n) => AUX_PROGRAMS[n as keyof typeof AUX_PROGRAMS]),
    ...sampleCorpus(genConfig, opts.seed, opts.programs, opts.maxOps),
  ];
  log(`corpus: ${builtin.length} hand-written AUX programs + ${opts.programs} random (seed ${opts.seed}, up to ${opts.maxOps} ops) generated for ${gen.slot.name}'s config`);
  try {
    await Promise.all(opened.map(async (o, k) => {
      if (!o.backend) return;
      await runColumn(columns[k], o.backend, corpus, opts);
      const c = columns[k];
      const div = [...c.verdicts.values()].filter((v) => !v.accepted).length;
      log(`${o.slot.name}: ${c.ran.length} programs in ${c.seconds.toFixed(1)} s, ${div} divergent, ${c.skipped.length} skipped`);
    }));
  } finally {
    await Promise.all(opened.map((o) => o.backend?.close()));
  }
  return {
    options: { seed: opts.seed, programs: opts.programs, maxOps: opts.maxOps },
    builtin,
    generatedWith: { backend: gen.slot.name, config: genConfig },
    corpus, columns, startedAt, seconds: (performance.now() - t0) / 1000,
  };
}

// ---------------------------------------------------------------------------------------------
// Summaries shared by both renderings

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

const compactProgram = (p: Program) => p.map((op) => showOp(op)).join("; ");
/** "program 12" or "program 3 (fault)" for the hand-written ones. */
export const programLabel = (r: MatrixResult, i: number) => (i < r.builtin.length ? `program ${i} (${r.builtin[i]})` : `program ${i}`);
const outcomesOf = (t: Trace) => (t.aborted ? `aborted: ${t.aborted.split("\n")[0]}` : t.steps.map((s) => showOutcome(s.outcome)).join(", "));

// ---------------------------------------------------------------------------------------------
// Markdown

function mdEscape(s: string): string {
  return s.replace(/\|/g, "\\|").replace(/\n/g, " ");
}

function cellText(x: Cell): string {
  if (x.hits === 0 && x.diverged === 0 && x.known === 0) return "·";
  const mark = x.diverged ? `✗${x.diverged}` : x.known ? `known ${x.known}` : "✓";
  return `${x.hits} ${mark}`;
}

export function renderMarkdown(r: MatrixResult): string {
  const L: string[] = [];
  const cols = r.columns;
  L.push(`# auxspec kernel matrix`);
  L.push("");
  L.push(`${r.startedAt} · seed ${r.options.seed} · ${r.corpus.length} programs (${r.builtin.length} hand-written AUX programs, then ${r.corpus.length - r.builtin.length} random of up to ${r.options.maxOps} ops) · generated for ${r.generatedWith.backend} · ${r.seconds.toFixed(1)} s in all`);
  L.push("");
  L.push(`## Kernels`);
  L.push("");
  L.push("| backend | kernel | profile | ran | accepted | divergent | known | aborted | skipped | programs/s | open (s) |");
  L.push("|---|---|---|---|---|---|---|---|---|---|---|");
  for (const c of cols) {
    if (c.unavailable) {
      L.push(`| ${c.name} | unavailable: ${mdEscape(c.unavailable.split("\n")[0])} | | | | | | | | | ${c.openSeconds.toFixed(1)} |`);
      continue;
    }
    const s = columnSummary(c);
    L.push(`| ${c.name} | ${c.kernel ?? "-"} | ${c.profile} | ${s.ran} | ${s.accepted} | ${s.diverged} | ${s.known} | ${s.aborted} | ${s.skipped} | ${s.perSecond.toFixed(1)} | ${c.openSeconds.toFixed(1)} |`);
  }
  L.push("");
  for (const c of cols.filter((c) => !c.unavailable)) {
    L.push(`- **${c.name}**: ${c.notes.map(mdEscape).join("; ")}`);
  }
  L.push("");
  L.push(`## Rules x kernels`);
  L.push("");
  L.push("Each cell: how often the spec's rule decided an op on that kernel (hits), then ✓ when no program diverged under that rule, ✗N for N divergent programs, `known N` for classified ones; · not hit.");
  L.push("");
  const live = cols.filter((c) => !c.unavailable);
  L.push(`| rule | ${live.map((c) => c.name).join(" | ")} | summary |`);
  L.push(`|---|${live.map(() => "---").join("|")}|---|`);
  for (const rule of ruleRows(r)) {
    const summary = RULE_BY_ID.get(rule)?.summary ?? "(not in RULES)";
    L.push(`| \`${rule}\` | ${live.map((c) => cellText(cell(r, c, rule))).join(" | ")} | ${mdEscape(summary)} |`);
  }
  const never = RULES.filter((x) => !live.some((c) => c.hits.has(x.id))).map((x) => `\`${x.id}\``);
  if (never.length) {
    L.push("");
    L.push(`Rules no kernel hit with this corpus: ${never.join(", ")}.`);
  }
  L.push("");
  L.push(`## Agreement between kernels`);
  L.push("");
  L.push("Programs both ran with identical outcome sequences (different machines differ on purpose: the host has no AUX PMU, 2 CPUs).");
  L.push("");
  L.push("| kernels | common programs | same outcomes |");
  L.push("|---|---|---|");
  for (const p of pairAgreement(r)) L.push(`| ${p.a} / ${p.b} | ${p.common} | ${p.same} (${p.common ? ((100 * p.same) / p.common).toFixed(0) : 0}%) |`);
  L.push("");
  const divs = divergences(r);
  L.push(`## Divergences (${divs.length})`);
  L.push("");
  if (divs.length === 0) L.push("None: every trace was accepted by the spec.");
  for (const d of divs) {
    const dv = d.divergence;
    L.push(`### ${d.kernel} · ${programLabel(r, d.index)} · ${dv.kind} · \`${dv.rule}\`${d.known ? ` · known: ${d.known}` : ""}`);
    L.push("");
    L.push(`- op: ${dv.opIndex >= 0 ? `#${dv.opIndex} \`${showOp(d.program[dv.opIndex])}\`` : "end-of-program audit"}`);
    L.push(`- expected: ${dv.expected.map((e) => `\`${e}\``).join(" or ")}`);
    L.push(`- observed: \`${dv.observed}\``);
    L.push(`- detail: ${mdEscape(dv.detail)}`);
    L.push(`- program: \`${compactProgram(d.program)}\``);
    L.push(`- outcomes: ${mdEscape(outcomesOf(d.trace))}`);
    L.push(`- case: \`cases/${caseName(d)}.json\``);
    L.push("");
  }
  const warned = cols.flatMap((c) => c.warnings.map((w) => ({ kernel: c.name, ...w })));
  L.push(`## Kernel warnings (${warned.length} programs)`);
  L.push("");
  if (warned.length === 0) L.push("None.");
  for (const w of warned) L.push(`- ${w.kernel}, ${programLabel(r, w.index)}: ${w.lines.map((l) => `\`${mdEscape(l)}\``).join("; ")}`);
  L.push("");
  const skipped = cols.filter((c) => c.skipped.length);
  if (skipped.length) {
    L.push(`## Skipped`);
    L.push("");
    for (const c of skipped) {
      const why = new Map<string, number>();
      for (const s of c.skipped) why.set(s.why, (why.get(s.why) ?? 0) + 1);
      L.push(`- ${c.name}: ${[...why].map(([w, n]) => `${n} programs (${w})`).join("; ")}`);
    }
    L.push("");
  }
  return L.join("\n");
}

// ---------------------------------------------------------------------------------------------
// HTML (self-contained: inline CSS, no scripts, no external resources)

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

export function renderHtml(r: MatrixResult): string {
  const live = r.columns.filter((c) => !c.unavailable);
  const divs = divergences(r);
  const H: string[] = [];
  H.push(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>auxspec kernel matrix</title><style>
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1200px;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.n{text-align:right;font-variant-numeric:tabular-nums}
td.ok{background:#e8f6e8}td.bad{background:#fbe3e3;font-weight:bold}td.known{background:#fff4d6}td.none{color:#aaa;text-align:center}
code{background:#f5f5f5;padding:0 3px;border-radius:3px}.div{border-left:4px solid #c33;padding:.2em 1em;margin:1em 0;background:#fdf7f7}
.div.known{border-color:#d90;background:#fffaf0}details{margin:.3em 0}pre{white-space:pre-wrap;background:#f7f7f7;padding:.5em}
.small{color:#666;font-size:12px}</style></head><body>`);
  H.push(`<h1>auxspec kernel matrix</h1><p class="small">${esc(r.startedAt)} · seed ${r.options.seed} · ${r.corpus.length} programs (${r.builtin.length} hand-written AUX programs, then ${r.corpus.length - r.builtin.length} random of up to ${r.options.maxOps} ops) · generated for ${esc(r.generatedWith.backend)} · ${r.seconds.toFixed(1)} s in all</p>`);
  H.push(`<h2>Kernels</h2><table><tr><th>backend</th><th>kernel</th><th>profile</th><th>ran</th><th>accepted</th><th>divergent</th><th>known</th><th>aborted</th><th>skipped</th><th>programs/s</th><th>open (s)</th></tr>`);
  for (const c of r.columns) {
    if (c.unavailable) {
      H.push(`<tr><td>${esc(c.name)}</td><td colspan="9">unavailable: ${esc(c.unavailable)}</td><td class="n">${c.openSeconds.toFixed(1)}</td></tr>`);
      continue;
    }
    const s = columnSummary(c);
    H.push(`<tr><td>${esc(c.name)}</td><td>${esc(c.kernel ?? "-")}</td><td>${esc(String(c.profile))}</td><td class="n">${s.ran}</td><td class="n">${s.accepted}</td><td class="n ${s.diverged ? "bad" : "ok"}">${s.diverged}</td><td class="n">${s.known}</td><td class="n ${s.aborted ? "bad" : ""}">${s.aborted}</td><td class="n">${s.skipped}</td><td class="n">${s.perSecond.toFixed(1)}</td><td class="n">${c.openSeconds.toFixed(1)}</td></tr>`);
  }
  H.push(`</table><ul>`);
  for (const c of live) H.push(`<li><b>${esc(c.name)}</b>: ${c.notes.map(esc).join("; ")}</li>`);
  H.push(`</ul><h2>Rules × kernels</h2><p class="small">Hits per rule; green: no divergence under the rule; red: divergent programs; amber: known divergences; · not hit.</p>`);
  H.push(`<table><tr><th>rule</th>${live.map((c) => `<th>${esc(c.name)}</th>`).join("")}<th>summary</th></tr>`);
  for (const rule of ruleRows(r)) {
    const rr = RULE_BY_ID.get(rule);
    H.push(`<tr><td><code>${esc(rule)}</code></td>`);
    for (const c of live) {
      const x = cell(r, c, rule);
      if (x.hits === 0 && !x.diverged && !x.known) H.push(`<td class="none">·</td>`);
      else H.push(`<td class="n ${x.diverged ? "bad" : x.known ? "known" : "ok"}" title="${x.programs} programs">${x.hits}${x.diverged ? ` ✗${x.diverged}` : x.known ? ` (known ${x.known})` : ""}</td>`);
    }
    H.push(`<td class="small">${esc(rr ? `${rr.summary} [${rr.cite.fn}, ${rr.cite.file}, ${rr.cite.version}]` : "(not in RULES)")}</td></tr>`);
  }
  H.push(`</table><h2>Agreement between kernels</h2><table><tr><th>kernels</th><th>common programs</th><th>same outcomes</th></tr>`);
  for (const p of pairAgreement(r)) H.push(`<tr><td>${esc(p.a)} / ${esc(p.b)}</td><td class="n">${p.common}</td><td class="n">${p.same} (${p.common ? ((100 * p.same) / p.common).toFixed(0) : 0}%)</td></tr>`);
  H.push(`</table><h2>Divergences (${divs.length})</h2>`);
  if (divs.length === 0) H.push(`<p>None: every trace was accepted by the spec.</p>`);
  for (const d of divs) {
    const dv = d.divergence;
    H.push(`<div class="div${d.known ? " known" : ""}"><h3>${esc(d.kernel)} · ${esc(programLabel(r, d.index))} · ${esc(dv.kind)} · <code>${esc(dv.rule)}</code>${d.known ? ` · known: ${esc(d.known)}` : ""}</h3>`);
    H.push(`<p>op ${dv.opIndex >= 0 ? `#${dv.opIndex} <code>${esc(showOp(d.program[dv.opIndex]))}</code>` : "end-of-program audit"}: expected ${dv.expected.map((e) => `<code>${esc(e)}</code>`).join(" or ")}, observed <code>${esc(dv.observed)}</code></p><p>${esc(dv.detail)}</p>`);
    H.push(`<details><summary>program (${d.program.length} ops), outcomes, case cases/${esc(caseName(d))}.json</summary><pre>${d.program.map((op, i) => `${i}: ${esc(showOp(op))}  ->  ${esc(d.trace.steps[i] ? showOutcome(d.trace.steps[i].outcome) : "-")}`).join("\n")}</pre>${d.trace.aborted ? `<pre>${esc(d.trace.aborted)}</pre>` : ""}</details></div>`);
  }
  const warned = r.columns.flatMap((c) => c.warnings.map((w) => ({ kernel: c.name, ...w })));
  H.push(`<h2>Kernel warnings (${warned.length} programs)</h2>`);
  if (warned.length === 0) H.push(`<p>None.</p>`);
  else H.push(`<ul>${warned.map((w) => `<li>${esc(w.kernel)}, ${esc(programLabel(r, w.index))}: ${w.lines.map((l) => `<code>${esc(l)}</code>`).join("<br>")}</li>`).join("")}</ul>`);
  H.push(`</body></html>`);
  return H.join("\n");
}

// ---------------------------------------------------------------------------------------------
// Files

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
export function resultJson(r: MatrixResult): unknown {
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
  };
}

export function writeReport(r: MatrixResult, outDir: string): { md: string; html: string; json: string; cases: string[] } {
  mkdirSync(join(outDir, "cases"), { recursive: true });
  // Cases of an earlier run in the same folder would read as this run's.
  for (const f of readdirSync(join(outDir, "cases"))) if (/^matrix-.*\.json$/.test(f)) rmSync(join(outDir, "cases", f));
  const md = join(outDir, "matrix.md");
  const html = join(outDir, "matrix.html");
  const json = join(outDir, "matrix.json");
  writeFileSync(md, renderMarkdown(r));
  writeFileSync(html, renderHtml(r));
  writeFileSync(json, JSON.stringify(resultJson(r), null, 1));
  const cases: string[] = [];
  for (const d of divergences(r)) {
    const p = join(outDir, "cases", `${caseName(d)}.json`);
    writeFileSync(p, JSON.stringify(divergenceCase(r, d), null, 2) + "\n");
    cases.push(p);
  }
  return { md, html, json, cases };
}

export function renderSummary(r: MatrixResult): string {
  return r.columns.map((c) => {
    if (c.unavailable) return `${c.name}: unavailable (${c.unavailable.split("\n")[0]})`;
    const s = columnSummary(c);
    return `${c.name} (${c.kernel}, profile ${c.profile}): ${s.ran} ran, ${s.accepted} accepted, ${s.diverged} divergent, ${s.known} known, ${s.aborted} aborted, ${s.skipped} skipped, ${s.perSecond.toFixed(1)} programs/s`;
  }).join("\n");
}
