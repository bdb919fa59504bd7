/*
 * exec: the C twin of hwtest/host/executor.ts, for the benchmark (koffi executor vs C) and as
 * a cross-check (both must produce the same traces). Same syscalls, same order, same teardown
 * and audit; see executor.ts for the reasons behind each choice.
 *
 * Usage: exec [--inproc] [--no-budget] [--cpus N] [--mlock-kb K] [--aux-type T] < batch
 * Input (one token-separated line per record; cexec.ts writes it):
 *   B <nprograms>
 *   P <nops> <memlockPages|-1 unlimited> <capIpcLock 0/1> <uid or 0 for none>
 *   H <nevs> <nmaps> <map handle index>...      (maps in order of introduction)
 *   then one line per op:
 *   o <ev> <pmu 0 sw|1 aux> <cpu> <inherit> <out ev|-1>
 *   c <ev> | m <map> <ev> <pages> <pgoff> <prot> <shared> | u <map> <off> <pages>
 *   r <map> <off> <old> <new> <mayMove> <toFresh> | p <map> <off> <pages> <prot>
 *   f <map> <off> <pages> | a <map> <offPages> <sizePages> | s <ev> <target ev|-2 none>
 *   l <pages|-1> | t <map> <page> <write> | g <map>
 *   (events are dense indexes in order of introduction; maps are handle indexes)
 * Output: per program one line "T" followed by steps "o:<vmpin>" (ok), "e<errno>:<vmpin>",
 *   "s<signo>:<vmpin>", "p<do>,<ds>,<ah>,<ao>,<as>:<vmpin>"; then "A <vmpin> <budget|-1>" or
 *   "X <reason>" when aborted. Finally "E <seconds>" (the batch, parsing excluded).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <linux/capability.h>
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
#include <fcntl.h>
#include <time.h>
#include <unistd.h>
#include "vmpin.h"

#define PAGE 4096UL
#define SLOT_PAGES 8192UL
#define SLOT_BYTES (SLOT_PAGES * PAGE)
#define SLOT_BASE 0x600000000000UL
#define NO_SUCH_PMU_TYPE 0x7ffffff0
#define ATTR_SIZE 136
#define SET_OUTPUT 0x2405
#define FLAG_FD_OUTPUT 2
#define FLAG_FD_CLOEXEC 8
#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

enum { K_READ = 0, K_WRITE = 1, K_SETAUX = 2, K_READPAGE = 3 };

struct op { char k; long a[6]; };
struct prog {
  int nops, nevs, nmaps, cap, uid;
  long memlock;
  long *maps;
  struct op *ops;
};

static int touch_inproc, no_budget, cpus = 1, aux_type = NO_SUCH_PMU_TYPE;
static long mlock_kb = 516;
static int status_fd;

/* ---- page access (same as auxprobe.c) ---- */
struct req { int kind; volatile unsigned char *addr; uint64_t a, b; uint64_t *out; };
static void on_fault(int sig) { syscall(SYS_exit_group, 100 + sig); }
static void do_access(struct req *r) {
  volatile uint64_t *p = (volatile uint64_t *)r->addr;
  switch (r->kind) {
    case K_READ: { unsigned char v = *r->addr; (void)v; break; }
    case K_WRITE: { unsigned char v = *r->addr; *r->addr = v; break; }
    case K_SETAUX: p[1072 / 8] = r->a; p[1080 / 8] = r->b; break;
    case K_READPAGE: r->out[0] = p[1040 / 8]; r->out[1] = p[1048 / 8]; r->out[2] = p[1056 / 8]; r->out[3] = p[1072 / 8]; r->out[4] = p[1080 / 8]; break;
  }
}
static int child_fn(void *arg) {
  struct sigaction sa; memset(&sa, 0, sizeof sa); sa.sa_handler = on_fault; sigemptyset(&sa.sa_mask);
  sigaction(SIGSEGV, &sa, NULL); sigaction(SIGBUS, &sa, NULL);
  do_access(arg);
  syscall(SYS_exit_group, 0);
  return 0;
}
static char child_stack[64 * 1024] __attribute__((aligned(16)));
static sigjmp_buf jb;
static volatile int armed;
static void on_fault_inproc(int sig) { if (armed) { armed = 0; siglongjmp(jb, sig); } signal(sig, SIG_DFL); raise(sig); }
static int access_mem(int kind, uint64_t addr, uint64_t a, uint64_t b, uint64_t *out) {
  struct req r = { kind, (volatile unsigned char *)(uintptr_t)addr, a, b, out };
  if (touch_inproc) {
    struct sigaction sa, o1, o2; memset(&sa, 0, sizeof sa); sa.sa_handler = on_fault_inproc; sa.sa_flags = SA_NODEFER; sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &o1); sigaction(SIGBUS, &sa, &o2);
    int sig = sigsetjmp(jb, 1);
    if (!sig) { armed = 1; do_access(&r); armed = 0; }
    sigaction(SIGSEGV, &o1, NULL); sigaction(SIGBUS, &o2, NULL);
    return sig;
  }
  pid_t pid = clone(child_fn, child_stack + sizeof child_stack, CLONE_VM | CLONE_VFORK | SIGCHLD, &r);
  if (pid < 0) return -errno;
  int st;
  while (waitpid(pid, &st, 0) < 0) if (errno != EINTR) return -errno;
  if (WIFEXITED(st)) { int c = WEXITSTATUS(st); return c == 0 ? 0 : c == 100 + SIGBUS ? SIGBUS : c == 100 + SIGSEGV ? SIGSEGV : -1000 - c; }
  return -2000;
}

