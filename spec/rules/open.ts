/**
 * perf_event_open() and close(): the parts that decide whether an event exists, which
 * group it joins and which buffer it writes to (outputTo = group_fd + PERF_FLAG_FD_OUTPUT).
 *
 * Why the group checks matter here: with PERF_FLAG_FD_OUTPUT the target is also the new
 * event's group leader (no PERF_FLAG_FD_NO_GROUP), so the group-leader checks of
 * perf_event_open run *before* perf_event_set_output's. All of them answer EINVAL.
 */
import { ALL, CORE, MODERN, SEED, V, V612_ON, rule } from "./types.ts";
import { procAlive } from "../model/state.ts";
import type { CloseCtx, OpenCtx } from "./context.ts";
import { otherwise, when, type Decision } from "./decision.ts";

export const OPEN_RULES = [
  rule("open.ok", ALL, undefined, "perf_event_open", CORE, V.all,
    "a disabled event is created (software dummy or the AUX PMU's type); the fd is live"),
  rule("open.nopmu", ALL, "ENOENT", "perf_init_event", CORE, V.all,
    "pmu \"aux\" on a machine without an AUX-capable PMU: no PMU accepts the type"),
  rule("open.cpu", ALL, "EINVAL", "perf_event_alloc", CORE, V.all,
    "(unsigned)cpu >= nr_cpu_ids with a task target: EINVAL (nr_cpu_ids taken as config.cpus) [seen on 6.18: cpu 2 and 4095 on 2 cpus]"),
  rule("open.output.deadfd", ALL, undefined, "perf_event_open", CORE, V.all,
    "outputTo names a dead handle: group_fd is -1, so there is no group and no output redirection; the open proceeds"),
  rule("open.group.exited", V612_ON, "ENODEV", "perf_event_open", CORE, V.v612on,
    "the outputTo target's task has exited (PERF_EVENT_STATE_EXIT, set by perf_event_exit_task): `if (group_leader->state <= PERF_EVENT_STATE_EXIT) err = -ENODEV` right after the group fd lookup, before every other group check (7.2.13 perf_event_open; absent in 5.10.262 and 6.1.192; seen on 6.12.118 and 6.18.44). For an attr.inherit target whose task forked, the context-switch optimisation may have moved the original into a child: then any of those tasks' exits may have put it in EXIT"),
  rule("open.group.inherit", ALL, "EINVAL", "perf_event_open", CORE, V.all,
    "task event whose group leader (the outputTo target) has a different attr.inherit"),
  rule("open.group.notleader", ALL, "EINVAL", "perf_event_open", CORE, V.all,
    "the outputTo target is itself a group sibling (group_leader->group_leader != group_leader): no recursive hierarchy [seen on 6.18]"),
  rule("open.group.cpu", MODERN, "EINVAL", "perf_event_open", CORE, V.modern,
    "group leader on another cpu (group_leader->cpu != event->cpu), checked before perf_event_set_output [seen on 6.18]"),
  rule("open.group.task", ALL, "EINVAL", "perf_event_open", CORE, V.all,
    "group leader (the outputTo target) monitors another task: `if (group_leader->ctx->task != ctx->task) goto err_context` right after the group cpu check, before perf_event_set_output (5.10.262, 6.1.192, 7.3.4); pid 0 monitors the opener even with a cpu, so it holds for any cpu"),
  rule("open.output.cpu", SEED, "EINVAL", "perf_event_set_output", CORE, V.v318,
    "3.18 has no group cpu check in perf_event_open; perf_event_set_output refuses cross-cpu buffers with the same EINVAL"),
  rule("open.output.norb", ALL, "EINVAL", "perf_event_set_output", CORE, V.all,
    "the outputTo target has no buffer (ring_buffer_get(output_event) == NULL) [seen on 6.18]"),
  rule("open.output.ok", ALL, undefined, "perf_event_set_output", CORE, V.all,
    "the new event joins the target's group and writes to the target's buffer (event->rb = target->rb, no accounting)"),
  rule("close.ok", ALL, undefined, "perf_release", CORE, V.all,
    "close(fd): the event is released only when no VMA holds its file; while mapped nothing changes [seen on 6.18]"),
  rule("close.ebadf", ALL, "EBADF", "close", "fs/open.c", V.all,
    "close of a dead handle (fd -1), or of one the op's process holds no fd for"),
  rule("event.free", ALL, undefined, "_free_event", CORE, V.all,
    "when the last file reference goes, the event detaches from its buffer (ring_buffer_attach(event, NULL)) and its group siblings become singletons (perf_group_detach)"),
] as const;

/**
 * perf_event_open in check order: (6.12+) the group leader's EXIT state, the group leader's inherit, perf_event_alloc (cpu),
 * perf_init_event (pmu), then the group checks (3.18 has none for cpu: its
 * perf_event_set_output refuses instead) and perf_event_set_output's.
 */
export const OPEN_DECIDE: readonly Decision<OpenCtx>[] = [
  when("open.group.exited", (c) => c.ti >= 0 && !procAlive(c.s, c.T.target)),
  when("open.group.inherit", (c) => c.ti >= 0 && c.T.inherit !== c.inherit),
  when("open.cpu", (c) => c.cpu >= c.s.cfg.cpus),
  when("open.nopmu", (c) => c.aux && c.s.cfg.pmus.aux === null),
  when("open.group.notleader", (c) => c.ti >= 0 && c.T.groupLeader !== c.ti),
  when("open.group.cpu", (c) => c.ti >= 0 && c.T.cpu !== c.cpu),
  when("open.group.task", (c) => c.ti >= 0 && c.T.target !== c.task),
  when("open.output.cpu", (c) => c.ti >= 0 && c.T.cpu !== c.cpu),
  when("open.output.norb", (c) => c.ti >= 0 && c.T.rb < 0),
  when("setoutput.rb-unmapped", (c) => c.ti >= 0 && c.s.bufs[c.T.rb].mmapCount === 0),
  when("open.output.ok", (c) => c.ti >= 0),
  when("open.output.deadfd", (c) => c.op.outputTo !== undefined),
  otherwise("open.ok"),
];

export const CLOSE_DECIDE: readonly Decision<CloseCtx>[] = [
  when("close.ebadf", (c) => !c.E.fd),
  otherwise("close.ok"),
];
