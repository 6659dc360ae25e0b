import { expect } from 'chai'
import fc from 'fast-check'
import { encodeMap } from '../../crdt/codec.js'
import { compareVersions } from '../../crdt/hlc.js'
import { type Register } from '../../crdt/lww.js'
import { after, EMPTY_MAP, maxVersion, mergeMaps, type FieldValue, type Fields, type MapState } from '../../crdt/lwwmap.js'
import { check, describeConvergence, describeLaws, fold, mapArbFrom, poolArb, triple, type Model } from './arbitraries.js'

const model: Model<MapState> = {
  empty: EMPTY_MAP,
  merge: mergeMaps,
  encode: encodeMap,
  kinds: { patch: 4, unset: 2, reset: 1 },
  delta (op, version) {
    switch (op.t) {
      case 'patch': return { reset: null, fields: new Map([[op.name, { ...version, value: [op.value] as const }]]) }
      case 'unset': return { reset: null, fields: new Map([[op.name, { ...version, value: null }]]) }
      default: return { reset: version, fields: new Map() }
    }
  }
}

function sorted (fields: Fields): Array<[string, Register<FieldValue>]> {
  return [...fields].sort((a, b) => a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)
}

describe('crdt/lwwmap: LWW map', () => {
  describeLaws(model, triple(mapArbFrom))
  describeConvergence(model)

  it('each field holds its newest write after the newest reset', () => {
    check(poolArb.chain((pool) => fc.array(mapArbFrom(pool), { minLength: 1, maxLength: 4 })), (maps) => {
      const reset = maps.map((m) => m.reset).reduce(maxVersion, null)
      const expected = new Map<string, Register<FieldValue>>()
      for (const m of maps) {
        for (const [name, reg] of m.fields) {
          const cur = expected.get(name)
          if (after(reg, reset) && (cur === undefined || compareVersions(reg, cur) > 0)) expected.set(name, reg)
        }
      }
      const merged = fold(model, maps)
      expect(merged.reset).to.deep.equal(reset)
      expect(sorted(merged.fields)).to.deep.equal(sorted(expected))
    })
  })

})
