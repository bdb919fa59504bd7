/**
 * A private apt configuration inside the VM cache: Debian's other suites (bullseye, trixie,
 * trixie-backports, sid, ...) without touching /etc/apt. The archive URIs are the machine's own
 * (read from /etc/apt/sources.list.d/*.sources and /etc/apt/sources.list, never hard-coded), the
 * lists live in <cache>/apt/lists, and nothing is ever installed into the system: packages are
 * fetched with `apt-get download` (or, for a compiler's dependency closure, `install
 * --download-only` against an empty dpkg status) and unpacked with `dpkg -x` by the caller.
 *
 * The pure parts (sources parsing, the sources.list text, apt-cache output parsing) are tested
 * in test/vm/unit.test.ts; the rest runs apt-get/apt-cache.
 */
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** Suites the private configuration lists: every Debian suite with amd64 kernels (kernel-timeline.md). */
export const PRIVATE_SUITES = [
  { suite: "bullseye", security: false },
  { suite: "bullseye-security", security: true },
  { suite: "bookworm", security: false },
  { suite: "bookworm-updates", security: false },
  { suite: "bookworm-security", security: true },
  { suite: "trixie", security: false },
  { suite: "trixie-backports", security: false },
  { suite: "trixie-security", security: true },
  { suite: "sid", security: false },
] as const;

/** Lists younger than this are reused without `apt-get update`. */
export const LISTS_MAX_AGE_MS = 24 * 3600 * 1000;

export interface DebianMirrors {
  /** The archive (e.g. http://deb.debian.org/debian). */
  archive: string;
  /** The security archive (e.g. http://deb.debian.org/debian-security); null when the machine lists none. */
  security: string | null;
}

/**
 * The archive and security URIs of the machine's apt sources: deb822 `.sources` stanzas
 * (`URIs:` + `Suites:`) and one-line `deb URI SUITE COMPONENTS` entries. A URI whose suites
 * end in `-security` (or `/updates`) is the security archive; the first other one is the
 * archive. Commented lines are ignored.
 */
