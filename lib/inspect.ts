/**
 * Inspection: what the writers are and how far each is folded, every writer's entry behind a
 * key's value, a writer's changes between two lengths of its log, and the view at past cuts. It
 * reads the logs and the view and changes nothing.
 */
import { compareVersions, type Stamp } from '../crdt/hlc.js'
import { kind, render } from '../crdt/keystate.js'
import { DATA_RANGE, DEL, PUT, decodeData, decodeEntry, mergeSlots, slotState, type DataEntry } from './entry.js'
import { unknownWriter } from './errors.js'
import { buf } from './keys.js'
import { resolveMembers, type Member, type MembershipRecord } from './membership.js'
import type { KeyType, WriterInfo } from './types.js'
import type { Slot, ViewStore } from './view.js'
import { FETCH_TIMEOUT, type WriterLog } from './writer-log.js'

/** One writer's latest entry for a key. `value` is what that writer alone says the key holds. */
export interface EntryVersion {
  writer: Buffer
  stamp: Stamp
  type: 'put' | 'del' | 'state'
  value: Buffer | null
}

/** One key's change in a writer's log between two lengths (see `Inspection.writerChanges`). */
export interface WriterChange {
  key: Buffer
  /** 'put'/'del'/'state': the writer's new entry; 'gone': it has no entry for the key at `to`. */
  type: 'put' | 'del' | 'state' | 'gone'
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
        cut: m === undefined ? 0 : Math.min(m.removed ? m.cut : w.core.length, w.malformedAt),
        folded: this.s.checkpoints.get(id) ?? 0,
        held: w.core.contiguousLength,
        member: m !== undefined,
        removed: m?.removed ?? false,
        maxSkew: w.maxSkew,
        local: w.local
      }
    })
  }

  /** What `key` holds in the view: a whole value, a document, a set, or nothing. */
  kindOf (key: Uint8Array): KeyType | undefined {
    const k = kind(mergeSlots(this.s.view.getSlotsSync(key)))
    return k === 'none' ? undefined : k
  }

  /** Every member's latest entry for `key` at its cut, the winner (greatest version) first. */
  versions (key: Uint8Array): EntryVersion[] {
    const slots = this.s.view.getSlotsSync(key)
    return slots.map((s) => describeEntry(decodeEntry(s.entry) as DataEntry, s.writer))
      .sort((a, b) => compareVersions({ stamp: b.stamp, writer: b.writer }, { stamp: a.stamp, writer: a.writer }))
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
    const snap = w.bee.checkout(Math.max(1, end))
    try {
      for await (const { left, right } of snap.createDiffStream(start, DATA_RANGE, { timeout: FETCH_TIMEOUT })) {
        const node = left ?? right as NonNullable<typeof right>
        const now = left === null ? null : safeDescribe(left.key, left.value, w.key)
        const before = right === null ? null : safeDescribe(right.key, right.value, w.key)
        yield {
          key: node.key.subarray(1),
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
    const slots = new Map<string, { key: Buffer, slots: Slot[] }>()
    for (const [id, m] of members) {
      const w = this.s.writers.get(id)
      if (w === undefined) continue
      const len = await w.batchEnd(Math.min(lengthOf(w), m.cut))
      if (len <= 1) continue
      const snap = w.bee.checkout(len)
      try {
        for await (const node of snap.createReadStream(DATA_RANGE, { timeout: FETCH_TIMEOUT })) {
          let ok = true
          try {
            slotState(decodeData(node.key, node.value), w.key)
          } catch {
            ok = false
          }
          if (!ok) continue
          const key = node.key.subarray(1)
          const kid = key.toString('hex')
          let e = slots.get(kid)
          if (e === undefined) slots.set(kid, e = { key, slots: [] })
          e.slots.push({ writer: w.key, entry: node.value })
        }
      } finally {
        await snap.close()
      }
    }
    const out: Array<[Buffer, Buffer]> = []
    for (const { key, slots: list } of slots.values()) {
      const v = render(mergeSlots(list))
      if (v !== null) out.push([key, buf(v)])
    }
    return out.sort((a, b) => Buffer.compare(a[0], b[0]))
  }
}

function describeEntry (e: DataEntry, writer: Uint8Array): EntryVersion {
  const w = buf(writer)
  switch (e.type) {
    case PUT: return { writer: w, stamp: e.stamp, type: 'put', value: buf(e.value) }
    case DEL: return { writer: w, stamp: e.stamp, type: 'del', value: null }
    default: {
      const v = render(slotState(e, writer))
      return { writer: w, stamp: e.stamp, type: 'state', value: v === null ? null : buf(v) }
    }
  }
}

function safeDescribe (beeKey: Uint8Array, value: Uint8Array, writer: Uint8Array): EntryVersion | null {
  try {
    return describeEntry(decodeData(beeKey, value), writer)
  } catch {
    return null
  }
}
