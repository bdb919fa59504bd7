/**
 * step(state, op): every transition the era allows, with the rule that decided it.
 * Most ops have one; a new data buffer or AUX area may also fail with ENOMEM (the
 * allocation, or the PMU's setup_aux refusing); with the fault switch on, AUX allocation
 * gives ENOMEM only. Transitions are listed preferred first (success before ENOMEM).
 */
import type { RuleId } from "../rules/index.ts";
import { handleIndex, type Op, type Outcome, type UserPageObs } from "../program.ts";
import { anonWriteFault, mapFixedAnon, findIdx, insertVma, mprotect, mremap318, mremap61, mremap618, resolve, unmapRange as unmap, type MremapArgs, type OpResult } from "./mm.ts";
import { calcLimits, detachEv, inc, maybeFree, putBuf } from "./perf.ts";
import { Draft, ERAS, P_W, P_X, PROT_BITS, RLIM_INF_PAGES, isPow2, slotOf, type Ev, type State, type Vma } from "./state.ts";

export interface Tr { outcome: Outcome; vmPinKb: number; next: State; rule: RuleId }

const PAGE = 4096;
export const OK: Outcome = Object.freeze({ ok: true as const });
const SIGSEGV: Outcome = Object.freeze({ signal: "SIGSEGV" as const });
const SIGBUS: Outcome = Object.freeze({ signal: "SIGBUS" as const });
const ERR = new Map<string, Outcome>();
export function err(e: string): Outcome {
  let o = ERR.get(e);
  if (o === undefined) { o = Object.freeze({ errno: e }); ERR.set(e, o); }
  return o;
}
const okPage = (page: UserPageObs): Outcome => ({ ok: true, page });

function trS(s: State, outcome: Outcome, rule: RuleId): Tr {
  return { outcome, vmPinKb: s.pinnedVm * 4, next: s, rule };
}
function trD(d: Draft, outcome: Outcome, rule: RuleId): Tr {
  const next = d.finish();
  return { outcome, vmPinKb: next.pinnedVm * 4, next, rule };
}
function trR(d: Draft, r: OpResult): Tr {
  return trD(d, r.errno === undefined ? OK : err(r.errno), r.rule);
}

type OpOf<K extends Op["op"]> = Extract<Op, { op: K }>;

// ---------------------------------------------------------------------------------------
// Events

function opOpen(s: State, op: OpOf<"open">): Tr[] {
  const era = s.era;
  const e = handleIndex(op.ev);
  const cpu = op.cpu ?? -1;
  const inherit = op.inherit ?? false;
  const aux = op.pmu === "aux";
  let ti = -1;
  let T: Ev | undefined;
  if (op.outputTo !== undefined) {
    const t = handleIndex(op.outputTo);
    const te = s.evs[t];
    if (te !== undefined && te.fd) { ti = t; T = te; }
  }
  // perf_event_open: group leader's inherit, then perf_event_alloc (cpu), perf_init_event (pmu)
  if (T !== undefined && T.inherit !== inherit) return [trS(s, err("EINVAL"), "open.group.inherit")];
  if (cpu >= s.cfg.cpus) return [trS(s, err("EINVAL"), "open.cpu")];
  if (aux && s.cfg.pmus.aux === null) return [trS(s, err("ENOENT"), "open.nopmu")];
  const d = new Draft(s);
  if (T !== undefined) {
    if (T.groupLeader !== ti) return [trS(s, err("EINVAL"), "open.group.notleader")];
    if (T.cpu !== cpu) return [trS(s, err("EINVAL"), era.seed ? "open.output.cpu" : "open.group.cpu")];
    if (T.rb < 0) return [trS(s, err("EINVAL"), "open.output.norb")];
    if (!era.seed && s.bufs[T.rb].mmapCount === 0) return [trS(s, err("EINVAL"), "setoutput.rb-unmapped")];
    d.setEv(e, { fd: true, aux, cpu, inherit, rb: T.rb, mmapCount: 0, groupLeader: ti, freed: false });
    return [trD(d, OK, "open.output.ok")];
  }
  d.setEv(e, { fd: true, aux, cpu, inherit, rb: -1, mmapCount: 0, groupLeader: e, freed: false });
  return [trD(d, OK, op.outputTo !== undefined ? "open.output.deadfd" : "open.ok")];
}

