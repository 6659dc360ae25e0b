/**
 * The view store: one LevelDB (classic-level) holding everything the fold derives, so that the
 * view, the per-key slots and the checkpoints always change together in one atomic batch.
 *
 *   values      user key → a row: kind byte ‖ payload (ROW_VALUE ‖ the value; ROW_DOC ‖ the
 *               register's bytes, the document's base; ROW_SET). What get and iterators read: a
 *               value as it is, a document or set assembled from its items.
 *   slots       user key → msgpack [[[writer key, entry bytes], …] sorted by writer, head]: each
 *               member's latest whole-value entry for the key at its cut (the inputs of the
 *               register's merge), and the key's head: the newest field and the newest set tag
 *               version among all its parts (null for a key without parts)
 *   parts       part key → msgpack [[writer key, entry bytes], …]: each member's latest entry for
 *               one document field or set member; the empty writer key holds what format-1 STATE
 *               entries say of the part (their merged state, crdt/codec.ts)
 *   items       part key → a live part, rendered: a field's value as canonical JSON (empty: the
 *               field deleted), a member (empty)
 *   checkpoints writer key → the length of its log the view reflects
 *   changes     uint64 seq ‖ user key → (empty): each key under the sequence number of the last
 *               commit that changed what it reads as (lib/changes.ts; one entry a key)
 *   seqs        user key → uint64 seq: where the key's entry in `changes` is
 *   index       index name (uint len ‖ UTF-8) ‖ index key (lib/collate.ts) ‖ user key → (empty):
 *               the secondary indexes (lib/indexes.ts)
 *   indexed     index name ‖ user key → the index keys the index holds for it, one after another
 *   graves      user key → uint64 gen: a key that reads as absent yet keeps slots or parts (a
 *               tombstone), under the generation of the last commit that staged it so
 *   graveq      uint64 gen ‖ user key → (empty): the same, by generation
 *   deaths      uint64 gen → msgpack [[wall, counter], [[writer key, length], …]]: the newest
 *               stamp among its keys' entries, and how far that commit's view had read each
 *               log's data; once every live member has recorded folding that far, with its clock
 *               past that stamp, the generation's tombstones are dropped (lib/stability.ts)
 *   meta        'key' → database key, 'hlc' → the last HLC stamp, 'seen' → the newest remote
 *               stamp the clock observed (its lead bound), 'hash' → the view digest, 'format' →
 *               the view's layout version (VIEW_FORMAT), 'seq' → the last commit's sequence
 *               number (kept across a rebuild, so the change feed only counts up), 'epoch' →
 *               the first seq after the view was last emptied or created anew (lib/changes.ts),
 *               'collected' → the newest seq whose deletion was dropped with its tombstone,
 *               'gen' → the last tombstone generation, 'graves' → how many keys `graves` holds,
 *               'collected-count', 'cleared-count' → the compaction counters of `db.stats()`,
 *               'dropped' → the newest stamp among the tombstones collected
 *
 * A part key is uint len ‖ user key ‖ kind ('e' member, 'f' field) ‖ name, so a key's members and
 * fields are each one range, members in the order of their canonical JSON bytes.
 *
 * Small commits are write-behind: `write()` applies one to an in-memory table at once (every read
 * here sees it) and LevelDB takes the table in one batch a few milliseconds later (FLUSH_MS), or at
 * once when it holds FLUSH_NOW writes. A commit of DIRECT_OPS writes or more is worth a batch of
 * its own and goes straight to LevelDB: held back, its write only moved into whatever the program
 * did next, and reads meanwhile paid for the table. The table only ever holds whole commits, so a
 * batch is still atomic; a process that dies first loses nothing: every commit comes from log
 * entries already appended, and the reopened engine folds them again from LevelDB's checkpoints.
 *
 * A batch LevelDB refuses (a full disk) stays in the table, readable, and the view takes no new
 * commit (`check`, `write`) until a retry lands it: one on a timer that backs off from RETRY_MS to
 * RETRY_MAX_MS, and one whenever an own write asks (`retry`). A commit whose log entries are
 * already appended is taken meanwhile all the same, into the table (`admitting`). Nothing is
 * written to LevelDB between a refused batch and the retry, so commits still land in order and
 * whole. Once the retry has landed, LevelDB is made to start a new log file (`compactRange`): the
 * refused write may have left a torn record at the end of the old one, and LevelDB, reopened,
 * drops every record after a torn one.
 */
import c from 'compact-encoding'
import { rm } from 'node:fs/promises'
import { ClassicLevel } from 'classic-level'
import type { AbstractSublevel } from 'abstract-level'
import { pack, unpack } from '../crdt/codec.js'
import { viewRefused } from './errors.js'
import { prefixEnd } from './collate.js'
import { compareKeys, stamp as mkStamp, stampEncoding, type Stamp, type Version } from '../crdt/hlc.js'

type Bytes = Buffer
export type Sub = AbstractSublevel<ClassicLevel<Bytes, Bytes>, string | Buffer | Uint8Array, Bytes, Bytes>

const BUF = { keyEncoding: 'buffer', valueEncoding: 'buffer' } as const

/** One writer's latest entry for a key. */
export interface Slot { readonly writer: Uint8Array, readonly entry: Uint8Array }

/**
 * The newest field version and the newest set tag version among all of a key's parts, and the
 * version of the key's register (the reset its parts are rendered against).
 */
