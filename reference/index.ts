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

/** Every op of `program` from op `from` on, pushing one Step per op. A `par` block
 *  (spec/notes/races.md) runs sequentially, its ops in listed order; each op of the block
 *  reports the VmPin of its task read after the whole block (0 for an exit). */
export function runProgram(k: Kernel, program: Program, steps: Step[], from = 0): void {
  for (let i = from; i < program.length; i++) {
    const op = program[i];
    steps.push(k.exec(op));
    if (op.op !== "par") continue;
    const n = Math.min(op.ops, program.length - i - 1);
    const tasks = [];
    for (let j = 1; j <= n; j++) {
      steps.push(k.exec(program[i + j]));
      tasks.push(k.lastTask);
    }
    for (let j = 1; j <= n; j++) steps[i + j].vmPinKb = program[i + j].op === "exit" ? 0 : k.vmPinKb(tasks[j - 1]);
    i += n;
  }
}

/** Run a program on the reference under `profile` (with `bugs` switched on) and return its
 *  trace (backend "model"): one Step per op, then teardown and the audit. A modelled kernel
 *  crash ends the program early (`aborted`, no audit). */
export function runReference(program: Program, config: Config, profile: ProfileId, bugs?: ReadonlySet<string>): Trace {
  const k = new Kernel(config, profile, bugs);
  const steps: Step[] = [];
  const backend = "model";
  try {
    runProgram(k, program, steps);
    return { backend, kernel: null, steps, audit: k.finish(program) };
  } catch (e) {
    if (e instanceof KernelOops) return { backend, kernel: null, steps, audit: null, aborted: e.message };
    throw e;
  }
}
