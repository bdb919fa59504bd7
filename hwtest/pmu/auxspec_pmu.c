// SPDX-License-Identifier: GPL-2.0
/*
 * auxspec_pmu: an AUX-capable test PMU for auxspec's VM backend.
 *
 * It lets real kernels run perf's AUX-area mmap/munmap/refcount paths (perf_mmap,
 * rb_alloc_aux, rb_free_aux, perf_mmap_close) on machines without Intel PT or any other
 * AUX-capable hardware. It counts nothing and samples nothing; what matters is that
 * `pmu->setup_aux` is set (has_aux(), kernel/events/internal.h) so that an AUX mmap
 * reaches rb_alloc_aux (kernel/events/ring_buffer.c, 6.1 and 6.12), and that setup_aux /
 * free_aux calls are counted, so the harness can check that every AUX area allocated was
 * freed exactly once ("live" back to 0 after every program).
 *
 * Registration: perf_pmu_register(&pmu, "auxspec_pmu", -1) gives a dynamic type, read by
 * userspace from /sys/bus/event_source/devices/auxspec_pmu/type. task_ctx_nr is
 * perf_sw_context: a PMU with perf_invalid_context refuses per-task events with EINVAL
 * (perf_event_alloc/find_get_context, 6.1), and the harness opens per-task events.
 *
 * Parameters (/sys/module/auxspec_pmu/parameters/):
 *   fail_setup_aux (rw bool): setup_aux returns NULL, so rb_alloc_aux fails and the AUX
 *                             mmap returns ENOMEM (fault injection, op `auxFault`).
 *   setups (ro int): setup_aux calls that succeeded.
 *   frees  (ro int): free_aux calls.
 *   live   (ro int): AUX areas set up and not yet freed.
 *   write_bytes (rw int, default 8): bytes written into the AUX area on each `stop` of a
 *                             running event (moves aux_head, emits PERF_RECORD_AUX). The
 *                             harness opens events disabled, so this normally never runs.
 *   reset_counts (wo): writing anything sets setups and frees to 0 (live is left alone: an
 *                             area leaked by an earlier program stays visible). The VM harness
 *                             writes it before each program, so the audit's counts are that
 *                             program's own.
 *   selftest_warn (wo): writing anything raises a WARN ("auxspec_pmu: selftest warning"),
 *                             so the harness can check that it sees kernel warnings.
 */
#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/perf_event.h>
#include <linux/slab.h>
#include <linux/atomic.h>
#include <linux/moduleparam.h>
#include <linux/mm.h>

struct auxspec_buf {
	void **pages;
	int nr_pages;
	bool overwrite;
};

struct auxspec_ctx {
	struct perf_output_handle handle;
};

static bool fail_setup_aux;
module_param(fail_setup_aux, bool, 0644);
MODULE_PARM_DESC(fail_setup_aux, "setup_aux returns NULL (AUX mmap fails with ENOMEM)");

static int write_bytes = 8;
module_param(write_bytes, int, 0644);
MODULE_PARM_DESC(write_bytes, "bytes written into the AUX area per stop of a running event");

static atomic_t setups = ATOMIC_INIT(0);
static atomic_t frees = ATOMIC_INIT(0);
static atomic_t live = ATOMIC_INIT(0);

static int param_get_atomic(char *buffer, const struct kernel_param *kp)
{
	return sprintf(buffer, "%d\n", atomic_read((atomic_t *)kp->arg));
}

static const struct kernel_param_ops param_ops_ro_atomic = {
	.get = param_get_atomic,
};

module_param_cb(setups, &param_ops_ro_atomic, &setups, 0444);
MODULE_PARM_DESC(setups, "setup_aux calls that succeeded");
module_param_cb(frees, &param_ops_ro_atomic, &frees, 0444);
MODULE_PARM_DESC(frees, "free_aux calls");
module_param_cb(live, &param_ops_ro_atomic, &live, 0444);
MODULE_PARM_DESC(live, "AUX areas set up and not yet freed");

static int param_set_reset(const char *val, const struct kernel_param *kp)
{
	atomic_set(&setups, 0);
	atomic_set(&frees, 0);
	return 0;
}

static const struct kernel_param_ops param_ops_reset = {
	.set = param_set_reset,
};
module_param_cb(reset_counts, &param_ops_reset, NULL, 0200);
MODULE_PARM_DESC(reset_counts, "write anything: setups and frees back to 0 (live unchanged)");

static int param_set_warn(const char *val, const struct kernel_param *kp)
{
	WARN(1, "auxspec_pmu: selftest warning\n");
	return 0;
}

static const struct kernel_param_ops param_ops_warn = {
	.set = param_set_warn,
};
module_param_cb(selftest_warn, &param_ops_warn, NULL, 0200);
MODULE_PARM_DESC(selftest_warn, "write anything: raise a WARN (tests the harness's kernel-log scan)");