function opClose(s: State, op: OpOf<"close">): Tr[] {
  const e = handleIndex(op.ev);
  const E = s.evs[e];
  if (E === undefined || !E.fd) return [trS(s, err("EBADF"), "close.ebadf")];
  const d = new Draft(s);
  d.evW(e).fd = false;
  maybeFree(d, e);
  return [trD(d, OK, "close.ok")];
}

function opSetOutput(s: State, op: OpOf<"setOutput">): Tr[] {
  const e = handleIndex(op.ev);
  const E = s.evs[e];
  if (E === undefined || !E.fd) return [trS(s, err("EBADF"), "setoutput.ebadf")];
  if (op.target === null) {
    if (E.mmapCount !== 0) return [trS(s, err("EINVAL"), "setoutput.mapped")];
    const d = new Draft(s);
    detachEv(d, e);
    return [trD(d, OK, "setoutput.detach")];
  }
  const t = handleIndex(op.target);
  const T = s.evs[t];
  if (T === undefined || !T.fd) return [trS(s, err("EBADF"), "setoutput.target-ebadf")];
  if (t === e) return [trS(s, err("EINVAL"), "setoutput.self")];
  if (T.cpu !== E.cpu) return [trS(s, err("EINVAL"), "setoutput.cpu")];
  if (E.mmapCount !== 0) return [trS(s, err("EINVAL"), "setoutput.mapped")];
  if (T.rb < 0) return [trS(s, err("EINVAL"), "setoutput.target-norb")];
  if (!s.era.seed && s.bufs[T.rb].mmapCount === 0) return [trS(s, err("EINVAL"), "setoutput.rb-unmapped")];
  const d = new Draft(s);
  const old = E.rb;
  d.evW(e).rb = T.rb;
  if (old >= 0 && old !== T.rb) putBuf(d, old);
  return [trD(d, OK, "setoutput.attach")];
}

// ---------------------------------------------------------------------------------------
// perf_mmap

function newVma(s: State, m: number, op: OpOf<"mmap">, e: number, prot: number): Vma {
  const v: Vma = { slot: slotOf(m, 0), start: 0, end: op.pages, pgoff: op.pgoff, prot, ev: e };
  return s.era.lazyPtes ? { ...v, ptes: [] } : v;
}

function opMmap(s: State, op: OpOf<"mmap">): Tr[] {
  const era = s.era;
  const m = handleIndex(op.map);
  const e = handleIndex(op.ev);
  const s0 = new Draft(s);
  s0.setMapPages(m, op.pages);
  s = s0.finish();
  const E = s.evs[e];
  if (E === undefined || !E.fd) return [trS(s, err("EBADF"), "mmap.ebadf")];
  if (op.pages === 0) return [trS(s, err("EINVAL"), "mmap.len0")];
  const prot = PROT_BITS[op.prot];
  if (era.noexec && (prot & P_X)) return [trS(s, err("EPERM"), "mmap.noexec")];
  if (E.cpu === -1 && E.inherit) return [trS(s, err("EINVAL"), "mmap.inherit")];
  if (op.shared === false) return [trS(s, err("EINVAL"), "mmap.shared")];
  return op.pgoff === 0 ? mmapData(s, op, m, e, E, prot) : mmapAux(s, op, m, e, E, prot);
}

