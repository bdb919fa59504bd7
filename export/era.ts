/**
 * The kernel-era boundaries of spec/profiles.ts profileFor() as data, so that the exported C
 * programs pick their profile at run time with the same boundaries. eraOf() walks this table
 * in TypeScript and eraC() writes the same walk in C; test/export/era.test.ts checks both
 * against profileFor() on a grid of releases (every major 2..8 x minor 0..25 x patch levels
 * around each boundary, plus Debian "6.1.0-N" releases with their /proc/version), so the
 * table cannot drift from profileFor without a red test.
 */
import type { ProfileId } from "../spec/program.ts";
import { parseRelease } from "../spec/profiles.ts";

export interface EraRow {
  /** Inclusive ranges; Infinity: no upper bound. */
  major: [number, number];
  minor: [number, number];
  /** The row applies from this patch level up. */
  patchFrom: number;
  profile: ProfileId;
  /** false: no profile was written for these kernels (the nearest era is used, or the C program skips). */
  exact: boolean;
}

const INF = Infinity;

/** First matching row wins; the order matters. */
export const ERA_TABLE: readonly EraRow[] = [
  { major: [5, 5], minor: [10, 10], patchFrom: 241, profile: "5.10", exact: true },
  { major: [5, 5], minor: [10, 10], patchFrom: 0, profile: "5.10-pre241", exact: true },
  { major: [6, 6], minor: [1, 1], patchFrom: 148, profile: "6.1", exact: true },
  { major: [6, 6], minor: [1, 1], patchFrom: 0, profile: "6.1-pre148", exact: true },
  { major: [6, 6], minor: [12, 12], patchFrom: 42, profile: "6.12", exact: true },
  { major: [6, 6], minor: [12, 12], patchFrom: 0, profile: "6.12-pre42", exact: true },
  { major: [6, 6], minor: [15, 15], patchFrom: 10, profile: "6.16", exact: true },
  { major: [6, 6], minor: [15, 15], patchFrom: 0, profile: "6.16", exact: false },
  { major: [6, 6], minor: [16, 16], patchFrom: 1, profile: "6.16", exact: true },
  { major: [6, 6], minor: [16, 16], patchFrom: 0, profile: "6.16", exact: false },
  { major: [6, 6], minor: [17, 17], patchFrom: 0, profile: "6.17", exact: true },
  { major: [6, 6], minor: [18, 18], patchFrom: 0, profile: "6.18", exact: true },
  { major: [6, 6], minor: [19, INF], patchFrom: 0, profile: "6.18", exact: false },
  { major: [7, 7], minor: [0, 1], patchFrom: 0, profile: "6.18", exact: false },
  { major: [7, 7], minor: [2, 3], patchFrom: 0, profile: "7.2", exact: true },
  { major: [7, INF], minor: [0, INF], patchFrom: 0, profile: "7.2", exact: false },
  { major: [6, 6], minor: [13, 14], patchFrom: 0, profile: "6.12", exact: false },
  { major: [6, 6], minor: [0, INF], patchFrom: 0, profile: "6.1", exact: false },
  { major: [5, 5], minor: [11, INF], patchFrom: 0, profile: "5.10", exact: false },
  { major: [0, 5], minor: [0, INF], patchFrom: 0, profile: "5.10-pre241", exact: false },
];

/** The version profileFor() judges: Debian's "6.1.0-N" release takes the patch level from /proc/version. */
export function effectiveVersion(release: string, version?: string): { major: number; minor: number; patch: number } | null {
  let v = parseRelease(release);
  if (!v) return null;
  if (version && v.patch === 0) {
    for (const deb of version.matchAll(/Debian (\d+\.\d+\.\d+)/g)) {
      const real = parseRelease(deb[1]);
      if (real && real.major === v.major && real.minor === v.minor) { v = real; break; }
    }
  }
  return v;
}

