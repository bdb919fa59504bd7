/**
 * Processes (spec/notes/processes.md): fork(2) (kernel/fork.c copy_process(): dup_fd(),
 * dup_mm() -> dup_mmap()), _exit(2) (kernel/exit.c do_exit(): exit_mm() -> mmput() ->
 * exit_mmap(), then exit_files()), setresuid(2) (kernel/sys.c: commit_creds(), the new
 * cred->user), and SCM_RIGHTS (net/core/scm.c scm_detach_fds() -> receive_fd() ->
 * fd_install()).
 */
import { FilesStruct, MmStruct, SignalStruct, TaskStruct, type PageId } from "./objects.ts";
import type { Outcome } from "../spec/program.ts";
import { handleIndex } from "../spec/program.ts";
import { OK, errno, EBADF, EPERM } from "./common.ts";
import { closeFd, fdInstall } from "./perf-core.ts";
import { removeVmaClose } from "./mm.ts";
import type { Kernel } from "./kernel.ts";

/** fork() in current (the parent `from`): the child `pid` gets copies of the fd table and of
 *  the mm, the parent's cred (user), RLIMIT_MEMLOCK and capabilities. */
export function sysFork(k: Kernel, pid: string): Outcome {
  const parent = k.current;
  const child = new TaskStruct(pid, dupMm(k, parent.mm!), dupFd(parent.files!), parent.user, new SignalStruct(parent.memlock));
  k.tasks.set(pid, child);
  return OK;
}

/** clone(CLONE_VM|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD) in current (`from`): a new task
 *  `pid` sharing current's mm (mmget()), files (atomic_inc(&files->count)) and signal (rlimit),
 *  with current's cred (copy_creds(): the same user; a later setresuid in either task changes
 *  that task's cred only). Its own task_struct: events it opens with pid 0 monitor it
 *  (hw.target), spec/notes/races.md "Tasks". */
export function sysThread(k: Kernel, pid: string): Outcome {
  const parent = k.current;
  const t = new TaskStruct(pid, parent.mm!, parent.files!, parent.user, parent.signal);
  k.tasks.set(pid, t);
  return OK;
}

/** The other live tasks sharing `task`'s mm (the threads of its process). */
export function otherUsersOfMm(k: Kernel, task: TaskStruct): boolean {
  for (const t of k.tasks.values()) if (t !== task && t.alive && t.mm !== null && t.mm === task.mm) return true;
  return false;
}

/** dup_fd(): the child's table holds every file the parent's does (get_file() each). */
export function dupFd(old: FilesStruct): FilesStruct {
  const files = new FilesStruct();
  for (const [h, e] of old.fdt) {
    files.fdt.set(h, e);
    e.fdRefs++;
  }
  return files;
}

/** dup_mm(): a new mm (mm_init(): `atomic64_set(&mm->pinned_vm, 0)`, kernel/fork.c), then
 *  dup_mmap() copies every VMA except the VM_DONTCOPY ones ("if (mpnt->vm_flags &
 *  VM_DONTCOPY) { ... continue; }", 7.2.13 mm/mmap.c dup_mmap()): perf_mmap() sets
 *  VM_DONTCOPY on every perf VMA (5.10.262 / 6.1.192 `vma->vm_flags |= VM_DONTCOPY |
 *  VM_DONTEXPAND | VM_DONTDUMP`, 7.2.13 vm_flags_set()), and splits, mremap and mprotect keep
 *  it, so no perf VMA is copied: no perf_mmap_open(), no count or charge changes. Anonymous
 *  VMAs are copied with their pages (copy_page_range(); private pages are copy-on-write: the
 *  child sees the contents at fork time, later writes stay on their side) and get anon_vmas
 *  of their own (anon_vma_fork(): VMAs that shared one in the parent share one in the child). */
