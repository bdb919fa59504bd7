import { describe, expect, it } from "vitest";
import { profileFor } from "../../spec/profiles.ts";

const debian510 = "Linux version 5.10.0-46-amd64 (debian-kernel@lists.debian.org) (gcc-10 (Debian 10.2.1-6) 10.2.1 20210110, GNU ld (GNU Binutils for Debian) 2.35.2) #1 SMP Debian 5.10.262-1 (2026-11-02)";
const debian61 = "Linux version 6.1.0-56-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.1.192-1 (2026-10-01)";

describe("profileFor", () => {
  it.each([
    ["6.18.44-fc-v782", undefined, "6.18"],
    ["6.12.117+deb12-amd64", undefined, "6.12"],
    ["6.12.41", undefined, "6.12-pre42"],
    ["6.1.147", undefined, "6.1-pre148"],
    ["6.1.148", undefined, "6.1"],
    ["6.1.0-56-amd64", debian61, "6.1"],
    // Debian's uname says 6.1.0; without /proc/version the patch level is unknown (0): pre-fix.
    ["6.1.0-56-amd64", undefined, "6.1-pre148"],
    ["6.1.0-9-amd64", debian61.replace("Debian 6.1.192-1", "Debian 6.1.27-1"), "6.1-pre148"],
    ["5.10.0-46-amd64", debian510, "5.10"],
    // Debian 5.10.0-32 is 5.10.223 (pre-fix); 5.10.244-1 (ABI 36) was the first upload with the fixes
    ["5.10.0-32-amd64", debian510.replace("Debian 5.10.262-1", "Debian 5.10.223-1"), "5.10-pre241"],
    ["5.10.0-36-amd64", debian510.replace("Debian 5.10.262-1", "Debian 5.10.244-1"), "5.10"],
    ["5.10.240", undefined, "5.10-pre241"],
    ["5.10.241", undefined, "5.10"],
    ["6.15.2", undefined, "6.16"],
    ["6.15.10", undefined, "6.16"],
    ["6.16.3+deb13-amd64", undefined, "6.16"],
    ["6.16.12+deb13-amd64", undefined, "6.16"],
    ["6.17.13+deb13-amd64", undefined, "6.17"],
    ["6.18.15+deb13-amd64", undefined, "6.18"],
    ["6.19.7", undefined, "6.18"],
    ["7.1.3", undefined, "6.18"],
    ["7.2.13+deb14-amd64", undefined, "7.2"],
    ["7.3.4+bpo-amd64", undefined, "7.2"],
    ["4.19.300", undefined, "5.10-pre241"],
  ] as const)("%s -> %s", (release, version, profile) => {
    expect(profileFor(release, version).profile).toBe(profile);
  });
  it("the compiler's 'Debian 12.2.0' in /proc/version is not taken for the kernel's version", () => {
    expect(profileFor("6.1.0-56-amd64", debian61).why).toContain("6.1.192");
  });
  it("eras between profiles say they are approximate", () => {
    expect(profileFor("6.6.50").exact).toBe(false);
    // 6.19 .. 7.1: no tree read; the close order there is not established (spec/notes/timeline-deltas.md §2.5)
    expect(profileFor("6.19.7").exact).toBe(false);
    expect(profileFor("7.0.2").exact).toBe(false);
    expect(profileFor("6.18.44").exact).toBe(true);
    // 6.15.10+ / 6.16.1+ have the Aug 2025 fixes (stable review mails of Aug 12 2025); 6.17 (its own
    // profile) has 6.18's mremap but not its refcount_t (448f97fba901) nor EBUSY (d06bf78e55d5)
    expect(profileFor("6.16.12+deb13-amd64").exact).toBe(true);
    expect(profileFor("6.15.10").exact).toBe(true);
    expect(profileFor("6.15.9").exact).toBe(false);
    expect(profileFor("6.16.0").exact).toBe(false);
    expect(profileFor("6.17.13+deb13-amd64").exact).toBe(true);
    expect(profileFor("7.3.4").exact).toBe(true);
    expect(profileFor("7.4.1").exact).toBe(false);
    expect(profileFor("5.4.280").exact).toBe(false);
    expect(() => profileFor("not-a-release")).toThrow(/cannot parse/);
  });
});
