/**
 * This peer's own writes: data ops and membership changes appended to its log, and folded into
 * the view before they resolve (invariant 3). The engine runs them in its serialized queue.
 */
import type { Logger } from 'pino'
import type { BeeBatch } from 'hyperbee'
import { ClockAheadError, compareStamps, stamp as mkStamp, type HLC, type Stamp } from '../crdt/hlc.js'
import { EMPTY } from '../crdt/keystate.js'
import type { ViewCommit } from './commit.js'
import { ADD_READER, ADD_WRITER, CUTS, CUTS_KEY, EPOCH, KEY_GRANT, PRINCIPAL, PRINCIPAL_KEY, epochKey, grantKey, MAX_KEY_BYTES, MAX_LEAD, MAX_VALUE_BYTES, REMOVE_WRITER, dataKey, decodeEntry, encodeEntry, membershipKey, mergeSlots, registerOf, slotState, type DataEntry, type EntryClock, type PartKind } from './entry.js'
import { buildEntries, type Built, type WriteOp } from './entry-rule.js'
import { buildEntryV1 } from './entry-rule-v1.js'
import { keyChange, type KeyChange } from './commit.js'
import { buf, hex } from './keys.js'
import { blind, clockAhead, clockBehind, logRefused, notAMember, notWritable, tooLarge, writerRemoved } from './errors.js'
import { liveWriter, type Member } from './membership.js'
import { partKey, setSlot, type Slot, type ViewStore } from './view.js'
import type { WriterLog } from './writer-log.js'

/** The stamp of key bookkeeping (see `OwnWrites.bookkeeping`). */
const ZERO_STAMP = mkStamp(0, 0)

/** What own writes need from the engine, given at construction. */
export interface OwnWritesHost {
  readonly view: ViewStore
  readonly commit: ViewCommit
  readonly hlc: HLC
  readonly log: Logger
  readonly checkpoints: Map<string, number>
  readonly wallClock: () => number
  own: () => WriterLog
  members: () => ReadonlyMap<string, Member>
  /** Folds everything available now (the caller holds the engine's queue). */
  fold: () => Promise<boolean>
  /** The view changed. */
  updated: () => void
  /**
   * The log format own writes use (a test hook: 1 writes format-1 entries, 2 entries without a
   * clock, as older releases did).
   */
  format?: () => 1 | 2 | 3
  /**
   * Whether this peer may write at all: 'blind' (a blind seeder, member or not), 'undecided' (opened by
   * key, not knowing yet whether the database is encrypted), or 'yes'.
   */
  canWrite?: () => 'yes' | 'blind' | 'undecided'
  /**
   * Before a data write's entries are built, once the own log is folded: an encrypted database
   * picks the epoch to seal them under (making one if none is clean).
   */
  seal?: () => Promise<void>
  /** An own data write made the own log this long (lib/stability.ts), before its commit. */
  wrote?: (len: number) => void
}


export class OwnWrites {
  constructor (private readonly h: OwnWritesHost) {}

  /** Whether this peer is a member, not removed. */
  writable (): boolean {
    return (this.h.canWrite?.() ?? 'yes') === 'yes' && liveWriter(this.h.members().get(this.h.own().id))
  }

  /**
   * Whether this peer is a writer that was removed, and may still append what speaks for others,
   * never for itself: its last stability record, and the epoch keys it holds handed to members.
   */
  removedWriter (): boolean {
    const m = this.h.members().get(this.h.own().id)
    return (this.h.canWrite?.() ?? 'yes') === 'yes' && m !== undefined && m.removed && m.reader !== true
  }

