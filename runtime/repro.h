/* SPDX-License-Identifier: GPL-2.0 */
/*
 * repro.h: the kselftest driver of the C reproducers (fuzz/repro-c.ts inlines it after
 * auxspec.h, then adds only the case: config, op table, expectations, teardown steps).
 *
 * TAP: one line per op, then the audit (VmPin back to 0, the uid's locked-memory budget back
 * in full, no kernel warnings). Exit: KSFT_PASS when the kernel agrees with the spec,
 * KSFT_FAIL when it diverges, KSFT_SKIP when it cannot run here (no perf permission, no AUX
 * PMU, not root for a sysctl op, a harness failure) or took another allowed path.
 */
#ifndef AUXSPEC_REPRO_H
#define AUXSPEC_REPRO_H
#define KSFT_PASS 0
#define KSFT_FAIL 1
#define KSFT_SKIP 4

/* One op with what the spec allows after it (result codes as in auxspec.h). */
struct ax_step {
	const char *desc;
	struct ax_op op;
	int preferred;
	const int *allowed;
	int nallowed;
	const long *pins;   /* allowed VmPin in kB */
	int npins;
	const long *page;   /* readUserPage: the 5 words the spec predicts, or NULL */
};

struct ax_case {
	const char *profile;
	int nev;
	long nmap;
	long mlock_kb, memlock_pages;
	int cap_ipc_lock, uses_aux, needs_root;
	long expect_vmpin_kb;
	const struct ax_step *steps;
	int nsteps;
	const struct ax_td_step *teardown;
	int nteardown;
};

static int ax_step_fail, ax_step_skip, ax_tap_n;

/* Checks one op's result against the case; prints its TAP line. */
static void ax_check_step(const struct ax_run *r, int i, const struct ax_step *s, int got, long pin)
{
	int ok = 0, pin_ok = 0, k;

	if (ax_step_fail || ax_step_skip) {
		printf("ok %d - %s # SKIP after an earlier result\n", ++ax_tap_n, s->desc);
		return;
	}
	for (k = 0; k < s->nallowed; k++)
		ok |= s->allowed[k] == got;
	for (k = 0; k < s->npins; k++)
		pin_ok |= s->pins[k] == pin;
	if (ok && got == 0 && s->page && s->preferred == 0)
		for (k = 0; k < 5; k++)
			if ((long)r->page[k] != s->page[k]) {
				ok = 0;
				printf("# op %d: user page word %d is %llu, spec says %ld\n", i, k, (unsigned long long)r->page[k], s->page[k]);
			}
	if (!ok || (got == s->preferred && !pin_ok)) {
		printf("not ok %d - %s: got %s VmPin %ld kB; spec allows", ++ax_tap_n, s->desc, ax_result_name(got), pin);
		for (k = 0; k < s->nallowed; k++)
			printf(" %s", ax_result_name(s->allowed[k]));
		printf(" with VmPin");
		for (k = 0; k < s->npins; k++)
			printf(" %ld", s->pins[k]);
		printf(" kB\n");
		ax_step_fail = 1;
		return;
	}
	if (got != s->preferred) {
		printf("ok %d - %s: %s (allowed, but not the recorded path) # SKIP\n", ++ax_tap_n, s->desc, ax_result_name(got));
		ax_step_skip = 1;
		return;
	}
	printf("ok %d - %s: %s\n", ++ax_tap_n, s->desc, ax_result_name(got));
}

static void ax_print_warning(const char *msg, void *arg)
{
	(void)arg;
	printf("# kernel: %s\n", msg);
}

