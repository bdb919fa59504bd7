/**
 * Replay: run cases on a backend and judge them. Shared by `npm run replay` and the test
 * that replays every case under cases/.
 *
 * Statuses: agrees; divergence (the spec, or the case's `expect`, disagrees); known (a
 * divergence on the known list); bug-caught / bug-missed (a case with `bugs` replays on
 * the model with those bugs on, and the spec must still reject it with a divergence that
 * is not already explained by the known list); skipped (the backend cannot run it, with
 * the reason).
 */
import { checkTrace } from "../spec/index.ts";
import type { Case, Config, ProfileId } from "../spec/program.ts";
import { sameOutcome, showOutcome, type Divergence, type Trace } from "../spec/trace.ts";
import type { Backend } from "../backend/contract.ts";
import { modelBackend } from "../backend/model.ts";
import { matchKnown, type KnownDivergence } from "./known.ts";
import { rel } from "./cases.ts";

export type ReplayStatus = "agrees" | "divergence" | "known" | "bug-caught" | "bug-missed" | "skipped" | "aborted";
export interface ReplayResult {
  case: string; name: string; backend: string; profile: ProfileId; status: ReplayStatus; divergence?: Divergence; reason?: string;
  /** With `repeat` > 1, a par case on a kernel backend that repeats: how many repetitions the spec rejected (the first one stands for the case). */
  repetitions?: { diverged: number; of: number; outcomes: Array<{ what: string; count: number; known: string | null }> };
}

export function checkExpect(c: Case, trace: Trace): Divergence | null {
  if (!c.expect) return null;
  // the ops of a par block answer as the interleaving the backend took: the spec's
  // linearizations judge them (checkTrace), the case's expect holds for the other ops
  const inBlock = new Set<number>();
  c.program.forEach((op, i) => { if (op.op === "par") for (let j = 1; j <= op.ops; j++) inBlock.add(i + j); });
  for (let i = 0; i < c.expect.length; i++) {
    if (inBlock.has(i)) continue;
    const got = trace.steps[i]?.outcome;
    if (!got || !sameOutcome(got, c.expect[i])) {
      return { kind: "expect", opIndex: i, rule: "case.expect", expected: [showOutcome(c.expect[i])], observed: got ? showOutcome(got) : "(no step)", detail: `the case asserts ${showOutcome(c.expect[i])} for op ${i}` };
    }
  }
  return null;
}

/** The case's declared verdict against the spec's (model replays only). */
export function checkVerdict(c: Case, d: Divergence | null): Divergence | null {
  const want = c.verdict ?? "accepted";
  const got = d === null ? "accepted" : `${d.kind} ${d.rule}`;
  const wanted = want === "accepted" ? "accepted" : `${want.kind} ${want.rule}`;
  if (got === wanted || (want === "accepted" && c.bugs?.length)) return null;
  if (want === "accepted" && d) return null; // judged below: known list, bug cases
  return { kind: "expect", opIndex: d?.opIndex ?? -1, rule: "case.verdict", expected: [wanted], observed: got, detail: `the case says the spec's verdict is ${wanted}` };
}

/** Why a kernel backend cannot run this case, or null. */
export function cannotRun(c: Case, backend: Backend): string | null {
  const info = backend.info;
  if (c.bugs?.length) return "a model-bug case (replay it on the model)";
  const bad = c.program.find((op) => info.unsupported.has(op.op));
  if (bad) return `op ${bad.op} is not supported on ${info.name}`;
  if (c.program.some((op) => op.op === "open" && op.pmu === "aux") && info.config.pmus.aux === null) return "needs an AUX PMU";
  if (c.config.paranoid !== info.config.paranoid) return `made for perf_event_paranoid ${c.config.paranoid}; this kernel has ${info.config.paranoid}`;
  const hard = info.config.memlockHardPages ?? "unlimited";
  if (hard !== "unlimited" && (c.config.memlockPages === "unlimited" || c.config.memlockPages > hard)) {
    return `made for RLIMIT_MEMLOCK ${c.config.memlockPages} pages; the hard limit here is ${hard} pages and cannot be raised`;
  }
  if (c.config.cpus !== info.config.cpus || c.config.mlockKb !== info.config.mlockKb) {
    return `made for cpus=${c.config.cpus} mlock_kb=${c.config.mlockKb}; this kernel has cpus=${info.config.cpus} mlock_kb=${info.config.mlockKb}`;
  }
  return null;
}

/**
 * Replay cases on `kernelBackend` (opened by the caller, left open), or on the model when it
 * is null (a model per case, with the case's profile and historic bugs).
 */
