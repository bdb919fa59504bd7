/* SPDX-License-Identifier: GPL-2.0 */
/*
 * procs.h: several processes and users over runtime/auxspec.h (issue 13; the semantics are
 * spec/notes/processes.md). Used by the C agent (runtime/agent.c) and inlined into the C
 * reproducers of cases with processes (fuzz/repro-c.ts); single-process reproducers do not
 * inline it, so their text does not change.
 *
 * p0 is the calling process itself. `fork {proc, from}` is a real fork() in process `from`:
 * the child inherits that process's fd table (its handle -> fd table is the copy fork made of
 * `from`'s struct ax_run) and, perf_mmap() setting VM_DONTCOPY, none of its perf mappings but its
 * anonymous ones. Every child is a child of p0 (a fork in another child uses
 * clone(CLONE_PARENT), which changes nothing perf counts: the mm and files are the caller's),
 * so p0 waits for each. A child serves op requests over a SOCK_SEQPACKET socketpair (an op in;
 * its result code, VmPin and user page words out) until `exit` (_exit(0)) or until its socket
 * closes; it dies with p0 (PR_SET_PDEATHSIG SIGKILL, armed again after every uid change).
 *
 * Users: user handle K is uid ax_procs.uids[K]; u0 is the uid the program started as. As
 * root (saved uid 0) `setuid` goes through euid 0 and then setresgid/setresuid(U, U, 0), so a
 * process can switch again, and CAP_IPC_LOCK is put back as the config says. Without root it
 * calls setresuid(U, U, -1) and the kernel answers (EPERM for another user).
 *
 * `sendFd {proc, to, ev}` is sendmsg(SCM_RIGHTS) of `proc`'s fd for ev (fd -1 when it holds none:
 * the kernel answers EBADF); a sender other than p0 sends it to p0, which passes it on and
 * closes its copy. The receiver keeps it as its fd for ev, or closes it at once when it already
 * holds one.
 */
#ifndef AUXSPEC_PROCS_H
#define AUXSPEC_PROCS_H
#include <linux/futex.h>
#include <pthread.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>

#define AX_MAX_PROCS 4
#define AX_MAX_USERS 4

/* Process ops (struct ax_op letters beside auxspec.h's): the op's process is ax_procs_op's `proc`. */
#define AX_FORK(proc, from) { 'F', { proc, from } }
#define AX_EXIT(proc) { 'X', { proc } }
#define AX_SETUID(proc, user) { 'U', { proc, user } }
#define AX_SEND_FD(proc, to, ev) { 'S', { proc, to, ev } }
/* Races (issue 14, spec/notes/races.md): a task `proc` of `from`'s process; a par block marker of n ops. */
#define AX_THREAD(proc, from) { 'T', { proc, from } }
#define AX_PAR(n) { 'B', { n } }

/* How long p0 waits for a par block's tasks to reach the barrier (a task that never does: harness). */
#define AX_BARRIER_MS 3000

struct ax_proc {
	pid_t pid;   /* the task's id (tid; a process's first task: its pid); 0: not started or exited */
	int sock;    /* p0's end of its socket; -1 for p0 */
	int group;   /* the task handle of its process's first task (p0's threads: 0) */
	int thread;  /* a task made by `thread` (not its process's first task) */
	pid_t tgid;  /* its process's pid */
	pthread_t pt; /* p0's threads: joined at their exit */
	unsigned uid; /* its user (uid), as p0 knows it */
};

/* The par barrier: a MAP_SHARED page every task of the program sees (made before any fork). */
struct ax_bar {
	int ready;  /* tasks waiting at the barrier */
	int go;     /* the block generation released */
	int abort;  /* a block generation p0 gave up on */
};

struct ax_procs {
	struct ax_proc p[AX_MAX_PROCS];
	struct ax_run *r0;        /* p0's run state */
	unsigned uids[AX_MAX_USERS]; /* user handle -> uid */
	int root;                 /* saved uid 0: setuid switches (each user a fresh uid) */
	pid_t leader;             /* p0's pid */
	int close_in_child[8];    /* p0's fds a child closes (the caller's pipes); -1 unused */
	long vmpin;               /* VmPin of the last op's process */
	int fork_order[AX_MAX_PROCS], nforked; /* tasks in fork/thread order */
	struct ax_bar *bar;       /* par barrier (MAP_SHARED) */
	int gen;                  /* par blocks issued */
	int jitter_us;            /* par: each task spins 0..jitter_us us after the release */
	int stall_task, stall_mode; /* tests only: the task of a par block that stalls (ax_preq.stall); -1 none */
};

/* Request and answer on a child's socket. */
struct ax_preq {
	char kind;
	long a[6];
	/* ops on a map handle (a[0]): the handle's base, 0 slot A / 1 slot B, as p0 keeps it for every
	 * process (spec/notes/processes.md: one base per handle; a toFresh mremap in any process flips
	 * it for all); -1 otherwise */
	int flip;
	int par;       /* 1: a par block's op: wait at the barrier for generation `gen` first */
	int gen;
	int jitter_us;
	int stall;     /* tests only (agent request testStall): 1 never reach the barrier, 2 never return after the release */
};

/* Op letters whose a[0] is a map handle (auxspec.h ax_run_op). */
AX_FN int ax_is_map_op(char kind)
{
	return kind && strchr("murpfatg", kind) != NULL;
}

struct ax_pans {
	int res;
	long vmpin;
	long pid;
	uint64_t page[5];
	char msg[256];
};

/*
 * A user_struct lives only while something references it: the creds of a task running as that
 * uid, a file opened under it (file->f_cred), a buffer it created (rb->mmap_user). A user that
 * was charged (a 6.15+ re-map charge, an AUX area) and that no task runs as any more is freed
 * an RCU grace period later (put_cred_rcu -> free_uid), and its locked_vm with it: the audit's
 * probe would then find a fresh user, or not, depending on timing (the host campaign saw it
 * flake). The spec's users persist, as a login session's do; so, as root, every user handle of
 * a program gets an anchor: /dev/null opened under its uid, kept open until the next program
 * starts (after this one's audit). Not root: one user, the caller's, which its own creds hold.
 * `mask`: the user handles to anchor (bit k: uk); the C agent leaves out those no task can
 * leave unreferenced (ax_procs_init_users).
 */
