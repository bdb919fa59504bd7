/**
 * The kernel objects the reference keeps, named and shaped after their kernel counterparts
 * (include/linux/perf_event.h, kernel/events/internal.h, include/linux/mm_types.h).
 * Fields carry the kernel's names in camelCase; units are pages unless a name says bytes.
 */

export const PAGE_SIZE = 4096;
/** REFCOUNT_SATURATED = INT_MIN / 2 (include/linux/refcount.h). */
export const REFCOUNT_SATURATED = -1073741824;

/** struct perf_event_mmap_page, the fields the ops see (bytes). */
export interface UserPage {
  dataOffset: number;
  dataSize: number;
  auxHead: number;
  auxOffset: number;
  auxSize: number;
}

/** What a page-table entry points at: a page whose five user-page words the ops can see (a
 *  buffer's user page; an anonymous page or AUX page once written), or 0 for a page that
 *  reads as zeros and cannot be written here (data pages: writes are SIGBUS). */
export type PageId = UserPage | 0;

export function zeroPage(): UserPage {
  return { dataOffset: 0, dataSize: 0, auxHead: 0, auxOffset: 0, auxSize: 0 };
}

/** struct user_struct (include/linux/sched/user.h): one per uid, shared by every process of
 *  that uid (cred->user). locked_vm is `perf_mlock` in 6.1.192 / 6.12.117 / 7.2.13. */
export class UserStruct {
  /** The program's user handle: u0, u1, ... */
  readonly uid: string;
  /** user->locked_vm (perf_mlock), pages */
  lockedVm: number;

  constructor(uid: string, lockedVm: number) {
    this.uid = uid;
    this.lockedVm = lockedVm;
  }
}

/** struct mm_struct: the VMAs, the page tables of the pages touched so far, mm->pinned_vm. */
export class MmStruct {
  /** The VMAs, sorted by start (mm->mm_mt). */
  readonly vmas: Vma[] = [];
  /** Page table entries, by page address (only pages touched so far). */
  readonly ptes = new Map<number, PageId>();
  /** mm->pinned_vm, pages (mm_init(): 0) */
  pinnedVm = 0;
}

/** struct files_struct: the fd table, as event handle -> the file's event (one fd per handle). */
export class FilesStruct {
  readonly fdt = new Map<string, PerfEvent>();
}

/** struct signal_struct, the part shared by every task of a process: rlim[RLIMIT_MEMLOCK]
 *  (clone(CLONE_THREAD) shares current->signal; fork copies it). */
export class SignalStruct {
  /** signal->rlim[RLIMIT_MEMLOCK].rlim_cur, pages */
  memlock: number | "unlimited";
  constructor(memlock: number | "unlimited") {
    this.memlock = memlock;
  }
}

/** struct task_struct, the parts perf's mmap paths reach: current->mm, current->files,
 *  current_cred()->user (current_user()), rlimit(RLIMIT_MEMLOCK) (current->signal).
 *  A `thread` task (issue 13/14, spec/notes/races.md) shares mm, files and signal with the
 *  task it was cloned from; its cred (user) is its own. */
export class TaskStruct {
  /** The program's process handle: p0, p1, ... */
  readonly pid: string;
  /** null once exit_mm() dropped it */
  mm: MmStruct | null;
  /** null once exit_files() dropped it */
  files: FilesStruct | null;
  /** cred->user */
  user: UserStruct;
  /** current->signal (shared by the tasks of a process) */
  readonly signal: SignalStruct;
  /** false once do_exit() ran for this task */
  alive = true;

  constructor(pid: string, mm: MmStruct, files: FilesStruct, user: UserStruct, signal: SignalStruct) {
    this.pid = pid;
    this.mm = mm;
    this.files = files;
    this.user = user;
    this.signal = signal;
  }

  /** rlimit(RLIMIT_MEMLOCK): signal->rlim[RLIMIT_MEMLOCK].rlim_cur, pages */
  get memlock(): number | "unlimited" {
    return this.signal.memlock;
  }

  set memlock(v: number | "unlimited") {
    this.signal.memlock = v;
  }
}

