/**
 * step(state, op): every transition the profile allows, with the rule that decided it.
 *
 * Which rule decides is data: the op's ordered rule list for the profile (built once by
 * spec/model/decide.ts from spec/rules/<area>.ts), evaluated by `evaluate` over a context
 * filled here. What a deciding rule does to the state is its body, registered below
 * under its rule id. Most ops have one transition; a new data buffer or AUX area may also
 * fail with ENOMEM (the allocation, or the PMU's setup_aux refusing); with the fault switch
 * on, AUX allocation gives ENOMEM only. Transitions are listed preferred first.
 */
import { PROFILES, handleIndex, type Op, type Outcome, type ProfileId, type UserPageObs } from "../program.ts";
import type { MmapCtx, MprotectCtx, OpenCtx, OpOf, PageCtx, RangeCtx } from "../rules/context.ts";
import { ruleOf, type RuleId } from "../rules/index.ts";
import { OK, buildTable, err, evaluate, trD, trS, type Bodies, type Table, type Tr } from "./decide.ts";
import { anonWriteFault, dropFd, exitProc, findIdx, forkProc, threadProc, insertVma, mapFixedAnon, mprotect, mremap318, mremap510, mremap61, mremap618, perfCut, resolve, unmapRange, type MremapArgs, type OpResult } from "./mm.ts";
import { acctOf, detachEv, inc, perfClose, putBuf } from "./perf.ts";
import { Draft, ERAS, MM_SLOTS, NO_BUF, NO_EV, NO_VMA, P_W, PAGE, PROT_BITS, RLIM_INF_PAGES, mmOf, pinnedOf, slotOf, userOf, type State, type Vma } from "./state.ts";
import { sameOutcome } from "../trace.ts";

// Module-local copies of hot imports: tsx compiles an imported binding to a getter call
// per use, which V8 does not always inline; guards and the step run millions of times.
const handleIndex_ = handleIndex, evaluate_ = evaluate, MM_SLOTS_ = MM_SLOTS, NO_EV_ = NO_EV, NO_BUF_ = NO_BUF, NO_VMA_ = NO_VMA, PROT_BITS_ = PROT_BITS, slotOf_ = slotOf, findIdx_ = findIdx, perfCut_ = perfCut, Draft_ = Draft, trD_ = trD, trS_ = trS, err_ = err, OK_ = OK;

export type { Tr } from "./decide.ts";
export { OK, err } from "./decide.ts";

const ENOMEM_: Outcome = err_("ENOMEM");
const SIGSEGV: Outcome = Object.freeze({ signal: "SIGSEGV" as const });
const SIGBUS: Outcome = Object.freeze({ signal: "SIGBUS" as const });
const okPage = (page: UserPageObs): Outcome => ({ ok: true, page });

/** A body that succeeds after `write` changes a Draft of the state (the common case). */
function drafted<C extends { s: State }>(write: (d: Draft, c: C) => void): (c: C, id: RuleId) => Tr[] {
  return (c, id) => {
    const d = new Draft_(c.s);
    write(d, c);
    return [trD_(d, OK_, id)];
  };
}

function errnoOf(r: OpResult) {
  return r.errno ?? ruleOf(r.rule).errno;
}

function trR(d: Draft, r: OpResult): Tr {
  const errno = errnoOf(r);
  return trD_(d, errno === undefined ? OK_ : err_(errno), r.rule);
}

// ---------------------------------------------------------------------------------------
// Events

/** perf_event_open without a group (no outputTo, or a dead one: group_fd -1); the opener p
 *  holds the fd and is the event's task (pid 0). */
const openPlain = drafted<OpenCtx>((d, c) => {
  d.setEv(c.e, { fd: true, fdMask: 1 << c.p, target: c.task, inheritedBy: 0, aux: c.aux, cpu: c.cpu, inherit: c.inherit, rb: -1, mmapCount: 0, groupLeader: c.e, freed: false });
});

const OPEN: Bodies["open"] = {
  "open.output.ok": drafted((d, c) => {
    d.setEv(c.e, { fd: true, fdMask: 1 << c.p, target: c.task, inheritedBy: 0, aux: c.aux, cpu: c.cpu, inherit: c.inherit, rb: c.T.rb, mmapCount: 0, groupLeader: c.ti, freed: false });
  }),
  "open.output.deadfd": openPlain,
  "open.ok": openPlain,
};

