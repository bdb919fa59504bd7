/**
 * Which profile judges which kernel.
 *
 * - seed:        the v8 AUX patch (Nov 2014) exactly as posted.
 * - 5.10-pre241: 5.10.y before 5.10.241 (Debian 5.10.0-30/-32, 5.10.218/5.10.223): no split
 *                hook, AUX failure paths unfixed; 5.10's mremap (no early lookup, grow
 *                without merge) and rb_alloc_aux (writable 1-page AUX: EINVAL).
 * - 5.10:        5.10.241 and later (Debian 5.10.244-1, ABI 36, onwards): the Aug 2025 fixes
 *                (the hook is `.split`); move_vma never asks it (mremap.move.split.dup).
 * - 6.1-pre148:  6.1.y before 6.1.148 (no may_split, AUX failure paths unfixed).
 * - 6.1:         6.1.148 and later (Aug 2025 fixes: may_split, early return, AUX refcount).
 * - 6.12-pre42:  6.12.y before 6.12.42; 6.12: 6.12.42 and later (same fixes).
 * - 6.16:        6.15.10+ and 6.16.1+ (6.16.3, 6.16.12 run): the 6.15 perf_mmap() (INT_MAX check,
 *                re-maps charge, map_range, PROT_EXEC EPERM) with atomic_t counts (no WARN, no
 *                saturation), no EBUSY for SET_OUTPUT-only events, and 6.12's mremap (a
 *                MREMAP_FIXED move past the VMA's end is EFAULT: no multi-VMA move before 6.17).
 * - 6.17:        6.16 with 6.17's mremap (remap_move: a same-size MREMAP_FIXED move spans VMAs);
 *                6.17.13 maps a SET_OUTPUT-only event and answers EINVAL for an exited leader.
 * - 6.18:        6.18 (refcount_t 448f97fba901, EBUSY d06bf78e55d5 in 6.18.y, multi-VMA mremap
 *                since 6.17). 6.19 .. 7.1 (inferred, no tree read) map here with `exact` false.
 * - 7.2:         7.2 and 7.3 (7.2.13, 7.3.4 read): 6.18 with perf_mmap_close dropping the
 *                event's count before the buffer's.
 */
import type { ProfileId } from "./program.ts";

export interface ProfileChoice {
  profile: ProfileId;
  /** false when the kernel is not one the profile was written for (nearest era chosen). */
  exact: boolean;
  why: string;
}

/** Parse "6.1.170", "6.12.100+deb12-amd64", "6.18.2-1-cloud", "6.1.0-47-amd64", "5.10.0-46-amd64" into numbers. */
export function parseRelease(release: string): { major: number; minor: number; patch: number } | null {
  const m = /^(\d+)\.(\d+)(?:\.(\d+))?/.exec(release.trim());
  if (!m) return null;
  return { major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3] ?? 0) };
}

/**
 * Pick the profile for a kernel. `release` is `uname -r`; Debian's 5.10 and 6.1 kernels say
 * "5.10.0-N-amd64" / "6.1.0-N-amd64" there, so pass `/proc/version` as `version` to get the
 * real patch level ("... Debian 6.1.170-1 ...", "... Debian 5.10.262-1 ...").
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
  if (major === 5 && minor === 10) {
    // Debian's changelog lists the three backports under ChangeLog-5.10.241
    return patch >= 241
      ? { profile: "5.10", exact: true, why: `${at} has the Aug 2025 fixes (5.10.241+)` }
      : { profile: "5.10-pre241", exact: true, why: `${at} predates 5.10.241` };
  }
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
  if (major === 6 && (minor === 15 || minor === 16)) {
    // The Aug 2025 fixes reached 6.15.10 and 6.16.1 (6.15-stable review 436..440/480, 6.16-stable
    // 577..580/627, Aug 12 2025); before them: no may_split, and 6.15.0 .. 6.15.9 also lose an
    // rb_alloc_aux() failure (54473e0ef849). No profile models those.
    const fixed = minor === 15 ? patch >= 10 : patch >= 1;
    return fixed
      ? { profile: "6.16", exact: true, why: `${at} is 6.15/6.16 with the Aug 2025 fixes (6.15.10+, 6.16.1+): atomic_t counts, no EBUSY, one VMA per mremap move` }
      : { profile: "6.16", exact: false, why: `${at} predates the Aug 2025 fixes (6.15.10, 6.16.1); using 6.16` };
  }
  if (major === 6 && minor === 17) {
    return { profile: "6.17", exact: true, why: `${at} is 6.17: 6.16 with the multi-VMA mremap move (atomic_t counts, no EBUSY: 448f97fba901 and d06bf78e55d5 came with 6.18)` };
  }
  if (major === 6 && minor === 18) return { profile: "6.18", exact: true, why: `${at} is 6.18` };
  if ((major === 6 && minor >= 19) || (major === 7 && minor <= 1)) {
    return { profile: "6.18", exact: false, why: `${at}: no tree read between 6.18 and 7.2; 6.18's rules inferred (close order not established)` };
  }
  if (major === 7 && minor <= 3) return { profile: "7.2", exact: true, why: `${at} is 7.2+ (7.2.13, 7.3.4 read)` };
  if (major >= 7) return { profile: "7.2", exact: false, why: `${at} is newer than any profile; using 7.2` };
  if (major === 6 && minor > 12) return { profile: "6.12", exact: false, why: `${at} sits between 6.12 and 6.15; using 6.12` };
  if (major === 6) return { profile: "6.1", exact: false, why: `${at} sits between 6.1 and 6.12; using 6.1` };
  if (major === 5 && minor > 10) return { profile: "5.10", exact: false, why: `${at} sits between 5.10 and 6.1; using 5.10` };
  return { profile: "5.10-pre241", exact: false, why: `${at} is older than 5.10; using 5.10-pre241` };
}