static int ax_user_anchor[AX_MAX_USERS] = { -1, -1, -1, -1 };

AX_FN void ax_procs_anchor_users(struct ax_procs *P, unsigned mask)
{
	uid_t r, e, sv;

	for (int i = 0; i < AX_MAX_USERS; i++)
		if (ax_user_anchor[i] >= 0) {
			close(ax_user_anchor[i]);
			ax_user_anchor[i] = -1;
		}
	if (!P->root || getresuid(&r, &e, &sv))
		return;
	if (!(mask & ((1u << AX_MAX_USERS) - 1)))
		return;
	for (int i = 0; i < AX_MAX_USERS; i++) {
		if (!(mask & (1u << i)))
			continue;
		/* euid 0 through the saved uid 0, then the user's uid as real and effective */
		if (syscall(SYS_setresuid, -1, 0, -1) || syscall(SYS_setresuid, P->uids[i], P->uids[i], 0))
			break;
		ax_user_anchor[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);
	}
	syscall(SYS_setresuid, -1, 0, -1);
	syscall(SYS_setresuid, r, e, sv);
}

/*
 * ax_procs_init with only the user handles in `anchor` anchored (bit k: uk). A program without
 * `setuid` needs none: every task runs as u0, and p0's own creds hold u0 until the audit has
 * probed it (the audit probes u0 first, as p0, and switches p0 only for the other users
 * afterwards); a user no `setuid` names has no task and no charge. With a `setuid` (the C
 * agent): the users it names, and u0 (p0 may leave u0 while a charge of u0's outlives its tasks).
 * `barrier`: whether to make the par barrier page (only a program with a par block uses it;
 * without one P->bar stays NULL).
 */
AX_FN void ax_procs_init_users(struct ax_procs *P, struct ax_run *r0, int root, unsigned uid0, unsigned anchor, int barrier);

AX_FN void ax_procs_init(struct ax_procs *P, struct ax_run *r0, int root, unsigned uid0)
{
	ax_procs_init_users(P, r0, root, uid0, (1u << AX_MAX_USERS) - 1, 1);
}

AX_FN void ax_procs_init_users(struct ax_procs *P, struct ax_run *r0, int root, unsigned uid0, unsigned anchor, int barrier)
{
	void *bar;

	memset(P, 0, sizeof(*P));
	P->r0 = r0;
	P->root = root;
	P->leader = getpid();
	P->p[0].pid = P->leader;
	P->p[0].tgid = P->leader;
	P->p[0].sock = -1;
	P->p[0].uid = uid0;
	for (int i = 1; i < AX_MAX_PROCS; i++)
		P->p[i].sock = -1;
	/* the par barrier: shared with every fork child (not a perf mapping: fork copies it) */
	bar = barrier ? mmap(NULL, AX_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0) : MAP_FAILED;
	P->bar = bar == MAP_FAILED ? NULL : (struct ax_bar *)bar;
	P->jitter_us = 50;
	P->stall_task = -1;
	for (int i = 0; i < 8; i++)
		P->close_in_child[i] = -1;
	P->uids[0] = uid0;
	/*
	 * The other users: fresh uids derived from u0's, above 2^31 where the host pools' program
	 * uids (below 2^31, one per program) never are, so that no two programs share one
	 * (user->locked_vm outlives processes).
	 */
	for (int i = 1; i < AX_MAX_USERS; i++)
		P->uids[i] = 0x80000000u + (unsigned)((((unsigned long)uid0 * 3u) + (unsigned long)(i - 1)) % 0x7ffffff0ul);
	ax_procs_anchor_users(P, anchor);
}

/* sendmsg of one message with an optional fd (SCM_RIGHTS; fd < 0 still sends it: EBADF). Returns errno. */
AX_FN int ax_sendmsg_fd(int sock, const void *buf, size_t len, int fd, int with_fd)
{
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { (void *)buf, len };
	struct msghdr mh;

	memset(&mh, 0, sizeof(mh));
	memset(cbuf, 0, sizeof(cbuf));
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	if (with_fd) {
		struct cmsghdr *c;
		mh.msg_control = cbuf;
		mh.msg_controllen = sizeof(cbuf);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	for (;;) {
		if (sendmsg(sock, &mh, MSG_NOSIGNAL) >= 0)
			return 0;
		if (errno != EINTR)
			return errno;
	}
}

/* recvmsg of one message; *fd gets a passed fd or -1. Returns bytes, 0 at EOF, -1 on error. */
AX_FN ssize_t ax_recvmsg_fd(int sock, void *buf, size_t len, int *fd)
{
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { buf, len };
	struct msghdr mh;
	ssize_t n;

	*fd = -1;
	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cbuf;
	mh.msg_controllen = sizeof(cbuf);
	do
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n > 0) {
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
			if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
				memcpy(fd, CMSG_DATA(c), sizeof(int));
	}
	return n;
}

/* Keep (or, when the handle already has one, close) a received fd for event handle ev. */
AX_FN void ax_keep_fd(struct ax_run *r, int ev, int fd)
{
	if (fd < 0)
		return;
	if (ev < 0 || ev >= r->nev || r->fds[ev] >= 0)
		close(fd);
	else
		r->fds[ev] = fd;
}

/*
 * This process's user becomes `uid`. Root (saved uid 0): through euid 0 to setresgid/setresuid
 * (uid, uid, 0), CAP_IPC_LOCK as r->cap_ipc_lock. Otherwise setresuid(uid, uid, -1): the kernel
 * says whether it may. Returns a result code.
 */
