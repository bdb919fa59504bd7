// A stand-in agent for testing the VM channel (not a kernel executor): it answers every
// request {"id":N,"program":[...],"config":{...}} with a trace whose steps are all "ok" and
// whose audit carries the test PMU's counters, so a test can see the request, the order and
// the guest's facts travel both ways. It never touches perf. Two pseudo-ops test the shim:
// {"op":"crashAgent"} makes it die (status 7) without answering; {"op":"exitDirty"} makes it
// answer and then exit with status 3, as the real agent does after a program that left its
// process dirty.
import { createInterface } from "node:readline";
import { readFileSync } from "node:fs";
import os from "node:os";

const readInt = (p) => {
  try {
    return Number(readFileSync(p, "utf8").trim());
  } catch {
    return undefined;
  }
};
const P = "/sys/module/auxspec_pmu/parameters";
const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
rl.on("line", (line) => {
  if (!line.trim()) return;
  const req = JSON.parse(line);
  if (req.program?.some((op) => op.op === "crashAgent")) process.exit(7);
  process.stdout.write(JSON.stringify({
    id: req.id,
    trace: {
      backend: "echo",
      kernel: os.release(),
      steps: req.program.map(() => ({ outcome: { ok: true }, vmPinKb: 0 })),
      audit: { vmPinKb: 0, liveAux: readInt(`${P}/live`), auxSetups: readInt(`${P}/setups`), auxFrees: readInt(`${P}/frees`) },
    },
  }) + "\n");
  if (req.program?.some((op) => op.op === "exitDirty")) process.exit(3);
});
