/**
 * The short kernel matrix CI runs (issue 6): one seeded corpus on the host kernel and on the
 * newest Debian 6.1 and 6.12 kernels under QEMU with the test PMU, judged by the spec;
 * zero unexplained divergences, no aborted program, the report written. Skips with the
 * reason when QEMU or busybox is missing, or when not root.
 */
import { describe, expect, it } from "vitest";
import { join } from "node:path";
import { busyboxBinary, qemuBinary } from "../../hwtest/vm/qemu.ts";
import { columnSummary, runMatrix, writeReport, type BackendSlot } from "../../matrix/index.ts";
import { loadKnown } from "../../fuzz/known.ts";

const ROOT = join(import.meta.dirname, "../..");
const skip = !qemuBinary() ? "qemu-system-x86_64 is not installed (npm run setup installs it)"
  : !busyboxBinary() ? "busybox-static is not installed (npm run setup installs it)"
  : process.getuid?.() !== 0 ? "not root (apt-get download and the guest's 9p shares need it here)" : null;
if (skip) console.log(`test/vm/matrix-live: SKIPPED: ${skip}`);

describe.skipIf(skip !== null)("kernel matrix: host, newest 6.1, newest 6.12", () => {
  it("runs one corpus everywhere with no unexplained divergence", async () => {
    const log = (m: string) => console.log(`matrix: ${m}`);
    const slots: BackendSlot[] = [
      { name: "host", open: async () => (await import("../../hwtest/host/backend.ts")).hostBackend({ log }) },
      { name: "vm:6.1", open: async () => (await import("../../hwtest/vm/backend.ts")).vmBackend("6.1", { log }) },
      { name: "vm:6.12", open: async () => (await import("../../hwtest/vm/backend.ts")).vmBackend("6.12", { log }) },
    ];
    const known = loadKnown(join(ROOT, "cases", "known-divergences.json"));
    const r = await runMatrix(slots, { seed: 1, programs: 80, maxOps: 20, known, log });
    const files = writeReport(r, join(ROOT, "out", "ci-matrix"));
    console.log(`matrix report: ${files.md}`);
    for (const c of r.columns) {
      expect(c.unavailable, `${c.name}: ${c.unavailable}`).toBeUndefined();
      const s = columnSummary(c);
      console.log(`${c.name} (${c.kernel}, ${c.profile}): ${s.ran} ran, ${s.accepted} accepted, ${s.known} known, ${s.diverged} divergent, ${s.aborted} aborted, ${s.perSecond.toFixed(1)} programs/s`);
      expect(s.diverged, `${c.name} diverged; see ${files.md}`).toBe(0);
      expect(s.aborted, c.name).toBe(0);
      expect(s.ran).toBeGreaterThan(60);
    }
    // The VM columns exercise AUX allocation through the test PMU.
    for (const c of r.columns.filter((x) => x.name.startsWith("vm:"))) {
      expect(c.hits.get("mmap.aux.new")?.hits ?? 0, `${c.name}: no AUX area was allocated`).toBeGreaterThan(0);
    }
  }, 600_000);
});
