/**
 * The command line as a user meets it: help, clear errors naming what is wrong (exit 2),
 * --json output, exit 1 on a divergence, replay of a written case, and C reproducers that
 * compile with gcc -static and agree with the replay verdict on the host kernel.
 */
import { afterAll, describe, expect, it } from "vitest";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync as mkdtempRaw, rmSync, writeFileSync, readdirSync, existsSync, readFileSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { modelWorkers } from "../../fuzz/parallel.ts";
import { join } from "node:path";
import { say, skipRoot } from "../hwtest/live.ts";

const ROOT = join(import.meta.dirname, "../..");
// Every temp dir this file makes is removed after it (npm test used to leave five per run).
const made: string[] = [];
const mkdtempSync = (prefix: string) => { const d = mkdtempRaw(prefix); made.push(d); return d; };
afterAll(() => { for (const d of made) rmSync(d, { recursive: true, force: true }); });
const cli = (...args: string[]) => spawnSync(process.execPath, ["--import", "tsx", join(ROOT, "cli/main.ts"), ...args], { cwd: ROOT, encoding: "utf8", timeout: 120_000 });

describe("auxspec CLI", () => {
  it("--help for fuzz and replay", () => {
    const f = cli("fuzz", "--help");
    expect(f.status).toBe(0);
    expect(f.stdout).toMatch(/--backend B/);
    expect(cli("replay", "--help").stdout).toMatch(/CASE\.json/);
  });

  it("bad options exit 2 naming the option", () => {
    const r = cli("fuzz", "--backend", "model", "--runs", "0");
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--runs.*at least 1/);
    const p = cli("fuzz", "--profile", "5.4");
    expect(p.status).toBe(2);
    expect(p.stderr).toMatch(/--profile/);
    expect(cli("fuzz", "--frobnicate").status).toBe(2);
    const b = cli("fuzz", "--backend", "qemu");
    expect(b.status).toBe(2);
    expect(b.stderr).toMatch(/unknown backend "qemu"/);
    const bug = cli("fuzz", "--bug", "nonesuch");
    expect(bug.status).toBe(2);
    expect(bug.stderr).toMatch(/unknown bug "nonesuch"/);
  });

  it("a malformed case exits 2 with the Zod path, and nothing runs", () => {
    const dir = mkdtempSync(join(tmpdir(), "auxspec-cli-"));
    const bad = join(dir, "bad.json");
    writeFileSync(bad, JSON.stringify({ format: "auxspec-case/1", name: "x", config: { pageSize: 4096, cpus: 2, mlockKb: 516, memlockPages: 16, capIpcLock: false, paranoid: 2, pmus: { aux: null } },
      program: [{ op: "open", ev: "e0", pmu: "sw" }, { op: "mmap", map: "m0", ev: "e7", pages: 3, pgoff: 0, prot: "rw" }, { op: "touch", map: "m0", page: "one", write: false }] }));
    const r = cli("replay", bad);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/program\.2\.page: .*expected number/);
    // Handle discipline is checked once the shapes are right.
    const c = JSON.parse(readFileSync(bad, "utf8"));
    c.program[2].page = 1;
    writeFileSync(bad, JSON.stringify(c));
    const h = cli("replay", bad);
    expect(h.status).toBe(2);
    expect(h.stderr).toMatch(/program\.1\.ev: event handle e7 is used before an open introduces it/);
    writeFileSync(bad, "{ not json");
    expect(cli("replay", bad).status).toBe(2);
    expect(cli("replay", join(dir, "missing.json")).stderr).toMatch(/no such file/);
  });

  it("fuzz --json on the seed finds divergences (exit 1), writes cases that replay and reproducers that compile", () => {
    const out = mkdtempSync(join(tmpdir(), "auxspec-fuzz-"));
    const r = cli("fuzz", "--backend", "model", "--profile", "seed", "--runs", "400", "--seed", "1", "--out", out, "--json");
    expect(r.status).toBe(1);
    const j = JSON.parse(r.stdout);
    expect(j).toMatchObject({ backend: "model", profile: "seed", seed: 1, programs: 400 });
    expect(j.divergences.length).toBeGreaterThan(0);
    expect(j.divergences[0]).toHaveProperty("shrunk");
    expect(Object.keys(j.coverage).length).toBeGreaterThan(20);
    const cases = readdirSync(out).filter((f) => f.endsWith(".json"));
    expect(cases.every((f) => /-[0-9a-f]{8}\.json$/.test(f))).toBe(true); // NAME-HASH
    expect(cases.length).toBe(j.divergences.length + j.known.length);
    // A model case replays under its profile and still shows its divergence.
    const rp = cli("replay", join(out, cases[0]), "--json");
    expect(rp.status).toBe(1);
    expect(JSON.parse(rp.stdout).results[0].status).toBe("divergence");
    for (const c of readdirSync(out).filter((f) => f.endsWith(".c"))) {
      execFileSync("gcc", ["-static", "-O2", "-Wall", "-Werror", "-o", join(out, c.replace(/\.c$/, "")), join(out, c)], { stdio: "pipe" });
    }
  }, 180_000);

  it("the same seed prints the same programs", () => {
    const a = JSON.parse(cli("fuzz", "--backend", "model", "--profile", "seed", "--runs", "200", "--seed", "5", "--out", mkdtempSync(join(tmpdir(), "auxspec-a-")), "--json").stdout);
    const b = JSON.parse(cli("fuzz", "--backend", "model", "--profile", "seed", "--runs", "200", "--seed", "5", "--out", mkdtempSync(join(tmpdir(), "auxspec-b-")), "--json").stdout);
    expect(a.divergences.map((d: { shrunk: unknown }) => d.shrunk)).toEqual(b.divergences.map((d: { shrunk: unknown }) => d.shrunk));
  }, 60_000);
});

