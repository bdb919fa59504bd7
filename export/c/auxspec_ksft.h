/* SPDX-License-Identifier: GPL-2.0 */
/*
 * auxspec_ksft.h: the kselftest driver of the exported auxspec programs (export/kselftest.ts
 * writes one .c per case: its ops, teardown and, for every profile of spec/profiles.ts, the
 * observation paths the spec allows). It picks the profile of the running kernel from
 * uname -r and /proc/version (ax_era, generated from export/era.ts), runs the ops with
 * runtime/auxspec.h (the one C op layer, shared with auxspec's C executor and reproducers),
 * keeps the paths the kernel's answers match, and prints KTAP through kselftest.h.
 *
 * Results: one test per op, then the audit after teardown (VmPin as predicted, the uid's
 * locked-memory budget as predicted, conservation, kernel log). A known divergence
 * (cases/known-divergences.json: a kernel bug the spec models) is reported as XFAIL.
 * Exit: KSFT_PASS the kernel agrees with the spec, KSFT_FAIL it diverges, KSFT_SKIP the
 * machine cannot run the case (no AUX PMU, no test PMU, a sysctl or CAP_IPC_LOCK without
 * root, another perf_event_paranoid / CPU count / perf_event_mlock_kb than the case was
 * made for, or a kernel no profile covers).
 */
#ifndef AUXSPEC_KSFT_H
#define AUXSPEC_KSFT_H
#include <sys/utsname.h>
#include "auxspec.h"
#include "kselftest.h"
#include "auxspec_era.h"

/* What the spec allows after teardown on one path. */
struct ax_kaudit {
	long vmpin_kb, budget_pages;
	const char *broken; /* the conservation invariant the predicted end state breaks, or NULL */
	const char *known;  /* the known divergence that explains `broken`, or NULL */
};

/* One observation path: per op the result code and VmPin (and user-page words) the spec allows. */
struct ax_kpath {
	const int *code;
	const long *pin;
	const long *const *page;       /* NULL, or per op NULL / the 5 predicted words */
	const struct ax_kaudit *audit;
	int naudit;
	const char *known_pinned;      /* known divergence ids when the kernel breaks that on this path */
	const char *known_locked;
	const char *known_warn;
};

struct ax_kprofile {
	const char *name;
	const char *uncovered;         /* why the spec gives no paths here, or NULL */
	const struct ax_kpath *paths;
	int npaths;
};

struct ax_known_text { const char *id, *explanation; };

struct ax_kcase {
	const char *name, *source;
	const char *const *desc;
	const struct ax_op *ops;
	int nsteps;
	const struct ax_td_step *teardown;
	int nteardown;
	int nev;
	long nmap;
	long mlock_kb, memlock_pages, cpus;
	long rlimit_max; /* the largest RLIMIT_MEMLOCK the program sets, in pages (-1: unlimited) */
	int paranoid, cap_ipc_lock, uses_aux, needs_sysctl, needs_fault;
	const struct ax_kprofile *profiles; /* indexed like the era table's profiles */
	/* The same under the case's RLIMIT_MEMLOCK hard limit (hard_pages), used when the machine's
	 * hard limit is that and cannot be raised (no CAP_SYS_RESOURCE); NULL when the case has none. */
	const struct ax_kprofile *profiles_hard;
	long hard_pages;
	const struct ax_known_text *known;
	int nknown;
};

/* Online CPUs from /sys/devices/system/cpu/online ("0-1,4"), as the host backend counts them. */
static long ax_k_online_cpus(void)
{
	char buf[512] = "", *p = buf, *end;
	int fd = open("/sys/devices/system/cpu/online", O_RDONLY | O_CLOEXEC);
	long n = 0, a, b;

	if (fd < 0)
		return sysconf(_SC_NPROCESSORS_ONLN);
	if (read(fd, buf, sizeof(buf) - 1) < 0)
		buf[0] = 0;
	close(fd);
	while (*p >= '0' && *p <= '9') {
		a = b = strtol(p, &end, 10);
		p = end;
		if (*p == '-') {
			b = strtol(p + 1, &end, 10);
			p = end;
		}
		n += b - a + 1;
		if (*p != ',')
			break;
		p++;
	}
	return n ? n : 1;
}

static void ax_k_read_text(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, len - 1);

	buf[n > 0 ? n : 0] = 0;
	if (fd >= 0)
		close(fd);
}

static const char *ax_k_known_text(const struct ax_kcase *c, const char *id)
{
	for (int i = 0; i < c->nknown; i++)
		if (!strcmp(c->known[i].id, id))
			return c->known[i].explanation;
	return "";
}

static void ax_k_warning(const char *msg, void *arg)
{
	(void)arg;
	ksft_print_msg("kernel: %s\n", msg);
}

