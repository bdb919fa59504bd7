/** Writes a matrix report: OUT/matrix.md, OUT/matrix.html, OUT/matrix.json and one
 *  auxspec-case/1 per divergence in OUT/cases/. */
import { mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { renderHtml } from "./html.ts";
import { renderMarkdown } from "./markdown.ts";
import { caseName, divergenceCase, divergences, resultJson } from "./report.ts";
import type { MatrixResult } from "./run.ts";

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
