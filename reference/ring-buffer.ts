/**
 * Ring buffers (kernel/events/ring_buffer.c): rb_alloc(), rb_alloc_aux(), rb_free_aux(),
 * perf_mmap_to_page(), and data_page_nr() as perf_mmap() uses it.
 */
import { PerfBuffer, PerfEvent, zeroPage, type PageId } from "./objects.ts";
import { ENOMEM, type Err } from "./common.ts";
import { refDecAndTest } from "./refcount.ts";
import type { Kernel } from "./kernel.ts";

/** rb_alloc() never fails in the model. */
export function rbAlloc(k: Kernel, nrPages: number, writable: boolean): PerfBuffer {
  const rb = new PerfBuffer(k.buffers.length, nrPages, !writable);
  k.buffers.push(rb);
  return rb;
}

export function rbHasAux(rb: PerfBuffer): boolean {
  return rb.auxNrPages !== 0;
}

/** rb_alloc_aux() (ring_buffer.c). 6.1: failure runs __rb_free_aux(); the seed runs
 *  rb_free_aux(), whose atomic_dec_and_test() of a zero aux_refcount never frees: the pages
 *  stay and aux_nr_pages keeps counting them (so rb_has_aux() turns true). */
export function rbAllocAux(k: Kernel, rb: PerfBuffer, event: PerfEvent, pgoff: number, nrPages: number, writable: boolean): Err {
  if (!event.hasAux) return k.era.enotsupp;
  // the pages are allocated (never fails here) ...
  if (k.auxFail) {
    // ... setup_aux() returns NULL: goto out with ret = -ENOMEM
    if (k.era.perf === "seed") {
      rb.auxNrPages = nrPages;
      rb.auxPages = null;
      rb.auxRefcount -= 1;
    } else {
      rb.auxNrPages = 0; // __rb_free_aux(): aux_priv is NULL, pages freed
    }
    return ENOMEM;
  }
  rb.auxNrPages = nrPages;
  rb.auxPages = null;
  rb.auxPriv = true;
  k.auxSetups++;
  k.auxLive++;
  rb.auxRefcount = 1;
  rb.auxOverwrite = !writable;
  rb.auxPgoff = pgoff;
  return null;
}

/** rb_free_aux(): drop aux_refcount; the last drop runs __rb_free_aux() (free_aux, pages). */
export function rbFreeAux(k: Kernel, rb: PerfBuffer): void {
  const [v, zero] = refDecAndTest(k, rb.auxRefcount, "rb->aux_refcount", k.era.auxRefcountT);
  rb.auxRefcount = v;
  if (!zero) return;
  if (rb.auxPriv) {
    rb.auxPriv = false;
    k.auxFrees++;
    k.auxLive--;
  }
  rb.auxNrPages = 0;
}

/** perf_mmap_to_page() (ring_buffer.c, !CONFIG_PERF_USE_VMALLOC). */
export function perfMmapToPage(rb: PerfBuffer, pgoff: number): PageId | null {
  if (rb.auxNrPages) {
    if (pgoff > rb.auxPgoff + rb.auxNrPages) return null; // above AUX space
    if (pgoff >= rb.auxPgoff) { // AUX space: aux_pages[array_index_nospec(pgoff - aux_pgoff, aux_nr_pages)]
      let i = pgoff - rb.auxPgoff;
      if (i >= rb.auxNrPages) i = 0;
      rb.auxPages ??= [];
      return (rb.auxPages[i] ??= zeroPage());
    }
  }
  if (pgoff > rb.nrPages) return null;
  return pgoff === 0 ? rb.userPage : 0;
}

/** Whether perf_mmap_to_page() finds a page (map_range()'s test), without touching pages. */
export function perfMmapHasPage(rb: PerfBuffer, pgoff: number): boolean {
  if (rb.auxNrPages && pgoff >= rb.auxPgoff) return pgoff <= rb.auxPgoff + rb.auxNrPages;
  return pgoff <= rb.nrPages;
}

/** The size perf_mmap() compares a re-mapping with: data_page_nr(rb) (== rb->nr_pages on x86);
 *  bug vmalloc-data-page-nr: rb->nr_pages of a CONFIG_PERF_USE_VMALLOC kernel (one block). */
export function mappedNrPages(k: Kernel, rb: PerfBuffer): number {
  if (k.bug.vmallocDataPageNr) return rb.nrPages === 0 ? 0 : 1;
  return rb.nrPages;
}
