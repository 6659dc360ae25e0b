/**
 * Inspection: what the writers are and how far each is folded, every writer's entry behind a
 * key's value, a writer's changes between two lengths of its log, and the view at past cuts. It
 * reads the logs and the view and changes nothing.
 */
import { compareStamps, compareVersions, type Stamp } from '../crdt/hlc.js'
import { canonicalJson, type Json } from '../crdt/json.js'
import { render } from '../crdt/keystate.js'
import {
  DATA_RANGE, DEL, FIELD, FIELD_NS, MEMBER, PUT, decodeData, decodeEntry, memberState, parseDataKey, renderKey, slotState,
  type DataEntry, type DataKey, type EntrySlot, type PartKind, type PartSlots
} from './entry.js'
import { historyCleared, unknownWriter } from './errors.js'
import { buf } from './keys.js'
import { resolveMembers, type Member, type MembershipRecord } from './membership.js'
import type { KeyType, WriterInfo } from './types.js'
import { ROW_DOC, ROW_SET, decodeSlots, partPrefix, type Slot, type ViewStore } from './view.js'
import { FETCH_TIMEOUT, type WriterLog } from './writer-log.js'

/** One writer's latest entry for a key. `value` is what that writer alone says the key holds. */
export interface EntryVersion {
  writer: Buffer
  stamp: Stamp
  type: 'put' | 'del' | 'state' | 'field' | 'member'
  value: Buffer | null
}

/** A writer's say on a whole key (`versions`): a whole-value entry, or all its entries for the key together. */
export type KeyEntryVersion = EntryVersion & { type: 'put' | 'del' | 'state' }

/** One entry's change in a writer's log between two lengths (see `Inspection.writerChanges`). */
export interface WriterChange {
  key: Buffer
  /** The document field the entry is about, if it is a field entry. */
  field?: string
  /** The set member the entry is about, if it is a member entry. */
  member?: Json
  /** 'put'/'del'/'state'/'field'/'member': the writer's new entry; 'gone': it has no entry for it at `to`. */
  type: 'put' | 'del' | 'state' | 'field' | 'member' | 'gone'
  value: Buffer | null
  previous: Buffer | null
  stamp: Stamp | null
  seq: number | null
}

/** What inspection reads of the engine's state, given at construction. */
export interface InspectionSource {
  readonly writers: ReadonlyMap<string, WriterLog>
  readonly checkpoints: ReadonlyMap<string, number>
  readonly view: ViewStore
  members: () => ReadonlyMap<string, Member>
  /** The database key (the creator's writer key). */
  key: () => Buffer
}


export class Inspection {
  constructor (private readonly s: InspectionSource) {}

  /** Every writer log this peer has opened, by key: lengths, cut, membership, clock skew. */
  writerInfo (): WriterInfo[] {
    const members = this.s.members()
    return [...this.s.writers.entries()].sort((a, b) => a[0] < b[0] ? -1 : 1).map(([id, w]) => {
      const m = members.get(id)
      return {
        key: buf(w.key),
        length: w.core.length,
        cut: m === undefined ? 0 : Math.min(m.removed || m.reader === true ? m.cut : w.core.length, w.malformedAt),
        folded: this.s.checkpoints.get(id) ?? 0,
        held: w.contiguous,
        member: m !== undefined,
        removed: m?.removed ?? false,
        reader: m?.reader === true,
        maxSkew: w.maxSkew,
        local: w.local
      }
    })
  }

  /** What `key` holds in the view: a whole value, a document, a set, or nothing. */
  kindOf (key: Uint8Array): KeyType | undefined {
    const row = this.s.view.getRow(key)
    if (row === undefined) return undefined
    return row[0] === ROW_DOC ? 'doc' : row[0] === ROW_SET ? 'set' : 'value'
  }

