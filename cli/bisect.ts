/**
 * npm run bisect -- CASE.json ... [--kernels 5.10..7.3] [--releases R1,R2,...] [--by verdict|trace] [--json]
 *
 * Runs each case on the Debian kernels available (vm:RELEASE backends, one guest at a time) in
 * version order and prints where its verdict changes: "accepted up to X; known divergence D
 * from Y on". The search is matrix/bisect.ts; this file is its composition root: the releases
 * come from the provisioning module's private apt lists (hwtest/vm), or from --releases.
 *
 * A case made for another cpu count or perf_event_mlock_kb runs with the kernel's (adapt()).
 * A kernel is booted once and runs every case given, so several cases bisect for the price of
 * the kernels their searches visit; a case that warned (WARN_ONCE: once per boot) or leaked an
 * AUX area (the test PMU's `live` counts over the boot) gets the next case a fresh guest. `--by trace` compares what the kernels did (outcomes and
 * audit) instead of the verdict: that is what establishes a boundary between two profiles,
 * where each kernel may be "accepted" under its own.
 */
import { parseArgs } from "node:util";
import { existsSync, statSync } from "node:fs";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { openBackend } from "./backends.ts";
import { listCases, loadCase } from "../fuzz/cases.ts";
import { cannotRun } from "../fuzz/replay.ts";
import { loadKnown, matchKnown } from "../fuzz/known.ts";
import { checkTrace, showOutcome, type Case, type Config, type Trace } from "../spec/index.ts";
import { BackendUnavailable, type Backend } from "../backend/contract.ts";
import { bisect, KernelUnavailable, seriesFilter, type BisectResult, type KernelVerdict, type SeriesBuilds } from "../matrix/bisect.ts";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const KNOWN_PATH = join(ROOT, "cases", "known-divergences.json");
const log = (m: string) => console.error(m);

const HELP = `usage: npm run bisect -- CASE.json|DIR ... [options]
  --kernels SPEC      series to search: 5.10..7.3 (default), 6.1,7.3, 6.18
  --releases LIST     the releases to search (comma-separated Debian releases such as
                      5.10.0-32-amd64,7.3.4+deb13-amd64) instead of every release the apt lists name
  --by verdict|trace  what counts as a change: the spec's verdict (default), or what the kernel did
  --json              one JSON object per case on stdout`;

/** Every plain amd64 Debian release the provisioning module's apt lists name, per series, oldest first. */
async function listReleases(): Promise<SeriesBuilds[]> {
  const { cacheApt } = await import("../hwtest/vm/provision.ts");
  const { releasesIn, seriesOf, compareReleases } = await import("../hwtest/vm/release.ts");
  const apt = cacheApt(log);
  const query = "^linux-(image|binary)-[0-9]+\\.[0-9]+\\.[0-9].*-amd64$";
  let found = releasesIn(await apt.search(query));
  if (!found.length) { await apt.update(); found = releasesIn(await apt.search(query)); }
  return groupBySeries(found, seriesOf, compareReleases);
}

function groupBySeries(releases: readonly string[], seriesOf: (r: string) => string | null, cmp: (a: string, b: string) => number): SeriesBuilds[] {
  const by = new Map<string, string[]>();
  for (const r of releases) {
    const s = seriesOf(r);
    if (!s) throw new Error(`not a Debian amd64 release: ${r}`);
    by.set(s, [...(by.get(s) ?? []), r]);
  }
  const key = (s: string) => s.split(".").map(Number);
  return [...by.entries()]
    .sort(([a], [b]) => key(a)[0] - key(b)[0] || key(a)[1] - key(b)[1])
    .map(([series, rels]) => ({ series, releases: [...rels].sort(cmp) }));
}

interface Loaded { file: string; c: Case }