const CLOSE: Bodies["close"] = {
  "close.ok": drafted((d, c) => dropFd(d, c.e, c.p)),
};

const SETOUTPUT: Bodies["setOutput"] = {
  "setoutput.detach": drafted((d, c) => detachEv(d, c.e)),
  "setoutput.attach": drafted((d, c) => {
    const old = c.E.rb;
    d.evW(c.e).rb = c.T.rb;
    if (old >= 0 && old !== c.T.rb) putBuf(d, old);
  }),
};

// ---------------------------------------------------------------------------------------
// perf_mmap

function newVma(c: MmapCtx): Vma {
  const v: Vma = { slot: c.slot, start: 0, end: c.op.pages, pgoff: c.op.pgoff, prot: c.prot, ev: c.e };
  return c.s.era.lazyPtes ? { ...v, ptes: [] } : v;
}

/**
 * map_range() of a mapping perf_mmap_rb()/perf_mmap_aux() accepted (6.16 .. 7.2; before it the
 * pages fault in lazily): the VMA goes in, or, while the mapRangeFault switch has counts left,
 * one is consumed and perf_mmap() undoes the mapping with perf_mmap_close(vma) (f74b9f4ba63f;
 * 7.2.13's "minimal perf_mmap_close()" for a new buffer leaves the same state) and mmap_region()
 * frees the VMA without ->close() (rule mmap.maprange.fail). True when it failed.
 */
function mapRange(d: Draft, c: MmapCtx): boolean {
  const v = newVma(c);
  if (d.mapRangeFault > 0 && d.era.mapRange) {
    d.mapRangeFault--;
    perfClose(d, v);
    return true;
  }
  insertVma(d, v);
  return false;
}

/** An existing buffer (data) or AUX area mapped again; `charge`: 6.18 charges the VMA's pages. */
function remap(charge: boolean, aux: boolean): (c: MmapCtx, id: RuleId) => Tr[] {
  return (c, id) => {
    const refT = c.s.era.refcountT;
    const d = new Draft_(c.s);
    const b = d.bufW(c.E.rb);
    b.mmapCount = inc(d, b.mmapCount, "rb->mmap_count", refT);
    if (aux) b.auxMmapCount = inc(d, b.auxMmapCount, "rb->aux_mmap_count", refT);
    const ew = d.evW(c.e);
    ew.mmapCount = inc(d, ew.mmapCount, "event->mmap_count", refT);
    if (charge) d.addLocked(c.u, c.op.pages); // perf_mmap_account: current_user()
    if (mapRange(d, c)) return [trD_(d, ENOMEM_, "mmap.maprange.fail")];
    return [trD_(d, OK_, aux && refT && c.E.mmapCount === 0 ? "mmap.aux.redirected.warn" : id)];
  };
}

/** A failed new AUX area: seed and pre-fix kernels set aux_mmap_count = 1 before the checks. */
function auxFailed(c: MmapCtx): Draft {
  const d = new Draft_(c.s);
  if (c.s.era.auxCountEarly) d.bufW(c.E.rb).auxMmapCount = 1;
  return d;
}

/**
 * setup_aux returned NULL. The seed's failure path (rb_free_aux with aux_refcount 0) keeps
 * the pages: aux_nr_pages stays set, aux_pgoff keeps its old value. 6.1+ free them.
 */
function auxRefused(c: MmapCtx): Tr {
  const d = auxFailed(c);
  if (c.s.era.seed) {
    const b = d.bufW(c.E.rb);
    b.auxNrPages = c.op.pages;
    b.auxRefcount -= 1;
    b.aux0Offset = 0;
    b.aux0Size = 0;
  }
  return trD_(d, err_("ENOMEM"), "mmap.aux.setup-refused");
}

/** An AUX error after the count was set: the rule's errno, with what auxFailed leaves. */
const auxError = (c: MmapCtx, id: RuleId): Tr[] => [trD_(auxFailed(c), err_(ruleOf(id).errno!), id)];

