import { expect } from 'chai'
import fc from 'fast-check'
import { encodeSet } from '../../crdt/codec.js'
import { canonicalJson } from '../../crdt/json.js'
import { after, maxVersion } from '../../crdt/lwwmap.js'
import { EMPTY_SET, members, mergeSets, tagId, tagsOf, type SetState } from '../../crdt/orset.js'
import { check, describeConvergence, describeLaws, poolArb, setArbFrom, toAdds, toRemoved, triple, type Model } from './arbitraries.js'

const model: Model<SetState> = {
  empty: EMPTY_SET,
  merge: mergeSets,
  encode: encodeSet,
  kinds: { sadd: 8, srem: 6, reset: 1 },
  delta (op, version, view) {
    switch (op.t) {
      case 'sadd': return { reset: null, adds: new Map([[tagId(version), { tag: version, member: op.member }]]), removed: new Map() }
      case 'srem': {
        const tags = tagsOf(view.adds, view.removed, op.member)
        return { reset: null, adds: new Map(), removed: new Map(tags.map((t) => [tagId(t), t])) }
      }
      default: return { reset: version, adds: new Map(), removed: new Map() }
    }
  }
}

describe('crdt/orset: OR-set', () => {
  describeLaws(model, triple(setArbFrom))
  describeConvergence(model)

  it('a member is live iff some tag of it, newer than the newest reset, was never removed', () => {
    check(poolArb.chain((pool) => fc.array(setArbFrom(pool), { minLength: 1, maxLength: 4 })), (sets) => {
      const reset = sets.map((s) => s.reset).reduce(maxVersion, null)
      const removed = new Set(sets.flatMap((s) => [...s.removed.keys()]))
      const live = new Set<string>()
      for (const s of sets) {
        for (const [id, add] of s.adds) if (after(add.tag, reset) && !removed.has(id)) live.add(canonicalJson(add.member))
      }
      const merged = sets.reduce(mergeSets, EMPTY_SET)
      expect(members(merged.adds, merged.removed).map(canonicalJson)).to.have.members([...live])
    })
  })

  it('an add the remover did not observe wins over the remove', () => {
    const arb = poolArb.chain((pool) => fc.tuple(fc.constantFrom(...pool), fc.subarray(pool)))
    check(arb, ([add, seen]) => {
      const observed = seen.filter((w) => w !== add)
      const remover: SetState = { reset: null, adds: toAdds(observed), removed: toRemoved(observed) }
      const adder: SetState = { reset: null, adds: toAdds([add]), removed: new Map() }
      const live = members(mergeSets(remover, adder).adds, mergeSets(remover, adder).removed).map(canonicalJson)
      expect(live).to.include(canonicalJson(add.payload.member))
    })
  })
})
