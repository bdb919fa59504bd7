/**
 * Backend selection, the composition root: `model` (the reference implementation, optionally
 * with historic bugs switched on), `host` (the live kernel through koffi), `vm:KERNEL` (a
 * Debian kernel under QEMU with the test PMU). Only the CLI picks backends; fuzz/ and hwtest/
 * know each other only through backend/contract.ts. The kernel backends are imported when
 * chosen (not to hide a cycle: this module sits above both), so that model-only runs never
 * load koffi or look for QEMU.
 */
import type { ProfileId } from "../spec/program.ts";
import { BackendUnavailable, type Backend } from "../backend/contract.ts";
import { modelBackend } from "../backend/model.ts";

export { MODEL_CONFIG, modelBackend } from "../backend/model.ts";

export interface OpenOptions {
  /** Profile for the model backend ("auto" = 6.18). Kernel backends pick theirs from uname. */
  profile?: ProfileId | "auto";
  bugs?: readonly string[];
  workers?: number;
  /** vm:KERNEL only: CPUs of each guest (QEMU -smp), and the repetitions its runRepeated defaults to. */
  cpus?: number;
  repeat?: number;
  log?: (msg: string) => void;
}

/** Open a backend by name: "model", "host", "vm:6.1", "vm:6.12", "vm:<debian release>". */
export async function openBackend(name: string, opts: OpenOptions = {}): Promise<Backend> {
  const profile = opts.profile && opts.profile !== "auto" ? opts.profile : "6.18";
  if (name === "model") return modelBackend(profile, opts.bugs ?? []);
  if (opts.bugs && opts.bugs.length) throw new BackendUnavailable("--bug only applies to the model backend");
  if (name === "host") {
    const { hostBackend } = await import("../hwtest/host/backend.ts");
    return hostBackend({ workers: opts.workers });
  }
  if (name.startsWith("vm:")) {
    const { vmBackend } = await import("../hwtest/vm/backend.ts");
    return vmBackend(name.slice(3), { log: opts.log, workers: opts.workers, cpus: opts.cpus, repeat: opts.repeat });
  }
  throw new BackendUnavailable(`unknown backend ${JSON.stringify(name)}: use model, host or vm:KERNEL (vm:6.1, vm:6.12)`);
}

/**
 * The best backend this machine has, and why: the host kernel when perf works (an AUX
 * PMU makes it better still), else the model.
 */
export async function bestBackend(opts: OpenOptions = {}): Promise<{ backend: Backend; why: string }> {
  try {
    const { discoverHost } = await import("../hwtest/host/discover.ts");
    const facts = discoverHost();
    if (facts.perfOk) {
      const backend = await openBackend("host", opts);
      const why = facts.auxPmu
        ? `the host kernel ${facts.release} has an AUX PMU (${facts.auxPmu.name}): fuzzing it directly`
        : `perf works on the host kernel ${facts.release} (no AUX PMU: AUX mmaps exercise the EOPNOTSUPP paths; use --backend vm:6.1 for a test PMU)`;
      return { backend, why };
    }
    return { backend: await openBackend("model", opts), why: `perf is not usable on this host (${facts.perfError ?? "unknown"}); fuzzing the reference model` };
  } catch (e) {
    return { backend: await openBackend("model", opts), why: `host backend unavailable (${(e as Error).message}); fuzzing the reference model` };
  }
}