  /** Appends own writes as one atomic batch and commits them to the view before resolving. */
  async write (ops: WriteOp[]): Promise<void> {
    const { view, commit } = this.h
    const own = this.h.own()
    if (this.h.canWrite?.() === 'blind') throw blind()
    if (!this.writable()) throw notWritable()
    // a view whose LevelDB refused a batch retries it now, and refuses the write (before it
    // reaches the log) if LevelDB still refuses
    if (view.refused) await view.retry()
    if ((this.h.checkpoints.get(own.id) ?? 0) !== own.core.length) await this.h.fold()
    // after that fold: a removal it took in makes the epoch chosen before it unclean
    await this.h.seal?.()
    if (!this.writable()) throw notWritable()

    const changes = new Map<string, KeyChange>()
    // each part's slots and each key's whole-value slots as this call's earlier writes left them
    const partSlots = new Map<string, Slot[]>()
    const keySlots = new Map<string, Slot[]>()
    // Only a bee key's last entry of the call is appended (it supersedes the others). Keys go in
    // the order of their last write, so the last block holds the newest stamp (open() restores
    // the clock from it).
    const appends = new Map<string, [Buffer, Buffer]>()
    const format = this.h.format?.() ?? 3
    for (const op of ops) {
      if (op.key.byteLength > MAX_KEY_BYTES) throw tooLarge('A key', op.key.byteLength, MAX_KEY_BYTES)
      const kid = hex(op.key)
      let ch = changes.get(kid)
      if (ch === undefined) changes.set(kid, ch = keyChange(buf(op.key)))
      const slotsOf = (kind: PartKind, name: Buffer): Slot[] => {
        const id = partKey(op.key, kind, name).toString('hex')
        let list = partSlots.get(id)
        if (list === undefined) partSlots.set(id, list = view.getPartSync(partKey(op.key, kind, name)))
        return list
      }
      const { stamp, clock } = this.issue()
      const reg = op.type === 'sadd' || op.type === 'srem' ? registerOf(keySlots.get(kid) ?? view.getSlotsSync(op.key)) : null
      const built = format === 1 ? this.buildV1(op, keySlots, own.key, stamp) : buildEntries(op, slotsOf, own.key, stamp, reg === null ? null : { stamp: reg.stamp, writer: reg.writer })
      for (const b of built) {
        const entry = encodeEntry(clock === undefined ? b.entry : { ...b.entry, clock })
        if (entry.byteLength > MAX_VALUE_BYTES + 64) throw tooLarge('An entry', entry.byteLength, MAX_VALUE_BYTES)
        const bid = b.beeKey.toString('hex')
        appends.delete(bid)
        appends.set(bid, [b.beeKey, entry])
        if (b.part === null) {
          ch.slots.set(own.id, entry)
          keySlots.set(kid, setSlot(keySlots.get(kid) ?? view.getSlotsSync(op.key), own.key, entry))
          continue
        }
        const pid = partKey(op.key, b.part.kind, b.part.name).toString('hex')
        partSlots.set(pid, setSlot(slotsOf(b.part.kind, b.part.name), own.key, entry))
        let pc = ch.parts.get(pid)
        if (pc === undefined) ch.parts.set(pid, pc = { kind: b.part.kind, name: b.part.name, slots: new Map() })
        pc.slots.set(own.id, entry)
      }
    }
    if (appends.size === 0) return
    // the change feed's floor moves (when due) before the append: once the entries are in the log
    // the write must not fail on it
    try {
      await commit.feed.reserve(commit.feed.seq + 1)
    } catch (err) {
      throw logRefused(err)
    }

    const batch = own.bee.batch()
    const len = await this.put(batch, [...appends.values()])
    // The view's commit is staged while the append is written, and made once it has landed (the
    // view never holds an entry its log lacks). A process that dies in between refolds the entry.
    // Staging waits a turn of the event loop first: flush() returns at its first await, long
    // before the append (signing, hashing, the storage write) is on its way, and staging right
    // away would hold all of that up (an awaited put: 0.78 -> 0.84-0.91 x Hyperbee's in an A/B).
    const flushing = batch.flush()
    flushing.catch(() => {}) // awaited below; not unhandled meanwhile
    await new Promise((resolve) => setImmediate(resolve))
    const staged = commit.begin('local')
    let viewChanged = false
    try {
      for (const ch of changes.values()) if (await commit.stage(staged, ch)) viewChanged = true
    } catch (err) {
      // the view could not be read: the append goes on, and the next fold takes it in
      await flushing.catch(() => {})
      throw err
    }
    staged.ops.push(view.putCheckpoint(own.key, len))
    this.h.wrote?.(len)
    await this.landed(flushing, len)
    if (own.core.length !== len) {
      this.h.log.error({ expected: len, length: own.core.length }, 'own append landed at an unexpected length')
      await this.h.fold()
      return
    }
    // the entries are in the log: the view takes their commit even if LevelDB refuses meanwhile
    // (it waits in the write-behind table), so a write that rejects has appended nothing
    await view.admitting(async () => { await commit.commit(staged, null) })
    this.h.checkpoints.set(own.id, len)
    if (viewChanged) this.h.updated()
  }

