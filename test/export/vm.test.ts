/**
 * The exported kselftests inside Debian 6.1 and 6.12 guests (QEMU TCG, one CPU, the project
 * over 9p): exported with --cpus 1 (the guests have one CPU; the cases assume two), built
 * here, run in the guest through the selftests' runner (lib.mk + kselftest/runner.sh of
 * Debian's linux-source-6.1) with the test PMU loaded and again after `rmmod auxspec_pmu`,
 * and compared case by case with `replay --backend vm:SERIES` of the same cases (DIR/cases):
 * pass (or XFAIL) exactly when replay agrees (or says known), skip exactly when it skips.
 * Without the test PMU every case that opens an AUX event must skip and the others keep
 * their result.
 *
 * Runs when QEMU and busybox are installed, as root (so in CI); the kernels come from
 * AUXSPEC_VM_CACHE or are provisioned. By default it exports the known and bug cases and the
 * first 12 litmus cases (two boots per series, a few minutes under TCG);
 * AUXSPEC_KSFT_VM_FULL=1 exports all 94 programs (about 16 minutes here). AUXSPEC_KSFT_VM=0 skips it.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { cpSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { exportKselftest } from "../../export/kselftest.ts";
import { loadCase } from "../../fuzz/cases.ts";
import { loadKnown } from "../../fuzz/known.ts";
import { replayCases, type ReplayResult } from "../../fuzz/replay.ts";
import { vmBackend } from "../../hwtest/vm/backend.ts";
import { provisionKernel } from "../../hwtest/vm/provision.ts";
import { GuestVM, busyboxBinary, qemuBinary } from "../../hwtest/vm/qemu.ts";
import { parseRunner, type ProgramResult } from "./ktap.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const skipReason = process.env.AUXSPEC_KSFT_VM === "0"
  ? "AUXSPEC_KSFT_VM=0"
  : !qemuBinary() || !busyboxBinary() ? "qemu-system-x86_64 or busybox is not installed (bash scripts/setup-vm.sh)"
    : typeof process.getuid === "function" && process.getuid() !== 0 ? "not root" : null;
if (skipReason) console.log(`test/export/vm: SKIPPED: ${skipReason}`);

type Cls = "pass" | "fail" | "skip";
const ktapCls = (r: ProgramResult): Cls => (r.result === "xfail" ? "pass" : r.result);
const replayCls = (r: ReplayResult): Cls => (r.status === "agrees" || r.status === "known" ? "pass" : r.status === "skipped" ? "skip" : "fail");

for (const series of (process.env.AUXSPEC_KSFT_VM_SERIES ?? "6.12,6.1").split(",") as ("6.1" | "6.12")[]) {
  describe.skipIf(skipReason !== null)(`kselftest export in a vm:${series} guest`, () => {
    it("agrees with replay --backend vm, with and without the test PMU", async () => {
      const tree = spawnSync("bash", [join(ROOT, "scripts/ksft-headers.sh")], { encoding: "utf8" }).stdout.trim();
      // Inside the project: the guest sees it over 9p at the same path.
      const work = join(ROOT, ".cache/ksft", `vm-${series}`);
      rmSync(work, { recursive: true, force: true });
      mkdirSync(join(work, "tools/testing"), { recursive: true });
      cpSync(join(tree, "tools/testing/selftests"), join(work, "tools/testing/selftests"), { recursive: true });
      cpSync(join(tree, "scripts"), join(work, "scripts"), { recursive: true });
      const dir = join(work, "tools/testing/selftests/perf_events/auxspec");
      const entries = exportKselftest(dir, { cpus: 1, ...(process.env.AUXSPEC_KSFT_VM_FULL === "1" ? {} : { litmus: 12 }) });
      execFileSync("make", ["-s", "-j2", "-C", dir], { stdio: "pipe", timeout: 600_000 });

      const k = await provisionKernel(series);
      const vm = await GuestVM.boot({ kernel: k, agent: ["node", join(ROOT, "test/export/guest-agent.mjs")], bootTimeoutMs: 300_000 });
      let withPmu: ProgramResult[], without: ProgramResult[], hello;
      try {
        hello = vm.hello;
        expect(hello.cpus).toBe(1);
        type Ans = { trace: { ktap: string; note: string; pmu: string } };
        const a = await vm.request<Ans>({ program: [], config: { ksft: { dir } }, timeoutMs: 1_500_000 }, 1_600_000);
        writeFileSync(join(work, "ktap-pmu.txt"), a.trace.ktap);
        const b = await vm.request<Ans>({ program: [], config: { ksft: { dir, rmmod: true } }, timeoutMs: 1_500_000 }, 1_600_000);
        writeFileSync(join(work, "ktap-nopmu.txt"), `# ${b.trace.note}\n# PMUs: ${b.trace.pmu}\n${b.trace.ktap}`);
        expect(b.trace.pmu).not.toContain("auxspec_pmu");
        withPmu = parseRunner(a.trace.ktap);
        without = parseRunner(b.trace.ktap);
      } finally {
        await vm.close();
      }
      expect(withPmu.map((r) => r.program)).toEqual(entries.map((e) => e.program));
      expect(without.map((r) => r.program)).toEqual(entries.map((e) => e.program));
      for (const run of [withPmu, without]) expect(run.filter((k) => !k.lines.some((l) => /^# (1\.\.\d+|1\.\.0 # SKIP)/.test(l))).map((k) => k.program)).toEqual([]);

      const cases = entries.map((e) => ({ file: join(dir, "cases", `${e.program}.json`), c: loadCase(join(dir, "cases", `${e.program}.json`)) }));
      const backend = await vmBackend(series);
      let replay: ReplayResult[];
      try {
        replay = await replayCases(cases, backend, "auto", loadKnown(join(ROOT, "cases/known-divergences.json")));
      } finally {
        await backend.close();
      }
      const rows = entries.map((e, i) => {
        const usesAux = cases[i].c.program.some((o) => o.op === "open" && o.pmu === "aux");
        const r = replay[i], w = withPmu[i], n = without[i];
        return {
          program: e.program, kind: e.kind, usesAux, ktap: w.result, nopmu: n.result, replay: r.status, reason: r.reason ?? r.divergence?.detail ?? "",
          agree: ktapCls(w) === replayCls(r) && (w.result === "xfail") === (r.status === "known"),
          agreeNoPmu: usesAux ? n.result === "skip" : n.result === w.result,
          tail: w.lines.slice(-20).join("\n"),
        };
      });
      const count = (f: (x: (typeof rows)[number]) => boolean) => rows.filter(f).length;
      const summary = {
        series, kernel: k.release, cases: rows.length,
        ktap: { pass: count((x) => x.ktap === "pass"), xfail: count((x) => x.ktap === "xfail"), fail: count((x) => x.ktap === "fail"), skip: count((x) => x.ktap === "skip") },
        nopmu: { pass: count((x) => x.nopmu === "pass"), xfail: count((x) => x.nopmu === "xfail"), fail: count((x) => x.nopmu === "fail"), skip: count((x) => x.nopmu === "skip") },
        replay: { agrees: count((x) => x.replay === "agrees"), known: count((x) => x.replay === "known"), divergence: count((x) => x.replay === "divergence"), skipped: count((x) => x.replay === "skipped") },
        agree: count((x) => x.agree), agreeNoPmu: count((x) => x.agreeNoPmu),
      };
      console.log(`kselftest vs replay in vm:${series}: ${JSON.stringify(summary)}`);
      writeFileSync(join(work, "comparison.json"), JSON.stringify({ summary, rows }, null, 2));
      expect(rows.filter((x) => !x.agree).map((x) => `${x.program}: ktap ${x.ktap}, replay ${x.replay} ${x.reason}\n${x.tail}`)).toEqual([]);
      expect(rows.filter((x) => !x.agreeNoPmu).map((x) => `${x.program}: without the PMU ${x.nopmu}, with ${x.ktap}`)).toEqual([]);
    }, 3_000_000);
  });
}
