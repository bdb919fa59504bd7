/**
 * Booting a kernel through its PVH entry: the uncompressed vmlinux (an ELF with the
 * XEN_ELFNOTE_PHYS32_ENTRY note, CONFIG_PVH=y) given to QEMU's -kernel starts in 32-bit mode
 * at once, without SeaBIOS's real-mode setup and without the bzImage decompressing itself,
 * which under TCG costs one to two seconds of every boot.
 *
 * The vmlinux is the bzImage's payload (setup header: setup_sects at 0x1f1, payload_offset and
 * payload_length at 0x248/0x24c) decompressed once with the host's zstd, xz or gzip, and kept
 * in <cacheDir>/pvh/ by a hash of the bzImage's path, size and mtime. Where anything is missing (no CONFIG_PVH in the
 * kernel's config, an unknown compression, no decompressor) the caller boots the bzImage.
 */
import { createHash } from "node:crypto";
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { gunzipSync } from "node:zlib";

const MAGIC: Array<{ name: string; magic: number[]; tool?: string[] }> = [
  { name: "zstd", magic: [0x28, 0xb5, 0x2f, 0xfd], tool: ["zstd", "-d", "-q", "-c"] },
  { name: "xz", magic: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00], tool: ["xz", "-d", "-q", "-c"] },
  { name: "gzip", magic: [0x1f, 0x8b] },
];

/** The compressed payload of a bzImage and its format, or null. */
export function bzImagePayload(img: Buffer): { format: string; data: Buffer; tool?: string[] } | null {
  if (img.length < 0x250 || img.readUInt32LE(0x202) !== 0x53726448 /* "HdrS" */) return null;
  const setupSects = img[0x1f1] || 4;
  const start = (setupSects + 1) * 512 + img.readUInt32LE(0x248);
  const len = img.readUInt32LE(0x24c);
  if (start + len > img.length || len < 16) return null;
  const data = img.subarray(start, start + len);
  for (const m of MAGIC) if (m.magic.every((b, i) => data[i] === b)) return { format: m.name, data, tool: m.tool };
  return null;
}

function hasPvh(config: string | null): boolean {
  return config !== null && /^CONFIG_PVH=y$/m.test(config);
}

/**
 * The uncompressed vmlinux of `vmlinuz` for a PVH boot (decompressed once, cached), or null
 * with the reason in `why` when the bzImage has to be booted instead.
 */
export function pvhKernel(vmlinuz: string, configText: string | null, cacheDir: string, log: (m: string) => void = () => {}): string | null {
  try {
    if (!hasPvh(configText)) return null;
    const st = statSync(vmlinuz);
    const key = createHash("sha1").update(`${vmlinuz}\0${st.size}\0${st.mtimeMs}`).digest("hex").slice(0, 16);
    const out = join(cacheDir, "pvh", `vmlinux-${key}`);
    if (existsSync(out)) return out;
    const p = bzImagePayload(readFileSync(vmlinuz));
    if (!p) return null;
    let elf: Buffer;
    if (p.format === "gzip") elf = gunzipSync(p.data);
    else {
      // The kernel appends the uncompressed size (4 bytes) to the stream: the tools say so and exit 1.
      let res: Buffer;
      try {
        res = execFileSync(p.tool![0], p.tool!.slice(1), { input: p.data, maxBuffer: 1 << 30, stdio: ["pipe", "pipe", "ignore"] });
      } catch (e) {
        res = (e as { stdout?: Buffer }).stdout ?? Buffer.alloc(0);
      }
      elf = res;
    }
    if (elf.length < 64 || elf.readUInt32BE(0) !== 0x7f454c46) return null;
    mkdirSync(dirname(out), { recursive: true });
    const tmp = `${out}.tmp-${process.pid}`;
    writeFileSync(tmp, elf);
    renameSync(tmp, out);
    log(`PVH boot: decompressed the ${p.format} payload of ${vmlinuz} (${(elf.length / 2 ** 20).toFixed(0)} MiB)`);
    return out;
  } catch (e) {
    log(`PVH boot not possible (${(e as Error).message.split("\n")[0]}); booting the bzImage`);
    return null;
  }
}
