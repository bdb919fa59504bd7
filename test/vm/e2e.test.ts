/**
 * End to end: provision the newest Debian 6.1 and 6.12 kernels, boot each once under QEMU TCG
 * with the auxspec_pmu test module, run AUX programs through the guest agent, and check the
 * outcomes vm-recipe.md documents, the test PMU's live count back to 0 after every program,
 * and a clean kernel log. A second, short boot checks the channel itself with a stand-in
 * agent: kernel warnings reach the trace, a dying agent costs one program only.
 *
 * Skips (with the reason) when QEMU is missing or when not root (apt-get update and the
 * guest's uid switching need root). CI installs QEMU with scripts/setup-vm.sh.
 */
import { describe, expect, it } from "vitest";
import type { Backend } from "../../backend/contract.ts";
import type { Trace } from "../../spec/trace.ts";
import { vmBackend } from "../../hwtest/vm/backend.ts";
import { provisionKernel } from "../../hwtest/vm/provision.ts";
import { AUX_PROGRAMS } from "../../hwtest/vm/programs.ts";
import { GUEST_DIR, GuestError, GuestVM, busyboxBinary, qemuBinary } from "../../hwtest/vm/qemu.ts";

const skipReason = !qemuBinary() || !busyboxBinary()
  ? "qemu-system-x86_64 or busybox is not installed (run: bash scripts/setup-vm.sh)"
  : typeof process.getuid === "function" && process.getuid() !== 0
    ? "not root (provisioning may need apt-get update; the guest agent switches uids)"
    : null;
if (skipReason) console.log(`test/vm/e2e: SKIPPED: ${skipReason}`);

const figures: string[] = [];
const note = (s: string) => {
  figures.push(s);
  console.log(`test/vm/e2e: ${s}`);
};

const { good: GOOD, badSize: BAD_SIZE, badLength: BAD_LENGTH, fault: FAULT, partial: PARTIAL, big: BIG, second: SECOND, readOnlyThenResize: RESIZE } = AUX_PROGRAMS;

const outcomes = (t: Trace) => t.steps.map((s) => ("ok" in s.outcome ? "ok" : "errno" in s.outcome ? s.outcome.errno : s.outcome.signal));

function expectClean(t: Trace, what: string): void {
  expect(t.aborted, `${what}: aborted`).toBeUndefined();
  expect(t.audit, `${what}: audit`).not.toBeNull();
  expect(t.audit!.liveAux, `${what}: test PMU live AUX areas after teardown`).toBe(0);
  expect(t.audit!.auxSetups! - t.audit!.auxFrees!, `${what}: setups - frees`).toBe(0);
  expect(t.audit!.vmPinKb, `${what}: VmPin after teardown`).toBe(0);
  expect(t.audit!.warnings ?? [], `${what}: kernel warnings`).toEqual([]);
}

