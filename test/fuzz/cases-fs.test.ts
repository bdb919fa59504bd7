/**
 * Nothing lost, and filesystem trouble found early and named: hashed case names (same program,
 * same name; two campaigns into one dir keep every finding), atomic writes, --out checked before
 * the first program, replay naming every unusable file (dangling symlink, loop, invalid case),
 * --kernel checked to be a bzImage, stale temp dirs swept, and the option checks of issue 10.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { checkOutDir, CaseError, listCasesChecked, programHash, writeCase } from "../../fuzz/cases.ts";
import { sweepStaleTempDirs, makeTempDir, removeTempDir } from "../../backend/lifecycle.ts";
import { MODEL_CONFIG } from "../../backend/model.ts";
import { DEFAULT_HOST_WORKERS } from "../../hwtest/host/backend.ts";
import { DEFAULT_HOST_WORKERS as CLI_HOST_WORKERS } from "../../cli/main.ts";
import { checkBzImage } from "../../hwtest/vm/provision.ts";
import type { Case } from "../../spec/program.ts";

const ROOT = join(import.meta.dirname, "../..");
const cli = (...args: string[]) => spawnSync(process.execPath, ["--import", "tsx", join(ROOT, "cli/main.ts"), ...args], { cwd: ROOT, encoding: "utf8", timeout: 120_000 });
const base = mkdtempSync(join(tmpdir(), "auxspec-test-"));
afterAll(() => rmSync(base, { recursive: true, force: true }));

const mk = (pages: number): Case => ({
  format: "auxspec-case/1", name: "model-invariant-x", profile: "6.18", config: MODEL_CONFIG,
  program: [{ op: "open", ev: "e0", pmu: "sw" }, { op: "mmap", map: "m0", ev: "e0", pages, pgoff: 0, prot: "rw" }],
});

describe("cases are never lost", () => {
  it("names carry a program hash: same program same name, different programs side by side; no temp files left", () => {
    const dir = join(base, "out");
    const a1 = writeCase(dir, mk(3));
    const a2 = writeCase(dir, mk(3));
    const b = writeCase(dir, mk(5));
    expect(a1.json).toBe(a2.json);
    expect(b.json).not.toBe(a1.json);
    expect(a1.json).toContain(programHash(mk(3)));
    expect(readdirSync(dir).sort()).toEqual([a1.json, a1.c!, b.json, b.c!].map((p) => p.slice(dir.length + 1)).sort());
    expect(JSON.parse(readFileSync(b.json, "utf8")).program[1].pages).toBe(5);
  });

  it("a hash-prefix clash takes a longer name instead of replacing the other case", () => {
    const dir = join(base, "clash");
    const c = mk(3);
    mkdirSync(dir);
    writeFileSync(join(dir, `${c.name}-${programHash(c)}.json`), JSON.stringify({ ...mk(9), name: "other" }));
    const w = writeCase(dir, c);
    expect(w.json).toContain(programHash(c, 16));
    expect(JSON.parse(readFileSync(join(dir, `${c.name}-${programHash(c)}.json`), "utf8")).name).toBe("other");
  });

  it("--out is checked before anything runs", () => {
    const file = join(base, "a-file");
    writeFileSync(file, "");
    expect(() => checkOutDir(file)).toThrow(/not a directory/);
    expect(() => checkOutDir(join(file, "sub"))).toThrow(CaseError);
    expect(() => checkOutDir("/proc/auxspec-out")).toThrow(/cannot be created/);
    checkOutDir(join(base, "fresh/deeper"));
    expect(existsSync(join(base, "fresh/deeper"))).toBe(true);
    const r = cli("fuzz", "--backend", "model", "--runs", "10", "--out", file);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--out .* is not a directory/);
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
  });
});

describe("replay names every unusable file", () => {
  it("dangling symlinks, loops and invalid cases are all listed, nothing runs (exit 2)", () => {
    const dir = join(base, "replay");
    mkdirSync(join(dir, "sub"), { recursive: true });
    writeCase(dir, mk(3), false);
    symlinkSync(join(dir, "nowhere.json"), join(dir, "dangling.json"));
    symlinkSync(dir, join(dir, "sub", "loop"));
    writeFileSync(join(dir, "bad1.json"), "{ not json");
    writeFileSync(join(dir, "bad2.json"), JSON.stringify({ format: "auxspec-case/1" }));
    const l = listCasesChecked(dir);
    expect(l.problems.join("\n")).toMatch(/dangling\.json: a symlink that dangles/);
    expect(l.problems.join("\n")).toMatch(/loop: a symlink loop/);
    const r = cli("replay", dir);
    expect(r.status).toBe(2);
    for (const n of ["dangling.json", "loop", "bad1.json", "bad2.json"]) expect(r.stderr).toContain(n);
    expect(r.stderr).toMatch(/4 unusable case files \(nothing was run\)/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    symlinkSync(join(base, "self-loop"), join(base, "self-loop"));
    const s = cli("replay", join(base, "self-loop"));
    expect(s.status).toBe(2);
    expect(s.stderr).toMatch(/self-loop: a symlink loop/);
  });
});

describe("temp dirs and kernels", () => {
  it("a temp dir whose owner pid is gone is swept; a live one stays", () => {
    const dead = join(tmpdir(), "auxspec-vm-999999999-abcdef");
    mkdirSync(dead, { recursive: true });
    const mine = makeTempDir("vm");
    const swept = sweepStaleTempDirs();
    expect(swept).toContain(dead);
    expect(existsSync(dead)).toBe(false);
    expect(existsSync(mine)).toBe(true);
    removeTempDir(mine);
  });

  it("--kernel must be a bzImage (HdrS at 0x202) before anything is cached", () => {
    expect(checkBzImage("/etc/passwd")).toMatch(/not a bzImage/);
    expect(checkBzImage(join(base, "missing"))).toMatch(/cannot read/);
    const fake = join(base, "bz");
    const buf = Buffer.alloc(0x300);
    buf.write("HdrS", 0x202, "latin1");
    writeFileSync(fake, buf);
    expect(checkBzImage(fake)).toBeNull();
  });
});

describe("options of issue 10", () => {
  it("a config perf_event_mlock_kb cannot hold is refused up front, not judged with a negative limit", () => {
    const f = join(base, "huge-mlock.json");
    writeFileSync(f, JSON.stringify({ ...mk(3), config: { ...MODEL_CONFIG, mlockKb: 2 ** 53 - 1 } }));
    const r = cli("replay", f);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/config\.mlockKb: perf_event_mlock_kb is a C int/);
  });

  it("--help states the host default the backend uses", () => {
    expect(CLI_HOST_WORKERS).toBe(DEFAULT_HOST_WORKERS);
    expect(cli("fuzz", "--help").stdout).toMatch(new RegExp(`default 1 \\(model\\), ${DEFAULT_HOST_WORKERS} \\(host\\)`));
  });

  it("--profile lists the profiles; --max-ops is capped at what a case holds", () => {
    const p = cli("fuzz", "--profile", "5.4");
    expect(p.status).toBe(2);
    expect(p.stderr).toMatch(/--profile must be one of auto, .*6\.1.*6\.18/);
    const m = cli("fuzz", "--backend", "model", "--max-ops", "100000");
    expect(m.status).toBe(2);
    expect(m.stderr).toMatch(/--max-ops must be at most 256/);
  });
});