  /**
   * Every member's latest say on `key` at its cut, the winner (greatest version) first: its
   * whole-value entry, or, for a writer that also wrote fields or members of the key, what all of
   * its entries for the key say together (type 'state', stamped with the newest of them).
   */
  async versions (key: Uint8Array): Promise<KeyEntryVersion[]> {
    const { view } = this.s
    const byWriter = new Map<string, { whole: Slot | null, parts: PartSlots[], newest: Stamp | null }>()
    const of = (w: Uint8Array): { whole: Slot | null, parts: PartSlots[], newest: Stamp | null } => {
      const id = buf(w).toString('hex')
      let e = byWriter.get(id)
      if (e === undefined) byWriter.set(id, e = { whole: null, parts: [], newest: null })
      return e
    }
    const newer = (a: Stamp | null, b: Stamp): Stamp => a === null || compareStamps(b, a) > 0 ? b : a
    for (const s of view.getSlotsSync(key)) {
      const e = of(s.writer)
      e.whole = s
      e.newest = newer(e.newest, decodeEntry(s.entry).stamp)
    }
    const at = partPrefix(key, null).byteLength
    for await (const [part, raw] of view.scan('parts', partPrefix(key, null))) {
      for (const s of decodeSlots(raw)) {
        if (s.writer.byteLength === 0) continue // what format-1 STATE entries say: in their writers' whole-value slots
        const e = of(s.writer)
        e.parts.push({ kind: part[at] as PartKind, name: part.subarray(at + 1), slots: [s] })
        e.newest = newer(e.newest, decodeEntry(s.entry).stamp)
      }
    }
    const out: KeyEntryVersion[] = []
    for (const [id, e] of byWriter) {
      const writer = Buffer.from(id, 'hex')
      if (e.parts.length === 0 && e.whole !== null) {
        out.push(describeEntry(decodeEntry(e.whole.entry) as DataEntry, writer) as KeyEntryVersion)
        continue
      }
      const v = renderKey(e.whole === null ? [] : [e.whole], e.parts)
      out.push({ writer, stamp: e.newest as Stamp, type: 'state', value: v === null ? null : buf(v) })
    }
    return out.sort((a, b) => compareVersions({ stamp: b.stamp, writer: b.writer }, { stamp: a.stamp, writer: a.writer }))
  }

  /** The data entries of a writer's log that differ between two lengths, one per key. */
  async * writerChanges (writer: Uint8Array, from: number, to: number | undefined, since: Stamp | undefined): AsyncGenerator<WriterChange> {
    const id = buf(writer).toString('hex')
    const w = this.s.writers.get(id)
    if (w === undefined) throw unknownWriter(id)
    const avail = Math.min(w.heldEnd(), w.malformedAt)
    const end = to === undefined && w.malformedAt > avail
      ? w.signedAtMost(avail, this.s.checkpoints.get(id) ?? 0)
      : await w.batchEnd(Math.min(to ?? avail, avail))
    let start = Math.min(Math.max(0, from), end)
    if (since !== undefined) start = Math.max(start, await w.firstSince(since, end))
    await w.needTree(start)
    await w.needTree(end)
    const snap = w.bee.checkout(Math.max(1, end))
    try {
      for await (const { left, right } of cleared(w, Math.min(start, end), snap.createDiffStream(start, DATA_RANGE, { timeout: FETCH_TIMEOUT }))) {
        const node = left ?? right as NonNullable<typeof right>
        let dk: DataKey
        try {
          dk = parseDataKey(node.key)
        } catch {
          continue
        }
        const now = left === null ? null : safeDescribe(left.key, left.value, w.key)
        const before = right === null ? null : safeDescribe(right.key, right.value, w.key)
        const part = dk.part === null
          ? {}
          : dk.part.kind === FIELD_NS ? { field: dk.part.name.toString('utf8') } : { member: JSON.parse(dk.part.name.toString('utf8')) as Json }
        yield {
          key: buf(dk.key),
          ...part,
          type: now === null ? 'gone' : now.type,
          value: now?.value ?? null,
          previous: before?.value ?? null,
          stamp: now?.stamp ?? null,
          seq: left?.seq ?? null
        }
      }
    } finally {
      await snap.close()
    }
  }

