/* SPDX-License-Identifier: GPL-2.0 */
/*
 * auxspec.h: the C side of auxspec, once. The C twin executor (hwtest/host/native/exec.c),
 * the koffi helper library (hwtest/host/native/auxprobe.c) and every generated C reproducer
 * (fuzz/repro-c.ts inlines this file) use these ops, this page access, this budget probe,
 * this teardown and this kernel-log scan, so they cannot drift apart.
 *
 * The audit protocol is spec/audit.ts; the constants below are written once here and
 * test/hwtest/runtime.test.ts checks that they equal the TypeScript ones.
 *
 * Result codes of the ops: 0 success, > 0 an errno, -SIGBUS / -SIGSEGV when a page access
 * faulted, AX_HARNESS when the harness itself failed (the reason is in ax_harness_msg).
 */
#ifndef AUXSPEC_RUNTIME_H
#define AUXSPEC_RUNTIME_H
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/perf_event.h>
#include <regex.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- constants shared with spec/audit.ts (checked equal by test/hwtest/runtime.test.ts) ---- */
#define AX_PAGE_SIZE 4096UL
#define AX_SLOT_PAGES 8192UL
#define AX_SLOT_BYTES (AX_SLOT_PAGES * AX_PAGE_SIZE)
#define AX_SLOT_BASE 0x600000000000UL
#define AX_BUDGET_PROBE_MARGIN 16
#define AX_KERNEL_WARNING_ERE "WARNING:|BUG:|kernel BUG|Oops|general protection fault|refcount_t:|UBSAN:|KASAN:|list_(add|del) corruption|Kernel panic|rcu.*detected stall|blocked for more than|Bad page|page allocation failure|invalid opcode"

/* A PMU type nobody has: what pmu "aux" opens without an AUX PMU (the kernel says ENOENT). */
#define AX_NO_SUCH_PMU_TYPE 0x7ffffff0
/* include/uapi/linux/perf_event.h PERF_ATTR_SIZE_VER8 (config3, 6.3+); older kernels accept
 * a larger attr whose unknown bytes are zero. The koffi executor writes the same size. */
#define AX_ATTR_SIZE 136
#define AX_HARNESS (-10000)
#define AX_MAX_STRAYS 256
#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#ifndef MREMAP_FIXED
#define MREMAP_FIXED 2
#endif
#ifndef ENOTSUPP
#define ENOTSUPP 524 /* kernel-internal (include/linux/errno.h); the seed's rb_alloc_aux returns it */
#endif
#define AX_FN static __attribute__((unused))
#define AX_PROC_MLOCK "/proc/sys/kernel/perf_event_mlock_kb"

/* Page-access kinds (the numbers are auxprobe's ABI with hwtest/host/libc.ts ACCESS). */
enum { AX_READ = 0, AX_WRITE = 1, AX_SETAUX = 2, AX_READPAGE = 3 };

static char ax_harness_msg[256];

AX_FN int ax_harness(const char *what)
{
	snprintf(ax_harness_msg, sizeof(ax_harness_msg), "%s", what);
	return AX_HARNESS;
}

/* Slot w (0 = A, 1 = B) of map handle m. */
AX_FN unsigned long ax_slot(long m, int w)
{
	return AX_SLOT_BASE + ((unsigned long)m * 2 + (unsigned long)w) * AX_SLOT_BYTES;
}

/* ---- names ---- */

/* errno names from <errno.h> through glibc (one canonical name per number: EAGAIN, EOPNOTSUPP). */
AX_FN const char *ax_errno_name(int e)
{
	static char buf[32];
	const char *n;

	if (e == ENOTSUPP)
		return "ENOTSUPP";
	n = strerrorname_np(e);
	if (n)
		return n;
	snprintf(buf, sizeof(buf), "ERRNO_%d", e);
	return buf;
}

/* Name of a result code: "ok", "SIGBUS", "SIGSEGV" or the errno's name. */
AX_FN const char *ax_result_name(int r)
{
	if (r == 0)
		return "ok";
	if (r == -SIGBUS)
		return "SIGBUS";
	if (r == -SIGSEGV)
		return "SIGSEGV";
	if (r == AX_HARNESS)
		return "harness failure";
	return ax_errno_name(r);
}

/* ---- files ---- */

