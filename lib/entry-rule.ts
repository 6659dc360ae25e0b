/**
 * The rule that builds a writer's entries for one of its own writes (log format 2). A whole-value
 * write is one entry under the key; a patch is one entry per field it writes; a set add or remove
 * is one entry under the member, holding the writer's state of that member only: its newest add,
 * and per adder the newest add it has removed. So an entry costs what the write changes, however
 * large the document or set. Pure: no I/O.
 */
import type { Stamp, Version } from '../crdt/hlc.js'
import { after } from '../crdt/lwwmap.js'
import type { Json } from '../crdt/json.js'
import { EMPTY_MEMBER, addMember, removeMember, type MemberState } from '../crdt/orset.js'
import { pack } from '../crdt/codec.js'
import {
  DEL, FIELD, FIELD_NS, MAX_NAME_BYTES, MAX_VALUE_BYTES, MEMBER, MEMBER_NS, PUT, dataKey, decodeEntry, memberName, memberState,
  mergeMember, partBeeKey, type DataEntry, type EntrySlot, type PartKind
} from './entry.js'
import { tooLarge } from './errors.js'
import { hex } from './keys.js'

/** One own write, with its key and value already encoded. */
export type WriteOp =
  | { type: 'put', key: Uint8Array, value: Uint8Array }
  | { type: 'del', key: Uint8Array }
  | { type: 'patch', key: Uint8Array, fields: ReadonlyArray<readonly [string, Json | undefined]> }
  | { type: 'sadd', key: Uint8Array, member: Json }
  | { type: 'srem', key: Uint8Array, member: Json }

/** One entry to append: its bee key, the part it writes (null: the whole value), the entry. */
export interface Built {
  readonly beeKey: Buffer
  readonly part: { readonly kind: PartKind, readonly name: Buffer } | null
  readonly entry: DataEntry
}

const same = (a: Uint8Array, b: Uint8Array): boolean => Buffer.compare(a, b) === 0

function name (what: string, bytes: Buffer): Buffer {
  if (bytes.byteLength > MAX_NAME_BYTES) throw tooLarge(what, bytes.byteLength, MAX_NAME_BYTES)
  return bytes
}

/**
 * The entries `writer` appends for `op`, stamped `stamp`. `slotsOf(kind, name)` gives a part's
 * slots as this peer sees them now (every writer's latest entry for it, with this call's earlier
 * writes): a set add continues the writer's own state of the member, and a remove removes every
 * add of the member this peer has seen, whoever made it. A remove of a member with no add seen,
 * or none this writer has not removed already, appends nothing. `reset`: the version of the key's
 * whole value as this peer sees it (set tags no newer than it are left out).
 *
 * @throws MeshError `MESHBEE_TOO_LARGE` for a value, field name or member over its size limit
 */
export function buildEntries (op: WriteOp, slotsOf: (kind: PartKind, name: Buffer) => readonly EntrySlot[], writer: Uint8Array, stamp: Stamp, reset: Version | null = null): Built[] {
  switch (op.type) {
    case 'put':
      if (op.value.byteLength > MAX_VALUE_BYTES) throw tooLarge('A value', op.value.byteLength, MAX_VALUE_BYTES)
      return [{ beeKey: dataKey(op.key), part: null, entry: { type: PUT, stamp, value: op.value } }]
    case 'del':
      return [{ beeKey: dataKey(op.key), part: null, entry: { type: DEL, stamp } }]
    case 'patch':
      return op.fields.map(([field, value]) => {
        const n = name('A field name', Buffer.from(field))
        if (value !== undefined) {
          const size = pack([value]).byteLength
          if (size > MAX_VALUE_BYTES) throw tooLarge('A field value', size, MAX_VALUE_BYTES)
        }
        return { beeKey: partBeeKey(FIELD_NS, op.key, n), part: { kind: FIELD_NS, name: n }, entry: { type: FIELD, stamp, value: value === undefined ? null : [value] } }
      })
    case 'sadd':
    case 'srem': {
      const n = name('A set member', memberName(op.member))
      const slots = slotsOf(MEMBER_NS, n)
      const mine = slots.find((s) => same(s.writer, writer))
      // Tags no newer than the key's last whole-value write count for nothing: they are left out,
      // so the entry reads the same on a peer that still holds that write's tombstone and on one
      // that dropped it (lib/stability.ts), where they would count again.
      const own: MemberState = mine === undefined ? EMPTY_MEMBER : sinceReset(memberState(decodeEntry(mine.entry) as DataEntry, writer), reset)
      let next: MemberState
      if (op.type === 'sadd') next = addMember(own, hex(writer), stamp)
      else {
        next = removeMember(own, sinceReset(mergeMember(slots), reset))
        if (sameDots(next.removed, own.removed) && next.adds.size === own.adds.size) return []
      }
      return [{ beeKey: partBeeKey(MEMBER_NS, op.key, n), part: { kind: MEMBER_NS, name: n }, entry: { type: MEMBER, stamp, state: next } }]
    }
  }
}

/** A member state without the tags no newer than `reset`. */
function sinceReset (m: MemberState, reset: Version | null): MemberState {
  if (reset === null) return m
  const keep = (tags: ReadonlyMap<string, Stamp>): Map<string, Stamp> => new Map([...tags].filter(([w, st]) => after({ stamp: st, writer: Buffer.from(w, 'hex') }, reset)))
  return { adds: keep(m.adds), removed: keep(m.removed) }
}

function sameDots (a: ReadonlyMap<string, Stamp>, b: ReadonlyMap<string, Stamp>): boolean {
  if (a.size !== b.size) return false
  for (const [w, s] of a) {
    const t = b.get(w)
    if (t === undefined || t.wall !== s.wall || t.counter !== s.counter) return false
  }
  return true
}