export interface Head { readonly field: Version | null, readonly tag: Version | null, readonly reset: Version | null }

/** A key's slots (its whole-value entries) and its head (null: the key has no parts). */
export interface KeyRecord { readonly slots: Slot[], readonly head: Head | null }

/** The layout of the view this code writes; a view of another layout is rebuilt from the logs. */
export const VIEW_FORMAT = 5

/** Row kinds in the values table. */
export const ROW_VALUE = 0
export const ROW_DOC = 1
export const ROW_SET = 2

/** A write to the root LevelDB, its key already carrying the sublevel's prefix. */
export type BatchOp =
  | { type: 'put', key: Bytes, value: Bytes }
  | { type: 'del', key: Bytes }

/** Writes not yet in LevelDB, by root key (latin1: one char a byte, so string order is byte order). */
export type Overlay = Map<string, BatchOp>

/** A commit waits at most this long in memory before LevelDB takes it. */
export const FLUSH_MS = 20
/** ... or at once when it holds this many writes. */
export const FLUSH_NOW = 1024
/** A commit of this many writes skips the table: LevelDB takes it directly, after the table. */
export const DIRECT_OPS = 256
/** After LevelDB refused a batch, the first retry waits this long; each failed one doubles it... */
export const RETRY_MS = 50
/** ... up to this. */
export const RETRY_MAX_MS = 5000
/** A key past every table's: `compactRange` over it compacts the memtable and nothing else. */
const PAST_ALL = Buffer.from([0xff, 0xff])

export class ViewStore {
  // (set anew, over a fresh directory, when LevelDB reports the view corrupt: see `open`)
  db!: ClassicLevel<Bytes, Bytes>
  values!: Sub
  slots!: Sub
  parts!: Sub
  items!: Sub
  changes!: Sub
  seqs!: Sub
  index!: Sub
  indexed!: Sub
  checkpoints!: Sub
  meta!: Sub
  graves!: Sub
  graveq!: Sub
  deaths!: Sub

  constructor (readonly location: string) {
    this.attach()
    this.pv = Buffer.from(this.values.prefix)
    this.valuesPrefix = this.pv
    this.valuesEnd = Buffer.from(this.pv)
    this.valuesEnd[this.valuesEnd.byteLength - 1]++
    this.ps = Buffer.from(this.slots.prefix)
    this.pu = Buffer.from(this.parts.prefix)
    this.pi = Buffer.from(this.items.prefix)
    this.pq = Buffer.from(this.changes.prefix)
    this.pk = Buffer.from(this.seqs.prefix)
    this.px = Buffer.from(this.index.prefix)
    this.py = Buffer.from(this.indexed.prefix)
    this.pc = Buffer.from(this.checkpoints.prefix)
    this.pm = Buffer.from(this.meta.prefix)
    this.pg = Buffer.from(this.graves.prefix)
    this.ph = Buffer.from(this.graveq.prefix)
    this.pd = Buffer.from(this.deaths.prefix)
  }

  private readonly pv: Bytes
  /** The values sublevel's key prefix, and the first key after its range. */
  readonly valuesPrefix: Bytes
  readonly valuesEnd: Bytes
  private readonly ps: Bytes
  private readonly pu: Bytes
  private readonly pi: Bytes
  private readonly pq: Bytes
  private readonly pk: Bytes
  private readonly px: Bytes
  private readonly py: Bytes
  private readonly pc: Bytes
  private readonly pm: Bytes
  private readonly pg: Bytes
  private readonly ph: Bytes
  private readonly pd: Bytes

  /**
   * Opens LevelDB. A view LevelDB reports as corrupt (a damaged or missing table file, a truncated
   * MANIFEST) is removed and created anew, empty: it is derived from the logs, which the engine
   * then folds again. Returns why it did so, or null. Any other failure (another process holds
   * the view, an I/O error) is thrown: those are not the view's to repair.
   */
  async open (): Promise<string | null> {
    try {
      await this.db.open()
      return null
    } catch (err) {
      const cause = (err as { cause?: { code?: string, message?: string } }).cause
      if (cause?.code !== 'LEVEL_CORRUPTION') throw err
      await rm(this.location, { recursive: true, force: true })
      this.attach()
      await this.db.open()
      return `the view could not be read (${cause.message ?? 'corrupt'})`
    }
  }

  /** A LevelDB handle on the view's directory, and its tables (their prefixes never change). */
  private attach (): void {
    this.db = new ClassicLevel<Bytes, Bytes>(this.location, BUF)
    this.values = this.db.sublevel<Bytes, Bytes>('v', BUF)
    this.slots = this.db.sublevel<Bytes, Bytes>('s', BUF)
    this.parts = this.db.sublevel<Bytes, Bytes>('u', BUF)
    this.items = this.db.sublevel<Bytes, Bytes>('i', BUF)
    this.changes = this.db.sublevel<Bytes, Bytes>('q', BUF)
    this.seqs = this.db.sublevel<Bytes, Bytes>('k', BUF)
    this.index = this.db.sublevel<Bytes, Bytes>('x', BUF)
    this.indexed = this.db.sublevel<Bytes, Bytes>('y', BUF)
    this.checkpoints = this.db.sublevel<Bytes, Bytes>('c', BUF)
    this.meta = this.db.sublevel<Bytes, Bytes>('m', BUF)
    this.graves = this.db.sublevel<Bytes, Bytes>('j', BUF)
    this.graveq = this.db.sublevel<Bytes, Bytes>('h', BUF)
    this.deaths = this.db.sublevel<Bytes, Bytes>('g', BUF)
  }