export function eraOf(release: string, version?: string): { profile: ProfileId; exact: boolean } | null {
  const v = effectiveVersion(release, version);
  if (!v) return null;
  for (const r of ERA_TABLE) {
    if (v.major >= r.major[0] && v.major <= r.major[1] && v.minor >= r.minor[0] && v.minor <= r.minor[1] && v.patch >= r.patchFrom) {
      return { profile: r.profile, exact: r.exact };
    }
  }
  return null;
}

/**
 * The C twin: `int ax_era(const char *release, const char *version, int *exact, char *at, size_t atlen)`
 * returns the index into `profiles` (the order given) or -1 when the release does not parse;
 * `at` gets "M.m.p" as judged.
 */
export function eraC(profiles: readonly ProfileId[]): string {
  const lim = (n: number) => (n === INF ? "LONG_MAX" : String(n));
  const rows = ERA_TABLE.map((r) => {
    const idx = profiles.indexOf(r.profile);
    if (idx < 0) throw new Error(`profile ${r.profile} missing from the profile list`);
    return `\t{ ${r.major[0]}, ${lim(r.major[1])}, ${r.minor[0]}, ${lim(r.minor[1])}, ${r.patchFrom}, ${idx}, ${r.exact ? 1 : 0} }, /* ${r.profile}${r.exact ? "" : " (nearest)"} */`;
  });
  return `/* Era boundaries: generated from export/era.ts ERA_TABLE (= spec/profiles.ts profileFor, checked by test/export/era.test.ts). */
struct ax_era_row { long maj_lo, maj_hi, min_lo, min_hi, patch_from; int profile, exact; };
static const struct ax_era_row ax_era_table[] = {
${rows.join("\n")}
};

/* "6.1.170-..." -> 6, 1, 170 (a missing patch is 0); 0 when it does not start with M.m */
static int ax_parse_release(const char *s, long v[3])
{
	char *end;
	int i;

	v[0] = v[1] = v[2] = 0;
	while (*s == ' ' || *s == '\\t' || *s == '\\n')
		s++;
	for (i = 0; i < 3; i++) {
		if (*s < '0' || *s > '9')
			return i >= 2;
		v[i] = strtol(s, &end, 10);
		s = end;
		if (i < 2 && *s != '.')
			return i == 1;
		if (i < 2) {
			if (i == 1 && (s[1] < '0' || s[1] > '9'))
				return 1;
			s++;
		}
	}
	return 1;
}

/* "Debian X.Y.Z" at p: 1 and the numbers when all three are there. */
static int ax_parse_debian(const char *p, long v[3])
{
	char *end;

	for (int i = 0; i < 3; i++) {
		if (*p < '0' || *p > '9')
			return 0;
		v[i] = strtol(p, &end, 10);
		p = end;
		if (i < 2) {
			if (*p != '.')
				return 0;
			p++;
		}
	}
	return 1;
}

static int ax_era(const char *release, const char *version, int *exact, char *at, size_t atlen)
{
	long v[3], d[3];
	const char *p;

	if (!ax_parse_release(release, v))
		return -1;
	if (version && v[2] == 0) {
		for (p = strstr(version, "Debian "); p; p = strstr(p + 1, "Debian ")) {
			if (ax_parse_debian(p + 7, d) && d[0] == v[0] && d[1] == v[1]) {
				v[2] = d[2];
				break;
			}
		}
	}
	snprintf(at, atlen, "%ld.%ld.%ld", v[0], v[1], v[2]);
	for (size_t i = 0; i < sizeof(ax_era_table) / sizeof(ax_era_table[0]); i++) {
		const struct ax_era_row *r = &ax_era_table[i];
		if (v[0] >= r->maj_lo && v[0] <= r->maj_hi && v[1] >= r->min_lo && v[1] <= r->min_hi && v[2] >= r->patch_from) {
			*exact = r->exact;
			return r->profile;
		}
	}
	return -1;
}
`;
}
