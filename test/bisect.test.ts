/**
 * The bisect search (matrix/bisect.ts) against fake kernels: a runner whose verdict flips at a
 * given build, counting its runs.
 */
import { describe, expect, it } from "vitest";
import { bisect, KernelUnavailable, seriesFilter, summarize, type KernelVerdict, type SeriesBuilds } from "../matrix/bisect.ts";
import { adapt } from "../cli/bisect.ts";
import type { Case } from "../spec/program.ts";

const ACCEPTED: KernelVerdict = { key: "accepted", label: "accepted" };
const KNOWN: KernelVerdict = { key: "known:D", label: "known divergence D" };

/** 5.10 with many builds, then one build each of 6.1, 6.12, 7.3 */
const builds = (n: number): SeriesBuilds[] => [
  { series: "5.10", releases: Array.from({ length: n }, (_, i) => `5.10.0-${i + 1}-amd64`) },
  { series: "6.1", releases: ["6.1.0-57-amd64"] },
  { series: "6.12", releases: ["6.12.117+deb12-amd64"] },
  { series: "7.3", releases: ["7.3.4+deb13-amd64"] },
];
const order = (s: readonly SeriesBuilds[]) => s.flatMap((x) => x.releases);

/** A fake kernel: KNOWN from release `flip` on (in version order), ACCEPTED before; `down`: unavailable. */
function fake(all: readonly string[], flip: string | null, down: ReadonlySet<string> = new Set()) {
  const ran: string[] = [];
  const at = flip === null ? Infinity : all.indexOf(flip);
  const run = async (release: string): Promise<KernelVerdict> => {
    if (down.has(release)) throw new KernelUnavailable(`${release}: no headers`);
    ran.push(release);
    return all.indexOf(release) >= at ? KNOWN : ACCEPTED;
  };
  return { run, ran };
}