/** What one kernel did with one case. */
function judge(c: Case, backend: Backend, trace: Trace, config: Config, known: ReturnType<typeof loadKnown>): KernelVerdict {
  const profile = backend.info.profile;
  const fired = new Map<string, number>();
  const v = checkTrace(c.program, config, profile, trace, fired);
  const k = v.accepted ? null : matchKnown(known, v.divergence, profile, backend.info, fired);
  const label = v.accepted ? "accepted" : k ? `known divergence ${k.id}` : `divergence ${v.divergence.kind} ${v.divergence.rule}`;
  const usesAux = usesAuxPmu(c);
  return { key: label, label, detail: `profile ${profile}: ${observed(trace, usesAux)}` };
}

/**
 * What the kernel did: the outcomes and the audit, warnings by count (their text names addresses
 * and pids), the test PMU's counters only for a case that uses it (a kernel without headers has
 * no test PMU and no counters, which is no change in behaviour).
 */
function observed(trace: Trace, usesAux = true): string {
  const outcomes = trace.steps.map((s) => showOutcome(s.outcome)).join(" ");
  const a = trace.audit;
  if (!a) return outcomes;
  const { warnings, liveAux, auxSetups, auxFrees, ...rest } = a;
  const pmu = usesAux ? { liveAux, auxSetups, auxFrees } : {};
  return `${outcomes} | audit ${JSON.stringify({ ...rest, ...pmu })}${warnings?.length ? ` warnings ${warnings.length}` : ""}`;
}

/**
 * The case with the kernel's cpus and perf_event_mlock_kb (the guests have 1 cpu, the litmus
 * cases were written for this machine's 2): the spec then judges with the kernel's budget, as
 * it does for the PMUs. Refused (a reason) when an op names a cpu the kernel does not have.
 */
export function adapt(c: Case, backend: Backend): Case | string {
  const { cpus, mlockKb } = backend.info.config;
  if (c.config.cpus === cpus && c.config.mlockKb === mlockKb) return c;
  const bad = c.program.find((op) => op.op === "open" && (op.cpu ?? -1) >= cpus);
  if (bad) return `the case opens an event on a cpu this kernel lacks (${cpus} cpus)`;
  return { ...c, config: { ...c.config, cpus, mlockKb } };
}

const usesAuxPmu = (c: Case) => c.program.some((op) => op.op === "open" && op.pmu === "aux");

/** The test PMU is built already (provisioning cache), or the archive has the release's headers. */
async function mayHaveTestPmu(release: string): Promise<boolean> {
  const { cacheRoot, cacheApt } = await import("../hwtest/vm/provision.ts");
  if (existsSync(join(cacheRoot(), release, "auxspec_pmu.ko"))) return true;
  if (existsSync(join(cacheRoot(), release, "manifest.json"))) return false; // provisioned without headers
  return (await cacheApt(log).show(`linux-headers-${release}`)) !== null;
}

