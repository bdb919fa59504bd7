/* SPDX-License-Identifier: GPL-2.0 */
/*
 * agent: the C twin of hwtest/host/agent.ts (and, with --guest, of hwtest/vm/guest/shim.mjs),
 * one static binary: the VM guest's agent without Node, and a differential check of the
 * TypeScript agent on the host (test/vm/cagent.test.ts). The ops, page access, identity,
 * teardown, budget probe and warning pattern are runtime/auxspec.h; the JSON is runtime/json.h.
 *
 * Usage: agent [--allow-sysctl] [--touch=inproc|child] [--no-budget] [--guest]
 *
 * Protocol (JSON lines on stdin/stdout, as agent.ts): `{"id":N,"program":[...],"config":{...}}`
 * (optional "uid":U, optional "timeoutMs":T) -> `{"id":N,"trace":{...}}`, in order, one line per
 * request; a malformed request gets a trace with `aborted`. With --guest the agent also speaks
 * the shim's part (guest/shim.mjs): a `{"hello":{...}}` line first; `{"id":N,"probe":true}`,
 * `{"id":N,"selftestWarn":true}`, `{"id":N,"selftestPanic":true}` and `{"quit":true}`; the test
 * PMU's setups/frees reset before each program; and kernel-log lines of every PID.
 * `{"id":N,"timing":true}` (any mode) answers `{"id":N,"timing":{...}}`: the median time of
 * each phase of the requests since the last such request, and of each op kind (see "where a
 * program's time goes" below; bench/vm.ts prints it).
 *
 * Processes: this process (the supervisor) reads requests and writes answers; a forked worker
 * runs them (requests over a pipe as "U<uid> <line>", answers back as "<line>\n" then ".\n", or
 * "!\n" when the worker leaves because its process is dirty: VmPin != 0 after a program, or
 * identity not restored; mm->pinned_vm is per process). A worker that dies or exits dirty is
 * replaced by a fresh fork (a fork's mm starts with pinned_vm 0); a request it never answered
 * because it exited dirty is resent, one it died during is aborted; a request past its
 * timeoutMs has its worker killed (the trace says where it was stuck). The supervisor never runs
 * a program itself. The worker gets SIGKILL when the supervisor dies.
 *
 * Kernel-log attribution (--guest): before a request the log is read to its end (what is
 * there was printed between requests, by deferred work: not blamed on any program, the next
 * probe reports it); after it the agent writes a boundary line to /dev/kmsg ("auxspec: end
 * PID.K") and reads the log up to that line before the answer is written, so every record
 * printed during a request is that request's (a program's trace, the selftestWarn answer) and
 * never the next one's, and records that race in after the line are not. (A "begin" line would
 * add nothing to the first read, which is synchronous with the log, and costs a printk.) printk_devkmsg is set to "on" so that the lines are not rate-limited. On the
 * host (no --guest) warnings are this worker's PID's, read after the program, as agent.ts does.
 */
#include "auxspec.h"
#include "json.h"
#include "procs.h"
#include <dirent.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/utsname.h>
#include <time.h>

#define MAX_MAP_HANDLE 507903 /* hwtest/host/executor.ts MAX_MAP_HANDLE */
#define MAX_SAFE 9007199254740991.0
#define PARAMS "/sys/module/auxspec_pmu/parameters"
#define PMU_DIR "/sys/bus/event_source/devices/auxspec_pmu"
#define EXIT_DIRTY 3

static struct {
	int allow_sysctl, inproc, no_budget, guest, measure_budget;
} O;

static struct {
	char release[128];
	int cpus, paranoid, root;
	long mlock_kb;
	char aux_name[64];
	int aux_type; /* -1: none */
	const char *test_pmu_dir;
} F;

static int kmsg_fd = -1;    /* shared by the supervisor and the worker (one read position) */
static int kmsg_wfd = -1;   /* markers */
static int status_fd = -1;
static unsigned long mark_seq;

/*
 * ---- where a program's time goes (request {"id":N,"timing":true}; bench/vm.ts prints it) ----
 * Phases of each request in microseconds of CLOCK_MONOTONIC, kept for the last T_HIST
 * requests in a page shared by the supervisor and its workers (a fresh worker keeps them),
 * and per op kind for the last T_OPS ops of each. The answer gives each one's median (a
 * busy host stops the guest for milliseconds at a time: sums are mostly its noise) and
 * resets them.
 */
enum { T_PARSE, T_ENTER, T_OPS, T_TEARDOWN, T_AUDIT_PIN, T_PROBE, T_PMU, T_KMSG, T_LEAVE, T_TAIL, T_REQUEST, T_SUP, T_N };
static const char *const t_names[T_N] = { "parse", "enter", "ops", "teardown", "auditVmPin", "budgetProbe", "pmuCounters", "kmsgBoundary", "leave", "workerTail", "worker", "supervisor" };
#define T_HIST 1024
#define T_OPS_KEPT 256
#define T_KINDS "ocmuprfaslkxtgFTXUSB"
struct timing {
	long nreq, nop[sizeof(T_KINDS)];
	float cur[T_N];
	float hist[T_HIST][T_N];
	float op[sizeof(T_KINDS)][T_OPS_KEPT];
};
static struct timing *T;

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* Adds the time since *t0 to phase ph of this request; *t0 becomes now. */
static void t_add(int ph, double *t0)
{
	double t = now_us();

	if (T)
		T->cur[ph] += (float)(t - *t0);
	*t0 = t;
}

static void t_op(char kind, double t0)
{
	const char *k = kind ? strchr(T_KINDS, kind) : NULL;

	if (T && k)
		T->op[k - T_KINDS][T->nop[k - T_KINDS]++ % T_OPS_KEPT] = (float)(now_us() - t0);
}

/* The request is answered: its phases into the history. */
static void t_done(void)
{
	if (!T)
		return;
	memcpy(T->hist[T->nreq++ % T_HIST], T->cur, sizeof(T->cur));
	memset(T->cur, 0, sizeof(T->cur));
}

static int cmp_float(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;

	return x < y ? -1 : x > y;
}

static float median(float *v, long n)
{
	qsort(v, n, sizeof(*v), cmp_float);
	return n ? v[n / 2] : 0;
}

static void write_timing(struct aj_buf *b)
{
	static float col[T_HIST > T_OPS_KEPT ? T_HIST : T_OPS_KEPT];
	long n = T ? (T->nreq < T_HIST ? T->nreq : T_HIST) : 0;

	aj_printf(b, ",\"timing\":{\"requests\":%ld,\"medianUs\":{", n);
	for (int i = 0; i < T_N; i++) {
		for (long j = 0; j < n; j++)
			col[j] = T->hist[j][i];
		aj_printf(b, "%s\"%s\":%.0f", i ? "," : "", t_names[i], median(col, n));
	}
	aj_raw(b, "},\"opMedianUs\":{");
	for (int k = 0, first = 1; T && T_KINDS[k]; k++) {
		long m = T->nop[k] < T_OPS_KEPT ? T->nop[k] : T_OPS_KEPT;
		if (!m)
			continue;
		memcpy(col, T->op[k], m * sizeof(float));
		aj_printf(b, "%s\"%c\":[%ld,%.0f]", first ? "" : ",", T_KINDS[k], T->nop[k], median(col, m));
		first = 0;
	}
	aj_raw(b, "}}");
	if (T)
		memset(T, 0, sizeof(*T));
}

static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int n = snprintf(buf, sizeof(buf), "auxspec-agent[%d]: ", getpid());

	va_start(ap, fmt);
	n += vsnprintf(buf + n, sizeof(buf) - n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	buf[n++] = '\n';
	if (write(2, buf, n) < 0) { /* nothing to do */ }
}

static int write_all(int fd, const char *s, size_t n)
{
	while (n) {
		ssize_t w = write(fd, s, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				struct pollfd pf = { fd, POLLOUT, 0 };
				poll(&pf, 1, -1);
				continue;
			}
			return -1;
		}
		s += w;
		n -= w;
	}
	return 0;
}

static char *read_text(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return NULL;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		return NULL;
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		n--;
	buf[n] = 0;
	return buf;
}

/* ---- facts (hwtest/host/discover.ts) ---- */

static int count_cpu_list(const char *s)
{
	int n = 0;

	while (*s) {
		char *e;
		long a = strtol(s, &e, 10), b = a;
		if (e == s)
			break;
		if (*e == '-')
			b = strtol(e + 1, &e, 10);
		n += b - a + 1;
		s = *e == ',' ? e + 1 : e;
	}
	return n;
}

