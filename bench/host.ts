/** Host-kernel rows of `npm run bench` (skipped where perf is not usable). */
import { discoverHost } from "../hwtest/host/discover.ts";
import { benchPrograms, compareKoffiVsC, measureHostThroughput, measureRemapWait } from "../hwtest/host/bench.ts";

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
  const rw = measureRemapWait(quick ? 10 : 30);
  rows.push({ what: "host: map again after the last munmap", value: rw.remapMs, unit: "ms", note: `fresh event ${rw.freshMs.toFixed(2)} ms; RCU grace period` });
  return rows;
}
