/** VM rows of `npm run bench`: cold and warm start, programs per second inside a guest. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { provisionKernel, vmBackend } from "../hwtest/vm/backend.ts";
import { qemuBinary } from "../hwtest/vm/qemu.ts";
import { decode, genesAt } from "../fuzz/generate.ts";

export interface Row { what: string; value: number; unit: string; target?: string; note?: string }

export async function vmRows(quick: boolean): Promise<Row[]> {
  if (!qemuBinary()) return [{ what: "vm: skipped", value: 0, unit: "", note: "qemu-system-x86_64 not installed (npm run setup)" }];
  const rows: Row[] = [];
  const kernel = "6.12";
  if (!quick) {
    // Cold: an empty cache (apt-get download, extract, module build).
    const cache = mkdtempSync(join(tmpdir(), "auxspec-vmcache-"));
    const saved = process.env.AUXSPEC_VM_CACHE;
    process.env.AUXSPEC_VM_CACHE = cache;
    try {
      const t = performance.now();
      const p = await provisionKernel(kernel);
      rows.push({ what: `vm:${kernel} cold provisioning (download, extract, build)`, value: (performance.now() - t) / 1000, unit: "s", note: p.release });
    } finally {
      if (saved === undefined) delete process.env.AUXSPEC_VM_CACHE; else process.env.AUXSPEC_VM_CACHE = saved;
      rmSync(cache, { recursive: true, force: true });
    }
  }
  let t = performance.now();
  await provisionKernel(kernel);
  rows.push({ what: `vm:${kernel} warm provisioning (cache hit)`, value: (performance.now() - t) / 1000, unit: "s" });
  t = performance.now();
  const b = await vmBackend(kernel);
  rows.push({ what: `vm:${kernel} boot to a ready guest`, value: (performance.now() - t) / 1000, unit: "s", note: b.info.kernel ?? "" });
  try {
    const gen = { config: b.info.config, maxOps: 20, unsupported: b.info.unsupported };
    const programs = Array.from({ length: quick ? 40 : 150 }, (_, i) => decode(genesAt(3, i, gen), gen));
    await b.run(programs.slice(0, 8)); // the guest agent's first programs pay its start-up
    t = performance.now();
    const traces = await b.run(programs);
    const s = (performance.now() - t) / 1000;
    const ops = programs.reduce((n, p) => n + p.length, 0);
    rows.push({ what: `vm:${kernel} programs inside the guest (TCG)`, value: programs.length / s, unit: "programs/s", note: `${(ops / programs.length).toFixed(1)} ops avg, ${traces.filter((x) => x.aborted).length} aborted` });
  } finally {
    await b.close();
  }
  return rows;
}