static int cmpstr(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* AUX PMUs by name, best first (discover.ts AUX_PMU_PATTERNS). */
static void find_aux_pmu(void)
{
	static const char *pats[] = { "^auxspec_pmu$", "^intel_pt$", "^intel_bts$", "^arm_spe_[0-9]+$", "^cs_etm$", "^hisi_ptt[0-9]*(_[0-9]+)?$" };
	char *names[512];
	int nn = 0;
	DIR *d = opendir("/sys/bus/event_source/devices");
	struct dirent *e;

	F.aux_type = -1;
	if (!d)
		return;
	while ((e = readdir(d)) && nn < 512)
		if (e->d_name[0] != '.')
			names[nn++] = strdup(e->d_name);
	closedir(d);
	qsort(names, nn, sizeof(*names), cmpstr);
	for (unsigned p = 0; p < sizeof(pats) / sizeof(*pats) && F.aux_type < 0; p++) {
		regex_t re;
		if (regcomp(&re, pats[p], REG_EXTENDED | REG_NOSUB))
			continue;
		for (int i = 0; i < nn && F.aux_type < 0; i++) {
			char path[512], buf[64];
			if (regexec(&re, names[i], 0, NULL, 0))
				continue;
			snprintf(path, sizeof(path), "/sys/bus/event_source/devices/%s/type", names[i]);
			if (read_text(path, buf, sizeof(buf)) && buf[0] >= '0' && buf[0] <= '9') {
				F.aux_type = atoi(buf);
				snprintf(F.aux_name, sizeof(F.aux_name), "%s", names[i]);
			}
		}
		regfree(&re);
	}
	for (int i = 0; i < nn; i++)
		free(names[i]);
}

static void read_facts(void)
{
	struct utsname u;
	char buf[256];

	uname(&u);
	snprintf(F.release, sizeof(F.release), "%s", u.release);
	F.cpus = read_text("/sys/devices/system/cpu/online", buf, sizeof(buf)) ? count_cpu_list(buf) : (int)sysconf(_SC_NPROCESSORS_ONLN);
	F.mlock_kb = ax_read_long(AX_PROC_MLOCK);
	if (F.mlock_kb < 0)
		F.mlock_kb = 516;
	F.paranoid = (int)ax_read_long("/proc/sys/kernel/perf_event_paranoid");
	if (F.paranoid < -1) F.paranoid = -1;
	if (F.paranoid > 4) F.paranoid = 4;
	F.root = geteuid() == 0;
	find_aux_pmu();
	F.test_pmu_dir = access(PARAMS, F_OK) == 0 ? PARAMS : NULL;
}

/*
 * The test PMU's module parameters a program's audit reads (and reset_counts, written before
 * each program), opened once: pread/pwrite at offset 0 on the kept fd instead of
 * open/read/close per value (kernfs regenerates a seq_file attribute read at offset 0, as
 * /proc/self/status): one syscall a value instead of three with a path walk. -1: read by path.
 */
enum { PMU_LIVE, PMU_SETUPS, PMU_FREES, PMU_FAIL, PMU_RESET, PMU_NFD };
static const char *const pmu_files[PMU_NFD] = { PARAMS "/live", PARAMS "/setups", PARAMS "/frees", PARAMS "/fail_setup_aux", PARAMS "/reset_counts" };
static int pmu_fd[PMU_NFD] = { -1, -1, -1, -1, -1 };

static void pmu_open(void)
{
	for (int i = 0; i < PMU_NFD; i++)
		pmu_fd[i] = F.test_pmu_dir ? open(pmu_files[i], (i == PMU_RESET ? O_WRONLY : O_RDONLY) | O_CLOEXEC) : -1;
}

/* ax_read_long of a parameter (a number, or Y/N as 1/0; -1 when unreadable). */
static long pmu_read(int i)
{
	char buf[64];
	ssize_t n;

	if (pmu_fd[i] < 0)
		return ax_read_long(pmu_files[i]);
	n = pread(pmu_fd[i], buf, sizeof(buf) - 1, 0);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	return strtol(buf[0] == 'Y' ? "1" : buf[0] == 'N' ? "0" : buf, NULL, 10);
}

/* ---- kernel log ---- */

struct strs { char **v; int n; };

static void strs_add(struct strs *s, const char *m)
{
	for (int i = 0; i < s->n; i++)
		if (!strcmp(s->v[i], m))
			return;
	if (s->n >= 50)
		return;
	s->v = realloc(s->v, (s->n + 1) * sizeof(char *));
	s->v[s->n++] = strdup(m);
}

static void strs_clear(struct strs *s)
{
	for (int i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	s->v = NULL;
	s->n = 0;
}

/* The program's other processes (fork children) this request: their warnings are the program's too. */
static pid_t prog_pids[AX_MAX_PROCS];

static int own_pid(int pid, int seen)
{
	if (seen == pid)
		return 1;
	for (int k = 1; k < AX_MAX_PROCS; k++)
		if (prog_pids[k] && prog_pids[k] == seen)
			return 1;
	return 0;
}

/* Warnings printed between requests (not blamed on a program; the next probe reports them). */
static struct strs unattributed;

/*
 * Reads the kernel log to its end. Warning records (AX_KERNEL_WARNING_ERE; of `pid` only when
 * pid > 0) before the record whose text is `marker` go to `before`, later ones to `after`.
 * Returns 1 when the marker was seen (or none was asked for).
 */
static int kmsg_scan(int pid, const char *marker, struct strs *before, struct strs *after)
{
	static regex_t re;
	static int compiled;
	static char rec[8192];
	int seen = marker == NULL;

	if (!compiled) {
		if (regcomp(&re, AX_KERNEL_WARNING_ERE, REG_EXTENDED | REG_ICASE | REG_NOSUB))
			return seen;
		compiled = 1;
	}
	if (kmsg_fd < 0)
		return 1;
	for (int i = 0; i < 100000; i++) {
		char *msg = ax_kmsg_next(kmsg_fd, rec, sizeof(rec)), *p;

		if (!msg)
			break;
		if (!seen && !strcmp(msg, marker)) {
			seen = 1;
			continue;
		}
		if (regexec(&re, msg, 0, NULL, 0))
			continue;
		p = strstr(msg, "PID: ");
		if (pid > 0 && p && !own_pid(pid, atoi(p + 5)))
			continue;
		while (*msg == ' ' || *msg == '\t')
			msg++;
		for (p = msg + strlen(msg); p > msg && (p[-1] == ' ' || p[-1] == '\t' || p[-1] == '\r'); p--)
			p[-1] = 0;
		strs_add(seen ? after : before, msg);
	}
	return seen;
}

/* Reads the kernel log to its end now: warnings printed between requests (not blamed on a program). */
static void kmsg_drain(struct strs *into)
{
	kmsg_scan(0, NULL, into, into);
}

/*
 * A boundary in the kernel log: writes "auxspec: <what> <n>" and reads the log up to it.
 * Warnings before it go to `into`, those that raced in after it to `unattributed`.
 */
static void kmsg_boundary(const char *what, struct strs *into)
{
	char line[128], marker[96];

	snprintf(marker, sizeof(marker), "auxspec: %s %d.%lu", what, getpid(), ++mark_seq);
	snprintf(line, sizeof(line), "<14>%s\n", marker);
	if (kmsg_wfd < 0 || write(kmsg_wfd, line, strlen(line)) < 0) {
		kmsg_scan(0, NULL, into, &unattributed);
		return;
	}
	if (!kmsg_scan(0, marker, into, &unattributed))
		logf_("kernel-log marker \"%s\" not seen (printk_devkmsg rate limit?)", marker);
}

/* ---- requests ---- */

struct prog {
	struct ax_op *ops;
	int nops;
	int *evs;     /* event handle numbers in order of introduction (index = dense event index) */
	int nev;
	long *maps;   /* map handle numbers in order of introduction */
	long *map_pages;
	int nmap;
	long max_map;
	int *proc;    /* op -> the process it runs in (spec/program.ts opProc) */
	int *map_proc; /* map handle (index in maps) -> the process whose mmap introduced it */
	int multi;    /* isMultiProcess */
	int has_par;  /* a par block (issue 14) */
	int users[AX_MAX_USERS]; /* user handles named by setuid */
};

struct config {
	int cpus, paranoid, cap_ipc_lock, cap_setuid;
	long mlock_kb, memlock_pages; /* -1 unlimited */
	char aux[64];
	int has_aux;
};

static int handle_num(const struct aj_node *n, char kind, long *out)
{
	const char *s;
	char *e;

	if (!n || n->type != AJ_STR)
		return -1;
	s = n->str;
	if (s[0] != kind || s[1] < '0' || s[1] > '9')
		return -1;
	*out = strtol(s + 1, &e, 10);
	return *e ? -1 : 0;
}

static int ev_index(const struct prog *p, long num)
{
	for (int i = 0; i < p->nev; i++)
		if (p->evs[i] == num)
			return i;
	return -1;
}

static long map_pages_of(const struct prog *p, long m)
{
	for (int i = 0; i < p->nmap; i++)
		if (p->maps[i] == m)
			return p->map_pages[i];
	return 0;
}

static int prot_bits(const struct aj_node *n)
{
	if (!n || n->type != AJ_STR) return -1;
	if (!strcmp(n->str, "none")) return PROT_NONE;
	if (!strcmp(n->str, "r")) return PROT_READ;
	if (!strcmp(n->str, "rw")) return PROT_READ | PROT_WRITE;
	if (!strcmp(n->str, "rx")) return PROT_READ | PROT_EXEC;
	if (!strcmp(n->str, "rwx")) return PROT_READ | PROT_WRITE | PROT_EXEC;
	return -1;
}

static char problem[512];

#define BAD(...) do { snprintf(problem, sizeof(problem), __VA_ARGS__); return -1; } while (0)

static int get_int(const struct aj_node *o, const char *k, long lo, long hi, int optional, long dflt, long *out, int i)
{
	const struct aj_node *n = aj_get(o, k);

	if (!n) {
		if (optional) { *out = dflt; return 0; }
		BAD("bad program: %d.%s: Required", i, k);
	}
	if (!aj_is_int(n) || n->num < lo || n->num > hi)
		BAD("bad program: %d.%s: expected an integer in [%ld, %ld]", i, k, lo, hi);
	*out = (long)n->num;
	return 0;
}

static int get_bool(const struct aj_node *o, const char *k, int optional, long *out, int i)
{
	const struct aj_node *n = aj_get(o, k);

	if (!n && optional) { *out = 0; return 0; }
	if (!n || (n->type != AJ_TRUE && n->type != AJ_FALSE))
		BAD("bad program: %d.%s: expected a boolean", i, k);
	*out = n->type == AJ_TRUE;
	return 0;
}

static int need_ev(struct prog *p, const struct aj_node *o, const char *k, int i, long *dense)
{
	long num;

	if (handle_num(aj_get(o, k), 'e', &num))
		BAD("bad program: %d.%s: event handles are e0, e1, ...", i, k);
	if ((*dense = ev_index(p, num)) < 0)
		BAD("bad program: op %d: event handle e%ld is used before an open introduces it", i, num);
	return 0;
}

/* A process handle p0 .. p3 (optional: dflt when absent); -1 on error. */
static int get_proc(const struct aj_node *o, const char *k, int optional, int dflt, int *out, int i)
{
	const struct aj_node *n = aj_get(o, k);

	if (!n && optional) { *out = dflt; return 0; }
	if (!n || n->type != AJ_STR || n->str[0] != 'p' || n->str[1] < '0' || n->str[1] > '3' || n->str[2])
		BAD("bad program: %d.%s: process handles are p0 .. p3", i, k);
	*out = n->str[1] - '0';
	return 0;
}

static int need_map(struct prog *p, const struct aj_node *o, int i, long *m)
{
	if (handle_num(aj_get(o, "map"), 'm', m))
		BAD("bad program: %d.map: map handles are m0, m1, ...", i);
	for (int j = 0; j < p->nmap; j++)
		if (p->maps[j] == *m)
			return 0;
	BAD("bad program: op %d: map handle m%ld is used before an mmap introduces it", i, *m);
}

/* The program as ax_ops (events as dense indexes in order of introduction, maps by handle number). */
static int parse_program(const struct aj_node *arr, struct prog *p)
{
	int n = 0, i = 0;

	memset(p, 0, sizeof(*p));
	if (!arr || arr->type != AJ_ARR)
		BAD("bad program: : Expected array");
	for (const struct aj_node *c = arr->child; c; c = c->next)
		n++;
	p->ops = calloc(n + 1, sizeof(*p->ops));
	p->evs = calloc(n + 1, sizeof(int));
	p->maps = calloc(n + 1, sizeof(long));
	p->map_pages = calloc(n + 1, sizeof(long));
	p->proc = calloc(n + 1, sizeof(int));
	p->map_proc = calloc(n + 1, sizeof(int));
	p->users[0] = 1;
	/* spec/program.ts programProblems: a process handle is usable from its fork until its exit */
	int alive[AX_MAX_PROCS] = { 1 }, forked[AX_MAX_PROCS] = { 1 };
	for (const struct aj_node *o = arr->child; o; o = o->next, i++) {
		const struct aj_node *kind = aj_get(o, "op");
		struct ax_op *x = &p->ops[p->nops++];
		const char *k;
		long v[6] = { 0 }, num;
		int pr = 0, has_proc = aj_get(o, "proc") != NULL;

		if (!kind || kind->type != AJ_STR)
			BAD("bad program: %d.op: Invalid discriminator value", i);
		k = kind->str;
		if (strcmp(k, "fork") && strcmp(k, "exit") && strcmp(k, "setuid") && strcmp(k, "sendFd") && strcmp(k, "thread")) {
			if (get_proc(o, "proc", 1, 0, &pr, i))
				return -1;
			if (has_proc && (!strcmp(k, "sysctlMlock") || !strcmp(k, "auxFault")))
				BAD("bad program: %d: Unrecognized key: \"proc\"", i);
			if (!forked[pr])
				BAD("bad program: op %d: process handle p%d is used before a fork introduces it", i, pr);
			if (!alive[pr])
				BAD("bad program: op %d: process handle p%d is used after its exit", i, pr);
			if (pr)
				p->multi = 1;
		}
		if (!strcmp(k, "fork") || !strcmp(k, "exit") || !strcmp(k, "setuid") || !strcmp(k, "sendFd") || !strcmp(k, "thread")) {
			int q = 0;
			p->multi = 1;
			if (get_proc(o, "proc", 0, 0, &pr, i))
				return -1;
			if (k[0] == 'f' || k[0] == 't') {
				if (get_proc(o, "from", 0, 0, &q, i))
					return -1;
				if (!forked[q])
					BAD("bad program: op %d: process handle p%d is used before a fork introduces it", i, q);
				if (!alive[q])
					BAD("bad program: op %d: process handle p%d is used after its exit", i, q);
				if (forked[pr])
					BAD("bad program: op %d: process handle p%d is forked twice (p0 is the initial process)", i, pr);
				forked[pr] = alive[pr] = 1;
				p->proc[i] = q;
				*x = (struct ax_op){ k[0] == 'f' ? 'F' : 'T', { pr, q } };
				continue;
			}
			if (!forked[pr])
				BAD("bad program: op %d: process handle p%d is used before a fork introduces it", i, pr);
			if (!alive[pr])
				BAD("bad program: op %d: process handle p%d is used after its exit", i, pr);
			p->proc[i] = pr;
			if (k[0] == 'e') {
				if (pr == 0)
					BAD("bad program: op %d: p0 is the program's main process and cannot exit", i);
				alive[pr] = 0;
				*x = (struct ax_op){ 'X', { pr } };
			} else if (!strcmp(k, "setuid")) {
				const struct aj_node *u = aj_get(o, "user");
				if (!u || u->type != AJ_STR || u->str[0] != 'u' || u->str[1] < '0' || u->str[1] > '3' || u->str[2])
					BAD("bad program: %d.user: user handles are u0 .. u3", i);
				p->users[u->str[1] - '0'] = 1;
				*x = (struct ax_op){ 'U', { pr, u->str[1] - '0' } };
			} else {
				if (get_proc(o, "to", 0, 0, &q, i) || need_ev(p, o, "ev", i, &v[0]))
					return -1;
				if (!forked[q])
					BAD("bad program: op %d: process handle p%d is used before a fork introduces it", i, q);
				if (!alive[q])
					BAD("bad program: op %d: process handle p%d is used after its exit", i, q);
				*x = (struct ax_op){ 'S', { pr, q, v[0] } };
			}
			continue;
		}
		p->proc[i] = pr;
		if (!strcmp(k, "open")) {
			const struct aj_node *pmu = aj_get(o, "pmu");
			if (handle_num(aj_get(o, "ev"), 'e', &num))
				BAD("bad program: %d.ev: event handles are e0, e1, ...", i);
			if (!pmu || pmu->type != AJ_STR || (strcmp(pmu->str, "sw") && strcmp(pmu->str, "aux")))
				BAD("bad program: %d.pmu: expected \"sw\" or \"aux\"", i);
			if (get_int(o, "cpu", -1, 4095, 1, -1, &v[2], i) || get_bool(o, "inherit", 1, &v[3], i))
				return -1;
			v[4] = -1;
			if (aj_get(o, "outputTo") && need_ev(p, o, "outputTo", i, &v[4]))
				return -1;
			if (ev_index(p, num) >= 0)
				BAD("bad program: op %d: event handle e%ld is opened twice", i, num);
			p->evs[p->nev] = (int)num;
			v[0] = p->nev++;
			v[1] = !strcmp(pmu->str, "aux");
			*x = (struct ax_op){ 'o', { v[0], v[1], v[2], v[3], v[4] } };
		} else if (!strcmp(k, "close")) {
			if (need_ev(p, o, "ev", i, &v[0]))
				return -1;
			*x = (struct ax_op){ 'c', { v[0] } };
		} else if (!strcmp(k, "mmap")) {
			long m;
			int prot = prot_bits(aj_get(o, "prot"));
			if (handle_num(aj_get(o, "map"), 'm', &m))
				BAD("bad program: %d.map: map handles are m0, m1, ...", i);
			if (need_ev(p, o, "ev", i, &v[1]) || get_int(o, "pages", 0, 2048, 0, 0, &v[2], i) ||
			    get_int(o, "pgoff", 0, 1 << 20, 0, 0, &v[3], i) || get_bool(o, "shared", 1, &v[5], i))
				return -1;
			if (prot < 0)
				BAD("bad program: %d.prot: expected none, r, rw, rx or rwx", i);
			if (!aj_get(o, "shared"))
				v[5] = 1;
			for (int j = 0; j < p->nmap; j++)
				if (p->maps[j] == m)
					BAD("bad program: op %d: map handle m%ld is mapped twice", i, m);
			p->maps[p->nmap] = m;
			p->map_proc[p->nmap] = pr;
			p->map_pages[p->nmap++] = v[2];
			if (m > p->max_map)
				p->max_map = m;
			*x = (struct ax_op){ 'm', { m, v[1], v[2], v[3], prot, v[5] } };
		} else if (!strcmp(k, "munmap") || !strcmp(k, "mprotect")) {
			int prot = 0;
			if (need_map(p, o, i, &v[0]) || get_int(o, "offset", 0, 8192 - 2048, 1, 0, &v[1], i) ||
			    get_int(o, "pages", 0, 2048, 1, map_pages_of(p, v[0]), &v[2], i))
				return -1;
			if (k[1] == 'p') {
				if ((prot = prot_bits(aj_get(o, "prot"))) < 0)
					BAD("bad program: %d.prot: expected none, r, rw, rx or rwx", i);
				*x = (struct ax_op){ 'p', { v[0], v[1], v[2], prot } };
			} else
				*x = (struct ax_op){ 'u', { v[0], v[1], v[2] } };
		} else if (!strcmp(k, "mremap")) {
			if (need_map(p, o, i, &v[0]) || get_int(o, "offset", 0, 8192 - 2048, 1, 0, &v[1], i) ||
			    get_int(o, "oldPages", 0, 2048, 0, 0, &v[2], i) || get_int(o, "newPages", 0, 2048, 0, 0, &v[3], i) ||
			    get_bool(o, "mayMove", 1, &v[4], i) || get_bool(o, "toFresh", 1, &v[5], i))
				return -1;
			*x = (struct ax_op){ 'r', { v[0], v[1], v[2], v[3], v[4], v[5] } };
		} else if (!strcmp(k, "mapFixedAnon")) {
			if (need_map(p, o, i, &v[0]) || get_int(o, "offset", 0, 8192 - 2048, 0, 0, &v[1], i) ||
			    get_int(o, "pages", 1, 2048, 0, 0, &v[2], i))
				return -1;
			*x = (struct ax_op){ 'f', { v[0], v[1], v[2] } };
		} else if (!strcmp(k, "setAux")) {
			if (need_map(p, o, i, &v[0]) || get_int(o, "offsetPages", 0, 1 << 20, 0, 0, &v[1], i) ||
			    get_int(o, "sizePages", 0, 1 << 20, 0, 0, &v[2], i))
				return -1;
			*x = (struct ax_op){ 'a', { v[0], v[1], v[2] } };
		} else if (!strcmp(k, "setOutput")) {
			const struct aj_node *t = aj_get(o, "target");
			if (need_ev(p, o, "ev", i, &v[0]))
				return -1;
			if (!t)
				BAD("bad program: %d.target: Required", i);
			v[1] = -2;
			if (t->type != AJ_NULL && need_ev(p, o, "target", i, &v[1]))
				return -1;
			*x = (struct ax_op){ 's', { v[0], v[1] } };
		} else if (!strcmp(k, "rlimit")) {
			const struct aj_node *m = aj_get(o, "memlockPages");
			if (m && m->type == AJ_STR && !strcmp(m->str, "unlimited"))
				v[0] = -1;
			else if (get_int(o, "memlockPages", 0, 1L << 30, 0, 0, &v[0], i))
				return -1;
			*x = (struct ax_op){ 'l', { v[0] } };
		} else if (!strcmp(k, "par")) {
			/* spec/program.ts parProblems (the TypeScript side checks the rest: kinds, tasks, handles) */
			if (has_proc)
				BAD("bad program: %d: Unrecognized key: \"proc\"", i);
			if (get_int(o, "ops", 2, 3, 0, 0, &v[0], i))
				return -1;
			p->multi = 1;
			p->has_par = 1;
			*x = (struct ax_op){ 'B', { v[0] } };
		} else if (!strcmp(k, "sysctlMlock")) {
			if (get_int(o, "kb", 0, 1 << 20, 0, 0, &v[0], i))
				return -1;
			*x = (struct ax_op){ 'k', { v[0] } };
		} else if (!strcmp(k, "auxFault")) {
			if (get_bool(o, "fail", 0, &v[0], i))
				return -1;
			*x = (struct ax_op){ 'x', { v[0] } };
		} else if (!strcmp(k, "touch")) {
			if (need_map(p, o, i, &v[0]) || get_int(o, "page", 0, 8191, 0, 0, &v[1], i) || get_bool(o, "write", 0, &v[2], i))
				return -1;
			*x = (struct ax_op){ 't', { v[0], v[1], v[2] } };
		} else if (!strcmp(k, "readUserPage")) {
			if (need_map(p, o, i, &v[0]))
				return -1;
			*x = (struct ax_op){ 'g', { v[0] } };
		} else if (!strcmp(k, "mapRangeFault")) {
			/* spec/program.ts: a model-only switch; no kernel hook makes map_range() fail */
			BAD("op %d: mapRangeFault cannot be injected on a real kernel (map_range() is core kernel code)", i);
		} else
			BAD("bad program: %d.op: Invalid discriminator value. Expected one of the ops, got '%s'", i, k);
		if (!has_proc && strchr("uprfatg", x->kind)) {
			/* opProc: an op on a map handle runs in the process whose mmap introduced it */
			for (int j = 0; j < p->nmap; j++)
				if (p->maps[j] == x->a[0])
					p->proc[i] = p->map_proc[j];
			if (p->proc[i] && !alive[p->proc[i]])
				BAD("bad program: op %d: process handle p%d is used after its exit", i, p->proc[i]);
		}
	}
	for (int j = 0; j < p->nops; j++)
		if (p->ops[j].kind == 'B') {
			if (j + p->ops[j].a[0] >= p->nops)
				BAD("bad program: op %d: par block of %ld ops runs past the end of the program", j, p->ops[j].a[0]);
			for (int m = 1; m <= p->ops[j].a[0]; m++)
				if (p->ops[j + m].kind == 'B')
					BAD("bad program: op %d: par cannot be inside a par block", j + m);
			j += (int)p->ops[j].a[0];
		}
	return 0;
}

static void free_program(struct prog *p)
{
	free(p->ops);
	free(p->evs);
	free(p->maps);
	free(p->map_pages);
	free(p->proc);
	free(p->map_proc);
}

static int parse_config(const struct aj_node *c, struct config *cf)
{
	const struct aj_node *n, *pmus;

	memset(cf, 0, sizeof(*cf));
	if (!c || c->type != AJ_OBJ)
		BAD("bad config: : Expected object");
#define CINT(key, lo, hi, dst) do { n = aj_get(c, key); if (!aj_is_int(n) || n->num < (lo) || n->num > (hi)) BAD("bad config: %s: expected an integer", key); dst = (long)n->num; } while (0)
	CINT("pageSize", 4096, 4096, cf->cpus);
	CINT("cpus", 1, 4096, cf->cpus);
	CINT("mlockKb", 0, 1e15, cf->mlock_kb);
	CINT("paranoid", -1, 4, cf->paranoid);
	n = aj_get(c, "memlockPages");
	if (n && n->type == AJ_STR && !strcmp(n->str, "unlimited"))
		cf->memlock_pages = -1;
	else
		CINT("memlockPages", 0, 1e15, cf->memlock_pages);
	n = aj_get(c, "capIpcLock");
	if (!n || (n->type != AJ_TRUE && n->type != AJ_FALSE))
		BAD("bad config: capIpcLock: expected a boolean");
	cf->cap_ipc_lock = n->type == AJ_TRUE;
	n = aj_get(c, "capSetuid");
	if (n && n->type != AJ_TRUE && n->type != AJ_FALSE)
		BAD("bad config: capSetuid: expected a boolean");
	cf->cap_setuid = !n || n->type == AJ_TRUE;
	pmus = aj_get(c, "pmus");
	n = aj_get(pmus, "aux");
	if (!n || (n->type != AJ_NULL && n->type != AJ_STR))
		BAD("bad config: pmus.aux: expected a string or null");
	if (n->type == AJ_STR) {
		cf->has_aux = 1;
		snprintf(cf->aux, sizeof(cf->aux), "%s", n->str);
	}
#undef CINT
	return 0;
}

/* hwtest/host/executor.ts configProblem and programProblem. */
static int config_problem(const struct config *c, const struct prog *p)
{
	if (c->cpus != F.cpus)
		BAD("config.cpus %d differs from this machine's %d online CPUs", c->cpus, F.cpus);
	if (c->paranoid != F.paranoid)
		BAD("config.paranoid %d differs from this machine's perf_event_paranoid %d", c->paranoid, F.paranoid);
	if (c->has_aux != (F.aux_type >= 0) || (c->has_aux && strcmp(c->aux, F.aux_name)))
		BAD("config.pmus.aux %s%s%s differs from this machine's AUX PMU %s%s%s", c->has_aux ? "\"" : "", c->has_aux ? c->aux : "null", c->has_aux ? "\"" : "",
		    F.aux_type >= 0 ? "\"" : "", F.aux_type >= 0 ? F.aux_name : "null", F.aux_type >= 0 ? "\"" : "");
	if (c->mlock_kb != F.mlock_kb && !O.allow_sysctl)
		BAD("config.mlockKb %ld differs from this machine's perf_event_mlock_kb %ld (changing it needs allowSysctl)", c->mlock_kb, F.mlock_kb);
	if (c->cap_ipc_lock && !F.root)
		BAD("config.capIpcLock needs root (CAP_IPC_LOCK in the permitted set)");
	for (int i = 0; i < p->nops; i++) {
		if (p->ops[i].kind == 'U' && c->cap_setuid && !F.root)
			BAD("config.capSetuid needs root (setuid to a fresh uid); this host's config says capSetuid false");
		if (p->ops[i].kind == 'U' && !c->cap_setuid && F.root)
			BAD("config.capSetuid false: as root every setuid switches (the saved uid is 0)");
		if (p->ops[i].kind == 'k' && !O.allow_sysctl)
			BAD("sysctlMlock changes a global sysctl: not allowed on this backend (allowSysctl)");
		if (p->ops[i].kind == 'x' && !F.test_pmu_dir)
			BAD("auxFault needs the auxspec_pmu test module");
		if (p->ops[i].kind == 'm' && p->ops[i].a[0] > MAX_MAP_HANDLE)
			BAD("map handle m%ld is beyond the slot area (max m%d)", p->ops[i].a[0], MAX_MAP_HANDLE);
	}
	return 0;
}

static void trace_begin(struct aj_buf *b)
{
	aj_raw(b, "{\"backend\":\"host\",\"kernel\":");
	aj_str(b, F.release);
	aj_raw(b, ",\"steps\":[");
}

static void aborted_trace(struct aj_buf *b, const char *why)
{
	trace_begin(b);
	aj_raw(b, "],\"audit\":null,\"aborted\":");
	aj_str(b, why);
	aj_raw(b, "}");
}

static double sat(uint64_t v) { return v > (uint64_t)MAX_SAFE ? MAX_SAFE : (double)v; }

static void write_step(struct aj_buf *b, int first, int res, const struct ax_op *op, const uint64_t *pg, long vmpin)
{
	aj_raw(b, first ? "{\"outcome\":" : ",{\"outcome\":");
	if (res > 0) {
		aj_raw(b, "{\"errno\":");
		aj_str(b, ax_errno_name(res));
		aj_raw(b, "}");
	} else if (res < 0)
		aj_raw(b, res == -SIGBUS ? "{\"signal\":\"SIGBUS\"}" : "{\"signal\":\"SIGSEGV\"}");
	else if (op->kind == 'g')
		aj_printf(b, "{\"ok\":true,\"page\":{\"dataOffset\":%.0f,\"dataSize\":%.0f,\"auxHead\":%.0f,\"auxOffset\":%.0f,\"auxSize\":%.0f}}",
			  sat(pg[0]), sat(pg[1]), sat(pg[2]), sat(pg[3]), sat(pg[4]));
	else
		aj_raw(b, "{\"ok\":true}");
	aj_printf(b, ",\"vmPinKb\":%ld}", vmpin);
}

static void write_warnings(struct aj_buf *b, const struct strs *w)
{
	aj_raw(b, "[");
	for (int i = 0; i < w->n; i++) {
		if (i)
			aj_raw(b, ",");
		aj_str(b, w->v[i]);
	}
	aj_raw(b, "]");
}


/* Tests only (request field testStall {task: "pK", at: "barrier" | "op"}): that task of every par
 * block never reaches the barrier, or never returns after the release (runtime/README.md). */
static int test_stall_task = -1, test_stall_mode;

/* Set when the worker may no longer run programs (identity not restored). */
static int worker_dirty;
/* The worker's pipes to the supervisor: a program's child processes close them. */
static int worker_fds[2] = { -1, -1 };

/* A parsed JSON value written back (the request's config, echoed in trace.config); `skip` is a key left out. */
static void write_node(struct aj_buf *b, const struct aj_node *n, const char *skip)
{
	int first = 1;

	switch (n->type) {
	case AJ_NULL: aj_raw(b, "null"); break;
	case AJ_FALSE: aj_raw(b, "false"); break;
	case AJ_TRUE: aj_raw(b, "true"); break;
	case AJ_NUM: aj_printf(b, "%.17g", n->num); break;
	case AJ_STR: aj_str(b, n->str); break;
	case AJ_ARR:
	case AJ_OBJ:
		aj_raw(b, n->type == AJ_ARR ? "[" : "{");
		for (const struct aj_node *c = n->child; c; c = c->next) {
			if (n->type == AJ_OBJ && skip && !strcmp(c->key, skip))
				continue;
			if (!first)
				aj_raw(b, ",");
			first = 0;
			if (n->type == AJ_OBJ) {
				aj_str(b, c->key);
				aj_raw(b, ":");
			}
			write_node(b, c, NULL);
		}
		aj_raw(b, n->type == AJ_ARR ? "]" : "}");
		break;
	}
}

/* ---- the audit's budget probe, with the tries whose answer is known left out ---- */

/*
 * spec/audit.ts budgetProbe (runtime/auxspec.h ax_budget_probe is its literal twin, which the
 * reproducers and the host helpers use): fresh data buffers of 2^k data pages + the user page,
 * greedily from the largest k under the cap down to k = 0, each size repeated while it maps,
 * then user-page-only buffers; stop at EPERM or at the cap. Most of its mmaps fail: after the
 * buffer that takes the budget, every smaller size is tried once more (8 failing mmaps for the
 * usual 129-page budget). This copy returns the same pages with
 * fewer tries, from one fact of every profile's kernel:
 *
 *   At a fixed state (user->locked_vm, mm->pinned_vm, RLIMIT_MEMLOCK, no CAP_IPC_LOCK), a
 *   fresh buffer of n data pages maps iff pinned_vm + max(0, min(locked_vm, limit) + n + 1 -
 *   limit) <= RLIMIT_MEMLOCK pages (inline in perf_mmap() in Debian's linux-source 5.10 and 6.1,
 *   perf_mmap_calc_limits() in 7.2 and 7.3; the clamp since 5.6): EPERM is monotone in n, and the check runs
 *   before anything is allocated or charged, so a failing try changes nothing. (Only while
 *   pinned_vm >= 0: `locked` is unsigned, so a negative pinned_vm plus `extra` wraps and the
 *   answer is no longer monotone in n. The audit knows VmPin; with VmPin < 0 it runs the
 *   literal ax_budget_probe.)
 *
 * So after a buffer mapped (a new state), one user-page-only try first: if even that fails,
 * every try the greedy order has left at this state fails too, and the probe ends with the
 * pages it has. If it maps, it is unmapped and its event closed at once (a fresh buffer mapped
 * within the budget charges n + 1 pages to the user's locked_vm and none to pinned_vm, since
 * pinned_vm may not grow under this rlimit, and its munmap refunds the same n + 1 to the same
 * user: rb->mmap_user is current_user(), rb->mmap_locked is 0; perf_mmap_close() in the same
 * versions, perf_mmap_unaccount() in 7.2 and 7.3), and the greedy order goes on as before. The usual budget then costs 2 mmaps, not 9.
 * test/hwtest/agent-probe.test.ts runs this code against budgetProbe over a monotone budget.
 */
struct probe_buf { void *p; size_t len; int fd; };
struct probe_state { struct probe_buf *b; int nb, size, spare; };

/* One try: a fresh buffer of n data pages + the user page. 1: mapped (kept); 0: EPERM; -1: error (ax_harness_msg). */
static int probe_try(struct probe_state *s, long n)
{
	void *p;

	if (s->spare < 0) {
		s->spare = ax_perf_open(PERF_TYPE_SOFTWARE, PERF_COUNT_SW_DUMMY, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);
		if (s->spare < 0) {
			snprintf(ax_harness_msg, sizeof(ax_harness_msg), "budget probe: perf_event_open failed with %s", ax_errno_name(errno));
			return -1;
		}
	}
	p = mmap(NULL, (n + 1) * AX_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, s->spare, 0);
	if (p == MAP_FAILED) {
		if (errno == EPERM)
			return 0;
		snprintf(ax_harness_msg, sizeof(ax_harness_msg), "budget probe: mmap of %ld pages failed with %s", n + 1, ax_errno_name(errno));
		return -1;
	}
	if (s->nb == s->size) {
		void *nbp = realloc(s->b, (s->size = s->size ? 2 * s->size : 32) * sizeof(*s->b));
		if (!nbp) {
			munmap(p, (n + 1) * AX_PAGE_SIZE);
			snprintf(ax_harness_msg, sizeof(ax_harness_msg), "budget probe: out of memory");
			return -1;
		}
		s->b = nbp;
	}
	s->b[s->nb].p = p;
	s->b[s->nb].len = (n + 1) * AX_PAGE_SIZE;
	s->b[s->nb++].fd = s->spare;
	s->spare = -1;
	return 1;
}

/* Pages the probe maps under `cap`, everything unmapped and closed again; -1 on an error. vmpin_kb: VmPin now. */
static long agent_budget_probe(long cap, long vmpin_kb)
{
	struct probe_state s = { NULL, 0, 0, -1 };
	long pages = 0;
	int k = 0, r = 0, looked = 1; /* looked: this state had its user-page-only try (none at the start) */

	if (vmpin_kb < 0)
		return ax_budget_probe(cap);
	while ((2L << k) + 1 <= cap)
		k++;
	for (; k >= -1 && r >= 0; k--) {
		long n = k >= 0 ? 1L << k : 0;
		while (pages + n + 1 <= cap) {
			if (!looked && n > 0) {
				looked = 1;
				if ((r = probe_try(&s, 0)) <= 0)
					goto out; /* 0: nothing maps at this state, so no try left would */
				s.nb--;
				munmap(s.b[s.nb].p, s.b[s.nb].len);
				close(s.b[s.nb].fd);
			}
			if ((r = probe_try(&s, n)) <= 0)
				break;
			pages += n + 1;
			looked = 0;
		}
	}
out:
	for (int i = 0; i < s.nb; i++)
		munmap(s.b[i].p, s.b[i].len);
	for (int i = 0; i < s.nb; i++)
		close(s.b[i].fd);
	if (s.spare >= 0)
		close(s.spare);
	free(s.b);
	return r < 0 ? -1 : pages;
}

/* ---- end of the budget probe ---- */

/*
 * Not root (--measure-budget, as agent.ts runAsSharedUser): the shared user's budget, probed as
 * the audit does (RLIMIT_MEMLOCK at the pinned pages, no CAP_IPC_LOCK); -1 with ax_harness_msg.
 */
static long measure_budget(const struct config *c, long vmpin)
{
	struct rlimit orig;
	long pages;

	getrlimit(RLIMIT_MEMLOCK, &orig);
	if (ax_set_memlock(vmpin > 0 ? (vmpin + 3) / 4 : 0)) {
		ax_harness("setrlimit for the budget probe failed");
		return -1;
	}
	pages = agent_budget_probe(ax_budget_cap(c->mlock_kb, c->cpus), vmpin);
	setrlimit(RLIMIT_MEMLOCK, &orig);
	return pages;
}

/* One user's budget (the audit's probe) as `uid`: 0 or -1 with `aborted` set. */
static int probe_as(struct ax_run *r, unsigned uid, const struct config *c, long vmpin, long *out, char *aborted, size_t n)
{
	if (r->uid != uid && ax_setuid(r, 1, uid)) {
		snprintf(aborted, n, "budget probe: switching to uid %u: %s", uid, ax_harness_msg);
		return -1;
	}
	if (ax_budget_prepare(vmpin > 0 ? vmpin : 0)) {
		snprintf(aborted, n, "setrlimit or capset for the budget probe");
		return -1;
	}
	*out = agent_budget_probe(ax_budget_cap(c->mlock_kb, c->cpus), vmpin);
	if (*out < 0) {
		snprintf(aborted, n, "budget probe: %s", ax_harness_msg);
		return -1;
	}
	return 0;
}

/*
 * Ops that change no mm's pinned_vm, in any profile's kernel: pinned_vm moves only in
 * perf_mmap() (the charge, atomic64_add to vma->vm_mm) and perf_mmap_close() (the refunds,
 * atomic64_sub from vma->vm_mm), i.e. when a perf VMA is mapped or closed (kernel/events/core.c
 * of Debian's linux-source 5.10, 6.1, 7.2 and 7.3: no other pinned_vm in kernel/events/; elsewhere only
 * for pinned user pages: io_uring, RDMA, vfio, xsk, which no op uses). None of these maps or
 * closes a VMA: perf_event_open (open, with or without outputTo), close(2) of an event fd (a
 * VMA holds its own file reference, so perf_release runs only after the last munmap),
 * PERF_EVENT_IOC_SET_OUTPUT (setOutput), setrlimit (rlimit), writes to perf_event_mlock_kb or
 * the test PMU's fail_setup_aux (sysctlMlock, auxFault), and page accesses (touch, setAux,
 * readUserPage: a fault runs perf_mmap_fault() or delivers SIGSEGV/SIGBUS; the CLONE_VM
 * child of --touch=child shares the mm and unmaps nothing). After such an op p0's VmPin is the
 * value read after the op before it, so it is not read again (30 to 80 us a read in a TCG guest). Every
 * other op (mmap, munmap, mremap, mprotect, mapFixedAnon, the process ops, a par block), in
 * any task (p0's threads share its mm), makes the next op of p0 read it.
 */
static int keeps_pinned_vm(char kind)
{
	return kind && strchr("ocslkxtga", kind) != NULL;
}

/*
 * The slots of p0's mm the teardown must unmap: bit 0 slot A, bit 1 slot B of each map handle
 * (indexed by handle number). A slot holds something only when an op of p0's mm (p0 or one of
 * its threads: a `thread` shares the mm of the task it comes from, a `fork` starts a new one)
 * mapped there: mmap (slot A: MAP_FIXED_NOREPLACE at the handle's slot A), mapFixedAnon and a
 * non-moving mremap (the handle's current slot, either), a toFresh mremap (both). munmap of a
 * range with nothing mapped changes nothing (it finds no VMA), so the teardown skips the slots
 * left empty: the steps that unmap something run in the protocol's order as before. An mremap
 * that may move without toFresh can land anywhere the kernel picks: then every slot is
 * unmapped, as the protocol says.
 */
static void slots_used(const struct prog *p, unsigned char *used)
{
	int mm_of[AX_MAX_PROCS] = { 0 }, all = 0;

	for (int i = 0; i < p->nops; i++) {
		const struct ax_op *o = &p->ops[i];
		int in_p0 = mm_of[p->proc[i] >= 0 && p->proc[i] < AX_MAX_PROCS ? p->proc[i] : 0] == 0;

		if (o->kind == 'F')
			mm_of[o->a[0]] = (int)o->a[0];
		else if (o->kind == 'T')
			mm_of[o->a[0]] = mm_of[o->a[1]];
		else if (!in_p0 || o->a[0] < 0 || o->a[0] > p->max_map)
			continue;
		else if (o->kind == 'm')
			used[o->a[0]] |= 1;
		else if (o->kind == 'f')
			used[o->a[0]] |= 3;
		else if (o->kind == 'r') {
			used[o->a[0]] |= 3;
			all |= o->a[4] && !o->a[5];
		}
	}
	if (all)
		memset(used, 3, p->max_map + 1);
}

/*
 * One program, as hwtest/host/executor.ts runProgramHere: identity in, ops with VmPin after
 * each, the protocol's teardown, the audit, identity out.
 */
static void run_program(struct aj_buf *b, const struct aj_node *prog_n, const struct aj_node *cfg_n, unsigned uid, int jitter_us)
{
	struct prog p;
	struct config c;
	struct ax_run r;
	struct rlimit orig;
	struct strs warnings = { 0 };
	char aborted[600] = "";
	int *fds = NULL, switched = 0, mlock_touched_enter = 0, harness = 0;
	unsigned char *flip = NULL, *used;
	long v, budgets[AX_MAX_USERS], before = -1, pin0 = LONG_MIN; /* pin0: p0's VmPin, when no op since its read could change it */
	struct ax_procs P;
	double tt = now_us();

	if (parse_program(prog_n, &p) || parse_config(cfg_n, &c) || config_problem(&c, &p)) {
		aborted_trace(b, problem);
		free_program(&p);
		return;
	}
	t_add(T_PARSE, &tt);
	if (O.guest && F.test_pmu_dir && (pmu_fd[PMU_RESET] < 0 || pwrite(pmu_fd[PMU_RESET], "1", 1, 0) != 1))
		ax_write_file(PARAMS "/reset_counts", "1");
	if (O.guest)
		kmsg_drain(&unattributed);
	fds = calloc(p.nev + 1, sizeof(int));
	flip = calloc(p.max_map + 1, 1);
	ax_run_init(&r, fds, p.nev, flip, p.max_map + 1);
	r.inproc = O.inproc;
	r.aux_type = F.aux_type >= 0 ? F.aux_type : AX_NO_SUCH_PMU_TYPE;
	r.cap_ipc_lock = c.cap_ipc_lock;
	r.aux_param_dir = F.test_pmu_dir;
	{
		/* anchors (procs.h ax_procs_init_users): the users setuid names, and u0 when any task
		 * switches; the par barrier page only for a program with a par block */
		unsigned anchor = 0;
		for (int i = 0; i < p.nops; i++)
			if (p.ops[i].kind == 'U')
				anchor |= 1u | (1u << p.ops[i].a[1]);
		ax_procs_init_users(&P, &r, F.root, F.root ? uid : getuid(), anchor, p.has_par);
	}
	memset(prog_pids, 0, sizeof(prog_pids));
	P.close_in_child[0] = worker_fds[0];
	P.close_in_child[1] = worker_fds[1];
	P.close_in_child[2] = kmsg_wfd;
	getrlimit(RLIMIT_MEMLOCK, &orig);
	trace_begin(b);
	if (O.measure_budget && !F.root && !O.no_budget) {
		/* the shared user's locked_vm at the start: earlier programs' leaks stay charged to it */
		if ((before = measure_budget(&c, 0)) < 0) {
			snprintf(aborted, sizeof(aborted), "harness: budget probe before the program: %s", ax_harness_msg);
			goto teardown;
		}
	}

	/* identity.ts enter */
	if (c.mlock_kb != F.mlock_kb) {
		char kb[32];
		int e;
		snprintf(kb, sizeof(kb), "%ld", c.mlock_kb);
		e = ax_write_file(AX_PROC_MLOCK, kb);
		r.mlock_touched = mlock_touched_enter = 1;
		if (e) {
			snprintf(aborted, sizeof(aborted), "cannot set perf_event_mlock_kb to %ld: %s", c.mlock_kb, ax_errno_name(e));
			goto teardown;
		}
	}
	if ((v = ax_set_memlock(c.memlock_pages))) {
		snprintf(aborted, sizeof(aborted), "cannot set RLIMIT_MEMLOCK to %ld pages: %s", c.memlock_pages, ax_errno_name((int)v));
		goto teardown;
	}
	if (F.root) {
		if (syscall(SYS_setresgid, uid, uid, 0)) {
			snprintf(aborted, sizeof(aborted), "setresgid(%u): %s", uid, ax_errno_name(errno));
			goto teardown;
		}
		if (syscall(SYS_setresuid, uid, uid, 0)) {
			snprintf(aborted, sizeof(aborted), "setresuid(%u): %s", uid, ax_errno_name(errno));
			goto teardown;
		}
		switched = 1;
		r.uid = uid;
	}
	if (ax_set_ipc_lock(c.cap_ipc_lock)) {
		snprintf(aborted, sizeof(aborted), "capset CAP_IPC_LOCK=%s failed", c.cap_ipc_lock ? "true" : "false");
		goto teardown;
	}
	v = ax_vmpin_kb(status_fd);
	if (v == LONG_MIN) {
		snprintf(aborted, sizeof(aborted), "cannot read VmPin from /proc/self/status");
		goto teardown;
	}
	if (v != 0 && F.root) {
		snprintf(aborted, sizeof(aborted), "VmPin is %ld kB before the program: this process is not clean", v);
		goto teardown;
	}
	pin0 = v;
	P.jitter_us = jitter_us;
	P.stall_task = test_stall_task;
	P.stall_mode = test_stall_mode;
	t_add(T_ENTER, &tt);
	for (int i = 0; i < p.nops; i++) {
		double to = now_us();
		/* the op in its process (spec/program.ts opProc); VmPin is that process's after it */
		int res;
		if (p.ops[i].kind == 'B') {
			/* a par block (spec/notes/races.md): the marker's step, then the block's ops released
			 * together from the barrier, each op's VmPin read after the whole block */
			struct ax_par_res pr[3];
			int n = (int)p.ops[i].a[0];
			pin0 = LONG_MIN;
			write_step(b, i == 0, 0, &p.ops[i], r.page, 0);
			if (ax_procs_par(&P, n, &p.proc[i + 1], &p.ops[i + 1], status_fd, pr) == AX_HARNESS) {
				snprintf(aborted, sizeof(aborted), "%s", ax_harness_msg);
				harness = 1;
				break;
			}
			for (int k = 1; k < AX_MAX_PROCS; k++)
				if (P.p[k].pid)
					prog_pids[k] = P.p[k].pid;
			for (int j = 0; j < n; j++) {
				if (pr[j].vmpin == LONG_MIN) {
					snprintf(aborted, sizeof(aborted), "cannot read VmPin of p%d from /proc/<pid>/status", p.proc[i + 1 + j]);
					goto teardown;
				}
				write_step(b, 0, pr[j].res, &p.ops[i + 1 + j], pr[j].page, pr[j].vmpin);
			}
			i += n;
			continue;
		}
		if (p.proc[i] == 0 && pin0 != LONG_MIN && keeps_pinned_vm(p.ops[i].kind)) {
			/* as ax_procs_op in p0, without the VmPin read (keeps_pinned_vm) */
			res = ax_run_op(&r, &p.ops[i]);
			P.vmpin = pin0;
		} else {
			res = ax_procs_op(&P, p.proc[i], &p.ops[i], status_fd);
			if (strchr("FTXUSB", p.ops[i].kind))
				pin0 = LONG_MIN;
			else if (p.proc[i] == 0)
				pin0 = P.vmpin; /* read just now, after this op */
			else if (!keeps_pinned_vm(p.ops[i].kind))
				pin0 = LONG_MIN;
		}
		if (res == AX_HARNESS) {
			snprintf(aborted, sizeof(aborted), "%s", ax_harness_msg);
			harness = 1;
			break;
		}
		for (int k = 1; k < AX_MAX_PROCS; k++)
			if (P.p[k].pid)
				prog_pids[k] = P.p[k].pid;
		v = P.vmpin;
		if (v == LONG_MIN) {
			snprintf(aborted, sizeof(aborted), "cannot read VmPin of p%d from /proc/<pid>/status", p.proc[i]);
			break;
		}
		write_step(b, i == 0, res, &p.ops[i], r.page, v);
		t_op(p.ops[i].kind, to);
	}
teardown:
	t_add(T_OPS, &tt);
	/* a harness failure or time-out leaves nothing running: every child ends (its socket closes) */
	if (harness || aborted[0])
		ax_procs_kill_all(&P);
	/* spec/audit.ts teardownSteps: restore, live children exit in fork order, both slots of every
	 * map handle, strays, closes (in p0) */
	ax_td_restore(&r, c.mlock_kb);
	if (ax_procs_exit_all(&P) && !aborted[0])
		snprintf(aborted, sizeof(aborted), "teardown: %s", ax_harness_msg);
	used = calloc(p.max_map + 1, 1);
	slots_used(&p, used);
	for (int i = 0; i < p.nmap; i++) {
		if (used[p.maps[i]] & 1)
			ax_td_munmap(&r, p.maps[i], 0);
		if (used[p.maps[i]] & 2)
			ax_td_munmap(&r, p.maps[i], 1);
	}
	free(used);
	ax_td_strays(&r);
	for (int i = 0; i < p.nev; i++)
		ax_td_close(&r, i);
	aj_raw(b, "],\"audit\":");
	t_add(T_TEARDOWN, &tt);
	if (!aborted[0]) {
		long budget = -1;
		int nb = 0;
		v = ax_vmpin_kb(status_fd);
		t_add(T_AUDIT_PIN, &tt);
		if (switched && !O.no_budget) {
			/* u0's budget as its uid, then every other user a setuid named (spec/audit.ts) */
			if (probe_as(&r, uid, &c, v, &budget, aborted, sizeof(aborted)))
				goto audit_done;
			for (int k = 1; k < AX_MAX_USERS; k++) {
				budgets[k] = -1;
				if (p.users[k] && probe_as(&r, P.uids[k], &c, v, &budgets[k], aborted, sizeof(aborted)))
					goto audit_done;
				nb += p.users[k];
			}
			ax_set_ipc_lock(c.cap_ipc_lock);
		} else if (before >= 0) {
			if ((budget = measure_budget(&c, v)) < 0) {
				snprintf(aborted, sizeof(aborted), "harness: budget probe after the program: %s", ax_harness_msg);
				goto audit_done;
			}
		}
		t_add(T_PROBE, &tt);
		aj_printf(b, "{\"vmPinKb\":%ld", v);
		if (budget >= 0)
			aj_printf(b, ",\"budgetPages\":%ld", budget);
		if (nb) {
			aj_raw(b, ",\"budgets\":{");
			for (int k = 1, first = 1; k < AX_MAX_USERS; k++)
				if (p.users[k] && budgets[k] >= 0) {
					aj_printf(b, "%s\"u%d\":%ld", first ? "" : ",", k, budgets[k]);
					first = 0;
				}
			aj_raw(b, "}");
		}
		if (F.test_pmu_dir) {
			long live = pmu_read(PMU_LIVE), setups = pmu_read(PMU_SETUPS), frees = pmu_read(PMU_FREES);
			if (live >= 0) aj_printf(b, ",\"liveAux\":%ld", live);
			if (setups >= 0) aj_printf(b, ",\"auxSetups\":%ld", setups);
			if (frees >= 0) aj_printf(b, ",\"auxFrees\":%ld", frees);
		}
		t_add(T_PMU, &tt);
		if (O.guest)
			kmsg_boundary("end", &warnings);
		else
			kmsg_scan(getpid(), NULL, &warnings, &warnings); /* this worker's and its children's */
		t_add(T_KMSG, &tt);
		if (warnings.n) {
			aj_raw(b, ",\"warnings\":");
			write_warnings(b, &warnings);
		}
		aj_raw(b, "}");
		if (before >= 0) {
			/* the start of user->locked_vm the spec must start from, when not the config's */
			const struct aj_node *lk = aj_get(cfg_n, "lockedVmPages");
			long start = ax_budget_limit(c.mlock_kb, c.cpus) - before;
			if (start < 0)
				start = 0;
			if (start != (lk && aj_is_int(lk) ? (long)lk->num : 0)) {
				aj_raw(b, ",\"config\":");
				write_node(b, cfg_n, "lockedVmPages");
				b->len--; /* reopen the object */
				aj_printf(b, "%s\"lockedVmPages\":%ld}", cfg_n->child ? "," : "", start);
			}
		}
		aj_raw(b, "}");
	} else {
audit_done:
		/* audit null, aborted; in a guest the kernel log of the program goes into the reason (as the shim does) */
		aj_raw(b, "null,\"aborted\":");
		if (O.guest) {
			kmsg_boundary("end", &warnings);
			for (int i = 0; i < warnings.n; i++) {
				size_t l = strlen(aborted);
				snprintf(aborted + l, sizeof(aborted) - l, "%s%s", i ? " | " : "; kernel log: ", warnings.v[i]);
			}
		}
		aj_str(b, aborted);
		aj_raw(b, "}");
	}
	strs_clear(&warnings);
	/* identity.ts leave */
	if (switched && ax_back_to_root()) {
		logf_("could not switch back to root after uid %u", uid);
		worker_dirty = 1;
	}
	setrlimit(RLIMIT_MEMLOCK, &orig);
	if (c.mlock_kb != F.mlock_kb || mlock_touched_enter || r.mlock_touched) {
		char kb[32];
		snprintf(kb, sizeof(kb), "%ld", F.mlock_kb);
		ax_write_file(AX_PROC_MLOCK, kb);
	}
	ax_procs_fini(&P);
	free(fds);
	free(flip);
	free_program(&p);
	t_add(T_LEAVE, &tt);
}

static void pmu_counters(struct aj_buf *b)
{
	if (!F.test_pmu_dir) {
		aj_raw(b, "null");
		return;
	}
	aj_printf(b, "{\"setups\":%ld,\"frees\":%ld,\"live\":%ld,\"failSetupAux\":%s}", pmu_read(PMU_SETUPS),
		  pmu_read(PMU_FREES), pmu_read(PMU_LIVE), pmu_read(PMU_FAIL) == 1 ? "true" : "false");
}

static double uptime(void)
{
	char buf[64];

	return read_text("/proc/uptime", buf, sizeof(buf)) ? strtod(buf, NULL) : 0;
}

/* One request in the worker: its answer line (without the newline) into b. */
static void worker_request(struct aj_buf *b, char *line, unsigned uid)
{
	static struct aj_node nodes[1 << 16];
	const char *err = NULL;
	struct aj_node *req = aj_parse(line, nodes, sizeof(nodes) / sizeof(*nodes), &err), *id;

	aj_raw(b, "{\"id\":");
	id = aj_get(req, "id");
	if (aj_is_int(id))
		aj_printf(b, "%.0f", id->num);
	else
		aj_raw(b, "null");
	if (!req) {
		char why[256];
		snprintf(why, sizeof(why), "agent error: request is not JSON (%s)", err ? err : "?");
		aj_raw(b, ",\"trace\":");
		aborted_trace(b, why);
	} else if (O.guest && aj_get(req, "probe")) {
		struct strs w = { 0 };
		kmsg_boundary("probe", &w);
		for (int i = 0; i < unattributed.n; i++)
			strs_add(&w, unattributed.v[i]);
		strs_clear(&unattributed);
		aj_raw(b, ",\"probe\":{\"pmu\":");
		pmu_counters(b);
		aj_raw(b, ",\"warnings\":");
		write_warnings(b, &w);
		aj_printf(b, ",\"uptime\":%.2f}", uptime());
		strs_clear(&w);
	} else if (aj_get(req, "timing")) {
		write_timing(b);
	} else if (O.guest && aj_get(req, "selftestWarn")) {
		/* The WARN is this request's: it comes back in its answer, not with the next program. */
		struct strs w = { 0 };
		int e;
		kmsg_drain(&unattributed);
		e = ax_write_file(PARAMS "/selftest_warn", "1");
		kmsg_boundary("end", &w);
		aj_printf(b, ",\"selftestWarn\":%s,\"error\":", e ? "false" : "true");
		if (e)
			aj_str(b, strerror(e));
		else
			aj_raw(b, "null");
		aj_raw(b, ",\"warnings\":");
		write_warnings(b, &w);
		strs_clear(&w);
	} else {
		const struct aj_node *rep = aj_get(req, "repeat"), *jit = aj_get(req, "jitterUs"), *stall = aj_get(req, "testStall");
		long repeat = 1, jitter = 50;
		test_stall_task = -1;
		test_stall_mode = 0;
		if (stall && stall->type == AJ_OBJ) {
			const struct aj_node *tk = aj_get(stall, "task"), *at = aj_get(stall, "at");
			if (tk && tk->type == AJ_STR && tk->str[0] == 'p' && tk->str[1] >= '1' && tk->str[1] <= '3' && !tk->str[2])
				test_stall_task = tk->str[1] - '0';
			test_stall_mode = at && at->type == AJ_STR && !strcmp(at->str, "op") ? 2 : 1;
		}
		if (rep && (!aj_is_int(rep) || rep->num < 1 || rep->num > 100000)) {
			aj_raw(b, ",\"trace\":");
			aborted_trace(b, "bad request: repeat: an integer 1 .. 100000");
		} else if (jit && (!aj_is_int(jit) || jit->num < 0 || jit->num > 1000000)) {
			aj_raw(b, ",\"trace\":");
			aborted_trace(b, "bad request: jitterUs: an integer 0 .. 1000000");
		} else if (!aj_get(req, "program")) {
			aj_raw(b, ",\"trace\":");
			aborted_trace(b, "bad program: : Required");
		} else {
			if (rep)
				repeat = (long)rep->num;
			if (jit)
				jitter = (long)jit->num;
			/*
			 * Repetitions (issue 14): the whole program `repeat` times, each from scratch (its own
			 * uid uid + k as the pool reserves them, full teardown and audit, kernel warnings of that
			 * repetition in its audit). "trace" is the first; with "repeat" in the request,
			 * "traces" holds every repetition run, in order. A repetition that aborts, or leaves this
			 * worker dirty (VmPin != 0, identity not restored), is the last one run.
			 */
			static struct aj_buf one;
			aj_raw(b, ",\"trace\":");
			for (long k = 0; k < repeat; k++) {
				long pin;
				one.len = 0;
				run_program(&one, aj_get(req, "program"), aj_get(req, "config"), uid ? uid + (unsigned)k : 0, (int)jitter);
				if (k == 0) {
					aj_printf(b, "%.*s", (int)one.len, one.s);
					if (rep)
						aj_raw(b, ",\"traces\":[");
				}
				if (rep) {
					if (k)
						aj_raw(b, ",");
					aj_printf(b, "%.*s", (int)one.len, one.s);
				}
				if (k + 1 == repeat)
					break; /* worker_main checks the last one */
				pin = ax_vmpin_kb(status_fd);
				if (worker_dirty || pin != 0 || (F.root && (getuid() != 0 || geteuid() != 0)) || strstr(one.s, "\"aborted\":"))
					break;
				prctl(PR_SET_PDEATHSIG, SIGKILL);
			}
			if (rep)
				aj_raw(b, "]");
		}
	}
	aj_raw(b, "}\n");
}

/* ---- line reader ---- */

struct reader {
	int fd;
	char *buf;
	size_t len, cap, start;
};

/* The next line (without its newline, NUL-terminated, valid until the next call), or NULL at EOF. */
static char *read_line(struct reader *rd)
{
	for (;;) {
		char *nl = memchr(rd->buf + rd->start, '\n', rd->len - rd->start);
		ssize_t n;
		if (nl) {
			char *line = rd->buf + rd->start;
			*nl = 0;
			rd->start = nl + 1 - rd->buf;
			if (nl > line && nl[-1] == '\r')
				nl[-1] = 0;
			return line;
		}
		if (rd->start) {
			memmove(rd->buf, rd->buf + rd->start, rd->len - rd->start);
			rd->len -= rd->start;
			rd->start = 0;
		}
		if (rd->len + 65536 > rd->cap) {
			rd->cap = rd->cap ? rd->cap * 2 : 1 << 20;
			rd->buf = realloc(rd->buf, rd->cap);
		}
		n = read(rd->fd, rd->buf + rd->len, rd->cap - rd->len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			struct pollfd pf = { rd->fd, POLLIN, 0 };
			poll(&pf, 1, -1);
			continue;
		}
		if (n <= 0)
			return NULL;
		rd->len += n;
	}
}

/* Whether a complete line is buffered. */
static int line_ready(const struct reader *rd)
{
	return memchr(rd->buf + rd->start, '\n', rd->len - rd->start) != NULL;
}

static int worker_main(int rfd, int wfd)
{
	struct reader rd = { rfd, NULL, 0, 0, 0 };
	struct aj_buf b = { 0 };
	char *line;

	worker_fds[0] = rfd;
	worker_fds[1] = wfd;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() == 1 && !O.guest)
		_exit(1);
	status_fd = open("/proc/thread-self/status", O_RDONLY | O_CLOEXEC);
	while ((line = read_line(&rd))) {
		unsigned uid = 0;
		long pin;
		if (line[0] == 'U') {
			uid = (unsigned)strtoul(line + 1, &line, 10);
			if (*line == ' ')
				line++;
		}
		double tw = now_us(), tr = tw;
		b.len = 0;
		worker_request(&b, line, uid);
		t_add(T_REQUEST, &tr);
		/* a uid change clears PR_SET_PDEATHSIG (commit_creds): arm it again */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() == 1 && !O.guest)
			_exit(1);
		pin = ax_vmpin_kb(status_fd);
		if (pin != 0 || (F.root && (getuid() != 0 || geteuid() != 0)))
			worker_dirty = 1;
		aj_raw(&b, worker_dirty ? "!\n" : ".\n");
		t_add(T_TAIL, &tr);
		if (write_all(wfd, b.s, b.len))
			_exit(1);
		if (worker_dirty) {
			logf_("process is no longer clean (VmPin %ld kB or identity not restored): a fresh worker takes the next programs", pin);
			_exit(EXIT_DIRTY);
		}
	}
	_exit(0);
}

