import type { State } from "./state.ts";

export function evHasVmaState(s: State, i: number): boolean {
  for (const v of s.vmas) if (v.ev === i) return true;
  return false;
}
