/**
 * Causal stability: which deletes no future entry can be concurrent with, so the view can drop
 * their tombstones.
 *
 * Every writer appends, now and then, a stability record (entry type CUTS under the bee key 'c',
 * overwritten each time): how far it had folded every log. The data fold reads it like a data
 * key, at the writer's checkpoint. The stable frontier of a log w is the least length of w that
 * every live writer's record (at the checkpoint this peer folded it to) says was folded; a live
 * writer with no record holds it at 0. A removed writer or a reader stops counting.
 *
 * A commit that leaves keys as tombstones (absent, with slots or parts) records how far the view
 * then read each log's data (`dataEnd`): every entry in those keys' slots lies below it. Once the
 * frontier reaches that vector, every live writer had folded those entries when it wrote its
 * record, and everything it wrote before its record is folded here too (the record lies below
 * this peer's checkpoint of its log): a later entry of theirs was stamped after the delete it had
 * folded (the fold observes every stamp), so it wins over it whether or not the tombstone is kept.
 * A writer added later is stamped after its add, which its adder wrote after folding as far as its
 * own record, and it holds the frontier at 0 until it records. So the tombstone decides nothing
 * any more, and the view drops its rows (`collect`). What a key reads as never changes by it.
 */
import type { Logger } from 'pino'
import { unpack } from '../crdt/codec.js'
import { compareStamps, type Stamp } from '../crdt/hlc.js'
import type { ViewCommit } from './commit.js'
import { decodeCuts, CUTS_KEY } from './entry.js'
import type { CutsRecord } from './fold.js'
import { hex } from './keys.js'
import { liveWriter, type Member } from './membership.js'
import type { Stats } from './types.js'
import { partPrefix, seqBytes, type BatchOp, type ViewStore } from './view.js'
import type { WriterLog } from './writer-log.js'

/** Keys collected per view batch. */
const COLLECT_BATCH = 1024

export interface StabilityHost {
  readonly writers: ReadonlyMap<string, WriterLog>
  readonly checkpoints: ReadonlyMap<string, number>
  readonly view: ViewStore
  readonly commit: ViewCommit
  readonly stats: Stats
  readonly log: Logger
  members: () => ReadonlyMap<string, Member>
  own: () => WriterLog
  /** Whether this peer drops tombstones at all (default: yes). */
  collects?: () => boolean
  /**
   * Tombstones stamped up to `s` are being dropped: the own clock passes it, so no own write can
   * be stamped before a delete this view no longer holds (it would read here as if the delete
   * were gone, and lose to it wherever the tombstone is kept).
   */
  passed?: (s: Stamp) => void
}

export class Stability {
  /** Each writer's stability record at the checkpoint this peer folded its log to, by hex key. */
  readonly records = new Map<string, CutsRecord>()
  /**
   * How far the view reads each log's data: the length just past the last data entry it folded
   * (or wrote), by hex key. Lengths past it hold only bookkeeping (records, grants), so a record
   * need not cover them for a tombstone to be stable, and records do not answer records.
   */
  readonly dataEnd = new Map<string, number>()
  /** `dataEnd` when this peer's last record was appended (null: none since open). */
  private recorded: Map<string, number> | null = null
  /** The frontier last collected at (its fingerprint). */
  private collectedAt = ''
  /** The newest stamp among the tombstones this view collected (null: none). */
  private dropped: Stamp | null = null

  constructor (private readonly h: StabilityHost) {}

  /** The logs whose record at their checkpoint was read since open (or was superseded by a fold). */
  private readonly tried = new Set<string>()

  /** After open or a rebuild: data read as far as the checkpoints; the records are read by `refresh`. */
  async load (): Promise<void> {
    this.records.clear()
    this.dataEnd.clear()
    this.tried.clear()
    this.collectedAt = ''
    this.dropped = await this.h.view.readStamp('dropped')
    if (this.dropped !== null) this.h.passed?.(this.dropped)
    for (const [id, len] of this.h.checkpoints) this.dataEnd.set(id, len)
  }

  /**
   * Reads each opened log's record at its checkpoint, once after open (later ones come with the
   * fold's steps). Local blocks only.
   */
  async refresh (): Promise<void> {
    for (const [id, w] of this.h.writers) {
      if (this.tried.has(id)) continue
      this.tried.add(id)
      const len = this.h.checkpoints.get(id) ?? 0
      if (len === 0 || this.records.has(id)) continue
      const record = await readRecord(w, len)
      if (record === null) continue
      this.records.set(id, record)
      // the own record as appended: not due again until data moves past it
      if (id === this.ownId && this.recorded === null) this.recorded = new Map(record.cuts)
    }
  }

  get ownId (): string {
    return this.h.own().id
  }

  /** How many tombstones the view holds. */
  get graves (): number {
    return this.h.commit.graves
  }