  /** The root-level key of `key` in sublevel `sub` (sublevels are plain key prefixes). */
  private static at (prefix: Bytes, key: Uint8Array): Bytes {
    const out = Buffer.allocUnsafe(prefix.byteLength + key.byteLength)
    prefix.copy(out, 0)
    out.set(key, prefix.byteLength)
    return out
  }

  /** The rendered value of a key, read synchronously (LevelDB's cache makes this the fast path). */
  getValueSync (key: Uint8Array): Bytes | undefined {
    return this.getSync(ViewStore.at(this.pv, key))
  }

  /** The value of `key` (without the values prefix) in a snapshot: its overlay, then LevelDB's. */
  getValueAt (key: Uint8Array, snap: ViewSnapshot): Bytes | undefined {
    return this.getAt(ViewStore.at(this.pv, key), snap)
  }

  /** A root-level key's value at `snap`: its overlay, then LevelDB's. */
  private getAt (root: Bytes, snap: ViewSnapshot): Bytes | undefined {
    const op = snap.overlay?.get(root.toString('latin1'))
    if (op !== undefined) return op.type === 'put' ? op.value : undefined
    return this.db.getSync(root, { snapshot: snap.inner })
  }

  /** The values rows of many keys at `snap`, in one LevelDB call (undefined: absent). */
  async getRows (keys: readonly Uint8Array[], snap: ViewSnapshot): Promise<Array<Bytes | undefined>> {
    const roots = keys.map((k) => ViewStore.at(this.pv, k))
    const stored = await this.db.getMany(roots, { snapshot: snap.inner } as never) as Array<Bytes | undefined>
    return roots.map((root, i) => {
      const op = snap.overlay?.get(root.toString('latin1'))
      if (op !== undefined) return op.type === 'put' ? op.value : undefined
      return stored[i]
    })
  }

  /** The values row of `key` (kind byte ‖ payload), at `snap` or now. */
  getRow (key: Uint8Array, snap?: ViewSnapshot): Bytes | undefined {
    return snap === undefined ? this.getValueSync(key) : this.getValueAt(key, snap)
  }

  getRecordSync (key: Uint8Array): KeyRecord {
    const raw = this.getSync(ViewStore.at(this.ps, key))
    return raw === undefined ? { slots: [], head: null } : decodeRecord(raw)
  }

  getSlotsSync (key: Uint8Array): Slot[] {
    return this.getRecordSync(key).slots
  }

  /** The slots of one part (see the top of this file). */
  getPartSync (part: Uint8Array): Slot[] {
    const raw = this.getSync(ViewStore.at(this.pu, part))
    return raw === undefined ? [] : decodeSlots(raw)
  }

  getItemSync (part: Uint8Array): Bytes | undefined {
    return this.getSync(ViewStore.at(this.pi, part))
  }

  /**
   * The parts (`table` 'parts') or items ('items') whose part keys start with `prefix`, in order,
   * at `snap` or now, with the write-behind table laid over LevelDB. Keys come back without the
   * table's prefix; `range` narrows them further (part keys, as `prefix` is).
   */
  async * scan (table: ScanTable, prefix: Uint8Array, snap?: ViewSnapshot, range: ScanRange = {}): AsyncGenerator<[Bytes, Bytes]> {
    for await (const batch of this.scanv(table, prefix, snap, range)) yield * batch
  }

  /** `scan`, a batch at a time (up to 1,024 rows): for readers that take many rows at once. */
  async * scanv (table: ScanTable, prefix: Uint8Array, snap?: ViewSnapshot, range: ScanRange = {}): AsyncGenerator<Array<[Bytes, Bytes]>> {
    const p = { parts: this.pu, items: this.pi, changes: this.pq, index: this.px, indexed: this.py, graveq: this.ph, deaths: this.pd }[table]
    const lo = ViewStore.at(p, prefix)
    const hi = prefixEnd(lo) // (never all 0xff: it starts with a sublevel's prefix)
    // the prefix's range, narrowed by the caller's bounds (as in LevelDB, gte wins over gt, lte over lt)
    const bounds: KeyRange = { gte: lo, lt: hi }
    const low = range.gte !== undefined ? { gte: ViewStore.at(p, range.gte) } : range.gt !== undefined ? { gt: ViewStore.at(p, range.gt) } : null
    const high = range.lte !== undefined ? { lte: ViewStore.at(p, range.lte) } : range.lt !== undefined ? { lt: ViewStore.at(p, range.lt) } : null
    if (low !== null && Buffer.compare(low.gte ?? low.gt as Bytes, lo) >= 0) {
      delete bounds.gte
      Object.assign(bounds, low)
    }
    if (high !== null && Buffer.compare(high.lte ?? high.lt as Bytes, hi) < 0) {
      delete bounds.lt
      Object.assign(bounds, high)
    }
    const it = this.rangeIterator(bounds, { reverse: range.reverse === true, keys: true, values: true }, snap)
    let left = range.limit ?? Infinity
    try {
      while (left > 0) {
        const more = await it.nextv(Math.min(left, 1024))
        if (more.length === 0) break
        yield more.map(([k, v]) => [k.subarray(p.byteLength), v])
        left -= more.length
      }
    } finally {
      await it.close()
    }
  }

