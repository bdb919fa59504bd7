/** Writes a matrix report: OUT/matrix.md, OUT/matrix.html, OUT/matrix.json and one
 *  auxspec-case/1 per divergence in OUT/cases/. */
import { mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { renderHtml } from "./html.ts";
import { renderMarkdown } from "./markdown.ts";
import { caseName, divergenceCase, divergences, resultJson } from "./report.ts";
import type { MatrixResult } from "./run.ts";
import type { KnownDivergence } from "../fuzz/known.ts";

/** `known`: the known divergences (after this run was recorded into them) for the kernels x known-bugs timeline. */
export function writeReport(r: MatrixResult, outDir: string, known?: readonly KnownDivergence[]): { md: string; html: string; json: string; cases: string[] } {
  mkdirSync(join(outDir, "cases"), { recursive: true });
  // Cases of an earlier run in the same folder would read as this run's.
  for (const f of readdirSync(join(outDir, "cases"))) if (/^matrix-.*\.json$/.test(f)) rmSync(join(outDir, "cases", f));
  const md = join(outDir, "matrix.md");
  const html = join(outDir, "matrix.html");
  const json = join(outDir, "matrix.json");
  writeFileSync(md, renderMarkdown(r, known));
  writeFileSync(html, renderHtml(r, known));
  writeFileSync(json, JSON.stringify(resultJson(r, known), null, 1));
  const cases: string[] = [];
  for (const d of divergences(r)) {
    const p = join(outDir, "cases", `${caseName(d)}.json`);
    writeFileSync(p, JSON.stringify(divergenceCase(r, d), null, 2) + "\n");
    cases.push(p);
  }
  return { md, html, json, cases };
}
