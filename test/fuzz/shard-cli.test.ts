/**
 * `npm run fuzz -- --seed S --runs T --shard i/N --out DIR` for every i, then `npm run merge`,
 * equals the one run `npm run fuzz -- --seed S --runs T --shard 0/1 --out DIR`: same program count, coverage counts
 * and findings by signature (summary.json, coverage.json, findings.json), on the model (with
 * --workers 2 inside each shard) and on the host kernel; `--shard auto` with each engine's
 * variables.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { main } from "../../cli/main.ts";
import { main as mergeMain } from "../../cli/merge.ts";
import { readResults, type FuzzResult } from "../../fuzz/results.ts";
import { say, skipRoot } from "../hwtest/live.ts";

const tmp = mkdtempSync(join(tmpdir(), "auxspec-shard-cli-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const view = (r: FuzzResult) => ({
  programs: r.summary.programs, ops: r.summary.ops, divergences: r.summary.divergences, known: r.summary.known,
  coverage: Object.fromEntries(Object.entries(r.coverage).sort()),
  findings: r.findings.map((f) => ({ signature: f.signature, index: f.index, count: f.count, known: f.known })).sort((a, b) => a.signature.localeCompare(b.signature)),
});

async function fuzz(args: string[]): Promise<number> {
  return main(["fuzz", "--json", ...args]);
}

async function shardedEqualsOne(name: string, args: string[], n: number, extraShardArgs: string[] = []): Promise<FuzzResult> {
  await fuzz([...args, "--shard", "0/1", "--out", join(tmp, `${name}-one`)]); // one run of the whole campaign
  const one = readResults(join(tmp, `${name}-one`));
  const dirs: string[] = [];
  for (let i = 0; i < n; i++) {
    dirs.push(join(tmp, `${name}-${i}`));
    await fuzz([...args, ...extraShardArgs, "--shard", `${i}/${n}`, "--out", dirs[i]]);
    expect(readResults(dirs[i]).summary.shard).toEqual({ index: i, count: n });
  }
  mergeMain([...dirs.reverse(), "--out", join(tmp, `${name}-merged`)]);
  const merged = readResults(join(tmp, `${name}-merged`));
  expect(view(merged)).toEqual(view(one));
  expect(merged.summary.mergedShards).toBe(n);
  return merged;
}

describe("fuzz --shard + npm run merge", () => {
  it("model: 3 shards (2 workers each) merged == one run", async () => {
    const m = await shardedEqualsOne("model", ["--backend", "model", "--seed", "5", "--runs", "3000", "--bug", "vma-split", "--bug", "aux-mlock-refund", "--max-ops", "12"], 3, ["--workers", "2"]);
    expect(m.summary.programs).toBe(3000);
    expect(m.findings.length).toBeGreaterThan(0);
  }, 300_000);

  it("refuses --shard without --seed and --runs, with --time, and a bad shard", async () => {
    expect(await fuzz(["--backend", "model", "--runs", "10", "--shard", "0/2"])).toBe(2);
    expect(await fuzz(["--backend", "model", "--seed", "1", "--shard", "0/2"])).toBe(2);
    expect(await fuzz(["--backend", "model", "--seed", "1", "--runs", "10", "--time", "5", "--shard", "0/2"])).toBe(2);
    expect(await fuzz(["--backend", "model", "--seed", "1", "--runs", "10", "--shard", "2/2"])).toBe(2);
  });

  describe("--shard auto", () => {
    const saved = { ...process.env };
    afterEach(() => {
      for (const k of ["AUXSPEC_SHARD", "AUXSPEC_SHARD_COUNT", "JOB_COMPLETION_INDEX", "CI_NODE_INDEX", "CI_NODE_TOTAL"]) {
        if (saved[k] === undefined) delete process.env[k]; else process.env[k] = saved[k];
      }
    });
    const run = async (name: string, shard: string) => {
      const out = join(tmp, `auto-${name}`);
      const code = await fuzz(["--backend", "model", "--seed", "3", "--runs", "50", "--shard", shard, "--out", out]);
      return { code, shard: code === 2 ? null : readResults(out).summary.shard };
    };
    it("GitHub Actions matrix: AUXSPEC_SHARD=i/N", async () => {
      process.env.AUXSPEC_SHARD = "1/3";
      expect(await run("gh", "auto")).toEqual({ code: 0, shard: { index: 1, count: 3 } });
    });
    it("Kubernetes Indexed Job: JOB_COMPLETION_INDEX with auto/N", async () => {
      process.env.JOB_COMPLETION_INDEX = "2";
      expect(await run("k8s", "auto/4")).toEqual({ code: 0, shard: { index: 2, count: 4 } });
    });
    it("GitLab parallel: CI_NODE_INDEX is 1-based", async () => {
      process.env.CI_NODE_INDEX = "1";
      process.env.CI_NODE_TOTAL = "2";
      expect(await run("gitlab", "auto")).toEqual({ code: 0, shard: { index: 0, count: 2 } });
    });
    it("none: a clear usage error", async () => {
      expect((await run("none", "auto")).code).toBe(2);
    });
  });

  say(skipRoot, "fuzz --shard on the host");
  it.skipIf(skipRoot !== null)("host: 2 shards merged == one run", async () => {
    const m = await shardedEqualsOne("host", ["--backend", "host", "--seed", "9", "--runs", "150", "--max-ops", "12", "--no-races"], 2);
    console.log(`host shards via the CLI: ${m.summary.programs} programs on ${m.summary.kernel}, findings ${m.findings.map((f) => `${f.signature}${f.known ? " (known)" : ""} x${f.count}`).join(", ") || "none"}, ${Object.keys(m.coverage).length} rules hit`);
    expect(JSON.parse(readFileSync(join(tmp, "host-merged", "summary.json"), "utf8")).backend).toBe("host");
  }, 600_000);
});
