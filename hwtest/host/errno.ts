/**
 * errno numbers to names, for traces (outcomes carry errno BY NAME). Built from koffi's
 * table of the platform's errno constants, with one canonical name per number (EAGAIN, not
 * EWOULDBLOCK; EOPNOTSUPP, not ENOTSUP; EDEADLK, not EDEADLOCK) and the kernel-internal
 * numbers (include/linux/errno.h) that can leak to userspace: 524 is ENOTSUPP, which the
 * seed's rb_alloc_aux returns (notes §6). Unknown numbers become ERRNO_<n>.
 */
import koffi from "koffi";

const KERNEL_INTERNAL: Record<number, string> = {
  512: "ERESTARTSYS", 513: "ERESTARTNOINTR", 514: "ERESTARTNOHAND", 515: "ENOIOCTLCMD",
  516: "ERESTART_RESTARTBLOCK", 517: "EPROBE_DEFER", 518: "EOPENSTALE", 519: "ENOPARAM",
  521: "EBADHANDLE", 522: "ENOTSYNC", 523: "EBADCOOKIE", 524: "ENOTSUPP", 525: "ETOOSMALL",
  526: "ESERVERFAULT", 527: "EBADTYPE", 528: "EJUKEBOX", 529: "EIOCBQUEUED", 530: "ERECALLCONFLICT",
};
const PREFERRED = new Set(["EAGAIN", "EOPNOTSUPP", "EDEADLK"]);

let table: Map<number, string> | null = null;

function build(): Map<number, string> {
  const m = new Map<number, string>();
  for (const [name, num] of Object.entries(koffi.os.errno)) {
    if (!/^E[A-Z0-9]+$/.test(name)) continue;
    const have = m.get(num);
    if (have === undefined || (PREFERRED.has(name) && !PREFERRED.has(have))) m.set(num, name);
  }
  for (const [num, name] of Object.entries(KERNEL_INTERNAL)) if (!m.has(Number(num))) m.set(Number(num), name);
  return m;
}

export function errnoName(n: number): string {
  table ??= build();
  return table.get(n) ?? `ERRNO_${n}`;
}

export function errnoNumber(name: string): number | undefined {
  table ??= build();
  for (const [k, v] of table) if (v === name) return k;
  return undefined;
}
