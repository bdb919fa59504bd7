/**
 * The kernel matrix's logic and report, with the reference model standing in for kernels
 * (no QEMU): a clean model must be accepted everywhere, a model with a historic bug switched
 * on must show divergences under the rule the bug breaks, and the report files must be
 * complete, self-contained and replayable.
 */
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { BackendUnavailable } from "../../backend/contract.ts";
import { MODEL_CONFIG, modelBackend } from "../../backend/model.ts";
import { Case } from "../../spec/program.ts";
import { AUX_PROGRAMS } from "../../hwtest/vm/programs.ts";
import {
  cell, columnSummary, divergences, pairAgreement, renderHtml, renderMarkdown, ruleRows, runMatrix, sampleCorpus, writeReport,
  type MatrixResult,
} from "../../matrix/index.ts";

const out = mkdtempSync(join(tmpdir(), "auxspec-matrix-test-"));
afterAll(() => rmSync(out, { recursive: true, force: true }));

describe("kernel matrix (model backends)", () => {
  let r: MatrixResult;

  it("runs one corpus on every backend and judges each trace under the backend's profile", async () => {
    const logs: string[] = [];
    r = await runMatrix([
      { name: "clean", open: async () => modelBackend("6.12") },
      { name: "buggy", open: async () => modelBackend("6.12", ["vma-split"]) },
      { name: "missing", open: async () => { throw new BackendUnavailable("no such machine here"); } },
    ], { seed: 7, programs: 150, maxOps: 20, log: (m) => logs.push(m), builtin: false });
    expect(r.corpus).toHaveLength(150);
    expect(r.builtin).toEqual([]);
    expect(r.corpus).toEqual(sampleCorpus(MODEL_CONFIG, 7, 150, 20)); // seeded: the same corpus again
    expect(r.generatedWith.backend).toBe("clean");
    const [clean, buggy, missing] = r.columns;
    expect(missing.unavailable).toBe("no such machine here");
    expect(columnSummary(clean)).toMatchObject({ ran: 150, accepted: 150, diverged: 0, aborted: 0, skipped: 0 });
    const b = columnSummary(buggy);
    expect(b.ran).toBe(150);
    expect(b.diverged).toBeGreaterThan(0);
    expect(b.accepted + b.diverged).toBe(150);
    expect(logs.some((l) => l.startsWith("missing: unavailable"))).toBe(true);
  });

  it("attributes divergences to rules and counts rule hits per kernel", () => {
    const [clean, buggy] = r.columns;
    const divs = divergences(r);
    expect(divs.length).toBe(columnSummary(buggy).diverged);
    expect(divs.every((d) => d.kernel === "buggy")).toBe(true);
    const rules = ruleRows(r);
    expect(rules.length).toBeGreaterThan(10);
    for (const d of divs) expect(rules).toContain(d.divergence.rule);
    // the bug lets perf VMAs split: the divergences sit under the split rules or what follows them
    const byRule = new Map<string, number>();
    for (const d of divs) byRule.set(d.divergence.rule, (byRule.get(d.divergence.rule) ?? 0) + 1);
    for (const [rule, n] of byRule) expect(cell(r, buggy, rule).diverged).toBe(n);
    expect(rules.every((id) => cell(r, clean, id).diverged === 0)).toBe(true);
    expect(cell(r, clean, "open.ok").hits).toBeGreaterThan(0);
    const agree = pairAgreement(r);
    expect(agree).toHaveLength(1);
    expect(agree[0]).toMatchObject({ a: "clean", b: "buggy", common: 150 });
    expect(agree[0].same).toBeLessThan(150);
    expect(agree[0].same).toBeGreaterThan(0);
  });

  it("writes Markdown, a self-contained HTML page, JSON and one replayable case per divergence", () => {
    mkdirSync(join(out, "cases"), { recursive: true });
    writeFileSync(join(out, "cases", "matrix-stale-p1-x.json"), "{}"); // an earlier run's case goes
    const files = writeReport(r, out);
    const md = readFileSync(files.md, "utf8");
    expect(md).toContain("| rule | clean | buggy | summary |");
    expect(md).toContain("missing | unavailable: no such machine here");
    expect(md).toMatch(/## Divergences \(\d+\)/);
    const html = readFileSync(files.html, "utf8");
    expect(html.startsWith("<!doctype html>")).toBe(true);
    expect(html).not.toMatch(/<script|<link|src=|href=/);
    expect(html).toContain("<th>clean</th><th>buggy</th>");
    expect(renderMarkdown(r)).toBe(md);
    expect(renderHtml(r)).toBe(html);
    const json = JSON.parse(readFileSync(files.json, "utf8"));
    expect(json.format).toBe("auxspec-matrix/1");
    expect(json.columns[1].results).toHaveLength(150);
    const caseFiles = readdirSync(join(out, "cases"));
    expect(caseFiles).toHaveLength(divergences(r).length);
    for (const f of caseFiles) {
      const c = Case.parse(JSON.parse(readFileSync(join(out, "cases", f), "utf8")));
      expect(c.profile).toBe("6.12");
      expect(c.description).toMatch(/on buggy/);
    }
  });

  it("opens the corpus with the hand-written AUX programs, which a correct model passes", async () => {
    const r2 = await runMatrix([{ name: "clean", open: async () => modelBackend("6.12") }], { seed: 1, programs: 5, maxOps: 10 });
    expect(r2.builtin).toEqual(Object.keys(AUX_PROGRAMS));
    expect(r2.corpus).toHaveLength(r2.builtin.length + 5);
    expect(r2.corpus[0]).toEqual(AUX_PROGRAMS.good);
    expect(columnSummary(r2.columns[0])).toMatchObject({ diverged: 0, aborted: 0 });
    for (const rule of ["mmap.aux.new", "mmap.aux.remap", "mmap.aux.setup-refused", "munmap.split"]) {
      expect(cell(r2, r2.columns[0], rule).hits, rule).toBeGreaterThan(0);
    }
    expect(renderMarkdown(r2)).toContain("hand-written AUX programs");
  });
});
