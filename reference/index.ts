/**
 * auxspec reference implementation: public API.
 *
 * An operational model of Linux perf's ring-buffer and AUX-area mmap paths per profile
 * (reference/kernel.ts: the state and syscall entry; one file per kernel seam beside it, see
 * reference/README.md), with historic bugs as switches (reference/bugs.ts). Backend "model".
 */
import type { Config, ProfileId, Program } from "../spec/program.ts";
import type { Step, Trace } from "../spec/trace.ts";
import { Kernel } from "./kernel.ts";
import { KernelOops } from "./objects.ts";

export { BUGS, type BugInfo } from "./bugs.ts";
export { Kernel } from "./kernel.ts";
export { ERAS, type Era } from "./era.ts";
export { KernelOops } from "./objects.ts";

/** Run a program on the reference under `profile` (with `bugs` switched on) and return its
 *  trace (backend "model"): one Step per op, then teardown and the audit. A modelled kernel
 *  crash ends the program early (`aborted`, no audit). */
export function runReference(program: Program, config: Config, profile: ProfileId, bugs?: ReadonlySet<string>): Trace {
  const k = new Kernel(config, profile, bugs);
  const steps: Step[] = [];
  const backend = "model";
  try {
    for (const op of program) steps.push(k.exec(op));
    return { backend, kernel: null, steps, audit: k.finish(program) };
  } catch (e) {
    if (e instanceof KernelOops) return { backend, kernel: null, steps, audit: null, aborted: e.message };
    throw e;
  }
}