  /** Steps of the commit being made (see `stepped`), applied once it lands. */
  private pending: Array<[WriterLog, number, number, CutsRecord | undefined]> = []

  /**
   * A fold step of `w` to `to`, its data ending at `dataEnd` (0: none), is in the commit being
   * made (see FoldHost.stepped): a new tombstone generation counts it (`dataRead`), and it is
   * applied once the commit lands (`landed`), or dropped if it does not.
   */
  stepped (w: WriterLog, to: number, dataEnd: number, cuts: CutsRecord | undefined): void {
    this.pending.push([w, to, dataEnd, cuts])
  }

  /** The commit the pending steps belong to landed (true) or failed. */
  landed (ok: boolean): void {
    const steps = this.pending
    this.pending = []
    if (ok) for (const [w, to, dataEnd, cuts] of steps) this.apply(w, to, dataEnd, cuts)
  }

  private apply (w: WriterLog, to: number, dataEnd: number, cuts: CutsRecord | undefined): void {
    const end = this.dataEnd.get(w.id) ?? 0
    // a cut moved back: nothing past it counts any more
    if (to < end) this.dataEnd.set(w.id, to)
    else if (dataEnd > end) this.dataEnd.set(w.id, dataEnd)
    if (cuts !== undefined) {
      this.records.set(w.id, cuts)
      this.tried.add(w.id)
    }
    const r = this.records.get(w.id)
    if (r !== undefined && r.seq >= to) this.records.delete(w.id) // a cut moved back below it
  }

  /** An own data write made the own log `len` long. */
  wrote (len: number): void {
    this.dataEnd.set(this.h.own().id, len)
  }

  /** `dataEnd` with the pending steps laid over, as a vector (what a new tombstone generation records). */
  dataRead (): Array<[Uint8Array, number]> {
    const ends = new Map(this.dataEnd)
    for (const [w, to, dataEnd] of this.pending) {
      const end = ends.get(w.id) ?? 0
      if (to < end) ends.set(w.id, to)
      else if (dataEnd > end) ends.set(w.id, dataEnd)
    }
    return [...ends].filter(([, n]) => n > 0).map(([id, n]) => [Buffer.from(id, 'hex'), n])
  }

  /** Whether the view read data past what this peer's last record covers: a record is due. */
  due (): boolean {
    if (this.recorded === null) return [...this.dataEnd.values()].some((n) => n > 0)
    for (const [id, n] of this.dataEnd) if (n > (this.recorded.get(id) ?? 0)) return true
    return false
  }

  /** The record to append now: this peer's checkpoint of every log it folded. */
  vector (): Array<[Buffer, number]> {
    return [...this.h.checkpoints].filter(([, n]) => n > 0).sort((a, b) => a[0] < b[0] ? -1 : 1).map(([id, n]) => [Buffer.from(id, 'hex'), n])
  }

  /** The own record was appended, covering the data read when `vector` was taken (`at`). */
  recordedAt (at: Map<string, number>): void {
    this.recorded = at
  }

  /** A copy of `dataEnd`, for `recordedAt`. */
  reading (): Map<string, number> {
    return new Map(this.dataEnd)
  }

  /**
   * Whether every entry of `id` past this peer's checkpoint of it is stamped after every tombstone
   * this view collected: its record there says its clock had passed them. A live writer's is, once
   * anything was collected (`collect` waits for it). A writer this peer did not count then is not:
   * one added by an entry it had not read yet (a removed member's add, stamped before its removal,
   * still counts), or one whose removal a later entry undid. Its entries may be older than a delete
   * whose tombstone is gone, so the fold merges the keys they touch from every member's log
   * (`Fold.fromLogs`), where that delete still is.
   */
  /** Whether this view ever dropped a tombstone (its slots then no longer stand for every entry). */
  get hasDropped (): boolean {
    return this.dropped !== null
  }

  trusted (id: string): boolean {
    if (this.dropped === null) return true
    const at = this.records.get(id)?.at ?? null
    return at !== null && compareStamps(at, this.dropped) >= 0
  }

  /** The live writers whose records count. */
  private recorders (): string[] {
    return [...this.h.members()].filter(([, m]) => liveWriter(m)).map(([id]) => id)
  }

  /** The stable frontier: for every log, the length every live writer's record says it folded. */
  frontier (): Map<string, number> {
    const recorders = this.recorders()
    const out = new Map<string, number>()
    for (const id of this.h.writers.keys()) {
      let least = Infinity
      for (const r of recorders) least = Math.min(least, this.records.get(r)?.cuts.get(id) ?? 0)
      out.set(id, least === Infinity ? 0 : least)
    }
    return out
  }

