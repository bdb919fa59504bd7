import { describe, expect, it } from "vitest";
import { profileFor } from "../../spec/profiles.ts";

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
  ] as const)("%s -> %s", (release, version, profile) => {
    expect(profileFor(release, version).profile).toBe(profile);
  });
  it("the compiler's 'Debian 12.2.0' in /proc/version is not taken for the kernel's version", () => {
    expect(profileFor("6.1.0-56-amd64", debian61).why).toContain("6.1.192");
  });
  it("eras between profiles say they are approximate", () => {
    expect(profileFor("6.6.50").exact).toBe(false);
    expect(() => profileFor("not-a-release")).toThrow(/cannot parse/);
  });
});