AX_FN int ax_setuid(struct ax_run *r, int root, unsigned uid)
{
	if (!root)
		return syscall(SYS_setresuid, uid, uid, -1) ? errno : 0;
	if (syscall(SYS_setresuid, -1, 0, -1))
		return ax_harness("setresuid(-1, 0, -1) before a setuid");
	if (ax_switch_uid(uid))
		return ax_harness("setresgid/setresuid to the user's uid");
	r->uid = uid;
	if (ax_set_ipc_lock(r->cap_ipc_lock))
		return ax_harness("capset CAP_IPC_LOCK after a setuid");
	return 0;
}

/*
 * Set in a child whose parent *task* is one of p0's threads (a fork from that thread, or a
 * CLONE_PARENT fork from such a child: the real parent is then that thread too):
 * PR_SET_PDEATHSIG fires when the parent thread exits, which an `exit` of that thread (or the
 * teardown's) does long before p0 goes. Such children end at their socket's EOF instead.
 */
static int ax_thread_born;

/* Dies with p0: PR_SET_PDEATHSIG, then a check that p0 is still the parent. */
AX_FN void ax_child_arm(pid_t leader)
{
	if (ax_thread_born)
		return;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != leader)
		_exit(1);
}

/* VmPin of the calling task's mm (ax_vmpin_kb with the buffer on the stack: tasks of one process read at once). */
AX_FN long ax_vmpin_kb_r(int fd)
{
	char buf[16384];
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

/* Spins 0..max_us microseconds (a par block's jitter after the release). */
AX_FN void ax_jitter(int max_us)
{
	struct timespec t0, t;
	unsigned long x;
	long ns;

	if (max_us <= 0)
		return;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	x = (unsigned long)t0.tv_nsec * 6364136223846793005ul + (unsigned long)syscall(SYS_gettid) * 1442695040888963407ul;
	x ^= x >> 29;
	ns = (long)(x % ((unsigned long)max_us * 1000ul + 1));
	do
		clock_gettime(CLOCK_MONOTONIC, &t);
	while ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) < ns);
}

AX_FN void ax_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#else
	__asm__ __volatile__("" ::: "memory");
#endif
}

/*
 * A task at the barrier of par block `gen`: counts itself ready, then waits until p0 releases
 * the block (spinning a while, then on the futex: the page is MAP_SHARED, so no
 * FUTEX_PRIVATE_FLAG). Returns 0, or -1 when p0 gave the block up.
 */
AX_FN int ax_bar_wait(struct ax_bar *b, int gen)
{
	__atomic_add_fetch(&b->ready, 1, __ATOMIC_SEQ_CST);
	for (long i = 0;; i++) {
		int g = __atomic_load_n(&b->go, __ATOMIC_ACQUIRE);
		if (g == gen)
			return 0;
		if (__atomic_load_n(&b->abort, __ATOMIC_ACQUIRE) == gen)
			return -1;
		if (i < 20000)
			ax_cpu_relax();
		else {
			struct timespec ts = { 0, 10 * 1000 * 1000 };
			syscall(SYS_futex, &b->go, FUTEX_WAIT, g, &ts, NULL, 0);
		}
	}
}

/* How a task serves: its process's first task (a fork child), a thread of p0, a thread of a child. */
enum { AX_TASK_PROC, AX_TASK_P0_THREAD, AX_TASK_THREAD };

struct ax_tctx {
	struct ax_procs *P;
	struct ax_run r;      /* the creator's, copied: fds and flip are the process's (shared), uid and page the task's */
	int sock;
	int mode;
	volatile pid_t tid;   /* set by the new thread */
	unsigned setuid_to;   /* p0's threads: the user of the task named `from` (0: keep) */
};

static void *ax_thread_main(void *arg);

/* A new thread of this process serving on `sock` (r copied). Returns its tid, or -errno. */
AX_FN long ax_spawn_thread(struct ax_procs *P, const struct ax_run *r, int sock, int mode, unsigned setuid_to, pthread_t *pt)
{
	struct ax_tctx *c = calloc(1, sizeof(*c));
	pthread_attr_t at;
	pthread_t t;
	int e;

	if (!c)
		return -ENOMEM;
	c->P = P;
	c->r = *r;
	c->sock = sock;
	c->mode = mode;
	c->setuid_to = setuid_to;
	pthread_attr_init(&at);
	pthread_attr_setstacksize(&at, 1 << 20);
	if (mode != AX_TASK_P0_THREAD)
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	e = pthread_create(&t, &at, ax_thread_main, c);
	pthread_attr_destroy(&at);
	if (e) {
		free(c);
		return -e;
	}
	pid_t tid;

	while (!(tid = c->tid))
		sched_yield();
	if (pt)
		*pt = t;
	return tid;
}

/*
 * A task's loop: ops from p0 until exit or EOF. A process's first task never returns (its exit
 * is SYS_exit of that task: with threads still alive the process lives on; as the last task
 * it is the process's exit); a thread of a child ends with SYS_exit; a thread of p0 returns
 * (p0 joins it).
 */