export function parseDebianMirrors(texts: readonly string[]): DebianMirrors | null {
  let archive: string | null = null;
  let security: string | null = null;
  const take = (uri: string, suites: string[]) => {
    const u = uri.replace(/\/+$/, "");
    const sec = suites.some((s) => /-security$|\/updates$/.test(s));
    if (sec) security ??= u;
    else archive ??= u;
  };
  for (const text of texts) {
    const lines = text.split("\n").map((l) => l.replace(/#.*$/, "").trimEnd());
    // deb822 stanzas
    let uris: string[] = [];
    let suites: string[] = [];
    let types: string[] = [];
    const flush = () => {
      if ((types.length === 0 || types.includes("deb")) && uris.length && suites.length) for (const u of uris) take(u, suites);
      uris = [];
      suites = [];
      types = [];
    };
    for (const line of lines) {
      if (line.trim() === "") {
        flush();
        continue;
      }
      const m = /^(Types|URIs|Suites):\s*(.*)$/i.exec(line);
      if (m) {
        const v = m[2].trim().split(/\s+/).filter(Boolean);
        if (/^types$/i.test(m[1])) types = v;
        else if (/^uris$/i.test(m[1])) uris = v;
        else suites = v;
        continue;
      }
      // one-line format: deb [options] URI SUITE COMPONENT...
      const one = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)/.exec(line.trim());
      if (one) take(one[1], [one[2]]);
    }
    flush();
  }
  return archive ? { archive, security } : null;
}

/** The private sources.list text (one-line format; the system's keyring verifies it). */
export function privateSourcesList(m: DebianMirrors): string {
  const lines: string[] = [];
  for (const s of PRIVATE_SUITES) {
    if (s.security && !m.security) continue;
    lines.push(`deb ${s.security ? m.security : m.archive} ${s.suite} main`);
  }
  return lines.join("\n") + "\n";
}

/** Rows of `apt-cache madison PKG...`: package, version, suite ("trixie", "bookworm-security", ...). */
export function parseMadison(out: string): Array<{ pkg: string; version: string; suite: string }> {
  const rows: Array<{ pkg: string; version: string; suite: string }> = [];
  for (const line of out.split("\n")) {
    const parts = line.split("|").map((s) => s.trim());
    if (parts.length < 3 || !/Packages$/.test(parts[2])) continue;
    const suite = /\s(\S+?)\/\S+\s+\S+\s+Packages$/.exec(parts[2])?.[1];
    if (suite) rows.push({ pkg: parts[0], version: parts[1], suite });
  }
  return rows;
}

function readMachineSources(): string[] {
  const texts: string[] = [];
  const one = "/etc/apt/sources.list";
  if (existsSync(one)) texts.push(readFileSync(one, "utf8"));
  const dir = "/etc/apt/sources.list.d";
  if (existsSync(dir)) {
    for (const f of readdirSync(dir).sort()) if (/\.(sources|list)$/.test(f)) texts.push(readFileSync(join(dir, f), "utf8"));
  }
  return texts;
}

function run(cmd: string, args: readonly string[], opts: { cwd?: string } = {}): Promise<{ stdout: string; stderr: string }> {
  return new Promise((res, rej) => {
    execFile(cmd, args, { cwd: opts.cwd, maxBuffer: 256 * 1024 * 1024, env: { ...process.env, LC_ALL: "C" } }, (err, stdout, stderr) => {
      if (err) {
        const e = new Error(`${cmd} ${args.slice(0, 6).join(" ")}${args.length > 6 ? " ..." : ""} failed: ${String(stderr).trim().split("\n").slice(-4).join(" | ") || err.message}`);
        (e as Error & { stderr?: string; stdout?: string }).stderr = String(stderr);
        (e as Error & { stdout?: string }).stdout = String(stdout);
        rej(e);
      } else res({ stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

const isRoot = () => typeof process.getuid === "function" && process.getuid() === 0;

/** apt-get/apt-cache against the private configuration in `dir` (<cache>/apt). */
export class PrivateApt {
  private updated = false;
  /** Set when an update found the archive unreachable: later calls in this process do not try again. */
  offline = false;
  constructor(readonly dir: string, private readonly log: (m: string) => void = () => {}) {}

  private base(): string[] {
    const d = this.dir;
    return [
      "-o", `Dir::Etc::sourcelist=${join(d, "sources.list")}`, "-o", "Dir::Etc::sourceparts=/dev/null",
      "-o", `Dir::State::Lists=${join(d, "lists")}`, "-o", `Dir::Cache=${join(d, "cache")}`,
      "-o", `Dir::State::status=${join(d, "status.empty")}`, "-o", "pkgCacheGen::Essential=none",
      // Keep apt's binary cache of the lists (docker images switch it off: 6 s per apt-cache call without it).
      "-o", "Dir::Cache::pkgcache=pkgcache.bin", "-o", "Dir::Cache::srcpkgcache=srcpkgcache.bin",
      "-o", "APT::Install-Recommends=0",
      ...(isRoot() ? ["-o", "APT::Sandbox::User=root"] : []),
    ];
  }

  /** Write sources.list from the machine's URIs (again each time: the machine's may change). */
  configure(): void {
    const m = parseDebianMirrors(readMachineSources());
    if (!m) throw new Error("no Debian archive URI in /etc/apt/sources.list or /etc/apt/sources.list.d: cannot build the private apt configuration");
    for (const p of ["lists/partial", "cache/archives/partial"]) mkdirSync(join(this.dir, p), { recursive: true });
    if (!existsSync(join(this.dir, "status.empty"))) writeFileSync(join(this.dir, "status.empty"), "");
    const text = privateSourcesList(m);
    const f = join(this.dir, "sources.list");
    if (!existsSync(f) || readFileSync(f, "utf8") !== text) writeFileSync(f, text);
  }

  /** Age of the lists in ms (Infinity when there are none). */
  listsAgeMs(): number {
    const d = join(this.dir, "lists");
    if (!existsSync(d)) return Infinity;
    const pk = readdirSync(d).filter((f) => /_Packages(\.\w+)?$/.test(f));
    if (pk.length === 0) return Infinity;
    const newest = Math.max(...pk.map((f) => statSync(join(d, f)).mtimeMs));
    return Date.now() - newest;
  }

  /**
   * `apt-get update` into the private lists unless they are younger than a day (or `force`).
   * Returns "fresh" (updated now), "reused", or "offline" (the update failed but old lists exist).
   */
  async update(force = false): Promise<"fresh" | "reused" | "offline"> {
    this.configure();
    const age = this.listsAgeMs();
    if (this.offline && age !== Infinity) return "offline";
    if (this.updated || (!force && age < LISTS_MAX_AGE_MS)) return "reused";
    this.log(`apt-get update (private lists in ${this.dir}${age === Infinity ? ", none yet" : `, ${Math.round(age / 3600000)} h old`})`);
    try {
      const r = await run("apt-get", [...this.base(), "update", "-q"]);
      // apt-get update exits 0 with "W: Failed to fetch" when the archive is unreachable.
      if (/^(W|E): (Failed to fetch|Some index files failed)/m.test(r.stderr) && age !== Infinity) {
        this.log(`apt-get update could not reach the archive; using the cached lists (${Math.round(age / 3600000)} h old)`);
        this.offline = true;
        return "offline";
      }
      this.updated = true;
      return "fresh";
    } catch (e) {
      if (age === Infinity) throw e;
      this.log(`apt-get update failed (${(e as Error).message.split("\n")[0]}); using the cached lists`);
      this.offline = true;
      return "offline";
    }
  }

  async search(regex: string): Promise<string> {
    return (await run("apt-cache", [...this.base(), "search", "--names-only", regex])).stdout;
  }

  async show(pkg: string): Promise<string | null> {
    try {
      const out = (await run("apt-cache", [...this.base(), "show", "--no-all-versions", pkg])).stdout;
      return out.trim() ? out : null;
    } catch {
      return null;
    }
  }

  /**
   * The candidate stanzas of several packages in one apt-cache call (each call loads the whole
   * binary cache: about a second): name -> stanza, names apt does not know absent.
   */
  async showMany(pkgs: readonly string[]): Promise<Map<string, string>> {
    let out: string;
    try {
      out = (await run("apt-cache", [...this.base(), "show", "--no-all-versions", ...pkgs])).stdout;
    } catch (e) {
      // Exit 100 when some name is unknown; the others are still printed.
      out = (e as { stdout?: string }).stdout ?? "";
    }
    const m = new Map<string, string>();
    for (const stanza of out.split(/\n\n+/)) {
      const name = /^Package:\s*(\S+)/m.exec(stanza)?.[1];
      if (name && pkgs.includes(name) && !m.has(name)) m.set(name, stanza + "\n");
    }
    return m;
  }

  async madison(pkg: string): Promise<Array<{ pkg: string; version: string; suite: string }>> {
    try {
      return parseMadison((await run("apt-cache", [...this.base(), "madison", pkg])).stdout);
    } catch {
      return [];
    }
  }

  /** `apt-get download PKG...` into `dest` (names may carry `=version`). */
  async download(pkgs: readonly string[], dest: string): Promise<void> {
    mkdirSync(dest, { recursive: true });
    await run("apt-get", [...this.base(), "download", "-q", ...pkgs], { cwd: dest });
  }

  /**
   * The .debs of `pkgs` and everything they depend on, as if nothing were installed, preferring
   * `suite` (apt's target release): a compiler's whole runtime from one suite. Into `dest`.
   */
  async downloadClosure(pkgs: readonly string[], suite: string, dest: string): Promise<void> {
    mkdirSync(join(dest, "partial"), { recursive: true });
    await run("apt-get", [...this.base(), "-t", suite, "-o", `Dir::Cache::archives=${dest}`, "install", "--download-only", "-y", "-q", ...pkgs]);
  }
}
