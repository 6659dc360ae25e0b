import { expect } from 'chai'
import { decodeState, encodeState } from '../../crdt/codec.js'
import { EMPTY, merge, normalize, render, type KeyState } from '../../crdt/keystate.js'
import { tagId, tagsOf } from '../../crdt/orset.js'
import { check, describeConvergence, describeLaws, expectBytes, keyStateArbFrom, triple, type Model } from './arbitraries.js'

const keyStateModel: Model<KeyState> = {
  empty: EMPTY,
  merge,
  encode: encodeState,
  kinds: { put: 1, del: 1, patch: 3, unset: 1, sadd: 3, srem: 3 },
  delta (op, version, view) {
    switch (op.t) {
      case 'put': return { ...EMPTY, reg: { ...version, value: op.value } }
      case 'del': return { ...EMPTY, reg: { ...version, value: null } }
      case 'patch': return { ...EMPTY, fields: new Map([[op.name, { ...version, value: [op.value] as const }]]) }
      case 'unset': return { ...EMPTY, fields: new Map([[op.name, { ...version, value: null }]]) }
      case 'sadd': return { ...EMPTY, adds: new Map([[tagId(version), { tag: version, member: op.member }]]) }
      case 'srem': return { ...EMPTY, removed: new Map(tagsOf(view.adds, view.removed, op.member).map((t) => [tagId(t), t])) }
      default: throw new TypeError('not a key state operation: ' + op.t)
    }
  }
}

function sameRender (a: KeyState, b: KeyState): void {
  expectBytes(render(a), render(b), 'render()')
}

describe('crdt/keystate: register + map + set', () => {
  describeLaws(keyStateModel, triple(keyStateArbFrom))
  describeConvergence(keyStateModel, sameRender)

  it('render() is equal for equal merged states', () => {
    check(triple(keyStateArbFrom), ([a, b, c]) => {
      sameRender(merge(a, b), merge(b, a))
      sameRender(merge(merge(a, b), c), merge(a, merge(b, c)))
      const n = normalize(a)
      sameRender(merge(n, n), n)
      sameRender(decodeState(encodeState(merge(a, b))), merge(a, b))
    })
  })

  it('render() reads a document, a set or a value', () => {
    const w = new Uint8Array(32)
    const v = (wall: number): { stamp: { wall: number, counter: number }, writer: Uint8Array } => ({ stamp: { wall, counter: 0 }, writer: w })
    const enc = new TextEncoder()
    const put: KeyState = { ...EMPTY, reg: { ...v(1), value: enc.encode('{"a":1,"b":2}') } }
    const patch: KeyState = { ...EMPTY, fields: new Map([['b', { ...v(2), value: null }], ['c', { ...v(3), value: [[true]] as const }]]) }
    expect(new TextDecoder().decode(render(merge(put, patch)) as Uint8Array)).to.equal('{"a":1,"c":[true]}')
    const sadd: KeyState = { ...EMPTY, adds: new Map([[tagId(v(4)), { tag: v(4), member: 'x' }]]) }
    expect(new TextDecoder().decode(render(merge(merge(put, patch), sadd)) as Uint8Array)).to.equal('["x"]')
    const del: KeyState = { ...EMPTY, reg: { ...v(5), value: null } }
    expect(render(merge(merge(put, sadd), del))).to.equal(null)
    expect(render(put)).to.equal(put.reg?.value)
  })
})
