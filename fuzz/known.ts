/**
 * Known divergences: divergences classified as kernel bugs (or kernel behaviour the spec
 * deliberately refuses to bless), each with a minimal reproducer case, a one-line
 * explanation and the kernels it was seen on. A divergence that matches one is reported
 * as known, not as a failure. The list lives in cases/known-divergences.json.
 */
import { readFileSync, existsSync } from "node:fs";
import { z } from "zod";
import { DivergenceKind, type Divergence } from "../spec/trace.ts";
import { ProfileId, formatZodError } from "../spec/program.ts";
import type { BackendInfo } from "../backend/contract.ts";

export const KnownDivergence = z.object({
  id: z.string().min(1),
  kind: DivergenceKind,
  /** The rule (or invariant id) the divergence is reported under. */
  rule: z.string().min(1),
  profiles: z.array(ProfileId).min(1),
  /** Backend names it applies to: "host", "vm:*", "model" ... (default: any kernel backend). */
  backends: z.array(z.string()).optional(),
  /** Further "kind:rule" forms the same mechanism shows up under: a later op or the audit that
   *  the leaked (or double-refunded) charge disturbs, e.g. "outcome:mmap.data.new" for an mmap the
   *  leaked locked_vm pushes over the limit. An outcome divergence's rule lists the rules of every
   *  allowed outcome ("a | b"): one of them matching is enough. Only with `requires`. */
  alsoUnder: z.array(z.string().regex(new RegExp(`^(${DivergenceKind.options.join("|")}):[\\w.-]+$`), "alsoUnder entries are KIND:RULE")).optional(),
  /** Rule ids of which at least one must have fired in the divergent program (the mechanism). */
  requires: z.array(z.string()).optional(),
  explanation: z.string().min(1),
  kernelsSeen: z.array(z.string()),
  /** Kernels that ran the case and did not show it (e.g. from `npm run bisect`). */
  kernelsAbsent: z.array(z.string()).optional(),
  /** Path of the minimal reproducer case, relative to the repository root. */
  case: z.string(),
}).strict().refine((k) => k.alsoUnder === undefined || (k.requires?.length ?? 0) > 0, { message: "alsoUnder needs requires (the mechanism that ties the symptom to the bug)" });
export type KnownDivergence = z.infer<typeof KnownDivergence>;

export const KnownList = z.object({ format: z.literal("auxspec-known/1"), divergences: z.array(KnownDivergence) }).strict();

export function loadKnown(path: string): KnownDivergence[] {
  if (!existsSync(path)) return [];
  const parsed = KnownList.safeParse(JSON.parse(readFileSync(path, "utf8")));
  if (!parsed.success) throw new Error(`${path} is not a valid known-divergences list:\n${formatZodError(parsed.error)}`);
  return parsed.data.divergences;
}

function backendMatches(pattern: string, name: string): boolean {
  return pattern.endsWith("*") ? name.startsWith(pattern.slice(0, -1)) : pattern === name;
}

/**
 * The known divergence that explains `d`, if any: same kind and rule, a listed profile and
 * backend, and (when the entry names its mechanism) one of its rules fired in the program.
 */
export function matchKnown(known: readonly KnownDivergence[], d: Divergence, profile: string, backend: BackendInfo, fired?: ReadonlyMap<string, number>): KnownDivergence | null {
  for (const k of known) {
    if (!(k.kind === d.kind && k.rule === d.rule) && !(k.alsoUnder && d.rule.split(" | ").some((r) => k.alsoUnder!.includes(`${d.kind}:${r}`)))) continue;
    if (k.requires && !k.requires.some((r) => (fired?.get(r) ?? 0) > 0)) continue;
    if (!k.profiles.includes(profile as ProfileId)) continue;
    const pats = k.backends ?? ["host", "vm:*"];
    if (!pats.some((p) => backendMatches(p, backend.name))) continue;
    return k;
  }
  return null;
}
