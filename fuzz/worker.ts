/** A model-fuzzing worker process (see parallel.ts). */
import { modelBackend } from "../backend/model.ts";
import { runCampaign } from "./campaign.ts";
import type { WorkerJob, WorkerMsg } from "./parallel.ts";

const send = (m: WorkerMsg) => process.send!(m);

process.once("message", async (job: WorkerJob) => {
  try {
    const backend = modelBackend(job.profile, job.bugs);
    const { stats, findings } = await runCampaign({
      backend, profile: job.profile, seed: job.seed, runs: job.runs, seconds: job.seconds,
      stride: job.stride, offset: job.offset, maxOps: job.maxOps, minOps: job.minOps, known: job.known,
      onProgress: (s) => send({ t: "progress", programs: s.programs, ops: s.ops, divergences: s.divergences, known: s.known }),
      onDivergence: (f) => send({ t: "finding", finding: f }),
    });
    const { coverage, ...rest } = stats;
    send({ t: "done", stats: { ...rest, coverage: [...coverage] }, counts: findings.map((f) => [f.signature, f.count]) });
  } catch (e) {
    send({ t: "error", message: (e as Error).stack ?? String(e) });
    process.exitCode = 1;
  }
});
