/**
 * The model backend: the reference implementation (reference/) behind the Backend contract,
 * optionally with historic bugs switched on. In-process and synchronous. It runs every op,
 * the processes and users of spec/notes/processes.md included (Config.capSetuid unset: true,
 * every user handle a fresh uid, as root).
 */
import type { Config, ProfileId, Program } from "../spec/program.ts";
import type { Trace } from "../spec/trace.ts";
import { runReference, BUGS } from "../reference/index.ts";
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
      return programs.map((p) => runReference(p, cfg ?? config, profile, bugSet));
    },
    runSync(programs: readonly Program[], cfg?: Config): Trace[] {
      return programs.map((p) => runReference(p, cfg ?? config, profile, bugSet));
    },
    async close() {},
  };
}