static void ax_serve(struct ax_procs *P, struct ax_run *r, int sock, int mode)
{
	int status = open("/proc/thread-self/status", O_RDONLY | O_CLOEXEC);

	if (mode == AX_TASK_PROC)
		ax_child_arm(P->leader);
	else if (mode == AX_TASK_THREAD && !ax_thread_born)
		prctl(PR_SET_PDEATHSIG, SIGKILL); /* per task: a new thread starts without it */
	for (;;) {
		struct ax_preq q;
		struct ax_pans a;
		int fd = -1, sendres = -1;
		ssize_t n = ax_recvmsg_fd(sock, &q, sizeof(q), &fd);

		if (n <= 0)
			goto out;
		memset(&a, 0, sizeof(a));
		if (q.par && q.stall == 1 && P->bar) {
			/* a task that never reaches the barrier (until p0 gives the block up) */
			struct timespec ts = { 0, 1000 * 1000 };
			while (__atomic_load_n(&P->bar->abort, __ATOMIC_ACQUIRE) != q.gen)
				nanosleep(&ts, NULL);
			a.res = ax_harness("par block given up (test stall at the barrier)");
			goto answer;
		}
		if (q.par && (!P->bar || ax_bar_wait(P->bar, q.gen))) {
			a.res = ax_harness("par block given up before its release");
			goto answer;
		}
		if (q.par && q.stall == 2)
			for (;;)
				pause(); /* a task whose op never returns */
		if (q.par)
			ax_jitter(q.jitter_us);
		switch (q.kind) {
		case 'X':
			goto out;
		case 'F': {
			/* fork here; the new child is p0's (CLONE_PARENT) and serves on the socket passed in.
			 * From a thread of p0 a plain fork (p0 is already the parent); that child does not arm
			 * PR_SET_PDEATHSIG (it would fire when this thread exits) and ends at its socket's EOF. */
			long pid;
			if (fd < 0) {
				a.res = ax_harness("fork request without a socket");
				break;
			}
			/* raw clone: glibc's fork() has no CLONE_PARENT. The new child's glibc still has the
			 * caller's TID cached (raise() would aim at the caller); it raises nothing itself. */
			pid = syscall(SYS_clone, (mode == AX_TASK_P0_THREAD ? 0 : CLONE_PARENT) | SIGCHLD, 0, NULL, NULL, 0);
			if (pid == 0) {
				/* the new child: the same loop on its own socket, its own status file */
				int armed = mode != AX_TASK_P0_THREAD && !ax_thread_born;
				if (!armed)
					ax_thread_born = 1;
				close(sock);
				close(status);
				sock = fd;
				status = open("/proc/thread-self/status", O_RDONLY | O_CLOEXEC);
				mode = AX_TASK_PROC;
				if (armed)
					ax_child_arm(P->leader);
				continue;
			}
			close(fd);
			if (pid < 0)
				a.res = errno;
			a.pid = pid;
			break;
		}
		case 'T': {
			/* a thread of this process, serving on the socket passed in */
			long tid;
			if (fd < 0) {
				a.res = ax_harness("thread request without a socket");
				break;
			}
			tid = ax_spawn_thread(P, r, fd, AX_TASK_THREAD, 0, NULL);
			if (tid < 0) {
				close(fd);
				a.res = (int)-tid;
			}
			fd = -1;
			a.pid = tid;
			break;
		}
		case 'U':
			a.res = ax_setuid(r, P->root, (unsigned)q.a[0]);
			if (mode == AX_TASK_PROC)
				ax_child_arm(P->leader); /* a uid change clears PR_SET_PDEATHSIG */
			else if (mode == AX_TASK_THREAD && !ax_thread_born)
				prctl(PR_SET_PDEATHSIG, SIGKILL);
			break;
		case 'S': {
			/* this process's fd for ev to p0, on the answer */
			int ev = (int)q.a[0];
			a.vmpin = ax_vmpin_kb_r(status);
			sendres = ax_sendmsg_fd(sock, &a, sizeof(a), ax_fd(r, ev), 1);
			if (sendres == 0)
				continue;
			a.res = sendres;
			break;
		}
		case 'R':
			ax_keep_fd(r, (int)q.a[0], fd);
			fd = -1;
			break;
		default: {
			struct ax_op o = { q.kind, { q.a[0], q.a[1], q.a[2], q.a[3], q.a[4], q.a[5] } };
			if (ax_is_map_op(q.kind) && q.flip >= 0 && q.a[0] >= 0 && q.a[0] < r->nmap)
				r->flip[q.a[0]] = (unsigned char)q.flip;
			a.res = ax_run_op(r, &o);
			memcpy(a.page, r->page, sizeof(a.page));
		}
		}
answer:
		if (fd >= 0)
			close(fd);
		if (a.res == AX_HARNESS)
			snprintf(a.msg, sizeof(a.msg), "%s", ax_harness_msg);
		a.vmpin = ax_vmpin_kb_r(status);
		if (ax_sendmsg_fd(sock, &a, sizeof(a), -1, 0))
			goto out;
	}
out:
	close(status);
	if (mode == AX_TASK_P0_THREAD) {
		/* mappings its mremaps moved outside the slots are p0's mm's: p0's teardown unmaps them
		 * (p0 waits in pthread_join meanwhile) */
		for (int i = 0; i < r->nstray && P->r0->nstray < AX_MAX_STRAYS; i++) {
			P->r0->strays[P->r0->nstray][0] = r->strays[i][0];
			P->r0->strays[P->r0->nstray++][1] = r->strays[i][1];
		}
		close(sock);
		return;
	}
	/* SYS_exit: this task only (glibc's _exit is exit_group; a thread's return could run exit()) */
	for (;;)
		syscall(SYS_exit, 0);
}

static void *ax_thread_main(void *arg)
{
	struct ax_tctx *c = arg;
	struct ax_run r = c->r;
	struct ax_procs *P = c->P;
	int sock = c->sock, mode = c->mode;

	r.nstray = 0; /* its own strays only (the creator keeps its own list) */

	if (c->setuid_to && c->setuid_to != r.uid)
		ax_setuid(&r, P->root, c->setuid_to);
	c->tid = (pid_t)syscall(SYS_gettid); /* the creator frees nothing: c stays with this thread */
	ax_serve(P, &r, sock, mode);
	free(c);
	return NULL;
}