say(skipRoot, "C reproducers on the host");
describe("--workers never makes the model slower than one worker", () => {
  it("picks by cores, load and budget, and says why", () => {
    // This machine's case (the measurement: 2 workers 0.66-1.03x of one on 2 cores).
    const two = modelWorkers(2, { cores: 2, load1: 0, env: {} });
    expect(two.workers).toBe(1);
    expect(two.why).toMatch(/--workers 2: using 1 worker: 2 cores/);
    // Idle cores to spare: as asked; a loaded host: what its load leaves idle.
    expect(modelWorkers(2, { cores: 4, load1: 0.3, env: {} })).toEqual({ workers: 2, why: null });
    expect(modelWorkers(4, { cores: 8, load1: 5.5, env: {} })).toMatchObject({ workers: 2, why: expect.stringMatching(/load average 5.50 leaves 2 of 8 cores idle/) });
    // A budget shorter than a worker's start-up.
    expect(modelWorkers(3, { cores: 16, load1: 0, runs: 5000, env: {} })).toMatchObject({ workers: 1, why: expect.stringMatching(/--runs 5000/) });
    expect(modelWorkers(3, { cores: 16, load1: 0, runs: 50_000, env: {} }).workers).toBe(3);
    // One asked: one; the override for tests of the multi-process path.
    expect(modelWorkers(1, { cores: 1, load1: 9, env: {} })).toEqual({ workers: 1, why: null });
    expect(modelWorkers(2, { cores: 2, load1: 2, env: { AUXSPEC_WORKERS_AS_ASKED: "1" } }).workers).toBe(2);
  });

  it.skipIf(availableParallelism() > 2)("on this 2-core machine fuzz --backend model --workers 2 runs one worker and says so", () => {
    const r = spawnSync(process.execPath, ["--import", "tsx", join(ROOT, "cli/main.ts"), "fuzz", "--backend", "model", "--workers", "2", "--runs", "30000", "--seed", "4", "--out", mkdtempSync(join(tmpdir(), "auxspec-w-"))],
      { cwd: ROOT, encoding: "utf8", timeout: 120_000, env: { ...process.env, AUXSPEC_WORKERS_AS_ASKED: "" } });
    expect(r.stderr).toMatch(/--workers 2: using 1 worker: 2 cores/);
    expect(r.stdout + r.stderr).toMatch(/30000 programs|30,000 programs/);
  });
});

describe.skipIf(skipRoot !== null)("C reproducers on the host kernel", () => {
  it("exit codes agree with replay --backend host (0 agrees, 1 diverges)", () => {
    const dir = mkdtempSync(join(tmpdir(), "auxspec-repro-"));
    const pairs: Array<[string, number]> = [];
    // The known 6.18 re-map leak (diverges on 6.18), and two litmus cases that agree.
    const known = join(ROOT, "cases/known/6.18-remap-leaks-locked-vm.json");
    for (const f of [known, join(ROOT, "cases/spec/touch.6.18.json"), join(ROOT, "cases/spec/open-output-ok.6.18.json")]) {
      if (!existsSync(f)) throw new Error(`missing ${f}`);
      const rp = cli("replay", f, "--backend", "host", "--json");
      const status = JSON.parse(rp.stdout).results[0].status as string;
      const want = status === "agrees" ? 0 : 1;
      const src = join(dir, "r.c");
      execFileSync(process.execPath, ["--import", "tsx", "-e",
        `import { loadCase } from ${JSON.stringify(join(ROOT, "fuzz/cases.ts"))}; import { reproC } from ${JSON.stringify(join(ROOT, "fuzz/repro-c.ts"))}; import { writeFileSync } from "node:fs"; writeFileSync(${JSON.stringify(src)}, reproC(loadCase(${JSON.stringify(f)}), "6.18"));`], { cwd: ROOT });
      execFileSync("gcc", ["-static", "-O2", "-o", join(dir, "r"), src]);
      const run = spawnSync(join(dir, "r"), { encoding: "utf8" });
      expect(run.stdout).toMatch(/^TAP version 13/);
      pairs.push([`${f}: replay ${status}, reproducer exit ${run.status}\n${run.stdout}`, run.status === want ? 1 : 0]);
    }
    for (const [what, agree] of pairs) expect(agree, what).toBe(1);
  }, 180_000);
});