AX_FN int ax_write_file(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC), r;

	if (fd < 0)
		return errno;
	r = write(fd, s, strlen(s)) < 0 ? errno : 0;
	close(fd);
	return r;
}

/* A number (or Y/N as 1/0) from a small file; -1 when unreadable. */
AX_FN long ax_read_long(const char *path)
{
	char buf[64] = "";
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	long v = -1;

	if (fd >= 0) {
		if (read(fd, buf, sizeof(buf) - 1) > 0)
			v = strtol(buf[0] == 'Y' ? "1" : buf[0] == 'N' ? "0" : buf, NULL, 10);
		close(fd);
	}
	return v;
}

/* The AUX PMU's type and its module parameter directory (auxFault); -1 when there is none. */
AX_FN int ax_find_aux_pmu(char *param_dir, size_t len)
{
	static const char *names[] = { "auxspec_pmu", "intel_pt", "intel_bts", "cs_etm", "hisi_ptt", "arm_spe_0", NULL };
	char path[300];
	long type;

	for (int i = 0; names[i]; i++) {
		snprintf(path, sizeof(path), "/sys/bus/event_source/devices/%s/type", names[i]);
		if ((type = ax_read_long(path)) >= 0) {
			snprintf(param_dir, len, "/sys/module/%s/parameters", names[i]);
			return (int)type;
		}
	}
	return -1;
}

/*
 * VmPin in kB from an open /proc/self/status (or thread-self) fd, with one pread (seq_file
 * regenerates at offset 0). The kernel prints pinned_vm unsigned (fs/proc/task_mmu.c
 * task_mem, SEQ_PUT_DEC), so a negative pinned_vm shows as a huge value: it is returned as
 * the signed kB count it stands for. Failure: LONG_MIN.
 */
AX_FN long ax_vmpin_kb(int fd)
{
	static char buf[16384];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	char *p;

	if (n < 0)
		return LONG_MIN;
	buf[n] = 0;
	p = strstr(buf, "\nVmPin:");
	if (!p)
		return LONG_MIN;
	p += 7;
	while (*p == ' ' || *p == '\t')
		p++;
	return (long)strtoull(p, NULL, 10);
}

/* ---- identity ---- */

/* CAP_IPC_LOCK in this thread's effective set: 0 or -1 (capset refused). */
AX_FN int ax_set_ipc_lock(int want)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];
	int has;

	if (syscall(SYS_capget, &h, d))
		return -1;
	has = (d[0].effective >> CAP_IPC_LOCK) & 1;
	if (has == !!want)
		return 0;
	if (want)
		d[0].effective |= 1u << CAP_IPC_LOCK;
	else
		d[0].effective &= ~(1u << CAP_IPC_LOCK);
	if (syscall(SYS_capset, &h, d))
		return -1;
	if (syscall(SYS_capget, &h, d) || (int)((d[0].effective >> CAP_IPC_LOCK) & 1) != !!want)
		return -1;
	return 0;
}

/* RLIMIT_MEMLOCK soft limit in pages (-1: unlimited); the hard limit stays as it is. Returns errno. */
AX_FN int ax_set_memlock(long pages)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_MEMLOCK, &rl))
		return errno;
	rl.rlim_cur = pages < 0 ? RLIM_INFINITY : (rlim_t)pages * AX_PAGE_SIZE;
	return setrlimit(RLIMIT_MEMLOCK, &rl) ? errno : 0;
}

/* Raise the RLIMIT_MEMLOCK hard limit to unlimited where allowed (root: CAP_SYS_RESOURCE). */
AX_FN void ax_raise_memlock_hard(void)
{
	struct rlimit rl;

	if (!getrlimit(RLIMIT_MEMLOCK, &rl) && rl.rlim_max != RLIM_INFINITY) {
		rl.rlim_max = RLIM_INFINITY;
		setrlimit(RLIMIT_MEMLOCK, &rl);
	}
}

/*
 * A fresh uid for this thread, keeping saved uid 0 (to write sysctls and go back): raw
 * setresgid/setresuid(uid, uid, 0), which change only the calling thread. user->locked_vm
 * is per uid and outlives processes, so no two programs may share one. Returns errno.
 */
AX_FN int ax_switch_uid(unsigned uid)
{
	if (syscall(SYS_setresgid, uid, uid, 0) || syscall(SYS_setresuid, uid, uid, 0))
		return errno;
	return 0;
}

