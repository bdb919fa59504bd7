/**
 * Soak test of the host backend (not part of npm test):
 *
 *   tsx scripts/soak.ts [--minutes N] [--kill-every S] [--phases root,user] [--out DIR]
 *
 * Runs `fuzz --backend host` for N minutes as root and N minutes as uid 65534 (setpriv), killing
 * a random host agent with SIGKILL every S seconds (jittered). Then it checks:
 *   - false divergences: unexplained divergences reported (none expected on this kernel), and
 *     every written case replayed in a fresh process must give the verdict the run reported;
 *   - lost cases: every case the run lists exists and parses;
 *   - kills reported as aborted: each kill that hit a program shows as a retry (and only a
 *     program that died twice is counted aborted), never as a divergence.
 * Prints one line per phase and a JSON summary; exit 1 when a check fails.
 */
import { spawn, spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const { values: v } = parseArgs({
  options: {
    minutes: { type: "string", default: "2" }, "kill-every": { type: "string", default: "4" },
    phases: { type: "string", default: "root,user" }, out: { type: "string" },
  },
});
const minutes = Number(v.minutes);
const killEvery = Number(v["kill-every"]);
const base = v.out ? resolve(v.out) : mkdtempSync(join(tmpdir(), "auxspec-soak-"));
mkdirSync(base, { recursive: true });
chmodSync(base, 0o777);
const DROP = ["--reuid=65534", "--regid=65534", "--clear-groups"];

function agentsOf(root: number): number[] {
  const kids = new Map<number, number[]>();
  const cmd = new Map<number, string>();
  for (const n of readdirSync("/proc")) {
    if (!/^\d+$/.test(n)) continue;
    try {
      const s = readFileSync(`/proc/${n}/stat`, "utf8");
      const ppid = Number(s.slice(s.lastIndexOf(")") + 2).split(" ")[1]);
      if (!kids.has(ppid)) kids.set(ppid, []);
      kids.get(ppid)!.push(Number(n));
      cmd.set(Number(n), readFileSync(`/proc/${n}/cmdline`, "utf8"));
    } catch { /* gone */ }
  }
  const out: number[] = [];
  const stack = [root];
  while (stack.length) for (const k of kids.get(stack.pop()!) ?? []) { if (cmd.get(k)?.includes("agent.ts")) out.push(k); stack.push(k); }
  return out;
}

interface Phase {
  phase: string; exit: number | null; programs: number; divergences: number; known: number; flaky: number;
  aborted: number; retried: number; kills: number; casesListed: number; casesMissing: string[]; replayMismatch: string[];
  falseDivergences: number;
}

async function phase(name: "root" | "user"): Promise<Phase> {
  const out = join(base, name);
  const prefix = name === "user" ? ["setpriv", ...DROP, "env", `HOME=${base}`] : [];
  const cmd = [...prefix, process.execPath, "--import", "tsx", join(ROOT, "cli/main.ts"), "fuzz", "--backend", "host", "--time", String(minutes * 60), "--out", out, "--json"];
  const child = spawn(cmd[0], cmd.slice(1), { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "", stderr = "";
  child.stdout!.on("data", (d) => { stdout += d; });
  child.stderr!.on("data", (d) => { stderr += d; });
  let kills = 0;
  const timer = setInterval(() => {
    if (Math.random() > 0.75) return; // jitter: on average every killEvery * 4/3 s
    const agents = agentsOf(child.pid!);
    if (!agents.length) return;
    try { process.kill(agents[Math.floor(Math.random() * agents.length)], "SIGKILL"); kills++; } catch { /* gone */ }
  }, killEvery * 1000);
  const exit = await new Promise<number | null>((res) => child.on("exit", (c) => res(c)));
  clearInterval(timer);
  let j: Record<string, any>;
  try { j = JSON.parse(stdout); } catch { throw new Error(`${name}: no JSON report (exit ${exit}):\n${stderr.slice(-3000)}`); }
  const listed: string[] = j.casesWritten ?? [];
  const missing = listed.filter((p) => { try { JSON.parse(readFileSync(resolve(ROOT, p), "utf8")); return false; } catch { return true; } });
  // Every reported (non-flaky) case, replayed in a fresh process as the same user, must give the
  // verdict the run reported: known stays known, and nothing diverges that a fresh run would not show.
  const mismatch: string[] = [];
  for (const d of [...j.divergences, ...j.known]) {
    const r = spawnSync(prefix[0] ?? process.execPath, [...prefix.slice(1), ...(prefix.length ? [process.execPath] : []), "--import", "tsx", join(ROOT, "cli/main.ts"), "replay", resolve(ROOT, d.case), "--backend", "host", "--json"], { cwd: ROOT, encoding: "utf8", timeout: 120_000 });
    let status = "?";
    try { status = JSON.parse(r.stdout).results[0].status; } catch { status = `unparsable (exit ${r.status})`; }
    const want = d.known ? "known" : "divergence";
    if (status !== want) mismatch.push(`${d.case}: run said ${want}, fresh replay says ${status}`);
  }
  return {
    phase: name, exit, programs: j.programs, divergences: j.divergences.length, known: j.known.length, flaky: j.flaky.length,
    aborted: j.aborted, retried: j.retried, kills, casesListed: listed.length, casesMissing: missing, replayMismatch: mismatch,
    falseDivergences: j.divergences.length + mismatch.filter((m) => m.includes("run said divergence")).length,
  };
}

const results: Phase[] = [];
for (const p of v.phases!.split(",") as Array<"root" | "user">) {
  process.stderr.write(`soak: ${p} for ${minutes} min, killing an agent every ~${killEvery} s ...\n`);
  const r = await phase(p);
  results.push(r);
  process.stderr.write(`soak ${p}: exit ${r.exit}; ${r.programs} programs; ${r.kills} agents killed -> ${r.retried} programs retried, ${r.aborted} aborted; ` +
    `${r.divergences} unexplained divergences, ${r.known} known, ${r.flaky} flaky; ${r.casesListed} cases listed, ${r.casesMissing.length} missing; ${r.replayMismatch.length} replay mismatches\n`);
  for (const m of [...r.casesMissing, ...r.replayMismatch]) process.stderr.write(`  ${m}\n`);
}
console.log(JSON.stringify({ minutes, killEvery, out: base, results }, null, 2));
const bad = results.some((r) => r.falseDivergences > 0 || r.casesMissing.length > 0 || r.replayMismatch.length > 0 || (r.exit !== 0 && r.exit !== 3) || (r.kills > 0 && r.retried === 0));
process.exitCode = bad ? 1 : 0;