const MMAP_DATA: Bodies["mmapData"] = {
  "mmap.data.remap": remap(false, false),
  "mmap.data.remap.charged": remap(true, false),
  "mmap.data.new": (c, id) => {
    const s = c.s;
    const acct = acctOf(c);
    const d = new Draft_(s);
    if (c.E.rb >= 0) detachEv(d, c.e); // raced with perf_mmap_close: continue as if !event->rb
    const bid = d.bufs.length;
    d.addBuf({ ...NO_BUF, id: bid, nrPages: c.nr, mmapCount: 1, mmapLocked: acct.extra, overwrite: (c.prot & P_W) === 0, dead: false, mmapUser: c.u, mmapMm: c.p });
    const ew = d.evW(c.e);
    ew.rb = bid;
    ew.mmapCount = s.era.refcountT ? 1 : ew.mmapCount + 1;
    d.addLocked(c.u, acct.userExtra); // current_user()
    d.addPinned(c.p, acct.extra); // vma->vm_mm
    const failed = mapRange(d, c);
    return [trD_(d, failed ? ENOMEM_ : OK_, failed ? "mmap.maprange.fail" : id), trS_(s, ENOMEM_, "mmap.data.enomem")];
  },
};

const MMAP_AUX: Bodies["mmapAux"] = {
  "mmap.aux.remap": remap(false, true),
  "mmap.aux.remap.charged": remap(true, true),
  "mmap.aux.eperm": auxError,
  "mmap.aux.nosetup": auxError,
  "mmap.aux.nosetup.enotsupp": auxError,
  "mmap.aux.rw-single": auxError,
  "mmap.aux.setup-refused": (c) => [auxRefused(c)],
  "mmap.aux.new": (c, id) => {
    const s = c.s;
    const refT = s.era.refcountT;
    const acct = acctOf(c);
    const d = new Draft_(s);
    const b = d.bufW(c.E.rb);
    b.mmapCount = inc(d, b.mmapCount, "rb->mmap_count", refT);
    b.auxNrPages = c.op.pages;
    b.auxPgoff = c.op.pgoff;
    b.auxRefcount = 1;
    b.auxPriv = true;
    b.auxOverwrite = (c.prot & P_W) === 0;
    b.auxMmapCount = 1;
    b.auxMmapLocked = acct.extra;
    b.aux0Offset = 0;
    b.aux0Size = 0;
    b.auxUser = c.u;
    b.auxMm = c.p;
    d.auxAllocs++;
    d.addLocked(c.u, acct.userExtra); // current_user(), whoever created the buffer
    d.addPinned(c.p, acct.extra);
    const ew = d.evW(c.e);
    ew.mmapCount = inc(d, ew.mmapCount, "event->mmap_count", refT);
    const out = mapRange(d, c)
      ? [trD_(d, ENOMEM_, "mmap.maprange.fail"), trD_(auxFailed(c), ENOMEM_, "mmap.aux.enomem")]
      : [trD_(d, OK_, refT && c.E.mmapCount === 0 ? "mmap.aux.redirected.warn" : id), trD_(auxFailed(c), ENOMEM_, "mmap.aux.enomem")];
    if (s.era.seed) out.push(auxRefused(c));
    return out;
  },
};

// ---------------------------------------------------------------------------------------
// VMA ops

const unmapBody = drafted<RangeCtx<"munmap">>((d, c) => { unmapRange(d, c.slot, c.start, c.end); });
const MUNMAP: Bodies["munmap"] = { "munmap.split.ok": unmapBody, "munmap.ok": unmapBody };

const mapFixedBody = drafted<RangeCtx<"mapFixedAnon">>((d, c) => mapFixedAnon(d, c.slot, c.start, c.end));
const MAPFIXED: Bodies["mapFixedAnon"] = { "mapfixed.split.ok": mapFixedBody, "mapfixed.ok": mapFixedBody };

const MPROTECT: Bodies["mprotect"] = {
  "mprotect.len0": (c, id) => [trS_(c.s, OK_, id)],
  "proc:mprotect": (c) => {
    const d = new Draft_(c.s);
    return [trR(d, mprotect(d, c.slot, c.start, c.end, c.prot, c.noexec))];
  },
};