AX_FN int ax_back_to_root(void)
{
	if (syscall(SYS_setresuid, 0, 0, 0) || syscall(SYS_setresgid, 0, 0, 0))
		return errno;
	return 0;
}

/* ---- page access that may fault ---- */

struct ax_req {
	int kind;
	volatile unsigned char *addr;
	uint64_t a, b;
	uint64_t *out;
};

/* The one place that touches a perf buffer: user page words (struct perf_event_mmap_page). */
static void ax_do_access(struct ax_req *r)
{
	volatile uint64_t *p = (volatile uint64_t *)r->addr;

	switch (r->kind) {
	case AX_READ: { unsigned char v = *r->addr; (void)v; break; }
	case AX_WRITE: { unsigned char v = *r->addr; *r->addr = v; break; }
	case AX_SETAUX:
		p[1072 / 8] = r->a; /* aux_offset */
		p[1080 / 8] = r->b; /* aux_size */
		break;
	case AX_READPAGE:
		r->out[0] = p[1040 / 8]; /* data_offset */
		r->out[1] = p[1048 / 8]; /* data_size */
		r->out[2] = p[1056 / 8]; /* aux_head */
		r->out[3] = p[1072 / 8]; /* aux_offset */
		r->out[4] = p[1080 / 8]; /* aux_size */
		break;
	}
}

static void ax_on_fault_child(int sig) { syscall(SYS_exit_group, 100 + sig); }

static int ax_child_fn(void *arg)
{
	struct ax_req *r = arg;
	struct sigaction sa;
	sigset_t un;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = ax_on_fault_child;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSEGV, &sa, NULL) || sigaction(SIGBUS, &sa, NULL))
		syscall(SYS_exit_group, 90);
	sigemptyset(&un);
	sigaddset(&un, SIGSEGV);
	sigaddset(&un, SIGBUS);
	sigprocmask(SIG_UNBLOCK, &un, NULL);
	if (r->kind < AX_READ || r->kind > AX_READPAGE)
		syscall(SYS_exit_group, 91);
	ax_do_access(r);
	syscall(SYS_exit_group, 0);
	return 0;
}

/*
 * In a clone(CLONE_VM | CLONE_VFORK) child: a fork() child cannot do it, perf_mmap() marks
 * every buffer VMA VM_DONTCOPY (the child would have no mapping and always get SIGSEGV).
 * The child shares the mm (same VMAs, same pinned_vm), is its own thread group, and exits
 * with 100 + signo from its own SIGSEGV/SIGBUS handlers. Returns 0, the signal number, or
 * negative: -errno (clone, waitpid), -1000 - code (unexpected exit), -2000 - sig.
 */
