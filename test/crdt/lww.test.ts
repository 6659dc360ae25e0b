import { expect } from 'chai'
import fc from 'fast-check'
import { encodeRegister } from '../../crdt/codec.js'
import { compareVersions } from '../../crdt/hlc.js'
import { mergeRegisters, type Register } from '../../crdt/lww.js'
import { check, describeConvergence, describeLaws, poolArb, registerArbFrom, toRegister, triple, type Model } from './arbitraries.js'

type R = Register<Uint8Array> | null

const model: Model<R> = {
  empty: null,
  merge: mergeRegisters,
  encode: encodeRegister,
  kinds: { put: 3, del: 1 },
  delta (op, version) {
    return { ...version, value: op.t === 'put' ? op.value : null }
  }
}

describe('crdt/lww: LWW register', () => {
  describeLaws(model, triple(registerArbFrom))
  describeConvergence(model)

  it('the greatest version wins, a tombstone like any other write', () => {
    check(poolArb.chain((pool) => fc.shuffledSubarray(pool, { minLength: 1 })), (writes) => {
      const regs = writes.map(toRegister)
      const winner = regs.reduce((a, b) => compareVersions(a, b) > 0 ? a : b)
      expect(regs.reduce<R>(mergeRegisters, null)).to.equal(winner)
    })
  })
})
