/**
 * Log format 1's rule for an own write, kept to write format-1 logs in tests (the mixed-format
 * chaos schedules and fixtures); a release writes format 2 (entry-rule.ts). The fold reads only
 * each writer's latest entry per key, so that
 * entry holds everything the writer has said about the key: its last whole-value write, every
 * document field it has set, its live set adds and every tag it has removed. Pure: no I/O.
 */
import type { Stamp } from '../crdt/hlc.js'
import { normalize, type KeyState } from '../crdt/keystate.js'
import { encodeState } from '../crdt/codec.js'
import { tagId, tagsOf } from '../crdt/orset.js'
import { DEL, MAX_VALUE_BYTES, PUT, STATE, type DataEntry } from './entry.js'
import { tooLarge } from './errors.js'

import type { WriteOp } from './entry-rule.js'

const same = (a: Uint8Array, b: Uint8Array): boolean => Buffer.compare(a, b) === 0

/**
 * The entry `writer` appends for `op`, stamped `stamp`: its contribution so far (`own`, the key
 * state of its previous entry for the key, or EMPTY) with the op applied. `seen` is the merged
 * state of every writer's entry for the key, which a remove needs: it removes the tags of the
 * member that this peer has seen, whoever added them. A contribution that is one whole-value write
 * and nothing else is written as a plain PUT or DEL; anything else as its encoded state.
 *
 * @throws MeshError `MESHBEE_TOO_LARGE` for a value over the size limit
 */
export function buildEntryV1 (op: WriteOp, own: KeyState, seen: () => KeyState, writer: Uint8Array, stamp: Stamp): DataEntry {
  let next: KeyState
  switch (op.type) {
    case 'put':
      if (op.value.byteLength > MAX_VALUE_BYTES) throw tooLarge('A value', op.value.byteLength, MAX_VALUE_BYTES)
      next = { ...own, reg: { stamp, writer, value: op.value } }
      break
    case 'del':
      next = { ...own, reg: { stamp, writer, value: null } }
      break
    case 'patch': {
      const fields = new Map(own.fields)
      for (const [name, value] of op.fields) fields.set(name, { stamp, writer, value: value === undefined ? null : [value] })
      next = { ...own, fields }
      break
    }
    case 'sadd': {
      const adds = new Map(own.adds)
      const tag = { stamp, writer }
      adds.set(tagId(tag), { tag, member: op.member })
      next = { ...own, adds }
      break
    }
    case 'srem': {
      const all = seen()
      const adds = new Map(own.adds)
      const removed = new Map(own.removed)
      for (const tag of tagsOf(all.adds, all.removed, op.member)) {
        const id = tagId(tag)
        adds.delete(id)
        removed.set(id, tag)
      }
      next = { ...own, adds, removed }
      break
    }
  }
  next = normalize(next)
  const reg = next.reg
  const plain = next.fields.size === 0 && next.adds.size === 0 && next.removed.size === 0 &&
    reg !== null && reg.stamp === stamp && same(reg.writer, writer)
  if (plain) return reg.value === null ? { type: DEL, stamp } : { type: PUT, stamp, value: reg.value }
  return { type: STATE, stamp, state: encodeState(next) }
}
