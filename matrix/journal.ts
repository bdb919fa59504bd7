/**
 * The matrix's journal: what a long run has done so far, so that a killed run (Ctrl-C, SIGTERM,
 * kill -9, a reboot of the host) continues where it stopped instead of starting over.
 *
 * OUT/journal/meta.json   the corpus key (seed, programs, max ops, hand-written programs, shard),
 *                         the backend and config the corpus was generated for, and whether the
 *                         run finished;
 * OUT/journal/<slot>.jsonl one line with the backend's info when it first ran, then one line per
 *                         chunk of programs: [corpus index, trace] pairs and the seconds it took.
 *
 * Programs are keyed by (seed, corpus index) per kernel: the corpus is a pure function of the key
 * and the generation config (matrix/run.ts sampleCorpus), so a resumed run regenerates the same
 * programs and runs only the indices its journal lacks. Verdicts are not journaled: they are
 * recomputed from the traces (checkTrace is deterministic), so the final report is the one an
 * uninterrupted run writes (timings aside).
 *
 * Lines are appended whole with one write each; a line cut short by kill -9 (the last one) is
 * ignored, and its programs run again.
 */
import { appendFileSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, readSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Config, ProfileId } from "../spec/program.ts";
import type { Trace } from "../spec/trace.ts";

export const JOURNAL_FORMAT = "auxspec-matrix-journal/1";

/** What makes two runs the same run: same key, same corpus, same program indices. */
export interface JournalKey {
  seed: number;
  programs: number;
  maxOps: number;
  builtin: boolean;
  shard: { index: number; count: number } | null;
}

/** A backend's info as the report needs it (BackendInfo without the Set). */
export interface JournalInfo {
  kernel: string | null;
  profile: ProfileId;
  config: Config;
  notes: string[];
  unsupported: string[];
  openSeconds: number;
}

interface Meta {
  format: string;
  key: JournalKey;
  generatedWith: { backend: string; config: Config } | null;
  complete: boolean;
}

/** What the journal holds for one slot. */
export interface JournalColumn {
  info: JournalInfo | null;
  traces: Map<number, Trace>;
  seconds: number;
}

/** The out folder holds an unfinished run with other options. */
export class JournalMismatch extends Error {
  override name = "JournalMismatch";
}

const sameKey = (a: JournalKey, b: JournalKey) => JSON.stringify(a) === JSON.stringify(b);

export function describeKey(k: JournalKey): string {
  return `--seed ${k.seed} --programs ${k.programs} --max-ops ${k.maxOps}${k.builtin ? "" : " --no-builtin"}${k.shard ? ` --shard ${k.shard.index}/${k.shard.count}` : ""}`;
}

/** A file name for a slot name ("vm:6.12" -> "vm_6.12.jsonl"). */
export function slotFile(name: string): string {
  return `${name.replace(/[^A-Za-z0-9.+-]/g, "_")}.jsonl`;
}

export class MatrixJournal {
  private meta: Meta;
  /** Slots whose file end was checked for a torn line in this session. */
  private readonly checked = new Set<string>();
  /** True when this run continues an unfinished one. */
  readonly resumed: boolean;

  private constructor(readonly dir: string, meta: Meta, resumed: boolean) {
    this.meta = meta;
    this.resumed = resumed;
  }

  /**
   * The journal of `outDir` for a run with `key`: an unfinished journal with the same key is
   * continued; one with another key is refused (JournalMismatch) unless `fresh`; a finished one
   * (or `fresh`) is discarded and a new one started.
   */
  static open(outDir: string, key: JournalKey, opts: { fresh?: boolean } = {}): MatrixJournal {
    const dir = join(outDir, "journal");
    const metaPath = join(dir, "meta.json");
    if (existsSync(metaPath) && !opts.fresh) {
      let old: Meta | null = null;
      try {
        old = JSON.parse(readFileSync(metaPath, "utf8")) as Meta;
      } catch {
        old = null; // unreadable: start over
      }
      if (old && old.format === JOURNAL_FORMAT && !old.complete) {
        if (!sameKey(old.key, key)) {
          throw new JournalMismatch(
            `${outDir} holds an unfinished matrix run with other options (${describeKey(old.key)}; this run: ${describeKey(key)}).\n` +
            `Run again with those options to continue it, add --fresh to discard it, or pick another --out.`,
          );
        }
        return new MatrixJournal(dir, old, true);
      }
    }
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const meta: Meta = { format: JOURNAL_FORMAT, key, generatedWith: null, complete: false };
    writeFileSync(metaPath, JSON.stringify(meta, null, 1) + "\n");
    return new MatrixJournal(dir, meta, false);
  }

  get generatedWith(): { backend: string; config: Config } | null {
    return this.meta.generatedWith;
  }

  setGeneratedWith(g: { backend: string; config: Config }): void {
    this.meta.generatedWith = g;
    this.writeMeta();
  }

  /** Mark the run finished: the next run with this --out starts afresh. */
  finish(): void {
    this.meta.complete = true;
    this.writeMeta();
  }

  /** Slots that have a journal file. */
  slots(): string[] {
    return existsSync(this.dir) ? readdirSync(this.dir).filter((f) => f.endsWith(".jsonl")) : [];
  }

  /** What the journal holds for `slot` (nothing on a fresh journal). */
  read(slot: string): JournalColumn {
    const out: JournalColumn = { info: null, traces: new Map(), seconds: 0 };
    const p = join(this.dir, slotFile(slot));
    if (!existsSync(p)) return out;
    for (const line of readFileSync(p, "utf8").split("\n")) {
      if (!line) continue;
      let rec: { t: "info"; info: JournalInfo } | { t: "chunk"; seconds: number; traces: Array<[number, Trace]> };
      try {
        rec = JSON.parse(line);
      } catch {
        continue; // a line cut short by a kill: its programs run again
      }
      if (rec.t === "info") out.info = rec.info;
      else if (rec.t === "chunk") {
        out.seconds += rec.seconds;
        for (const [i, t] of rec.traces) out.traces.set(i, t);
      }
    }
    return out;
  }

  /** Record the backend `slot` ran on (kept from the first session that ran it). */
  writeInfo(slot: string, info: JournalInfo): void {
    this.append(slot, { t: "info", info });
  }

  /** Record a chunk of traces. */
  writeChunk(slot: string, traces: Array<[number, Trace]>, seconds: number): void {
    this.append(slot, { t: "chunk", seconds, traces });
  }

  private append(slot: string, rec: unknown): void {
    // One write per line; a line torn by kill -9 is dropped on reading (but would glue onto the
    // next line): start each record on a fresh line.
    const p = join(this.dir, slotFile(slot));
    let lead = "";
    if (!this.checked.has(slot)) {
      this.checked.add(slot);
      if (existsSync(p)) {
        const size = statSync(p).size;
        if (size > 0) {
          const fd = openSync(p, "r");
          const last = Buffer.alloc(1);
          try { readSync(fd, last, 0, 1, size - 1); } finally { closeSync(fd); }
          if (last[0] !== 0x0a) lead = "\n";
        }
      }
    }
    appendFileSync(p, lead + JSON.stringify(rec) + "\n");
  }

  private writeMeta(): void {
    writeFileSync(join(this.dir, "meta.json"), JSON.stringify(this.meta, null, 1) + "\n");
  }
}
