/* SPDX-License-Identifier: GPL-2.0 */
/*
 * repro-procs.h: the kselftest driver of a C reproducer whose case has several processes or
 * users (fuzz/repro-c.ts inlines auxspec.h, repro.h, procs.h and this file; single-process
 * cases use repro.h's ax_repro_main alone). The same TAP lines and exit codes as ax_repro_main;
 * what differs: each op runs in its process (runtime/procs.h), its VmPin is that process's, the
 * teardown has the `exit` steps of spec/audit.ts ('x': a live child exits, in fork order), and
 * the audit probes the budget of every user the case names (u0 and each setuid user: one TAP
 * line each; conservation wants each back in full).
 *
 * Races (issue 14, spec/notes/races.md): a case with a par block runs each block with its tasks
 * released together from procs.h's barrier, and the whole program `repeat` times (default
 * 1000, AUXSPEC_REPEAT overrides), each repetition from scratch (a fresh uid, teardown, audit),
 * until one diverges. The first repetition prints its TAP lines as a case without blocks does
 * (an op of a block passes when its result and VmPin are among those some order of the block
 * allows: no "recorded path" skip for them); the others are checked quietly and summed up in one
 * more TAP line: all agree, or the first that does not and why. The outcomes each block showed
 * are printed as comments (a histogram over the repetitions).
 */
#ifndef AUXSPEC_REPRO_PROCS_H
#define AUXSPEC_REPRO_PROCS_H

struct ax_case_procs {
	const struct ax_case *c;
	const int *step_procs;  /* op -> its process (spec/program.ts opProc) */
	const int *users;       /* user handles named by setuid, besides u0 */
	int nusers;
	int cap_setuid;         /* config.capSetuid of the case */
	int repeat;             /* repetitions of the whole program (cases with a par block); 0 or 1: once */
};

/* `uid`'s budget probed from p0 (switching p0 to it); -1 when the probe could not run. */
static long ax_budget_of(struct ax_run *r, int root, unsigned uid, long pin, long mlock_kb, long cpus)
{
	if (r->uid != uid && ax_setuid(r, root, uid))
		return -1;
	return ax_budget_prepare(pin) ? -1 : ax_budget_probe(ax_budget_cap(mlock_kb, cpus));
}

