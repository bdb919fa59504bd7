/**
 * The generator's contract: every program it makes, and every program shrinking can
 * reach from one, is valid (schema + handle discipline); the same seed gives the same
 * programs; and the biases actually produce the shapes the fuzzer needs.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { decode, genesAt, genesArb, programArb, type GenOptions } from "../../fuzz/generate.ts";
import { renumber } from "../../fuzz/shrink.ts";
import { Program, programProblems, type Config } from "../../spec/program.ts";

const config: Config = { pageSize: 4096, cpus: 2, mlockKb: 516, memlockPages: 16, capIpcLock: false, paranoid: 2, pmus: { aux: "model_aux" } };
const gen: GenOptions = { config, maxOps: 20 };

describe("generate", () => {
  // fast-check directly: @fast-check/vitest imports the deprecated "vitest/suite" (a warning per run).
  it("programs are valid", () => {
    fc.assert(fc.property(programArb(gen), (p) => {
      expect(programProblems(p)).toEqual([]);
      expect(Program.safeParse(p).success).toBe(true);
    }), { numRuns: 500 });
  });

  it("any sub-list of genes decodes to a valid program (what shrinking relies on)", () => {
    fc.assert(fc.property(genesArb(gen), fc.array(fc.nat(), { maxLength: 5 }), (genes, drops) => {
      let g = genes.slice();
      for (const d of drops) if (g.length > 1) g.splice(d % g.length, 1);
      const p = decode(g, gen);
      expect(programProblems(p)).toEqual([]);
      expect(programProblems(renumber(p))).toEqual([]);
    }), { numRuns: 300 });
  });

  it("unsupported op kinds are never generated", () => {
    const unsupported = new Set(["sysctlMlock", "auxFault", "mremap"]);
    for (let i = 0; i < 2000; i++) {
      const p = decode(genesAt(3, i, { ...gen, unsupported }), { ...gen, unsupported });
      for (const op of p) expect(unsupported.has(op.op)).toBe(false);
    }
  });

  it("the same seed gives the same programs, another seed others", () => {
    const a = Array.from({ length: 50 }, (_, i) => JSON.stringify(decode(genesAt(42, i, gen), gen)));
    const b = Array.from({ length: 50 }, (_, i) => JSON.stringify(decode(genesAt(42, i, gen), gen)));
    const c = Array.from({ length: 50 }, (_, i) => JSON.stringify(decode(genesAt(43, i, gen), gen)));
    expect(a).toEqual(b);
    expect(a.filter((x, i) => x === c[i]).length).toBeLessThan(5);
  });

  it("biases reach the shapes that matter", () => {
    let auxMatch = 0, auxMismatch = 0, partialUnmap = 0, sameEvTwice = 0, setOutput = 0, pow2Data = 0, closeWhileMapped = 0;
    for (let i = 0; i < 3000; i++) {
      const p = decode(genesAt(9, i, gen), gen);
      const auxVals = new Map<string, { off: number; size: number }>();
      const mapsOf = new Map<string, number>();
      const mapEv = new Map<string, string>();
      for (const op of p) {
        if (op.op === "setAux") auxVals.set(mapEv.get(op.map) ?? "", { off: op.offsetPages, size: op.sizePages });
        if (op.op === "mmap") {
          mapEv.set(op.map, op.ev);
          mapsOf.set(op.ev, (mapsOf.get(op.ev) ?? 0) + 1);
          if (mapsOf.get(op.ev) === 2) sameEvTwice++;
          if (op.pgoff === 0 && op.pages > 2 && ((op.pages - 1) & (op.pages - 2)) === 0) pow2Data++;
          const want = auxVals.get(op.ev);
          if (op.pgoff > 0 && want) (want.off === op.pgoff && want.size === op.pages ? auxMatch++ : auxMismatch++);
        }
        if (op.op === "munmap" && op.pages !== undefined) partialUnmap++;
        if (op.op === "setOutput") setOutput++;
        if (op.op === "close" && [...mapEv.values()].includes(op.ev)) closeWhileMapped++;
      }
    }
    for (const [name, n] of Object.entries({ auxMatch, auxMismatch, partialUnmap, sameEvTwice, setOutput, pow2Data, closeWhileMapped })) {
      expect(n, name).toBeGreaterThan(30);
    }
  });
});
