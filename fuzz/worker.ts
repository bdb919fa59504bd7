/** A model-fuzzing worker process (see parallel.ts). */
import { modelBackend } from "../backend/model.ts";
import { dieWithParent } from "../backend/lifecycle.ts";
import { runCampaign } from "./campaign.ts";
import type { ParentMsg, WorkerJob, WorkerMsg } from "./parallel.ts";

const send = (m: WorkerMsg) => { if (process.connected) process.send!(m); };

// Never outlive the parent: SIGKILL when it dies (even by SIGKILL), exit when the channel goes.
dieWithParent();
process.on("disconnect", () => process.exit(0));

const stop = { aborted: false };
const enough = { done: false };
process.on("message", (m: ParentMsg) => {
  if ("t" in m && m.t === "stop") { stop.aborted = true; return; }
  if ("t" in m && m.t === "enough") { enough.done = true; return; }
  void run(m as WorkerJob);
});
// The parent's terminal sends SIGINT to the whole process group: the parent decides.
process.on("SIGINT", () => { stop.aborted = true; });
process.on("SIGHUP", () => { stop.aborted = true; });

let started = false;
async function run(job: WorkerJob): Promise<void> {
  if (started) return;
  started = true;
  try {
    const backend = modelBackend(job.profile, job.bugs);
    const { stats, findings } = await runCampaign({
      backend, profile: job.profile, seed: job.seed, runs: job.runs, seconds: job.seconds,
      stride: job.stride, offset: job.offset, maxOps: job.maxOps, minOps: job.minOps, races: job.races, known: job.known, stop,
      stopAtFirst: job.stopAtFirst, enough,
      onProgress: (s) => send({ t: "progress", programs: s.programs, ops: s.ops, divergences: s.divergences, known: s.known }),
      onDivergence: (f) => send({ t: "finding", finding: f }),
    });
    const { coverage, ...rest } = stats;
    send({ t: "done", stats: { ...rest, coverage: [...coverage] }, counts: findings.map((f) => [f.signature, f.count]) });
  } catch (e) {
    send({ t: "error", message: (e as Error).stack ?? String(e) });
    process.exitCode = 1;
  }
}