const MREMAP: Bodies["mremap"] = {
  "proc:mremap": (c) => {
    const { op, m, base } = c;
    const fixed = op.toFresh ?? false;
    const off = op.offset ?? 0;
    const args: MremapArgs = {
      S: c.slot, s: off, oldP: op.oldPages, newP: op.newPages, fixed, maymove: fixed || (op.mayMove ?? false),
      T: c.p * MM_SLOTS_ + slotOf_(m, 1 - base), t: off,
    };
    const d = new Draft_(c.s);
    const mm = c.s.era.mm;
    const r = mm === 318 ? mremap318(d, args) : mm === 510 ? mremap510(d, args) : mm === 618 ? mremap618(d, args) : mremap61(d, args);
    if (fixed && errnoOf(r) === undefined) d.setBase(m, 1 - base);
    return [trR(d, r)];
  },
};

// ---------------------------------------------------------------------------------------
// Pages

const ZERO_PAGE: UserPageObs = Object.freeze({ dataOffset: 0, dataSize: 0, auxHead: 0, auxOffset: 0, auxSize: 0 });

/** do_user_addr_fault: no VMA, or one whose protection refuses the access. */
const segv = <C extends { s: State }>(c: C, id: RuleId): Tr[] => [trS_(c.s, SIGSEGV, id)];

const SETAUX: Bodies["setAux"] = {
  "setaux.unmapped": segv,
  "setaux.prot": segv,
  "setaux.anon": (c, id) => {
    const { v, idx } = c;
    const rel = 0 - v.start;
    const d = new Draft_(c.s);
    const data = (v.data ?? []).filter((w) => w.rel !== rel);
    data.push({ rel, off: c.op.offsetPages * PAGE, size: c.op.sizePages * PAGE });
    d.vmasW()[idx] = { ...v, data };
    anonWriteFault(d, idx);
    return [trD_(d, OK_, id)];
  },
  "proc:fault": (c) => {
    const d = new Draft_(c.s);
    const r = resolve(d, c.idx, 0 - c.v.start, true);
    if ("sig" in r) return [trD_(d, SIGBUS, r.why === "norb" ? "setaux.norb" : "setaux.nonuser")];
    const b = d.bufW(r.page.buf);
    const off = c.op.offsetPages * PAGE;
    const size = c.op.sizePages * PAGE;
    if (r.page.kind === 1) { b.auxOffset = off; b.auxSize = size; } else { b.aux0Offset = off; b.aux0Size = size; }
    return [trD_(d, OK_, "setaux.ok")];
  },
};

const TOUCH: Bodies["touch"] = {
  "touch.unmapped": segv,
  "touch.prot": segv,
  "touch.anon": (c, id) => {
    if (!c.op.write || c.v.av) return [trS_(c.s, OK_, id)];
    const d = new Draft_(c.s);
    anonWriteFault(d, c.idx);
    return [trD_(d, OK_, id)];
  },
  "proc:fault": (c) => {
    const d = new Draft_(c.s);
    const r = resolve(d, c.idx, c.op.page - c.v.start, c.op.write);
    if ("sig" in r) return [trD_(d, SIGBUS, r.why === "norb" ? "touch.norb" : r.why === "write" ? "touch.write-nonuser" : "touch.beyond")];
    return [trD_(d, OK_, "touch.ok")];
  },
};

const READPAGE: Bodies["readUserPage"] = {
  "readpage.unmapped": segv,
  "readpage.prot": segv,
  "readpage.anon": (c, id) => {
    const rel = 0 - c.v.start;
    const w = c.v.data?.find((x) => x.rel === rel);
    return [trS_(c.s, okPage(w ? { dataOffset: 0, dataSize: 0, auxHead: 0, auxOffset: w.off, auxSize: w.size } : ZERO_PAGE), id)];
  },
  "proc:fault": (c) => {
    const d = new Draft_(c.s);
    const r = resolve(d, c.idx, 0 - c.v.start, false);
    if ("sig" in r) return [trD_(d, SIGBUS, r.why === "norb" ? "readpage.norb" : "readpage.beyond")];
    const b = d.buf(r.page.buf);
    if (r.page.kind === 1) {
      return [trD_(d, okPage({ dataOffset: PAGE, dataSize: b.nrPages * PAGE, auxHead: 0, auxOffset: b.auxOffset, auxSize: b.auxSize }), "readpage.user")];
    }
    if (r.page.kind === 3 && r.page.idx === 0 && (b.aux0Offset !== 0 || b.aux0Size !== 0)) {
      return [trD_(d, okPage({ dataOffset: 0, dataSize: 0, auxHead: 0, auxOffset: b.aux0Offset, auxSize: b.aux0Size }), "readpage.other")];
    }
    return [trD_(d, okPage(ZERO_PAGE), "readpage.other")];
  },
};

