/**
 * The layers import one way only (static and dynamic imports alike):
 *
 *   spec  <-  reference  <-  backend  <-  fuzz, hwtest  <-  matrix  <-  cli
 *                                        fuzz  <-  export (kselftest export; above fuzz, like matrix)
 *   spec  <-  runtime (the C op layer)  <-  fuzz, hwtest
 *
 * fuzz/ and hwtest/ never import each other: they meet only in backend/contract.ts, and the
 * CLI (cli/) is the composition root that picks backends.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");

const ALLOWED: Record<string, readonly string[]> = {
  spec: ["spec"],
  reference: ["spec", "reference"],
  runtime: ["spec", "runtime"],
  backend: ["spec", "reference", "backend"],
  fuzz: ["spec", "reference", "backend", "runtime", "fuzz"],
  hwtest: ["spec", "backend", "runtime", "hwtest"],
  matrix: ["spec", "backend", "fuzz", "hwtest", "matrix"],
  export: ["spec", "reference", "backend", "runtime", "fuzz", "export"],
  cli: ["spec", "reference", "backend", "runtime", "fuzz", "hwtest", "matrix", "cli"],
};

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (name === "node_modules" || name.startsWith(".")) continue;
    if (statSync(p).isDirectory()) out.push(...sources(p));
    else if (/\.(ts|mjs|js)$/.test(name)) out.push(p);
  }
  return out;
}

/** Every relative import specifier of a file: `from "..."`, `import "..."`, `import("...")`. */
export function importsOf(text: string): string[] {
  const specs: string[] = [];
  for (const m of text.matchAll(/(?:\bfrom\s+|\bimport\s*\(\s*|\bimport\s+)["'](\.{1,2}\/[^"']+)["']/g)) specs.push(m[1]);
  return specs;
}

describe("layers", () => {
  it("finds imports of every form", () => {
    expect(importsOf(`import a from "../x/a.ts";\nconst b = await import("../y/b.ts");\nimport "./c.ts";\nexport { d } from "../z/d.ts";`))
      .toEqual(["../x/a.ts", "../y/b.ts", "./c.ts", "../z/d.ts"]);
  });

  for (const [layer, allowed] of Object.entries(ALLOWED)) {
    it(`${layer}/ imports only ${allowed.join(", ")}`, () => {
      let files: string[];
      try { files = sources(join(ROOT, layer)); } catch { files = []; }
      const bad: string[] = [];
      for (const f of files) {
        for (const spec of importsOf(readFileSync(f, "utf8"))) {
          const target = relative(ROOT, resolve(dirname(f), spec));
          const top = target.split(sep)[0];
          if (!allowed.includes(top)) bad.push(`${relative(ROOT, f)} imports ${spec}`);
        }
      }
      expect(bad).toEqual([]);
    });
  }
});
