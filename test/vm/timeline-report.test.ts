/**
 * The matrix's kernels x known-bugs timeline and the recording of kernelsSeen/kernelsAbsent
 * (matrix/record.ts), and the pool that keeps at most `concurrency` backends open, with the
 * reference model standing in for kernels (no QEMU).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { Backend } from "../../backend/contract.ts";
import { modelBackend } from "../../backend/model.ts";
import type { KnownDivergence } from "../../fuzz/known.ts";
import { KnownList } from "../../fuzz/known.ts";
import { columnSummary, renderHtml, renderMarkdown, runMatrix, timeline, type BackendSlot } from "../../matrix/index.ts";
import { kernelOrder, kernelRange, knownJson, knownMarks, mergeKnown } from "../../matrix/record.ts";

const ROOT = join(import.meta.dirname, "../..");

/** A model backend that says it is kernel `kernel`. */
const as = (kernel: string, b: Backend): Backend => ({ ...b, info: { ...b.info, kernel } });

describe("kernels x known bugs", () => {
  it("marks seen where a program matched, absent where its mechanism ran without it, and merges the lists", async () => {
    // Learn what the split bug looks like, then call it known.
    const probe = await runMatrix([{ name: "buggy", open: async () => modelBackend("6.12", ["vma-split"]) }], { seed: 7, programs: 150, maxOps: 20, builtin: false });
    const first = [...probe.columns[0].verdicts.values()].find((v) => !v.accepted)!;
    expect(first).toBeDefined();
    if (first.accepted) return;
    const known: KnownDivergence[] = [
      { id: "split-bug", kind: first.divergence.kind, rule: first.divergence.rule, profiles: ["6.12"], backends: ["*"], requires: ["open.ok"], explanation: "test", kernelsSeen: ["1.0.0-1-amd64 (vm)"], kernelsAbsent: ["6.12.118+deb13-amd64 (vm)"], case: "x" },
      { id: "never", kind: "outcome", rule: "no.such.rule", profiles: ["6.12"], requires: ["no.such.rule"], explanation: "test", kernelsSeen: [], case: "y" },
    ];
    const r = await runMatrix([
      { name: "vm:clean", open: async () => as("6.12.120+deb13-amd64", modelBackend("6.12")) },
      { name: "vm:buggy", open: async () => as("6.12.118+deb13-amd64", modelBackend("6.12", ["vma-split"])) },
    ], { seed: 7, programs: 150, maxOps: 20, builtin: false, known });
    expect(columnSummary(r.columns[1]).known).toBeGreaterThan(0);
    const marks = knownMarks(r, known);
    expect(marks.get("split-bug")!.get("vm:buggy")).toBe("seen");
    expect(marks.get("split-bug")!.get("vm:clean")).toBe("absent");
    expect(marks.get("never")!.get("vm:clean")).toBe("unchecked");
    const t = timeline(r, known);
    expect(t.columns.map((c) => c.name)).toEqual(["vm:buggy", "vm:clean"]); // oldest kernel first
    expect(t.rows[0].marks).toEqual(["seen", "absent"]);
    const { divergences, added } = mergeKnown(r, known);
    // seen wins: the kernel leaves kernelsAbsent; new labels are appended
    expect(divergences[0].kernelsSeen).toEqual(["1.0.0-1-amd64 (vm)", "6.12.118+deb13-amd64 (vm)"]);
    expect(divergences[0].kernelsAbsent).toEqual(["6.12.120+deb13-amd64 (vm)"]);
    expect(divergences[1]).toEqual(known[1]); // nothing checked: untouched (no kernelsAbsent added)
    expect(added).toHaveLength(2);
    expect(mergeKnown(r, divergences).added).toEqual([]); // idempotent
    expect(kernelRange(divergences[0])).toBe("seen 1.0.0-1-amd64 .. 6.12.118+deb13-amd64; absent from 6.12.120+deb13-amd64");
    const md = renderMarkdown(r, divergences);
    expect(md).toContain("## Kernels x known bugs");
    expect(md).toMatch(/`split-bug` .*\| ● seen \| ○ absent \| seen 1\.0\.0-1-amd64/);
    const html = renderHtml(r, divergences);
    expect(html).toContain("Kernels × known bugs");
    expect(html).toContain(`<td class="seen">● seen</td><td class="absent">○ absent</td>`);
    expect(html).not.toMatch(/<script|<link|src=|href=/);
    expect(renderMarkdown(r)).not.toContain("known bugs"); // no list, no timeline
  });

  it("writes the known list byte for byte as it is kept", () => {
    const text = readFileSync(join(ROOT, "cases", "known-divergences.json"), "utf8");
    KnownList.parse(JSON.parse(text));
    expect(knownJson(JSON.parse(text))).toBe(text);
  });

  it("orders kernels by their numbers", () => {
    const ks = ["7.3.4+deb13-amd64", "6.18.44", "5.10.0-46-amd64", "6.12.118+deb13-amd64", "6.12.90+deb13-amd64", "5.10.0-30-amd64"];
    expect([...ks].sort(kernelOrder)).toEqual(["5.10.0-30-amd64", "5.10.0-46-amd64", "6.12.90+deb13-amd64", "6.12.118+deb13-amd64", "6.18.44", "7.3.4+deb13-amd64"]);
  });
});

describe("matrix pool", () => {
  it("keeps at most `concurrency` backends open and still runs every column", async () => {
    let open = 0;
    let most = 0;
    const slot = (name: string, fail = false): BackendSlot => ({
      name,
      open: async () => {
        if (fail) throw new Error("cannot");
        open++;
        most = Math.max(most, open);
        const b = modelBackend("6.12");
        return { ...b, close: async () => { open--; await b.close(); } };
      },
    });
    const r = await runMatrix([slot("a", true), slot("b"), slot("c"), slot("d"), slot("e")], { seed: 3, programs: 10, maxOps: 8, builtin: false, concurrency: 2 });
    expect(most).toBe(2);
    expect(open).toBe(0);
    expect(r.columns.map((c) => c.name)).toEqual(["a", "b", "c", "d", "e"]);
    expect(r.columns[0].unavailable).toBe("cannot");
    expect(r.generatedWith.backend).toBe("b");
    for (const c of r.columns.slice(1)) expect(columnSummary(c)).toMatchObject({ ran: 10, diverged: 0 });
  });
});
