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
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/uio.h>

#define AX_MAX_PROCS 4
#define AX_MAX_USERS 4

/* Process ops (struct ax_op letters beside auxspec.h's): the op's process is ax_procs_op's `proc`. */
#define AX_FORK(proc, from) { 'F', { proc, from } }
#define AX_EXIT(proc) { 'X', { proc } }
#define AX_SETUID(proc, user) { 'U', { proc, user } }
#define AX_SEND_FD(proc, to, ev) { 'S', { proc, to, ev } }

struct ax_proc {
	pid_t pid;   /* 0: not forked or exited */
	int sock;    /* p0's end of its socket; -1 for p0 */
};

struct ax_procs {
	struct ax_proc p[AX_MAX_PROCS];
	struct ax_run *r0;        /* p0's run state */
	unsigned uids[AX_MAX_USERS]; /* user handle -> uid */
	int root;                 /* saved uid 0: setuid switches (each user a fresh uid) */
	pid_t leader;             /* p0's pid */
	int close_in_child[8];    /* p0's fds a child closes (the caller's pipes); -1 unused */
	long vmpin;               /* VmPin of the last op's process */
	int fork_order[AX_MAX_PROCS], nforked;
};

/* Request and answer on a child's socket. */
struct ax_preq {
	char kind;
	long a[6];
	/* ops on a map handle (a[0]): the handle's base, 0 slot A / 1 slot B, as p0 keeps it for every
	 * process (spec/notes/processes.md: one base per handle; a toFresh mremap in any process flips
	 * it for all); -1 otherwise */
	int flip;
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
 */
static int ax_user_anchor[AX_MAX_USERS] = { -1, -1, -1, -1 };

AX_FN void ax_procs_anchor_users(struct ax_procs *P)
{
	uid_t r, e, sv;

	for (int i = 0; i < AX_MAX_USERS; i++)
		if (ax_user_anchor[i] >= 0) {
			close(ax_user_anchor[i]);
			ax_user_anchor[i] = -1;
		}
	if (!P->root || getresuid(&r, &e, &sv))
		return;
	for (int i = 0; i < AX_MAX_USERS; i++) {
		/* euid 0 through the saved uid 0, then the user's uid as real and effective */
		if (syscall(SYS_setresuid, -1, 0, -1) || syscall(SYS_setresuid, P->uids[i], P->uids[i], 0))
			break;
		ax_user_anchor[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);
	}
	syscall(SYS_setresuid, -1, 0, -1);
	syscall(SYS_setresuid, r, e, sv);
}

AX_FN void ax_procs_init(struct ax_procs *P, struct ax_run *r0, int root, unsigned uid0)
{
	memset(P, 0, sizeof(*P));
	P->r0 = r0;
	P->root = root;
	P->leader = getpid();
	P->p[0].pid = P->leader;
	P->p[0].sock = -1;
	for (int i = 1; i < AX_MAX_PROCS; i++)
		P->p[i].sock = -1;
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
	ax_procs_anchor_users(P);
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

/* Dies with p0: PR_SET_PDEATHSIG, then a check that p0 is still the parent. */
AX_FN void ax_child_arm(pid_t leader)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != leader)
		_exit(1);
}