AX_FN int ax_access_child(int kind, uint64_t addr, uint64_t a, uint64_t b, uint64_t *out)
{
	enum { STACK = 64 * 1024 };
	static char *stack;
	struct ax_req r = { kind, (volatile unsigned char *)(uintptr_t)addr, a, b, out };
	int status = 0, code;
	pid_t pid;

	if (!stack) {
		void *s = mmap(NULL, STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
		if (s == MAP_FAILED)
			return -errno;
		stack = s;
	}
	pid = clone(ax_child_fn, stack + STACK, CLONE_VM | CLONE_VFORK | SIGCHLD, &r);
	if (pid < 0)
		return -errno;
	for (;;) {
		pid_t w = waitpid(pid, &status, 0);
		if (w == pid)
			break;
		if (w < 0 && errno == EINTR)
			continue;
		return -errno;
	}
	if (WIFEXITED(status)) {
		code = WEXITSTATUS(status);
		if (code == 0)
			return 0;
		if (code == 100 + SIGBUS)
			return SIGBUS;
		if (code == 100 + SIGSEGV)
			return SIGSEGV;
		return -1000 - code;
	}
	if (WIFSIGNALED(status))
		return -2000 - WTERMSIG(status);
	return -3000;
}

static sigjmp_buf ax_jb;
static volatile sig_atomic_t ax_armed;

static void ax_on_fault_inproc(int sig)
{
	if (ax_armed) {
		ax_armed = 0;
		siglongjmp(ax_jb, sig);
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

/*
 * The same access in this thread under temporary SIGSEGV/SIGBUS handlers that siglongjmp
 * back: ~30x cheaper than the child, but for a few microseconds the process-wide handlers
 * are ours (a fault in another thread then would be misattributed).
 */
AX_FN int ax_access_inproc(int kind, uint64_t addr, uint64_t a, uint64_t b, uint64_t *out)
{
	struct ax_req r = { kind, (volatile unsigned char *)(uintptr_t)addr, a, b, out };
	struct sigaction sa, old_segv, old_bus;
	int sig;

	if (kind < AX_READ || kind > AX_READPAGE)
		return -1091;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = ax_on_fault_inproc;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_NODEFER;
	if (sigaction(SIGSEGV, &sa, &old_segv))
		return -errno;
	if (sigaction(SIGBUS, &sa, &old_bus)) {
		int e = errno;
		sigaction(SIGSEGV, &old_segv, NULL);
		return -e;
	}
	sig = sigsetjmp(ax_jb, 1);
	if (sig == 0) {
		ax_armed = 1;
		ax_do_access(&r);
		ax_armed = 0;
	}
	sigaction(SIGSEGV, &old_segv, NULL);
	sigaction(SIGBUS, &old_bus, NULL);
	return sig;
}

/* ---- one program's state and its ops ---- */

struct ax_run {
	int *fds;             /* event handle -> fd, -1 when none */
	int nev;
	unsigned char *flip;  /* map handle -> 0 mapped at slot A, 1 moved to slot B */
	long nmap;
	unsigned long strays[AX_MAX_STRAYS][2]; /* mremap moved a mapping outside the slots */
	int nstray;
	int aux_type;         /* PMU type for pmu "aux" */
	int inproc;           /* page access in-process (1) or in a CLONE_VM child (0) */
	int cap_ipc_lock;     /* CAP_IPC_LOCK wanted in the effective set */
	unsigned uid;         /* the program's uid, 0 when not switched */
	const char *aux_param_dir; /* the test PMU's module parameters (auxFault) */
	int mlock_touched, fault_touched;
	uint64_t page[5];     /* the user page words the last readUserPage read */
};

/* Every handle empty; fds and flip have nev and nmap entries. */
AX_FN void ax_run_init(struct ax_run *r, int *fds, int nev, unsigned char *flip, long nmap)
{
	memset(r, 0, sizeof(*r));
	r->fds = fds;
	r->nev = nev;
	r->flip = flip;
	r->nmap = nmap;
	r->aux_type = AX_NO_SUCH_PMU_TYPE;
	for (int i = 0; i < nev; i++)
		fds[i] = -1;
	memset(flip, 0, nmap);
}

AX_FN unsigned long ax_base(const struct ax_run *r, long m) { return ax_slot(m, r->flip[m]); }
AX_FN int ax_fd(const struct ax_run *r, int ev) { return ev >= 0 && ev < r->nev ? r->fds[ev] : -1; }
static int ax_err(long rc) { return rc < 0 ? errno : 0; }

/* A disabled event of this process, exclude_kernel; -1 with errno on failure. */
AX_FN int ax_perf_open(unsigned type, uint64_t config, int inherit, int cpu, int group, unsigned long flags)
{
	union { struct perf_event_attr a; unsigned char b[AX_ATTR_SIZE + sizeof(struct perf_event_attr)]; } u;

	memset(&u, 0, sizeof(u));
	u.a.type = type;
	u.a.size = AX_ATTR_SIZE;
	u.a.config = config;
	u.a.disabled = 1;
	u.a.inherit = !!inherit;
	u.a.exclude_kernel = 1;
	return syscall(SYS_perf_event_open, &u.a, 0, cpu, group, flags);
}

AX_FN int ax_open(struct ax_run *r, int ev, int aux, int cpu, int inherit, int out_ev)
{
	int fd = ax_perf_open(aux ? (unsigned)r->aux_type : PERF_TYPE_SOFTWARE, aux ? 0 : PERF_COUNT_SW_DUMMY,
			      inherit, cpu, out_ev >= 0 ? ax_fd(r, out_ev) : -1,
			      PERF_FLAG_FD_CLOEXEC | (out_ev >= 0 ? PERF_FLAG_FD_OUTPUT : 0));

	r->fds[ev] = fd < 0 ? -1 : fd;
	return fd < 0 ? errno : 0;
}

/* The handle never reuses its number, whatever close says. */
AX_FN int ax_close(struct ax_run *r, int ev)
{
	int fd = r->fds[ev];

	r->fds[ev] = -1;
	return close(fd) ? errno : 0;
}

/* At slot A, MAP_FIXED_NOREPLACE; landing elsewhere is a harness failure (flag ignored?). */
AX_FN int ax_mmap(struct ax_run *r, long m, int ev, long pages, long pgoff, int prot, int shared)
{
	unsigned long addr = ax_slot(m, 0);
	void *p;

	r->flip[m] = 0;
	p = mmap((void *)addr, pages * AX_PAGE_SIZE, prot, (shared ? MAP_SHARED : MAP_PRIVATE) | MAP_FIXED_NOREPLACE,
		 ax_fd(r, ev), pgoff * AX_PAGE_SIZE);
	if (p == MAP_FAILED)
		return errno;
	if ((unsigned long)p != addr) {
		if (r->nstray < AX_MAX_STRAYS) {
			r->strays[r->nstray][0] = (unsigned long)p;
			r->strays[r->nstray++][1] = pages * AX_PAGE_SIZE;
		}
		return ax_harness("mmap landed outside its slot (MAP_FIXED_NOREPLACE ignored?)");
	}
	return 0;
}

AX_FN int ax_munmap(struct ax_run *r, long m, long off, long pages)
{
	return ax_err(munmap((void *)(ax_base(r, m) + off * AX_PAGE_SIZE), pages * AX_PAGE_SIZE));
}

/* fresh: MREMAP_MAYMOVE | MREMAP_FIXED to the other slot (the handle follows it). */
AX_FN int ax_mremap(struct ax_run *r, long m, long off, long oldp, long newp, int maymove, int fresh)
{
	unsigned long from = ax_base(r, m) + off * AX_PAGE_SIZE, to = 0;
	int flags = maymove ? MREMAP_MAYMOVE : 0;
	void *p;

	if (fresh) {
		flags |= MREMAP_MAYMOVE | MREMAP_FIXED;
		to = ax_slot(m, !r->flip[m]) + off * AX_PAGE_SIZE;
	}
	p = mremap((void *)from, oldp * AX_PAGE_SIZE, newp * AX_PAGE_SIZE, flags, (void *)to);
	if (p == MAP_FAILED)
		return errno;
	if (fresh)
		r->flip[m] = !r->flip[m];
	else if ((unsigned long)p != from && r->nstray < AX_MAX_STRAYS) {
		r->strays[r->nstray][0] = (unsigned long)p;
		r->strays[r->nstray++][1] = newp * AX_PAGE_SIZE;
	}
	return 0;
}

AX_FN int ax_mprotect(struct ax_run *r, long m, long off, long pages, int prot)
{
	return ax_err(mprotect((void *)(ax_base(r, m) + off * AX_PAGE_SIZE), pages * AX_PAGE_SIZE, prot));
}

AX_FN int ax_map_fixed_anon(struct ax_run *r, long m, long off, long pages)
{
	void *p = mmap((void *)(ax_base(r, m) + off * AX_PAGE_SIZE), pages * AX_PAGE_SIZE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	return p == MAP_FAILED ? errno : 0;
}

/* target -2: (unsigned long)-1, "no output"; a dead target is the C int -1 widened (0xffffffff): EBADF. */
AX_FN int ax_set_output(struct ax_run *r, int ev, int target)
{
	unsigned long arg = target == -2 ? (unsigned long)-1 : ax_fd(r, target) < 0 ? 0xffffffffUL : (unsigned long)ax_fd(r, target);

	return ax_err(syscall(SYS_ioctl, ax_fd(r, ev), PERF_EVENT_IOC_SET_OUTPUT, arg));
}

AX_FN int ax_rlimit(struct ax_run *r, long pages)
{
	(void)r;
	return ax_set_memlock(pages);
}

/* Write a root-owned file: euid 0 (the saved uid) for the write, then back to the program's uid. */
AX_FN int ax_write_as_root(struct ax_run *r, const char *path, const char *s)
{
	int e;

	if (!r->uid)
		return ax_write_file(path, s);
	if (syscall(SYS_setresuid, -1, 0, -1))
		return ax_harness("setresuid(-1, 0, -1) to write a root-owned file");
	e = ax_write_file(path, s);
	if (syscall(SYS_setresuid, -1, r->uid, -1) || ax_set_ipc_lock(r->cap_ipc_lock))
		return ax_harness("back to the program's uid after a root-owned write");
	return e;
}

AX_FN int ax_sysctl_mlock(struct ax_run *r, long kb)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%ld", kb);
	r->mlock_touched = 1;
	return ax_write_as_root(r, AX_PROC_MLOCK, buf);
}

AX_FN int ax_aux_fault(struct ax_run *r, int on)
{
	char path[320];

	if (!r->aux_param_dir)
		return ax_harness("auxFault needs the auxspec_pmu test module");
	snprintf(path, sizeof(path), "%s/fail_setup_aux", r->aux_param_dir);
	r->fault_touched = 1;
	return ax_write_as_root(r, path, on ? "Y" : "N");
}

/* A page access as a result code. */
AX_FN int ax_access_op(struct ax_run *r, int kind, unsigned long addr, uint64_t a, uint64_t b, uint64_t *out)
{
	int s = r->inproc ? ax_access_inproc(kind, addr, a, b, out) : ax_access_child(kind, addr, a, b, out);

	if (s == 0)
		return 0;
	if (s == SIGBUS || s == SIGSEGV)
		return -s;
	snprintf(ax_harness_msg, sizeof(ax_harness_msg), "page access at 0x%lx failed in the harness (code %d)", addr, s);
	return AX_HARNESS;
}

AX_FN int ax_touch(struct ax_run *r, long m, long page, int write)
{
	return ax_access_op(r, write ? AX_WRITE : AX_READ, ax_base(r, m) + page * AX_PAGE_SIZE, 0, 0, NULL);
}

AX_FN int ax_set_aux(struct ax_run *r, long m, long off_pages, long size_pages)
{
	return ax_access_op(r, AX_SETAUX, ax_base(r, m), off_pages * AX_PAGE_SIZE, size_pages * AX_PAGE_SIZE, NULL);
}

/* Fills r->page: data_offset, data_size, aux_head, aux_offset, aux_size. */
AX_FN int ax_read_user_page(struct ax_run *r, long m)
{
	return ax_access_op(r, AX_READPAGE, ax_base(r, m), 0, 0, r->page);
}

/*
 * One op as data: the op table of the C twin executor (exec.c reads it as text, one letter
 * and up to six numbers per line) and of the C reproducers (the AX_* constructors below).
 * Events and maps are handle numbers; prot is PROT_* bits; -1 pages in rlimit is unlimited.
 */
struct ax_op {
	char kind;
	long a[6];
};
#define AX_OPEN(ev, aux, cpu, inherit, out_ev) { 'o', { ev, aux, cpu, inherit, out_ev } }
#define AX_CLOSE(ev) { 'c', { ev } }
#define AX_MMAP(m, ev, pages, pgoff, prot, shared) { 'm', { m, ev, pages, pgoff, prot, shared } }
#define AX_MUNMAP(m, off, pages) { 'u', { m, off, pages } }
#define AX_MREMAP(m, off, oldp, newp, maymove, fresh) { 'r', { m, off, oldp, newp, maymove, fresh } }
#define AX_MPROTECT(m, off, pages, prot) { 'p', { m, off, pages, prot } }
#define AX_MAP_FIXED_ANON(m, off, pages) { 'f', { m, off, pages } }
#define AX_SET_AUX(m, off_pages, size_pages) { 'a', { m, off_pages, size_pages } }
#define AX_SET_OUTPUT(ev, target) { 's', { ev, target } } /* target -2: none */
#define AX_RLIMIT(pages) { 'l', { pages } }
#define AX_SYSCTL_MLOCK(kb) { 'k', { kb } }
#define AX_AUX_FAULT(on) { 'x', { on } }
#define AX_TOUCH(m, page, write) { 't', { m, page, write } }
#define AX_READ_USER_PAGE(m) { 'g', { m } }

/* Runs one op: a result code (0, errno, -signal, AX_HARNESS). */
AX_FN int ax_run_op(struct ax_run *r, const struct ax_op *o)
{
	const long *a = o->a;

	switch (o->kind) {
	case 'o': return ax_open(r, a[0], a[1], a[2], a[3], a[4]);
	case 'c': return ax_close(r, a[0]);
	case 'm': return ax_mmap(r, a[0], a[1], a[2], a[3], a[4], a[5]);
	case 'u': return ax_munmap(r, a[0], a[1], a[2]);
	case 'r': return ax_mremap(r, a[0], a[1], a[2], a[3], a[4], a[5]);
	case 'p': return ax_mprotect(r, a[0], a[1], a[2], a[3]);
	case 'f': return ax_map_fixed_anon(r, a[0], a[1], a[2]);
	case 'a': return ax_set_aux(r, a[0], a[1], a[2]);
	case 's': return ax_set_output(r, a[0], a[1]);
	case 'l': return ax_rlimit(r, a[0]);
	case 'k': return ax_sysctl_mlock(r, a[0]);
	case 'x': return ax_aux_fault(r, a[0]);
	case 't': return ax_touch(r, a[0], a[1], a[2]);
	case 'g': return ax_read_user_page(r, a[0]);
	}
	snprintf(ax_harness_msg, sizeof(ax_harness_msg), "unknown op '%c'", o->kind);
	return AX_HARNESS;
}

/* One teardown step as data (spec/audit.ts TeardownStep): 'r' restore, 'u' munmap slot of map h, 'c' close event h. */
struct ax_td_step {
	char kind;
	long h;
	int slot;
};

/* ---- teardown, in the protocol's order (spec/audit.ts teardownSteps) ---- */

/* perf_event_mlock_kb back to mlock_kb and the test PMU's fault switch off, where used. */
AX_FN void ax_td_restore(struct ax_run *r, long mlock_kb)
{
	char buf[32];

	if (r->mlock_touched) {
		snprintf(buf, sizeof(buf), "%ld", mlock_kb);
		ax_write_as_root(r, AX_PROC_MLOCK, buf);
	}
	if (r->fault_touched)
		ax_aux_fault(r, 0);
}

/* One slot (0 = A, 1 = B) of map handle m, whole (AX_SLOT_PAGES). */
AX_FN void ax_td_munmap(struct ax_run *r, long m, int slot)
{
	(void)r;
	munmap((void *)ax_slot(m, slot), AX_SLOT_BYTES);
}

/* Mappings mremap moved outside the slots (after the slots, before the closes). */
AX_FN void ax_td_strays(struct ax_run *r)
{
	for (int i = 0; i < r->nstray; i++)
		munmap((void *)r->strays[i][0], r->strays[i][1]);
	r->nstray = 0;
}

/* Close an event handle whose fd is still open. */
AX_FN void ax_td_close(struct ax_run *r, int ev)
{
	if (r->fds[ev] >= 0) {
		close(r->fds[ev]);
		r->fds[ev] = -1;
	}
}

/* ---- audit ---- */

/* The per-user limit in pages (budgetLimit) and the probe's cap (budgetCap). */
AX_FN long ax_budget_limit(long mlock_kb, long cpus) { return (mlock_kb >> 2) * cpus; }
AX_FN long ax_budget_cap(long mlock_kb, long cpus) { return ax_budget_limit(mlock_kb, cpus) + AX_BUDGET_PROBE_MARGIN; }

/*
 * Before the probe: no CAP_IPC_LOCK and RLIMIT_MEMLOCK at the pages pinned_vm still holds
 * (normally 0), so that every charge to pinned_vm fails. Returns 0 or an errno (-1: capset).
 */
AX_FN int ax_budget_prepare(long vmpin_kb)
{
	if (ax_set_ipc_lock(0))
		return -1;
	return ax_set_memlock(vmpin_kb > 0 ? (vmpin_kb + 3) / 4 : 0);
}

/*
 * The budget probe (spec/audit.ts budgetProbe): fresh data buffers, each on a fresh software
 * event, 2^k data pages (+ the user page) from the largest k under the cap down to k = 0,
 * each size repeated while it maps, then user-page-only buffers; stop at EPERM or at `cap`.
 * Everything is unmapped and closed before it returns. Pages, or -1 (ax_harness_msg says why).
 */
AX_FN long ax_budget_probe(long cap)
{
	struct { void *p; size_t len; int fd; } *b = NULL;
	long pages = 0, n;
	int k = 0, nb = 0, spare = -1, err = 0, size = 0, i;

	while ((2L << k) + 1 <= cap)
		k++;
	for (; k >= -1 && !err; k--) {
		n = k >= 0 ? 1L << k : 0;
		while (pages + n + 1 <= cap) {
			void *p;
			if (spare < 0) {
				spare = ax_perf_open(PERF_TYPE_SOFTWARE, PERF_COUNT_SW_DUMMY, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);
				if (spare < 0) {
					snprintf(ax_harness_msg, sizeof(ax_harness_msg), "budget probe: perf_event_open failed with %s", ax_errno_name(errno));
					err = 1;
					break;
				}
			}
			p = mmap(NULL, (n + 1) * AX_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, spare, 0);
			if (p == MAP_FAILED) {
				if (errno != EPERM) {
					snprintf(ax_harness_msg, sizeof(ax_harness_msg), "budget probe: mmap of %ld pages failed with %s", n + 1, ax_errno_name(errno));
					err = 1;
				}
				break;
			}
			if (nb == size) {
				void *nbp = realloc(b, (size = size ? 2 * size : 32) * sizeof(*b));
				if (!nbp) {
					munmap(p, (n + 1) * AX_PAGE_SIZE);
					snprintf(ax_harness_msg, sizeof(ax_harness_msg), "budget probe: out of memory");
					err = 1;
					break;
				}
				b = nbp;
			}
			b[nb].p = p;
			b[nb].len = (n + 1) * AX_PAGE_SIZE;
			b[nb++].fd = spare;
			spare = -1;
			pages += n + 1;
		}
	}
	for (i = 0; i < nb; i++)
		munmap(b[i].p, b[i].len);
	for (i = 0; i < nb; i++)
		close(b[i].fd);
	if (spare >= 0)
		close(spare);
	free(b);
	return err ? -1 : pages;
}

/* /dev/kmsg, non-blocking, at the end of the log (older records are not this program's); -1 if it cannot be read. */
AX_FN int ax_kmsg_open(void)
{
	int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);

	if (fd >= 0)
		lseek(fd, 0, SEEK_END);
	return fd;
}

/*
 * The next /dev/kmsg record's message (its first line, after the ';' header) read into rec, or
 * NULL when there is none (EAGAIN, end). Records overwritten before they were read (EPIPE) are
 * skipped. Shared by ax_kmsg_warnings and the C agent's kernel-log scan.
 */
AX_FN char *ax_kmsg_next(int fd, char *rec, size_t size)
{
	for (int i = 0; i < 100; i++) {
		ssize_t n = read(fd, rec, size - 1);
		char *msg, *nl;

		if (n < 0 && errno == EPIPE)
			continue; /* records were overwritten; the next read goes on */
		if (n <= 0)
			return NULL; /* EAGAIN: nothing more */
		rec[n] = 0;
		msg = strchr(rec, ';');
		msg = msg ? msg + 1 : rec;
		nl = strchr(msg, '\n');
		if (nl)
			*nl = 0;
		return msg;
	}
	return NULL;
}

/*
 * Kernel-log records since the last call that match AX_KERNEL_WARNING_ERE (case-insensitive),
 * skipping records that name another PID ("PID: n"; other workers share the log). Calls
 * `found` with each message (the record's first line, after the ';' header). Returns the
 * count, or -1 when the pattern does not compile.
 */
AX_FN int ax_kmsg_warnings(int fd, int pid, void (*found)(const char *msg, void *arg), void *arg)
{
	static regex_t re;
	static int compiled;
	char rec[8192];
	int count = 0;

	if (!compiled) {
		if (regcomp(&re, AX_KERNEL_WARNING_ERE, REG_EXTENDED | REG_ICASE | REG_NOSUB))
			return -1;
		compiled = 1;
	}
	if (fd < 0)
		return 0;
	for (int i = 0; i < 10000; i++) {
		char *msg = ax_kmsg_next(fd, rec, sizeof(rec)), *p;

		if (!msg)
			break;
		if (regexec(&re, msg, 0, NULL, 0))
			continue;
		p = strstr(msg, "PID: ");
		if (p && atoi(p + 5) != pid)
			continue;
		while (*msg == ' ' || *msg == '\t')
			msg++;
		for (p = msg + strlen(msg); p > msg && (p[-1] == ' ' || p[-1] == '\t' || p[-1] == '\r'); p--)
			p[-1] = 0;
		count++;
		if (found)
			found(msg, arg);
	}
	return count;
}

#endif