function mmapData(s: State, op: OpOf<"mmap">, m: number, e: number, E: Ev, prot: number): Tr[] {
  const era = s.era;
  const pages = op.pages;
  const nr = pages - 1;
  if (nr !== 0 && !isPow2(nr)) return [trS(s, err("EINVAL"), "mmap.data.pow2")];
  if (E.rb >= 0) {
    const R = s.bufs[E.rb];
    if (R.nrPages !== nr) return [trS(s, err("EINVAL"), "mmap.data.size")];
    if (era.ebusy && E.mmapCount === 0) return [trS(s, err("EBUSY"), "mmap.data.ebusy")];
    if (R.mmapCount !== 0) {
      const d = new Draft(s);
      const b = d.bufW(E.rb);
      b.mmapCount = inc(d, b.mmapCount, "rb->mmap_count", era.refcountT);
      const ew = d.evW(e);
      ew.mmapCount = inc(d, ew.mmapCount, "event->mmap_count", era.refcountT);
      if (era.remapCharges) d.lockedVm += pages;
      insertVma(d, newVma(s, m, op, e, prot));
      return [trD(d, OK, era.remapCharges ? "mmap.data.remap.charged" : "mmap.data.remap")];
    }
  }
  const acct = calcLimits(s, pages);
  if (!acct.ok) return [trS(s, err("EPERM"), "mmap.data.eperm")];
  const d = new Draft(s);
  if (E.rb >= 0) detachEv(d, e); // raced with perf_mmap_close: continue as if !event->rb
  const id = d.bufs.length;
  d.addBuf({
    id, nrPages: nr, mmapCount: 1, mmapLocked: acct.extra, overwrite: (prot & P_W) === 0, auxOffset: 0, auxSize: 0,
    auxNrPages: 0, auxPgoff: 0, auxMmapCount: 0, auxMmapLocked: 0, auxRefcount: 0, auxPriv: false, auxOverwrite: false,
    dead: false, aux0Offset: 0, aux0Size: 0,
  });
  const ew = d.evW(e);
  ew.rb = id;
  ew.mmapCount = era.refcountT ? 1 : ew.mmapCount + 1;
  d.lockedVm += acct.userExtra;
  d.pinnedVm += acct.extra;
  insertVma(d, newVma(s, m, op, e, prot));
  return [trD(d, OK, "mmap.data.new"), trS(s, err("ENOMEM"), "mmap.data.enomem")];
}

