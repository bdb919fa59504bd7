/**
 * `npm run export -- --kselftest DIR [--litmus rules|all|N]`: write auxspec's regression
 * cases as a kselftest directory (export/kselftest.ts).
 */
import { parseArgs } from "node:util";
import { exportKselftest, type SkippedCase } from "./kselftest.ts";

const HELP = `usage: npm run export -- --kselftest DIR [--litmus rules|all|N] [--cpus N]

Writes DIR as a kselftest directory (drop it in as tools/testing/selftests/perf_events/auxspec/,
or build it alone: make -C DIR run_tests): one C program per case of cases/known, cases/bugs
and the litmus cases of cases/spec, each judging the running kernel with the spec's
expectations for its era (picked at run time from uname -r and /proc/version).

  --litmus rules   one litmus case per deciding rule (default)
  --litmus all     every litmus case (one per name; the per-profile files share a program)
  --litmus N       the first N of "rules" (0: none)
  --cpus N         retarget every case to N CPUs (the cases assume 2; a machine with another
                   count skips them all): for VM guests with one CPU, --cpus 1. DIR/cases/
                   holds each program's case as judged, for npm run replay.`;

export function main(argv: string[]): number {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, strict: true, options: { kselftest: { type: "string" }, litmus: { type: "string" }, cpus: { type: "string" }, help: { type: "boolean", short: "h" } } });
  } catch (e) {
    console.error(`${(e as Error).message}\n\n${HELP}`);
    return 2;
  }
  const v = parsed.values;
  if (v.help) { console.log(HELP); return 0; }
  if (!v.kselftest) { console.error(`export needs --kselftest DIR\n\n${HELP}`); return 2; }
  const l = v.litmus ?? "rules";
  if (l !== "rules" && l !== "all" && !/^\d+$/.test(l)) { console.error(`--litmus takes rules, all or a number, not ${JSON.stringify(l)}`); return 2; }
  if (v.cpus !== undefined && !/^[1-9]\d*$/.test(v.cpus)) { console.error(`--cpus takes a positive number, not ${JSON.stringify(v.cpus)}`); return 2; }
  const skipped: SkippedCase[] = [];
  const entries = exportKselftest(v.kselftest, { litmus: l === "rules" || l === "all" ? l : Number(l), skipped, ...(v.cpus ? { cpus: Number(v.cpus) } : {}) });
  const unc = entries.filter((e) => Object.keys(e.uncovered).length);
  console.log(`wrote ${entries.length} programs to ${v.kselftest} (${entries.filter((e) => e.kind === "known").length} known, ${entries.filter((e) => e.kind === "bug").length} bugs, ${entries.filter((e) => e.kind === "litmus").length} litmus)`);
  for (const k of skipped) console.log(`  skipped ${k.source}: ${k.reason}`);
  for (const e of unc) console.log(`  ${e.program}: no expectations for ${Object.entries(e.uncovered).map(([p, w]) => `${p} (${w})`).join(", ")}`);
  console.log(`build and run: make -C ${v.kselftest} run_tests   (as root; in a kernel tree: tools/testing/selftests/perf_events/auxspec)`);
  return 0;
}

if (import.meta.url === `file://${process.argv[1]}`) process.exitCode = main(process.argv.slice(2));
