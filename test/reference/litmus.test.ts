/**
 * Litmus programs with expected outcomes per profile. Each expectation names where it comes
 * from: "[6.18.44]" = probed on this machine's kernel with a C program (see the report and
 * reference/: each kernel function's file), otherwise the kernel source function and version.
 */
import { describe, expect, it } from "vitest";
import type { Op, ProfileId } from "../../spec/program.ts";
import { ALL, CONFIG, CONFIG_NO_AUX, MAY_SPLIT, NO_MAY_SPLIT, close, mmap, munmap, open, outs, run, setAux, touch } from "./helpers.ts";

describe("perf_mmap() data buffer", () => {
  it.each(ALL)("%s: power-of-two sizes map, others are EINVAL; a second mapping must match", (p) => {
    const t = run(p, [
      open("e0"),
      mmap("m0", "e0", 4), // 3 data pages: not a power of two
      mmap("m1", "e0", 5),
      mmap("m2", "e0", 3), // another size while the buffer exists
      mmap("m3", "e0", 5),
    ]);
    // perf_mmap(): "nr_pages != 0 && !is_power_of_2(nr_pages)" -> EINVAL;
    // "data_page_nr(event->rb) != nr_pages" -> EINVAL (rb->nr_pages in the seed)
    expect(outs(t)).toEqual(["ok", "EINVAL", "ok", "EINVAL", "ok"]);
  });

  it.each(ALL)("%s: MAP_PRIVATE, inherit with cpu -1, zero length, closed fd", (p) => {
    const t = run(p, [
      open("e0"),
      { op: "mmap", map: "m0", ev: "e0", pages: 2, pgoff: 0, prot: "rw", shared: false },
      open("e1", "sw", { inherit: true }),
      mmap("m1", "e1", 2),
      mmap("m2", "e0", 0),
      close("e0"),
      mmap("m3", "e0", 2),
    ]);
    // perf_mmap(): !(vm_flags & VM_SHARED) -> EINVAL; cpu == -1 && inherit -> EINVAL;
    // do_mmap(): !len -> EINVAL; ksys_mmap_pgoff(): fget() -> EBADF  [6.18.44: all four]
    expect(outs(t)).toEqual(["ok", "EINVAL", "ok", "EINVAL", "EINVAL", "ok", "EBADF"]);
  });

  it.each(ALL)("%s: the user page says where the data is", (p) => {
    const t = run(p, [open("e0"), mmap("m0", "e0", 3), { op: "readUserPage", map: "m0" }]);
    // perf_event_init_userpage(): data_offset = PAGE_SIZE, data_size = nr_pages * PAGE_SIZE  [6.18.44]
    expect(t.steps[2].outcome).toEqual({ ok: true, page: { dataOffset: 4096, dataSize: 8192, auxHead: 0, auxOffset: 0, auxSize: 0 } });
  });

  it.each(["seed", "6.1", "6.12"] as ProfileId[])("%s: PROT_EXEC maps (anon inodes are not noexec before 6.15)", (p) => {
    expect(outs(run(p, [open("e0"), mmap("m0", "e0", 2, 0, "rx")]))).toEqual(["ok", "ok"]);
  });

  it("6.18: PROT_EXEC is EPERM (do_mmap() path_noexec(), anon inodes SB_I_NOEXEC) [6.18.44]", () => {
    expect(outs(run("6.18", [open("e0"), mmap("m0", "e0", 2, 0, "rx"), mmap("m1", "e0", 2, 0, "rwx")]))).toEqual(["ok", "EPERM", "EPERM"]);
  });
});

