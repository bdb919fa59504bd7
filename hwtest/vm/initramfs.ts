/**
 * A gzip-compressed newc cpio archive (the kernel's initramfs format,
 * Documentation/driver-api/early-userspace/buffer-format.rst), written in-process:
 * the host has no `cpio`, and an archive built here is byte-for-byte reproducible.
 */
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import type { InitramfsEntry } from "./release.ts";

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;

function hex8(n: number): string {
  return (n >>> 0).toString(16).padStart(8, "0");
}

function pad4(n: number): number {
  return (4 - (n % 4)) % 4;
}

function record(ino: number, mode: number, name: string, data: Uint8Array): Buffer[] {
  const nameBytes = Buffer.from(`${name}\0`, "utf8");
  const header = Buffer.from(
    "070701" +
      hex8(ino) + hex8(mode) + hex8(0) + hex8(0) + hex8(mode & S_IFDIR ? 2 : 1) + hex8(0) +
      hex8(data.byteLength) + hex8(0) + hex8(0) + hex8(0) + hex8(0) + hex8(nameBytes.byteLength) + hex8(0),
    "ascii",
  );
  return [
    header,
    nameBytes,
    Buffer.alloc(pad4(header.byteLength + nameBytes.byteLength)),
    Buffer.from(data.buffer, data.byteOffset, data.byteLength),
    Buffer.alloc(pad4(data.byteLength)),
  ];
}

/** The uncompressed newc archive of `entries` (root-owned, mtime 0). */
export function cpioNewc(entries: readonly InitramfsEntry[]): Buffer {
  const parts: Buffer[] = [];
  let ino = 1;
  for (const e of entries) {
    switch (e.type) {
      case "dir":
        parts.push(...record(ino++, S_IFDIR | e.mode, e.path, new Uint8Array(0)));
        break;
      case "symlink":
        parts.push(...record(ino++, S_IFLNK | 0o777, e.path, Buffer.from(e.target, "utf8")));
        break;
      case "file": {
        const data = "source" in e ? readFileSync(e.source) : typeof e.data === "string" ? Buffer.from(e.data, "utf8") : e.data;
        parts.push(...record(ino++, S_IFREG | e.mode, e.path, data));
        break;
      }
      default: {
        const never: never = e;
        throw new Error(`unknown initramfs entry ${JSON.stringify(never)}`);
      }
    }
  }
  parts.push(...record(0, 0, "TRAILER!!!", new Uint8Array(0)));
  return Buffer.concat(parts);
}

/**
 * What QEMU's -initrd takes: gzip -1 of the newc archive, or with `gzip: false` the archive
 * itself (the kernel unpacks an uncompressed archive as well; under TCG inflating the few MB of
 * busybox, agent and modules costs the guest a noticeable part of its boot).
 */
export function buildInitramfs(entries: readonly InitramfsEntry[], opts: { gzip?: boolean } = {}): Buffer {
  const cpio = cpioNewc(entries);
  return opts.gzip === false ? cpio : gzipSync(cpio, { level: 1 });
}