// ---------------------------------------------------------------------------------------
// Knobs

const RLIMIT: Bodies["rlimit"] = {
  "rlimit.set": drafted((d, c) => {
    const v = c.op.memlockPages === "unlimited" ? RLIM_INF_PAGES : c.op.memlockPages;
    if (c.p === 0) d.rlimit = v;
    else d.procW(c.p).rlimit = v;
  }),
};
const SYSCTL: Bodies["sysctlMlock"] = { "sysctl.mlock": drafted((d, c) => { d.mlockKb = c.op.kb; }) };
const AUXFAULT: Bodies["auxFault"] = { "auxfault.set": drafted((d, c) => { d.auxFault = c.op.fail; }) };
const MAPRANGEFAULT: Bodies["mapRangeFault"] = { "maprangefault.set": drafted((d, c) => { d.mapRangeFault = c.op.times; }) };

// ---------------------------------------------------------------------------------------
// Processes (spec/notes/processes.md)

const FORK: Bodies["fork"] = { "fork.ok": drafted((d, c) => forkProc(d, c.from, c.p)) };
const EXIT: Bodies["exit"] = { "exit.ok": drafted((d, c) => exitProc(d, c.p)) };
const SETUID: Bodies["setuid"] = {
  "setuid.ok": drafted((d, c) => { if (c.u !== c.cur) d.procW(c.p).user = c.u; }),
};
const THREAD: Bodies["thread"] = { "thread.ok": drafted((d, c) => threadProc(d, c.from, c.p)) };
const PAR: Bodies["par"] = { "par.block": (c, id) => [trS_(c.s, OK_, id)] };
const SENDFD: Bodies["sendFd"] = {
  "sendfd.ok": drafted((d, c) => { d.evW(c.e).fdMask |= 1 << c.to; }),
};

/** Every body, by decision point and rule id. */
export const BODIES: Bodies = {
  open: OPEN, close: CLOSE, setOutput: SETOUTPUT, mmap: {}, mmapData: MMAP_DATA, mmapAux: MMAP_AUX,
  munmap: MUNMAP, mprotect: MPROTECT, mremap: MREMAP, mapFixedAnon: MAPFIXED,
  touch: TOUCH, setAux: SETAUX, readUserPage: READPAGE, rlimit: RLIMIT, sysctlMlock: SYSCTL, auxFault: AUXFAULT, mapRangeFault: MAPRANGEFAULT,
  fork: FORK, exit: EXIT, setuid: SETUID, sendFd: SENDFD, thread: THREAD, par: PAR,
};

/** Each profile's rule lists, built once. */
export const TABLES: Readonly<Record<ProfileId, Table>> = Object.fromEntries(PROFILES.map((p) => [p, buildTable(p, BODIES)])) as Record<ProfileId, Table>;

// ---------------------------------------------------------------------------------------
// Contexts: a fresh small object per step (young objects: cheaper than re-filling a
// long-lived one, whose every store of a new state would go through the write barrier).

/** Event i as process p sees it: NO_EV unless p holds an fd for it. */
function liveEv(s: State, i: number, p: number) {
  const e = s.evs[i];
  return e !== undefined && ((e.fdMask >> p) & 1) !== 0 ? e : NO_EV_;
}

/** The base slot of handle m in process p's mm. */
function baseSlot(s: State, m: number, p: number): number {
  return p * MM_SLOTS_ + slotOf_(m, s.bases[m] ?? 0);
}

function openCtx(s: State, op: OpOf<"open">, p: number, task: number): OpenCtx {
  let ti = -1;
  let T = NO_EV_;
  if (op.outputTo !== undefined) {
    const t = handleIndex_(op.outputTo);
    const te = liveEv(s, t, p);
    if (te.fd) { ti = t; T = te; }
  }
  return { s, op, p, task, e: handleIndex_(op.ev), cpu: op.cpu ?? -1, inherit: op.inherit ?? false, aux: op.pmu === "aux", ti, T };
}