/* ---- supervisor ---- */

struct worker { pid_t pid; int wfd; struct reader rd; };

static void spawn_worker(struct worker *w)
{
	int req[2], ans[2];

	if (pipe2(req, O_CLOEXEC) || pipe2(ans, O_CLOEXEC)) {
		logf_("pipe: %s", strerror(errno));
		exit(1);
	}
	w->pid = fork();
	if (w->pid < 0) {
		logf_("fork: %s", strerror(errno));
		exit(1);
	}
	if (w->pid == 0) {
		close(req[1]);
		close(ans[0]);
		worker_main(req[0], ans[1]);
	}
	close(req[0]);
	close(ans[1]);
	w->wfd = req[1];
	free(w->rd.buf);
	w->rd = (struct reader){ ans[0], NULL, 0, 0, 0 };
}

/* Waits for the worker; its end as "exit code N" / "signal N". */
static void reap(struct worker *w, char *why, size_t n)
{
	int st = 0;

	if (w->pid <= 0) {
		snprintf(why, n, "no worker");
		return;
	}
	while (waitpid(w->pid, &st, 0) < 0 && errno == EINTR)
		;
	if (WIFSIGNALED(st))
		snprintf(why, n, "signal SIG%s", sigabbrev_np(WTERMSIG(st)) ? sigabbrev_np(WTERMSIG(st)) : "?");
	else
		snprintf(why, n, "exit code %d", WEXITSTATUS(st));
	close(w->wfd);
	close(w->rd.fd);
	w->pid = 0;
}

