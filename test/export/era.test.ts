/**
 * The exported programs pick their profile with export/era.ts ERA_TABLE (TypeScript) and
 * its generated C twin; both must agree with spec/profiles.ts profileFor on every release.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it, onTestFinished } from "vitest";
import { profileFor } from "../../spec/profiles.ts";
import { PROFILES } from "../../spec/program.ts";
import { eraC, eraOf } from "../../export/era.ts";

const DEB_VERSION = (v: string) => `Linux version 6.1.0-47-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian ${v} (2026-11-20)`;

/** Every major 2..8 x minor 0..25 x patch levels around each boundary, plus real-world strings. */
function grid(): { release: string; version?: string }[] {
  const out: { release: string; version?: string }[] = [];
  for (let major = 2; major <= 8; major++) {
    for (let minor = 0; minor <= 25; minor++) {
      out.push({ release: `${major}.${minor}` });
      for (const patch of [0, 1, 41, 42, 43, 147, 148, 149, 300]) out.push({ release: `${major}.${minor}.${patch}-1-amd64` });
    }
  }
  out.push(
    { release: "6.1.0-47-amd64", version: DEB_VERSION("6.1.170-1") },
    { release: "6.1.0-37-amd64", version: DEB_VERSION("6.1.140-1") },
    { release: "6.1.0-40-amd64", version: DEB_VERSION("6.1.148-1") },
    { release: "6.1.0-40-amd64", version: DEB_VERSION("6.1.147-1") },
    { release: "6.1.0-9-amd64", version: "Linux version 6.1.0-9-amd64 (gcc-12 (Debian 12.2.0-14) 12.2.0) #1 SMP Debian 6.1.27-1" },
    { release: "6.1.0-9-amd64", version: "no Debian string here" },
    { release: "6.1.0-9-amd64", version: "Debian 6.12.50-1 Debian 6.1.150-1" },
    { release: "6.12.0-1-amd64", version: "... Debian 6.12.57-1 ..." },
    { release: "6.12.0-1-amd64", version: "... Debian 6.12.41-1 ..." },
    { release: "6.12.100+deb12-amd64" },
    { release: "6.18.44-fc-v857" },
    { release: "6.18.2-1-cloud" },
    { release: "6.15.0-rc1" },
    { release: "6.19.3" },
    { release: "6.20.0" },
    { release: "7.0.0" },
    { release: "5.10.0-30-amd64", version: DEB_VERSION("5.10.218-1") },
    { release: "4.19.0" },
    { release: "6.13.7" },
    { release: "6.14.11-300.fc42.x86_64" },
    { release: "6.2.16" },
    { release: "6.11.0-29-generic" },
    { release: "6.1" },
    { release: "6.1.x" },
  );
  return out;
}

describe("export era table", () => {
  const releases = grid();

  it("eraOf (the table) equals profileFor on every release of the grid", () => {
    const bad = releases.filter(({ release, version }) => {
      const want = profileFor(release, version);
      const got = eraOf(release, version);
      return !got || got.profile !== want.profile || got.exact !== want.exact;
    });
    expect(releases.length).toBeGreaterThan(1500);
    expect(bad).toEqual([]);
  });

  it("the generated C ax_era equals profileFor on every release of the grid", () => {
    const dir = mkdtempSync(join(tmpdir(), "auxspec-era-"));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, "era.c"), `#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
${eraC(PROFILES)}
int main(void)
{
	static char line[4096];
	char at[64];
	while (fgets(line, sizeof(line), stdin)) {
		char *tab = strchr(line, '\\t'), *nl = strchr(line, '\\n');
		int exact = -1, p;
		if (nl)
			*nl = 0;
		if (tab)
			*tab++ = 0;
		p = ax_era(line, tab && *tab ? tab : NULL, &exact, at, sizeof(at));
		printf("%d %d\\n", p, exact);
	}
	return 0;
}
`);
    execFileSync("gcc", ["-O1", "-Wall", "-Werror", "-o", join(dir, "era"), join(dir, "era.c")]);
    const input = releases.map((r) => `${r.release}\t${r.version ?? ""}`).join("\n") + "\n";
    const out = execFileSync(join(dir, "era"), { input, encoding: "utf8" }).trim().split("\n");
    expect(out.length).toBe(releases.length);
    const bad = releases.flatMap((r, i) => {
      const want = profileFor(r.release, r.version);
      const [p, exact] = out[i].split(" ").map(Number);
      return PROFILES[p] === want.profile && exact === (want.exact ? 1 : 0) ? [] : [`${r.release} | ${r.version ?? ""}: C says ${PROFILES[p] ?? p}/${exact}, profileFor ${want.profile}/${want.exact}`];
    });
    expect(bad).toEqual([]);
  });
});