/**
 * An attr.inherit group leader whose task forked: the context-switch optimisation
 * (perf_event_context_sched_out swaps the contexts of a task and its clone) may have moved the
 * original event into any task that inherited it, so the group checks may see another
 * ctx->task (open.group.task) or, when that task exited, PERF_EVENT_STATE_EXIT
 * (open.group.exited, 6.12+). Every placement is allowed: the outcomes of each are added.
 */
function openSwapped(L: Table["lists"], c: OpenCtx, ts: Tr[]): Tr[] {
  const out = ts.slice();
  for (let h = 0, m = c.T.inheritedBy | (1 << c.T.target); m >> h !== 0; h++) {
    if (((m >> h) & 1) === 0 || h === c.T.target) continue;
    const more = evaluate_(L.open, { ...c, T: { ...c.T, target: h } });
    if (more !== null) for (const t of more) if (!out.some((o) => o.rule === t.rule && sameOutcome(o.outcome, t.outcome))) out.push(t);
  }
  return out;
}

function mmapCtx(s0: State, op: OpOf<"mmap">, p: number, task: number): MmapCtx {
  const m = handleIndex_(op.map);
  const d = new Draft_(s0);
  d.setMapPages(m, op.pages);
  if (task !== 0) d.setMapOwner(m, task);
  const s = d.finish();
  const e = handleIndex_(op.ev);
  const E = liveEv(s, e, p);
  const R = E.rb >= 0 ? s.bufs[E.rb] : NO_BUF_;
  return { s, op, p, u: s.procs[task]?.user ?? 0, m, slot: p * MM_SLOTS_ + slotOf_(m, 0), e, E, R, nr: op.pages - 1, prot: PROT_BITS_[op.prot], hasAux: R.auxNrPages !== 0, acct: null };
}

function rangeCtx<K extends "munmap" | "mapFixedAnon">(s: State, op: OpOf<K>, m: number, p: number, start: number, pages: number): RangeCtx<K> {
  const slot = baseSlot(s, m, p);
  return { s, op, m, slot, start, end: start + pages, cut: pages !== 0 && perfCut_(s.vmas, slot, start, start + pages) };
}

function pageCtx<K extends "touch" | "setAux" | "readUserPage">(s: State, op: OpOf<K>, map: string, p: number, page: number): PageCtx<K> {
  const slot = baseSlot(s, handleIndex_(map), p);
  const idx = findIdx_(s.vmas, slot, page);
  return { s, op, slot, idx, v: idx < 0 ? NO_VMA_ : s.vmas[idx] };
}

/**
 * The process an op runs in (spec/program.ts opProc): its `proc`; an op on a map handle
 * without one runs in the process whose mmap introduced the handle; p0 otherwise.
 */
export function procOf(s: State, op: Op): number {
  const h = (op as { proc?: string }).proc;
  if (h !== undefined) return handleIndex_(h);
  if (s.mapOwner.length === 0 || op.op === "mmap") return 0;
  const map = (op as { map?: string }).map;
  return map === undefined ? 0 : (s.mapOwner[handleIndex_(map)] ?? 0);
}

/**
 * step with a given table: the op's context, then its rule list through the one
 * evaluator. A plain switch (exhaustive: `never` below) rather than a ts-pattern match:
 * this is the hot path, and match() allocates per call (4x slower step, measured).
 */
export function stepWith(t: Table, s: State, op: Op): Tr[] | null {
  const task = procOf(s, op);
  // the task's process (mm, fd table, rlimit): the task itself unless it is a thread
  const p = s.procs.length === 1 ? task : mmOf(s, task);
  const ts = stepIn(t, s, op, p, task);
  // Step VmPin is the op's task's mm's (fork: the child's, 0; thread: the shared mm's; exit
  // and the par marker: 0)
  if (ts !== null && (task !== 0 || op.op === "exit" || op.op === "par")) {
    for (const x of ts) x.vmPinKb = op.op === "exit" || op.op === "par" ? 0 : pinnedOf(x.next, op.op === "thread" ? mmOf(x.next, task) : p) * 4;
  }
  return ts;
}

