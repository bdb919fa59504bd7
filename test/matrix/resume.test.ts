/**
 * The matrix's long-campaign mode: a run journals every chunk of traces in OUT/journal, a run
 * killed partway continues where it stopped, and its report is the report of a run that was
 * never interrupted (timings aside).
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { modelBackend } from "../../backend/model.ts";
import type { Backend } from "../../backend/contract.ts";
import { MatrixJournal, JournalMismatch, type JournalKey } from "../../matrix/journal.ts";
import { resultJson, runMatrix, type BackendSlot, type MatrixOptions } from "../../matrix/index.ts";
import { loadKnown } from "../../fuzz/known.ts";
import { PROJECT_ROOT } from "../../hwtest/vm/provision.ts";

const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), "auxspec-resume-"));
  dirs.push(d);
  return d;
};
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

const known = loadKnown(join(PROJECT_ROOT, "cases", "known-divergences.json"));

/** The report without what differs between any two runs (wall times, start time). */
function normalized(j: unknown): unknown {
  const r = structuredClone(j) as Record<string, unknown> & { columns: Array<Record<string, unknown> & { summary: Record<string, unknown> | null }> };
  delete r.startedAt;
  delete r.seconds;
  for (const c of r.columns) {
    delete c.seconds;
    delete c.openSeconds;
    if (c.summary) delete c.summary.perSecond;
  }
  return r;
}

/** A model slot that counts opens and programs run, and can die after `dieAfter` run() calls. */
function modelSlot(counter: { opens: number; programs: number; calls: number }, dieAfter = Infinity): BackendSlot {
  return {
    name: "model",
    open: async (): Promise<Backend> => {
      counter.opens++;
      const m = modelBackend("6.18");
      return {
        info: m.info,
        run: async (ps, cfg) => {
          if (counter.calls++ >= dieAfter) throw new Error("killed");
          counter.programs += ps.length;
          return m.run(ps, cfg);
        },
        close: () => m.close(),
      };
    },
  };
}

describe("matrix journal and resume (model backend)", () => {
  const opts: MatrixOptions = { seed: 5, programs: 300, maxOps: 12, chunk: 25, known };
  const key: JournalKey = { seed: 5, programs: 300, maxOps: 12, builtin: true, shard: null };

  it("a run that dies partway continues from its journal and reports what a one-shot run reports", async () => {
    const once = { opens: 0, programs: 0, calls: 0 };
    const oneShot = await runMatrix([modelSlot(once)], opts);
    const total = oneShot.columns[0].ran.length;
    expect(total).toBe(308); // 8 hand-written + 300 random; the model runs every op

    const out = tmp();
    const first = { opens: 0, programs: 0, calls: 0 };
    await expect(runMatrix([modelSlot(first, 4)], { ...opts, journal: MatrixJournal.open(out, key) })).rejects.toThrow("killed");
    expect(first.programs).toBe(4 * 25);

    const j = MatrixJournal.open(out, key);
    expect(j.resumed).toBe(true);
    expect(j.read("model").traces.size).toBe(100);
    const second = { opens: 0, programs: 0, calls: 0 };
    const resumed = await runMatrix([modelSlot(second)], { ...opts, journal: j });
    expect(second.programs).toBe(total - 100); // only what the journal lacked
    expect(normalized(resultJson(resumed, known))).toEqual(normalized(resultJson(oneShot, known)));
    expect(resumed.columns[0].verdicts.size).toBe(total);

    // Every program journaled: the column comes from the journal, the backend is never opened.
    const third = { opens: 0, programs: 0, calls: 0 };
    const again = await runMatrix([modelSlot(third)], { ...opts, journal: MatrixJournal.open(out, key) });
    expect(third.opens).toBe(0);
    expect(normalized(resultJson(again, known))).toEqual(normalized(resultJson(oneShot, known)));

    // A finished journal starts afresh.
    j.finish();
    const fresh = MatrixJournal.open(out, key);
    expect(fresh.resumed).toBe(false);
    expect(fresh.read("model").traces.size).toBe(0);
  });

  it("refuses an unfinished journal of other options, unless fresh", () => {
    const out = tmp();
    MatrixJournal.open(out, key).setGeneratedWith({ backend: "model", config: modelBackend("6.18").info.config });
    expect(() => MatrixJournal.open(out, { ...key, seed: 6 })).toThrow(JournalMismatch);
    expect(() => MatrixJournal.open(out, { ...key, programs: 301 })).toThrow(/--seed 5 --programs 300 --max-ops 12/);
    expect(MatrixJournal.open(out, { ...key, seed: 6 }, { fresh: true }).resumed).toBe(false);
  });

  it("ignores a line torn by kill -9 and runs its programs again", async () => {
    const out = tmp();
    const c = { opens: 0, programs: 0, calls: 0 };
    await expect(runMatrix([modelSlot(c, 2)], { ...opts, journal: MatrixJournal.open(out, key) })).rejects.toThrow("killed");
    const file = join(out, "journal", "model.jsonl");
    const text = readFileSync(file, "utf8");
    const lines = text.trimEnd().split("\n");
    // Cut the last chunk line in half, as a kill during the write would.
    const { writeFileSync } = await import("node:fs");
    writeFileSync(file, lines.slice(0, -1).join("\n") + "\n" + lines[lines.length - 1].slice(0, 100));
    const j = MatrixJournal.open(out, key);
    expect(j.read("model").traces.size).toBe(25);
    const c2 = { opens: 0, programs: 0, calls: 0 };
    const r = await runMatrix([modelSlot(c2)], { ...opts, journal: j });
    expect(c2.programs).toBe(308 - 25);
    expect(MatrixJournal.open(out, key).read("model").traces.size).toBe(308); // the new lines parse after the torn one
    expect(r.columns[0].ran.length).toBe(308);
  });
});

