/**
 * Writes the C reproducer of every known kernel bug: cases/known/NAME.c from cases/known/NAME.json
 * (fuzz/repro-c.ts reproC, under the case's profile). test/fuzz/repro-c.test.ts checks that every
 * case there has its reproducer and that each is byte for byte what this writes.
 *
 *   npx tsx scripts/known-repros.ts
 */
import { readdirSync, renameSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { loadCase } from "../fuzz/cases.ts";
import { reproC } from "../fuzz/repro-c.ts";

const KNOWN = resolve(import.meta.dirname, "..", "cases", "known");
for (const f of readdirSync(KNOWN).filter((n) => n.endsWith(".json")).sort()) {
  const out = join(KNOWN, f.replace(/\.json$/, ".c"));
  writeFileSync(`${out}.tmp`, reproC(loadCase(join(KNOWN, f))));
  renameSync(`${out}.tmp`, out);
  console.log(`wrote ${out}`);
}