static int ax_repro_main(const struct ax_case *c)
{
	static int fds[4096];
	static unsigned char flip[4096];
	static char param_dir[300];
	struct ax_run r;
	int i, fd, status_fd, kmsg_fd, was_root, harness = 0, warnings;
	long pin, budget, limit, mlock_kb, cpus;

	setvbuf(stdout, NULL, _IONBF, 0);
	printf("TAP version 13\n1..%d\n", c->nsteps + 3);
	if (c->nev > 4096 || c->nmap > 4096) {
		printf("1..0 # SKIP more handles than this reproducer's tables hold\n");
		return KSFT_SKIP;
	}
	ax_run_init(&r, fds, c->nev, flip, c->nmap);
	fd = ax_perf_open(PERF_TYPE_SOFTWARE, PERF_COUNT_SW_DUMMY, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);
	if (fd < 0) {
		printf("# perf_event_open: %s (see /proc/sys/kernel/perf_event_paranoid)\n", strerror(errno));
		printf("1..0 # SKIP perf not permitted\n");
		return KSFT_SKIP;
	}
	close(fd);
	if (c->uses_aux) {
		if ((r.aux_type = ax_find_aux_pmu(param_dir, sizeof(param_dir))) < 0) {
			printf("1..0 # SKIP no AUX-capable PMU (intel_pt, cs_etm, arm_spe, auxspec_pmu ...)\n");
			return KSFT_SKIP;
		}
		r.aux_param_dir = param_dir;
	}
	mlock_kb = ax_read_long(AX_PROC_MLOCK);
	cpus = sysconf(_SC_NPROCESSORS_ONLN);
	was_root = geteuid() == 0;
	if (c->needs_root && !was_root) {
		printf("1..0 # SKIP needs root (sysctl or test PMU parameter)\n");
		return KSFT_SKIP;
	}
	if (c->cap_ipc_lock && !was_root) {
		printf("1..0 # SKIP the case needs CAP_IPC_LOCK\n");
		return KSFT_SKIP;
	}
	if (mlock_kb != c->mlock_kb)
		printf("# note: perf_event_mlock_kb is %ld here, the case was made with %ld\n", mlock_kb, c->mlock_kb);
	status_fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	kmsg_fd = was_root ? ax_kmsg_open() : -1;
	if (was_root)
		ax_raise_memlock_hard(); /* the spec's rlimit ops leave the hard limit unlimited */
	ax_set_memlock(c->memlock_pages);
	if (was_root) {
		/* A fresh uid: user->locked_vm is per uid and outlives processes. Keep saved uid 0 for sysctls. */
		r.uid = 400000 + (getpid() % 100000);
		if (ax_switch_uid(r.uid)) {
			perror("setresuid");
			return KSFT_SKIP;
		}
		r.cap_ipc_lock = c->cap_ipc_lock;
		if (ax_set_ipc_lock(r.cap_ipc_lock)) {
			printf("1..0 # SKIP cannot set CAP_IPC_LOCK as the case says\n");
			return KSFT_SKIP;
		}
	} else {
		printf("# not root: accounting is shared with this user's other processes\n");
	}

	for (i = 0; i < c->nsteps && !harness; i++) {
		int got = ax_run_op(&r, &c->steps[i].op);
		if (got == AX_HARNESS) {
			printf("# harness failure at op %d: %s\n", i, ax_harness_msg);
			harness = 1;
			break;
		}
		ax_check_step(&r, i, &c->steps[i], got, ax_vmpin_kb(status_fd));
	}

	/* Teardown, as every auxspec backend does it (spec/audit.ts teardownSteps). */
	for (i = 0; i < c->nteardown; i++) {
		const struct ax_td_step *t = &c->teardown[i];
		if (t->kind == 'r')
			ax_td_restore(&r, c->mlock_kb);
		else if (t->kind == 'u')
			ax_td_munmap(&r, t->h, t->slot);
		else {
			if (i == 0 || c->teardown[i - 1].kind != 'c')
				ax_td_strays(&r);
			ax_td_close(&r, t->h);
		}
	}
	ax_td_strays(&r);
	if (harness) {
		printf("# SKIP: the harness failed; nothing was judged\n");
		return KSFT_SKIP;
	}
	pin = ax_vmpin_kb(status_fd);
	if (pin == c->expect_vmpin_kb && pin == 0)
		printf("ok %d - audit: VmPin back to 0\n", ++ax_tap_n);
	else {
		printf("not ok %d - audit: VmPin %ld kB after teardown (conservation wants 0; the spec predicted %ld)\n", ++ax_tap_n, pin, c->expect_vmpin_kb);
		ax_step_fail = 1;
	}
	if (was_root) {
		usleep(50000); /* let deferred frees settle */
		limit = ax_budget_limit(mlock_kb, cpus);
		budget = ax_budget_prepare(pin) ? -1 : ax_budget_probe(ax_budget_cap(mlock_kb, cpus));
		if (budget < 0)
			printf("ok %d - audit: budget probe # SKIP harness: %s\n", ++ax_tap_n, ax_harness_msg[0] ? ax_harness_msg : "cannot drop CAP_IPC_LOCK or set RLIMIT_MEMLOCK");
		else if (budget == limit)
			printf("ok %d - audit: locked-memory budget %ld pages back in full\n", ++ax_tap_n, budget);
		else {
			printf("not ok %d - audit: locked-memory budget %ld pages, conservation wants %ld (user->locked_vm %s)\n",
			       ++ax_tap_n, budget, limit, budget < limit ? "leaked" : "over-refunded");
			ax_step_fail = 1;
		}
	} else {
		printf("ok %d - audit: budget probe # SKIP not root\n", ++ax_tap_n);
	}
	warnings = ax_kmsg_warnings(kmsg_fd, getpid(), ax_print_warning, NULL);
	if (kmsg_fd < 0 || warnings < 0)
		printf("ok %d - audit: kernel log # SKIP %s\n", ++ax_tap_n, kmsg_fd < 0 ? "cannot read /dev/kmsg" : "the warning pattern does not compile");
	else if (warnings == 0)
		printf("ok %d - audit: no kernel warnings\n", ++ax_tap_n);
	else {
		printf("not ok %d - audit: %d kernel warning(s) during the program\n", ++ax_tap_n, warnings);
		ax_step_fail = 1;
	}
	if (ax_step_fail) {
		printf("# FAIL: the kernel diverges from the spec (profile %s)\n", c->profile);
		return KSFT_FAIL;
	}
	if (ax_step_skip) {
		printf("# SKIP: the kernel took another allowed path\n");
		return KSFT_SKIP;
	}
	printf("# PASS: the kernel agrees with the spec (profile %s)\n", c->profile);
	return KSFT_PASS;
}
#endif
