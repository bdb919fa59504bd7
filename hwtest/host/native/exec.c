/*
 * exec: the C twin of hwtest/host/executor.ts, for the benchmark (koffi executor vs C) and as
 * a cross-check (both must produce the same traces). The ops, page access, teardown and audit
 * are runtime/auxspec.h (shared with auxprobe.c and the C reproducers); this file only decodes
 * the op table and prints the trace.
 *
 * Usage: exec [--inproc] [--no-budget] [--cpus N] [--mlock-kb K] [--aux-type T] < batch
 * Input (one token-separated line per record; cexec.ts writes it):
 *   B <nprograms>
 *   P <nops> <memlockPages|-1 unlimited> <capIpcLock 0/1> <uid or 0 for none>
 *   H <nevs> <nmaps> <map handle index>...      (maps in order of introduction = handle order)
 *   then one line per op:
 *   the op's letter and numbers, as struct ax_op (runtime/auxspec.h: AX_OPEN ... AX_READ_USER_PAGE;
 *   prot is PROT_* bits), e.g. "o <ev> <pmu 0 sw|1 aux> <cpu> <inherit> <out ev|-1>"
 *   (events are dense indexes in order of introduction; maps are handle indexes)
 * Output: per program one line "T" followed by steps "o:<vmpin>" (ok), "e<errno>:<vmpin>",
 *   "s<signo>:<vmpin>", "p<do>,<ds>,<ah>,<ao>,<as>:<vmpin>"; then "A <vmpin> <budget|-1>" and
 *   one "W <message>" per kernel warning, or "X <reason>" when aborted. Finally "E <seconds>"
 *   (the batch, parsing excluded).
 */
#include "../../../runtime/auxspec.h"
#include <time.h>

struct prog {
  int nops, nevs, nmaps, cap, uid;
  long memlock;
  long *maps;
  struct ax_op *ops;
};

static int touch_inproc, no_budget, cpus = 1, aux_type = AX_NO_SUCH_PMU_TYPE;
static long mlock_kb = 516;
static int status_fd, kmsg_fd = -1, my_pid;

static long maxmap(struct prog *p) { long m = 0; for (int i = 0; i < p->nmaps; i++) if (p->maps[i] > m) m = p->maps[i]; return m; }

static void print_warning(const char *msg, void *out) { fprintf(out, "W %s\n", msg); }

static void run(struct prog *p, FILE *out) {
  int fds[p->nevs > 0 ? p->nevs : 1];
  long nm = maxmap(p) + 1;
  unsigned char *flip = malloc(nm);
  struct ax_run r;
  ax_run_init(&r, fds, p->nevs, flip, nm);
  r.inproc = touch_inproc;
  r.aux_type = aux_type;
  r.cap_ipc_lock = p->cap;
  int aborted = 0, switched = 0;
  struct rlimit orig;
  getrlimit(RLIMIT_MEMLOCK, &orig);
  if (geteuid() == 0) { ax_raise_memlock_hard(); getrlimit(RLIMIT_MEMLOCK, &orig); }
  fputc('T', out);
  if (ax_set_memlock(p->memlock)) { fprintf(out, "\nX cannot set RLIMIT_MEMLOCK\n"); goto restore; }
  if (ax_vmpin_kb(status_fd) != 0) { fprintf(out, "\nX VmPin is not 0 before the program\n"); goto restore; }
  if (p->uid) {
    if (ax_switch_uid(p->uid)) { fprintf(out, "\nX setresuid\n"); goto restore; }
    switched = 1;
    r.uid = p->uid;
  }
  if (ax_set_ipc_lock(p->cap)) { fprintf(out, "\nX capset\n"); aborted = 1; goto teardown; }
  for (int i = 0; i < p->nops; i++) {
    int res = ax_run_op(&r, &p->ops[i]);
    if (res == AX_HARNESS) { fprintf(out, "\nX %s\n", ax_harness_msg); aborted = 1; goto teardown; }
    long v = ax_vmpin_kb(status_fd);
    const uint64_t *pg = r.page;
    if (res > 0) fprintf(out, " e%d:%ld", res, v);
    else if (res < 0) fprintf(out, " s%d:%ld", -res, v);
    else if (p->ops[i].kind == 'g') fprintf(out, " p%llu,%llu,%llu,%llu,%llu:%ld", (unsigned long long)pg[0], (unsigned long long)pg[1], (unsigned long long)pg[2], (unsigned long long)pg[3], (unsigned long long)pg[4], v);
    else fprintf(out, " o:%ld", v);
  }
teardown:
  /* The protocol's order (spec/audit.ts teardownSteps): restore, both slots per map handle, strays, closes. */
  ax_td_restore(&r, mlock_kb);
  for (int i = 0; i < p->nmaps; i++) { ax_td_munmap(&r, p->maps[i], 0); ax_td_munmap(&r, p->maps[i], 1); }
  ax_td_strays(&r);
  for (int i = 0; i < p->nevs; i++) ax_td_close(&r, i);
  if (!aborted) {
    long v = ax_vmpin_kb(status_fd), budget = -1;
    if (switched && !no_budget) {
      if (ax_budget_prepare(v)) { fprintf(out, "\nX setrlimit or capset for the budget probe\n"); goto restore; }
      budget = ax_budget_probe(ax_budget_cap(mlock_kb, cpus));
      if (budget < 0) { fprintf(out, "\nX %s\n", ax_harness_msg); goto restore; }
      ax_set_ipc_lock(p->cap);
    }
    fprintf(out, "\nA %ld %ld\n", v, budget);
    ax_kmsg_warnings(kmsg_fd, my_pid, print_warning, out);
  }
restore:
  free(flip);
  if (switched) ax_back_to_root();
  setrlimit(RLIMIT_MEMLOCK, &orig);
}

int main(int argc, char **argv) {
  static char line[256];
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--inproc")) touch_inproc = 1;
    else if (!strcmp(argv[i], "--no-budget")) no_budget = 1;
    else if (!strcmp(argv[i], "--cpus") && i + 1 < argc) cpus = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--mlock-kb") && i + 1 < argc) mlock_kb = atol(argv[++i]);
    else if (!strcmp(argv[i], "--aux-type") && i + 1 < argc) aux_type = atoi(argv[++i]);
    else { fprintf(stderr, "exec: unknown argument %s\n", argv[i]); return 2; }
  }
  status_fd = open("/proc/thread-self/status", O_RDONLY | O_CLOEXEC);
  my_pid = getpid();
  if (geteuid() == 0) kmsg_fd = ax_kmsg_open();
  if (ax_kmsg_warnings(-1, 0, NULL, NULL) < 0) { fprintf(stderr, "exec: the kernel-warning pattern does not compile\n"); return 2; }
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
    p->ops = calloc(p->nops + 1, sizeof(struct ax_op));
    for (int j = 0; j < p->nops; j++) {
      if (!fgets(line, sizeof line, stdin)) { fprintf(stderr, "exec: short input\n"); return 2; }
      struct ax_op *o = &p->ops[j];
      o->kind = line[0];
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