export async function replayCases(
  cases: readonly { file: string; c: Case }[], kernelBackend: Backend | null, profileOpt: ProfileId | "auto",
  known: readonly KnownDivergence[], onResult?: (r: ReplayResult) => void, repeat = 1,
): Promise<ReplayResult[]> {
  const results: ReplayResult[] = [];
  {
    for (const { file, c } of cases) {
      const bugs = kernelBackend ? [] : c.bugs ?? [];
      const modelProfile = profileOpt !== "auto" ? profileOpt : c.profile ?? "6.18";
      const backend = kernelBackend ?? modelBackend(modelProfile, bugs);
      const profile: ProfileId = kernelBackend ? (profileOpt !== "auto" ? profileOpt : backend.info.profile) : modelProfile;
      const base = { case: rel(file), name: c.name, backend: backend.info.name, profile };
      const why = kernelBackend ? cannotRun(c, backend) : null;
      let r: ReplayResult;
      if (why) r = { ...base, status: "skipped", reason: why };
      else {
        // On a kernel the PMUs and the memlock hard limit are the machine's, and the spec judges with them.
        // A kernel starts the program's user as it finds it (a fresh uid: 0; the non-root host
        // measures it and says so in trace.config), whatever locked_vm the case started from.
        const config: Config = kernelBackend
          ? { ...c.config, pmus: backend.info.config.pmus, memlockHardPages: backend.info.config.memlockHardPages, lockedVmPages: undefined }
          : c.config;
        let [trace] = repeat > 1 && kernelBackend?.runRepeated && c.program.some((o) => o.op === "par")
          ? await kernelBackend.runRepeated([c.program], config, repeat)
          : [backend.runSync ? backend.runSync([c.program], config) : await backend.run([c.program], config)];
        // repetitions: the first the spec rejects stands for the case (as the campaign judges them)
        let repetitions: ReplayResult["repetitions"] | undefined;
        if (trace.length > 1) {
          // each repetition judged; grouped by what the spec saw; an unexplained one (not in the
          // known list) stands for the case before a known one, a known one before an accepted one
          const groups = new Map<string, { count: number; known: string | null; rank: number; t: Trace }>();
          for (const t of trace) {
            const f = new Map<string, number>();
            const v = checkTrace(c.program, t.config ?? config, profile, t, f);
            const key = v.accepted ? "accepted" : `${v.divergence.kind} ${v.divergence.rule}: ${v.divergence.observed}`;
            const g = groups.get(key);
            if (g) { g.count++; continue; }
            const k = v.accepted ? null : matchKnown(known, v.divergence, profile, backend.info, f);
            groups.set(key, { count: 1, known: k?.id ?? null, rank: v.accepted ? 2 : k ? 1 : 0, t });
          }
          const all = [...groups.entries()];
          repetitions = {
            diverged: all.filter(([w]) => w !== "accepted").reduce((n, [, g]) => n + g.count, 0), of: trace.length,
            outcomes: all.map(([what, g]) => ({ what, count: g.count, known: g.known })).sort((x, y) => y.count - x.count),
          };
          trace = [all.map(([, g]) => g).sort((x, y) => x.rank - y.rank)[0].t];
        }
        const fired = new Map<string, number>();
        const v = checkTrace(c.program, trace[0].config ?? config, profile, trace[0], fired);
        const k = v.accepted ? null : matchKnown(known, v.divergence, profile, backend.info, fired);
        const exp = kernelBackend ? null : checkExpect(c, trace[0]) ?? checkVerdict(c, v.accepted ? null : v.divergence);
        if (kernelBackend && trace[0].aborted !== undefined) r = { ...base, status: "aborted", reason: `the harness aborted the run: ${trace[0].aborted.split("\n")[0]}` };
        else if (exp) r = { ...base, status: "divergence", divergence: exp };
        else if (!kernelBackend && c.verdict && c.verdict !== "accepted") r = { ...base, status: "agrees", reason: `the spec reports ${c.verdict.kind} ${c.verdict.rule}, as the case says`, divergence: v.accepted ? undefined : v.divergence };
        else if (bugs.length) {
          r = v.accepted || k
            ? { ...base, status: "bug-missed", reason: `the spec no longer tells bug ${bugs.join(", ")} apart${k ? ` (only the known ${k.id} shows)` : ""}` }
            : { ...base, status: "bug-caught", divergence: v.divergence };
        } else if (v.accepted) r = { ...base, status: "agrees" };
        else r = { ...base, status: k ? "known" : "divergence", divergence: v.divergence, ...(k ? { reason: `${k.id}: ${k.explanation}` } : {}) };
        if (repetitions) r.repetitions = repetitions;
      }
      results.push(r);
      onResult?.(r);
      if (!kernelBackend) await backend.close();
    }
  }
  return results;
}