describe("accounting", () => {
  it.each(ALL)("%s: a fresh user gets (mlock_kb >> 2) * cpus pages without touching pinned_vm", (p) => {
    const t = run(p, [open("e0"), mmap("m0", "e0", 257), open("e1"), mmap("m1", "e1", 2)]);
    // 258 pages of budget: 257 fit in locked_vm; the next 2 need 1 pinned page > RLIMIT 16? no:
    // pinned 0 + extra 1 <= 16 -> ok, VmPin 4 kB (perf_mmap() accounting block)
    expect(outs(t)).toEqual(["ok", "ok", "ok", "ok"]);
    expect(t.steps.map((s) => s.vmPinKb)).toEqual([0, 0, 0, 4]);
    expect(t.audit?.vmPinKb).toBe(0);
    expect(t.audit?.budgetPages).toBe(258);
  });

  it.each(ALL)("%s: EPERM once pinned_vm would pass RLIMIT_MEMLOCK (paranoid 2, no CAP_IPC_LOCK)", (p) => {
    const t = run(p, [open("e0"), mmap("m0", "e0", 257), { op: "rlimit", memlockPages: 0 }, open("e1"), mmap("m1", "e1", 2)]);
    expect(outs(t)).toEqual(["ok", "ok", "ok", "ok", "EPERM"]);
  });

  it.each(["6.1", "6.12"] as ProfileId[])("%s: mapping the same buffer again charges nothing", (p) => {
    const t = run(p, [open("e0"), mmap("m0", "e0", 2), mmap("m1", "e0", 2), munmap("m0"), munmap("m1")]);
    expect(t.audit?.budgetPages).toBe(258);
  });

  it("6.18: mapping the same buffer again charges its pages to locked_vm for good [6.18.44]", () => {
    // 0c8a4e4139ad "perf/core: Further simplify perf_mmap()" set user_extra = nr_pages before
    // the branch; perf_mmap_rb() charges it on the re-map path, perf_mmap_close() refunds once.
    const t = run("6.18", [open("e0"), mmap("m0", "e0", 2), mmap("m1", "e0", 2), munmap("m0"), munmap("m1")]);
    expect(outs(t)).toEqual(["ok", "ok", "ok", "ok", "ok"]);
    expect(t.audit?.budgetPages).toBe(256);
  });

  it.each(["6.1", "6.12", "6.18"] as ProfileId[])("%s: lowering perf_event_mlock_kb between two buffers charges pinned_vm only the new pages", (p) => {
    const t = run(p, [
      { op: "rlimit", memlockPages: "unlimited" },
      open("e0"), mmap("m0", "e0", 129), // locked_vm 129
      { op: "sysctlMlock", kb: 4 }, // limit 2 pages
      open("e1"), mmap("m1", "e1", 3), // clamp: min(129, 2) + 3 - 2 = 3 pages to pinned_vm
    ]);
    expect(outs(t)).toEqual(["ok", "ok", "ok", "ok", "ok", "ok"]);
    expect(t.steps[5].vmPinKb).toBe(12);
  });

  it("seed: no clamp, and locked_vm takes every page (v8 perf_mmap(): locked_vm += user_extra)", () => {
    const t = run("seed", [
      { op: "rlimit", memlockPages: "unlimited" },
      open("e0"), mmap("m0", "e0", 129),
      { op: "sysctlMlock", kb: 4 },
      open("e1"), mmap("m1", "e1", 3),
    ]);
    // user_locked = 129 + 3 = 132 > 2: extra = 130 pinned pages for a 3-page buffer
    expect(t.steps[5].vmPinKb).toBe(130 * 4);
    expect(t.audit?.vmPinKb).toBe(0);
    expect(t.audit?.budgetPages).toBe(258);
  });
});