  /**
   * How far each log may be cleared for the removed members' sake, and the removed members that
   * bound it. A removed member's membership entries stamped before its removal count wherever
   * they lie in its log (mutual removals are settled by stamp order), so one not read here yet
   * can remove a writer with a cut below what every live record covers. Such an entry comes after
   * what this peer read of that log, so the cut it records (its author's checkpoint then) is at
   * least what the author's latest record read here says: that bounds every log's horizon, until
   * the log shows its author's clock at or past its removal (a record it appends once it folded
   * it, see `Compactor.farewell`): later entries of it count only below its cut, and those are
   * read. A removed member whose log is not held, or has no record, bounds every log at 0.
   *
   * A removal can still be undone: a removal of its author stamped before it, with a cut at or
   * below it, makes it count for nothing, and the member is live again, its record no longer past
   * anything. So a member settles only once the entry that removed it lies below what every live
   * writer recorded folding (a live writer's later removal of the author cuts past it) and below
   * the bound of every member not settled (a late one's cuts past it too).
   */
  async lateBound (): Promise<{ bound: Map<string, number>, by: string[] }> {
    const bound = new Map<string, number>()
    const by = new Set<string>()
    const lower = (id: string, record: CutsRecord | null): void => {
      by.add(id)
      for (const log of this.h.writers.keys()) bound.set(log, Math.min(bound.get(log) ?? Infinity, record?.cuts.get(log) ?? 0))
    }
    const settled: Array<{ id: string, m: Member, record: CutsRecord | null }> = []
    for (const [id, m] of this.h.members()) {
      if (!m.removed || m.reader === true) continue
      const w = this.h.writers.get(id)
      const record = w === undefined || w.membershipTree === 0 ? null : await readRecord(w, w.membershipTree)
      if (w !== undefined && record !== null && record.at !== null && m.removedAt !== undefined &&
        compareStamps(record.at, m.removedAt) >= 0 && w.membershipLength >= Math.min(m.cut, w.malformedAt)) settled.push({ id, m, record })
      else lower(id, record)
    }
    // a bound lowered may leave another removal undoable: to a fixpoint (each pass lowers or ends)
    const frontier = this.frontier()
    for (let changed = true; changed;) {
      changed = false
      for (const { id, m, record } of settled) {
        if (by.has(id)) continue
        const r = m.removedBy
        if (r !== undefined && r.seq < Math.min(frontier.get(r.author) ?? 0, bound.get(r.author) ?? Infinity)) continue
        lower(id, record)
        changed = true
      }
    }
    return { bound, by: [...by].sort() }
  }

  /**
   * The live writers (hex) whose records do not yet cover the data this view reads: until they
   * record again (they must come online and fold), what this peer deleted since stays.
   */
  heldBackBy (): string[] {
    return this.recorders().filter((r) => {
      const cuts = this.records.get(r)?.cuts
      for (const [id, n] of this.dataEnd) if (n > 0 && (cuts?.get(id) ?? 0) < n) return true
      return false
    }).sort()
  }

