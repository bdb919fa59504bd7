/**
 * Page access through a handle: touch (one byte), setAux (writes aux_offset/aux_size into
 * page 0) and readUserPage (reads data_offset .. aux_size from page 0).
 * perf_mmap_fault (3.18..6.13, lazy) and map_range + pfn_mkwrite (6.14+, all pages at
 * mmap) agree: reads of covered pages work, writes work only on the user page (pgoff 0)
 * of a PROT_WRITE VMA, any other write is SIGBUS, a write to a read-only VMA or any access
 * to a PROT_NONE VMA or an unmapped address is SIGSEGV.
 */
import { ALL, CORE, V, rule } from "./types.ts";
import { P_W } from "../model/state.ts";
import type { PageCtx } from "./context.ts";
import { proc, when, type Decision } from "./decision.ts";

// Module-local copies of hot imports: tsx compiles an imported binding to a getter call
// per use, which V8 does not always inline; guards and the step run millions of times.
const P_W_ = P_W;

export const TOUCH_RULES = [
  rule("touch.ok", ALL, undefined, "perf_mmap_fault", CORE, V.all,
    "read of a covered page, or write of the user page of a PROT_WRITE VMA [seen on 6.18]"),
  rule("touch.anon", ALL, undefined, "handle_mm_fault", "mm/memory.c", V.all,
    "access to an anonymous rw VMA"),
  rule("touch.unmapped", ALL, undefined, "do_user_addr_fault", "arch/x86/mm/fault.c", V.all,
    "no VMA at the address: SIGSEGV [seen on 6.18]"),
  rule("touch.prot", ALL, undefined, "do_user_addr_fault", "arch/x86/mm/fault.c", V.all,
    "write to a VMA without PROT_WRITE, or any access to a PROT_NONE VMA: SIGSEGV [seen on 6.18]"),
  rule("touch.write-nonuser", ALL, undefined, "perf_mmap_fault", CORE, V.all,
    "write to any page but pgoff 0 (data or AUX), even PROT_WRITE: SIGBUS (fault with FAULT_FLAG_WRITE, page_mkwrite, or 6.18 pfn_mkwrite) [seen on 6.18]"),
  rule("touch.norb", ALL, undefined, "perf_mmap_fault", CORE, V.all,
    "the event has no buffer any more: SIGBUS"),
  rule("touch.beyond", ALL, undefined, "perf_mmap_to_page", "kernel/events/ring_buffer.c", V.all,
    "the VMA page's pgoff is not backed by the buffer (above the data pages and outside the AUX area): SIGBUS"),
  rule("setaux.ok", ALL, undefined, "perf_mmap_fault", CORE, V.all,
    "aux_offset/aux_size written into the buffer's user page"),
  rule("setaux.anon", ALL, undefined, "handle_mm_fault", "mm/memory.c", V.all,
    "page 0 is anonymous memory: written there, perf never sees it"),
  rule("setaux.unmapped", ALL, undefined, "do_user_addr_fault", "arch/x86/mm/fault.c", V.all,
    "page 0 unmapped: SIGSEGV"),
  rule("setaux.prot", ALL, undefined, "do_user_addr_fault", "arch/x86/mm/fault.c", V.all,
    "page 0 not writable (PROT_READ, PROT_NONE): SIGSEGV [seen on 6.18]"),
  rule("setaux.nonuser", ALL, undefined, "perf_mmap_fault", CORE, V.all,
    "page 0 of the handle is not a user page (an AUX VMA, or a piece starting at pgoff != 0): the write is SIGBUS"),
  rule("setaux.norb", ALL, undefined, "perf_mmap_fault", CORE, V.all,
    "the event behind page 0 has no buffer: SIGBUS"),
  rule("readpage.user", ALL, undefined, "perf_event_init_userpage", CORE, V.all,
    "page 0 is a buffer's user page: data_offset = PAGE_SIZE, data_size = nr_pages * PAGE_SIZE, aux_head 0 (events are disabled), aux_offset/aux_size as last written [seen on 6.18]"),
  rule("readpage.other", ALL, undefined, "perf_mmap_to_page", "kernel/events/ring_buffer.c", V.all,
    "page 0 is a data or AUX page: all fields read 0"),
  rule("readpage.anon", ALL, undefined, "handle_mm_fault", "mm/memory.c", V.all,
    "page 0 is anonymous memory: zeros, or what setAux wrote there"),
  rule("readpage.unmapped", ALL, undefined, "do_user_addr_fault", "arch/x86/mm/fault.c", V.all,
    "page 0 unmapped: SIGSEGV"),
  rule("readpage.prot", ALL, undefined, "do_user_addr_fault", "arch/x86/mm/fault.c", V.all,
    "page 0 PROT_NONE: SIGSEGV"),
  rule("readpage.norb", ALL, undefined, "perf_mmap_fault", CORE, V.all,
    "the event behind page 0 has no buffer: SIGBUS"),
  rule("readpage.beyond", ALL, undefined, "perf_mmap_to_page", "kernel/events/ring_buffer.c", V.all,
    "page 0's pgoff is not backed by the buffer: SIGBUS"),
] as const;

/** The fault path (resolve in spec/model/mm.ts) decides what a perf page access gives. */
export const TOUCH_DECIDE: readonly Decision<PageCtx<"touch">>[] = [
  when("touch.unmapped", (c) => c.idx < 0),
  when("touch.prot", (c) => c.v.prot === 0 || (c.op.write && (c.v.prot & P_W_) === 0)),
  when("touch.anon", (c) => c.v.ev < 0),
  proc("fault", ["touch.ok", "touch.norb", "touch.write-nonuser", "touch.beyond"]),
];

export const SETAUX_DECIDE: readonly Decision<PageCtx<"setAux">>[] = [
  when("setaux.unmapped", (c) => c.idx < 0),
  when("setaux.prot", (c) => (c.v.prot & P_W_) === 0),
  when("setaux.anon", (c) => c.v.ev < 0),
  proc("fault", ["setaux.ok", "setaux.norb", "setaux.nonuser"]),
];

export const READPAGE_DECIDE: readonly Decision<PageCtx<"readUserPage">>[] = [
  when("readpage.unmapped", (c) => c.idx < 0),
  when("readpage.prot", (c) => c.v.prot === 0),
  when("readpage.anon", (c) => c.v.ev < 0),
  proc("fault", ["readpage.user", "readpage.other", "readpage.norb", "readpage.beyond"]),
];