describe("AUX area", () => {
  const auxProgram = [
    open("e0", "aux"), mmap("m0", "e0", 9), setAux("m0", 9, 4), mmap("m1", "e0", 4, 9),
    mmap("m2", "e0", 4, 9), munmap("m1"), munmap("m2"), munmap("m0"),
  ];

  it.each(ALL)("%s: an AUX PMU maps, re-maps, frees on the last unmap", (p) => {
    const t = run(p, auxProgram);
    expect(outs(t)).toEqual(["ok", "ok", "ok", "ok", "ok", "ok", "ok", "ok"]);
    expect(t.audit).toMatchObject({ vmPinKb: 0, liveAux: 0, auxSetups: 1, auxFrees: 1 });
    // 6.15+ charge the second AUX mapping's 4 pages again (0c8a4e4139ad; 6.16's perf_mmap()
    // charges user_extra at unlock:, 6.18's perf_mmap_aux() ends with perf_mmap_account(vma,
    // user_extra, extra), on the re-map path too)
    expect(t.audit?.budgetPages).toBe(p === "6.16" || p === "6.17" || p === "6.18" || p === "7.2" ? 254 : 258);
  });

  it.each(ALL)("%s: AUX checks come in the kernel's order", (p) => {
    const t = run(p, [
      open("e0", "aux"),
      mmap("m0", "e0", 2, 3), // no buffer yet
      mmap("m1", "e0", 9),
      setAux("m1", 8, 4), mmap("m2", "e0", 4, 8), // overlaps the data area
      setAux("m1", 9, 4), mmap("m3", "e0", 4, 10), // offset differs from aux_offset
      mmap("m4", "e0", 2, 9), // size differs from aux_size
      setAux("m1", 9, 3), mmap("m5", "e0", 3, 9), // not a power of two
      setAux("m1", 9, 4), mmap("m6", "e0", 4, 9),
      setAux("m1", 9, 8), mmap("m7", "e0", 8, 9), // already mapped with another size
    ]);
    expect(outs(t)).toEqual([
      "ok", "EINVAL", "ok", "ok", "EINVAL", "ok", "EINVAL", "EINVAL", "ok", "EINVAL", "ok", "ok", "ok", "EINVAL",
    ]);
  });

  it.each(["6.1-pre148", "6.1", "6.12-pre42", "6.12", "6.18"] as ProfileId[])("%s: a software event's AUX mapping is EOPNOTSUPP [6.18.44]", (p) => {
    const t = run(p, [open("e0"), mmap("m0", "e0", 3), setAux("m0", 4, 2), mmap("m1", "e0", 2, 4)], CONFIG_NO_AUX);
    expect(outs(t)).toEqual(["ok", "ok", "ok", "EOPNOTSUPP"]);
    expect(t.audit?.budgetPages).toBe(258);
  });

  it("seed: a software event's AUX mapping is -ENOTSUPP (524) (v8 rb_alloc_aux())", () => {
    const t = run("seed", [open("e0"), mmap("m0", "e0", 3), setAux("m0", 4, 2), mmap("m1", "e0", 2, 4)], CONFIG_NO_AUX);
    expect(outs(t)).toEqual(["ok", "ok", "ok", "ENOTSUPP"]);
  });

  it.each(["6.1", "6.12", "6.18"] as ProfileId[])("%s: EPERM comes before the PMU check [6.18.44]", (p) => {
    const t = run(p, [open("e0"), mmap("m0", "e0", 129), setAux("m0", 129, 256), { op: "rlimit", memlockPages: 0 }, mmap("m1", "e0", 256, 129)], CONFIG_NO_AUX);
    expect(outs(t).at(-1)).toBe("EPERM");
  });

  it.each(ALL)("%s: setup_aux failure is ENOMEM and leaves no AUX area (6.x)", (p) => {
    const t = run(p, [
      open("e0", "aux"), mmap("m0", "e0", 9), setAux("m0", 9, 4),
      { op: "auxFault", fail: true }, mmap("m1", "e0", 4, 9),
      { op: "auxFault", fail: false }, mmap("m2", "e0", 4, 9),
    ]);
    if (p === "seed") {
      // v8 rb_alloc_aux(): failure calls rb_free_aux(), whose atomic_dec_and_test() of a zero
      // aux_refcount never frees: aux_nr_pages stays 4 with aux_pgoff 0, so the next AUX
      // mapping sees "already mapped with a different offset" (EINVAL).
      expect(outs(t)).toEqual(["ok", "ok", "ok", "ok", "ENOMEM", "ok", "EINVAL"]);
      // and the data unmap then refunds the AUX pages it never charged (pgoff 0 == aux_pgoff):
      // locked_vm ends at -4; the harness probe maps largest buffers first, and with the seed's
      // unclamped arithmetic each fits while locked_vm + user_extra <= limit: 4 pages too many.
      expect(t.audit?.budgetPages).toBe((CONFIG.mlockKb >> 2) * CONFIG.cpus + 4);
    } else {
      expect(outs(t)).toEqual(["ok", "ok", "ok", "ok", "ENOMEM", "ok", "ok"]);
      expect(t.audit).toMatchObject({ vmPinKb: 0, budgetPages: p === "6.18" ? 258 : 258, liveAux: 0, auxSetups: 1, auxFrees: 1 });
    }
  });
});