static __attribute__((noreturn)) void ax_child_serve(struct ax_procs *P, struct ax_run *r, int sock)
{
	ax_serve(P, r, sock, AX_TASK_PROC);
	_exit(0);
}
/* One request to child k and its answer (fd: passed with the request when with_fd; *got: an fd on the answer). */
AX_FN int ax_ask(struct ax_procs *P, int k, const struct ax_preq *q, int fd, int with_fd, struct ax_pans *a, int *got)
{
	int e, gfd = -1;
	ssize_t n;

	if (got)
		*got = -1;
	if ((e = ax_sendmsg_fd(P->p[k].sock, q, sizeof(*q), fd, with_fd))) {
		if (with_fd && e == EBADF)
			return EBADF; /* the fd passed is not open: the caller decides */
		snprintf(ax_harness_msg, sizeof(ax_harness_msg), "process p%d: request failed: %s", k, strerror(e));
		return AX_HARNESS;
	}
	n = ax_recvmsg_fd(P->p[k].sock, a, sizeof(*a), &gfd);
	if (n != (ssize_t)sizeof(*a)) {
		if (gfd >= 0)
			close(gfd);
		snprintf(ax_harness_msg, sizeof(ax_harness_msg), "process p%d died during an op", k);
		return AX_HARNESS;
	}
	if (got)
		*got = gfd;
	else if (gfd >= 0)
		close(gfd);
	if (a->res == AX_HARNESS)
		snprintf(ax_harness_msg, sizeof(ax_harness_msg), "process p%d: %.200s", k, a->msg);
	return a->res;
}

/* Other live tasks of task k's process. */
AX_FN int ax_group_others(const struct ax_procs *P, int k)
{
	int n = 0;

	for (int i = 0; i < AX_MAX_PROCS; i++)
		if (i != k && P->p[i].pid && P->p[i].group == P->p[k].group)
			n++;
	return n;
}

/* Polls (up to 5 s) until `done(P, k)` holds; 0 or -1 at the time-out. */
AX_FN int ax_poll_until(int (*done)(const struct ax_procs *, int), const struct ax_procs *P, int k)
{
	for (int i = 0; i < 50000; i++) {
		struct timespec ts = { 0, 100 * 1000 };
		if (done(P, k))
			return 0;
		nanosleep(&ts, NULL);
	}
	return -1;
}

/* A thread (not its process's first task) is gone: released (tgkill answers ESRCH). */
AX_FN int ax_thread_gone(const struct ax_procs *P, int k)
{
	return syscall(SYS_tgkill, P->p[k].tgid, P->p[k].pid, 0) < 0 && errno == ESRCH;
}

/* A process's first task has exited while other tasks keep the process: a zombie ('Z' in stat). */
AX_FN int ax_leader_zombie(const struct ax_procs *P, int k)
{
	char path[64], buf[512], *p;
	int fd;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)P->p[k].pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return 1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 1;
	buf[n] = 0;
	p = strrchr(buf, ')');
	return p && (p[2] == 'Z' || p[2] == 'X');
}

/*
 * Task k was asked to end (or its socket closes now): waits until it has. p0's thread: joined.
 * The last task of a child process: the process is reaped (exit_mm and exit_files are done).
 * Otherwise the task alone: a thread until released, a process's first task until a zombie.
 * Returns 0 or a harness code.
 */
AX_FN int ax_reap(struct ax_procs *P, int k)
{
	int st = 0, others = ax_group_others(P, k);
	pid_t w;

	if (P->p[k].sock >= 0)
		close(P->p[k].sock);
	P->p[k].sock = -1;
	if (P->p[k].group == 0) {
		pthread_join(P->p[k].pt, NULL);
		P->p[k].pid = 0;
		return 0;
	}
	if (others) {
		int e = ax_poll_until(P->p[k].thread ? ax_thread_gone : ax_leader_zombie, P, k);
		P->p[k].pid = 0;
		if (e) {
			snprintf(ax_harness_msg, sizeof(ax_harness_msg), "task p%d did not end within 5 s of its exit", k);
			return AX_HARNESS;
		}
		return 0;
	}
	do
		w = waitpid(P->p[k].tgid, &st, 0);
	while (w < 0 && errno == EINTR);
	P->p[k].pid = 0;
	if (w < 0)
		return ax_harness("waitpid of a program's process failed");
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		snprintf(ax_harness_msg, sizeof(ax_harness_msg), "process p%d ended with %s %d", k, WIFEXITED(st) ? "status" : "signal",
			 WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
		return AX_HARNESS;
	}
	return 0;
}

AX_FN long ax_pid_vmpin(pid_t pid)
{
	char path[64];
	int fd;
	long v;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return LONG_MIN;
	v = ax_vmpin_kb_r(fd);
	close(fd);
	return v;
}

/* Forks `from` into `proc`. */
AX_FN int ax_proc_fork(struct ax_procs *P, int proc, int from)
{
	int sv[2];
	pid_t pid;

	if (proc <= 0 || proc >= AX_MAX_PROCS || P->p[proc].pid || from < 0 || from >= AX_MAX_PROCS || !P->p[from].pid)
		return ax_harness("fork of a process handle that is in use, or from one that is not alive");
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv))
		return ax_harness("socketpair for a new process");
	if (from == 0) {
		pid = fork();
		if (pid < 0) {
			int e = errno;
			close(sv[0]);
			close(sv[1]);
			return e;
		}
		if (pid == 0) {
			close(sv[0]);
			for (int i = 1; i < AX_MAX_PROCS; i++)
				if (P->p[i].sock >= 0)
					close(P->p[i].sock);
			for (int i = 0; i < 8; i++)
				if (P->close_in_child[i] >= 0)
					close(P->close_in_child[i]);
			ax_child_serve(P, P->r0, sv[1]);
		}
	} else {
		struct ax_preq q = { 'F', { 0 }, -1, 0, 0, 0, 0 };
		struct ax_pans a;
		int res = ax_ask(P, from, &q, sv[1], 1, &a, NULL);
		if (res) {
			close(sv[0]);
			close(sv[1]);
			return res;
		}
		pid = (pid_t)a.pid;
	}
	close(sv[1]);
	P->p[proc].pid = pid;
	P->p[proc].tgid = pid;
	P->p[proc].group = proc;
	P->p[proc].thread = 0;
	P->p[proc].uid = P->p[from].uid;
	P->p[proc].sock = sv[0];
	P->fork_order[P->nforked++] = proc;
	P->vmpin = ax_pid_vmpin(pid);
	return 0;
}