  /** A root-level key's value: the write-behind table first, then LevelDB. */
  private getSync (root: Bytes): Bytes | undefined {
    if (this.pending.size > 0 || this.flushing !== null) {
      const id = root.toString('latin1')
      const op = this.pending.get(id) ?? this.flushing?.get(id)
      if (op !== undefined) return op.type === 'put' ? op.value : undefined
    }
    return this.db.getSync(root)
  }

  /** Commits waiting to reach LevelDB, newest winning; null if there are none. */
  overlay (): Overlay | null {
    if (this.pending.size === 0 && this.flushing === null) return null
    const out: Overlay = new Map(this.flushing ?? [])
    for (const [k, op] of this.pending) out.set(k, op)
    return out
  }

  /** A consistent read point: LevelDB's snapshot plus a copy of the commits not yet in it. */
  snapshot (): ViewSnapshot {
    return { inner: this.db.snapshot(), overlay: this.overlay() }
  }

  /**
   * An iterator over the values in a range of user keys (encoded, without the values prefix; keys
   * come back with it), at `snap` or now, with the write-behind table laid over LevelDB's entries.
   */
  valueIterator (options: ValueRangeOptions, snap?: ViewSnapshot): InnerIterator {
    const range: KeyRange = {}
    for (const r of RANGE) if (options[r] !== undefined) range[r] = Buffer.concat([this.valuesPrefix, options[r]])
    // as in LevelDB: gte wins over gt, lte over lt
    if (range.gte !== undefined) delete range.gt
    if (range.lte !== undefined) delete range.lt
    if (range.gt === undefined && range.gte === undefined) range.gte = this.valuesPrefix
    if (range.lt === undefined && range.lte === undefined) range.lt = this.valuesEnd
    return this.rangeIterator(range, options, snap)
  }

  /** An iterator over root keys in `range`, at `snap` or now, the write-behind table laid over LevelDB. */
  private rangeIterator (range: KeyRange, options: ValueRangeOptions, snap?: ViewSnapshot): InnerIterator {
    const overlay = snap !== undefined ? snap.overlay : this.overlay()
    const reverse = options.reverse === true
    const keys = options.keys !== false
    const values = options.values !== false
    const it = this.db.iterator({
      ...range,
      reverse,
      // laying the table over LevelDB's entries needs their keys and values
      keys: keys || overlay !== null,
      values: values || overlay !== null,
      signal: options.signal,
      ...(snap !== undefined ? { snapshot: snap.inner } : {})
    } as never) as unknown as InnerIterator
    return overlay === null ? it : new OverlayIterator(it, overlay, range, { reverse, keys, values })
  }

  /**
   * Throws the error of a batch LevelDB refused, while no retry has landed it: the view takes no
   * new commit until then (see the top of this file).
   */
  check (): void {
    if (this.failed !== null) throw this.failed
  }

  /** Whether LevelDB refused a batch that no retry has landed yet. */
  get refused (): boolean {
    return this.failed !== null
  }

  /**
   * Called once a retry has landed a batch LevelDB had refused: commits are taken again, and
   * whatever was refused meanwhile (a fold) can run again.
   */
  onRecover: (() => void) | null = null

  /**
   * Retries the table LevelDB refused, now, after the batch in flight; resolves once LevelDB has
   * it, rejects with the refusal (MESHBEE_STORAGE) if LevelDB refuses it again. Resolves at once
   * if nothing was refused.
   */
  async retry (): Promise<void> {
    if (this.failed === null) return
    const next = this.flushed.then(async () => { await this.recover() })
    this.flushed = next.catch(() => {})
    await next
    this.check()
  }

  /**
   * Runs `fn`, whose commits the view takes even while LevelDB refuses (into the table): for the
   * commit of entries already appended to the own log, which a refusal should not turn into a
   * failed write.
   */
  async admitting<T> (fn: () => Promise<T>): Promise<T> {
    this.admitted++
    try {
      return await fn()
    } finally {
      this.admitted--
    }
  }

  /** Writes every commit out, then has LevelDB compact all its tables (after compaction dropped rows). */
  async compact (): Promise<void> {
    await this.settle()
    await this.db.compactRange(Buffer.from([0]), PAST_ALL)
  }

  /** Writes every commit made so far to LevelDB; rejects if LevelDB refuses them. */
  async settle (): Promise<void> {
    await this.flush()
    await this.retry()
  }

  /**
   * Writes the table out and closes LevelDB. A batch LevelDB refuses here is not an error of close:
   * the logs hold every commit, and the next open folds what LevelDB lacks.
   */
  async close (): Promise<void> {
    this.closed = true
    await this.flush()
    await this.retry().catch(() => {})
    if (this.retryTimer !== null) clearTimeout(this.retryTimer)
    this.retryTimer = null
    await this.db.close()
  }

  async readCheckpoints (): Promise<Map<string, number>> {
    await this.settle()
    const out = new Map<string, number>()
    for await (const [k, v] of this.checkpoints.iterator()) out.set(k.toString('hex'), c.decode(c.uint, v))
    return out
  }

  async getMeta (name: string): Promise<Bytes | undefined> {
    return this.getSync(ViewStore.at(this.pm, Buffer.from(name)))
  }

  /** A sequence number kept in meta ('seq', 'epoch'), or null when there is none. */
  async readSeq (name: 'seq' | 'epoch' | 'collected' | 'gen' | 'graves' | 'collected-count' | 'cleared-count'): Promise<number | null> {
    const raw = await this.getMeta(name)
    return raw === undefined || raw.byteLength !== 8 ? null : Number(raw.readBigUInt64BE(0))
  }