describe("VMA operations", () => {
  it.each(MAY_SPLIT)("%s: no split of a buffer mapping (perf_mmap_may_split(), b024d7b56c77) [6.18.44]", (p) => {
    const t = run(p, [
      open("e0"), mmap("m0", "e0", 3),
      munmap("m0", 1, 1), munmap("m0", 2, 1),
      { op: "mprotect", map: "m0", offset: 1, pages: 1, prot: "r" },
      { op: "mprotect", map: "m0", offset: 1, pages: 1, prot: "rw" }, // same flags: no split needed
      { op: "mremap", map: "m0", oldPages: 3, newPages: 2 },
      { op: "mremap", map: "m0", oldPages: 3, newPages: 4 },
      { op: "mremap", map: "m0", offset: 1, oldPages: 2, newPages: 2, toFresh: true },
      { op: "mapFixedAnon", map: "m0", offset: 1, pages: 1 },
      { op: "mremap", map: "m0", oldPages: 3, newPages: 3, toFresh: true },
      touch("m0", 0, true),
    ]);
    // mmap_region() MAP_FIXED: 6.1 "if (do_mas_munmap(...)) return -ENOMEM"; 6.12+ returns the
    // vms_gather_munmap_vmas() error (EINVAL) [6.18.44: EINVAL]
    const fixed = p === "6.1" ? "ENOMEM" : "EINVAL";
    expect(outs(t)).toEqual(["ok", "ok", "EINVAL", "EINVAL", "EINVAL", "ok", "EINVAL", "EFAULT", "EINVAL", fixed, "ok", "ok"]);
    expect(t.audit).toMatchObject({ vmPinKb: 0, budgetPages: 258 });
  });

  it.each(NO_MAY_SPLIT)("%s: a split data mapping stays consistent", (p) => {
    const t = run(p, [
      open("e0"), mmap("m0", "e0", 5),
      munmap("m0", 4, 1), munmap("m0", 0, 1),
      touch("m0", 0), touch("m0", 1), touch("m0", 4),
      munmap("m0"),
    ]);
    expect(outs(t)).toEqual(["ok", "ok", "ok", "ok", "SIGSEGV", "ok", "SIGSEGV", "ok"]);
    expect(t.audit).toMatchObject({ vmPinKb: 0, budgetPages: 258 });
  });

  it("6.1-pre148 and 6.12-pre42 split the other way round: a data head unmap leaks the AUX area on 6.12 only", () => {
    // 6.1 do_mas_align_munmap(): end split __split_vma(next, end, 1): the new VMA is the
    // removed head (vm_pgoff 0): perf_mmap_open() leaves aux_mmap_count alone.
    // 6.12 vms_gather_munmap_vmas(): __split_vma(next, end, 0): the new VMA is the remaining
    // tail (vm_pgoff 1): perf_mmap_open() counts it as an AUX mapping, aux_mmap_count 2, and
    // the AUX VMA's own close only brings it to 1: free_aux never runs.
    const prog = [
      open("e0", "aux"), mmap("m0", "e0", 9), setAux("m0", 9, 4), mmap("m1", "e0", 4, 9),
      munmap("m0", 0, 1), munmap("m1"), munmap("m0"),
    ];
    const a = run("6.1-pre148", prog), b = run("6.12-pre42", prog);
    expect(outs(a)).toEqual(outs(b));
    expect(a.audit).toMatchObject({ liveAux: 0, auxFrees: 1, budgetPages: 258 });
    expect(b.audit).toMatchObject({ liveAux: 1, auxFrees: 0, budgetPages: 254 });
  });

  it.each(ALL)("%s: mremap of the whole mapping to the other slot moves it", (p) => {
    const t = run(p, [
      open("e0"), mmap("m0", "e0", 3),
      { op: "mremap", map: "m0", oldPages: 3, newPages: 3, toFresh: true },
      touch("m0", 0, true), { op: "readUserPage", map: "m0" }, munmap("m0"),
    ]);
    expect(outs(t).slice(0, 4)).toEqual(["ok", "ok", "ok", "ok"]);
    expect(t.audit).toMatchObject({ vmPinKb: 0, budgetPages: 258 });
  });

  it("6.18: a MREMAP_FIXED move may span several VMAs and gaps (6.17 remap_move()) [6.18.44]", () => {
    const t = run("6.18", [
      open("e0"), mmap("m0", "e0", 3),
      { op: "mapFixedAnon", map: "m0", offset: 4, pages: 1 },
      { op: "mremap", map: "m0", oldPages: 5, newPages: 5, toFresh: true },
      touch("m0", 4, true), touch("m0", 3),
    ]);
    expect(outs(t)).toEqual(["ok", "ok", "ok", "ok", "ok", "SIGSEGV"]);
    const u = run("6.12", t.steps.length ? [
      open("e0"), mmap("m0", "e0", 3),
      { op: "mapFixedAnon", map: "m0", offset: 4, pages: 1 },
      { op: "mremap", map: "m0", oldPages: 5, newPages: 5, toFresh: true },
    ] : []);
    expect(outs(u)).toEqual(["ok", "ok", "ok", "EFAULT"]); // vma_to_resize(): across vm area boundaries
    // 6.16: mremap_to() unmaps the target, then remap_is_valid(): old_len > vma->vm_end - addr [6.16.12: EFAULT]
    expect(outs(run("6.16", [
      open("e0"), mmap("m0", "e0", 3),
      { op: "mapFixedAnon", map: "m0", offset: 4, pages: 1 },
      { op: "mremap", map: "m0", oldPages: 5, newPages: 5, toFresh: true },
    ]))).toEqual(["ok", "ok", "ok", "EFAULT"]);
    // 6.17 moves both (remap_move(), v6.17) [6.17.13: ok]
    expect(outs(run("6.17", [
      open("e0"), mmap("m0", "e0", 3),
      { op: "mapFixedAnon", map: "m0", offset: 4, pages: 1 },
      { op: "mremap", map: "m0", oldPages: 5, newPages: 5, toFresh: true },
    ]))).toEqual(["ok", "ok", "ok", "ok"]);
  });

  it.each(ALL)("%s: mprotect of a range with a hole changes what comes before the hole, then ENOMEM [6.18.44]", (p) => {
    const t = run(p, [open("e0"), mmap("m0", "e0", 3), { op: "mprotect", map: "m0", pages: 5, prot: "r" }, touch("m0", 0, true)]);
    expect(outs(t)).toEqual(["ok", "ok", "ENOMEM", "SIGSEGV"]);
  });

  it("6.18: mprotect(PROT_EXEC) of a buffer is EACCES (no VM_MAYEXEC) [6.18.44]", () => {
    expect(outs(run("6.18", [open("e0"), mmap("m0", "e0", 3), { op: "mprotect", map: "m0", prot: "rx" }]))).toEqual(["ok", "ok", "EACCES"]);
  });
});

