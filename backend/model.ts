/**
 * The model backend: the reference implementation (reference/) behind the Backend contract,
 * optionally with historic bugs switched on. In-process and synchronous. It runs every op,
 * the processes and users of spec/notes/processes.md included (Config.capSetuid unset: true,
 * every user handle a fresh uid, as root).
 *
 * Programs with par blocks (issue 14, spec/notes/races.md): the lock-level explorer
 * (reference/explore/) runs the blocks' interleavings (preemption bound MODEL_PAR_BOUND) and
 * the backend returns ONE trace per program: the first interleaving's trace the spec rejects
 * (checkTrace), else the first interleaving's (the blocks in listed order). A spec that cannot
 * judge a par program yet (it throws) is treated as accepting every trace. Programs without
 * par run on runReference as before.
 */
import type { Config, ProfileId, Program } from "../spec/program.ts";
import type { Trace } from "../spec/trace.ts";
import { runReference, BUGS } from "../reference/index.ts";
import { exploreReference } from "../reference/explore/index.ts";
import { checkTrace } from "../spec/index.ts";
import { BackendUnavailable, type Backend, type BackendInfo } from "./contract.ts";

/** The configuration the model runs with unless told otherwise: this machine's kind, plus an AUX PMU. */
export const MODEL_CONFIG: Config = {
  pageSize: 4096,
  cpus: 2,
  mlockKb: 516,
  memlockPages: 16,
  capIpcLock: false,
  paranoid: 2,
  pmus: { aux: "model_aux" },
};

/** Preemption bound and execution cap of the explorer behind the model backend. */
export const MODEL_PAR_BOUND = 2;
export const MODEL_PAR_MAX_EXECUTIONS = 5000;

function hasPar(program: Program): boolean {
  for (const op of program) if (op.op === "par") return true;
  return false;
}

/** Whether the spec rejects a trace; false where it cannot judge the program (it throws, or
 *  answers its internal-error rule `spec.internal`, as a spec without par support does). */
export function specRejects(program: Program, config: Config, profile: ProfileId, trace: Trace): boolean {
  try {
    const v = checkTrace(program, config, profile, trace);
    return !v.accepted && v.divergence.rule !== "spec.internal";
  } catch {
    return false;
  }
}

/** One trace for a program: runReference without par blocks; with them, the first explored
 *  interleaving's trace that `rejects` (default: the spec, specRejects) rejects, else the
 *  first interleaving's. */
export function modelTrace(program: Program, config: Config, profile: ProfileId, bugs: ReadonlySet<string>,
  rejects: (trace: Trace) => boolean = (t) => specRejects(program, config, profile, t)): Trace {
  if (!hasPar(program)) return runReference(program, config, profile, bugs);
  const ex = exploreReference(program, config, profile, bugs, { preemptionBound: MODEL_PAR_BOUND, maxExecutions: MODEL_PAR_MAX_EXECUTIONS });
  // ex.traces holds the distinct traces in order of their first interleaving
  for (const t of ex.traces) if (rejects(t)) return t;
  return ex.traces[0];
}

export function modelBackend(profile: ProfileId, bugs: readonly string[] = [], config: Config = MODEL_CONFIG): Backend {
  for (const id of bugs) {
    const bug = BUGS.find((b) => b.id === id);
    if (!bug) throw new BackendUnavailable(`unknown bug ${JSON.stringify(id)}; known: ${BUGS.map((b) => b.id).join(", ")}`);
  }
  const bugSet = new Set(bugs);
  const info: BackendInfo = {
    name: bugs.length ? `model+bug:${bugs.join(",")}` : "model",
    kernel: null,
    profile,
    config,
    unsupported: new Set(),
    notes: [bugs.length
      ? `reference implementation under profile ${profile} with historic bug(s) ${bugs.join(", ")} switched on`
      : `reference implementation under profile ${profile}`],
  };
  return {
    info,
    async run(programs: readonly Program[], cfg?: Config): Promise<Trace[]> {
      return programs.map((p) => modelTrace(p, cfg ?? config, profile, bugSet));
    },
    runSync(programs: readonly Program[], cfg?: Config): Trace[] {
      return programs.map((p) => modelTrace(p, cfg ?? config, profile, bugSet));
    },
    async close() {},
  };
}