  /**
   * A stamp kept in meta: 'hlc' (the clock's last stamp), 'seen' (the newest remote stamp it
   * observed) or 'dropped' (the newest stamp among the tombstones collected).
   */
  async readStamp (name: 'hlc' | 'seen' | 'dropped' = 'hlc'): Promise<Stamp | null> {
    const raw = await this.getMeta(name)
    return raw === undefined ? null : c.decode(stampEncoding, raw)
  }

  putValue (key: Uint8Array, value: Uint8Array | null): BatchOp {
    const k = ViewStore.at(this.pv, key)
    return value === null ? { type: 'del', key: k } : { type: 'put', key: k, value: Buffer.from(value.buffer, value.byteOffset, value.byteLength) }
  }

  putRecord (key: Uint8Array, rec: KeyRecord): BatchOp {
    const k = ViewStore.at(this.ps, key)
    return rec.slots.length === 0 && rec.head === null ? { type: 'del', key: k } : { type: 'put', key: k, value: encodeRecord(rec) }
  }

  putPart (part: Uint8Array, slots: Slot[]): BatchOp {
    const k = ViewStore.at(this.pu, part)
    return slots.length === 0 ? { type: 'del', key: k } : { type: 'put', key: k, value: encodeSlots(slots) }
  }

  putItem (part: Uint8Array, item: Uint8Array | null): BatchOp {
    const k = ViewStore.at(this.pi, part)
    return item === null ? { type: 'del', key: k } : { type: 'put', key: k, value: Buffer.from(item) }
  }

  /**
   * Empties every table but the database key (before a rebuild from the logs: a view written in
   * another layout). One batch per table, then the layout version: a process that dies midway
   * rebuilds again on the next open.
   */
  async clearDerived (): Promise<void> {
    await this.settle()
    for (const t of [this.values, this.slots, this.parts, this.items, this.changes, this.seqs, this.index, this.indexed, this.checkpoints, this.graves, this.graveq, this.deaths]) await t.clear()
    for (const name of ['hlc', 'seen', 'hash', 'format', 'gen', 'graves', 'dropped']) await this.meta.del(Buffer.from(name))
    // the change feed starts a new epoch: what it listed before (deletions among it) is gone
    await this.meta.put(Buffer.from('epoch'), seqBytes((await this.readSeq('seq') ?? 0) + 1))
  }

  /** Where `key`'s entry in the change feed is (its seq), or undefined. */
  getSeqSync (key: Uint8Array): number | undefined {
    const raw = this.getSync(ViewStore.at(this.pk, key))
    return raw === undefined ? undefined : Number(raw.readBigUInt64BE(0))
  }

  /** Moves `key`'s entry in the change feed from `from` (if any) to `seq`. */
  putChange (key: Uint8Array, from: number | undefined, seq: number): BatchOp[] {
    const ops: BatchOp[] = []
    if (from !== undefined) ops.push({ type: 'del', key: ViewStore.at(this.pq, changeKey(from, key)) })
    ops.push({ type: 'put', key: ViewStore.at(this.pq, changeKey(seq, key)), value: Buffer.alloc(0) })
    ops.push({ type: 'put', key: ViewStore.at(this.pk, key), value: seqBytes(seq) })
    return ops
  }

  /** The index keys (encoded, one after another) an index holds for a user key: `ref` is index name prefix ‖ user key. */
  getIndexedSync (ref: Uint8Array): Bytes | undefined {
    return this.getSync(ViewStore.at(this.py, ref))
  }

  putIndexed (ref: Uint8Array, keys: Bytes | null): BatchOp {
    const k = ViewStore.at(this.py, ref)
    return keys === null ? { type: 'del', key: k } : { type: 'put', key: k, value: keys }
  }

  /** A row of the `index` table (an entry, or a text index's posting or statistic); null deletes it. */
  putIndexEntry (entry: Uint8Array, value: Uint8Array | null): BatchOp {
    const k = ViewStore.at(this.px, entry)
    return value !== null ? { type: 'put', key: k, value: Buffer.from(value) } : { type: 'del', key: k }
  }

  /** A row of the `index` table (`table` 'index') or the `indexed` one, now or at `snap`. */
  getIndexRow (table: 'index' | 'indexed', row: Uint8Array, snap?: ViewSnapshot): Bytes | undefined {
    const root = ViewStore.at(table === 'index' ? this.px : this.py, row)
    return snap === undefined ? this.getSync(root) : this.getAt(root, snap)
  }

  /** Removes every entry of an index (its name prefix) from both index tables. */
  async clearIndex (prefix: Uint8Array): Promise<void> {
    await this.settle()
    for (const t of [this.index, this.indexed]) await t.clear({ gte: Buffer.from(prefix), lt: prefixEnd(Buffer.from(prefix)) })
  }

  /** The tombstone generation `key` is held under (see `graves` at the top), or undefined. */
  getGraveSync (key: Uint8Array): number | undefined {
    const raw = this.getSync(ViewStore.at(this.pg, key))
    return raw === undefined ? undefined : Number(raw.readBigUInt64BE(0))
  }

