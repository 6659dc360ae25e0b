/**
 * The entry rule (lib/entry-rule.ts), the one the engine uses for own writes: the convergence
 * properties with each writer's entries built by it, and hand-built cases that show the rule.
 */
import { expect } from 'chai'
import { encodeState } from '../../crdt/codec.js'
import type { Stamp } from '../../crdt/hlc.js'
import { EMPTY, merge, render, type KeyState } from '../../crdt/keystate.js'
import { DEL, PUT, STATE, slotState } from '../../lib/entry.js'
import { buildEntryV1 as buildEntry } from '../../lib/entry-rule-v1.js'
import type { WriteOp } from '../../lib/entry-rule.js'
import { describeConvergence, expectBytes, type LocalOp, type Model } from './arbitraries.js'

const KEY = new Uint8Array([1])

function writeOp (op: LocalOp): WriteOp {
  switch (op.t) {
    case 'put': return { type: 'put', key: KEY, value: op.value }
    case 'del': return { type: 'del', key: KEY }
    case 'patch': return { type: 'patch', key: KEY, fields: [[op.name, op.value]] }
    case 'unset': return { type: 'patch', key: KEY, fields: [[op.name, undefined]] }
    case 'sadd': return { type: 'sadd', key: KEY, member: op.member }
    case 'srem': return { type: 'srem', key: KEY, member: op.member }
    default: throw new TypeError('not an own write: ' + op.t)
  }
}

/**
 * Compared by what they hold: an add whose tag is also removed counts as removed, whether the
 * state still lists it among the adds (a merge keeps it there) or not (the rule drops it).
 */
function canonical (s: KeyState): Uint8Array {
  return encodeState({ ...s, adds: new Map([...s.adds].filter(([id]) => !s.removed.has(id))) })
}

/** Key states whose writers' contributions are the entries buildEntry writes. */
const entryRuleModel: Model<KeyState> = {
  empty: EMPTY,
  merge,
  encode: canonical,
  kinds: { put: 1, del: 1, patch: 3, unset: 1, sadd: 3, srem: 3 },
  delta () { throw new Error('the entry rule builds the whole contribution: see step') },
  step (op, version, own, view) {
    return slotState(buildEntry(writeOp(op), own, () => view, version.writer, version.stamp), version.writer)
  }
}

const A = new Uint8Array(32).fill(0xaa)
const B = new Uint8Array(32).fill(0xbb)
const at = (wall: number): Stamp => ({ wall, counter: 0 })
const text = (s: KeyState): string | null => {
  const v = render(s)
  return v === null ? null : new TextDecoder().decode(v)
}

describe('lib/entry-rule: the entry of an own write', () => {
  describeConvergence(entryRuleModel, (a, b) => { expectBytes(render(a), render(b), 'render()') })

  it('a put or a delete with nothing else is a plain PUT or DEL entry', () => {
    const put = buildEntry({ type: 'put', key: KEY, value: Buffer.from('"milk"') }, EMPTY, () => EMPTY, A, at(1))
    expect(put.type).to.equal(PUT)
    const del = buildEntry({ type: 'del', key: KEY }, slotState(put, A), () => EMPTY, A, at(2))
    expect(del).to.deep.equal({ type: DEL, stamp: at(2) })
  })

  it('a patch keeps every field the writer set before, and a later put drops them', () => {
    const one = slotState(buildEntry({ type: 'patch', key: KEY, fields: [['title', 'milk']] }, EMPTY, () => EMPTY, A, at(1)), A)
    const two = buildEntry({ type: 'patch', key: KEY, fields: [['done', false]] }, one, () => one, A, at(2))
    expect(two.type).to.equal(STATE)
    expect(text(slotState(two, A))).to.equal('{"done":false,"title":"milk"}')
    const put = buildEntry({ type: 'put', key: KEY, value: Buffer.from('{"title":"eggs"}') }, slotState(two, A), () => EMPTY, A, at(3))
    expect(put.type).to.equal(PUT)
  })

  it('a remove drops the tags of the member this peer has seen, whoever added them, and keeps them as removed', () => {
    const byB = slotState(buildEntry({ type: 'sadd', key: KEY, member: 'x' }, EMPTY, () => EMPTY, B, at(1)), B)
    const byA = slotState(buildEntry({ type: 'sadd', key: KEY, member: 'y' }, EMPTY, () => byB, A, at(2)), A)
    const seen = merge(byA, byB)
    expect(text(seen)).to.equal('["x","y"]')
    const rem = slotState(buildEntry({ type: 'srem', key: KEY, member: 'x' }, byA, () => seen, A, at(3)), A)
    expect(rem.removed.size).to.equal(1)
    expect(text(merge(rem, byB))).to.equal('["y"]')
    // an add of x that A had not seen survives A's remove (add wins)
    const again = slotState(buildEntry({ type: 'sadd', key: KEY, member: 'x' }, byB, () => byB, B, at(4)), B)
    expect(text(merge(rem, again))).to.equal('["x","y"]')
  })

  it('refuses a value over the size limit with MESHBEE_TOO_LARGE', () => {
    const big = new Uint8Array(4 * 1024 * 1024 + 1)
    expect(() => buildEntry({ type: 'put', key: KEY, value: big }, EMPTY, () => EMPTY, A, at(1))).to.throw().with.property('code', 'MESHBEE_TOO_LARGE')
  })
})
