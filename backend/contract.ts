/**
 * The one small interface every backend (model, host, vm:KERNEL) implements.
 * A backend runs Programs and returns Traces; it never judges them (that is the spec's job).
 */
import type { Config, ProfileId, Program } from "../spec/program.ts";
import type { Trace } from "../spec/trace.ts";

export interface BackendInfo {
  /** "model", "model+bug:ID", "host", "vm:6.1" ... */
  name: string;
  /** `uname -r` of the kernel, null for the model. */
  kernel: string | null;
  /** The profile its traces are judged under by default (profileFor(kernel) for kernels). */
  profile: ProfileId;
  /** The machine programs run on (what the generator must respect). */
  config: Config;
  /** Op kinds this backend cannot run (e.g. sysctlMlock and auxFault on the host). */
  unsupported: ReadonlySet<string>;
  /** Free text for the user: why this backend, what is shared, caveats. */
  notes: string[];
}

export interface Backend {
  readonly info: BackendInfo;
  /**
   * Run programs, each in isolation (fresh uid/process on kernels), under `config`
   * (defaults to info.config). Results come back in order. Programs may run concurrently.
   */
  run(programs: readonly Program[], config?: Config): Promise<Trace[]>;
  /** In-process backends (the model) also run synchronously: no promise per program in the hot loop. */
  runSync?(programs: readonly Program[], config?: Config): Trace[];
  /** Kernel backends that can repeat a program (races, spec/notes/races.md): per program, the
   *  traces of up to `repeat` runs, each from a fresh start (the C agent's `repeat`). */
  runRepeated?(programs: readonly Program[], config?: Config, repeat?: number): Promise<Trace[][]>;
  /** Release everything (workers, VMs, mappings). Idempotent. */
  close(): Promise<void>;
}

/** Thrown by a backend factory when the backend cannot run here; message says why and what to change. */
export class BackendUnavailable extends Error {
  override name = "BackendUnavailable";
}