/* A task `proc` in `from`'s process (spec/notes/races.md: shares its mm, fds and rlimits; starts as from's user). */
AX_FN int ax_proc_thread(struct ax_procs *P, int proc, int from, int status)
{
	int sv[2];
	long tid;

	if (proc <= 0 || proc >= AX_MAX_PROCS || P->p[proc].pid || from < 0 || from >= AX_MAX_PROCS || !P->p[from].pid)
		return ax_harness("thread of a task handle that is in use, or from one that is not alive");
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv))
		return ax_harness("socketpair for a new task");
	if (P->p[from].group == 0) {
		/* p0's process: p0 makes the thread; it takes `from`'s user itself */
		tid = ax_spawn_thread(P, P->r0, sv[1], AX_TASK_P0_THREAD, from ? P->p[from].uid : 0, &P->p[proc].pt);
		if (tid < 0) {
			close(sv[0]);
			close(sv[1]);
			return (int)-tid;
		}
		P->vmpin = ax_vmpin_kb(status);
	} else {
		struct ax_preq q = { 'T', { 0 }, -1, 0, 0, 0, 0 };
		struct ax_pans a;
		int res = ax_ask(P, from, &q, sv[1], 1, &a, NULL);
		close(sv[1]);
		if (res) {
			close(sv[0]);
			return res;
		}
		tid = a.pid;
		P->vmpin = a.vmpin;
	}
	P->p[proc].pid = (pid_t)tid;
	P->p[proc].tgid = P->p[from].tgid;
	P->p[proc].group = P->p[from].group;
	P->p[proc].thread = 1;
	P->p[proc].uid = P->p[from].uid;
	P->p[proc].sock = sv[0];
	P->fork_order[P->nforked++] = proc;
	return 0;
}

/* exit of task `proc`: it ends (SYS_exit of that task), then ax_reap waits for it. */
AX_FN int ax_proc_exit(struct ax_procs *P, int proc)
{
	struct ax_preq q = { 'X', { 0 }, -1, 0, 0, 0, 0 };

	if (proc <= 0 || proc >= AX_MAX_PROCS || !P->p[proc].pid)
		return ax_harness("exit of a process that is not alive");
	ax_sendmsg_fd(P->p[proc].sock, &q, sizeof(q), -1, 0);
	P->vmpin = 0;
	return ax_reap(P, proc);
}

/* VmPin of p0 (status: an open /proc/self/status of p0). */
AX_FN int ax_proc_setuid(struct ax_procs *P, int proc, int user, int status)
{
	unsigned uid = P->uids[user];
	int res;

	if (proc == 0) {
		res = ax_setuid(P->r0, P->root, uid);
		P->vmpin = ax_vmpin_kb(status);
	} else {
		struct ax_preq q = { 'U', { (long)uid }, -1, 0, 0, 0, 0 };
		struct ax_pans a;
		res = ax_ask(P, proc, &q, -1, 0, &a, NULL);
		P->vmpin = a.vmpin;
	}
	if (res == 0 && proc >= 0 && proc < AX_MAX_PROCS)
		P->p[proc].uid = uid;
	return res;
}

/* sendFd: proc's fd for ev to `to`. */
AX_FN int ax_proc_send_fd(struct ax_procs *P, int proc, int to, int ev, int status)
{
	int fd = -1, res;
	struct ax_pans a;

	if (proc == 0) {
		fd = ax_fd(P->r0, ev);
		P->vmpin = ax_vmpin_kb(status);
		if (to == 0)
			return fd < 0 ? EBADF : 0; /* to itself: it holds it already */
		{
			struct ax_preq q = { 'R', { ev }, -1, 0, 0, 0, 0 };
			res = ax_ask(P, to, &q, fd, 1, &a, NULL);
		}
		return res;
	}
	{
		struct ax_preq q = { 'S', { ev }, -1, 0, 0, 0, 0 };
		res = ax_ask(P, proc, &q, -1, 0, &a, &fd);
		P->vmpin = a.vmpin;
		if (res)
			return res;
	}
	if (fd < 0)
		return ax_harness("sendFd: no fd arrived");
	if (to == 0) {
		ax_keep_fd(P->r0, ev, fd);
		return 0;
	}
	{
		struct ax_preq q = { 'R', { ev }, -1, 0, 0, 0, 0 };
		struct ax_pans b;
		res = ax_ask(P, to, &q, fd, 1, &b, NULL);
		close(fd);
		return res == EBADF ? ax_harness("sendFd: passing the fd on failed") : res;
	}
}

/* The request forwarding op o to task proc (p0 keeps each map handle's base and sends it along). */
AX_FN struct ax_preq ax_fwd_req(struct ax_procs *P, const struct ax_op *o)
{
	const long *a = o->a;
	struct ax_preq q = { o->kind, { a[0], a[1], a[2], a[3], a[4], a[5] }, -1, 0, 0, 0, 0 };

	if (ax_is_map_op(o->kind) && a[0] >= 0 && a[0] < P->r0->nmap)
		q.flip = P->r0->flip[a[0]];
	return q;
}

/* After a forwarded map-handle op: p0's copy of the handle's base (mmap: slot A; toFresh mremap: flipped). */
AX_FN void ax_fwd_done(struct ax_procs *P, const struct ax_op *o, int res)
{
	const long *a = o->a;

	if (ax_is_map_op(o->kind) && a[0] >= 0 && a[0] < P->r0->nmap) {
		if (o->kind == 'm')
			P->r0->flip[a[0]] = 0;
		else if (o->kind == 'r' && a[5] && res == 0)
			P->r0->flip[a[0]] = !P->r0->flip[a[0]];
	}
}

/*
 * One op in task `proc` (auxspec.h ops and the process ops above). P->vmpin is the VmPin
 * of the op's process afterwards (fork: the child's; exit: 0). `status`: p0's /proc/self/status.
 */
