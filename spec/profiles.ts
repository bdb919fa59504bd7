/**
 * Which profile judges which kernel.
 *
 * - seed:       the v8 AUX patch (Nov 2014) exactly as posted.
 * - 6.1-pre148: 6.1.y before 6.1.148 (no may_split, AUX failure paths unfixed).
 * - 6.1:        6.1.148 and later (Aug 2025 fixes: may_split, early return, AUX refcount).
 * - 6.12-pre42: 6.12.y before 6.12.42; 6.12: 6.12.42 and later (same fixes).
 * - 6.18:       mainline 6.15 .. 6.19 as of 6.18 (INT_MAX data check, EBUSY for
 *               SET_OUTPUT-only events, PROT_EXEC EPERM, refcount_t).
 */
import type { ProfileId } from "./program.ts";

export interface ProfileChoice {
  profile: ProfileId;
  /** false when the kernel is not one the profile was written for (nearest era chosen). */
  exact: boolean;
  why: string;
}

/** Parse "6.1.170", "6.12.100+deb12-amd64", "6.18.2-1-cloud", "6.1.0-47-amd64" into numbers. */
export function parseRelease(release: string): { major: number; minor: number; patch: number } | null {
  const m = /^(\d+)\.(\d+)(?:\.(\d+))?/.exec(release.trim());
  if (!m) return null;
  return { major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3] ?? 0) };
}

/**
 * Pick the profile for a kernel. `release` is `uname -r`; Debian's 6.1 kernels say
 * "6.1.0-N-amd64" there, so pass `/proc/version` as `version` to get the real patch level
 * ("... Debian 6.1.170-1 ...").
 */
export function profileFor(release: string, version?: string): ProfileChoice {
  let v = parseRelease(release);
  if (!v) throw new Error(`cannot parse kernel release ${JSON.stringify(release)}`);
  if (version && v.patch === 0) {
    // "... (gcc-12 (Debian 12.2.0-14) 12.2.0 ...) ... Debian 6.1.170-1 ...": the first
    // "Debian X.Y.Z" can be the compiler's; take the one of the same major.minor.
    for (const deb of version.matchAll(/Debian (\d+\.\d+\.\d+)/g)) {
      const real = parseRelease(deb[1]);
      if (real && real.major === v.major && real.minor === v.minor) { v = real; break; }
    }
  }
  const { major, minor, patch } = v;
  const at = `${major}.${minor}.${patch}`;
  if (major === 6 && minor === 1) {
    return patch >= 148
      ? { profile: "6.1", exact: true, why: `${at} has the Aug 2025 fixes (6.1.148+)` }
      : { profile: "6.1-pre148", exact: true, why: `${at} predates 6.1.148` };
  }
  if (major === 6 && minor === 12) {
    return patch >= 42
      ? { profile: "6.12", exact: true, why: `${at} has the Aug 2025 fixes (6.12.42+)` }
      : { profile: "6.12-pre42", exact: true, why: `${at} predates 6.12.42` };
  }
  if (major === 6 && minor >= 15) {
    return { profile: "6.18", exact: minor <= 19, why: `${at} is mainline 6.15+` };
  }
  if (major > 6) return { profile: "6.18", exact: false, why: `${at} is newer than any profile; using mainline 6.18` };
  if (major === 6 && minor > 12) return { profile: "6.12", exact: false, why: `${at} sits between 6.12 and 6.15; using 6.12` };
  if (major === 6) return { profile: "6.1", exact: false, why: `${at} sits between 6.1 and 6.12; using 6.1` };
  return { profile: "6.1-pre148", exact: false, why: `${at} is older than 6.1; using 6.1-pre148` };
}