  /** Holds `key` as a tombstone under `gen` (moved from `from`, if it was held). */
  putGrave (key: Uint8Array, from: number | undefined, gen: number): BatchOp[] {
    const ops: BatchOp[] = []
    if (from !== undefined) ops.push({ type: 'del', key: ViewStore.at(this.ph, changeKey(from, key)) })
    ops.push({ type: 'put', key: ViewStore.at(this.ph, changeKey(gen, key)), value: Buffer.alloc(0) })
    ops.push({ type: 'put', key: ViewStore.at(this.pg, key), value: seqBytes(gen) })
    return ops
  }

  /** `key` is no tombstone any more (it reads as present again, or it was collected). */
  delGrave (key: Uint8Array, gen: number): BatchOp[] {
    return [{ type: 'del', key: ViewStore.at(this.ph, changeKey(gen, key)) }, { type: 'del', key: ViewStore.at(this.pg, key) }]
  }

  /** A tombstone generation's read lengths and the newest stamp of its keys' entries (null deletes it). */
  putDeath (gen: number, vector: ReadonlyArray<[Uint8Array, number]> | null, newest?: Stamp): BatchOp {
    const k = ViewStore.at(this.pd, seqBytes(gen))
    if (vector === null) return { type: 'del', key: k }
    return { type: 'put', key: k, value: Buffer.from(pack([[newest?.wall ?? 0, newest?.counter ?? 0], vector.map(([w, n]) => [w, n])])) }
  }

  /** Removes `key`'s slots record, its entry in the change feed (at `seq`), and a part's or item's row (`delPart`). */
  delRecord (key: Uint8Array, seq: number | undefined): BatchOp[] {
    const ops: BatchOp[] = [{ type: 'del', key: ViewStore.at(this.ps, key) }]
    if (seq !== undefined) ops.push({ type: 'del', key: ViewStore.at(this.pq, changeKey(seq, key)) }, { type: 'del', key: ViewStore.at(this.pk, key) })
    return ops
  }

  putCheckpoint (writer: Uint8Array, length: number): BatchOp {
    return { type: 'put', key: ViewStore.at(this.pc, writer), value: Buffer.from(c.encode(c.uint, length)) }
  }

  putMeta (name: string, value: Uint8Array): BatchOp {
    return { type: 'put', key: ViewStore.at(this.pm, Buffer.from(name)), value: Buffer.from(value) }
  }

  putStamp (s: Stamp, name: 'hlc' | 'seen' | 'dropped' = 'hlc'): BatchOp {
    return this.putMeta(name, c.encode(stampEncoding, s) as Uint8Array)
  }

  /**
   * Commits `ops` atomically: every read here sees them when this returns (or, for a commit of
   * DIRECT_OPS writes or more, when it resolves). LevelDB takes them in a later batch (see the top
   * of this file). Rejects with MESHBEE_STORAGE while LevelDB refuses a batch, unless admitted
   * (`admitting`): the commit then waits in the table with the refused ones.
   */
  async write (ops: BatchOp[]): Promise<void> {
    if (this.admitted === 0) this.check()
    if (ops.length === 0) return
    if (ops.length >= DIRECT_OPS) {
      // too big to hold: LevelDB takes it after the table, and it is readable once written
      const written = this.flush().then(async () => {
        if (this.failed === null) {
          try {
            await this.db.batch(ops)
            return
          } catch (err) {
            this.refuse(err)
          }
        } else if (this.admitted === 0) {
          // never past a batch LevelDB refused: its commits must not land after later ones
          throw this.failed
        }
        // refused, or behind a refused batch: the commit waits in the table (readable now) and
        // lands with it
        this.hold(ops)
      })
      this.flushed = written.catch(() => {})
      await written
      return
    }
    this.hold(ops)
    if (this.failed !== null) return // the retry writes the table
    if (this.pending.size >= FLUSH_NOW) void this.flush()
    else if (this.timer === null) {
      this.timer = setTimeout(() => { void this.flush() }, FLUSH_MS)
      this.timer.unref()
    }
  }

  /** Puts a commit in the table. */
  private hold (ops: BatchOp[]): void {
    for (const op of ops) this.pending.set(op.key.toString('latin1'), op)
  }

  /** Hands the table to LevelDB, one batch after the one in flight; resolves when it is written. */
  private flush (): Promise<void> {
    if (this.timer !== null) {
      clearTimeout(this.timer)
      this.timer = null
    }
    const next = this.flushed.then(async () => {
      // while LevelDB refuses, only a retry writes (see the top of this file)
      if (this.pending.size === 0 || this.failed !== null) return
      await this.writeTable()
    })
    this.flushed = next
    return next
  }

  /**
   * Writes the table to LevelDB in one batch; false if LevelDB refused it. A refused table stays
   * readable, under any commit made since (newer ones win), until a retry lands it.
   */
  private async writeTable (): Promise<boolean> {
    const table = this.pending
    this.flushing = table
    this.pending = new Map()
    try {
      await this.db.batch([...table.values()])
      return true
    } catch (err) {
      for (const [k, op] of table) if (!this.pending.has(k)) this.pending.set(k, op)
      this.refuse(err)
      return false
    } finally {
      this.flushing = null
    }
  }

