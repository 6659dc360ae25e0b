/**
 * The view store: one LevelDB (classic-level) holding everything the fold derives, so that the
 * view, the per-key slots and the checkpoints always change together in one atomic batch.
 *
 *   values      user key → the key's rendered value (what get and iterators read)
 *   slots       user key → msgpack [[writer key, entry bytes], …] sorted by writer: each member's
 *               latest entry for the key at its cut (the inputs of the merge)
 *   checkpoints writer key → the length of its log the view reflects
 *   meta        'key' → database key, 'hlc' → the last HLC stamp, 'hash' → the view digest,
 *               'undo' → the undo record of the last own write (see undoRecord)
 */
import { decode as unpack, encode as pack } from '@msgpack/msgpack'
import c from 'compact-encoding'
import { ClassicLevel } from 'classic-level'
import type { AbstractSublevel } from 'abstract-level'
import { compareKeys, stampEncoding, type Stamp } from '../crdt/hlc.js'

type Bytes = Buffer
export type Sub = AbstractSublevel<ClassicLevel<Bytes, Bytes>, string | Buffer | Uint8Array, Bytes, Bytes>

const BUF = { keyEncoding: 'buffer', valueEncoding: 'buffer' } as const

/** One writer's latest entry for a key. */
export interface Slot { readonly writer: Uint8Array, readonly entry: Uint8Array }

/** A write to the root LevelDB, its key already carrying the sublevel's prefix. */
export type BatchOp =
  | { type: 'put', key: Bytes, value: Bytes }
  | { type: 'del', key: Bytes }

export class ViewStore {
  readonly db: ClassicLevel<Bytes, Bytes>
  readonly values: Sub
  readonly slots: Sub
  readonly checkpoints: Sub
  readonly meta: Sub

  constructor (location: string) {
    this.db = new ClassicLevel<Bytes, Bytes>(location, BUF)
    this.values = this.db.sublevel<Bytes, Bytes>('v', BUF)
    this.slots = this.db.sublevel<Bytes, Bytes>('s', BUF)
    this.checkpoints = this.db.sublevel<Bytes, Bytes>('c', BUF)
    this.meta = this.db.sublevel<Bytes, Bytes>('m', BUF)
    this.pv = Buffer.from(this.values.prefix)
    this.valuesPrefix = this.pv
    this.valuesEnd = Buffer.from(this.pv)
    this.valuesEnd[this.valuesEnd.byteLength - 1]++
    this.ps = Buffer.from(this.slots.prefix)
    this.pc = Buffer.from(this.checkpoints.prefix)
    this.pm = Buffer.from(this.meta.prefix)
  }

  private readonly pv: Bytes
  /** The values sublevel's key prefix, and the first key after its range. */
  readonly valuesPrefix: Bytes
  readonly valuesEnd: Bytes
  private readonly ps: Bytes
  private readonly pc: Bytes
  private readonly pm: Bytes

  async open (): Promise<void> {
    await this.db.open()
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
    return this.db.getSync(ViewStore.at(this.pv, key))
  }

  getSlotsSync (key: Uint8Array): Slot[] {
    const raw = this.db.getSync(ViewStore.at(this.ps, key))
    return raw === undefined ? [] : decodeSlots(raw)
  }

  async close (): Promise<void> {
    await this.db.close()
  }

  async getSlots (key: Uint8Array): Promise<Slot[]> {
    const raw = await this.slots.get(Buffer.from(key))
    return raw === undefined ? [] : decodeSlots(raw)
  }

  async readCheckpoints (): Promise<Map<string, number>> {
    const out = new Map<string, number>()
    for await (const [k, v] of this.checkpoints.iterator()) out.set(k.toString('hex'), c.decode(c.uint, v))
    return out
  }

  async getMeta (name: string): Promise<Bytes | undefined> {
    return await this.meta.get(Buffer.from(name))
  }

  async readStamp (): Promise<Stamp | null> {
    const raw = await this.getMeta('hlc')
    return raw === undefined ? null : c.decode(stampEncoding, raw)
  }

  putValue (key: Uint8Array, value: Uint8Array | null): BatchOp {
    const k = ViewStore.at(this.pv, key)
    return value === null ? { type: 'del', key: k } : { type: 'put', key: k, value: Buffer.from(value.buffer, value.byteOffset, value.byteLength) }
  }

  putSlots (key: Uint8Array, slots: Slot[]): BatchOp {
    const k = ViewStore.at(this.ps, key)
    return slots.length === 0 ? { type: 'del', key: k } : { type: 'put', key: k, value: encodeSlots(slots) }
  }

  putCheckpoint (writer: Uint8Array, length: number): BatchOp {
    return { type: 'put', key: ViewStore.at(this.pc, writer), value: Buffer.from(c.encode(c.uint, length)) }
  }

  putMeta (name: string, value: Uint8Array): BatchOp {
    return { type: 'put', key: ViewStore.at(this.pm, Buffer.from(name)), value: Buffer.from(value) }
  }

  putStamp (s: Stamp): BatchOp {
    return this.putMeta('hlc', c.encode(stampEncoding, s) as Uint8Array)
  }

  /**
   * The undo record of a batch: what every key the batch writes held before it, and `length`, the
   * own log's length once the log append that goes with the batch has landed. An own write
   * commits its view batch (with this record in it) while its log append is still being written;
   * if the process dies before the append lands, open() finds the log shorter than `length` and
   * rolls the batch back (rollBack). The record is overwritten by the next own write and is inert
   * once the log has reached `length`.
   */
  undoRecord (ops: BatchOp[], length: number): BatchOp {
    const prior = ops.map((op) => [op.key, this.db.getSync(op.key) ?? null])
    return this.putMeta('undo', pack([length, prior]))
  }

  /**
   * Rolls back the last own write's view batch if the own log, now `length` long, does not hold its
   * append; drops an inert undo record. Returns whether it rolled back.
   */
  async rollBack (length: number): Promise<boolean> {
    const undo = await this.readUndo()
    if (undo === null) return false
    const back = undo.length > length
    await this.db.batch([...(back ? undo.restore : []), { type: 'del', key: ViewStore.at(this.pm, Buffer.from('undo')) }])
    return back
  }

  /** The stored undo record: the log length it waits for and the writes that restore the view without it. */
  async readUndo (): Promise<{ length: number, restore: BatchOp[] } | null> {
    const raw = await this.getMeta('undo')
    if (raw === undefined) return null
    const [length, prior] = unpack(raw) as [number, Array<[Uint8Array, Uint8Array | null]>]
    const restore: BatchOp[] = prior.map(([k, v]) => v === null
      ? { type: 'del', key: Buffer.from(k) }
      : { type: 'put', key: Buffer.from(k), value: Buffer.from(v) })
    return { length, restore }
  }

  async write (ops: BatchOp[]): Promise<void> {
    if (ops.length > 0) await this.db.batch(ops)
  }
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

/** Replaces (or, with `entry` null, removes) one writer's slot. */
export function setSlot (slots: Slot[], writer: Uint8Array, entry: Uint8Array | null): Slot[] {
  const out = slots.filter((s) => compareKeys(s.writer, writer) !== 0)
  if (entry !== null) out.push({ writer, entry })
  return out.sort((a, b) => compareKeys(a.writer, b.writer))
}