  /**
   * Drops the tombstones of every generation the frontier covers (in generation order, stopping
   * at the first one it does not: generations later than it read further), one generation's
   * keys per atomic batch (or COLLECT_BATCH keys). The caller holds the engine's queue. Returns
   * the tombstones collected.
   */
  async collect (progress?: (done: number, total: number) => void): Promise<number> {
    const { view, commit } = this.h
    if (commit.graves === 0 || this.h.collects?.() === false) return 0
    const frontier = this.frontier()
    const clock = this.recordersClock()
    const settled = await this.removedSettled()
    const print = [...frontier].map(([id, n]) => `${id}:${n}`).join(',') + `|${clock === null ? '-' : `${clock.wall}.${clock.counter}`}|${String(settled)}`
    if (print === this.collectedAt) return 0
    const total = commit.graves
    let done = 0
    const members = this.h.members()
    // a removed member's entries past its cut never count: no frontier needs to reach them
    const need = (w: Uint8Array, n: number): number => {
      const m = members.get(hex(w))
      return m !== undefined && m.removed ? Math.min(n, m.cut) : n
    }
    const gens: Array<{ gen: number, covered: boolean, newest: Stamp }> = []
    for await (const [genKey, raw] of view.scan('deaths', Buffer.alloc(0))) {
      const [[wall, counter], vector] = unpack(raw) as [[number, number], Array<[Uint8Array, number]>]
      const covered = settled && clock !== null && compareStamps(clock, { wall, counter }) >= 0 &&
        vector.every(([w, n]) => (frontier.get(hex(w)) ?? 0) >= need(w, n))
      const gen = Number(genKey.readBigUInt64BE(0))
      gens.push({ gen, covered, newest: { wall, counter } })
      if (covered) continue
      // an uncovered generation holds back every later one, unless no key is left in it (all
      // written again): it is dropped below whatever it says
      let empty = true
      for await (const _ of view.scan('graveq', seqBytes(gen))) { empty = false; break } // eslint-disable-line no-unreachable-loop
      if (!empty) break
    }
    for (const { gen, covered, newest } of gens) {
      const keys: Buffer[] = []
      for await (const [k] of view.scan('graveq', seqBytes(gen))) keys.push(k.subarray(8))
      // a generation whose tombstones were all revived or moved on holds nothing back
      if (keys.length > 0 && !covered) break
      // (stored before any of its keys goes: see `trusted`)
      if (keys.length > 0 && (this.dropped === null || compareStamps(newest, this.dropped) > 0)) {
        this.h.passed?.(newest)
        await view.write([view.putStamp(newest, 'dropped')])
        this.dropped = newest
      }
      for (let i = 0; i < keys.length; i += COLLECT_BATCH) {
        const ops: BatchOp[] = []
        let dropped = 0
        let seq = 0
        for (const key of keys.slice(i, i + COLLECT_BATCH)) {
          const q = await this.dropKey(key, gen, ops)
          if (q === null) continue
          dropped++
          seq = Math.max(seq, q)
        }
        const graves = commit.graves - dropped
        ops.push(view.putMeta('graves', seqBytes(graves)), view.putMeta('collected-count', seqBytes(this.h.stats.tombstonesCollected + dropped)))
        if (i + COLLECT_BATCH >= keys.length) ops.push(view.putDeath(gen, null))
        if (seq > commit.feed.collected) ops.push(view.putMeta('collected', seqBytes(seq)))
        await view.write(ops)
        commit.graves = graves
        if (seq > commit.feed.collected) commit.feed.collected = seq
        this.h.stats.tombstonesCollected += dropped
        done += dropped
        progress?.(done, total)
      }
      if (keys.length === 0) await view.write([view.putDeath(gen, null)])
    }
    this.collectedAt = print
    if (done > 0) this.h.log.debug({ tombstones: done }, 'collected stable tombstones')
    return done
  }

  /**
   * The earliest clock among the live writers' records (null if one has none): every entry a live
   * writer stamps from now on is stamped after it. A writer's clock may run behind what it folded
   * (it follows a stamp ahead of its wall clock only up to maxDrift), so covering a generation's
   * lengths is not enough: its newest stamp must be behind every recorder's clock too, or a later
   * write could still lose to the dropped delete.
   */
  private recordersClock (): Stamp | null {
    let least: Stamp | null = null
    for (const r of this.recorders()) {
      const at = this.records.get(r)?.at ?? null
      if (at === null) return null
      if (least === null || compareStamps(at, least) < 0) least = at
    }
    return least
  }

  /**
   * Whether every removed member's log is folded here up to its cut: its entries below the cut
   * count, and no record speaks for them (a tombstone dropped before one of them is folded here
   * would not be there to beat it).
   */
  private async removedSettled (): Promise<boolean> {
    for (const [id, m] of this.h.members()) {
      if (!m.removed || m.reader === true) continue
      const w = this.h.writers.get(id)
      if (w === undefined) return false
      const end = Math.min(m.cut, w.malformedAt)
      if (w.core.length < end) return false
      if ((this.h.checkpoints.get(id) ?? 0) < await w.batchEnd(end)) return false
    }
    return true
  }

  /** Stages the removal of one tombstone's rows; its seq in the change feed (0: none), or null if it is no tombstone now. */
  private async dropKey (key: Buffer, gen: number, ops: BatchOp[]): Promise<number | null> {
    const view = this.h.view
    if (view.getGraveSync(key) !== gen || view.getRow(key) !== undefined) return null
    // an item would be part of what the key reads as (and of the digest): never dropped here
    for await (const _ of view.scan('items', partPrefix(key, null))) return null // eslint-disable-line no-unreachable-loop
    for await (const [part] of view.scan('parts', partPrefix(key, null))) ops.push(view.putPart(part, []))
    const seq = view.getSeqSync(key)
    ops.push(...view.delRecord(key, seq), ...view.delGrave(key, gen))
    return seq ?? 0
  }
}

/** `w`'s stability record in its tree at length `len` (local blocks only), or null. */
export async function readRecord (w: WriterLog, len: number): Promise<CutsRecord | null> {
  const snap = w.bee.checkout(len)
  try {
    const node = await snap.get(CUTS_KEY, { wait: false })
    if (node === null || node.value === null) return null
    const cuts = new Map<string, number>()
    const e = decodeCuts(CUTS_KEY, node.value)
    for (const [writer, n] of e.vector) cuts.set(hex(writer), n)
    return { seq: node.seq, at: e.at, cuts }
  } catch {
    return null
  } finally {
    await snap.close()
  }
}
