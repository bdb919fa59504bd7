/**
 * Teardown and audit of one program on the host, the protocol of spec/audit.ts:
 * `teardown` runs `teardownSteps(program)` (restore the sysctl and the test PMU's fault switch,
 * unmap both slots of every map handle, then mappings mremap moved outside the slots, then
 * close every event handle still open); `runAudit` reads VmPin, probes the uid's budget (root
 * only; perf.ts probeBudget drives spec/audit.ts budgetProbe), reads the test PMU's counters
 * and the kernel log lines matching KERNEL_WARNING.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Config, Op } from "../../spec/program.ts";
import type { Audit } from "../../spec/trace.ts";
import { BUDGET_PROBE_MARGIN, KERNEL_WARNING, PAGE_SIZE, SLOT_BASE, budgetCap, slotPage, teardownSteps } from "../../spec/audit.ts";
import type { HostFacts } from "./discover.ts";
import { errnoName } from "./errno.ts";
import { probeBudget } from "./perf.ts";
import { HarnessError, vmPin, type Ctx } from "./context.ts";
import { PROC_MLOCK, type Identity } from "./identity.ts";
import type { Handles } from "./lower.ts";

/** The protocol's teardown; never throws for the kernel's answers (only HarnessError from identity). */
export function teardown(c: Ctx, id: Identity, h: Handles, program: readonly Op[], config: Config, facts: HostFacts): void {
  const l = c.l;
  let straysDone = false;
  const unmapStrays = () => {
    for (const [a, len] of h.strays) l.munmap(a, len);
    straysDone = true;
  };
  for (const step of teardownSteps(program)) {
    switch (step.kind) {
      case "restore":
        if (id.mlockTouched) id.writeFile(PROC_MLOCK, String(config.mlockKb));
        if (id.auxFaultTouched && facts.testPmuDir) id.writeFile(join(facts.testPmuDir, "fail_setup_aux"), "N");
        break;
      case "munmap":
        l.munmap(SLOT_BASE + slotPage(step.map, step.slot) * PAGE_SIZE, step.pages * PAGE_SIZE);
        break;
      case "close": {
        if (!straysDone) unmapStrays();
        const fd = h.evFd.get(step.ev);
        if (fd !== undefined && fd >= 0) { l.close(fd); h.evFd.set(step.ev, -1); }
        break;
      }
      case "exit":
        // never here: the TypeScript executor refuses multi-process programs (executor.ts)
        break;
    }
  }
  if (!straysDone) unmapStrays();
}

export interface AuditOptions {
  noBudget?: boolean;
  budgetMargin?: number;
}

/** The audit after teardown. */
export function runAudit(c: Ctx, id: Identity, config: Config, facts: HostFacts, opts: AuditOptions): Audit {
  const a: Audit = { vmPinKb: vmPin(c) };
  if (id.root && !opts.noBudget) {
    // RLIMIT_MEMLOCK = current pinned_vm (normally 0) so that any charge to pinned_vm fails;
    // no CAP_IPC_LOCK. A negative pinned_vm (VmPin printed unsigned: >= 2^63 kB) holds no
    // pages: limit 0 (spec/audit.ts), as the C runtime does.
    const pinPages = a.vmPinKb > 0 && a.vmPinKb < 2 ** 63 ? Math.ceil(a.vmPinKb / 4) : 0;
    id.setIpcLock(false);
    const e = id.setMemlock(pinPages);
    if (e !== 0) throw new HarnessError(`setrlimit for the budget probe: ${errnoName(e)}`);
    const probe = probeBudget(budgetCap(config.mlockKb, config.cpus, opts.budgetMargin ?? BUDGET_PROBE_MARGIN));
    if (probe.error) throw new HarnessError(`budget probe: ${probe.error}`);
    a.budgetPages = probe.pages;
    id.setIpcLock(config.capIpcLock);
  }
  if (facts.testPmuDir) {
    const rd = (n: string) => { try { return Number(readFileSync(join(facts.testPmuDir!, n), "utf8").trim()); } catch { return undefined; } };
    const live = rd("live"), setups = rd("setups"), frees = rd("frees");
    if (live !== undefined) a.liveAux = live;
    if (setups !== undefined) a.auxSetups = setups;
    if (frees !== undefined) a.auxFrees = frees;
  }
  const w = kmsgWarnings(c);
  if (w.length) a.warnings = w;
  return a;
}

/** Kernel log records since the last call that match KERNEL_WARNING (spec/audit.ts), of this
 *  process (records naming another PID are skipped: other workers share the log). Read with
 *  koffi, not fs.readSync: the EAGAIN at the end would cost a thrown Error each program. */
export function kmsgWarnings(c: Ctx): string[] {
  if (c.kmsgFd === null) return [];
  const out: string[] = [];
  const buf = c.kmsgBuf;
  for (let i = 0; i < 10000; i++) {
    const n = c.l.read(c.kmsgFd, buf, buf.length);
    if (n < 0) {
      if (c.l.errno() === 32) continue; // EPIPE: records were overwritten; the next read goes on
      break; // EAGAIN: nothing more
    }
    if (n === 0) break;
    const rec = buf.subarray(0, n).toString("utf8");
    const semi = rec.indexOf(";");
    const msg = (semi >= 0 ? rec.slice(semi + 1) : rec).split("\n")[0];
    if (!KERNEL_WARNING.test(msg)) continue;
    const pid = /PID: (\d+)/.exec(msg);
    if (pid && Number(pid[1]) !== c.pid) continue;
    out.push(msg.trim());
  }
  return out;
}