  /** LevelDB refused a batch: no commit is taken until a retry lands the table, scheduled here. */
  private refuse (err: unknown): void {
    this.failed = viewRefused(err)
    this.torn = true
    if (this.retryTimer !== null || this.closed) return
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null
      this.retry().catch(() => {}) // a refusal schedules the next one
    }, this.backoff)
    this.retryTimer.unref()
    this.backoff = Math.min(this.backoff * 2, RETRY_MAX_MS)
  }

  /** One retry, in the flush chain: the table, then a new LevelDB log file (see the top of this file). */
  private async recover (): Promise<void> {
    if (this.failed === null) return
    if (this.pending.size > 0 && !(await this.writeTable())) return
    if (this.torn) {
      try {
        await this.db.compactRange(PAST_ALL, PAST_ALL)
      } catch (err) {
        this.refuse(err)
        return
      }
      this.torn = false
    }
    this.failed = null
    this.backoff = RETRY_MS
    if (this.retryTimer !== null) clearTimeout(this.retryTimer)
    this.retryTimer = null
    // commits admitted while the retry ran
    if (this.pending.size > 0 && this.timer === null) {
      this.timer = setTimeout(() => { void this.flush() }, FLUSH_MS)
      this.timer.unref()
    }
    this.onRecover?.()
  }

  /** Commits applied here and not handed to LevelDB yet. */
  private pending: Overlay = new Map()
  /** The table LevelDB is writing now. */
  private flushing: Overlay | null = null
  /** The last flush: each waits for the one before, so LevelDB applies them in order. */
  private flushed: Promise<void> = Promise.resolve()
  private timer: NodeJS.Timeout | null = null
  /** The refusal of the last batch LevelDB refused, until a retry lands the table. */
  private failed: Error | null = null
  /** LevelDB's log may end in a torn record: switch to a new one before writing on. */
  private torn = false
  private retryTimer: NodeJS.Timeout | null = null
  private backoff = RETRY_MS
  /** How many `admitting` calls run now. */
  private admitted = 0
  private closed = false
}

/** A read point of the view: LevelDB's snapshot and the commits it does not hold yet. */
export interface ViewSnapshot {
  readonly inner: ReturnType<ClassicLevel<Bytes, Bytes>['snapshot']>
  readonly overlay: Overlay | null
}

/** A sequence number as 8 big-endian bytes: they sort as the numbers do. */
export function seqBytes (seq: number): Bytes {
  const b = Buffer.allocUnsafe(8)
  b.writeBigUInt64BE(BigInt(seq))
  return b
}

/** A key of the `changes` table: seq ‖ user key. */
export function changeKey (seq: number, key: Uint8Array): Bytes {
  return Buffer.concat([seqBytes(seq), key])
}

export function encodeSlots (slots: Slot[]): Bytes {
  const sorted = [...slots].sort((a, b) => compareKeys(a.writer, b.writer))
  const packed = pack(sorted.map((s) => [s.writer, s.entry]))
  return Buffer.from(packed.buffer, packed.byteOffset, packed.byteLength)
}

export function decodeSlots (raw: Uint8Array): Slot[] {
  const arr = unpack(raw) as Array<[Uint8Array, Uint8Array]>
  return arr.map(([writer, entry]) => ({ writer, entry }))
}

type WireVersion = [number, number, Uint8Array] | null

function wireVersion (v: Version | null): WireVersion {
  return v === null ? null : [v.stamp.wall, v.stamp.counter, v.writer]
}

function readVersion (w: WireVersion): Version | null {
  return w === null ? null : { stamp: mkStamp(w[0], w[1]), writer: w[2] }
}

export function encodeRecord (rec: KeyRecord): Bytes {
  const sorted = [...rec.slots].sort((a, b) => compareKeys(a.writer, b.writer))
  const head = rec.head === null ? null : [wireVersion(rec.head.field), wireVersion(rec.head.tag), wireVersion(rec.head.reset)]
  const packed = pack([sorted.map((s) => [s.writer, s.entry]), head])
  return Buffer.from(packed.buffer, packed.byteOffset, packed.byteLength)
}

export function decodeRecord (raw: Uint8Array): KeyRecord {
  const [slots, head] = unpack(raw) as [Array<[Uint8Array, Uint8Array]>, [WireVersion, WireVersion, WireVersion] | null]
  return {
    slots: slots.map(([writer, entry]) => ({ writer, entry })),
    head: head === null ? null : { field: readVersion(head[0]), tag: readVersion(head[1]), reset: readVersion(head[2]) }
  }
}

/** The part key of a field or member of `key` (see the top of this file). */
export function partKey (key: Uint8Array, kind: number, name: Uint8Array): Bytes {
  return Buffer.concat([c.encode(c.uint, key.byteLength), key, Buffer.from([kind]), name])
}

/** The prefix of every part key of `key` of one kind (or, with kind null, of every kind). */
export function partPrefix (key: Uint8Array, kind: number | null): Bytes {
  return Buffer.concat([c.encode(c.uint, key.byteLength), key, kind === null ? Buffer.alloc(0) : Buffer.from([kind])])
}

/** Replaces (or, with `entry` null, removes) one writer's slot. */
export function setSlot (slots: Slot[], writer: Uint8Array, entry: Uint8Array | null): Slot[] {
  const out = slots.filter((s) => compareKeys(s.writer, writer) !== 0)
  if (entry !== null) out.push({ writer, entry })
  return out.sort((a, b) => compareKeys(a.writer, b.writer))
}

/** The calls MeshDB's iterator makes on LevelDB's (one at a time, never overlapping). */
export interface InnerIterator {
  nextv: (size: number) => Promise<Array<[Bytes, Bytes]>>
  all: () => Promise<Array<[Bytes, Bytes]>>
  seek: (target: Bytes) => void
  close: () => Promise<void>
}

