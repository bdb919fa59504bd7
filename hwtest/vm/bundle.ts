/**
 * The guest agent as one plain-JavaScript file. Under TCG, `tsx agent.ts` costs 10 to 20 s
 * per start (two Node starts, the esbuild service, a transform per file); a bundle made here
 * on the host with the same esbuild starts in about a second in the guest. Semantics are kept:
 * each file's `import.meta.url` is replaced by that file's own URL (so paths derived from it,
 * such as the native helper's cache, stay those of the project tree), `process.argv[1]` is set
 * to agent.ts before anything runs (its "am I the main module" check), and packages stay
 * external (koffi is native), resolved from the project's node_modules as before.
 *
 * The bundle goes to <project>/.cache/vm-agent/agent-<hash>.mjs (inside the project, which is
 * what the guest sees, and where `koffi` resolves), named by the hash of its contents, so an
 * edited executor is bundled afresh. When esbuild cannot be loaded, callers fall back to tsx.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

interface EsbuildLike {
  build(opts: Record<string, unknown>): Promise<{ outputFiles?: Array<{ path: string; contents: Uint8Array }>; errors: unknown[] }>;
}

/** Bundle hwtest/host/agent.ts of `project`; returns the bundle's path. */
export async function bundleAgent(project: string, log: (m: string) => void = () => {}): Promise<string> {
  const esbuild = (await import("esbuild")) as unknown as EsbuildLike;
  const entry = join(project, "hwtest", "host", "agent.ts");
  const outDir = join(project, ".cache", "vm-agent");
  if (!existsSync(entry)) throw new Error(`no agent at ${entry}`);
  const metaPlugin = {
    name: "auxspec-import-meta-url",
    setup(build: { onLoad: (o: { filter: RegExp }, cb: (a: { path: string }) => { contents: string; loader: string }) => void }) {
      build.onLoad({ filter: /\.(ts|mts|js|mjs)$/ }, (args: { path: string }) => {
        const src = readFileSync(args.path, "utf8");
        const contents = src.replace(/\bimport\.meta\.url\b/g, JSON.stringify(pathToFileURL(args.path).href));
        return { contents, loader: /\.m?ts$/.test(args.path) ? "ts" : "js" };
      });
    },
  };
  const result = await esbuild.build({
    entryPoints: [entry],
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    packages: "external",
    write: false,
    outfile: join(outDir, "agent.mjs"),
    banner: { js: `process.argv[1] = ${JSON.stringify(entry)};` },
    plugins: [metaPlugin],
    logLevel: "silent",
  });
  const out = result.outputFiles?.[0];
  if (!out) throw new Error("esbuild produced no output");
  const hash = createHash("sha256").update(out.contents).digest("hex").slice(0, 12);
  mkdirSync(outDir, { recursive: true });
  const path = join(outDir, `agent-${hash}.mjs`);
  if (!existsSync(path)) {
    const tmp = `${path}.tmp-${process.pid}`;
    writeFileSync(tmp, out.contents);
    renameSync(tmp, path);
    log(`bundled the guest agent: ${path}`);
  }
  return path;
}