describe("page access", () => {
  it.each(ALL)("%s: write the user page, not the data; read everything; nothing outside [6.18.44]", (p) => {
    const t = run(p, [
      open("e0"), mmap("m0", "e0", 3), touch("m0", 0, true), touch("m0", 1, true), touch("m0", 2), touch("m0", 3),
      open("e1"), mmap("m1", "e1", 3, 0, "r"), touch("m1", 0, true), touch("m1", 0),
      open("e2"), mmap("m2", "e2", 3, 0, "none"), touch("m2", 0),
    ]);
    expect(outs(t)).toEqual(["ok", "ok", "ok", "SIGBUS", "ok", "SIGSEGV", "ok", "ok", "SIGSEGV", "ok", "ok", "ok", "SIGSEGV"]);
  });
});

describe("SET_OUTPUT", () => {
  it.each(ALL)("%s: the checks, in order [6.18.44]", (p) => {
    const t = run(p, [
      open("e0"), open("e1", "sw", { outputTo: "e0" }), // e0 has no buffer
      mmap("m0", "e0", 2),
      open("e2", "sw", { outputTo: "e0" }),
      open("e3", "sw", { outputTo: "e2" }), // e2 is not a group leader
      open("e4", "sw", { outputTo: "e0", inherit: true }), // inherit differs from the leader
      open("e5", "sw", { cpu: 0 }),
      { op: "setOutput", ev: "e5", target: "e0" }, // another cpu
      { op: "setOutput", ev: "e0", target: "e0" },
      { op: "setOutput", ev: "e0", target: null }, // e0 is mapped
      { op: "setOutput", ev: "e1", target: "e0" }, // e1's open failed: fd -1
      open("e6"), { op: "setOutput", ev: "e6", target: "e1" }, // target fd -1
      { op: "setOutput", ev: "e6", target: "e0" },
    ]);
    expect(outs(t)).toEqual([
      "ok", "EINVAL", "ok", "ok", "EINVAL", "EINVAL", "ok", "EINVAL", "EINVAL", "EINVAL", "EBADF", "ok", "EBADF", "ok",
    ]);
  });

  it.each(["seed", "6.1-pre148", "6.1", "6.12-pre42", "6.12"] as ProfileId[])("%s: an event redirected by SET_OUTPUT can map the buffer", (p) => {
    const t = run(p, [open("e0"), mmap("m0", "e0", 2), open("e1", "sw", { outputTo: "e0" }), mmap("m1", "e1", 2), munmap("m0"), munmap("m1")]);
    expect(outs(t)).toEqual(["ok", "ok", "ok", "ok", "ok", "ok"]);
    expect(t.audit).toMatchObject({ vmPinKb: 0, budgetPages: 258, warnings: [] });
  });

  it.each(["6.16", "6.17"] as ProfileId[])("%s: an event redirected by SET_OUTPUT maps the buffer (atomic_t, no EBUSY) and the mapping is charged like a re-map [6.16.12, 6.17.13 under QEMU]", (p) => {
    // cases/spec/mmap-data-ebusy.6.18.json under QEMU (npm run bisect --by trace): ok ok ok ok EINVAL ok and the
    // budget 3 pages short on 6.16.12 and 6.17.13; EBUSY and the budget whole on 6.18.15
    const t = run(p, [open("e0"), mmap("m0", "e0", 3), open("e1"), { op: "setOutput", ev: "e1", target: "e0" }, mmap("m1", "e1", 5), mmap("m2", "e1", 3), munmap("m0"), munmap("m2")]);
    expect(outs(t)).toEqual(["ok", "ok", "ok", "ok", "EINVAL", "ok", "ok", "ok"]);
    expect(t.audit).toMatchObject({ vmPinKb: 0, budgetPages: 258 - 3, warnings: [] });
  });

  it("6.18: ... is EBUSY (d06bf78e55d5) [6.18.44]", () => {
    const t = run("6.18", [open("e0"), mmap("m0", "e0", 2), open("e1", "sw", { outputTo: "e0" }), mmap("m1", "e1", 2), mmap("m2", "e1", 4)]);
    expect(outs(t)).toEqual(["ok", "ok", "ok", "EBUSY", "EINVAL"]); // the size check comes first
  });

  it.each(ALL)("%s: the buffer outlives its owner's fd while mapped, and redirected events lose it with the last unmap", (p) => {
    const t = run(p, [
      open("e0"), mmap("m0", "e0", 2), open("e1"), { op: "setOutput", ev: "e1", target: "e0" }, close("e0"),
      { op: "setOutput", ev: "e1", target: null }, { op: "setOutput", ev: "e1", target: "e0" },
    ]);
    expect(outs(t)).toEqual(["ok", "ok", "ok", "ok", "ok", "ok", "EBADF"]);
  });
});

