/**
 * What a matrix run says about the known divergences (cases/known-divergences.json): for each
 * known divergence and each kernel that ran, "seen" when a program matched it there, "absent"
 * when a program exercising its mechanism (one of its `requires` rules fired) ran there without
 * diverging under its kind and rule, else "not checked". recordKnown merges that into the
 * list's kernelsSeen/kernelsAbsent, keeping the file's order and formatting (new kernels are
 * appended; a kernel now seen leaves kernelsAbsent).
 */
import { readFileSync, writeFileSync } from "node:fs";
import { checkTrace } from "../spec/index.ts";
import type { KnownDivergence } from "../fuzz/known.ts";
import type { Column, MatrixResult } from "./run.ts";

export type TimelineMark = "seen" | "absent" | "unchecked";

/** The label a kernel has in kernelsSeen/kernelsAbsent: "7.3.4+deb13-amd64 (vm)", "6.18.44 (host)". */
export function kernelLabel(c: Column): string {
  return `${c.kernel} (${c.name === "host" ? "host" : "vm"})`;
}

/** Numbers of a release, in order, for sorting kernels ("6.12.118+deb13-amd64" -> 6,12,118,13). */
export function kernelOrder(a: string, b: string): number {
  const ka = (a.match(/\d+/g) ?? []).map(Number);
  const kb = (b.match(/\d+/g) ?? []).map(Number);
  for (let i = 0; i < Math.max(ka.length, kb.length); i++) {
    const d = (ka[i] ?? -1) - (kb[i] ?? -1);
    if (d) return d;
  }
  return a.localeCompare(b);
}

function backendMatches(k: KnownDivergence, name: string): boolean {
  return (k.backends ?? ["host", "vm:*"]).some((p) => (p.endsWith("*") ? name.startsWith(p.slice(0, -1)) : p === name));
}

/** Rule ids that fired in each program a column ran (the spec's coverage, recomputed from the traces). */
function firedByProgram(r: MatrixResult, c: Column): Map<number, Set<string>> {
  const out = new Map<number, Set<string>>();
  for (const i of c.ran) {
    const cov = new Map<string, number>();
    checkTrace(r.corpus[i], c.config!, c.profile!, c.traces.get(i)!, cov);
    out.set(i, new Set([...cov].filter(([, n]) => n > 0).map(([id]) => id)));
  }
  return out;
}

/** known id -> column name -> mark, for the columns that ran. */
export function knownMarks(r: MatrixResult, known: readonly KnownDivergence[]): Map<string, Map<string, TimelineMark>> {
  const out = new Map<string, Map<string, TimelineMark>>(known.map((k) => [k.id, new Map()]));
  for (const c of r.columns) {
    if (c.unavailable || !c.kernel || !c.config || !c.profile) continue;
    let fired: Map<number, Set<string>> | null = null;
    for (const k of known) {
      let mark: TimelineMark = "unchecked";
      if ([...c.known.values()].includes(k.id)) mark = "seen";
      else if (k.requires?.length && backendMatches(k, c.name)) {
        fired ??= firedByProgram(r, c);
        const exercised = c.ran.some((i) => {
          const v = c.verdicts.get(i)!;
          const same = !v.accepted && v.divergence.kind === k.kind && v.divergence.rule === k.rule;
          return !same && !c.traces.get(i)!.aborted && k.requires!.some((id) => fired!.get(i)!.has(id));
        });
        if (exercised) mark = "absent";
      }
      out.get(k.id)!.set(c.name, mark);
    }
  }
  return out;
}

/** The known list with this run's kernels merged into kernelsSeen/kernelsAbsent, and what changed. */
export function mergeKnown(r: MatrixResult, known: readonly KnownDivergence[]): { divergences: KnownDivergence[]; added: Array<{ id: string; kernel: string; mark: "seen" | "absent" }> } {
  const marks = knownMarks(r, known);
  const added: Array<{ id: string; kernel: string; mark: "seen" | "absent" }> = [];
  const divergences = known.map((k) => {
    const seen = [...k.kernelsSeen];
    const absent = [...(k.kernelsAbsent ?? [])];
    for (const c of r.columns) {
      const m = marks.get(k.id)?.get(c.name);
      if (!m || m === "unchecked") continue;
      const label = kernelLabel(c);
      if (m === "seen") {
        const a = absent.indexOf(label);
        if (a >= 0) absent.splice(a, 1);
        if (!seen.includes(label)) { seen.push(label); added.push({ id: k.id, kernel: label, mark: m }); }
      } else if (!seen.includes(label) && !absent.includes(label)) {
        absent.push(label);
        added.push({ id: k.id, kernel: label, mark: m });
      }
    }
    // Same keys in the same order; a new kernelsAbsent goes right after kernelsSeen.
    const out: Record<string, unknown> = {};
    for (const [key, val] of Object.entries(k)) {
      out[key] = key === "kernelsSeen" ? seen : key === "kernelsAbsent" ? absent : val;
      if (key === "kernelsSeen" && !k.kernelsAbsent && absent.length) out.kernelsAbsent = absent;
    }
    return out as KnownDivergence;
  });
  return { divergences, added };
}

/** JSON as the list is written: two-space indent, non-ASCII as \u escapes, a final newline. */
export function knownJson(doc: unknown): string {
  return JSON.stringify(doc, null, 2).replace(/[\u007f-\uffff]/g, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, "0")}`) + "\n";
}

/** Merge this run into the list at `path` (rewritten only when something changed). */
export function recordKnown(r: MatrixResult, path: string): Array<{ id: string; kernel: string; mark: "seen" | "absent" }> {
  const doc = JSON.parse(readFileSync(path, "utf8")) as { format: string; divergences: KnownDivergence[] };
  const { divergences, added } = mergeKnown(r, doc.divergences);
  if (added.length) writeFileSync(path, knownJson({ ...doc, divergences }));
  return added;
}

/** The range a known divergence's lists give: "seen 6.16.3+deb13-amd64 .. 7.3.4+deb13-amd64; absent up to 6.12.118+deb13-amd64". */
export function kernelRange(k: KnownDivergence): string {
  const strip = (s: string) => s.replace(/ \((vm|host)\)$/, "");
  const seen = k.kernelsSeen.map(strip).sort(kernelOrder);
  const absent = (k.kernelsAbsent ?? []).map(strip).sort(kernelOrder);
  if (!seen.length) return absent.length ? `not seen; absent on ${absent[0]} .. ${absent[absent.length - 1]}` : "not seen";
  const lo = seen[0];
  const hi = seen[seen.length - 1];
  const below = absent.filter((a) => kernelOrder(a, lo) < 0);
  const above = absent.filter((a) => kernelOrder(a, hi) > 0);
  const inside = absent.filter((a) => kernelOrder(a, lo) > 0 && kernelOrder(a, hi) < 0);
  return [
    `seen ${lo === hi ? lo : `${lo} .. ${hi}`}`,
    ...(below.length ? [`absent up to ${below[below.length - 1]}`] : []),
    ...(above.length ? [`absent from ${above[0]}`] : []),
    ...(inside.length ? [`absent in between on ${inside.join(", ")}`] : []),
  ].join("; ");
}
