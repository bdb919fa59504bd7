/**
 * The Trace stage: what a backend observed when it ran a Program, and the Verdict the
 * spec gives it. Schemas for traces read from files (VM guests, saved runs); in-process
 * backends build Trace objects directly and never parse them.
 */
import { z } from "zod";
import { Config, Outcome, ProfileId, Op } from "./program.ts";

/** One op's observation: its outcome and the VmPin (kB, /proc/<pid>/status) of the op's
 *  process right after it (fork: the child's; exit: 0, the mm is gone). */
export const Step = z.object({
  outcome: Outcome,
  vmPinKb: z.number(),
}).strict();
export type Step = z.infer<typeof Step>;

/**
 * The end-of-program audit, taken after the backend's teardown (every map handle's two
 * slots unmapped whole, in handle order, then every live fd closed, in handle order;
 * see `teardownOps`).
 * - vmPinKb: VmPin after teardown.
 * - budgetPages: u0's locked-memory budget measured by mapping fresh buffers until
 *   EPERM (RLIMIT_MEMLOCK 0, no CAP_IPC_LOCK): what `user_lock_limit - locked_vm`
 *   leaves. Absent where the backend cannot probe (not root on the host).
 * - budgets: the same for every other user the program switched a process to (u1 ...).
 * - liveAux / auxSetups / auxFrees: the AUX PMU's own counters (test PMU, model).
 * - warnings: WARN/BUG/Oops lines from the kernel log during the program.
 */
export const Audit = z.object({
  vmPinKb: z.number(),
  budgetPages: z.number().optional(),
  budgets: z.record(z.string().regex(/^u[1-3]$/), z.number()).optional(),
  liveAux: z.number().optional(),
  auxSetups: z.number().optional(),
  auxFrees: z.number().optional(),
  warnings: z.array(z.string()).optional(),
}).strict();
export type Audit = z.infer<typeof Audit>;

export const Trace = z.object({
  backend: z.string(),
  kernel: z.string().nullable(),
  steps: z.array(Step),
  audit: Audit.nullable(),
  /** The machine the program actually found, when the backend measured it to differ from the
   *  config it was asked for (non-root host: the shared user's locked_vm at the start). */
  config: Config.optional(),
  /** Set when the program could not run to its end (crash, time-out): the reason. */
  aborted: z.string().optional(),
}).strict();
export type Trace = z.infer<typeof Trace>;

export const DivergenceKind = z.enum(["outcome", "vmpin", "invariant", "kernel-warning", "expect", "aborted"]);
export type DivergenceKind = z.infer<typeof DivergenceKind>;

/** Rule hit counts, by rule id. */
export type Coverage = Map<string, number>;

export interface Divergence {
  kind: DivergenceKind;
  /** Index of the op, or -1 for the end-of-program audit. */
  opIndex: number;
  /** The rule that decided what the spec allowed (or the invariant that failed). */
  rule: string;
  /** What the spec allowed, human-readable (outcomes, VmPin values, invariant). */
  expected: string[];
  /** What the backend observed, human-readable. */
  observed: string;
  detail: string;
}

export type Verdict =
  | { accepted: true; profile: ProfileId }
  | { accepted: false; profile: ProfileId; divergence: Divergence };

/** Serialisable verdict summary for --json and reports. */
export const DivergenceSchema = z.object({
  kind: DivergenceKind,
  opIndex: z.number(),
  rule: z.string(),
  expected: z.array(z.string()),
  observed: z.string(),
  detail: z.string(),
});

export function showOutcome(o: Outcome): string {
  if ("ok" in o) return o.page ? `ok ${JSON.stringify(o.page)}` : "ok";
  if ("errno" in o) return o.errno;
  return o.signal;
}

export function sameOutcome(a: Outcome, b: Outcome): boolean {
  if ("ok" in a) {
    if (!("ok" in b)) return false;
    if (!a.page || !b.page) return !a.page && !b.page;
    return a.page.dataOffset === b.page.dataOffset && a.page.dataSize === b.page.dataSize &&
      a.page.auxHead === b.page.auxHead && a.page.auxOffset === b.page.auxOffset && a.page.auxSize === b.page.auxSize;
  }
  if ("errno" in a) return "errno" in b && a.errno === b.errno;
  return "signal" in b && a.signal === b.signal;
}

export function showOp(op: Op): string {
  const { op: kind, ...rest } = op;
  const args = Object.entries(rest).map(([k, v]) => `${k}=${v === null ? "none" : String(v)}`).join(" ");
  return args ? `${kind} ${args}` : kind;
}
