/**
 * perf_mmap() for vm_pgoff == 0: the data buffer (user page + 2^n data pages).
 * Errno order per era = the kernel's check order: generic mm checks (fd, length, noexec),
 * then perf_mmap's inherit and VM_SHARED checks, then the size rules, then the buffer.
 */
import { ALL, CORE, M618, NOT618, R618, RB, V, rule } from "./types.ts";
import { acctOf } from "../model/perf.ts";
import { P_X, isPow2 } from "../model/state.ts";
import type { MmapCtx } from "./context.ts";
import { otherwise, when, type Decision } from "./decision.ts";

// Module-local copies of hot imports: tsx compiles an imported binding to a getter call
// per use, which V8 does not always inline; guards and the step run millions of times.
const acctOf_ = acctOf, P_X_ = P_X, isPow2_ = isPow2;

export const MMAP_DATA_RULES = [
  rule("mmap.ebadf", ALL, "EBADF", "ksys_mmap_pgoff", "mm/mmap.c", V.all,
    "mmap of a dead handle, or of one the op's process holds no fd for (issue 13): fget fails before any length check [seen on 6.18]"),
  rule("mmap.len0", ALL, "EINVAL", "do_mmap", "mm/mmap.c", V.all,
    "a zero-length mapping [seen on 6.18]"),
  rule("mmap.noexec", M618, "EPERM", "do_mmap", "mm/mmap.c", V.v618,
    "6.15+: anon inodes are SB_I_NOEXEC, so PROT_EXEC on a perf fd is EPERM before perf_mmap runs, for MAP_SHARED and MAP_PRIVATE [seen on 6.18]; 6.1.192 and 6.12.117 fs/anon_inodes.c do not set it"),
  rule("mmap.inherit", ALL, "EINVAL", "perf_mmap", CORE, V.all,
    "event->cpu == -1 && attr.inherit: per-task inherited counters cannot be mapped [seen on 6.18]"),
  rule("mmap.shared", ALL, "EINVAL", "perf_mmap", CORE, V.all,
    "!(vm_flags & VM_SHARED): MAP_PRIVATE is refused [seen on 6.18]"),
  rule("mmap.intmax", M618, "ENOMEM", "perf_mmap", CORE, V.v618,
    "nr_pages > INT_MAX before any buffer check (data and AUX); unreachable with MAX_PAGES"),
  rule("mmap.data.pow2", ALL, "EINVAL", "perf_mmap", CORE, V.all,
    "nr_pages = pages - 1 must be 0 or a power of two [seen on 6.18]"),
  rule("mmap.data.size", ALL, "EINVAL", "perf_mmap", CORE, V.all,
    "event->rb exists and has another number of data pages [seen on 6.18]"),
  rule("mmap.data.ebusy", R618, "EBUSY", "perf_mmap_rb", CORE, V.v618,
    "event->rb exists but the event's own mmap_count is 0 (it reaches the buffer only through SET_OUTPUT): EBUSY (Jan 2026 fix, d06bf78e55d5, 6.18.y only: 6.16/6.17 are atomic_t and map it, mmap.data.remap.charged) [seen on 6.18]"),
  rule("mmap.data.remap", NOT618, undefined, "perf_mmap", CORE, `${V.seed}, ${V.lts}`,
    "event->rb exists with the same size: rb->mmap_count++, event->mmap_count++, nothing charged (user_extra is still 0 at unlock:)"),
  rule("mmap.data.remap.charged", M618, undefined, "perf_mmap_rb", CORE, `${V.v616}, ${V.v618}`,
    "6.18: mapping an existing buffer again calls perf_mmap_account(vma, user_extra = vma pages, 0): locked_vm grows by the VMA's pages and no close refunds it (a leak) [seen on 6.18: budget short by the re-mapped pages after teardown]"),
  rule("mmap.data.eperm", ALL, "EPERM", "perf_mmap", CORE, V.all,
    "new buffer: pinned_vm + extra > RLIMIT_MEMLOCK pages && perf_event_paranoid > -1 && !CAP_IPC_LOCK (accounting per acct.limit.*)"),
  rule("mmap.data.new", ALL, undefined, "perf_mmap", CORE, V.all,
    "new buffer: rb_alloc, rb->mmap_count = 1, mmap_locked = extra, mmap_user = current user, user page initialised (data_offset = PAGE_SIZE, data_size), event->rb = rb, event->mmap_count = 1, charges per acct.limit.*"),
  rule("mmap.data.enomem", ALL, "ENOMEM", "rb_alloc", RB, V.all,
    "rb_alloc may fail after the accounting check: nothing changes"),
  rule("mmap.maprange.fail", M618, "ENOMEM", "perf_mmap", CORE, `${V.v618}; ${V.v72}`,
    "map_range() fails (the mapRangeFault switch: -ENOMEM from remap_pfn_range(); data or AUX, after perf_mmap_rb()/perf_mmap_aux() succeeded, which consumes one count of the switch): perf_mmap() undoes the mapping with perf_mmap_close(vma) (f74b9f4ba63f, Aug 2025, also in 6.15.y/6.16.y stable; 7.2.13: a \"minimal perf_mmap_close()\" under event->mmap_mutex when event->mmap_count is 1, i.e. a new buffer, which leaves the same state) and the VMA is freed without ->close(): the state is that of the mmap followed by the munmap of its VMA (a new buffer: as before; a re-map: 6.18's charge stays, as for mmap.data.remap.charged; a new AUX area: refunded to rb->mmap_user, as munmap does), errno ENOMEM. Eras before map_range() (b709eb872e19, v6.14) fault pages lazily and never consume the switch"),
] as const;

/** mmap of a perf fd, the checks before perf_mmap splits into data and AUX (vm_pgoff == 0 or not). */
export const MMAP_DECIDE: readonly Decision<MmapCtx>[] = [
  when("mmap.ebadf", (c) => !c.E.fd),
  when("mmap.len0", (c) => c.op.pages === 0),
  when("mmap.noexec", (c) => (c.prot & P_X_) !== 0),
  when("mmap.inherit", (c) => c.E.cpu === -1 && c.E.inherit),
  when("mmap.shared", (c) => c.op.shared === false),
];

/** perf_mmap, vm_pgoff == 0: size, then an existing buffer (EBUSY, re-map), then a new one. */
export const MMAP_DATA_DECIDE: readonly Decision<MmapCtx>[] = [
  when("mmap.data.pow2", (c) => c.nr !== 0 && !isPow2_(c.nr)),
  when("mmap.data.size", (c) => c.E.rb >= 0 && c.R.nrPages !== c.nr),
  when("mmap.data.ebusy", (c) => c.E.rb >= 0 && c.E.mmapCount === 0),
  when("mmap.data.remap.charged", (c) => c.E.rb >= 0 && c.R.mmapCount !== 0, ["mmap.maprange.fail"]),
  when("mmap.data.remap", (c) => c.E.rb >= 0 && c.R.mmapCount !== 0),
  when("mmap.data.eperm", (c) => !acctOf_(c).ok),
  otherwise("mmap.data.new", ["mmap.data.enomem", "mmap.maprange.fail"]),
];