AX_FN int ax_procs_op(struct ax_procs *P, int proc, const struct ax_op *o, int status)
{
	const long *a = o->a;

	switch (o->kind) {
	case 'F': return ax_proc_fork(P, (int)a[0], (int)a[1]);
	case 'T': return ax_proc_thread(P, (int)a[0], (int)a[1], status);
	case 'X': return ax_proc_exit(P, (int)a[0]);
	case 'U': return ax_proc_setuid(P, (int)a[0], (int)a[1], status);
	case 'S': return ax_proc_send_fd(P, (int)a[0], (int)a[1], (int)a[2], status);
	case 'B': P->vmpin = 0; return 0; /* the par marker alone (ax_procs_par runs the block) */
	}
	if (proc == 0) {
		int res = ax_run_op(P->r0, o);
		P->vmpin = ax_vmpin_kb(status);
		return res;
	}
	if (proc < 0 || proc >= AX_MAX_PROCS || !P->p[proc].pid)
		return ax_harness("op in a process that is not alive");
	{
		struct ax_preq q = ax_fwd_req(P, o);
		struct ax_pans ans;
		int res;

		res = ax_ask(P, proc, &q, -1, 0, &ans, NULL);
		if (P->p[proc].group != 0)
			ax_fwd_done(P, o, res); /* p0's threads share p0's flip table: they moved it themselves */
		P->vmpin = ans.vmpin;
		memcpy(P->r0->page, ans.page, sizeof(ans.page));
		return res;
	}
}

/* The task an op of a par block runs in (exit: the task that exits; sendFd: the sender). */
AX_FN int ax_par_task(const struct ax_op *o, int proc)
{
	return o->kind == 'X' || o->kind == 'S' ? (int)o->a[0] : proc;
}

/* One op's result in a par block. */
struct ax_par_res {
	int res;
	long vmpin;
	uint64_t page[5];
};

/*
 * A par block (spec/notes/races.md): op j runs in task proc[j] (distinct tasks). Each task but
 * p0 gets its op with the block's generation and waits at the barrier; when all are there p0
 * releases them together (futex wake of every waiter) and runs its own op, if any; every task
 * spins a random 0..P->jitter_us us first. Then each op's result, and the VmPin of each op's
 * task read after the whole block (exit: 0). Returns 0 or AX_HARNESS (a task that does not
 * reach the barrier within AX_BARRIER_MS: the block is given up; the caller kills every task).
 *
 * sendFd in a block: the sender takes its file reference inside the block (a task: its
 * sendmsg(SCM_RIGHTS) to p0, whose fget is that moment; p0: a dup of its fd, EBADF as the
 * sendmsg would be) and the receiver installs it after the block. So a block observes the
 * orders where the receiver's use of the fd comes before the sendFd (every such observation is
 * one order's; the other orders are not observed): it never shows an order that none allows.
 */