/* One user's budget TAP line: `uid`'s budget probed from p0 (switching p0 to it). */
static void ax_budget_line(struct ax_run *r, int root, unsigned uid, const char *user, long pin, long mlock_kb, long cpus)
{
	long limit = ax_budget_limit(mlock_kb, cpus), budget = ax_budget_of(r, root, uid, pin, mlock_kb, cpus);

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

/* Whether an op's result and VmPin are among the allowed ones (a block's op: those of some order). */
static int ax_step_allows(const struct ax_step *s, int got, long pin)
{
	int ok = 0, pin_ok = 0;

	for (int k = 0; k < s->nallowed; k++)
		ok |= s->allowed[k] == got;
	for (int k = 0; k < s->npins; k++)
		pin_ok |= s->pins[k] == pin;
	return ok && pin_ok;
}

/* The TAP line of an op of a par block (first repetition). */
static void ax_check_par_step(int i, const struct ax_step *s, int got, long pin)
{
	if (ax_step_fail || ax_step_skip) {
		printf("ok %d - %s # SKIP after an earlier result\n", ++ax_tap_n, s->desc);
		return;
	}
	if (ax_step_allows(s, got, pin)) {
		printf("ok %d - %s: %s (par block)\n", ++ax_tap_n, s->desc, ax_result_name(got));
		return;
	}
	printf("not ok %d - %s: got %s VmPin %ld kB; some order of its par block allows", ++ax_tap_n, s->desc, ax_result_name(got), pin);
	for (int k = 0; k < s->nallowed; k++)
		printf(" %s", ax_result_name(s->allowed[k]));
	printf(" with VmPin");
	for (int k = 0; k < s->npins; k++)
		printf(" %ld", s->pins[k]);
	printf(" kB (op %d)\n", i);
	ax_step_fail = 1;
}

/* Outcomes of each par block over the repetitions: (block's first op, results) -> count. */
#define AX_HIST 64
static struct { int at, n, res[3]; long count; } ax_hist[AX_HIST];
static int ax_nhist;

static void ax_hist_add(int at, int n, const int *res)
{
	for (int h = 0; h < ax_nhist; h++)
		if (ax_hist[h].at == at && !memcmp(ax_hist[h].res, res, n * sizeof(int))) {
			ax_hist[h].count++;
			return;
		}
	if (ax_nhist < AX_HIST) {
		ax_hist[ax_nhist].at = at;
		ax_hist[ax_nhist].n = n;
		memset(ax_hist[ax_nhist].res, 0, sizeof(ax_hist[ax_nhist].res));
		memcpy(ax_hist[ax_nhist].res, res, n * sizeof(int));
		ax_hist[ax_nhist++].count = 1;
	}
}

/* Everything one repetition needs that outlives it. */
struct ax_rep_env {
	int status_fd, kmsg_fd, was_root;
	long mlock_kb, cpus;
	const char *aux_param_dir;
	int aux_type;
};

/*
 * One repetition: the ops (each in its process; par blocks through the barrier), the teardown,
 * the audit. `quiet` (every repetition but the first): no TAP lines; the first divergence is
 * written into `why`. Returns 0 agreed, 1 diverged, 2 harness failure, 3 another allowed path.
 */
static int ax_repro_rep(const struct ax_case_procs *cp, const struct ax_rep_env *E, unsigned uid0, int quiet, char *why, size_t nwhy)
{
	static int fds[4096];
	static unsigned char flip[4096];
	const struct ax_case *c = cp->c;
	struct ax_procs P;
	struct ax_run r;
	int i, harness = 0, warnings, diverged = 0;
	long pin;

	ax_run_init(&r, fds, c->nev, flip, c->nmap);
	r.aux_type = E->aux_type;
	r.aux_param_dir = E->aux_param_dir;
	ax_set_memlock(c->memlock_pages);
	if (E->was_root) {
		r.cap_ipc_lock = c->cap_ipc_lock;
		if (ax_setuid(&r, 1, uid0)) {
			snprintf(why, nwhy, "cannot switch to a fresh uid: %s", ax_harness_msg);
			return 2;
		}
	}
	ax_procs_init(&P, &r, E->was_root, uid0);
	for (i = 0; i < c->nsteps && !harness; i++) {
		const struct ax_op *o = &c->steps[i].op;
		if (o->kind == 'B') {
			struct ax_par_res pr[3];
			struct ax_op ops[3];
			int procs[3], n = (int)o->a[0], res[3] = { 0, 0, 0 };
			for (int j = 0; j < n; j++) {
				procs[j] = cp->step_procs[i + 1 + j];
				ops[j] = c->steps[i + 1 + j].op;
			}
			if (!quiet)
				ax_check_par_step(i, &c->steps[i], 0, 0);
			if (ax_procs_par(&P, n, procs, ops, E->status_fd, pr) == AX_HARNESS) {
				if (!quiet)
					printf("# harness failure at the par block of op %d: %s\n", i, ax_harness_msg);
				snprintf(why, nwhy, "harness failure at the par block of op %d: %s", i, ax_harness_msg);
				harness = 1;
				ax_procs_kill_all(&P);
				break;
			}
			for (int j = 0; j < n; j++) {
				const struct ax_step *s = &c->steps[i + 1 + j];
				res[j] = pr[j].res;
				if (!quiet)
					ax_check_par_step(i + 1 + j, s, pr[j].res, pr[j].vmpin);
				else if (!diverged && !ax_step_allows(s, pr[j].res, pr[j].vmpin)) {
					snprintf(why, nwhy, "op %d (%s): got %s VmPin %ld kB, which no order of its par block allows", i + 1 + j, s->desc, ax_result_name(pr[j].res), pr[j].vmpin);
					diverged = 1;
				}
			}
			ax_hist_add(i, n, res);
			i += n;
			continue;
		}
		{
			int got = ax_procs_op(&P, cp->step_procs[i], o, E->status_fd);
			if (got == AX_HARNESS) {
				if (!quiet)
					printf("# harness failure at op %d: %s\n", i, ax_harness_msg);
				snprintf(why, nwhy, "harness failure at op %d: %s", i, ax_harness_msg);
				harness = 1;
				ax_procs_kill_all(&P);
				break;
			}
			if (!quiet)
				ax_check_step(&r, i, &c->steps[i], got, P.vmpin);
			else if (!diverged && !ax_step_allows(&c->steps[i], got, P.vmpin)) {
				snprintf(why, nwhy, "op %d (%s): got %s VmPin %ld kB, not allowed", i, c->steps[i].desc, ax_result_name(got), P.vmpin);
				diverged = 1;
			}
		}
	}

	/* Teardown, as every auxspec backend does it (spec/audit.ts teardownSteps). */
	for (i = 0; i < c->nteardown; i++) {
		const struct ax_td_step *t = &c->teardown[i];
		if (t->kind == 'r')
			ax_td_restore(&r, c->mlock_kb);
		else if (t->kind == 'x') {
			if (P.p[t->h].pid && ax_proc_exit(&P, (int)t->h) == AX_HARNESS && !quiet)
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
	ax_procs_fini(&P);
	if (harness) {
		if (!quiet)
			printf("# SKIP: the harness failed; nothing was judged\n");
		return 2;
	}
	pin = ax_vmpin_kb(E->status_fd);
	if (!quiet) {
		if (pin == c->expect_vmpin_kb && pin == 0)
			printf("ok %d - audit: VmPin back to 0\n", ++ax_tap_n);
		else {
			printf("not ok %d - audit: VmPin %ld kB after teardown (conservation wants 0; the spec predicted %ld)\n", ++ax_tap_n, pin, c->expect_vmpin_kb);
			ax_step_fail = 1;
		}
	} else if (!diverged && pin != 0) {
		snprintf(why, nwhy, "audit: VmPin %ld kB after teardown (conservation wants 0)", pin);
		diverged = 1;
	}
	if (E->was_root) {
		char name[8];
		usleep(50000); /* let deferred frees settle */
		if (!quiet) {
			ax_budget_line(&r, E->was_root, uid0, "u0", pin, E->mlock_kb, E->cpus);
			for (i = 0; i < cp->nusers; i++) {
				snprintf(name, sizeof(name), "u%d", cp->users[i]);
				ax_budget_line(&r, E->was_root, P.uids[cp->users[i]], name, pin, E->mlock_kb, E->cpus);
			}
		} else {
			long limit = ax_budget_limit(E->mlock_kb, E->cpus);
			for (i = -1; i < cp->nusers && !diverged; i++) {
				unsigned u = i < 0 ? uid0 : P.uids[cp->users[i]];
				long budget = ax_budget_of(&r, E->was_root, u, pin, E->mlock_kb, E->cpus);
				if (budget >= 0 && budget != limit) {
					snprintf(why, nwhy, "audit: u%d locked-memory budget %ld pages, conservation wants %ld", i < 0 ? 0 : cp->users[i], budget, limit);
					diverged = 1;
				}
			}
		}
	} else if (!quiet) {
		printf("ok %d - audit: budget probe # SKIP not root\n", ++ax_tap_n);
		for (i = 0; i < cp->nusers; i++)
			printf("ok %d - audit: u%d budget probe # SKIP not root\n", ++ax_tap_n, cp->users[i]);
	}
	warnings = ax_kmsg_warnings(E->kmsg_fd, getpid(), quiet ? NULL : ax_print_warning, NULL);
	if (!quiet) {
		if (E->kmsg_fd < 0 || warnings < 0)
			printf("ok %d - audit: kernel log # SKIP %s\n", ++ax_tap_n, E->kmsg_fd < 0 ? "cannot read /dev/kmsg" : "the warning pattern does not compile");
		else if (warnings == 0)
			printf("ok %d - audit: no kernel warnings\n", ++ax_tap_n);
		else {
			printf("not ok %d - audit: %d kernel warning(s) during the program\n", ++ax_tap_n, warnings);
			ax_step_fail = 1;
		}
		return ax_step_fail ? 1 : ax_step_skip ? 3 : 0;
	}
	if (!diverged && warnings > 0) {
		snprintf(why, nwhy, "audit: %d kernel warning(s) during the repetition", warnings);
		diverged = 1;
	}
	return diverged;
}

static int ax_repro_procs_main(const struct ax_case_procs *cp)
{
	static char param_dir[300];
	const struct ax_case *c = cp->c;
	struct ax_rep_env E;
	int fd, res, repeat = cp->repeat > 1 ? cp->repeat : 1, k, bad = 0;
	unsigned uid0;
	char why[512] = "";
	const char *env = getenv("AUXSPEC_REPEAT");

	if (repeat > 1 && env && atoi(env) >= 1)
		repeat = atoi(env);
	memset(&E, 0, sizeof(E));
	setvbuf(stdout, NULL, _IONBF, 0);
	printf("TAP version 13\n1..%d\n", c->nsteps + 3 + cp->nusers + (cp->repeat > 1));
	if (c->nev > 4096 || c->nmap > 4096) {
		printf("1..0 # SKIP more handles than this reproducer's tables hold\n");
		return KSFT_SKIP;
	}
	fd = ax_perf_open(PERF_TYPE_SOFTWARE, PERF_COUNT_SW_DUMMY, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);
	if (fd < 0) {
		printf("# perf_event_open: %s (see /proc/sys/kernel/perf_event_paranoid)\n", strerror(errno));
		printf("1..0 # SKIP perf not permitted\n");
		return KSFT_SKIP;
	}
	close(fd);
	E.aux_type = AX_NO_SUCH_PMU_TYPE;
	if (c->uses_aux) {
		if ((E.aux_type = ax_find_aux_pmu(param_dir, sizeof(param_dir))) < 0) {
			printf("1..0 # SKIP no AUX-capable PMU (intel_pt, cs_etm, arm_spe, auxspec_pmu ...)\n");
			return KSFT_SKIP;
		}
		E.aux_param_dir = param_dir;
	}
	E.mlock_kb = ax_read_long(AX_PROC_MLOCK);
	E.cpus = sysconf(_SC_NPROCESSORS_ONLN);
	E.was_root = geteuid() == 0;
	if (c->needs_root && !E.was_root) {
		printf("1..0 # SKIP needs root (sysctl or test PMU parameter)\n");
		return KSFT_SKIP;
	}
	if (c->cap_ipc_lock && !E.was_root) {
		printf("1..0 # SKIP the case needs CAP_IPC_LOCK\n");
		return KSFT_SKIP;
	}
	if (cp->nusers && cp->cap_setuid != E.was_root) {
		printf("1..0 # SKIP the case was made for a machine %s setuid to fresh uids (config.capSetuid %s)\n",
		       cp->cap_setuid ? "with" : "without", cp->cap_setuid ? "true" : "false");
		return KSFT_SKIP;
	}
	if (E.mlock_kb != c->mlock_kb)
		printf("# note: perf_event_mlock_kb is %ld here, the case was made with %ld\n", E.mlock_kb, c->mlock_kb);
	E.status_fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	E.kmsg_fd = E.was_root ? ax_kmsg_open() : -1;
	if (E.was_root)
		ax_raise_memlock_hard();
	uid0 = getuid();
	if (E.was_root)
		uid0 = 400000 + (getpid() % 100000); /* a fresh uid: user->locked_vm is per uid and outlives processes */
	else
		printf("# not root: accounting is shared with this user's other processes\n");

	res = ax_repro_rep(cp, &E, uid0, 0, why, sizeof(why));
	if (res == 2) {
		if (why[0] && strncmp(why, "harness", 7))
			printf("1..0 # SKIP %s\n", why);
		return KSFT_SKIP;
	}
	if (cp->repeat > 1) {
		/* the other repetitions, each under its own fresh uid, until one diverges */
		for (k = 1; k < repeat && res != 1 && !bad; k++) {
			unsigned uid = E.was_root ? 0x40000000u + (unsigned)(getpid() % 100000) * 4096u + (unsigned)k : uid0;
			int r = ax_repro_rep(cp, &E, uid, 1, why, sizeof(why));
			if (r == 1 || r == 2)
				bad = r;
		}
		for (int h = 0; h < ax_nhist; h++) {
			printf("# par block at op %d:", ax_hist[h].at);
			for (int j = 0; j < ax_hist[h].n; j++)
				printf(" %s", ax_result_name(ax_hist[h].res[j]));
			printf(" x%ld\n", ax_hist[h].count);
		}
		if (res == 1)
			printf("ok %d - repetitions # SKIP the first one diverged\n", ++ax_tap_n);
		else if (bad == 1) {
			printf("not ok %d - repetition %d of %d diverges: %s\n", ++ax_tap_n, k, repeat, why);
			ax_step_fail = 1;
		} else if (bad == 2)
			printf("ok %d - repetitions # SKIP repetition %d of %d: %s\n", ++ax_tap_n, k, repeat, why);
		else
			printf("ok %d - %d more repetitions: every result allowed by some order of its par block, the audit clean every time\n", ++ax_tap_n, repeat - 1);
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
