/* SPDX-License-Identifier: GPL-2.0 */
/*
 * repro-procs.h: the kselftest driver of a C reproducer whose case has several processes or
 * users (fuzz/repro-c.ts inlines auxspec.h, repro.h, procs.h and this file; single-process
 * cases use repro.h's ax_repro_main alone). The same TAP lines and exit codes as ax_repro_main;
 * what differs: each op runs in its process (runtime/procs.h), its VmPin is that process's, the
 * teardown has the `exit` steps of spec/audit.ts ('x': a live child exits, in fork order), and
 * the audit probes the budget of every user the case names (u0 and each setuid user: one TAP
 * line each; conservation wants each back in full).
 */
#ifndef AUXSPEC_REPRO_PROCS_H
#define AUXSPEC_REPRO_PROCS_H

struct ax_case_procs {
	const struct ax_case *c;
	const int *step_procs;  /* op -> its process (spec/program.ts opProc) */
	const int *users;       /* user handles named by setuid, besides u0 */
	int nusers;
	int cap_setuid;         /* config.capSetuid of the case */
};

/* One user's budget TAP line: `uid`'s budget probed from p0 (switching p0 to it). */
static void ax_budget_line(struct ax_run *r, int root, unsigned uid, const char *user, long pin, long mlock_kb, long cpus)
{
	long limit = ax_budget_limit(mlock_kb, cpus), budget = -1;

	if (r->uid != uid && ax_setuid(r, root, uid))
		budget = -1;
	else
		budget = ax_budget_prepare(pin) ? -1 : ax_budget_probe(ax_budget_cap(mlock_kb, cpus));
	if (budget < 0)
		printf("ok %d - audit: %s budget probe # SKIP harness: %s\n", ++ax_tap_n, user, ax_harness_msg[0] ? ax_harness_msg : "cannot drop CAP_IPC_LOCK or set RLIMIT_MEMLOCK");
	else if (budget == limit)
		printf("ok %d - audit: %s locked-memory budget %ld pages back in full\n", ++ax_tap_n, user, budget);
	else {
		printf("not ok %d - audit: %s locked-memory budget %ld pages, conservation wants %ld (user->locked_vm %s)\n",
		       ++ax_tap_n, user, budget, limit, budget < limit ? "leaked" : "over-refunded");
		ax_step_fail = 1;
	}
}

static int ax_repro_procs_main(const struct ax_case_procs *cp)
{
	static int fds[4096];
	static unsigned char flip[4096];
	static char param_dir[300];
	const struct ax_case *c = cp->c;
	struct ax_procs P;
	struct ax_run r;
	int i, fd, status_fd, kmsg_fd, was_root, harness = 0, warnings;
	long pin, mlock_kb, cpus;
	unsigned uid0;

	setvbuf(stdout, NULL, _IONBF, 0);
	printf("TAP version 13\n1..%d\n", c->nsteps + 3 + cp->nusers);
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
	if (cp->nusers && cp->cap_setuid != was_root) {
		printf("1..0 # SKIP the case was made for a machine %s setuid to fresh uids (config.capSetuid %s)\n",
		       cp->cap_setuid ? "with" : "without", cp->cap_setuid ? "true" : "false");
		return KSFT_SKIP;
	}
	if (mlock_kb != c->mlock_kb)
		printf("# note: perf_event_mlock_kb is %ld here, the case was made with %ld\n", mlock_kb, c->mlock_kb);
	status_fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	kmsg_fd = was_root ? ax_kmsg_open() : -1;
	if (was_root)
		ax_raise_memlock_hard();
	ax_set_memlock(c->memlock_pages);
	uid0 = getuid();
	if (was_root) {
		/* A fresh uid: user->locked_vm is per uid and outlives processes. Keep saved uid 0. */
		r.uid = uid0 = 400000 + (getpid() % 100000);
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
	ax_procs_init(&P, &r, was_root, uid0);

	for (i = 0; i < c->nsteps && !harness; i++) {
		int got = ax_procs_op(&P, cp->step_procs[i], &c->steps[i].op, status_fd);
		if (got == AX_HARNESS) {
			printf("# harness failure at op %d: %s\n", i, ax_harness_msg);
			harness = 1;
			ax_procs_kill_all(&P);
			break;
		}
		ax_check_step(&r, i, &c->steps[i], got, P.vmpin);
	}

	/* Teardown, as every auxspec backend does it (spec/audit.ts teardownSteps). */
	for (i = 0; i < c->nteardown; i++) {
		const struct ax_td_step *t = &c->teardown[i];
		if (t->kind == 'r')
			ax_td_restore(&r, c->mlock_kb);
		else if (t->kind == 'x') {
			if (P.p[t->h].pid && ax_proc_exit(&P, (int)t->h) == AX_HARNESS)
				printf("# teardown: %s\n", ax_harness_msg);
		} else if (t->kind == 'u')
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
		char name[8];
		usleep(50000); /* let deferred frees settle */
		ax_budget_line(&r, was_root, uid0, "u0", pin, mlock_kb, cpus);
		for (i = 0; i < cp->nusers; i++) {
			snprintf(name, sizeof(name), "u%d", cp->users[i]);
			ax_budget_line(&r, was_root, P.uids[cp->users[i]], name, pin, mlock_kb, cpus);
		}
	} else {
		printf("ok %d - audit: budget probe # SKIP not root\n", ++ax_tap_n);
		for (i = 0; i < cp->nusers; i++)
			printf("ok %d - audit: u%d budget probe # SKIP not root\n", ++ax_tap_n, cp->users[i]);
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
