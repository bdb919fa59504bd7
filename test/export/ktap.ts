/** Parsing the selftests runner's KTAP (kselftest/runner.sh, or the standalone Makefile's runner). */
export type KtapResult = "pass" | "xfail" | "fail" | "skip";

export interface ProgramResult { program: string; result: KtapResult; lines: string[] }

/**
 * Top-level "ok N selftests: DIR: NAME [# SKIP]" / "not ok N ..." lines, with each program's
 * own (prefixed "# ") output before it. A program that passed with an XFAIL line (a known
 * divergence) is "xfail".
 */
export function parseRunner(out: string): ProgramResult[] {
  const results: ProgramResult[] = [];
  let block: string[] = [];
  for (const line of out.split("\n")) {
    const m = /^(not )?ok \d+ selftests: \S+: (\S+)(.*)$/.exec(line);
    if (!m) { block.push(line); continue; }
    const skip = /#\s*SKIP/i.test(m[3]);
    const xfail = block.some((l) => /^# ok \d+ # XFAIL/.test(l));
    results.push({ program: m[2], result: m[1] ? "fail" : skip ? "skip" : xfail ? "xfail" : "pass", lines: block });
    block = [];
  }
  return results;
}