static char *where_is(pid_t pid, char *out, size_t n)
{
	char path[64], wchan[128] = "", stack[1024] = "", status[4096] = "", *st;

	snprintf(path, sizeof(path), "/proc/%d/wchan", pid);
	read_text(path, wchan, sizeof(wchan));
	snprintf(path, sizeof(path), "/proc/%d/stack", pid);
	read_text(path, stack, sizeof(stack));
	for (char *p = stack; *p; p++)
		if (*p == '\n')
			*p = '|';
	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	read_text(path, status, sizeof(status));
	st = strstr(status, "State:");
	if (st) {
		char *e = strchr(st, '\n');
		if (e)
			*e = 0;
	}
	snprintf(out, n, "%s; wchan %s; stack %s", st ? st : "state ?", wchan, stack);
	return out;
}

static void hello(int out, char **argv)
{
	struct aj_buf b = { 0 };
	struct strs boot = { 0 };
	struct rlimit rl;
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2] = { { 0 } };
	char version[512] = "";

	kmsg_scan(0, NULL, &boot, &boot);
	getrlimit(RLIMIT_MEMLOCK, &rl);
	syscall(SYS_capget, &h, d);
	read_text("/proc/version", version, sizeof(version));
	aj_raw(&b, "{\"hello\":{\"release\":");
	aj_str(&b, F.release);
	aj_raw(&b, ",\"version\":");
	aj_str(&b, version);
	aj_printf(&b, ",\"cpus\":%d,\"mlockKb\":%ld,\"paranoid\":%d", F.cpus, F.mlock_kb, F.paranoid);
	if (rl.rlim_cur == RLIM_INFINITY) aj_raw(&b, ",\"memlockKb\":\"unlimited\"");
	else aj_printf(&b, ",\"memlockKb\":%llu", (unsigned long long)rl.rlim_cur / 1024);
	if (rl.rlim_max == RLIM_INFINITY) aj_raw(&b, ",\"memlockHardKb\":\"unlimited\"");
	else aj_printf(&b, ",\"memlockHardKb\":%llu", (unsigned long long)rl.rlim_max / 1024);
	aj_printf(&b, ",\"capSysResource\":%s", (d[0].effective >> 24) & 1 ? "true" : "false");
	if (access(PMU_DIR, F_OK) == 0)
		aj_printf(&b, ",\"auxPmu\":\"auxspec_pmu\",\"auxType\":%ld", ax_read_long(PMU_DIR "/type"));
	else
		aj_raw(&b, ",\"auxPmu\":null,\"auxType\":null");
	aj_raw(&b, ",\"pmu\":");
	pmu_counters(&b);
	aj_printf(&b, ",\"node\":\"none (C agent)\",\"agentKind\":\"c\",\"uptime\":%.2f,\"bootWarnings\":", uptime());
	write_warnings(&b, &boot);
	aj_raw(&b, ",\"agent\":[");
	for (int i = 0; argv[i]; i++) {
		if (i)
			aj_raw(&b, ",");
		aj_str(&b, argv[i]);
	}
	aj_raw(&b, "]}}\n");
	write_all(out, b.s, b.len);
	free(b.s);
	strs_clear(&boot);
}