export async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv, allowPositionals: true, strict: true,
    options: { kernels: { type: "string" }, releases: { type: "string" }, by: { type: "string" }, json: { type: "boolean" }, help: { type: "boolean", short: "h" } },
  });
  if (values.help) { console.log(HELP); return 0; }
  const by = values.by ?? "verdict";
  if (by !== "verdict" && by !== "trace") { console.error(`--by verdict|trace, not ${by}`); return 2; }
  if (!positionals.length) { console.error(HELP); return 2; }
  const files: string[] = [];
  for (const p of positionals) {
    if (!existsSync(p)) { console.error(`no such file or directory: ${p}`); return 2; }
    if (statSync(p).isDirectory()) files.push(...listCases(p)); else files.push(p);
  }
  const cases: Loaded[] = files.map((file) => ({ file, c: loadCase(file) }));
  const known = loadKnown(KNOWN_PATH);

  let series: SeriesBuilds[];
  if (values.releases) {
    const { seriesOf, compareReleases } = await import("../hwtest/vm/release.ts");
    series = groupBySeries(values.releases.split(",").map((r) => r.trim()).filter(Boolean), seriesOf, compareReleases);
  } else series = await listReleases();
  const want = seriesFilter(values.kernels ?? "5.10..7.3");
  series = series.filter((s) => want(s.series));
  log(`searching ${series.map((s) => `${s.series} (${s.releases.length})`).join(", ")}`);

  // One boot per release, all cases at once; remembered for the other cases' searches.
  const memo = new Map<string, Map<string, KernelVerdict | string>>(); // release -> case file -> verdict | unavailable reason
  async function visit(release: string): Promise<Map<string, KernelVerdict | string>> {
    const hit = memo.get(release);
    if (hit) return hit;
    const out = new Map<string, KernelVerdict | string>();
    // A kernel without headers has no test PMU: when every case needs one, do not boot it.
    if (cases.every(({ c }) => usesAuxPmu(c)) && !(await mayHaveTestPmu(release))) {
      for (const { file } of cases) out.set(file, "needs an AUX PMU (no headers for the test PMU in the archive)");
      memo.set(release, out);
      return out;
    }
    let backend: Backend | null = null;
    try {
      for (const { file, c: orig } of cases) {
        // a fresh guest after a case that left the boot dirty (see below)
        backend ??= await openBackend(`vm:${release}`, { log });
        const c = adapt(orig, backend);
        const why = typeof c === "string" ? c : cannotRun(c, backend);
        if (typeof c === "string" || why) { out.set(file, why!); continue; }
        const config: Config = { ...c.config, pmus: backend.info.config.pmus, memlockHardPages: backend.info.config.memlockHardPages };
        const [trace] = backend.runSync ? backend.runSync([c.program], config) : await backend.run([c.program], config);
        const v = judge(c, backend, trace, config, known);
        // WARN_ONCE warns once per boot, and the test PMU's `live` counts AUX areas over the
        // boot: after a case that warned or leaked an AUX area, the next case gets a new guest
        if ((trace.audit?.warnings?.length ?? 0) > 0 || (trace.audit?.liveAux ?? 0) > 0) {
          await backend.close();
          backend = null;
        }
        const usesAux = usesAuxPmu(c);
        out.set(file, by === "trace" ? { key: observed(trace, usesAux), label: `${v.label} [${v.detail}]`, detail: v.detail } : v);
      }
    } catch (e) {
      if (!(e instanceof BackendUnavailable)) throw e;
      for (const { file } of cases) out.set(file, (e as Error).message.split("\n")[0]);
    } finally {
      await backend?.close();
    }
    memo.set(release, out);
    return out;
  }

  const results: { case: string; result: BisectResult }[] = [];
  for (const { file } of cases) {
    log(`bisecting ${file}`);
    const result = await bisect(series, async (release) => {
      const v = (await visit(release)).get(file)!;
      if (typeof v === "string") throw new KernelUnavailable(v);
      return v;
    }, { log });
    results.push({ case: file, result });
    if (values.json) console.log(JSON.stringify({ case: file, ...result }));
    else {
      console.log(`${file}: ${result.summary}`);
      for (const ch of result.changes) {
        console.log(`  changes between ${ch.last} and ${ch.first} (${ch.where === "build" ? "inside the series" : "between series"}): ${ch.from.label} -> ${ch.to.label}` +
          (ch.unavailableBetween.length ? ` (not run between them: ${ch.unavailableBetween.join(", ")})` : ""));
      }
      for (const r of [...result.runs].sort((a, b) => a.release.localeCompare(b.release, undefined, { numeric: true }))) console.log(`  ${r.release}: ${r.verdict.label}${by === "verdict" && r.verdict.detail ? ` (${r.verdict.detail})` : ""}`);
      for (const s of result.skipped) console.log(`  ${s.release}: skipped (${s.why})`);
    }
  }
  return 0;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then((code) => process.exit(code), (e) => { console.error(e instanceof Error ? e.stack ?? e.message : e); process.exit(1); });
}
