/** The matrix report as one self-contained HTML page (OUT/matrix.html): inline CSS, no scripts,
 *  no external resources. */
import { RULE_BY_ID } from "../spec/index.ts";
import { showOp, showOutcome } from "../spec/trace.ts";
import { caseName, cell, timeline, columnSummary, divergences, pairAgreement, programLabel, ruleRows } from "./report.ts";
import type { MatrixResult } from "./run.ts";
import type { KnownDivergence } from "../fuzz/known.ts";

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

export function renderHtml(r: MatrixResult, known?: readonly KnownDivergence[]): string {
  const live = r.columns.filter((c) => !c.unavailable);
  const divs = divergences(r);
  const H: string[] = [];
  H.push(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>auxspec kernel matrix</title><style>
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1200px;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.n{text-align:right;font-variant-numeric:tabular-nums}
td.ok{background:#e8f6e8}td.bad{background:#fbe3e3;font-weight:bold}td.known{background:#fff4d6}td.none{color:#aaa;text-align:center}td.seen{background:#fbe3e3;text-align:center}td.absent{background:#e8f6e8;text-align:center}
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
  if (known?.length) {
    const t = timeline(r, known);
    H.push(`</table><h2>Kernels × known bugs</h2><p class="small">● seen: a program matched the known divergence on that kernel; ○ absent: a program exercising its mechanism (one of its required rules fired) ran there without it; · not checked by this corpus. The range is what cases/known-divergences.json knows after this run.</p>`);
    H.push(`<table><tr><th>known divergence</th>${t.columns.map((c) => `<th>${esc(c.name)}<br><span class="small">${esc(c.kernel)}</span></th>`).join("")}<th>kernel range</th></tr>`);
    for (const row of t.rows) {
      H.push(`<tr><td><code>${esc(row.id)}</code><br><span class="small">${esc(row.kind)}, ${esc(row.rule)}</span></td>${row.marks.map((m) => (m === "seen" ? `<td class="seen">● seen</td>` : m === "absent" ? `<td class="absent">○ absent</td>` : `<td class="none">·</td>`)).join("")}<td class="small">${esc(row.range)}</td></tr>`);
    }
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