static long vmpin(void) { return vmpin_kb_from(status_fd); }

static unsigned char attr[ATTR_SIZE];
static int perf_open(int type, uint64_t config, int inherit, int cpu, int group, unsigned long flags) {
  memset(attr, 0, sizeof attr);
  *(uint32_t *)(attr + 0) = type;
  *(uint32_t *)(attr + 4) = ATTR_SIZE;
  *(uint64_t *)(attr + 8) = config;
  *(uint64_t *)(attr + 40) = 1 | (inherit ? 2 : 0) | (1 << 5);
  return syscall(SYS_perf_event_open, attr, 0, cpu, group, flags);
}

static int set_ipc_lock(int want) {
  struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
  struct __user_cap_data_struct d[2];
  if (syscall(SYS_capget, &h, d)) return -1;
  int has = (d[0].effective >> CAP_IPC_LOCK) & 1;
  if (has == want) return 0;
  if (want) d[0].effective |= 1u << CAP_IPC_LOCK; else d[0].effective &= ~(1u << CAP_IPC_LOCK);
  return syscall(SYS_capset, &h, d) ? -1 : 0;
}

static rlim_t hard_limit;
static int set_memlock(long pages) {
  struct rlimit r = { pages < 0 ? RLIM_INFINITY : (rlim_t)pages * PAGE, hard_limit };
  return setrlimit(RLIMIT_MEMLOCK, &r) ? errno : 0;
}

static long probe_budget(long cap) {
  void *maps[64]; size_t lens[64]; int fds[64]; int n = 0, spare = -1; long pages = 0;
  int k = 0; while ((1L << (k + 1)) + 1 <= cap) k++;
  int err = 0;
  for (; k >= -1 && !err; k--) {
    long dp = k >= 0 ? 1L << k : 0;
    while (pages + dp + 1 <= cap && n < 64) {
      if (spare < 0) { spare = perf_open(1, 9, 0, -1, -1, FLAG_FD_CLOEXEC); if (spare < 0) { err = 1; break; } }
      size_t len = (dp + 1) * PAGE;
      void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, spare, 0);
      if (p == MAP_FAILED) { if (errno != EPERM) err = 1; break; }
      maps[n] = p; lens[n] = len; fds[n] = spare; n++; spare = -1; pages += dp + 1;
    }
  }
  for (int i = 0; i < n; i++) { munmap(maps[i], lens[i]); close(fds[i]); }
  if (spare >= 0) close(spare);
  return err ? -2 : pages;
}

static unsigned long slot_a(long m) { return SLOT_BASE + (unsigned long)m * 2 * SLOT_BYTES; }
static const int prots[] = { PROT_NONE, PROT_READ, PROT_READ | PROT_WRITE, PROT_READ | PROT_EXEC, PROT_READ | PROT_WRITE | PROT_EXEC };

static char line[256];
static long maxmap(struct prog *p) { long m = 0; for (int i = 0; i < p->nmaps; i++) if (p->maps[i] > m) m = p->maps[i]; return m; }