for (const series of ["6.1", "6.12"] as const) {
  describe.skipIf(skipReason !== null)(`vm:${series}`, () => {
    it(`boots the newest Debian ${series} kernel once and runs AUX programs through the agent`, async () => {
      const t0 = performance.now();
      const k = await provisionKernel(series);
      note(`${series}: provisioned ${k.release} (${k.debVersion}) in ${k.seconds.total} s (cache: ${k.cached})`);
      const t1 = performance.now();
      let b: Backend | null = null;
      try {
        b = await vmBackend(series);
        note(`${series}: backend up in ${((performance.now() - t1) / 1000).toFixed(1)} s (${b.info.notes.find((n) => n.startsWith("boot took"))})`);
        expect(b.info.name).toBe(`vm:${series}`);
        expect(b.info.kernel).toBe(k.release);
        expect(b.info.config).toMatchObject({ cpus: 1, paranoid: 2, pmus: { aux: "auxspec_pmu" } });
        expect([...b.info.unsupported]).toEqual(["mapRangeFault"]); // model only: map_range() is core code
        // every Debian package reachable has the Aug 2025 fixes (6.1.148+, 6.12.42+)
        expect(b.info.profile).toBe(series);

        const t2 = performance.now();
        const [good, badSize, badLength, fault, partial, big, second, resize, goodAgain] = await b.run([GOOD, BAD_SIZE, BAD_LENGTH, FAULT, PARTIAL, BIG, SECOND, RESIZE, GOOD]);
        note(`${series}: first 9 programs (agent start-up included) in ${((performance.now() - t2) / 1000).toFixed(1)} s`);

        expect(outcomes(good)).toEqual(["ok", "ok", "ok", "ok", "ok"]);
        const page = good.steps[4].outcome;
        expect(page).toEqual({ ok: true, page: { dataOffset: 4096, dataSize: 8 * 4096, auxHead: 0, auxOffset: 9 * 4096, auxSize: 4 * 4096 } });
        expect(outcomes(badSize)).toEqual(["ok", "ok", "ok", "EINVAL"]);
        expect(outcomes(badLength)).toEqual(["ok", "ok", "ok", "EINVAL"]);
        // setup_aux returning NULL: rb_alloc_aux fails, the AUX mmap is ENOMEM
        expect(outcomes(fault)).toEqual(["ok", "ok", "ok", "ok", "ENOMEM"]);
        // may_split (6.1.148+, 6.12.42+): a partial munmap of the AUX VMA is EINVAL, the whole one works
        expect(outcomes(partial)).toEqual(["ok", "ok", "ok", "ok", "EINVAL", "ok"]);
        // 1024 AUX pages over a 129-page budget: 9 + 1024 - 129 = 904 pages pinned = 3616 kB
        expect(outcomes(big)).toEqual(["ok", "ok", "ok", "ok"]);
        expect(big.steps[3].vmPinKb).toBe(3616);
        // a second AUX mapping of the same size shares the area; another size is EINVAL
        expect(outcomes(second)).toEqual(["ok", "ok", "ok", "ok", "ok", "EINVAL"]);
        // PROT_READ AUX (overwrite mode) works; after its munmap the AUX area is gone and another size maps
        expect(outcomes(resize)).toEqual(["ok", "ok", "ok", "ok", "ok", "ok", "ok"]);
        expect(outcomes(goodAgain)).toEqual(["ok", "ok", "ok", "ok", "ok"]);
        const all = { good, badSize, badLength, fault, partial, big, second, resize, goodAgain };
        for (const [name, t] of Object.entries(all)) expectClean(t, name);
        // the test PMU's counts are per program (the shim resets them before each one)
        const setups = Object.fromEntries(Object.entries(all).map(([n, t]) => [n, t.audit!.auxSetups]));
        expect(setups).toEqual({ good: 1, badSize: 0, badLength: 0, fault: 0, partial: 1, big: 1, second: 1, resize: 2, goodAgain: 1 });

        const batch = Array.from({ length: 60 }, (_, i) => [GOOD, BAD_SIZE, FAULT, PARTIAL, SECOND][i % 5]);
        const t3 = performance.now();
        const traces = await b.run(batch);
        const secs = (performance.now() - t3) / 1000;
        note(`${series}: 60 programs in ${secs.toFixed(2)} s = ${(60 / secs).toFixed(1)} programs/s in the guest`);
        traces.forEach((t, i) => expectClean(t, `batch ${i}`));
      } finally {
        const t4 = performance.now();
        await b?.close();
        note(`${series}: closed in ${((performance.now() - t4) / 1000).toFixed(1)} s; whole test ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      }
    }, 240_000);
  });
}

describe.skipIf(skipReason !== null)("guest channel", () => {
  it("reports kernel warnings with the program after them, survives a dying agent, reports a panic", async () => {
    const k = await provisionKernel("6.12");
    const vm = await GuestVM.boot({ kernel: k, agent: ["node", `${GUEST_DIR}/echo-agent.mjs`] });
    try {
      expect(vm.hello.auxPmu).toBe("auxspec_pmu");
      expect(vm.hello.bootWarnings).toEqual([]);
      expect(vm.hello.pmu).toEqual({ setups: 0, frees: 0, live: 0, failSetupAux: false });
      const prog = [{ op: "open", ev: "e0", pmu: "aux" }];
      const clean = await vm.request<{ trace: Trace }>({ program: prog, config: {} }, 60_000);
      expect(clean.trace.audit?.warnings).toBeUndefined();
      expect(await vm.request<{ selftestWarn: boolean }>({ selftestWarn: true }, 30_000)).toMatchObject({ selftestWarn: true });
      const warned = await vm.request<{ trace: Trace }>({ program: prog, config: {} }, 60_000);
      expect(warned.trace.audit?.warnings?.some((w) => /^WARNING: CPU: \d+ PID: \d+ at .*auxspec_pmu/.test(w))).toBe(true);
      const after = await vm.request<{ trace: Trace }>({ program: prog, config: {} }, 60_000);
      expect(after.trace.audit?.warnings).toBeUndefined();
      // the echo agent dies on this op: that program is aborted, the next one gets a fresh agent
      const crashed = await vm.request<{ trace: Trace }>({ program: [{ op: "crashAgent" }], config: {} }, 60_000);
      expect(crashed.trace.aborted).toBe("guest agent failed: agent ended (exit code 7)");
      const next = await vm.request<{ trace: Trace }>({ program: prog, config: {} }, 60_000);
      expect(next.trace.steps).toEqual([{ outcome: { ok: true }, vmPinKb: 0 }]);
      // an agent that answers and then exits dirty (status 3): the programs queued behind it
      // (sent before the exit was seen) are answered by a fresh agent, none is lost
      const [dirty, q1, q2] = await Promise.all([
        vm.request<{ trace: Trace }>({ program: [{ op: "exitDirty" }], config: {} }, 60_000),
        vm.request<{ trace: Trace }>({ program: prog, config: {} }, 60_000),
        vm.request<{ trace: Trace }>({ program: [...prog, ...prog], config: {} }, 60_000),
      ]);
      expect(dirty.trace.aborted).toBeUndefined();
      expect(q1.trace.steps).toHaveLength(1);
      expect(q2.trace.steps).toHaveLength(2);
      const probe = await vm.probe();
      expect(probe.pmu?.live).toBe(0);
      // a kernel panic: the request fails at once with the console, QEMU is gone
      const t = performance.now();
      const err = await vm.request({ selftestPanic: true }, 60_000).then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(GuestError);
      expect((err as GuestError).message).toMatch(/QEMU exited/);
      expect((err as GuestError).console).toMatch(/Kernel panic - not syncing/);
      expect(performance.now() - t).toBeLessThan(30_000);
      expect(vm.alive).toBe(false);
    } finally {
      await vm.close();
    }
  }, 120_000);
});