/** struct perf_buffer (struct ring_buffer in the seed). */
export class PerfBuffer {
  /** Allocation order within the program (the abstract state's buffer id). */
  readonly id: number;
  /** rb->nr_pages: data pages, the user page not counted. */
  readonly nrPages: number;
  /** rb->refcount: one per event whose event->rb is this buffer (ring_buffer_attach takes it over). */
  refcount = 1;
  /** rb->mmap_count: VMAs of this buffer, through any event. */
  mmapCount = 0;
  /** rb->mmap_locked: pages charged to pinned_vm when the buffer was created. */
  mmapLocked = 0;
  /** rb->mmap_user: get_current_user() of the process whose data mmap created the buffer
   *  (perf_mmap() 5.10/6.1/6.12 and the seed; ring_buffer_init() from 6.15). */
  mmapUser: UserStruct | null = null;
  /** rb->overwrite: !(VM_WRITE) of the creating mapping. */
  readonly overwrite: boolean;
  /** rb->user_page */
  readonly userPage: UserPage;
  /** rb->event_list */
  readonly eventList: PerfEvent[] = [];
  /** AUX area (rb_has_aux() iff auxNrPages != 0). */
  auxNrPages = 0;
  auxPgoff = 0;
  auxMmapCount = 0;
  auxMmapLocked = 0;
  auxRefcount = 0;
  /** rb->aux_priv != NULL: setup_aux() succeeded and free_aux() has not run. */
  auxPriv = false;
  auxOverwrite = false;
  /** rb->aux_pages[], created when first reached through a mapping (contents as the ops see them). */
  auxPages: UserPage[] | null = null;
  /** false once ring_buffer_put() dropped the last reference (rb_free()). */
  alive = true;

  constructor(id: number, nrPages: number, overwrite: boolean) {
    this.id = id;
    this.nrPages = nrPages;
    this.overwrite = overwrite;
    // perf_event_init_userpage(): data_offset = PAGE_SIZE, data_size = perf_data_size(rb)
    // (e8c6deac6962 "perf: Add data_{offset,size} to user_page", patch 1 of the AUX series
    // the seed belongs to; its uapi context lines show both fields).
    this.userPage = { dataOffset: PAGE_SIZE, dataSize: nrPages * PAGE_SIZE, auxHead: 0, auxOffset: 0, auxSize: 0 };
  }
}

/** struct perf_event (one per successful perf_event_open()). */
export class PerfEvent {
  readonly handle: string;
  /** has_aux(event): the PMU has setup_aux (pmu "aux"). */
  readonly hasAux: boolean;
  readonly cpu: number;
  readonly inherit: boolean;
  /** fd table entries (files_struct) that hold the event's file, in any process. */
  fdRefs = 1;
  /** VMAs whose vm_file is this event's file (each holds a file reference). */
  vmaRefs = 0;
  /** perf_release() ran: the file's last reference is gone and the event was freed. */
  released = false;
  /** event->rb */
  rb: PerfBuffer | null = null;
  /** event->mmap_count */
  mmapCount = 0;
  /** event->group_leader (itself when it leads a group). */
  groupLeader: PerfEvent;
  /** event->hw.target: the task it monitors (pid 0: the task that opened it). */
  readonly target: TaskStruct;

  constructor(handle: string, hasAux: boolean, cpu: number, inherit: boolean, target: TaskStruct) {
    this.handle = handle;
    this.hasAux = hasAux;
    this.cpu = cpu;
    this.inherit = inherit;
    this.groupLeader = this;
    this.target = target;
  }
}

export const VM_READ = 1;
export const VM_WRITE = 2;
export const VM_EXEC = 4;

/** struct vm_area_struct, the parts that matter here. Addresses are page numbers. */
export class Vma {
  start: number;
  end: number;
  pgoff: number;
  /** VM_READ | VM_WRITE | VM_EXEC */
  prot: number;
  /** VM_MAYEXEC (cleared by do_mmap() for noexec files). */
  mayExec: boolean;
  shared: boolean;
  /** vm_file->private_data for perf mappings; null for anonymous memory. */
  event: PerfEvent | null;
  /** vma->anon_vma identity (0: none yet; set by the first write; split pieces share it). */
  anonVma = 0;
  /** 6.14+: map_range() installed every page at mmap() time; the page at pgoff 0 is preUser. */
  prepopulated = false;
  preUser: UserPage | null = null;
  /** vma->vm_mm: the mm the VMA belongs to (perf_mmap_close() refunds pinned_vm there). */
  vmMm: MmStruct;

  constructor(start: number, end: number, pgoff: number, prot: number, mayExec: boolean, shared: boolean, event: PerfEvent | null, mm: MmStruct) {
    this.start = start;
    this.end = end;
    this.pgoff = pgoff;
    this.prot = prot;
    this.mayExec = mayExec;
    this.shared = shared;
    this.event = event;
    this.vmMm = mm;
  }

  /** vm_area_dup() (dup_mmap() then points vm_mm at the child's mm) */
  dup(): Vma {
    const v = new Vma(this.start, this.end, this.pgoff, this.prot, this.mayExec, this.shared, this.event, this.vmMm);
    v.anonVma = this.anonVma;
    v.prepopulated = this.prepopulated;
    v.preUser = this.preUser;
    return v;
  }
}

/** A kernel crash the model reaches (NULL dereference, BUG): the program cannot go on. */
export class KernelOops extends Error {
  override name = "KernelOops";
}