int main(int argc, char **argv)
{
	static struct aj_node nodes[64];
	struct reader in = { 0, NULL, 0, 0, 0 };
	struct worker w = { 0 };
	struct aj_buf ans = { 0 }, fwd = { 0 };
	unsigned uid_next;
	char *line;
	int out = 1;

	O.inproc = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--allow-sysctl")) O.allow_sysctl = 1;
		else if (!strcmp(argv[i], "--touch=inproc")) O.inproc = 1;
		else if (!strcmp(argv[i], "--touch=child")) O.inproc = 0;
		else if (!strcmp(argv[i], "--no-budget")) O.no_budget = 1;
		else if (!strcmp(argv[i], "--measure-budget")) O.measure_budget = 1;
		else if (!strcmp(argv[i], "--guest")) O.guest = 1;
		else {
			fprintf(stderr, "agent: unknown argument %s\n", argv[i]);
			return 2;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	read_facts();
	pmu_open();
	if (F.root)
		ax_raise_memlock_hard();
	{
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		/* as context.ts: a random base above 1e6 per process */
		srandom((unsigned)(ts.tv_nsec ^ getpid() ^ ts.tv_sec));
		uid_next = 1000000 + (unsigned)(random() % 2000000000u);
	}
	if (O.guest) {
		/* with the newline: devkmsg_sysctl_set_loglvl() takes a value only when the write is
		 * the keyword plus one character (err + 1 != *lenp: EINVAL), so a bare "on" left the
		 * ratelimit (10 lines per 5 s) on, and from the 11th program on the boundary lines
		 * were dropped: kernel-log attribution fell back to "read to the end", and every
		 * program printed a "marker not seen" line on the serial console (about 1 ms under TCG) */
		if (ax_write_file("/proc/sys/kernel/printk_devkmsg", "on\n"))
			logf_("cannot set printk_devkmsg to on: the kernel-log boundary lines may be rate-limited");
		kmsg_fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
		kmsg_wfd = open("/dev/kmsg", O_WRONLY | O_CLOEXEC);
		/*
		 * The channel (stdin and stdout: one open file of the virtio-serial port) non-blocking:
		 * a blocking write to a port spins in the guest until the host has taken the buffer
		 * (virtio_console.c __send_to_port), a nonblocking one returns once it is queued
		 * (reclaimed on the next write). read_line and write_all poll on EAGAIN.
		 */
		fcntl(out, F_SETFL, fcntl(out, F_GETFL) | O_NONBLOCK);
		hello(out, argv);
	} else if (F.root)
		kmsg_fd = ax_kmsg_open();
	if (ax_kmsg_warnings(-1, 0, NULL, NULL) < 0) {
		fprintf(stderr, "agent: the kernel-warning pattern does not compile\n");
		return 2;
	}
	{
		void *tp = mmap(NULL, sizeof(*T), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		T = tp == MAP_FAILED ? NULL : tp;
	}
	while ((line = read_line(&in))) {
		static char copy[1 << 20];
		double ts = now_us(); /* the supervisor's own time on this request: ts to forwarded, answer read to written */
		const char *err;
		struct aj_node *req, *id, *tn, *uidn;
		double timeout_ms = 0;
		char idtxt[32] = "null";
		unsigned uid;
		size_t len = strlen(line);
		int answered = 0;

		while (*line == ' ' || *line == '\t')
			line++;
		if (!*line)
			continue;
		/* a look at the request (the worker parses it again): quit, panic, its id and time limit */
		req = NULL;
		if (len < sizeof(copy)) {
			memcpy(copy, line, len + 1);
			/* only the top level matters here: a small node pool fails on big programs, so peek by keys */
			req = aj_parse(copy, nodes, 64, &err);
		}
		if (req && aj_get(req, "quit"))
			break;
		if (O.guest && req && aj_get(req, "selftestPanic")) {
			ax_write_file("/proc/sys/kernel/sysrq", "1");
			ax_write_file("/proc/sysrq-trigger", "c");
			continue;
		}
		{
			/* id and timeoutMs without a full parse: the keys at the top level */
			const char *p = strstr(line, "\"id\":");
			if (req && (id = aj_get(req, "id")) && aj_is_int(id))
				snprintf(idtxt, sizeof(idtxt), "%.0f", id->num);
			else if (p && (p[5] == '-' || (p[5] >= '0' && p[5] <= '9')))
				snprintf(idtxt, sizeof(idtxt), "%lld", strtoll(p + 5, NULL, 10));
			tn = req ? aj_get(req, "timeoutMs") : NULL;
			if (tn && tn->type == AJ_NUM)
				timeout_ms = tn->num;
			else if ((p = strstr(line, "\"timeoutMs\":")))
				timeout_ms = strtod(p + 12, NULL);
			uidn = req ? aj_get(req, "uid") : NULL;
			if (uidn && aj_is_int(uidn) && uidn->num > 0)
				uid = (unsigned)uidn->num;
			else if (!req && (p = strstr(line, "\"uid\":")) && strtol(p + 6, NULL, 10) > 0)
				uid = (unsigned)strtol(p + 6, NULL, 10);
			else {
				/* a repeated request uses uid .. uid + repeat - 1 (worker_request): reserve them all */
				const struct aj_node *rn = req ? aj_get(req, "repeat") : NULL;
				long rep = rn && aj_is_int(rn) && rn->num > 1 && rn->num <= 100000 ? (long)rn->num : 1;
				if (!rn && !req && (p = strstr(line, "\"repeat\":")) && strtol(p + 9, NULL, 10) > 1)
					rep = strtol(p + 9, NULL, 10) > 100000 ? 100000 : strtol(p + 9, NULL, 10);
				uid = uid_next;
				uid_next += (unsigned)rep;
			}
		}
		for (int attempt = 0; attempt < 3 && !answered; attempt++) {
			char why[128], reason[2048], where[1500];
			struct pollfd pf;
			int fresh = w.pid <= 0, timed_out = 0;
			struct timespec t0, t1;
			char head[32];

			if (fresh)
				spawn_worker(&w);
			snprintf(head, sizeof(head), "U%u ", uid);
			/* one write: each write wakes the worker, and a context switch costs ~100 us under TCG */
			fwd.len = 0;
			aj_printf(&fwd, "%s", head);
			aj_raw(&fwd, line);
			aj_raw(&fwd, "\n");
			if (write_all(w.wfd, fwd.s, fwd.len)) {
				/* it died before reading: handled as a death below */
			}
			clock_gettime(CLOCK_MONOTONIC, &t0);
			t_add(T_SUP, &ts);
			for (;;) {
				char *a, *st;
				int ms = -1;
				if (!line_ready(&w.rd)) {
					if (timeout_ms > 0) {
						clock_gettime(CLOCK_MONOTONIC, &t1);
						ms = (int)(timeout_ms - ((t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6));
						if (ms <= 0) {
							timed_out = 1;
							break;
						}
					}
					pf = (struct pollfd){ w.rd.fd, POLLIN, 0 };
					if (poll(&pf, 1, ms) == 0)
						continue;
				}
				a = read_line(&w.rd);
				if (!a)
					break;
				ans.len = 0;
				aj_raw(&ans, a);
				aj_raw(&ans, "\n");
				st = read_line(&w.rd);
				ts = now_us();
				write_all(out, ans.s, ans.len);
				t_add(T_SUP, &ts);
				answered = 1;
				if (!st || st[0] != '.') {
					reap(&w, why, sizeof(why));
					if (strcmp(why, "exit code 3"))
						logf_("worker ended after answering (%s)", why);
				}
				break;
			}
			if (answered)
				break;
			if (timed_out) {
				pid_t pid = w.pid;
				where_is(pid, where, sizeof(where));
				kill(pid, SIGKILL);
				reap(&w, why, sizeof(why));
				snprintf(reason, sizeof(reason), "timed out after %.0f ms in the guest (agent %d: %s); agent killed", timeout_ms, pid, where);
			} else {
				reap(&w, why, sizeof(why));
				if (!strcmp(why, "exit code 3") && attempt < 2) {
					logf_("worker exited dirty before request %s; sending it to a fresh worker", idtxt);
					continue;
				}
				snprintf(reason, sizeof(reason), "guest agent failed: agent ended (%s)", why);
			}
			if (O.guest) {
				struct strs kw = { 0 };
				kmsg_scan(0, NULL, &kw, &kw);
				for (int i = 0; i < kw.n; i++) {
					size_t l = strlen(reason);
					snprintf(reason + l, sizeof(reason) - l, "%s%s", i ? " | " : "; kernel log: ", kw.v[i]);
				}
				strs_clear(&kw);
			}
			ans.len = 0;
			aj_printf(&ans, "{\"id\":%s,\"trace\":", idtxt);
			aborted_trace(&ans, reason);
			aj_raw(&ans, "}\n");
			write_all(out, ans.s, ans.len);
			answered = 1;
		}
		t_done();
	}
	if (w.pid > 0) {
		char why[64];
		kill(w.pid, SIGKILL);
		reap(&w, why, sizeof(why));
	}
	if (O.guest)
		logf_("quit");
	return 0;
}
