/*
 * auxprobe: the few things the koffi executor cannot do safely from JavaScript, as exports
 * of runtime/auxspec.h (the C runtime the C twin executor and the C reproducers use too):
 *
 * 1. Touching a page that may fault (touch, setAux, readUserPage): in a
 *    clone(CLONE_VM | CLONE_VFORK) child (a fork() child has no perf mapping: VM_DONTCOPY)
 *    or in-process under temporary SIGSEGV/SIGBUS handlers (touchMode "inproc").
 *    Returns 0, the signal number (SIGBUS, SIGSEGV), or negative for a harness failure.
 * 2. Reading VmPin from /proc/self/status with one pread.
 *
 * Built with gcc at first use (hwtest/host/native/build.ts) and loaded with koffi (libc.ts).
 */
#include "../../../runtime/auxspec.h"

int auxprobe_access(int kind, uint64_t addr, uint64_t a, uint64_t b, uint64_t *out)
{
	return ax_access_child(kind, addr, a, b, out);
}

int auxprobe_access_inproc(int kind, uint64_t addr, uint64_t a, uint64_t b, uint64_t *out)
{
	return ax_access_inproc(kind, addr, a, b, out);
}

long auxprobe_vmpin_kb(int fd) { return ax_vmpin_kb(fd); }

int auxprobe_signo(int which) { return which == 0 ? SIGBUS : SIGSEGV; }
