/**
 * PERF_EVENT_IOC_SET_OUTPUT (and the set_output half of perf_event_open's FD_OUTPUT).
 * Order: self, cpu, (task), clock, write_backward, AUX PMU, then under mmap_mutex:
 * mapped, target buffer. 3.18 lacks the clock/backward/"rb has no mmap" checks.
 */
import { ALL, CORE, MODERN, V, rule } from "./types.ts";
import type { SetOutputCtx } from "./context.ts";
import { otherwise, when, type Decision } from "./decision.ts";

export const SET_OUTPUT_RULES = [
  rule("setoutput.ebadf", ALL, "EBADF", "perf_ioctl", CORE, V.all,
    "ioctl on a dead handle (fd -1), or on one the op's process holds no fd for"),
  rule("setoutput.target-ebadf", ALL, "EBADF", "perf_fget_light", CORE, V.all,
    "target is a dead handle (or one the op's process holds no fd for): the C int -1 reaches the ioctl as 0xffffffff, not (unsigned long)-1, and fdget fails [seen on 6.18]"),
  rule("setoutput.self", ALL, "EINVAL", "perf_event_set_output", CORE, V.all,
    "event == output_event: no circular reference [seen on 6.18]"),
  rule("setoutput.cpu", ALL, "EINVAL", "perf_event_set_output", CORE, V.all,
    "output_event->cpu != event->cpu: no cross-cpu buffers [seen on 6.18]"),
  rule("setoutput.task", ALL, "EINVAL", "perf_event_set_output", CORE, V.all,
    "\"If its not a per-cpu rb, it must be the same task\": output_event->cpu == -1 && output_event->hw.target != event->hw.target, right after the cpu check, before the clock/backward/AUX-PMU checks and the mapped check under mmap_mutex (5.10.262, 6.1.192, 7.2.13, 7.3.4 identical; 3.18 compares output_event->ctx != event->ctx, which differs for different tasks too)"),
  rule("setoutput.aux-pmu", ALL, "EINVAL", "perf_event_set_output", CORE, V.all,
    "both events have AUX (setup_aux) on different PMUs (added by the seed); unreachable with one AUX PMU"),
  rule("setoutput.mapped", ALL, "EINVAL", "perf_event_set_output", CORE, V.all,
    "atomic_read(&event->mmap_count) != 0: can't redirect (or detach) an event with an active mmap [seen on 6.18]"),
  rule("setoutput.target-norb", ALL, "EINVAL", "perf_event_set_output", CORE, V.all,
    "the target has no buffer [seen on 6.18]"),
  rule("setoutput.rb-unmapped", MODERN, "EINVAL", "perf_event_set_output", CORE, V.modern,
    "the target's buffer has mmap_count 0 (raced with perf_mmap_close); unreachable single-threaded"),
  rule("setoutput.attach", ALL, undefined, "ring_buffer_attach", CORE, V.all,
    "event->rb = target's buffer (its old buffer, if any, is released); no accounting"),
  rule("setoutput.detach", ALL, undefined, "perf_event_set_output", CORE, V.all,
    "target (unsigned long)-1: the event drops its buffer [seen on 6.18]"),
] as const;

/** PERF_EVENT_IOC_SET_OUTPUT in check order (target null = detach: only ebadf and mapped apply). */
export const SETOUTPUT_DECIDE: readonly Decision<SetOutputCtx>[] = [
  when("setoutput.ebadf", (c) => !c.E.fd),
  when("setoutput.target-ebadf", (c) => c.op.target !== null && !c.T.fd),
  when("setoutput.self", (c) => c.op.target !== null && c.t === c.e),
  when("setoutput.cpu", (c) => c.op.target !== null && c.T.cpu !== c.E.cpu),
  when("setoutput.task", (c) => c.op.target !== null && c.T.cpu === -1 && c.T.target !== c.E.target),
  when("setoutput.mapped", (c) => c.E.mmapCount !== 0),
  when("setoutput.detach", (c) => c.op.target === null),
  when("setoutput.target-norb", (c) => c.T.rb < 0),
  when("setoutput.rb-unmapped", (c) => c.s.bufs[c.T.rb].mmapCount === 0),
  otherwise("setoutput.attach"),
];
