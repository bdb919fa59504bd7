/** npm run litmus: write cases/spec/*.json from spec/litmus/cases.ts (and remove stale ones). */
import { mkdirSync, readdirSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { LITMUS, LITMUS_DIR, litmusFiles } from "./cases.ts";

const dir = join(import.meta.dirname, "../..", LITMUS_DIR);
const files = litmusFiles();
mkdirSync(dir, { recursive: true });
for (const f of readdirSync(dir)) if (f.endsWith(".json") && !files.has(f)) unlinkSync(join(dir, f));
for (const [f, text] of files) writeFileSync(join(dir, f), text);
console.log(`${files.size} cases, ${LITMUS.length} litmus tests`);
