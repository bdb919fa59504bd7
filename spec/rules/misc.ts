/** The knobs a program may turn: RLIMIT_MEMLOCK, perf_event_mlock_kb, the test PMU's fault switch, the map_range() fault switch. */
import { ALL, CORE, V, rule } from "./types.ts";
import type { Ctx, RlimitCtx } from "./context.ts";
import { otherwise, when, type Decision } from "./decision.ts";

export const MISC_RULES = [
  rule("rlimit.set", ALL, undefined, "do_prlimit", "kernel/sys.c", V.all,
    "RLIMIT_MEMLOCK soft limit set (at most the hard limit); read by the next accounting check"),
  rule("rlimit.hard", ALL, "EINVAL", "do_prlimit", "kernel/sys.c", V.all,
    "a soft limit above the hard limit (config.memlockHardPages) without CAP_SYS_RESOURCE: rlim_cur > rlim_max is EINVAL"),
  rule("sysctl.mlock", ALL, undefined, "proc_dointvec", "kernel/sysctl.c", V.all,
    "perf_event_mlock_kb written; user_lock_limit is recomputed at each new allocation, charges already made stay"),
  rule("auxfault.set", ALL, undefined, "auxspec_pmu fail_setup_aux", "hwtest/pmu (test module)", V.all,
    "the test PMU's setup_aux returns NULL while the switch is on (rb_alloc_aux then fails with ENOMEM)"),
  rule("maprangefault.set", ALL, undefined, "map_range", CORE, `${V.v618}; ${V.v72}`,
    "a model-only fault switch (spec/notes/races.md): the next `times` map_range() calls of perf_mmap() fail with -ENOMEM (mmap.maprange.fail), counted down in linearization order, machine-wide, as the kernel's fault-injection `times` attribute; each write sets the count (0: off). Eras without map_range() (seed, 5.10, 6.1, 6.12: perf_mmap_fault maps lazily) never consume it; the teardown turns it off"),
  rule("spec.internal", ALL, "ESPECBUG", "step", "spec/model/step.ts", "-",
    "the spec itself failed on this op (a bug in the spec, never a kernel fact); property tests check it never happens"),
] as const;

export const RLIMIT_DECIDE: readonly Decision<RlimitCtx>[] = [
  when("rlimit.hard", (c) => {
    const hard = c.s.cfg.memlockHardPages ?? "unlimited";
    return hard !== "unlimited" && (c.op.memlockPages === "unlimited" || c.op.memlockPages > hard);
  }),
  otherwise("rlimit.set"),
];
export const SYSCTL_DECIDE: readonly Decision<Ctx<"sysctlMlock">>[] = [otherwise("sysctl.mlock")];
export const AUXFAULT_DECIDE: readonly Decision<Ctx<"auxFault">>[] = [otherwise("auxfault.set")];
export const MAPRANGEFAULT_DECIDE: readonly Decision<Ctx<"mapRangeFault">>[] = [otherwise("maprangefault.set")];
