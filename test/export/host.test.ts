/**
 * The exported kselftests on this machine's kernel, through a real kernel tree's kselftest
 * framework (Debian's linux-source-6.1: lib.mk, kselftest.h, kselftest/runner.sh, fetched by
 * scripts/ksft-headers.sh), compared case by case with the project's own replay on the host
 * backend: a program passes (or XFAILs, a known divergence) exactly when replay says agrees
 * (or known), skips exactly when replay skips, fails exactly when replay finds a divergence.
 *
 * Replay runs as `npm run replay -- --backend host` does; the cases it skips only because
 * the CLI's host backend refuses sysctlMlock by policy (a machine-wide setting) are replayed
 * again with sysctl allowed, as the kselftest (root) runs them. Model-bug cases (cases/bugs)
 * are replayed as plain programs: on a kernel the spec judges them like any other.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { exportKselftest, type ExportEntry } from "../../export/kselftest.ts";
import { loadCase } from "../../fuzz/cases.ts";
import { loadKnown } from "../../fuzz/known.ts";
import { replayCases, type ReplayResult } from "../../fuzz/replay.ts";
import { hostBackend } from "../../hwtest/host/backend.ts";
import { parseRunner, type ProgramResult } from "./ktap.ts";
import { say, skipRoot } from "../hwtest/live.ts";

const ROOT = resolve(import.meta.dirname, "../..");
say(skipRoot, "kselftest export on the host");

function ksftTree(): { tree: string | null; why?: string } {
  const r = spawnSync("bash", [join(ROOT, "scripts/ksft-headers.sh")], { encoding: "utf8", timeout: 300_000 });
  return r.status === 0 ? { tree: r.stdout.trim() } : { tree: null, why: r.stderr.trim().split("\n").pop() };
}

const work = mkdtempSync(join(tmpdir(), "auxspec-ksft-host-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

type Cls = "pass" | "fail" | "skip";
const ktapCls = (r: ProgramResult): Cls => (r.result === "xfail" ? "pass" : r.result);
const replayCls = (r: ReplayResult): Cls => (r.status === "agrees" || r.status === "known" ? "pass" : r.status === "skipped" ? "skip" : "fail");

describe.skipIf(skipRoot !== null)("kselftest export on the host kernel", () => {
  let entries: ExportEntry[] = [];
  let ktap: ProgramResult[] = [];
  let runnerOut = "";
  const replay = new Map<string, ReplayResult>();
  let treeWhy: string | undefined;

  beforeAll(async () => {
    const { tree, why } = ksftTree();
    treeWhy = why;
    if (!tree) return;
    // A minimal kernel tree: the selftests framework of linux-source-6.1 and our directory in it.
    const st = join(work, "tools/testing/selftests");
    mkdirSync(join(work, "scripts"), { recursive: true });
    cpSync(join(tree, "tools/testing/selftests"), st, { recursive: true });
    cpSync(join(tree, "scripts"), join(work, "scripts"), { recursive: true });
    const dir = join(st, "perf_events/auxspec");
    entries = exportKselftest(dir);
    execFileSync("make", ["-s", "-j2", "-C", dir], { stdio: "pipe", timeout: 600_000 });
    // runner.sh writes to /dev/stdout, which cannot be opened on a socket (node's pipes): a file,
    // opened for appending as runner.sh reopens it (else the two offsets overwrite each other).
    spawnSync("sh", ["-c", `make -s -C "${dir}" run_tests >> "${join(work, "ktap.txt")}" 2>&1`], { timeout: 600_000 });
    runnerOut = readFileSync(join(work, "ktap.txt"), "utf8");
    writeFileSync(join(ROOT, ".cache/ksft/host-ktap.txt"), runnerOut);
    ktap = parseRunner(runnerOut);

    const known = loadKnown(join(ROOT, "cases/known-divergences.json"));
    // The cases as the export judged them (DIR/cases: a bug case without its model bugs).
    const cases = entries.map((e) => ({ file: join(ROOT, e.source), c: loadCase(join(dir, "cases", `${e.program}.json`)), program: e.program }));
    const host = await hostBackend();
    try {
      const rs = await replayCases(cases, host, "auto", known);
      rs.forEach((r, i) => replay.set(cases[i].program, r));
    } finally {
      await host.close();
    }
    const again = cases.filter((c) => /op sysctlMlock is not supported/.test(replay.get(c.program)?.reason ?? ""));
    if (again.length) {
      const sys = await hostBackend({ allowSysctl: true });
      try {
        const rs = await replayCases(again, sys, "auto", known);
        rs.forEach((r, i) => replay.set(again[i].program, { ...r, reason: `${r.reason ?? ""} (replayed with sysctl allowed)` }));
      } finally {
        await sys.close();
      }
    }
  }, 1_500_000);

  it("the selftests framework of a kernel tree is at hand", () => {
    expect(treeWhy ?? null, `scripts/ksft-headers.sh failed: ${treeWhy}`).toBeNull();
  });

  it("the runner ran every exported program and printed KTAP", () => {
    expect(runnerOut).toMatch(/^TAP version 13$/m);
    expect(runnerOut).toMatch(new RegExp(`^1\\.\\.${entries.length}$`, "m"));
    expect(ktap.map((k) => k.program)).toEqual(entries.map((e) => e.program));
    // Each program's own KTAP reached the log (prefixed), not only the runner's verdicts.
    expect(ktap.filter((k) => !k.lines.some((l) => /^# (1\.\.\d+|1\.\.0 # SKIP)/.test(l))).map((k) => k.program)).toEqual([]);
  });

  it("each program's KTAP result agrees with replay --backend host of its case", () => {
    const rows = entries.map((e) => {
      const k = ktap.find((x) => x.program === e.program)!;
      const r = replay.get(e.program)!;
      return { program: e.program, kind: e.kind, ktap: k.result, replay: r.status, agree: ktapCls(k) === replayCls(r) && ((k.result === "xfail") === (r.status === "known")), reason: r.reason ?? r.divergence?.detail ?? "", lines: k.lines };
    });
    const count = (f: (x: (typeof rows)[number]) => boolean) => rows.filter(f).length;
    const summary = {
      cases: rows.length,
      ktap: { pass: count((x) => x.ktap === "pass"), xfail: count((x) => x.ktap === "xfail"), fail: count((x) => x.ktap === "fail"), skip: count((x) => x.ktap === "skip") },
      replay: { agrees: count((x) => x.replay === "agrees"), known: count((x) => x.replay === "known"), divergence: count((x) => x.replay === "divergence"), skipped: count((x) => x.replay === "skipped") },
      agree: count((x) => x.agree),
    };
    console.log(`kselftest vs replay on the host: ${JSON.stringify(summary)}`);
    writeFileSync(join(ROOT, ".cache/ksft/host-comparison.json"), JSON.stringify({ summary, rows: rows.map(({ lines: _l, ...r }) => r) }, null, 2));
    const bad = rows.filter((x) => !x.agree).map((x) => `${x.program} (${x.kind}): ktap ${x.ktap}, replay ${x.replay} ${x.reason}\n${x.lines.slice(-25).join("\n")}`);
    expect(bad).toEqual([]);
  });
});
