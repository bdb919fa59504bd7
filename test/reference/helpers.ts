/** Shared helpers for the reference tests. */
import { MODEL_CONFIG } from "../../backend/model.ts";
import type { Config, Op, ProfileId, Program } from "../../spec/program.ts";
import { PROFILES } from "../../spec/program.ts";
import type { Trace } from "../../spec/trace.ts";
import { showOutcome } from "../../spec/trace.ts";
import { runReference } from "../../reference/index.ts";

/** This machine's kind (2 CPUs, perf_event_mlock_kb 516 -> 258 pages per user) plus an AUX PMU. */
export const CONFIG: Config = MODEL_CONFIG;

/** The same without an AUX PMU (what the host has). */
export const CONFIG_NO_AUX: Config = { ...CONFIG, pmus: { aux: null } };

export const ALL: readonly ProfileId[] = PROFILES;
/** perf_mmap_may_split everywhere, move_vma included (5.10.241+ has the hook but move_vma never asks it). */
export const MAY_SPLIT: readonly ProfileId[] = ["6.1", "6.12", "6.18", "7.2"];
export const NO_MAY_SPLIT: readonly ProfileId[] = ["seed", "5.10-pre241", "6.1-pre148", "6.12-pre42"];

export function run(profile: ProfileId, program: Program, config: Config = CONFIG, bugs?: string[]): Trace {
  return runReference(program, config, profile, bugs ? new Set(bugs) : undefined);
}

/** Outcomes as short strings: "ok", "EINVAL", "SIGBUS", "ok {...}" for readUserPage. */
export function outs(t: Trace): string[] {
  return t.steps.map((s) => showOutcome(s.outcome));
}

export const open = (ev: string, pmu: "sw" | "aux" = "sw", extra: Partial<Extract<Op, { op: "open" }>> = {}): Op => ({ op: "open", ev, pmu, ...extra });
export const mmap = (map: string, ev: string, pages: number, pgoff = 0, prot: "none" | "r" | "rw" | "rx" | "rwx" = "rw"): Op =>
  ({ op: "mmap", map, ev, pages, pgoff, prot });
export const setAux = (map: string, offsetPages: number, sizePages: number): Op => ({ op: "setAux", map, offsetPages, sizePages });
export const munmap = (map: string, offset?: number, pages?: number): Op => {
  const op: Extract<Op, { op: "munmap" }> = { op: "munmap", map };
  if (offset !== undefined) op.offset = offset;
  if (pages !== undefined) op.pages = pages;
  return op;
};
export const close = (ev: string): Op => ({ op: "close", ev });
export const touch = (map: string, page: number, write = false): Op => ({ op: "touch", map, page, write });
