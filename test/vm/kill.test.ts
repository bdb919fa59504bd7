/**
 * Nothing left behind with a VM: `fuzz --backend vm:6.12` killed (SIGINT, SIGTERM, SIGKILL) once
 * QEMU runs leaves no QEMU, no agent and no auxspec-vm-* temp dir (QEMU runs under
 * setpriv --pdeathsig KILL; the temp dir has a reaper). Skips without QEMU or root, like e2e.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { busyboxBinary, qemuBinary } from "../../hwtest/vm/qemu.ts";
import { killCli, SIGNAL_CODE } from "../support/kill.ts";

const skipReason = !qemuBinary() || !busyboxBinary()
  ? "qemu-system-x86_64 or busybox is not installed (run: bash scripts/setup-vm.sh)"
  : typeof process.getuid === "function" && process.getuid() !== 0 ? "not root" : null;
if (skipReason) console.log(`test/vm/kill: SKIPPED: ${skipReason}`);

const out = mkdtempSync(join(tmpdir(), "auxspec-test-"));
afterAll(() => rmSync(out, { recursive: true, force: true }));

describe.skipIf(skipReason !== null)("killing a vm:6.12 run leaves nothing behind", () => {
  for (const signal of ["SIGINT", "SIGTERM", "SIGKILL"] as const) {
    it(signal, async () => {
      const r = await killCli(["--backend", "vm:6.12", "--time", "300", "--out", out], signal, Math.floor(Math.random() * 4000),
        { ready: (c) => c.some((x) => x.startsWith("qemu")), readyTimeoutMs: 240_000, settleMs: 4000 });
      expect(r.comms.some((x) => x.startsWith("qemu")), `QEMU never started: ${r.stderr.slice(-1500)}`).toBe(true);
      expect(r.leftProcesses, r.stderr.slice(-2000)).toEqual([]);
      expect(r.leftDirs).toEqual([]);
      expect(r.code).toBe(SIGNAL_CODE[signal]);
    }, 300_000);
  }
});
