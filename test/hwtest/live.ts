/** Shared set-up for the live-kernel tests: facts once, and why a test must skip. */
import { discoverHost, type HostFacts } from "../../hwtest/host/discover.ts";

let facts: HostFacts | null = null;
let why: string | null = null;
try {
  facts = discoverHost();
  if (!facts.perfOk) why = `perf is not usable here: ${facts.perfError}`;
} catch (e) {
  why = `discovery failed: ${(e as Error).message}`;
}

export const liveFacts = facts;
/** Null when live-kernel tests can run; else the reason (printed once). */
export const skipLive: string | null = why;
export const skipRoot: string | null = why ?? (facts && !facts.root ? "not root: cannot switch to fresh uids (user->locked_vm would be shared)" : null);
export const is618 = facts?.profile === "6.18";

export function say(reason: string | null, what: string): void {
  if (reason) console.log(`[skip] ${what}: ${reason}`);
}
