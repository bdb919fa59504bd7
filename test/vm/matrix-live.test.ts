/**
 * The short kernel matrix CI runs (issues 6 and 11): one seeded corpus on the host kernel and
 * on the newest Debian 5.10, 6.1, 6.12 and 7.3 kernels under QEMU, each with the test PMU,
 * judged by the spec: every program accepted or classified (a known divergence), the test PMU
 * loaded on every VM, no aborted trace, the report written (with the kernels x known-bugs
 * timeline). Nothing is recorded into cases/known-divergences.json (--no-record semantics).
 * From a cold cache this provisions four kernels (downloads included); at most two guests run
 * at once. Skips with the reason when QEMU or busybox is missing, or when not root.
 */
import { describe, expect, it } from "vitest";
import { join } from "node:path";
import { busyboxBinary, qemuBinary } from "../../hwtest/vm/qemu.ts";
import { columnSummary, runMatrix, writeReport, type BackendSlot } from "../../matrix/index.ts";
import { loadKnown } from "../../fuzz/known.ts";

const ROOT = join(import.meta.dirname, "../..");
const KERNELS = ["5.10", "6.1", "6.12", "7.3"];
const skip = !qemuBinary() ? "qemu-system-x86_64 is not installed (npm run setup installs it)"
  : !busyboxBinary() ? "busybox-static is not installed (npm run setup installs it)"
  : process.getuid?.() !== 0 ? "not root (apt-get download needs it here)" : null;
if (skip) console.log(`test/vm/matrix-live: SKIPPED: ${skip}`);

describe.skipIf(skip !== null)(`kernel matrix: host and the newest ${KERNELS.join(", ")}`, () => {
  it("runs one corpus everywhere: every program accepted or known, the test PMU on every VM, nothing aborted", async () => {
    const t0 = performance.now();
    const log = (m: string) => console.log(`matrix: ${m}`);
    const slots: BackendSlot[] = [
      { name: "host", open: async () => (await import("../../hwtest/host/backend.ts")).hostBackend({ log }) },
      ...KERNELS.map((k) => ({ name: `vm:${k}`, open: async () => (await import("../../hwtest/vm/backend.ts")).vmBackend(k, { log }) })),
    ];
    const known = loadKnown(join(ROOT, "cases", "known-divergences.json"));
    const r = await runMatrix(slots, { seed: 1, programs: 20, maxOps: 20, known, log, concurrency: 2 });
    const files = writeReport(r, join(ROOT, "out", "ci-matrix"), known);
    console.log(`matrix report: ${files.md} (${((performance.now() - t0) / 1000).toFixed(0)} s in all)`);
    expect(r.corpus.length).toBe(r.builtin.length + 20);
    for (const c of r.columns) {
      expect(c.unavailable, `${c.name}: ${c.unavailable}`).toBeUndefined();
      const s = columnSummary(c);
      console.log(`${c.name} (${c.kernel}, ${c.profile}): ${s.ran} ran, ${s.accepted} accepted, ${s.known} known, ${s.diverged} divergent, ${s.aborted} aborted, open ${c.openSeconds.toFixed(0)} s, ${s.perSecond.toFixed(1)} programs/s`);
      expect(s.diverged, `${c.name} diverged; see ${files.md}`).toBe(0);
      expect(s.accepted + s.known, c.name).toBe(s.ran);
      expect(s.aborted, c.name).toBe(0);
      expect(s.ran).toBeGreaterThan(15);
    }
    // Every VM column ran with the test PMU and allocated AUX areas through it.
    for (const c of r.columns.filter((x) => x.name.startsWith("vm:"))) {
      expect(c.config?.pmus.aux ?? null, `${c.name}: the test PMU did not load (${c.notes.join("; ")})`).not.toBeNull();
      expect(c.skipped, `${c.name}: programs skipped`).toEqual([]);
      expect(c.hits.get("mmap.aux.new")?.hits ?? 0, `${c.name}: no AUX area was allocated`).toBeGreaterThan(0);
    }
  }, 1_200_000);
});