  /**
   * The view as it was at the given cuts (writer hex key → length): membership and data both
   * replayed from the logs truncated there. Returns the rendered entries, sorted by key.
   */
  async materialize (cuts: Map<string, number>): Promise<Array<[Buffer, Buffer]>> {
    const lengthOf = (w: WriterLog): number => Math.min(cuts.get(w.id) ?? 0, w.heldEnd(), w.malformedAt)
    const records: MembershipRecord[] = []
    for (const w of this.s.writers.values()) {
      const len = lengthOf(w)
      for (const r of w.records.values()) if (r.seq < len) records.push(r)
    }
    const members = resolveMembers(this.s.key(), records)
    const keys = new Map<string, { key: Buffer, whole: EntrySlot[], parts: Map<string, { kind: PartKind, name: Buffer, slots: EntrySlot[] }> }>()
    for (const [id, m] of members) {
      const w = this.s.writers.get(id)
      if (w === undefined) continue
      const len = await w.batchEnd(Math.min(lengthOf(w), m.cut))
      if (len <= 1) continue
      await w.needTree(len)
      const snap = w.bee.checkout(len)
      try {
        for await (const node of cleared(w, len, snap.createReadStream(DATA_RANGE, { timeout: FETCH_TIMEOUT }))) {
          let dk: DataKey
          try {
            dk = parseDataKey(node.key)
            describeEntry(decodeData(node.key, node.value), w.key)
          } catch {
            continue
          }
          const kid = dk.key.toString('hex')
          let e = keys.get(kid)
          if (e === undefined) keys.set(kid, e = { key: buf(dk.key), whole: [], parts: new Map() })
          const slot = { writer: w.key, entry: node.value }
          if (dk.part === null) {
            e.whole.push(slot)
            continue
          }
          const pid = dk.part.name.toString('hex') + dk.part.kind
          let p = e.parts.get(pid)
          if (p === undefined) e.parts.set(pid, p = { kind: dk.part.kind, name: dk.part.name, slots: [] })
          p.slots.push(slot)
        }
      } finally {
        await snap.close()
      }
    }
    const out: Array<[Buffer, Buffer]> = []
    for (const { key, whole, parts } of keys.values()) {
      const v = renderKey(whole, parts.values())
      if (v !== null) out.push([key, buf(v)])
    }
    return out.sort((a, b) => Buffer.compare(a[0], b[0]))
  }
}

/**
 * What one entry says, validated as the fold validates it. A field entry: the field's value as
 * JSON (null: deleted); a member entry: the member as JSON while the writer's own add of it is live
 * in its state, else null (it removed it).
 */
function describeEntry (e: DataEntry, writer: Uint8Array): EntryVersion {
  const w = buf(writer)
  switch (e.type) {
    case PUT: return { writer: w, stamp: e.stamp, type: 'put', value: buf(e.value) }
    case DEL: return { writer: w, stamp: e.stamp, type: 'del', value: null }
    case FIELD: return { writer: w, stamp: e.stamp, type: 'field', value: e.value === null ? null : Buffer.from(canonicalJson(e.value[0])) }
    case MEMBER: {
      memberState(e, writer)
      return { writer: w, stamp: e.stamp, type: 'member', value: e.state.adds.has(w.toString('hex')) ? Buffer.alloc(0) : null }
    }
    default: {
      const v = render(slotState(e, writer))
      return { writer: w, stamp: e.stamp, type: 'state', value: v === null ? null : buf(v) }
    }
  }
}

function safeDescribe (beeKey: Uint8Array, value: Uint8Array, writer: Uint8Array): EntryVersion | null {
  try {
    const d = describeEntry(decodeData(beeKey, value), writer)
    // a member entry's value is the member itself, from its key
    if (d.type === 'member' && d.value !== null) d.value = parseDataKey(beeKey).part?.name ?? null
    return d
  } catch {
    return null
  }
}

/**
 * A read of `w`'s tree at or from length `len`: a block that fails to arrive there, below where
 * compaction cleared the log, fails the read with MESHBEE_HISTORY_CLEARED (not a timeout).
 */
async function * cleared<T> (w: WriterLog, len: number, stream: AsyncIterable<T>): AsyncGenerator<T> {
  try {
    yield * stream
  } catch (err) {
    if (len > 1 && len < w.clearedTo && (err as { code?: string }).code !== 'MESHBEE_HISTORY_CLEARED') throw historyCleared(w.id, len, w.clearedTo)
    throw err
  }
}