describe("teardown and audit", () => {
  it.each(ALL)("%s: everything is refunded and freed", (p) => {
    const t = run(p, [open("e0", "aux"), mmap("m0", "e0", 33), setAux("m0", 33, 256), { op: "rlimit", memlockPages: 64 }, mmap("m1", "e0", 256, 33)]);
    expect(outs(t)).toEqual(["ok", "ok", "ok", "ok", "ok"]);
    // 33 + 256 pages against a 258-page limit: 31 pages go to pinned_vm
    expect(t.steps[4].vmPinKb).toBe((33 + 256 - 258) * 4);
    expect(t.audit).toMatchObject({ vmPinKb: 0, budgetPages: 258, liveAux: 0, auxSetups: 1, auxFrees: 1, warnings: [] });
  });

  it("no AUX PMU: no PMU counters in the audit", () => {
    const t = run("6.18", [open("e0")], CONFIG_NO_AUX);
    expect(t.audit).toEqual({ vmPinKb: 0, budgetPages: 258, warnings: [] });
  });

  it("pmu aux without an AUX PMU is ENOENT (perf_init_event())", () => {
    expect(outs(run("6.18", [open("e0", "aux")], CONFIG_NO_AUX))).toEqual(["ENOENT"]);
  });

  it("budget probe: capped at the limit + 16 when paranoid is -1 (no EPERM at all)", () => {
    expect(run("6.18", [open("e0")], { ...CONFIG, paranoid: -1 }).audit?.budgetPages).toBe(258 + 16);
  });

  it("refcounts are reported for the config given", () => {
    expect(run("6.1", [], { ...CONFIG, cpus: 4, mlockKb: 1024 }).audit?.budgetPages).toBe(256 * 4);
  });
});