static void run(struct prog *p, FILE *out) {
  int fds[p->nevs > 0 ? p->nevs : 1];
  for (int i = 0; i < p->nevs; i++) fds[i] = -1;
  long nm = maxmap(p) + 1;
  unsigned long *bases = malloc(nm * sizeof *bases);
  for (long i = 0; i < nm; i++) bases[i] = slot_a(i);
  int aborted = 0;
  unsigned long strays[256][2]; int nstray = 0;
  int switched = 0;
  struct rlimit orig; getrlimit(RLIMIT_MEMLOCK, &orig);
  hard_limit = orig.rlim_max;
  if (geteuid() == 0 && hard_limit != RLIM_INFINITY) {
    struct rlimit r = { orig.rlim_cur, RLIM_INFINITY };
    if (!setrlimit(RLIMIT_MEMLOCK, &r)) hard_limit = RLIM_INFINITY;
  }
  fputc('T', out);
  if (set_memlock(p->memlock)) { fprintf(out, "\nX cannot set RLIMIT_MEMLOCK\n"); goto restore; }
  if (vmpin() != 0) { fprintf(out, "\nX VmPin is not 0 before the program\n"); goto restore; }
  if (p->uid) {
    if (syscall(SYS_setresgid, p->uid, p->uid, 0) || syscall(SYS_setresuid, p->uid, p->uid, 0)) { fprintf(out, "\nX setresuid\n"); goto restore; }
    switched = 1;
  }
  if (set_ipc_lock(p->cap)) { fprintf(out, "\nX capset\n"); aborted = 1; goto teardown; }
  for (int i = 0; i < p->nops; i++) {
    struct op *o = &p->ops[i];
    long *a = o->a;
    long r = 0; int e = 0, sig = 0; int page = 0; uint64_t pg[5];
    switch (o->k) {
      case 'o': {
        int g = a[4] >= 0 ? fds[a[4]] : -1;
        r = perf_open(a[1] ? aux_type : 1, a[1] ? 0 : 9, a[3], a[2], g, FLAG_FD_CLOEXEC | (a[4] >= 0 ? FLAG_FD_OUTPUT : 0));
        if (r < 0) { e = errno; fds[a[0]] = -1; } else fds[a[0]] = r;
        break;
      }
      case 'c': { int fd = fds[a[0]]; fds[a[0]] = -1; if (close(fd)) e = errno; break; }
      case 'm': {
        unsigned long addr = slot_a(a[0]); bases[a[0]] = addr;
        void *q = mmap((void *)addr, a[2] * PAGE, prots[a[4]], (a[5] ? MAP_SHARED : MAP_PRIVATE) | MAP_FIXED_NOREPLACE, fds[a[1]], a[3] * PAGE);
        if (q == MAP_FAILED) e = errno;
        else if ((unsigned long)q != addr) { strays[nstray][0] = (unsigned long)q; strays[nstray++][1] = a[2] * PAGE; fprintf(out, "\nX mmap landed elsewhere\n"); aborted = 1; goto teardown; }
        break;
      }
      case 'u': if (munmap((void *)(bases[a[0]] + a[1] * PAGE), a[2] * PAGE)) e = errno; break;
      case 'r': {
        unsigned long b = bases[a[0]], from = b + a[1] * PAGE;
        unsigned long other = b == slot_a(a[0]) ? slot_a(a[0]) + SLOT_BYTES : slot_a(a[0]);
        int flags = a[4] ? MREMAP_MAYMOVE : 0; unsigned long to = 0;
        if (a[5]) { flags |= MREMAP_MAYMOVE | MREMAP_FIXED; to = other + a[1] * PAGE; }
        void *q = mremap((void *)from, a[2] * PAGE, a[3] * PAGE, flags, (void *)to);
        if (q == MAP_FAILED) e = errno;
        else if (a[5]) bases[a[0]] = other;
        else if ((unsigned long)q != from && nstray < 256) { strays[nstray][0] = (unsigned long)q; strays[nstray++][1] = a[3] * PAGE; }
        break;
      }
      case 'p': if (mprotect((void *)(bases[a[0]] + a[1] * PAGE), a[2] * PAGE, prots[a[3]])) e = errno; break;
      case 'f':
        if (mmap((void *)(bases[a[0]] + a[1] * PAGE), a[2] * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED) e = errno;
        break;
      case 'a': sig = access_mem(K_SETAUX, bases[a[0]], a[1] * PAGE, a[2] * PAGE, NULL); break;
      case 's': {
        unsigned long arg = a[1] == -2 ? (unsigned long)-1 : fds[a[1]] < 0 ? 0xffffffffUL : (unsigned long)fds[a[1]];
        if (syscall(SYS_ioctl, fds[a[0]], SET_OUTPUT, arg)) e = errno;
        break;
      }
      case 'l': e = set_memlock(a[0]); break;
      case 't': sig = access_mem(a[2] ? K_WRITE : K_READ, bases[a[0]] + a[1] * PAGE, 0, 0, NULL); break;
      case 'g': sig = access_mem(K_READPAGE, bases[a[0]], 0, 0, pg); page = sig == 0; break;
      default: fprintf(out, "\nX bad op %c\n", o->k); aborted = 1; goto teardown;
    }
    if (sig < 0) { fprintf(out, "\nX access failed %d\n", sig); aborted = 1; goto teardown; }
    long v = vmpin();
    if (e) fprintf(out, " e%d:%ld", e, v);
    else if (sig) fprintf(out, " s%d:%ld", sig, v);
    else if (page) fprintf(out, " p%llu,%llu,%llu,%llu,%llu:%ld", (unsigned long long)pg[0], (unsigned long long)pg[1], (unsigned long long)pg[2], (unsigned long long)pg[3], (unsigned long long)pg[4], v);
    else fprintf(out, " o:%ld", v);
  }
  {
  teardown:;
    for (int i = 0; i < p->nmaps; i++) { munmap((void *)slot_a(p->maps[i]), SLOT_BYTES); munmap((void *)(slot_a(p->maps[i]) + SLOT_BYTES), SLOT_BYTES); }
    for (int i = 0; i < nstray; i++) munmap((void *)strays[i][0], strays[i][1]);
    for (int i = 0; i < p->nevs; i++) if (fds[i] >= 0) { close(fds[i]); fds[i] = -1; }
    long v = vmpin();
    long budget = -1;
    if (switched && !no_budget) {
      set_ipc_lock(0);
      set_memlock(v > 0 ? (v + 3) / 4 : 0);
      budget = probe_budget((mlock_kb >> 2) * cpus + 16);
      set_ipc_lock(p->cap);
    }
    if (!aborted) fprintf(out, "\nA %ld %ld\n", v, budget);
  }
restore:
  free(bases);
  if (switched) { syscall(SYS_setresuid, 0, 0, 0); syscall(SYS_setresgid, 0, 0, 0); }
  setrlimit(RLIMIT_MEMLOCK, &orig);
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--inproc")) touch_inproc = 1;
    else if (!strcmp(argv[i], "--no-budget")) no_budget = 1;
    else if (!strcmp(argv[i], "--cpus") && i + 1 < argc) cpus = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--mlock-kb") && i + 1 < argc) mlock_kb = atol(argv[++i]);
    else if (!strcmp(argv[i], "--aux-type") && i + 1 < argc) aux_type = atoi(argv[++i]);
    else { fprintf(stderr, "exec: unknown argument %s\n", argv[i]); return 2; }
  }
  status_fd = open("/proc/thread-self/status", O_RDONLY | O_CLOEXEC);
  int np = 0;
  if (!fgets(line, sizeof line, stdin) || sscanf(line, "B %d", &np) != 1) { fprintf(stderr, "exec: expected B <n>\n"); return 2; }
  struct prog *ps = calloc(np > 0 ? np : 1, sizeof *ps);
  for (int i = 0; i < np; i++) {
    struct prog *p = &ps[i];
    if (!fgets(line, sizeof line, stdin) || sscanf(line, "P %d %ld %d %d", &p->nops, &p->memlock, &p->cap, &p->uid) != 4) { fprintf(stderr, "exec: bad P line %d\n", i); return 2; }
    char *s = fgets(line, sizeof line, stdin);
    int off = 0;
    if (!s || sscanf(line, "H %d %d%n", &p->nevs, &p->nmaps, &off) != 2) { fprintf(stderr, "exec: bad H line\n"); return 2; }
    p->maps = calloc(p->nmaps + 1, sizeof(long));
    char *q = line + off;
    for (int j = 0; j < p->nmaps; j++) p->maps[j] = strtol(q, &q, 10);
    p->ops = calloc(p->nops + 1, sizeof(struct op));
    for (int j = 0; j < p->nops; j++) {
      if (!fgets(line, sizeof line, stdin)) { fprintf(stderr, "exec: short input\n"); return 2; }
      struct op *o = &p->ops[j];
      o->k = line[0];
      char *t = line + 1;
      for (int k = 0; k < 6; k++) o->a[k] = strtol(t, &t, 10);
    }
  }
  char *obuf = malloc(1 << 24);
  FILE *out = fmemopen(obuf, 1 << 24, "w");
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (int i = 0; i < np; i++) run(&ps[i], out);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  fflush(out);
  fwrite(obuf, 1, ftell(out), stdout);
  printf("E %.6f\n", (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9);
  return 0;
}
