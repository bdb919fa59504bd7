/*
 * auxprobe: the few things the koffi executor cannot do safely from JavaScript.
 *
 * 1. Touching a page that may fault (touch, setAux, readUserPage). A plain fork() child
 *    cannot do it: perf_mmap() marks every buffer VMA VM_DONTCOPY (kernel/events/core.c,
 *    perf_mmap(), all eras: vm_flags_set(vma, VM_DONTCOPY | VM_DONTEXPAND | VM_DONTDUMP)),
 *    so a forked child simply has no mapping there and every access is SIGSEGV. Instead the
 *    child is created with clone(CLONE_VM | CLONE_VFORK): it shares this process's mm (same
 *    VMAs, same pinned_vm), is its own thread group (a fatal signal stays in it; since 5.16
 *    coredumps are limited to one thread group as well), and the caller is suspended until
 *    it exits. The child installs its own SIGSEGV/SIGBUS handlers (its sighand is a copy,
 *    CLONE_SIGHAND is not set) that _exit with 100 + signo, so no core dump is attempted.
 *    The child does only async-signal-safe things: sigaction, memory access, _exit.
 * 2. Reading VmPin from /proc/self/status with one pread (seq_file regenerates at offset 0).
 *
 * Built with gcc at first use (hwtest/host/native/build.ts) and loaded with koffi.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include "vmpin.h"

enum { K_READ = 0, K_WRITE = 1, K_SETAUX = 2, K_READPAGE = 3 };

struct req {
  int kind;
  volatile unsigned char *addr;
  uint64_t a, b;
  uint64_t *out;
};

static void on_fault(int sig) { syscall(SYS_exit_group, 100 + sig); }

static int child_fn(void *arg) {
  struct req *r = arg;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_fault;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGSEGV, &sa, NULL) || sigaction(SIGBUS, &sa, NULL)) syscall(SYS_exit_group, 90);
  sigset_t un;
  sigemptyset(&un);
  sigaddset(&un, SIGSEGV);
  sigaddset(&un, SIGBUS);
  sigprocmask(SIG_UNBLOCK, &un, NULL);
  switch (r->kind) {
    case K_READ: { unsigned char v = *r->addr; (void)v; break; }
    case K_WRITE: { unsigned char v = *r->addr; *r->addr = v; break; }
    case K_SETAUX: {
      volatile uint64_t *p = (volatile uint64_t *)r->addr;
      p[1072 / 8] = r->a; /* aux_offset */
      p[1080 / 8] = r->b; /* aux_size */
      break;
    }
    case K_READPAGE: {
      volatile uint64_t *p = (volatile uint64_t *)r->addr;
      r->out[0] = p[1040 / 8]; /* data_offset */
      r->out[1] = p[1048 / 8]; /* data_size */
      r->out[2] = p[1056 / 8]; /* aux_head */
      r->out[3] = p[1072 / 8]; /* aux_offset */
      r->out[4] = p[1080 / 8]; /* aux_size */
      break;
    }
    default: syscall(SYS_exit_group, 91);
  }
  syscall(SYS_exit_group, 0);
  return 0;
}

#define CHILD_STACK (64 * 1024)
static char *child_stack;

/*
 * Runs one access in a CLONE_VM child. Returns 0 when the access completed, the signal
 * number (SIGBUS, SIGSEGV) when it faulted, or a negative value: -errno when clone or
 * waitpid failed, -1000 - code for an unexpected exit code, -2000 - sig for death by
 * another signal.
 */
int auxprobe_access(int kind, uint64_t addr, uint64_t a, uint64_t b, uint64_t *out) {
  if (!child_stack) {
    void *s = mmap(NULL, CHILD_STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (s == MAP_FAILED) return -errno;
    child_stack = s;
  }
  struct req r = { kind, (volatile unsigned char *)(uintptr_t)addr, a, b, out };
  pid_t pid = clone(child_fn, child_stack + CHILD_STACK, CLONE_VM | CLONE_VFORK | SIGCHLD, &r);
  if (pid < 0) return -errno;
  int status = 0;
  for (;;) {
    pid_t w = waitpid(pid, &status, 0);
    if (w == pid) break;
    if (w < 0 && errno == EINTR) continue;
    return -errno;
  }
  if (WIFEXITED(status)) {
    int code = WEXITSTATUS(status);
    if (code == 0) return 0;
    if (code == 100 + SIGBUS) return SIGBUS;
    if (code == 100 + SIGSEGV) return SIGSEGV;
    return -1000 - code;
  }
  if (WIFSIGNALED(status)) return -2000 - WTERMSIG(status);
  return -3000;
}

/* VmPin in kB from an open /proc/self/status fd (vmpin.h). */
long auxprobe_vmpin_kb(int fd) { return vmpin_kb_from(fd); }

int auxprobe_signo(int which) { return which == 0 ? SIGBUS : SIGSEGV; }

/*
 * The same accesses without a child: SIGSEGV/SIGBUS handlers are swapped in around the
 * access and a fault siglongjmps back. About 30x cheaper than the clone child, but for a
 * few microseconds this thread's process-wide handlers are ours (a fault in another thread
 * of the process in that window would be misattributed), so the executor uses it only when
 * asked (touchMode "inproc").
 */
#include <setjmp.h>
static sigjmp_buf inproc_jb;
static volatile int inproc_armed;

static void on_fault_inproc(int sig) {
  if (inproc_armed) { inproc_armed = 0; siglongjmp(inproc_jb, sig); }
  signal(sig, SIG_DFL);
  raise(sig);
}

int auxprobe_access_inproc(int kind, uint64_t addr, uint64_t a, uint64_t b, uint64_t *out) {
  struct sigaction sa, old_segv, old_bus;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_fault_inproc;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_NODEFER;
  if (sigaction(SIGSEGV, &sa, &old_segv)) return -errno;
  if (sigaction(SIGBUS, &sa, &old_bus)) { int e = errno; sigaction(SIGSEGV, &old_segv, NULL); return -e; }
  int rc;
  int sig = sigsetjmp(inproc_jb, 1);
  if (sig == 0) {
    inproc_armed = 1;
    volatile unsigned char *p8 = (volatile unsigned char *)(uintptr_t)addr;
    volatile uint64_t *p64 = (volatile uint64_t *)(uintptr_t)addr;
    switch (kind) {
      case K_READ: { unsigned char v = *p8; (void)v; break; }
      case K_WRITE: { unsigned char v = *p8; *p8 = v; break; }
      case K_SETAUX: p64[1072 / 8] = a; p64[1080 / 8] = b; break;
      case K_READPAGE:
        out[0] = p64[1040 / 8]; out[1] = p64[1048 / 8]; out[2] = p64[1056 / 8];
        out[3] = p64[1072 / 8]; out[4] = p64[1080 / 8];
        break;
      default: inproc_armed = 0; rc = -1091; goto restore;
    }
    inproc_armed = 0;
    rc = 0;
  } else {
    rc = sig;
  }
restore:
  sigaction(SIGSEGV, &old_segv, NULL);
  sigaction(SIGBUS, &old_bus, NULL);
  return rc;
}