AX_FN int ax_procs_par(struct ax_procs *P, int n, const int *proc, const struct ax_op *ops, int status, struct ax_par_res *out)
{
	int task[3], remote = 0, gen, local = -1, held[3] = { -1, -1, -1 };
	struct timespec t0, t;

	if (n < 2 || n > 3 || !P->bar)
		return ax_harness("par block of other than 2 or 3 ops, or no barrier page");
	for (int j = 0; j < n; j++) {
		task[j] = ax_par_task(&ops[j], proc[j]);
		memset(&out[j], 0, sizeof(out[j]));
		if (task[j] < 0 || task[j] >= AX_MAX_PROCS || !P->p[task[j]].pid)
			return ax_harness("par block: an op in a task that is not alive");
		for (int i = 0; i < j; i++)
			if (task[i] == task[j])
				return ax_harness("par block: two ops in one task");
		if (strchr("FTUB", ops[j].kind) || (ops[j].kind == 'X' && task[j] == 0))
			return ax_harness("par block: the C agent runs open, close, mmap, munmap, mremap, mprotect, setOutput, sendFd and exit of a task other than p0 in a block");
		if (task[j] == 0)
			local = j;
	}
	gen = ++P->gen;
	__atomic_store_n(&P->bar->ready, 0, __ATOMIC_SEQ_CST);
	for (int j = 0; j < n; j++) {
		struct ax_preq q;
		if (j == local)
			continue;
		q = ax_fwd_req(P, &ops[j]);
		if (ops[j].kind == 'X')
			q.a[0] = 0;
		if (ops[j].kind == 'S') {
			/* the sender's loop reads the event in a[0] and answers with its fd */
			memset(q.a, 0, sizeof(q.a));
			q.a[0] = ops[j].a[2];
		}
		q.par = 1;
		q.gen = gen;
		q.jitter_us = P->jitter_us;
		q.stall = task[j] == P->stall_task ? P->stall_mode : 0;
		if (ax_sendmsg_fd(P->p[task[j]].sock, &q, sizeof(q), -1, 0)) {
			snprintf(ax_harness_msg, sizeof(ax_harness_msg), "par block: request to p%d failed", task[j]);
			__atomic_store_n(&P->bar->abort, gen, __ATOMIC_SEQ_CST);
			syscall(SYS_futex, &P->bar->go, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
			return AX_HARNESS;
		}
		remote++;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (long i = 0; __atomic_load_n(&P->bar->ready, __ATOMIC_ACQUIRE) < remote; i++) {
		if (i < 1000) {
			ax_cpu_relax();
			continue;
		}
		sched_yield();
		clock_gettime(CLOCK_MONOTONIC, &t);
		if ((t.tv_sec - t0.tv_sec) * 1000L + (t.tv_nsec - t0.tv_nsec) / 1000000L > AX_BARRIER_MS) {
			snprintf(ax_harness_msg, sizeof(ax_harness_msg), "par block: %d of %d tasks reached the barrier within %d ms",
				 __atomic_load_n(&P->bar->ready, __ATOMIC_ACQUIRE), remote, AX_BARRIER_MS);
			__atomic_store_n(&P->bar->abort, gen, __ATOMIC_SEQ_CST);
			syscall(SYS_futex, &P->bar->go, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
			return AX_HARNESS;
		}
	}
	/* the release: every task sees go == gen at once (spinners) or on the wake */
	__atomic_store_n(&P->bar->go, gen, __ATOMIC_SEQ_CST);
	syscall(SYS_futex, &P->bar->go, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
	if (local >= 0) {
		ax_jitter(P->jitter_us);
		if (ops[local].kind == 'S') {
			/* p0 sends: its file reference now (dup: EBADF as sendmsg's fget would answer) */
			int fd = ax_fd(P->r0, (int)ops[local].a[2]);
			held[local] = fd < 0 ? -1 : fcntl(fd, F_DUPFD_CLOEXEC, 0);
			out[local].res = held[local] < 0 ? EBADF : 0;
		} else {
			out[local].res = ax_run_op(P->r0, &ops[local]);
			memcpy(out[local].page, P->r0->page, sizeof(out[local].page));
		}
	}
	for (int j = 0; j < n; j++) {
		struct ax_pans a;
		int fd = -1;
		ssize_t got;
		if (j == local)
			continue;
		if (ops[j].kind == 'X') {
			/* the task ends after the release; wait until it has (as a sequential exit does) */
			int e = ax_reap(P, task[j]);
			if (e)
				goto fail;
			continue;
		}
		got = ax_recvmsg_fd(P->p[task[j]].sock, &a, sizeof(a), &fd);
		if (fd >= 0 && ops[j].kind == 'S' && got == (ssize_t)sizeof(a) && a.res == 0)
			held[j] = fd;
		else if (fd >= 0)
			close(fd);
		if (got != (ssize_t)sizeof(a)) {
			snprintf(ax_harness_msg, sizeof(ax_harness_msg), "process p%d died during a par block", task[j]);
			goto fail;
		}
		if (a.res == AX_HARNESS) {
			snprintf(ax_harness_msg, sizeof(ax_harness_msg), "process p%d: %.200s", task[j], a.msg);
			goto fail;
		}
		out[j].res = a.res;
		memcpy(out[j].page, a.page, sizeof(a.page));
	}
	/* sendFd: the receivers install what the senders sent (a duplicate is closed at once) */
	for (int j = 0; j < n; j++) {
		int to = (int)ops[j].a[1], ev = (int)ops[j].a[2];
		if (held[j] < 0)
			continue;
		if (to == 0)
			ax_keep_fd(P->r0, ev, held[j]);
		else {
			if (to > 0 && to < AX_MAX_PROCS && P->p[to].pid) {
				struct ax_preq q = { 'R', { ev }, -1, 0, 0, 0, 0 };
				struct ax_pans b;
				if (ax_ask(P, to, &q, held[j], 1, &b, NULL) == AX_HARNESS)
					goto fail;
			}
			close(held[j]);
		}
		held[j] = -1;
	}
	for (int j = 0; j < n; j++) {
		if (j != local && P->p[task[j]].group != 0)
			ax_fwd_done(P, &ops[j], out[j].res);
		if (ops[j].kind == 'X')
			out[j].vmpin = 0;
		else if (task[j] == 0)
			out[j].vmpin = ax_vmpin_kb(status);
		else
			out[j].vmpin = ax_pid_vmpin(P->p[task[j]].pid);
	}
	P->vmpin = 0;
	return 0;
fail:
	for (int j = 0; j < n; j++)
		if (held[j] >= 0)
			close(held[j]);
	return AX_HARNESS;
}

/* Teardown's exit steps: every live task but p0 exits, in fork/thread order. Returns 0 or the first harness code. */
AX_FN int ax_procs_exit_all(struct ax_procs *P)
{
	int res = 0;

	for (int i = 0; i < P->nforked; i++) {
		int k = P->fork_order[i];
		if (P->p[k].pid) {
			int e = ax_proc_exit(P, k);
			if (e && !res)
				res = e;
		}
	}
	return res;
}

/*
 * After a harness error: every task ends. p0's threads: the barrier is given up and their
 * sockets close (they return at EOF); joined. Children: SIGKILL to each process (all its
 * tasks), reaped. Nothing of the program keeps running.
 */
AX_FN void ax_procs_kill_all(struct ax_procs *P)
{
	if (P->bar) {
		__atomic_store_n(&P->bar->abort, P->gen, __ATOMIC_SEQ_CST);
		syscall(SYS_futex, &P->bar->go, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
	}
	pid_t tg[AX_MAX_PROCS];
	int ntg = 0;

	for (int k = 1; k < AX_MAX_PROCS; k++)
		if (P->p[k].pid && P->p[k].group != 0) {
			int seen = 0;
			for (int i = 0; i < ntg; i++)
				seen |= tg[i] == P->p[k].tgid;
			if (!seen) {
				tg[ntg++] = P->p[k].tgid;
				kill(P->p[k].tgid, SIGKILL); /* may be EPERM after a uid change: the closed sockets end it */
			}
			if (P->p[k].sock >= 0)
				close(P->p[k].sock);
			P->p[k].sock = -1;
		}
	for (int k = 1; k < AX_MAX_PROCS; k++)
		if (P->p[k].pid && P->p[k].group == 0)
			ax_reap(P, k);
	for (int i = 0; i < ntg; i++) {
		int st;
		while (waitpid(tg[i], &st, 0) < 0 && errno == EINTR)
			;
	}
	for (int k = 1; k < AX_MAX_PROCS; k++)
		P->p[k].pid = 0;
}

/* The barrier page goes (after every task has ended). */
AX_FN void ax_procs_fini(struct ax_procs *P)
{
	if (P->bar)
		munmap(P->bar, AX_PAGE_SIZE);
	P->bar = NULL;
}

#endif
