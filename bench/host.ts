/** Host-kernel rows of `npm run bench` (skipped where perf is not usable). */
import { discoverHost } from "../hwtest/host/discover.ts";
import { benchPrograms, compareKoffiVsC, measureHostThroughput, measureParRepetitions, measureRemapWait } from "../hwtest/host/bench.ts";
import { decode, genesAt } from "../fuzz/generate.ts";
import { isMultiProcess, type Program } from "../spec/program.ts";

export interface Row { what: string; value: number; unit: string; target?: string; note?: string }

export async function hostRows(quick: boolean): Promise<Row[]> {
  const facts = discoverHost();
  if (!facts.perfOk) return [{ what: "host: skipped", value: 0, unit: "", note: facts.perfError ?? "perf not usable" }];
  const rows: Row[] = [];
  const programs = benchPrograms(quick ? 100 : 300, 16, 1);
  const w1 = await measureHostThroughput(programs, 1);
  const w2 = await measureHostThroughput(programs, 2);
  rows.push({ what: `host ${facts.release}: 1 worker (16-op programs + audit)`, value: w1.perSecond, unit: "programs/s" });
  rows.push({ what: "host: 2 workers", value: w2.perSecond, unit: "programs/s" });
  rows.push({ what: "host: 2 workers / 1 worker", value: w2.perSecond / w1.perSecond, unit: "x" });
  const kc = compareKoffiVsC(programs.slice(0, quick ? 50 : 150), { facts, noBudget: false, rounds: quick ? 1 : 3 });
  rows.push({ what: "host: koffi executor / C executor, same programs", value: kc.ratio, unit: "x", target: "<= 1.5", note: `${kc.programs} programs, ${kc.mismatches} trace mismatches` });
  const kc2 = compareKoffiVsC(programs.slice(0, quick ? 50 : 150), { facts, noBudget: true, rounds: quick ? 1 : 3 });
  rows.push({ what: "host: koffi / C without the budget probe", value: kc2.ratio, unit: "x", target: "<= 1.5", note: `${kc2.mismatches} mismatches` });
  // issue 13: multi-process programs (fork per program, the C agent) from the generator
  // (sysctlMlock and auxFault need --allow-sysctl / the test PMU: the bench's backend has neither)
  const gen = { config: facts.config, maxOps: 16, minOps: 16, races: false, unsupported: new Set(["sysctlMlock", "auxFault"]) };
  const multi: Program[] = [];
  for (let i = 0; multi.length < (quick ? 100 : 300); i++) {
    const p = decode(genesAt(1, i, gen), gen);
    if (isMultiProcess(p)) multi.push(p);
  }
  const mp = await measureHostThroughput(multi, 1);
  rows.push({ what: "host: multi-process 16-op programs, 1 worker (C agent)", value: mp.perSecond, unit: "programs/s", note: `vs ${w1.perSecond.toFixed(0)}/s mixed; ${mp.aborted} aborted` });
  // issue 14: par repetitions (barrier, jitter, fresh uid, teardown and audit each)
  const pr1 = await measureParRepetitions({ repeat: quick ? 100 : 500 });
  rows.push({ what: "host: par repetitions, 1 agent", value: pr1.perSecond, unit: "repetitions/s", note: `${pr1.program}; ${pr1.aborted} aborted` });
  const pr2 = await measureParRepetitions({ repeat: quick ? 50 : 250, requests: 4, workers: 2 });
  rows.push({ what: "host: par repetitions, 2 agents", value: pr2.perSecond, unit: "repetitions/s" });
  const rw = measureRemapWait(quick ? 10 : 30);
  rows.push({ what: "host: map again after the last munmap", value: rw.remapMs, unit: "ms", note: `fresh event ${rw.freshMs.toFixed(2)} ms; RCU grace period` });
  return rows;
}
