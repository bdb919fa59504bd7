/**
 * Deterministic shards: shard i of N runs the programs whose index k (program k of the seed,
 * fuzz/generate.ts genesAt(seed, k)) has k % N === i, so N shards of a `--runs T` campaign
 * run exactly the T programs of one campaign with the same seed, each once, and their
 * results merge into the one campaign's (fuzz/merge.ts).
 *
 * `--shard i/N` (0-based i), or `--shard auto` / `--shard auto/N`, which reads the index (and
 * the count) from the CI engine:
 *   AUXSPEC_SHARD=i/N                       any engine (a GitHub Actions matrix sets it)
 *   JOB_COMPLETION_INDEX=i (0-based)        Kubernetes Indexed Job; N from auto/N or AUXSPEC_SHARD_COUNT
 *   CI_NODE_INDEX=i+1, CI_NODE_TOTAL=N      GitLab `parallel:` (1-based)
 */
export interface Shard {
  index: number;
  count: number;
  /** Where it came from: "--shard", "AUXSPEC_SHARD", "JOB_COMPLETION_INDEX", "CI_NODE_INDEX". */
  source: string;
}

export class ShardError extends Error { override name = "ShardError"; }

const INT = /^(0|[1-9]\d*)$/;

function checked(index: number, count: number, source: string): Shard {
  if (!(count >= 1)) throw new ShardError(`${source}: the shard count must be at least 1, not ${count}`);
  if (!(index >= 0 && index < count)) throw new ShardError(`${source}: shard index ${index} is not in 0..${count - 1}`);
  return { index, count, source };
}

function parsePair(text: string, source: string): Shard {
  const m = /^\s*(\d+)\s*\/\s*(\d+)\s*$/.exec(text);
  if (!m || !INT.test(m[1]) || !INT.test(m[2])) throw new ShardError(`${source}: expected i/N (0-based i, e.g. 0/4), not ${JSON.stringify(text)}`);
  return checked(Number(m[1]), Number(m[2]), source);
}

/** The shard a `--shard` value names, with `env` for auto. */
export function parseShard(spec: string, env: Readonly<Record<string, string | undefined>> = process.env): Shard {
  const auto = /^auto(?:\/(\d+))?$/.exec(spec.trim());
  if (!auto) return parsePair(spec, "--shard");
  const countArg = auto[1] !== undefined ? Number(auto[1]) : undefined;
  if (env.AUXSPEC_SHARD) {
    const s = parsePair(env.AUXSPEC_SHARD, "AUXSPEC_SHARD");
    if (countArg !== undefined && countArg !== s.count) throw new ShardError(`--shard ${spec} says ${countArg} shards, AUXSPEC_SHARD=${env.AUXSPEC_SHARD} says ${s.count}`);
    return s;
  }
  if (env.JOB_COMPLETION_INDEX !== undefined && env.JOB_COMPLETION_INDEX !== "") {
    const i = env.JOB_COMPLETION_INDEX.trim();
    if (!INT.test(i)) throw new ShardError(`JOB_COMPLETION_INDEX=${JSON.stringify(env.JOB_COMPLETION_INDEX)} is not a number`);
    const n = countArg ?? (env.AUXSPEC_SHARD_COUNT !== undefined ? Number(env.AUXSPEC_SHARD_COUNT) : undefined);
    if (n === undefined || !Number.isInteger(n)) {
      throw new ShardError("JOB_COMPLETION_INDEX is set (Kubernetes Indexed Job) but not the shard count: use --shard auto/N (N = the Job's completions) or set AUXSPEC_SHARD_COUNT");
    }
    return checked(Number(i), n, "JOB_COMPLETION_INDEX");
  }
  if (env.CI_NODE_INDEX !== undefined && env.CI_NODE_INDEX !== "") {
    const i = env.CI_NODE_INDEX.trim(), t = (env.CI_NODE_TOTAL ?? "").trim();
    if (!INT.test(i) || !INT.test(t)) throw new ShardError(`GitLab CI_NODE_INDEX=${JSON.stringify(env.CI_NODE_INDEX)} CI_NODE_TOTAL=${JSON.stringify(env.CI_NODE_TOTAL)}: both must be numbers (is the job \`parallel: N\`?)`);
    if (countArg !== undefined && countArg !== Number(t)) throw new ShardError(`--shard ${spec} says ${countArg} shards, CI_NODE_TOTAL=${t}`);
    return checked(Number(i) - 1, Number(t), "CI_NODE_INDEX"); // GitLab counts from 1
  }
  throw new ShardError(
    "--shard auto found no shard in the environment: set AUXSPEC_SHARD=i/N (e.g. from a GitHub Actions matrix), " +
    "or run as a Kubernetes Indexed Job (JOB_COMPLETION_INDEX, with --shard auto/N), or a GitLab `parallel:` job (CI_NODE_INDEX/CI_NODE_TOTAL); " +
    "or give --shard i/N",
  );
}

/** How many of program indices 0..total-1 fall in the shard. */
export function shardSize(total: number, s: Shard): number {
  return total <= s.index ? 0 : Math.floor((total - 1 - s.index) / s.count) + 1;
}

/** Whether program index k falls in the shard. */
export function inShard(k: number, s: Shard): boolean {
  return k % s.count === s.index;
}

/** How many of program indices 0..total-1 are offset, offset + stride, ... (a worker's share). */
export function progressionSize(total: number, offset: number, stride: number): number {
  return total <= offset ? 0 : Math.floor((total - 1 - offset) / stride) + 1;
}

/**
 * The campaign slices (offset, stride, runs) of `workers` processes inside a shard of a
 * `total`-program campaign: worker w runs indices index + count*w, stepping count*workers,
 * below total. Without a shard, {index 0, count 1}. Together they run each k < total with
 * k % count === index exactly once.
 */
export function slices(total: number, s: Pick<Shard, "index" | "count">, workers: number): { offset: number; stride: number; runs: number }[] {
  return Array.from({ length: workers }, (_, w) => {
    const offset = s.index + s.count * w, stride = s.count * workers;
    return { offset, stride, runs: progressionSize(total, offset, stride) };
  });
}
