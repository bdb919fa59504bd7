/**
 * The non-root host mode (issue 10): as uid 65534 every program shares one user->locked_vm,
 * which the 6.18 re-map leak keeps charged across programs. The run measures the budget around
 * each program and judges from it: no false divergence, the known leak still reported as known,
 * exit 0. CI runs tests as root; the test drops to 65534 with setpriv.
 */
import { spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { is618, skipRoot } from "./live.ts";

const ROOT = join(import.meta.dirname, "../..");
const drop = ["--reuid=65534", "--regid=65534", "--clear-groups"];
const canDrop = skipRoot === null && spawnSync("setpriv", [...drop, "test", "-r", join(ROOT, "cli/main.ts")]).status === 0;
const skip = skipRoot ?? (canDrop ? null : "setpriv missing, or the checkout is not readable by uid 65534 (make a world-readable copy)");
if (skip) console.log(`[skip] non-root host run: ${skip}`);

const out = mkdtempSync(join(tmpdir(), "auxspec-test-"));
chmodSync(out, 0o777);
afterAll(() => rmSync(out, { recursive: true, force: true }));

describe.skipIf(skip !== null)("host backend as an ordinary user", () => {
  it("reports no false divergence, the re-map leak as known, and exits 0", () => {
    const r = spawnSync("setpriv", [...drop, "env", `HOME=${out}`, process.execPath, "--import", "tsx", join(ROOT, "cli/main.ts"),
      "fuzz", "--backend", "host", "--time", "20", "--seed", "5", "--out", join(out, "cases"), "--json"], { cwd: ROOT, encoding: "utf8", timeout: 120_000 });
    expect(r.status, r.stderr.slice(-3000)).toBe(0);
    const j = JSON.parse(r.stdout);
    console.log(`non-root: ${j.programs} programs, ${j.divergences.length} divergences, ${j.known.length} known, ${j.flaky.length} flaky, ${j.aborted} aborted`);
    expect(j.programs).toBeGreaterThan(500);
    expect(j.divergences).toEqual([]);
    expect(j.aborted).toBe(0);
    if (is618) expect(j.known.map((k: { known: string }) => k.known)).toContain("6.18-remap-leaks-locked-vm");
  }, 150_000);
});