describe("5.10 (5.10.262 source)", () => {
  const V510: ProfileId[] = ["5.10-pre241", "5.10"];

  it.each(V510)("%s: rb_alloc_aux() refuses a writable 1-page AUX area (!overwrite && !max_order), read-only maps", (p) => {
    const t = run(p, [open("e0", "aux"), mmap("m0", "e0", 3), setAux("m0", 4, 1), mmap("m1", "e0", 1, 4, "rw"), mmap("m2", "e0", 1, 4, "r")]);
    expect(outs(t)).toEqual(["ok", "ok", "ok", "EINVAL", "ok"]);
    expect(t.audit).toMatchObject({ vmPinKb: 0, budgetPages: 258, liveAux: 0, auxSetups: 1, auxFrees: 1 });
  });

  it.each(["6.1", "6.12", "6.18", "7.2"] as ProfileId[])("%s: the watermark sizes the chunks: a writable 1-page AUX area maps", (p) => {
    expect(outs(run(p, [open("e0", "aux"), mmap("m0", "e0", 3), setAux("m0", 4, 1), mmap("m1", "e0", 1, 4, "rw")]))).toEqual(["ok", "ok", "ok", "ok"]);
  });

  it.each(V510)("%s: mremap() has no vma_lookup() before the shrink: same size or shrink where nothing is mapped succeeds", (p) => {
    const prog: Op[] = [open("e0"), mmap("m0", "e0", 4), { op: "mremap", map: "m0", oldPages: 2, newPages: 2 },
      { op: "mremap", map: "m0", oldPages: 2, newPages: 1 }, { op: "mremap", map: "m0", oldPages: 2, newPages: 4 }];
    expect(outs(run(p, prog))).toEqual(["ok", "EINVAL", "ok", "ok", "EFAULT"]);
    expect(outs(run("6.1", prog))).toEqual(["ok", "EINVAL", "EFAULT", "EFAULT", "EFAULT"]);
  });

  it.each(V510)("%s: growth in place is vma_adjust(): no merge with the next anonymous VMA", (p) => {
    const prog: Op[] = [open("e0"), mmap("m0", "e0", 4), { op: "mapFixedAnon", map: "m0", offset: 0, pages: 2 },
      { op: "mapFixedAnon", map: "m0", offset: 4, pages: 2 }, { op: "mremap", map: "m0", oldPages: 2, newPages: 4 },
      { op: "mremap", map: "m0", oldPages: 6, newPages: 7 }];
    expect(outs(run(p, prog))).toEqual(["ok", "EINVAL", "ok", "ok", "ok", "EFAULT"]);
    expect(outs(run("6.1", prog))).toEqual(["ok", "EINVAL", "ok", "ok", "ok", "ok"]);
  });

  it("5.10: MAP_FIXED over part of a buffer mapping is ENOMEM, munmap/mprotect of part EINVAL (.split hook)", () => {
    const t = run("5.10", [open("e0"), mmap("m0", "e0", 3), munmap("m0", 1, 1), { op: "mprotect", map: "m0", offset: 1, pages: 1, prot: "r" },
      { op: "mapFixedAnon", map: "m0", offset: 1, pages: 1 }, { op: "mremap", map: "m0", oldPages: 3, newPages: 2 }]);
    expect(outs(t)).toEqual(["ok", "ok", "EINVAL", "EINVAL", "ENOMEM", "EINVAL"]);
  });

  it("5.10: move_vma() never asks the split hook: a partial move copies the VMA and keeps the old one whole", () => {
    const t = run("5.10", [open("e0"), mmap("m0", "e0", 3), { op: "mremap", map: "m0", oldPages: 2, newPages: 2, toFresh: true },
      touch("m0", 1), touch("m0", 2), { op: "mremap", map: "m0", oldPages: 2, newPages: 2, toFresh: true }]);
    // the copy is [0, 2) in the other slot; moving it back must unmap part of the old, whole VMA: EINVAL
    expect(outs(t)).toEqual(["ok", "ok", "ok", "ok", "SIGSEGV", "EINVAL"]);
    expect(t.audit).toMatchObject({ vmPinKb: 0, budgetPages: 258 });
  });

  it("5.10: a moved copy of the AUX area's upper half never drops aux_mmap_count: the AUX area leaks", () => {
    const prog: Op[] = [open("e0", "aux"), mmap("m0", "e0", 9), setAux("m0", 16, 8), mmap("m1", "e0", 8, 16, "r"),
      { op: "mremap", map: "m1", offset: 4, oldPages: 4, newPages: 4, toFresh: true }, munmap("m1"), munmap("m0")];
    const t = run("5.10", prog);
    expect(outs(t)).toEqual(["ok", "ok", "ok", "ok", "ok", "ok", "ok"]);
    // the old AUX VMA (pgoff 16) and the copy (pgoff 20) are closed: aux_mmap_count 2 -> 1, never 0
    expect(t.audit).toMatchObject({ liveAux: 1, auxFrees: 0, budgetPages: 258 - 8 });
    expect(outs(run("6.1", prog))[4]).toBe("EINVAL");
  });
});