static struct pmu auxspec_pmu;
static DEFINE_PER_CPU(struct auxspec_ctx, auxspec_ctx);

static int auxspec_event_init(struct perf_event *event)
{
	if (event->attr.type != auxspec_pmu.type)
		return -ENOENT;
	/* No counting, no sampling: a plain AUX producer. */
	if (is_sampling_event(event))
		return -EOPNOTSUPP;
	return 0;
}

/* Write a few bytes into the AUX area through the AUX output API (perf_aux_output_begin/end,
 * kernel/events/ring_buffer.c). Runs with the context lock held and IRQs off (event_sched_out
 * -> pmu->del -> stop), which is what perf_aux_output_begin expects. */
static void auxspec_emit(struct perf_event *event)
{
	struct perf_output_handle *handle = &this_cpu_ptr(&auxspec_ctx)->handle;
	struct auxspec_buf *buf;
	unsigned long want, done = 0;
	int n = READ_ONCE(write_bytes);

	if (n <= 0)
		return;
	buf = perf_aux_output_begin(handle, event);
	if (!buf)
		return;
	want = min_t(unsigned long, (unsigned long)n, handle->size);
	while (done < want) {
		unsigned long head = handle->head + done;
		unsigned long pg = (head >> PAGE_SHIFT) % buf->nr_pages;
		unsigned long off = head & (PAGE_SIZE - 1);
		unsigned long chunk = min_t(unsigned long, want - done, PAGE_SIZE - off);

		memset((char *)buf->pages[pg] + off, 0xa5, chunk);
		done += chunk;
	}
	perf_aux_output_end(handle, done);
}

static void auxspec_start(struct perf_event *event, int flags)
{
	event->hw.state = 0;
}

static void auxspec_stop(struct perf_event *event, int flags)
{
	if (event->hw.state & PERF_HES_STOPPED)
		return;
	event->hw.state |= PERF_HES_STOPPED | PERF_HES_UPTODATE;
	auxspec_emit(event);
}

static int auxspec_add(struct perf_event *event, int flags)
{
	event->hw.state = PERF_HES_STOPPED | PERF_HES_UPTODATE;
	if (flags & PERF_EF_START)
		auxspec_start(event, PERF_EF_RELOAD);
	return 0;
}

static void auxspec_del(struct perf_event *event, int flags)
{
	auxspec_stop(event, PERF_EF_UPDATE);
}

static void auxspec_read(struct perf_event *event)
{
}

static void *auxspec_setup_aux(struct perf_event *event, void **pages, int nr_pages, bool overwrite)
{
	struct auxspec_buf *buf;

	if (READ_ONCE(fail_setup_aux) || nr_pages <= 0)
		return NULL;
	buf = kzalloc(sizeof(*buf), GFP_KERNEL);
	if (!buf)
		return NULL;
	buf->pages = kcalloc(nr_pages, sizeof(void *), GFP_KERNEL);
	if (!buf->pages) {
		kfree(buf);
		return NULL;
	}
	memcpy(buf->pages, pages, nr_pages * sizeof(void *));
	buf->nr_pages = nr_pages;
	buf->overwrite = overwrite;
	atomic_inc(&setups);
	atomic_inc(&live);
	return buf;
}

static void auxspec_free_aux(void *data)
{
	struct auxspec_buf *buf = data;

	atomic_inc(&frees);
	if (atomic_dec_return(&live) < 0)
		WARN_ONCE(1, "auxspec_pmu: free_aux without a live AUX area\n");
	kfree(buf->pages);
	kfree(buf);
}

static struct pmu auxspec_pmu = {
	.module		= THIS_MODULE,
	.task_ctx_nr	= perf_sw_context,
	.capabilities	= PERF_PMU_CAP_NO_INTERRUPT,	/* no sampling; exclude_* bits are fine */
	.event_init	= auxspec_event_init,
	.add		= auxspec_add,
	.del		= auxspec_del,
	.start		= auxspec_start,
	.stop		= auxspec_stop,
	.read		= auxspec_read,
	.setup_aux	= auxspec_setup_aux,
	.free_aux	= auxspec_free_aux,
};

static int __init auxspec_init(void)
{
	int ret = perf_pmu_register(&auxspec_pmu, "auxspec_pmu", -1);

	if (ret)
		pr_err("auxspec_pmu: perf_pmu_register failed: %d\n", ret);
	else
		pr_info("auxspec_pmu: registered, type %d\n", auxspec_pmu.type);
	return ret;
}

static void __exit auxspec_exit(void)
{
	perf_pmu_unregister(&auxspec_pmu);
}

module_init(auxspec_init);
module_exit(auxspec_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("auxspec test PMU: an AUX-capable PMU without hardware");