/* A child's loop: ops from p0 until exit or EOF. Never returns. */
static __attribute__((noreturn)) void ax_child_serve(struct ax_procs *P, struct ax_run *r, int sock)
{
	int status = open("/proc/self/status", O_RDONLY | O_CLOEXEC);

	ax_child_arm(P->leader);
	for (;;) {
		struct ax_preq q;
		struct ax_pans a;
		int fd = -1, sendres = -1;
		ssize_t n = ax_recvmsg_fd(sock, &q, sizeof(q), &fd);

		if (n <= 0)
			_exit(0);
		memset(&a, 0, sizeof(a));
		switch (q.kind) {
		case 'X':
			_exit(0);
		case 'F': {
			/* fork here; the new child is p0's (CLONE_PARENT) and serves on the socket passed in */
			long pid;
			if (fd < 0) {
				a.res = ax_harness("fork request without a socket");
				break;
			}
			/* raw clone: glibc's fork() has no CLONE_PARENT. The new child's glibc still has the
			 * caller's TID cached (raise() would aim at the caller); it raises nothing itself. */
			pid = syscall(SYS_clone, CLONE_PARENT | SIGCHLD, 0, NULL, NULL, 0);
			if (pid == 0) {
				/* the new child: the same loop on its own socket, its own status file */
				close(sock);
				close(status);
				sock = fd;
				status = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
				ax_child_arm(P->leader);
				continue;
			}
			close(fd);
			if (pid < 0)
				a.res = errno;
			a.pid = pid;
			break;
		}
		case 'U':
			a.res = ax_setuid(r, P->root, (unsigned)q.a[0]);
			ax_child_arm(P->leader); /* a uid change clears PR_SET_PDEATHSIG */
			break;
		case 'S': {
			/* this process's fd for ev to p0, on the answer */
			int ev = (int)q.a[0];
			a.vmpin = ax_vmpin_kb(status);
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
		if (fd >= 0)
			close(fd);
		if (a.res == AX_HARNESS)
			snprintf(a.msg, sizeof(a.msg), "%s", ax_harness_msg);
		a.vmpin = ax_vmpin_kb(status);
		if (ax_sendmsg_fd(sock, &a, sizeof(a), -1, 0))
			_exit(1);
	}
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

/* Waits for child k to end (it was asked to exit or its socket closed). Returns 0 or a harness code. */
AX_FN int ax_reap(struct ax_procs *P, int k)
{
	int st = 0;
	pid_t w;

	if (P->p[k].sock >= 0)
		close(P->p[k].sock);
	P->p[k].sock = -1;
	do
		w = waitpid(P->p[k].pid, &st, 0);
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
	v = ax_vmpin_kb(fd);
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
		struct ax_preq q = { 'F', { 0 }, -1 };
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
	P->p[proc].sock = sv[0];
	P->fork_order[P->nforked++] = proc;
	P->vmpin = ax_pid_vmpin(pid);
	return 0;
}

/* exit of child `proc`: _exit(0) there, then wait for it (exit_mm and exit_files are done). */
AX_FN int ax_proc_exit(struct ax_procs *P, int proc)
{
	struct ax_preq q = { 'X', { 0 }, -1 };

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

	if (proc == 0) {
		int res = ax_setuid(P->r0, P->root, uid);
		P->vmpin = ax_vmpin_kb(status);
		return res;
	} else {
		struct ax_preq q = { 'U', { (long)uid }, -1 };
		struct ax_pans a;
		int res = ax_ask(P, proc, &q, -1, 0, &a, NULL);
		P->vmpin = a.vmpin;
		return res;
	}
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
			struct ax_preq q = { 'R', { ev }, -1 };
			res = ax_ask(P, to, &q, fd, 1, &a, NULL);
		}
		return res;
	}
	{
		struct ax_preq q = { 'S', { ev }, -1 };
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
		struct ax_preq q = { 'R', { ev }, -1 };
		struct ax_pans b;
		res = ax_ask(P, to, &q, fd, 1, &b, NULL);
		close(fd);
		return res == EBADF ? ax_harness("sendFd: passing the fd on failed") : res;
	}
}

/*
 * One op in process `proc` (auxspec.h ops and the process ops above). P->vmpin is the VmPin
 * of the op's process afterwards (fork: the child's; exit: 0). `status`: p0's /proc/self/status.
 */
AX_FN int ax_procs_op(struct ax_procs *P, int proc, const struct ax_op *o, int status)
{
	const long *a = o->a;

	switch (o->kind) {
	case 'F': return ax_proc_fork(P, (int)a[0], (int)a[1]);
	case 'X': return ax_proc_exit(P, (int)a[0]);
	case 'U': return ax_proc_setuid(P, (int)a[0], (int)a[1], status);
	case 'S': return ax_proc_send_fd(P, (int)a[0], (int)a[1], (int)a[2], status);
	}
	if (proc == 0) {
		int res = ax_run_op(P->r0, o);
		P->vmpin = ax_vmpin_kb(status);
		return res;
	}
	if (proc < 0 || proc >= AX_MAX_PROCS || !P->p[proc].pid)
		return ax_harness("op in a process that is not alive");
	{
		struct ax_preq q = { o->kind, { a[0], a[1], a[2], a[3], a[4], a[5] }, -1 };
		struct ax_pans ans;
		int res;

		if (ax_is_map_op(o->kind) && a[0] >= 0 && a[0] < P->r0->nmap)
			q.flip = P->r0->flip[a[0]];
		res = ax_ask(P, proc, &q, -1, 0, &ans, NULL);
		if (ax_is_map_op(o->kind) && a[0] >= 0 && a[0] < P->r0->nmap) {
			if (o->kind == 'm')
				P->r0->flip[a[0]] = 0;
			else if (o->kind == 'r' && a[5] && res == 0)
				P->r0->flip[a[0]] = !P->r0->flip[a[0]];
		}
		P->vmpin = ans.vmpin;
		memcpy(P->r0->page, ans.page, sizeof(ans.page));
		return res;
	}
}

/* Teardown's exit steps: every live child exits, in fork order. Returns 0 or the first harness code. */
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

/* After a harness error: close every child's socket (it exits at EOF) and wait for each. */
AX_FN void ax_procs_kill_all(struct ax_procs *P)
{
	for (int k = 1; k < AX_MAX_PROCS; k++)
		if (P->p[k].pid) {
			kill(P->p[k].pid, SIGKILL); /* may be EPERM after a uid change: the closed socket ends it */
			ax_reap(P, k);
		}
}

#endif
