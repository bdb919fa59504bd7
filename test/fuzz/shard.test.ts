/** --shard i/N and --shard auto with each CI engine's variables (fuzz/shard.ts). */
import { describe, expect, it } from "vitest";
import { inShard, parseShard, ShardError, shardSize, slices } from "../../fuzz/shard.ts";

describe("shards", () => {
  it("parses i/N, 0-based, and refuses what is not a shard", () => {
    expect(parseShard("0/4", {})).toEqual({ index: 0, count: 4, source: "--shard" });
    expect(parseShard("3/4", {})).toMatchObject({ index: 3, count: 4 });
    for (const bad of ["4/4", "1/0", "-1/4", "1", "a/b", "1/4/2", "01/4"]) expect(() => parseShard(bad, {}), bad).toThrow(ShardError);
  });

  it("partitions 0..T-1: every index in exactly one shard, sizes add up", () => {
    for (const total of [0, 1, 7, 100, 101]) {
      for (const n of [1, 2, 3, 8]) {
        const shards = Array.from({ length: n }, (_, i) => ({ index: i, count: n, source: "t" }));
        expect(shards.reduce((a, s) => a + shardSize(total, s), 0)).toBe(total);
        for (let k = 0; k < total; k++) expect(shards.filter((s) => inShard(k, s)).length).toBe(1);
        for (const s of shards) expect(shardSize(total, s)).toBe([...Array(total).keys()].filter((k) => inShard(k, s)).length);
      }
    }
  });

  it("auto: a GitHub Actions matrix through AUXSPEC_SHARD", () => {
    expect(parseShard("auto", { AUXSPEC_SHARD: "2/5" })).toEqual({ index: 2, count: 5, source: "AUXSPEC_SHARD" });
    expect(() => parseShard("auto/4", { AUXSPEC_SHARD: "2/5" })).toThrow(/says 4 shards/);
  });

  it("auto: a Kubernetes Indexed Job (JOB_COMPLETION_INDEX, 0-based; count from auto/N or AUXSPEC_SHARD_COUNT)", () => {
    expect(parseShard("auto/6", { JOB_COMPLETION_INDEX: "5" })).toEqual({ index: 5, count: 6, source: "JOB_COMPLETION_INDEX" });
    expect(parseShard("auto", { JOB_COMPLETION_INDEX: "0", AUXSPEC_SHARD_COUNT: "3" })).toMatchObject({ index: 0, count: 3 });
    expect(() => parseShard("auto", { JOB_COMPLETION_INDEX: "1" })).toThrow(/--shard auto\/N/);
    expect(() => parseShard("auto/2", { JOB_COMPLETION_INDEX: "2" })).toThrow(/not in 0\.\.1/);
  });

  it("auto: GitLab parallel (CI_NODE_INDEX is 1-based)", () => {
    expect(parseShard("auto", { CI_NODE_INDEX: "1", CI_NODE_TOTAL: "3" })).toEqual({ index: 0, count: 3, source: "CI_NODE_INDEX" });
    expect(parseShard("auto", { CI_NODE_INDEX: "3", CI_NODE_TOTAL: "3" })).toMatchObject({ index: 2, count: 3 });
    expect(() => parseShard("auto", { CI_NODE_INDEX: "0", CI_NODE_TOTAL: "3" })).toThrow(ShardError);
    expect(() => parseShard("auto", { CI_NODE_INDEX: "2" })).toThrow(/CI_NODE_TOTAL/);
  });

  it("auto: a clear error when no engine's variables are there", () => {
    expect(() => parseShard("auto", {})).toThrow(/found no shard in the environment: set AUXSPEC_SHARD=i\/N/);
  });

  it("worker slices inside a shard run each of its indices once", () => {
    for (const total of [0, 1, 10, 37]) {
      for (const n of [1, 3]) {
        for (const w of [1, 2, 4]) {
          const got: number[] = [];
          for (let i = 0; i < n; i++) {
            for (const sl of slices(total, { index: i, count: n }, w)) {
              for (let k = 0; k < sl.runs; k++) got.push(sl.offset + k * sl.stride);
            }
          }
          expect(got.sort((a, b) => a - b)).toEqual([...Array(total).keys()]);
        }
      }
    }
  });
});
