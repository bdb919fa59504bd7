/**
 * Regenerates the README figures the tool prints, between markers:
 *   <!-- figures:seed-example --> ... <!-- /figures:seed-example -->   the seed-profile example run
 *   <!-- figures:bug-table --> ... <!-- /figures:bug-table -->         the --bug table
 *
 *   tsx scripts/readme-figures.ts [--check]
 *
 * Each figure comes from running the CLI as a user would (`npm run fuzz -- ...`); --check
 * exits 1 when the README differs from what the tool prints now (timings aside).
 */
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { BUGS } from "../reference/index.ts";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const README = join(ROOT, "README.md");
const out = mkdtempSync(join(tmpdir(), "auxspec-figures-"));
const fuzz = (args: string[]) => spawnSync(process.execPath, ["--import", "tsx", join(ROOT, "cli/main.ts"), "fuzz", ...args, "--out", out], { cwd: ROOT, encoding: "utf8", timeout: 300_000 });

function seedExample(): string {
  const args = ["--backend", "model", "--profile", "seed", "--runs", "2000", "--seed", "1"];
  const r = fuzz(args);
  const keep = r.stderr.split("\n").filter((l) => /^(DIVERGENCE|known divergence|flaky)|^ {2}shrunk|^\d+ programs, |^\d+ divergent programs/.test(l))
    .map((l) => l.replace(/ in [\d.]+ s \(\d+ programs\/s\)/, " in (time) s"));
  return ["  ```", `  $ npm run fuzz -- ${args.join(" ")}`, ...keep.map((l) => `  ${l}`), `  $ echo $?`, `  ${r.status}`, "  ```"].join("\n");
}

/** Why a bug no program can show (reference/bugs.ts observable: false), in a table cell. */
const UNOBSERVABLE: Record<string, string> = {
  "aux-refcount-leak": "not observable: only the abstract state shows it (the refinement test catches it)",
  "vmalloc-data-page-nr": "not observable on x86 (needs CONFIG_PERF_USE_VMALLOC)",
  "race-map-range-aux": "not expressible: the AUX mapping's own reference keeps the area alive under map_range()",
};

function bugTable(): string {
  const rows = ["| bug | fix | found after (programs, seed 1) | shrunk |", "|---|---|---|---|"];
  for (const b of BUGS) {
    const fix = `${b.fix.commit.slice(0, 12)} "${b.fix.subject}"${b.cve ? ` (${b.cve})` : ""}`;
    if (!b.observable) { rows.push(`| \`${b.id}\` | ${fix} | ${UNOBSERVABLE[b.id] ?? "not observable"} | |`); continue; }
    // the races on 6.1, where each is expressible (random par programs through the explorer; the
    // map_range() race on 6.18, the first era with map_range(), through the mapRangeFault switch);
    // their first finding may be one of the clean races the explorer predicts (README: Limits)
    const race = b.parOnly === true;
    const raceProfile = b.profiles.includes("6.1") ? "6.1" : b.profiles[0];
    const r = fuzz(["--bug", b.id, "--runs", "5000", "--seed", "1", "--json", ...(race ? ["--profile", raceProfile] : [])]);
    const j = JSON.parse(r.stdout);
    const first = [...j.divergences].sort((x: { index: number }, y: { index: number }) => x.index - y.index)[0];
    rows.push(first
      ? `| \`${b.id}\` | ${fix} | ${(first.index + 1).toLocaleString("en-US")}${race ? ` (${raceProfile}, explorer)` : ""} | ${first.shrunk.length} ops |`
      : `| \`${b.id}\` | ${fix} | none in 5,000${race ? ` (${raceProfile})` : ""} | |`);
  }
  return rows.join("\n");
}

function replaceBlock(text: string, name: string, body: string): string {
  const re = new RegExp(`(<!-- figures:${name} -->\\n)[\\s\\S]*?(\\n\\s*<!-- /figures:${name} -->)`);
  if (!re.test(text)) throw new Error(`README.md has no <!-- figures:${name} --> block`);
  return text.replace(re, (_m, a: string, b: string) => `${a}${body}${b}`);
}

try {
  const before = readFileSync(README, "utf8");
  let text = replaceBlock(before, "seed-example", seedExample());
  text = replaceBlock(text, "bug-table", bugTable());
  if (process.argv.includes("--check")) {
    if (text !== before) { console.error("README figures differ from what the tool prints: run tsx scripts/readme-figures.ts"); process.exitCode = 1; }
  } else {
    writeFileSync(README, text);
    console.error(text === before ? "README figures unchanged" : "README figures rewritten");
  }
} finally {
  rmSync(out, { recursive: true, force: true });
}