export function dupMm(k: Kernel, old: MmStruct): MmStruct {
  const mm = new MmStruct();
  const anon = new Map<number, number>();
  for (const v of old.vmas) {
    if (v.event) continue; // VM_DONTCOPY
    const nv = v.dup();
    nv.vmMm = mm;
    if (v.anonVma !== 0) {
      let id = anon.get(v.anonVma);
      if (id === undefined) { id = ++k.anonVmaSeq; anon.set(v.anonVma, id); }
      nv.anonVma = id;
    }
    mm.vmas.push(nv); // old.vmas is sorted, and so is the copy
    for (const [a, p] of old.ptes) {
      if (a >= v.start && a < v.end) mm.ptes.set(a, copyPage(p));
    }
  }
  return mm;
}

function copyPage(p: PageId): PageId {
  return p === 0 ? 0 : { ...p };
}

/** do_exit() of `task` (never p0): exit_mm() -> mmput() -> exit_mmap(), then exit_files().
 *  The deferred __fput()s (task work) run when the syscall returns (kernel.ts). */
export function doExit(k: Kernel, task: TaskStruct): void {
  task.alive = false;
  // A task of a process with other live tasks: exit_mm()'s mmput() and exit_files()'s
  // put_files_struct() drop a reference each, not the last (spec/notes/races.md "Tasks").
  if (otherUsersOfMm(k, task)) {
    task.mm = null;
    task.files = null;
    return;
  }
  exitMm(k, task);
  exitFiles(k, task);
}

/** exit_mm(): the task drops its mm; the last user runs exit_mmap() and the mm goes, with
 *  whatever pinned_vm it still holds. */
export function exitMm(k: Kernel, task: TaskStruct): void {
  const mm = task.mm!;
  exitMmap(k, mm);
  task.mm = null;
}

/** exit_mmap() (6.1.192 mm/mmap.c): unmap_vmas() over the whole address space, then
 *  remove_vma() of every VMA in ascending address order (mas_find()): vm_ops->close() with
 *  vma->vm_mm = this mm (perf_mmap_close(): pinned_vm refunds come off this mm), then fput(). */
export function exitMmap(k: Kernel, mm: MmStruct): void {
  const vmas = mm.vmas.slice();
  mm.vmas.length = 0;
  mm.ptes.clear(); // unmap_vmas()
  for (const v of vmas) removeVmaClose(k, v);
}

/** exit_files() -> put_files_struct() -> close_files(): every fd closed, in ascending fd
 *  order (the handles' order here, spec/notes/processes.md). */
export function exitFiles(k: Kernel, task: TaskStruct): void {
  const files = task.files!;
  const hs = [...files.fdt.keys()].sort((a, b) => handleIndex(a) - handleIndex(b));
  for (const h of hs) closeFd(k, files, h, files.fdt.get(h)!);
  task.files = null;
}

/** setresuid(U, U, saved) in current: without CAP_SETUID (config.capSetuid false) a switch to
 *  another uid is EPERM (__sys_setresuid(): the ids must be among the current ones); else
 *  commit_creds() of a cred whose ->user is the new uid's user_struct (alloc_uid()). Existing
 *  mappings keep their charges (rb->mmap_user was taken at creation). */
export function sysSetresuid(k: Kernel, uid: string): Outcome {
  const task = k.current;
  if (task.user.uid === uid) return OK;
  if (k.config.capSetuid === false) return errno(EPERM);
  task.user = k.userFor(uid);
  return OK;
}

/** sendmsg(SCM_RIGHTS) from current to `to`, received at once: EBADF when current holds no fd
 *  for the handle (scm_fp_copy(): fget() fails); else `to` holds one (receive_fd() ->
 *  fd_install()); where it already holds one, the duplicate is closed at once (the harness
 *  keeps one fd per handle and process): no change. */
export function scmSendFd(k: Kernel, h: string, to: TaskStruct): Outcome {
  const e = k.liveEvent(h);
  if (!e) return errno(EBADF);
  const files = to.files!;
  if (!files.fdt.has(h)) {
    e.fdRefs++; // get_file()
    fdInstall(files, h, e);
  }
  return OK;
}
