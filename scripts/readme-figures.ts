/**
 * Regenerates the README figures the tool prints, between markers:
 *   <!-- figures:seed-example --> ... <!-- /figures:seed-example -->   the seed-profile example run
 *   <!-- figures:bug-table --> ... <!-- /figures:bug-table -->         the --bug table
 *   <!-- figures:race-times --> ... <!-- /figures:race-times -->       seconds to find each race, 5 seeds
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
import { modelBackend } from "../backend/model.ts";
import { runAndCheck } from "../fuzz/campaign.ts";
import type { Program } from "../spec/program.ts";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const README = join(ROOT, "README.md");
const out = mkdtempSync(join(tmpdir(), "auxspec-figures-"));
const fuzz = (args: string[]): { stdout: string; stderr: string; status: number | null } => spawnSync(process.execPath, ["--import", "tsx", join(ROOT, "cli/main.ts"), "fuzz", ...args, "--out", out], { cwd: ROOT, encoding: "utf8", timeout: 300_000 });

function seedExample(): string {
  const args = ["--backend", "model", "--profile", "seed", "--runs", "2000", "--seed", "1"];
  const r = fuzz(args);
  const keep = r.stderr.split("\n").filter((l) => /^(DIVERGENCE|known divergence|flaky)|^ {2}shrunk|^\d+ programs, |^\d+ divergent programs/.test(l))
    .map((l) => l.replace(/ in [\d.]+ s \(\d+ programs\/s\)/, " in (time) s").replace(/ at [\d.]+ s$/, " at (time) s"));
  return ["  ```", `  $ npm run fuzz -- ${args.join(" ")}`, ...keep.map((l) => `  ${l}`), `  $ echo $?`, `  ${r.status}`, "  ```"].join("\n");
}

/** Why a bug no program can show (reference/bugs.ts observable: false), in a table cell. */
const UNOBSERVABLE: Record<string, string> = {
  "aux-refcount-leak": "not observable: only the abstract state shows it (the refinement test catches it)",
  "vmalloc-data-page-nr": "not observable on x86 (needs CONFIG_PERF_USE_VMALLOC)",
  "race-map-range-aux": "not expressible: the AUX mapping's own reference keeps the area alive under map_range()",
};

/** The profile a race is searched on: 6.1 where the bug applies there, else its first era
 *  (race-mmap-unlocked-map-range: 6.18, the first profile with map_range()). */
const raceProfile = (b: (typeof BUGS)[number]) => (b.profiles.includes("6.1") ? "6.1" : b.profiles[0]);

interface RaceRun { seconds: number | null; index: number | null; ops: number | null; cleanToo: boolean }
const raceRuns = new Map<string, RaceRun[]>();

/**
 * `npm run fuzz -- --backend model --profile P --bug ID --seed S --time 60 --first` for seeds
 * 1-5: the seconds into the run at which the first unexplained divergence was seen, and whether
 * its shrunk program also diverges (same signature) on the clean model, which would make it not
 * the bug's own (then it counts as not found).
 */
async function raceRunsOf(b: (typeof BUGS)[number]): Promise<RaceRun[]> {
  const have = raceRuns.get(b.id);
  if (have) return have;
  const profile = raceProfile(b);
  const clean = modelBackend(profile);
  const runs: RaceRun[] = [];
  for (const seed of [1, 2, 3, 4, 5]) {
    const r = fuzz(["--backend", "model", "--profile", profile, "--bug", b.id, "--seed", String(seed), "--time", "60", "--first", "--json"]);
    const j = JSON.parse(r.stdout) as { divergences: Array<{ known: string | null; index: number; atSeconds: number; shrunk: Program; kind: string; rule: string; opIndex: number }> };
    const d = j.divergences.filter((x) => x.known === null).sort((x, y) => x.index - y.index)[0];
    if (!d) { runs.push({ seconds: null, index: null, ops: null, cleanToo: false }); continue; }
    const again = await runAndCheck(clean, d.shrunk, profile, clean.info.config);
    const cleanToo = again.divergence !== null && again.divergence.kind === d.kind && again.divergence.rule === d.rule;
    runs.push({ seconds: d.atSeconds, index: d.index, ops: d.shrunk.length, cleanToo });
  }
  raceRuns.set(b.id, runs);
  return runs;
}

const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };

async function raceTable(): Promise<string> {
  const rows = ["| race | profile | seconds to the first finding, seeds 1-5 (`--time 60 --first`) | median | shrunk (ops) |", "|---|---|---|---|---|"];
  for (const b of BUGS.filter((x) => x.observable && x.parOnly)) {
    const runs = await raceRunsOf(b);
    const own = runs.map((r) => (r.seconds !== null && !r.cleanToo ? r.seconds : null));
    const cells = own.map((t, k) => (t === null ? (runs[k].cleanToo ? "clean too" : "none") : (Math.round(t * 100) / 100).toFixed(2)));
    const found = own.filter((t): t is number => t !== null);
    // a seed that found nothing counts as 60 s (or more) for the median
    const med = found.length ? median(own.map((t) => t ?? Infinity)) : Infinity;
    const ops = runs.filter((r) => r.ops !== null && !r.cleanToo).map((r) => r.ops!);
    rows.push(`| \`${b.id}\` | ${raceProfile(b)} | ${cells.join(", ")} | ${Number.isFinite(med) ? `${(Math.round(med * 100) / 100).toFixed(2)} s` : "over 60 s"} | ${ops.length ? (Math.min(...ops) === Math.max(...ops) ? `${ops[0]}` : `${Math.min(...ops)}-${Math.max(...ops)}`) : ""} |`);
  }
  return rows.join("\n");
}

async function bugTable(): Promise<string> {
  const rows = ["| bug | fix | found after (programs, seed 1) | shrunk |", "|---|---|---|---|"];
  for (const b of BUGS) {
    const fix = `${b.fix.commit.slice(0, 12)} "${b.fix.subject}"${b.cve ? ` (${b.cve})` : ""}`;
    if (!b.observable) { rows.push(`| \`${b.id}\` | ${fix} | ${UNOBSERVABLE[b.id] ?? "not observable"} | |`); continue; }
    if (b.parOnly === true) {
      // the races: random par programs through the explorer (seed 1 of the race table's runs)
      const r = (await raceRunsOf(b))[0];
      rows.push(r.index !== null && !r.cleanToo
        ? `| \`${b.id}\` | ${fix} | ${(r.index + 1).toLocaleString("en-US")} (${raceProfile(b)}, explorer) | ${r.ops} ops |`
        : `| \`${b.id}\` | ${fix} | none in 60 s (${raceProfile(b)}) | |`);
      continue;
    }
    const r = fuzz(["--bug", b.id, "--runs", "5000", "--seed", "1", "--json"]);
    const j = JSON.parse(r.stdout);
    const first = [...j.divergences].sort((x: { index: number }, y: { index: number }) => x.index - y.index)[0];
    rows.push(first
      ? `| \`${b.id}\` | ${fix} | ${(first.index + 1).toLocaleString("en-US")} | ${first.shrunk.length} ops |`
      : `| \`${b.id}\` | ${fix} | none in 5,000 | |`);
  }
  return rows.join("\n");
}

function replaceBlock(text: string, name: string, body: string): string {
  // an empty block has its two markers on consecutive lines
  const re = new RegExp(`(<!-- figures:${name} -->\\n)([\\s\\S]*?\\n)?(\\s*<!-- /figures:${name} -->)`);
  if (!re.test(text)) throw new Error(`README.md has no <!-- figures:${name} --> block`);
  return text.replace(re, (_m, a: string, _old: string | undefined, b: string) => `${a}${body}\n${b}`);
}

try {
  const before = readFileSync(README, "utf8");
  let text = replaceBlock(before, "seed-example", seedExample());
  text = replaceBlock(text, "bug-table", await bugTable());
  text = replaceBlock(text, "race-times", await raceTable());
  if (process.argv.includes("--check")) {
    // the race table is seconds: timings aside, only whether each race was found is compared
    const found = (t: string) => (/<!-- figures:race-times -->[\s\S]*?<!-- \/figures:race-times -->/.exec(t)?.[0] ?? "").replace(/\d+\.\d+( s)?/g, "T");
    if (found(text) === found(before)) text = replaceBlock(text, "race-times", (/<!-- figures:race-times -->\n([\s\S]*?)\n\s*<!-- \/figures:race-times -->/.exec(before)?.[1]) ?? "");
    if (text !== before) { console.error("README figures differ from what the tool prints: run tsx scripts/readme-figures.ts"); process.exitCode = 1; }
  } else {
    writeFileSync(README, text);
    console.error(text === before ? "README figures unchanged" : "README figures rewritten");
  }
} finally {
  rmSync(out, { recursive: true, force: true });
}
