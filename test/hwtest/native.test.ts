/**
 * The C pieces: perf_event_attr bytes against the C header, and the C twin executor
 * (native/exec.c) against the koffi executor on the same programs: same outcomes, same
 * VmPin, same audit.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { Op, Program } from "../../spec/program.ts";
import { runProgramHere } from "../../hwtest/host/executor.ts";
import { writeAttr } from "../../hwtest/host/perf.ts";
import { runCBatch, serialiseBatch } from "../../hwtest/host/native/cexec.ts";
import { liveFacts, say, skipRoot } from "./live.ts";

function hasGcc(): boolean {
  try { execFileSync("gcc", ["--version"], { stdio: "ignore" }); return true; } catch { return false; }
}
const gcc = hasGcc();
say(gcc ? null : "gcc is not installed", "attr layout check");
say(skipRoot, "C vs koffi executor");

describe.skipIf(!gcc)("perf_event_attr bytes", () => {
  it("match the C header's bitfields and offsets (disabled, inherit, exclude_kernel; size 136)", () => {
    const dir = mkdtempSync(join(tmpdir(), "auxspec-attr-"));
    try {
      writeFileSync(join(dir, "a.c"), `
#include <stdio.h>
#include <string.h>
#include <linux/perf_event.h>
int main(void) {
  struct perf_event_attr a; unsigned char *p = (unsigned char *)&a;
  memset(&a, 0, sizeof a);
  a.type = 0x12345678; a.config = 0x1122334455667788ULL; a.disabled = 1; a.inherit = 1; a.exclude_kernel = 1;
  for (unsigned i = 0; i < 64; i++) printf("%02x", p[i]);
  printf("\\n");
  return 0;
}`);
      execFileSync("gcc", ["-o", join(dir, "a"), join(dir, "a.c")]);
      const c = execFileSync(join(dir, "a")).toString().trim();
      const ours = writeAttr(Buffer.alloc(136), { type: 0x12345678, config: 0x1122334455667788n, inherit: true, excludeKernel: true });
      // bytes 4..7 are attr.size: the C program leaves them 0, ours says PERF_ATTR_SIZE_VER8
      expect(ours.readUInt32LE(4)).toBe(136);
      ours.writeUInt32LE(0, 4);
      expect(ours.subarray(0, 64).toString("hex")).toBe(c);
      expect(ours.subarray(64).every((b) => b === 0)).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

const mm = (map: string, ev: string, pages: number, extra: Partial<Extract<Op, { op: "mmap" }>> = {}): Op =>
  ({ op: "mmap", map, ev, pages, pgoff: 0, prot: "rw", shared: true, ...extra });
const open = (ev: string, extra: Partial<Extract<Op, { op: "open" }>> = {}): Op => ({ op: "open", ev, pmu: "sw", ...extra });

const CROSS_PROGRAMS: Program[] = [
  [open("e0"), mm("m0", "e0", 9), { op: "readUserPage", map: "m0" }, mm("m1", "e0", 5), { op: "touch", map: "m0", page: 1, write: true }, { op: "touch", map: "m0", page: 0, write: true }],
  [open("e0"), mm("m0", "e0", 3), { op: "setAux", map: "m0", offsetPages: 4, sizePages: 4 }, mm("m1", "e0", 4, { pgoff: 4 }), { op: "readUserPage", map: "m0" }, { op: "close", ev: "e0" }, mm("m2", "e0", 3)],
  [open("e0"), open("e1", { outputTo: "e0" }), open("e2", { cpu: 0 }), mm("m0", "e0", 3), { op: "setOutput", ev: "e1", target: null }, { op: "setOutput", ev: "e1", target: "e0" }, mm("m1", "e1", 3), { op: "setOutput", ev: "e2", target: "e0" }],
  [open("e0"), mm("m0", "e0", 3), { op: "munmap", map: "m0", offset: 1, pages: 1 }, { op: "mprotect", map: "m0", prot: "r" }, { op: "touch", map: "m0", page: 0, write: true }, { op: "mremap", map: "m0", oldPages: 3, newPages: 3, toFresh: true }, { op: "touch", map: "m0", page: 0, write: false }, { op: "mapFixedAnon", map: "m0", offset: 0, pages: 3 }, { op: "touch", map: "m0", page: 2, write: true }],
  [{ op: "rlimit", memlockPages: 1 }, open("e0"), mm("m0", "e0", 257), open("e1"), mm("m1", "e1", 3), mm("m2", "e1", 2), { op: "munmap", map: "m0" }],
  [open("e0"), { op: "close", ev: "e0" }, { op: "close", ev: "e0" }, open("e1"), { op: "setOutput", ev: "e1", target: "e0" }],
  [open("e0"), mm("m3", "e0", 2), mm("m7", "e0", 2), { op: "munmap", map: "m3" }],
  // `shared` left out (it defaults to true), as the generator writes it
  [open("e0"), { op: "mmap", map: "m0", ev: "e0", pages: 3, pgoff: 0, prot: "rw" }, { op: "touch", map: "m0", page: 1, write: true }, { op: "readUserPage", map: "m0" }],
];

describe.skipIf(skipRoot !== null || !gcc)("C twin executor", () => {
  it("serialises a batch in its line format", () => {
    const text = serialiseBatch([[open("e0"), mm("m2", "e0", 3), { op: "setOutput", ev: "e0", target: null }]], liveFacts!.config, [7]);
    expect(text).toBe(`B 1\nP 3 ${liveFacts!.config.memlockPages === "unlimited" ? -1 : liveFacts!.config.memlockPages} 0 7\nH 1 1 2\no 0 0 -1 0 -1\nm 2 0 3 0 3 1\ns 0 -2\n`);
  });

  it("gives the same traces as the koffi executor", () => {
    const f = liveFacts!;
    const config = { ...f.config, memlockPages: 0 };
    for (const touchMode of ["child", "inproc"] as const) {
      const c = runCBatch(CROSS_PROGRAMS, config, f, { touchMode });
      expect(c.seconds).toBeGreaterThan(0);
      CROSS_PROGRAMS.forEach((p, i) => {
        const k = runProgramHere(p, config, f, { touchMode });
        expect(c.traces[i].aborted, `program ${i}`).toBeUndefined();
        expect(c.traces[i].steps, `program ${i} (${touchMode})`).toEqual(k.steps);
        expect(c.traces[i].audit, `program ${i} audit`).toEqual(k.audit);
      });
    }
  });
});