/** `p`: the process (mm, fd table, rlimit) the op runs in; `task`: the calling task (its user, hw.target). */
function stepIn(t: Table, s: State, op: Op, p: number, task: number): Tr[] | null {
  const L = t.lists;
  switch (op.op) {
    case "open": {
      const c = openCtx(s, op, p, task);
      const ts = evaluate_(L.open, c);
      return c.ti >= 0 && c.T.inheritedBy !== 0 && ts !== null ? openSwapped(L, c, ts) : ts;
    }
    case "close": {
      const e = handleIndex_(op.ev);
      return evaluate_(L.close, { s, op, p, e, E: liveEv(s, e, p) });
    }
    case "setOutput": {
      const e = handleIndex_(op.ev);
      const tt = op.target === null ? -1 : handleIndex_(op.target);
      return evaluate_(L.setOutput, { s, op, p, e, E: liveEv(s, e, p), t: tt, T: tt < 0 ? NO_EV_ : liveEv(s, tt, p) });
    }
    case "mmap": {
      const c = mmapCtx(s, op, p, task);
      return evaluate_(L.mmap, c) ?? evaluate_(op.pgoff === 0 ? L.mmapData : L.mmapAux, c);
    }
    case "munmap": {
      const m = handleIndex_(op.map);
      return evaluate_(L.munmap, rangeCtx(s, op, m, p, op.offset ?? 0, op.pages ?? s.mapPages[m] ?? 0));
    }
    case "mapFixedAnon": return evaluate_(L.mapFixedAnon, rangeCtx(s, op, handleIndex_(op.map), p, op.offset, op.pages));
    case "mprotect": {
      const m = handleIndex_(op.map);
      const start = op.offset ?? 0;
      const c: MprotectCtx = {
        s, op, slot: baseSlot(s, m, p), start, end: start + (op.pages ?? s.mapPages[m] ?? 0), prot: PROT_BITS_[op.prot],
        noexec: t.has.has("mprotect.exec"),
      };
      return evaluate_(L.mprotect, c);
    }
    case "mremap": {
      const m = handleIndex_(op.map);
      const base = s.bases[m] ?? 0;
      return evaluate_(L.mremap, { s, op, p, m, base, slot: p * MM_SLOTS_ + slotOf_(m, base) });
    }
    case "touch": return evaluate_(L.touch, pageCtx(s, op, op.map, p, op.page));
    case "setAux": return evaluate_(L.setAux, pageCtx(s, op, op.map, p, 0));
    case "readUserPage": return evaluate_(L.readUserPage, pageCtx(s, op, op.map, p, 0));
    case "rlimit": return evaluate_(L.rlimit, { s, op, p });
    case "sysctlMlock": return evaluate_(L.sysctlMlock, { s, op });
    case "auxFault": return evaluate_(L.auxFault, { s, op });
    case "mapRangeFault": return evaluate_(L.mapRangeFault, { s, op });
    case "fork": return evaluate_(L.fork, { s, op, p, from: handleIndex_(op.from) });
    case "exit": return evaluate_(L.exit, { s, op, p: task });
    case "setuid": return evaluate_(L.setuid, { s, op, p: task, u: handleIndex_(op.user), cur: userOf(s, task) });
    case "sendFd": {
      const e = handleIndex_(op.ev);
      return evaluate_(L.sendFd, { s, op, p, to: mmOf(s, handleIndex_(op.to)), e, E: liveEv(s, e, p) });
    }
    case "thread": return evaluate_(L.thread, { s, op, p: task, from: handleIndex_(op.from) });
    case "par": return evaluate_(L.par, { s, op });
    default: {
      const never: never = op;
      throw new Error(`unknown op ${JSON.stringify(never)}`);
    }
  }
}

/** Never empty, never throws: an internal error becomes one transition under rule spec.internal. */
export function stepSafe(s: State, op: Op, profile: ProfileId, table: Table = TABLES[profile]): Tr[] {
  if (s.era.id !== profile) s = { ...s, era: ERAS[profile] };
  try {
    const ts = stepWith(table, s, op);
    if (ts !== null && ts.length > 0) return ts;
    return [trS_(s, err_("ESPECBUG"), "spec.internal")];
  } catch (e) {
    const d = new Draft_(s);
    d.warn(`spec internal error: ${(e as Error).message}`);
    return [trD_(d, err_("ESPECBUG"), "spec.internal")];
  }
}