  /**
   * Puts entries into an own-log batch; the log's length once the batch is appended. A put that
   * fails (the first one writes the log's header) leaves the batch closed and rejects with
   * MESHBEE_STORAGE: Hyperbee keeps its write lock for an open batch, and every later write would
   * wait for it.
   */
  private async put (batch: BeeBatch, entries: Array<[Buffer, Buffer]>): Promise<number> {
    try {
      for (const [k, v] of entries) await batch.put(k, v)
      // The log's length once the append lands: the header (if any) is written by the first put.
      return this.h.own().core.length + (batch as unknown as { length: number }).length
    } catch (err) {
      await batch.close()
      throw logRefused(err)
    }
  }

  /**
   * Waits for an own-log append to land. Hypercore moves the log's length only once its storage
   * has taken the blocks, so an append that failed there appended nothing: MESHBEE_STORAGE. One
   * that reached `len` and failed after (writing its hints) has landed.
   */
  private async landed (flushing: Promise<void>, len: number): Promise<void> {
    try {
      await flushing
    } catch (err) {
      if (this.h.own().core.length !== len) throw logRefused(err)
      this.h.log.warn({ err }, 'the own log took an append, then its storage failed')
    }
  }

  /** A format-1 entry for `op` (the test hook `format`): the writer's whole contribution to the key. */
  private buildV1 (op: WriteOp, keySlots: Map<string, Slot[]>, writer: Buffer, stamp: Stamp): Built[] {
    const slots = keySlots.get(hex(op.key)) ?? this.h.view.getSlotsSync(op.key)
    const mine = slots.find((s) => buf(s.writer).equals(writer))
    const own = mine === undefined ? EMPTY : slotState(decodeEntry(mine.entry) as DataEntry, mine.writer)
    return [{ beeKey: dataKey(op.key), part: null, entry: buildEntryV1(op, own, () => mergeSlots(slots), writer, stamp) }]
  }

  /** Appends a membership entry to the own log and folds it. */
  async changeMembership (type: typeof ADD_WRITER | typeof REMOVE_WRITER | typeof ADD_READER, target: Uint8Array): Promise<void> {
    if (!this.writable()) throw notWritable()
    await this.h.fold()
    const own = this.h.own()
    const id = hex(target)
    const m = this.h.members().get(id)
    if (type === ADD_WRITER || type === ADD_READER) {
      if (m !== undefined && m.removed) throw writerRemoved(id)
      if (own.records.has(hex(membershipKey(type, target)))) return
      if (m !== undefined) return
      const { stamp, clock } = this.membershipStamp()
      // a reader's add is version 3 only: it needs a clock even under the test hook's older formats
      const c = clock ?? (type === ADD_READER ? { seen: 0, reading: stamp.wall } : undefined)
      await this.append([membershipKey(type, target), encodeEntry(c === undefined ? { type, writer: target, stamp } : { type, writer: target, stamp, clock: c })])
    } else {
      if (m === undefined) throw notAMember(id)
      if (m.removed) return
      const length = this.h.checkpoints.get(id) ?? 0
      await this.append([membershipKey(REMOVE_WRITER, target), encodeEntry({ type, writer: target, length, ...this.membershipStamp() })])
    }
    await this.h.fold()
  }

  /** Appends entries to the own log in one batch; rejects with MESHBEE_STORAGE, appending nothing, if the log refuses. */
  private async append (...entries: Array<[Buffer, Buffer]>): Promise<void> {
    const batch = this.h.own().bee.batch()
    const len = await this.put(batch, entries)
    await this.landed(batch.flush(), len)
  }

