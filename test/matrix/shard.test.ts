/**
 * `npm run matrix -- --shard i/N` then `npm run merge`: the merged report (matrix.json, and
 * the cases) equals one run's with the same seed and corpus, timings aside; on two model
 * columns (profiles 6.18 and 6.1, one with a historic bug, so there are divergences) and the
 * host kernel when root.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { modelBackend } from "../../backend/model.ts";
import { hostBackend } from "../../hwtest/host/backend.ts";
import { mergeMatrix, readMatrix, runMatrix, writeReport, type BackendSlot } from "../../matrix/index.ts";
import { main as mergeMain } from "../../cli/merge.ts";
import { loadKnown } from "../../fuzz/known.ts";
import { skipRoot } from "../hwtest/live.ts";

const tmp = mkdtempSync(join(tmpdir(), "auxspec-matrix-shards-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const slots = (): BackendSlot[] => [
  { name: "model-6.18", open: async () => modelBackend("6.18", ["vma-split"]) },
  { name: "model-6.1", open: async () => modelBackend("6.1") },
  ...(skipRoot === null ? [{ name: "host", open: () => hostBackend() }] : []),
];

/** matrix.json without what depends on timing. */
function stable(dir: string): unknown {
  const j = JSON.parse(readFileSync(join(dir, "matrix.json"), "utf8"));
  delete j.startedAt; delete j.seconds; delete j.shard;
  for (const c of j.columns) { delete c.seconds; delete c.openSeconds; if (c.summary) delete c.summary.perSecond; }
  return j;
}

describe("matrix shards", () => {
  it("3 shards merged == one run (matrix.json and cases)", async () => {
    const opts = { seed: 4, programs: 60, maxOps: 10, known: loadKnown("cases/known-divergences.json") };
    writeReport(await runMatrix(slots(), opts), join(tmp, "one"));
    const dirs = [0, 1, 2].map((i) => join(tmp, `s${i}`));
    for (let i = 0; i < 3; i++) writeReport(await runMatrix(slots(), { ...opts, shard: { index: i, count: 3 } }), dirs[i]);
    expect(readMatrix(dirs[1]).options.shard).toEqual({ index: 1, count: 3 });
    expect(mergeMain([...dirs, "--out", join(tmp, "merged")])).toBe(0);
    expect(stable(join(tmp, "merged"))).toEqual(stable(join(tmp, "one")));
    expect(readdirSync(join(tmp, "merged", "cases")).sort()).toEqual(readdirSync(join(tmp, "one", "cases")).sort());
    expect(readdirSync(join(tmp, "one", "cases")).length).toBeGreaterThan(0);
  }, 600_000);

  it("refuses a missing shard and a shard twice", () => {
    const dirs = [0, 1, 2].map((i) => join(tmp, `s${i}`));
    expect(() => mergeMatrix([dirs[0], dirs[1]].map((d) => ({ dir: d, r: readMatrix(d) })))).toThrow(/missing/);
    expect(() => mergeMatrix([dirs[0], dirs[1], dirs[1]].map((d) => ({ dir: d, r: readMatrix(d) })))).toThrow(/twice/);
    expect(mergeMain([dirs[0], join(tmp, "one"), "--out", join(tmp, "bad")])).toBe(2);
  });
});
