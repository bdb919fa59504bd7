/**
 * perf_mmap() for vm_pgoff != 0: the AUX area. The checks run under event->mmap_mutex in
 * the order written here; the size checks read aux_offset/aux_size from the user page.
 * The seed introduced all of them (perf-aux-area-v8.patch); later kernels kept the order.
 */
import { ALL, CORE, LTS, M618, MODERN, NOT618, PATCH, PRE_FIX, R618, RB, SEED, V, V510, rule } from "./types.ts";
import { acctOf } from "../model/perf.ts";
import { PAGE, P_W, isPow2 } from "../model/state.ts";
import type { MmapCtx } from "./context.ts";
import { otherwise, when, type Decision } from "./decision.ts";

// Module-local copies of hot imports: tsx compiles an imported binding to a getter call
// per use, which V8 does not always inline; guards and the step run millions of times.
const acctOf_ = acctOf, PAGE_ = PAGE, isPow2_ = isPow2, P_W_ = P_W;

export const MMAP_AUX_RULES = [
  rule("mmap.aux.norb", ALL, "EINVAL", "perf_mmap", CORE, V.all,
    "AUX mapping of an event without a buffer: EINVAL before any size check [seen on 6.18]"),
  rule("mmap.aux.intmax", LTS, "ENOMEM", "perf_mmap", CORE, V.lts,
    "nr_pages > INT_MAX after the !rb check (AUX only in 6.1/6.12); unreachable with MAX_PAGES"),
  rule("mmap.aux.overlap", ALL, "EINVAL", "perf_mmap", CORE, V.all,
    "aux_offset < perf_data_size(rb) + PAGE_SIZE: the AUX area must lie above the data area [seen on 6.18]"),
  rule("mmap.aux.offset", ALL, "EINVAL", "perf_mmap", CORE, V.all,
    "aux_offset != vm_pgoff << PAGE_SHIFT"),
  rule("mmap.aux.pgoff-mismatch", ALL, "EINVAL", "perf_mmap", CORE, V.all,
    "rb_has_aux(rb) && rb->aux_pgoff != vm_pgoff: already mapped at another offset"),
  rule("mmap.aux.size", ALL, "EINVAL", "perf_mmap", CORE, V.all,
    "aux_size != vma_size || aux_size != nr_pages * PAGE_SIZE (6.18 dropped the first, redundant half: vma_size is nr_pages * PAGE_SIZE) [seen on 6.18]"),
  rule("mmap.aux.nr-mismatch", ALL, "EINVAL", "perf_mmap", CORE, V.all,
    "rb_has_aux(rb) && rb->aux_nr_pages != nr_pages: already mapped with another size"),
  rule("mmap.aux.pow2", ALL, "EINVAL", "perf_mmap", CORE, V.all,
    "!is_power_of_2(nr_pages) [seen on 6.18]"),
  rule("mmap.aux.rb-unmapped", ALL, "EINVAL", "perf_mmap", CORE, V.all,
    "!atomic_inc_not_zero(&rb->mmap_count): the buffer is being torn down; single-threaded only on 6.18, where an event whose count saturated (mmap.aux.redirected.warn) keeps a buffer whose last VMA is gone (7.2's close order detaches it)"),
  rule("mmap.aux.remap", NOT618, undefined, "perf_mmap", CORE, `${V.seed}, ${V.lts}`,
    "rb_has_aux(rb): aux_mmap_count++, rb->mmap_count++, event->mmap_count++, nothing charged"),
  rule("mmap.aux.remap.charged", M618, undefined, "perf_mmap_aux", CORE, `${V.v616}, ${V.v618}`,
    "6.15+: an existing AUX area mapped again: perf_mmap_account(vma, user_extra = nr_pages, 0) (6.16: `ret = 0; goto unlock;` with user_extra already nr_pages, 0c8a4e4139ad) charges locked_vm and nothing refunds it (same leak as mmap.data.remap.charged)"),
  rule("mmap.aux.redirected.warn", R618, undefined, "perf_mmap_aux", CORE, V.v618,
    "6.18: AUX mapping through an event whose mmap_count is 0 (it reaches the buffer through SET_OUTPUT): refcount_inc(&event->mmap_count) from 0 WARNs and saturates; the mapping succeeds"),
  rule("mmap.aux.count-early", [...SEED, ...PRE_FIX], undefined, "perf_mmap", CORE, `${V.seed}, ${V.v61pre}, ${V.v612pre}`,
    "atomic_set(&rb->aux_mmap_count, 1) before the accounting check: a failed AUX mmap leaves aux_mmap_count at 1 (fixed by 5468c0fbccbb, Aug 2025)"),
  rule("mmap.aux.eperm", ALL, "EPERM", "perf_mmap", CORE, V.all,
    "new AUX area over the limit: EPERM, before rb_alloc_aux, so a software event over its limit gets EPERM, not EOPNOTSUPP [seen on 6.18]; rb->mmap_count is dropped again"),
  rule("mmap.aux.nosetup.enotsupp", SEED, "ENOTSUPP", "rb_alloc_aux", PATCH, V.seed,
    "the event's PMU has no setup_aux: -ENOTSUPP (524, a kernel-internal errno userspace sees as 524)"),
  rule("mmap.aux.nosetup", MODERN, "EOPNOTSUPP", "rb_alloc_aux", RB, V.modern,
    "the event's PMU has no setup_aux: -EOPNOTSUPP [seen on 6.18]"),
  rule("mmap.aux.rw-single", V510, "EINVAL", "rb_alloc_aux", RB, `${V.v510}, ${V.v510pre}`,
    "5.10: a writable (RING_BUFFER_WRITABLE, i.e. VM_WRITE) AUX area of 1 page: `if (!overwrite) { if (!max_order) return -EINVAL; ...}` after the has_aux check, before any allocation; perf_mmap drops rb->mmap_count, charges nothing (pre-fix: aux_mmap_count stays 1). 6.1 sizes the chunks from the watermark instead"),
  rule("mmap.aux.new", ALL, undefined, "rb_alloc_aux", RB, V.all,
    "AUX area allocated: aux_nr_pages, aux_pgoff, aux_refcount = 1, setup_aux private data, aux_mmap_count = 1, aux_mmap_locked = extra, charges per acct.limit.*"),
  rule("mmap.aux.enomem", ALL, "ENOMEM", "rb_alloc_aux", RB, V.all,
    "page or page-array allocation fails: -ENOMEM; 6.1+ free what was allocated (__rb_free_aux); rb->mmap_count dropped"),
  rule("mmap.aux.setup-refused", ALL, "ENOMEM", "rb_alloc_aux", RB, V.all,
    "the PMU's setup_aux returns NULL (auxFault, or the PMU refuses the layout): -ENOMEM"),
  rule("mmap.aux.fail-keeps-pages", SEED, undefined, "rb_alloc_aux", PATCH, V.seed,
    "seed failure path calls rb_free_aux() with aux_refcount 0: atomic_dec_and_test(0) is false, so the pages stay, aux_nr_pages stays set (rb_has_aux true) and aux_pgoff keeps its old value (6.1+ call __rb_free_aux directly)"),
  rule("mmap.aux.to-page-stale", SEED, undefined, "perf_mmap_to_page", PATCH, V.seed,
    "with a stale aux_nr_pages, perf_mmap_to_page maps pgoffs from the stale aux_pgoff (0 if never set) to AUX pages and returns NULL above aux_pgoff + aux_nr_pages, so data pages faulted later become AUX pages or SIGBUS"),
] as const;