  /** Appends this peer's stability record (lib/stability.ts), key bookkeeping; the caller folds it. */
  async appendCuts (vector: Array<[Buffer, number]>, removed = false): Promise<void> {
    // (a removed writer's last record: see Compactor.farewell)
    if (!(removed ? this.removedWriter() : this.writable())) throw notWritable()
    // sealed like data (the record lies in the data range): under a clean epoch, made if need be
    await this.h.seal?.()
    // its clock as it records: every stamp it issues later is greater (the clock's last stamp)
    await this.append([CUTS_KEY, encodeEntry({ type: CUTS, ...this.bookkeeping(), at: this.h.hlc.last, vector })])
  }

  /** Appends this peer's PRINCIPAL entry (its public key for grants); a peer not yet a member states it too. */
  async appendPrincipal (box: Buffer): Promise<void> {
    await this.append([PRINCIPAL_KEY, encodeEntry({ type: PRINCIPAL, ...this.bookkeeping(), box })])
  }

  /**
   * The stamp and clock of key bookkeeping (a stated public key, grants, an epoch's record): no
   * rule orders them, so they take the zero stamp and leave the clock alone. Stamped by the clock,
   * a device whose clock ran ahead when it opened would have locked itself out of writing (the
   * lead rule) by bookkeeping alone. The clock's reading is kept, so skew still shows.
   */
  private bookkeeping (): { stamp: Stamp, clock: EntryClock } {
    return { stamp: ZERO_STAMP, clock: { seen: 0, reading: this.h.wallClock() } }
  }

  /** Appends key grants (an encrypted database's epoch keys sealed to members) in one batch; the caller folds them. */
  async appendGrants (grants: ReadonlyArray<{ epoch: Buffer, recipient: Buffer, sealed: Buffer }>, made?: { epoch: Buffer, vector: Array<[Buffer, number]> }): Promise<void> {
    // (a removed writer hands over the epochs it holds: see Epochs.due)
    if (!this.writable() && (made !== undefined || !this.removedWriter())) throw notWritable()
    const b = this.bookkeeping()
    const entries = grants.map((g): [Buffer, Buffer] =>
      [grantKey(g.epoch, g.recipient), encodeEntry({ type: KEY_GRANT, ...b, epoch: g.epoch, writer: g.recipient, sealed: g.sealed })])
    if (made !== undefined) entries.push([epochKey(made.epoch), encodeEntry({ type: EPOCH, ...b, epoch: made.epoch, vector: made.vector })])
    await this.append(...entries)
  }

  /**
   * A stamp for an own membership entry. The replay counts an entry only if its author is a member
   * at that point of the stamp order, so the entry must sort after the add that made this peer a
   * member. The clock has observed that add, but only up to maxDrift ahead of the wall clock: if
   * the adder's clock ran further ahead, refuse rather than append an entry that never counts.
   */
  private membershipStamp (): { stamp: Stamp, clock?: EntryClock } {
    const issued = this.issue()
    const since = this.h.members().get(this.h.own().id)?.since ?? null
    if (since !== null && compareStamps(issued.stamp, since) <= 0) throw clockBehind(since.wall - this.h.wallClock())
    return issued.clock === undefined ? { stamp: issued.stamp } : issued
  }

  /**
   * A stamp for an own entry, and the clock a version-3 entry carries with it (none under the test
   * hook's older formats). The clock never stamps past its lead bound (crdt/hlc.ts `cap`); when
   * its last stamp is already there, the write is refused before anything is appended.
   */
  private issue (): { stamp: Stamp, clock: EntryClock | undefined } {
    const { hlc } = this.h
    let stamp: Stamp
    try {
      stamp = hlc.now()
    } catch (err) {
      if (err instanceof ClockAheadError) throw clockAhead(err.last.wall, err.cap, MAX_LEAD)
      throw err
    }
    const clock = (this.h.format?.() ?? 3) === 3 ? { seen: hlc.seen?.wall ?? 0, reading: hlc.reading } : undefined
    return { stamp, clock }
  }
}
