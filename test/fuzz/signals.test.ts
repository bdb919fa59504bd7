/**
 * Nothing left behind: the CLI killed at random points (SIGINT, SIGTERM, SIGHUP, SIGKILL) on the
 * model with --workers 2 and on the host backend leaves no process and no temp dir; a polite
 * signal prints the partial summary and exits 128+signal. (vm:6.12: test/vm/kill.test.ts.)
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { killCli, SIGNAL_CODE } from "../support/kill.ts";
import { say, skipLive } from "../hwtest/live.ts";

const out = mkdtempSync(join(tmpdir(), "auxspec-test-"));
afterAll(() => rmSync(out, { recursive: true, force: true }));
const rnd = (lo: number, hi: number) => lo + Math.floor(Math.random() * (hi - lo));

describe("killing the CLI leaves nothing behind", () => {
  for (const signal of ["SIGINT", "SIGTERM", "SIGKILL"] as const) {
    it(`model --workers 2, ${signal}`, async () => {
      const r = await killCli(["--backend", "model", "--workers", "2", "--time", "60", "--out", out], signal, rnd(500, 2500),
        { ready: (c) => c.filter((x) => x === "node" || x.startsWith("MainThread")).length >= 2, env: { AUXSPEC_WORKERS_AS_ASKED: "1" } });
      expect(r.leftProcesses, r.stderr.slice(-2000)).toEqual([]);
      expect(r.leftDirs).toEqual([]);
      expect(r.code).toBe(SIGNAL_CODE[signal]);
      if (signal !== "SIGKILL") expect(r.stderr).toMatch(/stopped by SIG\w+: partial summary[\s\S]*programs,/);
    }, 60_000);
  }

  say(skipLive, "host kill test");
  for (const signal of ["SIGHUP", "SIGTERM", "SIGKILL"] as const) {
    it.skipIf(skipLive !== null)(`host, ${signal}`, async () => {
      const r = await killCli(["--backend", "host", "--time", "60", "--out", out], signal, rnd(500, 3000),
        { ready: (c) => c.length >= 2 });
      expect(r.leftProcesses, r.stderr.slice(-2000)).toEqual([]);
      expect(r.leftDirs).toEqual([]);
      expect(r.code).toBe(SIGNAL_CODE[signal]);
      if (signal !== "SIGKILL") expect(r.stderr).toMatch(/partial summary/);
    }, 60_000);
  }
});