/** Bounds (part keys), order and a cap for `ViewStore.scan`. */
/** The tables `scan` reads. */
export type ScanTable = 'parts' | 'items' | 'changes' | 'index' | 'indexed' | 'graveq' | 'deaths'

export interface ScanRange { gt?: Uint8Array, gte?: Uint8Array, lt?: Uint8Array, lte?: Uint8Array, reverse?: boolean, limit?: number }

/** Root-key bounds, as abstract-level spells them. */
export interface KeyRange { gt?: Bytes, gte?: Bytes, lt?: Bytes, lte?: Bytes }

const RANGE = ['gt', 'gte', 'lt', 'lte'] as const

/** A range of user keys and what to read of it, as abstract-level's iterator options give them. */
export interface ValueRangeOptions extends KeyRange {
  reverse?: boolean
  keys?: boolean
  values?: boolean
  signal?: unknown
}

function inRange (k: Bytes, r: KeyRange): boolean {
  if (r.gt !== undefined && Buffer.compare(k, r.gt) <= 0) return false
  if (r.gte !== undefined && Buffer.compare(k, r.gte) < 0) return false
  if (r.lt !== undefined && Buffer.compare(k, r.lt) >= 0) return false
  if (r.lte !== undefined && Buffer.compare(k, r.lte) > 0) return false
  return true
}

/**
 * LevelDB's iterator with the commits it does not hold yet laid over it: a write of the overlay
 * replaces LevelDB's entry for its key, a delete hides it. The overlay is a copy taken with the
 * LevelDB iterator, so the pair reads one point in time. `inner` must yield keys and values;
 * `keys`/`values` say which of them the caller wants.
 */
export class OverlayIterator implements InnerIterator {
  private readonly inner: InnerIterator
  /** The overlay's writes in the range, in iteration order. */
  private readonly ops: BatchOp[]
  private readonly range: KeyRange
  private readonly reverse: boolean
  private readonly keys: boolean
  private readonly values: boolean
  private at = 0
  private ahead: Array<[Bytes, Bytes]> = []
  private pos = 0
  private innerEnded = false

  constructor (inner: InnerIterator, overlay: Overlay, range: KeyRange, opts: { reverse: boolean, keys: boolean, values: boolean }) {
    this.inner = inner
    this.range = range
    this.reverse = opts.reverse
    this.keys = opts.keys
    this.values = opts.values
    const ops = [...overlay.values()].filter((op) => inRange(op.key, range))
    ops.sort((a, b) => this.reverse ? Buffer.compare(b.key, a.key) : Buffer.compare(a.key, b.key))
    this.ops = ops
  }

  /** < 0 if `a` comes before `b` in iteration order. */
  private order (a: Bytes, b: Bytes): number {
    return this.reverse ? Buffer.compare(b, a) : Buffer.compare(a, b)
  }

  private shape (entry: [Bytes, Bytes]): [Bytes, Bytes] {
    if (!this.keys) entry[0] = undefined as unknown as Bytes
    if (!this.values) entry[1] = undefined as unknown as Bytes
    return entry
  }

  /** The first index from `pos` of LevelDB's chunk whose key does not come before `key`. */
  private firstNotBefore (key: Bytes): number {
    let lo = this.pos
    let hi = this.ahead.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (this.order(this.ahead[mid][0], key) < 0) lo = mid + 1
      else hi = mid
    }
    return lo
  }

  /** Up to `size` entries; awaits only to read LevelDB's next chunk, and merges synchronously. */
  async nextv (size: number): Promise<Array<[Bytes, Bytes]>> {
    const out: Array<[Bytes, Bytes]> = []
    while (out.length < size) {
      if (this.pos >= this.ahead.length && !this.innerEnded) {
        this.ahead = await this.inner.nextv(Math.min(Math.max(size - out.length, 64), 1024))
        this.pos = 0
        if (this.ahead.length === 0) this.innerEnded = true
        continue
      }
      const b = this.at < this.ops.length ? this.ops[this.at] : undefined
      // LevelDB's entries before the table's next write go as they are
      const end = Math.min(b === undefined ? this.ahead.length : this.firstNotBefore(b.key), this.pos + size - out.length)
      if (end > this.pos) {
        for (let i = this.pos; i < end; i++) out.push(this.shape(this.ahead[i]))
        this.pos = end
        continue
      }
      if (b === undefined) break // LevelDB's entries and the table's are both spent
      // the table's write comes next; it replaces LevelDB's entry for its key
      if (this.pos < this.ahead.length && this.order(this.ahead[this.pos][0], b.key) === 0) this.pos++
      this.at++
      if (b.type === 'put') out.push(this.shape([b.key, b.value]))
    }
    return out
  }

  async all (): Promise<Array<[Bytes, Bytes]>> {
    const out: Array<[Bytes, Bytes]> = []
    for (let more = await this.nextv(1024); more.length > 0; more = await this.nextv(1024)) out.push(...more)
    return out
  }

  seek (target: Bytes): void {
    this.ahead = []
    this.pos = 0
    if (!inRange(target, this.range)) {
      // LevelDB's answer too (and classic-level 3.0.0 aborts on such a seek in an empty database)
      this.innerEnded = true
      this.at = this.ops.length
      return
    }
    this.inner.seek(target)
    this.innerEnded = false
    let i = 0
    while (i < this.ops.length && this.order(this.ops[i].key, target) < 0) i++
    this.at = i
  }

  async close (): Promise<void> {
    await this.inner.close()
  }
}
