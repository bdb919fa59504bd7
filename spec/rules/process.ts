/**
 * Several processes and users (issue 13; the semantics: spec/notes/processes.md): fork, exit,
 * setuid, sendFd, and the accounting mechanism markers of refunds that land on another user
 * or mm than the one charged. Per-process EBADF reuses the ebadf rules of each op (the event
 * is seen through the op's process's fd table), the cross-task checks of perf_event_open and
 * perf_event_set_output are in open.ts and set-output.ts.
 */
import { ALL, CORE, V, rule } from "./types.ts";
import type { ExitCtx, ForkCtx, ParCtx, SendFdCtx, SetuidCtx, ThreadCtx } from "./context.ts";
import { otherwise, when, type Decision } from "./decision.ts";

export const PROCESS_RULES = [
  rule("fork.ok", ALL, undefined, "dup_mmap", "kernel/fork.c", V.all,
    "fork(): the child holds every fd of the parent (dup_fd) and copies of its VMAs except VM_DONTCOPY ones: perf_mmap sets VM_DONTCOPY on every perf VMA (core.c 5.10.262/6.1.192: vma->vm_flags |= VM_DONTCOPY | VM_DONTEXPAND | VM_DONTDUMP; 7.2.13/7.3.4: vm_flags_set), so only anonymous memory is copied; mm_init starts pinned_vm at 0; cred (user) and RLIMIT_MEMLOCK are the parent's"),
  rule("exit.ok", ALL, undefined, "do_exit", "kernel/exit.c, mm/mmap.c (exit_mmap)", V.all,
    "_exit(): exit_mm -> mmput -> exit_mmap closes every VMA in ascending address order (remove_vma: perf_mmap_close with vma->vm_mm = the exiting mm, then fput), then exit_files closes the fds; whatever pinned_vm the mm still holds goes with it"),
  rule("setuid.ok", ALL, undefined, "__sys_setresuid", "kernel/sys.c", V.all,
    "setresuid(U, U, saved): the process's cred (current_user(), the user perf charges) becomes U; mappings made before keep their charges (rb->mmap_user holds the creator)"),
  rule("setuid.eperm", ALL, "EPERM", "__sys_setresuid", "kernel/sys.c", V.all,
    "without CAP_SETUID (config.capSetuid false: a non-root host) a uid that is not one of the process's ruid/euid/suid is EPERM"),
  rule("sendfd.ok", ALL, undefined, "scm_fp_copy", "net/core/scm.c", V.all,
    "sendmsg(SCM_RIGHTS): the receiver gets an fd for the same event file (one per handle and process: a duplicate is closed at once)"),
  rule("sendfd.ebadf", ALL, "EBADF", "scm_fp_copy", "net/core/scm.c", V.all,
    "the sender holds no fd for the event: fget_raw(fd) fails, -EBADF"),
  rule("thread.ok", ALL, undefined, "copy_process", "kernel/fork.c", V.all,
    "clone(CLONE_VM|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD): copy_mm and copy_files take a reference on the caller's mm and files_struct instead of copying (mm, fds and signal->rlim shared with the process), copy_creds gives the task its own cred (a copy of the caller's: setresuid later changes only that task's); the new task is its own hw.target for perf_event_open(pid 0) (issue 14, spec/notes/races.md)"),
  rule("par.block", ALL, undefined, "-", "spec/notes/races.md", "-",
    "the par marker: the next ops are issued at once from their tasks (a barrier); the marker itself does nothing: {ok}, VmPin 0"),
  rule("par.block.release", ALL, undefined, "perf_mmap_close", CORE, V.all,
    "marker: the par block holds an op that can drop a perf mapping or an fd (munmap, mremap, exit, close), so perf_mmap_close() or perf_release() runs inside the race (the mechanism of the close-order races of spec/notes/races.md); a block of mmaps, opens and SET_OUTPUTs only does not fire it"),
  rule("par.linearizable", ALL, undefined, "-", "spec/notes/races.md", "-",
    "verdict rule: a par block's observed outcomes (and VmPins after it) must be those of some order of its ops, each syscall atomic (linearizability); it names the block when no order explains them"),
  rule("munmap.refund.other_user", ALL, undefined, "perf_mmap_close", CORE, V.all,
    "marker: an AUX area charged to current_user() of the process that mapped it is refunded to rb->mmap_user, the DATA buffer's creator (atomic_long_sub(aux_nr_pages - aux_mmap_locked, &mmap_user->locked_vm), 5.10.262; &mmap_user->perf_mlock 6.1.192, 7.3.4): when they differ the charged user leaks and the creator gains (conserve.locked_vm)"),
  rule("munmap.refund.other_mm", ALL, undefined, "perf_mmap_close", CORE, V.all,
    "marker: mmap_locked / aux_mmap_locked are refunded from the CLOSING VMA's mm (atomic64_sub(..., &vma->vm_mm->pinned_vm), 5.10.262, 6.1.192; perf_mmap_unaccount 7.3.4), charged to the mm that mapped first: when the last VMA closes in another mm its pinned_vm goes negative and the charged mm keeps the pages (conserve.pinned_vm)"),
] as const;

export const FORK_DECIDE: readonly Decision<ForkCtx>[] = [otherwise("fork.ok")];
export const EXIT_DECIDE: readonly Decision<ExitCtx>[] = [otherwise("exit.ok")];
export const SETUID_DECIDE: readonly Decision<SetuidCtx>[] = [
  when("setuid.eperm", (c) => c.u !== c.cur && c.s.cfg.capSetuid === false),
  otherwise("setuid.ok"),
];
export const THREAD_DECIDE: readonly Decision<ThreadCtx>[] = [otherwise("thread.ok")];
export const PAR_DECIDE: readonly Decision<ParCtx>[] = [otherwise("par.block")];
export const SENDFD_DECIDE: readonly Decision<SendFdCtx>[] = [
  when("sendfd.ebadf", (c) => !c.E.fd),
  otherwise("sendfd.ok"),
];