describe("7.2 (7.2.13 / 7.3.4 source)", () => {
  // An AUX mapping through a SET_OUTPUT-only event saturates its mmap_count (refcount_t WARN);
  // then the data VMA and the AUX VMA are unmapped.
  const prog: Op[] = [open("e0", "aux"), mmap("m0", "e0", 3), setAux("m0", 4, 4), open("e1", "aux"),
    { op: "setOutput", ev: "e1", target: "e0" }, mmap("m1", "e1", 4, 4), munmap("m0"), munmap("m1"), mmap("m2", "e1", 4, 4), mmap("m3", "e1", 3)];

  it("6.18: rb->mmap_count first: the saturated event keeps the dead buffer, the data pages are never refunded", () => {
    const t = run("6.18", prog);
    // AUX: !refcount_inc_not_zero(&rb->mmap_count) -> EINVAL; data of the old size: the "raced
    // against perf_mmap_close" branch (a new buffer, refcount_set(&event->mmap_count, 1))
    expect(outs(t)).toEqual(["ok", "ok", "ok", "ok", "ok", "ok", "ok", "ok", "EINVAL", "ok"]);
    expect(t.audit?.warnings?.length).toBeGreaterThan(0);
    expect(t.audit?.budgetPages).toBe(258 - 3);
  });

  it.each(["6.16", "6.17"] as ProfileId[])("%s: atomic_t: no WARN, e1's count is a plain 1, and the rb-first close still detaches both and refunds", (p) => {
    const t = run(p, prog);
    expect(outs(t)).toEqual(["ok", "ok", "ok", "ok", "ok", "ok", "ok", "ok", "EINVAL", "ok"]);
    expect(t.audit?.warnings ?? []).toEqual([]);
    expect(t.audit?.budgetPages).toBe(258);
  });

  it("7.2: event->mmap_count first, then the buffer's: its last unmap detaches every event and refunds", () => {
    const t = run("7.2", prog);
    expect(outs(t)).toEqual(["ok", "ok", "ok", "ok", "ok", "ok", "ok", "ok", "EINVAL", "ok"]);
    expect(t.audit?.warnings?.length).toBeGreaterThan(0);
    expect(t.audit?.budgetPages).toBe(258);
  });
});