/**
 * perf_mmap, vm_pgoff != 0, in the order above. A refcount_t increment of an event
 * mmap_count of 0 (6.18) turns a re-map or a new area into mmap.aux.redirected.warn.
 */
export const MMAP_AUX_DECIDE: readonly Decision<MmapCtx>[] = [
  when("mmap.aux.norb", (c) => c.E.rb < 0),
  when("mmap.aux.overlap", (c) => c.R.auxOffset < (c.R.nrPages + 1) * PAGE_),
  when("mmap.aux.offset", (c) => c.R.auxOffset !== c.op.pgoff * PAGE_),
  when("mmap.aux.pgoff-mismatch", (c) => c.hasAux && c.R.auxPgoff !== c.op.pgoff),
  when("mmap.aux.size", (c) => c.R.auxSize !== c.op.pages * PAGE_),
  when("mmap.aux.nr-mismatch", (c) => c.hasAux && c.R.auxNrPages !== c.op.pages),
  when("mmap.aux.pow2", (c) => !isPow2_(c.op.pages)),
  when("mmap.aux.rb-unmapped", (c) => c.R.mmapCount === 0),
  when("mmap.aux.remap.charged", (c) => c.hasAux, ["mmap.aux.redirected.warn", "mmap.maprange.fail"]),
  when("mmap.aux.remap", (c) => c.hasAux),
  when("mmap.aux.eperm", (c) => !acctOf_(c).ok),
  when("mmap.aux.nosetup.enotsupp", (c) => !c.E.aux),
  when("mmap.aux.nosetup", (c) => !c.E.aux),
  when("mmap.aux.rw-single", (c) => c.op.pages === 1 && (c.prot & P_W_) !== 0),
  when("mmap.aux.setup-refused", (c) => c.s.auxFault),
  otherwise("mmap.aux.new", ["mmap.aux.redirected.warn", "mmap.aux.enomem", "mmap.aux.setup-refused", "mmap.maprange.fail"]),
];