const CLI = join(PROJECT_ROOT, "cli", "matrix.ts");
const cliArgs = (out: string, extra: string[] = []) => ["--import", "tsx", CLI, "--no-host", "--kernels", "", "--model", "--no-record", "--seed", "3", "--programs", "3000", "--max-ops", "10", "--chunk", "1", "--out", out, ...extra];

describe("matrix CLI: kill -9 and run again", () => {
  it("continues the killed run; the report equals a one-shot run's", { timeout: 120_000 }, async () => {
    const killed = tmp();
    const journalFile = join(killed, "journal", "model.jsonl");
    const child = spawn(process.execPath, cliArgs(killed), { cwd: PROJECT_ROOT, stdio: ["ignore", "ignore", "pipe"] });
    let err = "";
    child.stderr.on("data", (d) => (err += d));
    const exited = new Promise<NodeJS.Signals | null>((res) => child.on("exit", (_c, sig) => res(sig)));
    // Kill it once a few chunks are journaled.
    for (let t = 0; t < 2000; t++) {
      if (existsSync(journalFile) && readFileSync(journalFile, "utf8").split("\n").length > 40) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    child.kill("SIGKILL");
    expect(await exited).toBe("SIGKILL");
    const before = readFileSync(journalFile, "utf8").split("\n").filter((l) => l.startsWith('{"t":"chunk"')).length;
    expect(before).toBeGreaterThan(30);
    expect(before).toBeLessThan(3008); // killed partway
    expect(JSON.parse(readFileSync(join(killed, "journal", "meta.json"), "utf8")).complete).toBe(false);

    const resumed = spawnSync(process.execPath, cliArgs(killed), { cwd: PROJECT_ROOT, encoding: "utf8" });
    expect(resumed.status, resumed.stderr).toBe(0);
    expect(resumed.stderr).toContain("continuing the unfinished run");
    expect(resumed.stderr).toMatch(new RegExp(`model: ${before}/3008 programs from the journal`));
    expect(resumed.stderr).toMatch(/model: 3008\/3008 programs, [\d.]+\/s, \d+ divergent \+ \d+ known, done in/);

    const oneShot = tmp();
    const once = spawnSync(process.execPath, cliArgs(oneShot), { cwd: PROJECT_ROOT, encoding: "utf8" });
    expect(once.status, once.stderr).toBe(0);
    expect(once.stderr).not.toContain("continuing");
    const read = (d: string) => normalized(JSON.parse(readFileSync(join(d, "matrix.json"), "utf8")));
    expect(read(killed)).toEqual(read(oneShot));
    // The Markdown report: the same but for times (decimals: programs/s, seconds; the start time).
    const md = (d: string) => readFileSync(join(d, "matrix.md"), "utf8").replace(/\d{4}-\d\d-\d\dT[\d:.]+Z/g, "T").replace(/\d+\.\d+/g, "N");
    expect(md(killed)).toBe(md(oneShot));

    // Finished: the next run with this --out starts afresh.
    expect(JSON.parse(readFileSync(join(killed, "journal", "meta.json"), "utf8")).complete).toBe(true);
  });

  it("--jobs is clamped to the host's cores, and says so", () => {
    const r = spawnSync(process.execPath, cliArgs(tmp(), ["--programs", "5", "--jobs", String(availableParallelism() + 3)]), { cwd: PROJECT_ROOT, encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain(`--jobs ${availableParallelism() + 3}: using `);
    expect(r.stderr).toMatch(/host cores? \(a TCG guest keeps one busy/);
  });

  it("refuses to continue an unfinished run with other options", () => {
    const out = tmp();
    MatrixJournal.open(out, { seed: 3, programs: 3000, maxOps: 10, builtin: true, shard: null });
    const r = spawnSync(process.execPath, cliArgs(out, ["--seed", "4"]), { cwd: PROJECT_ROOT, encoding: "utf8" });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("holds an unfinished matrix run with other options (--seed 3 --programs 3000 --max-ops 10; this run: --seed 4 --programs 3000 --max-ops 10)");
    expect(r.stderr).toContain("--fresh");
  });
});
