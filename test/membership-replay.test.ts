/**
 * Membership resolution (lib/membership.ts) on hand-built records: the replay worked through
 * small cases, as DESIGN's membership section states them.
 */
import { expect } from 'chai'
import { ADD_WRITER, REMOVE_WRITER } from '../lib/entry.js'
import { resolveMembers, type MembershipRecord } from '../lib/membership.js'

const key = (c: string): Uint8Array => new Uint8Array(32).fill(c.charCodeAt(0))
const id = (c: string): string => Buffer.from(key(c)).toString('hex')
const [A, B, C, D] = ['a', 'b', 'c', 'd']

const add = (author: string, seq: number, wall: number, target: string): MembershipRecord =>
  ({ author: key(author), seq, entry: { type: ADD_WRITER, stamp: { wall, counter: 0 }, writer: key(target) } })
const remove = (author: string, seq: number, wall: number, target: string, length: number): MembershipRecord =>
  ({ author: key(author), seq, entry: { type: REMOVE_WRITER, stamp: { wall, counter: 0 }, writer: key(target), length } })

function members (records: MembershipRecord[]): Record<string, { cut: number, removed: boolean }> {
  const out: Record<string, { cut: number, removed: boolean }> = {}
  for (const [k, m] of resolveMembers(key(A), records)) out[String.fromCharCode(parseInt(k.slice(0, 2), 16))] = { cut: m.cut, removed: m.removed }
  return out
}

const member = { cut: Infinity, removed: false }

describe('membership replay, by hand', () => {
  it('the creator alone; then members added by members, transitively', () => {
    expect(members([])).to.deep.equal({ a: member })
    expect(members([add(A, 1, 10, B), add(B, 1, 20, C)])).to.deep.equal({ a: member, b: member, c: member })
  })

  it('an add by a log that is not a member does not count', () => {
    expect(members([add(D, 1, 10, C)])).to.deep.equal({ a: member })
    // nor does an add stamped before its author was added (it sorts before the add)
    expect(members([add(B, 1, 5, C), add(A, 1, 10, B)])).to.deep.equal({ a: member, b: member })
  })

  it('a removal cuts the removed log at the length it recorded; the smallest cut of several holds', () => {
    expect(members([add(A, 1, 10, B), add(A, 2, 11, C), remove(A, 3, 20, B, 5), remove(C, 1, 21, B, 3)]))
      .to.deep.equal({ a: member, b: { cut: 3, removed: true }, c: member })
  })

  it("concurrent mutual removals settle by stamp order: the later one's author is already cut", () => {
    // B removes A at stamp 30 from index 2; A removed B at stamp 25 with cut 2, so B's entry at 2 does not count
    const records = [add(A, 1, 10, B), remove(A, 2, 25, B, 2), remove(B, 2, 30, A, 1)]
    expect(members(records)).to.deep.equal({ a: member, b: { cut: 2, removed: true } })
    // the same records in any order give the same members
    expect(members([...records].reverse())).to.deep.equal(members(records))
  })

  it('a removed key is never added again; a removal of a key not yet added bars it', () => {
    expect(members([add(A, 1, 10, B), remove(A, 2, 20, B, 1), add(A, 3, 30, B)])).to.deep.equal({ a: member, b: { cut: 1, removed: true } })
    expect(members([remove(A, 1, 10, C, 0), add(A, 2, 20, C)])).to.deep.equal({ a: member })
  })

  it('entries of a removed member past its cut do not count', () => {
    // B's add of C is its entry 3, past the cut 2 that A's removal recorded
    expect(members([add(A, 1, 10, B), remove(A, 2, 20, B, 2), add(B, 3, 30, C)])).to.deep.equal({ a: member, b: { cut: 2, removed: true } })
    expect(id(A)).to.have.lengthOf(64)
  })
})