describe("bisect over fake kernels", () => {
  it("finds a flip inside a series with fewer runs than a linear scan", async () => {
    const s = builds(40);
    const all = order(s);
    const k = fake(all, "5.10.0-23-amd64");
    const r = await bisect(s, k.run);
    expect(r.changes).toHaveLength(1);
    expect(r.changes[0]).toMatchObject({ last: "5.10.0-22-amd64", first: "5.10.0-23-amd64", where: "build", from: ACCEPTED, to: KNOWN });
    expect(k.ran.length).toBeLessThan(all.length);
    expect(k.ran.length).toBeLessThanOrEqual(4 + 1 + Math.ceil(Math.log2(40)) + 1);
    expect(new Set(k.ran).size).toBe(k.ran.length); // no kernel twice
    expect(r.summary).toBe("accepted up to 5.10.0-22-amd64; known divergence D from 5.10.0-23-amd64 on");
  });

  it("runs the newest build of every series first", async () => {
    const s = builds(10);
    const k = fake(order(s), "5.10.0-5-amd64");
    await bisect(s, k.run);
    expect(k.ran.slice(0, 4)).toEqual(["5.10.0-10-amd64", "6.1.0-57-amd64", "6.12.117+deb12-amd64", "7.3.4+deb13-amd64"]);
    expect(k.ran[4]).toBe("5.10.0-1-amd64");
  });

  it("no flip: one segment, each series' newest and oldest only", async () => {
    const s = builds(30);
    const k = fake(order(s), null);
    const r = await bisect(s, k.run);
    expect(r.changes).toEqual([]);
    expect(r.segments).toHaveLength(1);
    expect(k.ran).toHaveLength(5);
    expect(r.summary).toBe("accepted on every kernel run (5.10.0-1-amd64 .. 7.3.4+deb13-amd64)");
  });

  it("a flip between series: reported between the newest of one and the oldest of the next, no search", async () => {
    const s = builds(30);
    const k = fake(order(s), "6.12.117+deb12-amd64");
    const r = await bisect(s, k.run);
    expect(r.changes).toEqual([expect.objectContaining({ last: "6.1.0-57-amd64", first: "6.12.117+deb12-amd64", where: "series", unavailableBetween: [] })]);
    expect(k.ran).toHaveLength(5);
    expect(r.summary).toBe("accepted up to 6.1.0-57-amd64; known divergence D from 6.12.117+deb12-amd64 on");
  });

  it("a flip at the first build of a series whose older series agree with it", async () => {
    const s: SeriesBuilds[] = [{ series: "6.18", releases: ["6.18.1", "6.18.2"] }, { series: "7.2", releases: ["7.2.6", "7.2.13"] }];
    const k = fake(order(s), "7.2.6");
    const r = await bisect(s, k.run);
    expect(r.changes[0]).toMatchObject({ last: "6.18.2", first: "7.2.6", where: "series" });
  });

  it("unavailable kernels are skipped and reported; the search uses their neighbours", async () => {
    const s = builds(16);
    const all = order(s);
    const down = new Set(["5.10.0-16-amd64", "5.10.0-8-amd64", "5.10.0-9-amd64", "6.12.117+deb12-amd64"]);
    const k = fake(all, "5.10.0-9-amd64", down);
    const r = await bisect(s, k.run);
    for (const d of down) expect(k.ran).not.toContain(d);
    expect(r.skipped.map((x) => x.release).sort()).toEqual([...down].filter((d) => r.skipped.some((x) => x.release === d)).sort());
    expect(r.skipped.map((x) => x.release)).toContain("5.10.0-16-amd64"); // the newest was tried first
    expect(r.seriesUnavailable).toEqual(["6.12"]);
    // 8 and 9 cannot run: the change lies between 7 and 10, and the report says which builds are unknown
    expect(r.changes[0]).toMatchObject({ last: "5.10.0-7-amd64", first: "5.10.0-10-amd64", where: "build" });
    expect(r.changes[0].unavailableBetween).toEqual(["5.10.0-8-amd64", "5.10.0-9-amd64"]);
    expect(r.summary).toContain("skipped, unavailable:");
    expect(r.summary).toContain("series with no runnable build: 6.12");
  });

  it("several changes across the timeline", async () => {
    const s = builds(8);
    const all = order(s);
    // accepted before 5.10.0-4, known from there to 6.1, a divergence on 6.12 and later
    const v = (r: string): KernelVerdict => all.indexOf(r) < 3 ? ACCEPTED : all.indexOf(r) < all.indexOf("6.12.117+deb12-amd64") ? KNOWN : { key: "div", label: "divergence outcome mmap.aux.new" };
    const r = await bisect(s, async (rel) => v(rel));
    expect(r.summary).toBe("accepted up to 5.10.0-3-amd64; known divergence D from 5.10.0-4-amd64 to 6.1.0-57-amd64; divergence outcome mmap.aux.new from 6.12.117+deb12-amd64 on");
  });

  it("a runner that fails otherwise stops the search (only KernelUnavailable is skipped)", async () => {
    await expect(bisect(builds(2), async () => { throw new Error("harness bug"); })).rejects.toThrow("harness bug");
  });

  it("--kernels ranges and lists", () => {
    const f = seriesFilter("5.10..7.2");
    expect(["5.10", "6.1", "6.12", "6.18", "7.2", "7.3"].filter(f)).toEqual(["5.10", "6.1", "6.12", "6.18", "7.2"]);
    expect(["5.10", "6.1", "7.3"].filter(seriesFilter("6.1,7.3"))).toEqual(["6.1", "7.3"]);
    expect(["5.10", "6.9", "6.10"].filter(seriesFilter("6.10.."))).toEqual(["6.10"]);
    expect(summarize([])).toBe("no kernel could run the case");
  });
});

describe("cli/bisect adapt(): a case made for another cpu count runs with the kernel's", () => {
  const c: Case = {
    format: "auxspec-case/1", name: "x", config: { pageSize: 4096, cpus: 2, mlockKb: 516, memlockPages: 0, capIpcLock: false, paranoid: 2, pmus: { aux: "auxspec_pmu" } },
    program: [{ op: "open", ev: "e0", pmu: "sw" }],
  };
  const backend = (cpus: number) => ({ info: { config: { ...c.config, cpus } } }) as unknown as Parameters<typeof adapt>[1];
  it("rewrites cpus and mlock_kb, keeps the rest", () => {
    const a = adapt(c, backend(1));
    expect(typeof a).toBe("object");
    expect((a as Case).config).toEqual({ ...c.config, cpus: 1 });
    expect(adapt(c, backend(2))).toBe(c);
  });
  it("refuses a case that opens an event on a cpu the kernel lacks", () => {
    const d: Case = { ...c, program: [{ op: "open", ev: "e0", pmu: "sw", cpu: 1 }] };
    expect(adapt(d, backend(1))).toMatch(/cpu this kernel lacks/);
  });
});
