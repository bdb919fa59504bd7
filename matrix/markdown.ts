/** The matrix report as Markdown (OUT/matrix.md). */
import { RULES, RULE_BY_ID } from "../spec/index.ts";
import { showOp } from "../spec/trace.ts";
import { caseName, cell, timeline, columnSummary, compactProgram, divergences, outcomesOf, pairAgreement, programLabel, ruleRows, type Cell } from "./report.ts";
import type { MatrixResult } from "./run.ts";
import type { KnownDivergence } from "../fuzz/known.ts";

const MARK_MD = { seen: "● seen", absent: "○ absent", unchecked: "·" } as const;

function mdEscape(s: string): string {
  return s.replace(/\|/g, "\\|").replace(/\n/g, " ");
}

function cellText(x: Cell): string {
  if (x.hits === 0 && x.diverged === 0 && x.known === 0) return "·";
  const mark = x.diverged ? `✗${x.diverged}` : x.known ? `known ${x.known}` : "✓";
  return `${x.hits} ${mark}`;
}

export function renderMarkdown(r: MatrixResult, known?: readonly KnownDivergence[]): string {
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
  if (known?.length) {
    const t = timeline(r, known);
    L.push("");
    L.push(`## Kernels x known bugs`);
    L.push("");
    L.push("For each known divergence (cases/known-divergences.json): ● seen, a program matched it on that kernel; ○ absent, a program exercising its mechanism (one of its required rules fired) ran there without it; · not checked by this corpus. The range is what the list knows after this run (kernelsSeen/kernelsAbsent).");
    L.push("");
    L.push(`| known divergence | ${t.columns.map((c) => `${c.name}<br>${c.kernel}`).join(" | ")} | kernel range |`);
    L.push(`|---|${t.columns.map(() => "---").join("|")}|---|`);
    for (const row of t.rows) L.push(`| \`${row.id}\` (${row.kind}, \`${row.rule}\`) | ${row.marks.map((m) => MARK_MD[m]).join(" | ")} | ${mdEscape(row.range)} |`);
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