function mmapAux(s: State, op: OpOf<"mmap">, m: number, e: number, E: Ev, prot: number): Tr[] {
  const era = s.era;
  if (E.rb < 0) return [trS(s, err("EINVAL"), "mmap.aux.norb")];
  const id = E.rb;
  const R = s.bufs[id];
  const pages = op.pages;
  const pgoff = op.pgoff;
  if (R.auxOffset < (R.nrPages + 1) * PAGE) return [trS(s, err("EINVAL"), "mmap.aux.overlap")];
  if (R.auxOffset !== pgoff * PAGE) return [trS(s, err("EINVAL"), "mmap.aux.offset")];
  const hasAux = R.auxNrPages !== 0;
  if (hasAux && R.auxPgoff !== pgoff) return [trS(s, err("EINVAL"), "mmap.aux.pgoff-mismatch")];
  if (R.auxSize !== pages * PAGE) return [trS(s, err("EINVAL"), "mmap.aux.size")];
  if (hasAux && R.auxNrPages !== pages) return [trS(s, err("EINVAL"), "mmap.aux.nr-mismatch")];
  if (!isPow2(pages)) return [trS(s, err("EINVAL"), "mmap.aux.pow2")];
  if (R.mmapCount === 0) return [trS(s, err("EINVAL"), "mmap.aux.rb-unmapped")];
  const refT = era.refcountT;
  const warnRedirect = refT && E.mmapCount === 0;
  if (hasAux) {
    const d = new Draft(s);
    const b = d.bufW(id);
    b.mmapCount = inc(d, b.mmapCount, "rb->mmap_count", refT);
    b.auxMmapCount = inc(d, b.auxMmapCount, "rb->aux_mmap_count", refT);
    const ew = d.evW(e);
    ew.mmapCount = inc(d, ew.mmapCount, "event->mmap_count", refT);
    if (era.remapCharges) d.lockedVm += pages;
    insertVma(d, newVma(s, m, op, e, prot));
    return [trD(d, OK, warnRedirect ? "mmap.aux.redirected.warn" : era.remapCharges ? "mmap.aux.remap.charged" : "mmap.aux.remap")];
  }
  // New AUX area. Seed and pre-fix kernels set aux_mmap_count = 1 before the accounting check.
  const failed = (): Draft => {
    const d = new Draft(s);
    if (era.auxCountEarly) d.bufW(id).auxMmapCount = 1;
    return d;
  };
  const acct = calcLimits(s, pages);
  if (!acct.ok) return [trD(failed(), err("EPERM"), "mmap.aux.eperm")];
  if (!E.aux) return [trD(failed(), err(era.nosetup), era.nosetupRule)];
  const out: Tr[] = [];
  if (!s.auxFault) {
    const d = new Draft(s);
    const b = d.bufW(id);
    b.mmapCount = inc(d, b.mmapCount, "rb->mmap_count", refT);
    b.auxNrPages = pages;
    b.auxPgoff = pgoff;
    b.auxRefcount = 1;
    b.auxPriv = true;
    b.auxOverwrite = (prot & P_W) === 0;
    b.auxMmapCount = 1;
    b.auxMmapLocked = acct.extra;
    b.aux0Offset = 0;
    b.aux0Size = 0;
    d.auxAllocs++;
    d.lockedVm += acct.userExtra;
    d.pinnedVm += acct.extra;
    const ew = d.evW(e);
    ew.mmapCount = inc(d, ew.mmapCount, "event->mmap_count", refT);
    insertVma(d, newVma(s, m, op, e, prot));
    out.push(trD(d, OK, warnRedirect ? "mmap.aux.redirected.warn" : "mmap.aux.new"));
  }
  // setup_aux returned NULL. The seed's failure path (rb_free_aux with aux_refcount 0) keeps
  // the pages: aux_nr_pages stays set, aux_pgoff keeps its old value. 6.1+ free them.
  const refused = failed();
  if (era.seed) {
    const b = refused.bufW(id);
    b.auxNrPages = pages;
    b.auxRefcount -= 1;
    b.aux0Offset = 0;
    b.aux0Size = 0;
  }
  if (s.auxFault) out.push(trD(refused, err("ENOMEM"), "mmap.aux.setup-refused"));
  else {
    out.push(trD(failed(), err("ENOMEM"), "mmap.aux.enomem"));
    if (era.seed) out.push(trD(refused, err("ENOMEM"), "mmap.aux.setup-refused"));
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// VMA ops

function baseSlot(s: State, map: string): { m: number; b: number; slot: number } {
  const m = handleIndex(map);
  const b = s.bases[m] ?? 0;
  return { m, b, slot: slotOf(m, b) };
}

function opMunmap(s: State, op: OpOf<"munmap">): Tr[] {
  const { m, slot } = baseSlot(s, op.map);
  const pages = op.pages ?? s.mapPages[m] ?? 0;
  const off = op.offset ?? 0;
  if (pages === 0) return [trS(s, err("EINVAL"), "munmap.len0")];
  const d = new Draft(s);
  const r = unmap(d, slot, off, off + pages);
  if (r === "EINVAL") return [trS(s, err("EINVAL"), "munmap.split")];
  return [trD(d, OK, r === "split" ? "munmap.split.ok" : "munmap.ok")];
}



function opMprotect(s: State, op: OpOf<"mprotect">): Tr[] {
  const { m, slot } = baseSlot(s, op.map);
  const pages = op.pages ?? s.mapPages[m] ?? 0;
  const off = op.offset ?? 0;
  const d = new Draft(s);
  return [trR(d, mprotect(d, slot, off, off + pages, PROT_BITS[op.prot]))];
}

function opMremap(s: State, op: OpOf<"mremap">): Tr[] {
  const { m, b, slot } = baseSlot(s, op.map);
  if (op.newPages === 0) return [trS(s, err("EINVAL"), "mremap.newlen0")];
  const fixed = op.toFresh ?? false;
  const off = op.offset ?? 0;
  const args: MremapArgs = {
    S: slot, s: off, oldP: op.oldPages, newP: op.newPages, fixed, maymove: fixed || (op.mayMove ?? false),
    T: slotOf(m, 1 - b), t: off,
  };
  const d = new Draft(s);
  const mm = s.era.mm;
  const r = mm === 318 ? mremap318(d, args) : mm === 618 ? mremap618(d, args) : mremap61(d, args);
  if (r.errno === undefined && fixed) d.setBase(m, 1 - b);
  return [trR(d, r)];
}

function opMapFixedAnon(s: State, op: OpOf<"mapFixedAnon">): Tr[] {
  const { slot } = baseSlot(s, op.map);
  const d = new Draft(s);
  return [trR(d, mapFixedAnon(d, slot, op.offset, op.offset + op.pages))];
}

// ---------------------------------------------------------------------------------------
// Pages

function opSetAux(s: State, op: OpOf<"setAux">): Tr[] {
  const { slot } = baseSlot(s, op.map);
  const idx = findIdx(s.vmas, slot, 0);
  if (idx < 0) return [trS(s, SIGSEGV, "setaux.unmapped")];
  const v = s.vmas[idx];
  if ((v.prot & P_W) === 0) return [trS(s, SIGSEGV, "setaux.prot")];
  const off = op.offsetPages * PAGE;
  const size = op.sizePages * PAGE;
  const d = new Draft(s);
  const rel = 0 - v.start;
  if (v.ev < 0) {
    const data = (v.data ?? []).filter((w) => w.rel !== rel);
    data.push({ rel, off, size });
    d.vmasW()[idx] = { ...v, data };
    anonWriteFault(d, idx);
    return [trD(d, OK, "setaux.anon")];
  }
  const r = resolve(d, idx, rel, true);
  if ("sig" in r) return [trD(d, SIGBUS, r.why === "norb" ? "setaux.norb" : "setaux.nonuser")];
  const b = d.bufW(r.page.buf);
  if (r.page.kind === 1) { b.auxOffset = off; b.auxSize = size; } else { b.aux0Offset = off; b.aux0Size = size; }
  return [trD(d, OK, "setaux.ok")];
}

function opTouch(s: State, op: OpOf<"touch">): Tr[] {
  const { slot } = baseSlot(s, op.map);
  const idx = findIdx(s.vmas, slot, op.page);
  if (idx < 0) return [trS(s, SIGSEGV, "touch.unmapped")];
  const v = s.vmas[idx];
  if (v.prot === 0 || (op.write && (v.prot & P_W) === 0)) return [trS(s, SIGSEGV, "touch.prot")];
  if (v.ev < 0) {
    if (!op.write || v.av) return [trS(s, OK, "touch.anon")];
    const d = new Draft(s);
    anonWriteFault(d, idx);
    return [trD(d, OK, "touch.anon")];
  }
  const d = new Draft(s);
  const r = resolve(d, idx, op.page - v.start, op.write);
  if ("sig" in r) return [trD(d, SIGBUS, r.why === "norb" ? "touch.norb" : r.why === "write" ? "touch.write-nonuser" : "touch.beyond")];
  return [trD(d, OK, "touch.ok")];
}

const ZERO_PAGE: UserPageObs = Object.freeze({ dataOffset: 0, dataSize: 0, auxHead: 0, auxOffset: 0, auxSize: 0 });

function opReadUserPage(s: State, op: OpOf<"readUserPage">): Tr[] {
  const { slot } = baseSlot(s, op.map);
  const idx = findIdx(s.vmas, slot, 0);
  if (idx < 0) return [trS(s, SIGSEGV, "readpage.unmapped")];
  const v = s.vmas[idx];
  if (v.prot === 0) return [trS(s, SIGSEGV, "readpage.prot")];
  const rel = 0 - v.start;
  if (v.ev < 0) {
    const w = v.data?.find((x) => x.rel === rel);
    return [trS(s, okPage(w ? { dataOffset: 0, dataSize: 0, auxHead: 0, auxOffset: w.off, auxSize: w.size } : ZERO_PAGE), "readpage.anon")];
  }
  const d = new Draft(s);
  const r = resolve(d, idx, rel, false);
  if ("sig" in r) return [trD(d, SIGBUS, r.why === "norb" ? "readpage.norb" : "readpage.beyond")];
  const b = d.buf(r.page.buf);
  if (r.page.kind === 1) {
    return [trD(d, okPage({ dataOffset: PAGE, dataSize: b.nrPages * PAGE, auxHead: 0, auxOffset: b.auxOffset, auxSize: b.auxSize }), "readpage.user")];
  }
  if (r.page.kind === 3 && r.page.idx === 0 && (b.aux0Offset !== 0 || b.aux0Size !== 0)) {
    return [trD(d, okPage({ dataOffset: 0, dataSize: 0, auxHead: 0, auxOffset: b.aux0Offset, auxSize: b.aux0Size }), "readpage.other")];
  }
  return [trD(d, okPage(ZERO_PAGE), "readpage.other")];
}

// ---------------------------------------------------------------------------------------

export function stepState(s: State, op: Op): Tr[] {
  switch (op.op) {
    case "open": return opOpen(s, op);
    case "close": return opClose(s, op);
    case "mmap": return opMmap(s, op);
    case "munmap": return opMunmap(s, op);
    case "mremap": return opMremap(s, op);
    case "mprotect": return opMprotect(s, op);
    case "mapFixedAnon": return opMapFixedAnon(s, op);
    case "setAux": return opSetAux(s, op);
    case "setOutput": return opSetOutput(s, op);
    case "rlimit": {
      const hard = s.cfg.memlockHardPages ?? "unlimited";
      if (hard !== "unlimited" && (op.memlockPages === "unlimited" || op.memlockPages > hard)) {
        return [trS(s, err("EINVAL"), "rlimit.hard")];
      }
      const d = new Draft(s);
      d.rlimit = op.memlockPages === "unlimited" ? RLIM_INF_PAGES : op.memlockPages;
      return [trD(d, OK, "rlimit.set")];
    }
    case "sysctlMlock": {
      const d = new Draft(s);
      d.mlockKb = op.kb;
      return [trD(d, OK, "sysctl.mlock")];
    }
    case "auxFault": {
      const d = new Draft(s);
      d.auxFault = op.fail;
      return [trD(d, OK, "auxfault.set")];
    }
    case "touch": return opTouch(s, op);
    case "readUserPage": return opReadUserPage(s, op);
    default: {
      const never: never = op;
      throw new Error(`unknown op ${JSON.stringify(never)}`);
    }
  }
}

/** Never empty, never throws: an internal error becomes one transition under rule spec.internal. */
export function stepSafe(s: State, op: Op, profile: State["era"]["id"]): Tr[] {
  if (s.era.id !== profile) s = { ...s, era: ERAS[profile] };
  try {
    const ts = stepState(s, op);
    if (ts.length > 0) return ts;
    return [trS(s, err("ESPECBUG"), "spec.internal")];
  } catch (e) {
    const d = new Draft(s);
    d.warn(`spec internal error: ${(e as Error).message}`);
    return [trD(d, err("ESPECBUG"), "spec.internal")];
  }
}