static int ax_k_page_ok(const struct ax_kpath *p, int i, const struct ax_run *r)
{
	const long *w = p->page ? p->page[i] : NULL;

	if (!w)
		return 1;
	for (int k = 0; k < 5; k++)
		if ((long)r->page[k] != w[k])
			return 0;
	return 1;
}

static int ax_kselftest_main(const struct ax_kcase *c)
{
	static int fds[4096];
	static unsigned char flip[4096];
	static unsigned char alive[4096];
	static char param_dir[300], version[1024], at[64];
	const struct ax_kprofile *prof;
	struct utsname u;
	struct ax_run r;
	int i, k, pi, exact, status_fd, kmsg_fd, was_root, harness = 0, failed = 0, nalive, warnings;
	long pin, budget = -1, limit, mlock_kb, cpus, paranoid;
	const char *known_hit = NULL;

	setvbuf(stdout, NULL, _IONBF, 0);
	ksft_print_header();
	ksft_print_msg("auxspec case %s (%s)\n", c->name, c->source);
	if (uname(&u))
		ksft_exit_skip("uname: %s\n", strerror(errno));
	ax_k_read_text("/proc/version", version, sizeof(version));
	pi = ax_era(u.release, version, &exact, at, sizeof(at));
	if (pi < 0)
		ksft_exit_skip("cannot parse kernel release %s\n", u.release);
	prof = &c->profiles[pi];
	if (!exact)
		ksft_exit_skip("no profile covers kernel %s (%s; the nearest is %s)\n", u.release, at, prof->name);
	ksft_print_msg("kernel %s (%s): profile %s\n", u.release, at, prof->name);
	if (prof->uncovered)
		ksft_exit_skip("profile %s: %s\n", prof->name, prof->uncovered);
	if (c->nev > 4096 || c->nmap > 4096 || prof->npaths > 4096)
		ksft_exit_skip("more handles or paths than this program's tables hold\n");

	paranoid = ax_read_long("/proc/sys/kernel/perf_event_paranoid");
	if (paranoid < 0)
		ksft_exit_skip("no /proc/sys/kernel/perf_event_paranoid (CONFIG_PERF_EVENTS off?)\n");
	{
		int fd = ax_perf_open(PERF_TYPE_SOFTWARE, PERF_COUNT_SW_DUMMY, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);
		if (fd < 0)
			ksft_exit_skip("perf_event_open: %s (perf_event_paranoid %ld)\n", strerror(errno), paranoid);
		close(fd);
	}
	if (paranoid != c->paranoid)
		ksft_exit_skip("made for perf_event_paranoid %d; this kernel has %ld\n", c->paranoid, paranoid);
	mlock_kb = ax_read_long(AX_PROC_MLOCK);
	cpus = ax_k_online_cpus();
	if (cpus != c->cpus || mlock_kb != c->mlock_kb)
		ksft_exit_skip("made for cpus=%ld mlock_kb=%ld; this kernel has cpus=%ld mlock_kb=%ld\n", c->cpus, c->mlock_kb, cpus, mlock_kb);
	ax_run_init(&r, fds, c->nev, flip, c->nmap);
	if (c->uses_aux) {
		if ((r.aux_type = ax_find_aux_pmu(param_dir, sizeof(param_dir))) < 0)
			ksft_exit_skip("needs an AUX PMU (intel_pt, cs_etm, arm_spe, auxspec_pmu ...)\n");
		r.aux_param_dir = param_dir;
	}
	if (c->needs_fault) {
		char p[340];
		snprintf(p, sizeof(p), "%s/fail_setup_aux", param_dir);
		if (!c->uses_aux || access(p, F_OK))
			ksft_exit_skip("needs the auxspec_pmu test module (fail_setup_aux)\n");
	}
	was_root = geteuid() == 0;
	if (c->needs_sysctl && !was_root)
		ksft_exit_skip("needs root to write perf_event_mlock_kb\n");
	if (c->needs_fault && !was_root)
		ksft_exit_skip("needs root to set the test PMU's fail_setup_aux\n");
	if (c->cap_ipc_lock && !was_root)
		ksft_exit_skip("needs CAP_IPC_LOCK\n");

	if (was_root)
		ax_raise_memlock_hard(); /* the spec's rlimit ops leave the hard limit unlimited */
	{
		struct rlimit rl;
		if (!getrlimit(RLIMIT_MEMLOCK, &rl) && rl.rlim_max != RLIM_INFINITY && c->profiles_hard &&
		    rl.rlim_max == (rlim_t)c->hard_pages * AX_PAGE_SIZE) {
			prof = &c->profiles_hard[pi];
			ksft_print_msg("RLIMIT_MEMLOCK hard limit %ld pages (cannot be raised): the spec judges with it\n", c->hard_pages);
			if (prof->uncovered)
				ksft_exit_skip("profile %s: %s\n", prof->name, prof->uncovered);
		} else if (!getrlimit(RLIMIT_MEMLOCK, &rl) && rl.rlim_max != RLIM_INFINITY &&
		    (c->rlimit_max < 0 || (rlim_t)c->rlimit_max * AX_PAGE_SIZE > rl.rlim_max))
			ksft_exit_skip("RLIMIT_MEMLOCK hard limit is %llu pages and cannot be raised (CAP_SYS_RESOURCE); the case sets %ld\n",
				       (unsigned long long)(rl.rlim_max / AX_PAGE_SIZE), c->rlimit_max);
	}

	ksft_set_plan(c->nsteps + 4);
	status_fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	kmsg_fd = was_root ? ax_kmsg_open() : -1;
	ax_set_memlock(c->memlock_pages);
	if (was_root) {
		/* A fresh uid: user->locked_vm is per uid and outlives processes. Keep saved uid 0 for sysctls. */
		r.uid = 400000 + (getpid() % 100000);
		if (ax_switch_uid(r.uid))
			ksft_exit_fail_msg("setresuid: %s\n", strerror(errno));
		r.cap_ipc_lock = c->cap_ipc_lock;
		if (ax_set_ipc_lock(r.cap_ipc_lock))
			ksft_exit_fail_msg("cannot set CAP_IPC_LOCK as the case says\n");
	} else {
		ksft_print_msg("not root: accounting is shared with this user's other processes\n");
	}

	for (k = 0; k < prof->npaths; k++)
		alive[k] = 1;
	for (i = 0; i < c->nsteps; i++) {
		int got = harness ? AX_HARNESS : ax_run_op(&r, &c->ops[i]);

		if (got == AX_HARNESS) {
			if (!harness)
				ksft_print_msg("harness failure at op %d: %s\n", i, ax_harness_msg);
			harness = 1;
			ksft_test_result_skip("op %d: %s (harness failure)\n", i, c->desc[i]);
			continue;
		}
		pin = ax_vmpin_kb(status_fd);
		if (failed) {
			ksft_test_result_skip("op %d: %s: %s (after an earlier failure)\n", i, c->desc[i], ax_result_name(got));
			continue;
		}
		nalive = 0;
		for (k = 0; k < prof->npaths; k++)
			if (alive[k] && prof->paths[k].code[i] == got && prof->paths[k].pin[i] == pin &&
			    (got != 0 || ax_k_page_ok(&prof->paths[k], i, &r)))
				nalive++;
		if (!nalive) {
			ksft_print_msg("op %d: got %s VmPin %ld kB; profile %s allows:", i, ax_result_name(got), pin, prof->name);
			for (k = 0; k < prof->npaths; k++)
				if (alive[k])
					printf(" %s/%ld kB", ax_result_name(prof->paths[k].code[i]), prof->paths[k].pin[i]);
			printf("\n");
			if (got == 0)
				ksft_print_msg("user page: data_offset %llu data_size %llu aux_head %llu aux_offset %llu aux_size %llu\n",
					       (unsigned long long)r.page[0], (unsigned long long)r.page[1], (unsigned long long)r.page[2],
					       (unsigned long long)r.page[3], (unsigned long long)r.page[4]);
			ksft_test_result_fail("op %d: %s: %s\n", i, c->desc[i], ax_result_name(got));
			failed = 1;
			continue;
		}
		for (k = 0; k < prof->npaths; k++)
			if (alive[k] && !(prof->paths[k].code[i] == got && prof->paths[k].pin[i] == pin &&
					  (got != 0 || ax_k_page_ok(&prof->paths[k], i, &r))))
				alive[k] = 0;
		ksft_test_result_pass("op %d: %s: %s\n", i, c->desc[i], ax_result_name(got));
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
	pin = ax_vmpin_kb(status_fd);
	if (was_root) {
		usleep(50000); /* let deferred frees settle */
		budget = ax_budget_prepare(pin) ? -1 : ax_budget_probe(ax_budget_cap(mlock_kb, cpus));
		if (budget < 0)
			ksft_print_msg("budget probe: %s\n", ax_harness_msg[0] ? ax_harness_msg : "cannot drop CAP_IPC_LOCK or set RLIMIT_MEMLOCK");
	}
	limit = ax_budget_limit(mlock_kb, cpus);
	warnings = ax_kmsg_warnings(kmsg_fd, getpid(), ax_k_warning, NULL);

	if (failed || harness) {
		ksft_test_result_skip("audit: VmPin (the ops did not follow the spec)\n");
		ksft_test_result_skip("audit: budget (the ops did not follow the spec)\n");
		ksft_test_result_skip("audit: conservation (the ops did not follow the spec)\n");
	} else {
		int vm_ok = 0, bud_ok = 0, clean = 0;
		const struct ax_kaudit *first = NULL;

		for (k = 0; k < prof->npaths; k++) {
			if (!alive[k])
				continue;
			for (int a = 0; a < prof->paths[k].naudit; a++) {
				const struct ax_kaudit *au = &prof->paths[k].audit[a];
				if (au->vmpin_kb != pin)
					continue;
				vm_ok = 1;
				if (budget >= 0 && au->budget_pages != budget)
					continue;
				bud_ok = 1;
				if (!au->broken)
					clean = 1;
				else if (!first)
					first = au;
			}
		}
		if (vm_ok)
			ksft_test_result_pass("audit: VmPin %ld kB after teardown, as the spec predicts\n", pin);
		else {
			ksft_print_msg("the spec predicts VmPin");
			for (k = 0; k < prof->npaths; k++)
				for (int a = 0; alive[k] && a < prof->paths[k].naudit; a++)
					printf(" %ld", prof->paths[k].audit[a].vmpin_kb);
			printf(" kB\n");
			ksft_test_result_fail("audit: VmPin %ld kB after teardown\n", pin);
		}
		if (budget < 0)
			ksft_test_result_skip("audit: locked-memory budget (%s)\n", was_root ? "probe failed" : "not root");
		else if (!vm_ok)
			ksft_test_result_skip("audit: locked-memory budget %ld pages (VmPin already differs)\n", budget);
		else if (bud_ok)
			ksft_test_result_pass("audit: locked-memory budget %ld pages, as the spec predicts\n", budget);
		else {
			ksft_print_msg("the spec predicts a budget of");
			for (k = 0; k < prof->npaths; k++)
				for (int a = 0; alive[k] && a < prof->paths[k].naudit; a++)
					if (prof->paths[k].audit[a].vmpin_kb == pin)
						printf(" %ld", prof->paths[k].audit[a].budget_pages);
			printf(" pages\n");
			ksft_test_result_fail("audit: locked-memory budget %ld pages (limit %ld)\n", budget, limit);
		}
		if (!bud_ok) {
			ksft_test_result_skip("audit: conservation (the audit does not match the spec)\n");
		} else {
			const char *rule = pin != 0 ? "conserve.pinned_vm" : budget >= 0 && c->paranoid > -1 && budget != limit ? "conserve.locked_vm" : NULL;
			const char *known = NULL;

			if (rule) {
				for (k = 0; k < prof->npaths && !known; k++)
					if (alive[k])
						known = rule[9] == 'p' ? prof->paths[k].known_pinned : prof->paths[k].known_locked;
			} else if (!clean) {
				rule = first->broken;
				known = first->known;
			}
			if (!rule)
				ksft_test_result_pass("audit: conservation (VmPin 0, budget back in full)\n");
			else if (known) {
				ksft_print_msg("known divergence %s: %s\n", known, ax_k_known_text(c, known));
				ksft_test_result_xfail("audit: conservation: %s broken (known divergence %s)\n", rule, known);
				known_hit = known;
			} else
				ksft_test_result_fail("audit: conservation: %s broken (VmPin %ld kB, budget %ld of %ld pages)\n", rule, pin, budget, limit);
		}
	}
	if (kmsg_fd < 0 || warnings < 0)
		ksft_test_result_skip("audit: kernel log (%s)\n", kmsg_fd < 0 ? "cannot read /dev/kmsg" : "the warning pattern does not compile");
	else if (warnings == 0)
		ksft_test_result_pass("audit: no kernel warnings\n");
	else {
		const char *known = NULL;
		for (k = 0; k < prof->npaths && !known; k++)
			if (alive[k])
				known = prof->paths[k].known_warn;
		if (known) {
			ksft_print_msg("known divergence %s: %s\n", known, ax_k_known_text(c, known));
			ksft_test_result_xfail("audit: %d kernel warning(s) (known divergence %s)\n", warnings, known);
			known_hit = known;
		} else
			ksft_test_result_fail("audit: %d kernel warning(s) during the program\n", warnings);
	}
	if (harness)
		ksft_exit_skip("the harness failed; nothing was judged\n");
	if (ksft_get_fail_cnt())
		ksft_print_msg("FAIL: the kernel diverges from the spec (profile %s)\n", prof->name);
	else if (known_hit)
		ksft_print_msg("PASS: the kernel shows known divergence %s (profile %s)\n", known_hit, prof->name);
	else
		ksft_print_msg("PASS: the kernel agrees with the spec (profile %s)\n", prof->name);
	ksft_finished();
	return KSFT_PASS;
}
#endif
