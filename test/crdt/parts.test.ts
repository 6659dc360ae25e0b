/**
 * Keys in parts (log format 2, crdt/parts.ts) and the per-member states they hold (crdt/orset.ts
 * `MemberState`): the join laws and convergence of member states built by the format-2 rule, add
 * wins, field registers merged part by part as the LWW map merges them, and format-1 key states
 * read in parts exactly as the format-1 rule reads them.
 */
import { expect } from 'chai'
import fc from 'fast-check'
import { encodeMember, encodeState } from '../../crdt/codec.js'
import { compareStamps, type Stamp, type Version } from '../../crdt/hlc.js'
import { canonicalJson } from '../../crdt/json.js'
import { EMPTY, merge, render, type KeyState } from '../../crdt/keystate.js'
import { mergeRegisters, type Register } from '../../crdt/lww.js'
import { after, maxVersion, mergeMaps, renderMap, type FieldValue } from '../../crdt/lwwmap.js'
import { EMPTY_MEMBER, addMember, liveAdd, memberStates, members, mergeMembers, removeMember, tagId, type MemberState } from '../../crdt/orset.js'
import { fieldItem, legacyParts, renderDoc, renderParts } from '../../crdt/parts.js'
import { slotState } from '../../lib/entry.js'
import { buildEntryV1 } from '../../lib/entry-rule-v1.js'
import type { WriteOp } from '../../lib/entry-rule.js'
import {
  check, describeConvergence, describeLaws, expectBytes, fold, hex, mapArbFrom, poolArb, scenarioArb,
  type LocalOp, type Model, type Scenario
} from './arbitraries.js'

// --- member states built by the format-2 rule ----------------------------------------------------

/**
 * One member's state per writer, as lib/entry-rule.ts builds it: an add supersedes the writer's
 * earlier adds; a remove removes every add of the member its writer has seen (`view`).
 */
const memberModel: Model<MemberState> = {
  empty: EMPTY_MEMBER,
  merge: mergeMembers,
  encode: encodeMember,
  kinds: { sadd: 5, srem: 4 },
  delta () { throw new Error('the member rule builds the whole state: see step') },
  step (op, version, own, view) {
    if (op.t === 'sadd') return addMember(own, hex(version.writer), version.stamp)
    if (op.t === 'srem') return removeMember(own, mergeMembers(view, own))
    throw new TypeError('not a member operation: ' + op.t)
  }
}

/** Merges of random subsets of a scenario's entries: the states replicas hold. */
function statesOf (s: Scenario<MemberState>): fc.Arbitrary<MemberState[]> {
  const entries = s.logs.flat()
  const subset = entries.length === 0 ? fc.constant([]) : fc.subarray(entries)
  return fc.array(subset.map((es) => fold(memberModel, es.map((e) => e.state))), { minLength: 3, maxLength: 3 })
}

const memberTriple: fc.Arbitrary<[MemberState, MemberState, MemberState]> =
  scenarioArb(memberModel).chain(statesOf).map((ss) => [ss[0], ss[1], ss[2]])

/** Whether a state is normalized: no add its adder's removal covers. */
function normalized (m: MemberState): boolean {
  for (const [w, s] of m.adds) {
    const r = m.removed.get(w)
    if (r !== undefined && compareStamps(s, r) <= 0) return false
  }
  return true
}

describe('crdt/parts: member states (log format 2)', () => {
  it('the rule and every merge keep states normalized', () => {
    check(memberTriple, ([a, b, c]) => {
      for (const s of [a, b, c, mergeMembers(a, b), mergeMembers(mergeMembers(a, b), c)]) expect(normalized(s)).to.equal(true)
    })
  })

  describeLaws(memberModel, memberTriple)
  describeConvergence(memberModel, (a, b) => { expect(liveAdd(a, null)).to.deep.equal(liveAdd(b, null)) })

  it('a state is bounded by the number of writers, not by the number of adds and removes', () => {
    check(scenarioArb(memberModel), ({ writers, logs }) => {
      const all = fold(memberModel, logs.flat().map((e) => e.state))
      expect(all.adds.size).to.be.at.most(writers.length)
      expect(all.removed.size).to.be.at.most(writers.length)
      for (const log of logs) for (const e of log) {
        expect(e.state.adds.size).to.be.at.most(1) // a writer's entry holds its own add only
        expect(e.state.removed.size).to.be.at.most(writers.length)
      }
    })
  })

  it('add wins: an add the remover had not seen survives the remove, merged in any order', () => {
    const arb = scenarioArb(memberModel).chain((s) => fc.tuple(
      fc.constant(s),
      statesOf(s),
      fc.nat({ max: s.writers.length - 1 }),
      fc.nat({ max: 3 })
    ))
    check(arb, ([s, [seen, adderOwn, removerOwn], adder, ahead]) => {
      const w = hex(s.writers[adder])
      // the adder's new add: newer than every stamp of the adder the remover has seen, as its clock makes it
      let newest: Stamp = { wall: 0, counter: 0 }
      for (const m of [seen, adderOwn, removerOwn]) {
        for (const st of [m.adds.get(w), m.removed.get(w)]) if (st !== undefined && compareStamps(st, newest) > 0) newest = st
      }
      const stamp: Stamp = { wall: newest.wall + ahead, counter: newest.counter + 1 }
      const added = addMember(adderOwn, w, stamp)
      const removed = removeMember(removerOwn, mergeMembers(seen, removerOwn))
      for (const m of [mergeMembers(added, removed), mergeMembers(removed, added), mergeMembers(mergeMembers(seen, removed), added)]) {
        expect(m.adds.get(w), 'the unseen add').to.deep.equal(stamp)
        expect(liveAdd(m, null)).to.not.equal(null)
      }
      // and a remove that had seen it does remove it
      const after = removeMember(removed, mergeMembers(mergeMembers(seen, removed), added))
      expect(mergeMembers(after, added).adds.has(w), 'an add the remover had seen').to.equal(false)
    })
  })

  it("a remove covers the writer's own add even when another writer's removal already hides it (chaos seed 2000769)", () => {
    const a = hex(new Uint8Array(32).fill(0xaa))
    const b = hex(new Uint8Array(32).fill(0xbb))
    const own = addMember(EMPTY_MEMBER, a, { wall: 10, counter: 0 })
    // b removed a's add: the merged state a observes lists no add of a
    const byB = removeMember(EMPTY_MEMBER, own)
    const seen = mergeMembers(own, byB)
    expect(seen.adds.has(a)).to.equal(false)
    const removed = removeMember(own, seen)
    expect(removed.adds.has(a), "a's state no longer holds its add").to.equal(false)
    // so the add stays removed should b's removal stop counting (b removed with a cut before it)
    expect(liveAdd(removed, null)).to.equal(null)
  })

  it('a writer that adds and removes a member many times keeps one add and one removal per writer', () => {
    const a = new Uint8Array(32).fill(0xaa)
    const b = new Uint8Array(32).fill(0xbb)
    let own = EMPTY_MEMBER
    let other = EMPTY_MEMBER
    for (let i = 1; i <= 1000; i++) {
      other = addMember(other, hex(b), { wall: 2 * i, counter: 0 })
      own = addMember(own, hex(a), { wall: 2 * i, counter: 0 })
      own = removeMember(own, mergeMembers(own, other))
    }
    expect(own.adds.size).to.equal(0)
    expect([...own.removed.keys()].sort()).to.deep.equal([hex(a), hex(b)])
    expect(encodeMember(own).byteLength).to.be.below(120)
    expect(liveAdd(mergeMembers(own, addMember(other, hex(b), { wall: 3000, counter: 0 })), null)?.stamp).to.deep.equal({ wall: 3000, counter: 0 })
  })
})

// --- fields: one register per part ---------------------------------------------------------------

describe('crdt/parts: document fields merged part by part', () => {
  it('merging each field register on its own and rendering against the reset equals the LWW map', () => {
    const arb = poolArb.chain((pool) => fc.array(mapArbFrom(pool), { minLength: 1, maxLength: 4 }))
    check(arb, (maps) => {
      const lww = maps.reduce(mergeMaps, { reset: null, fields: new Map() })
      const expected = canonicalJson(renderMap(lww.fields))
      // per part: every map's register of a field, merged alone; the resets only at render time
      const parts = new Map<string, Register<FieldValue>>()
      let reset: Version | null = null
      for (const m of maps) {
        reset = maxVersion(reset, m.reset)
        for (const [name, f] of m.fields) parts.set(name, mergeRegisters(parts.get(name) ?? null, f) as Register<FieldValue>)
      }
      const items: Array<[string, Uint8Array]> = []
      for (const [name, f] of parts) {
        const item = fieldItem(f, reset)
        if (item !== null) items.push([name, item])
      }
      expect(new TextDecoder().decode(renderDoc(null, items))).to.equal(expected)
      // and in any order of the maps
      const reversed = [...maps].reverse().reduce(mergeMaps, { reset: null, fields: new Map() })
      expect(canonicalJson(renderMap(reversed.fields))).to.equal(expected)
      // the live fields are those newer than the reset
      for (const [name, f] of parts) expect(fieldItem(f, reset) !== null).to.equal(after(f, reset) && lww.fields.has(name))
    })
  })
})

// --- format-1 key states, read in parts -----------------------------------------------------------

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

/** Key states whose writers' contributions are the entries the format-1 rule writes. */
const formatOneModel: Model<KeyState> = {
  empty: EMPTY,
  merge,
  encode: encodeState,
  kinds: { put: 1, del: 1, patch: 3, unset: 1, sadd: 4, srem: 4 },
  delta () { throw new Error('the format-1 rule builds the whole contribution: see step') },
  step (op, version, own, view) {
    return slotState(buildEntryV1(writeOp(op), own, () => view, version.writer, version.stamp), version.writer)
  }
}

/** Merged states a peer can hold: each writer's latest entry of a random prefix of its log. */
const formatOneStates: fc.Arbitrary<{ scenario: Scenario<KeyState>, state: KeyState }> = scenarioArb(formatOneModel).chain((scenario) =>
  fc.array(fc.nat(), { minLength: scenario.logs.length, maxLength: scenario.logs.length }).map((cuts) => {
    const latest = scenario.logs.filter((log) => log.length > 0).map((log, i) => log[cuts[i] % log.length].state)
    return { scenario, state: fold(formatOneModel, latest) }
  })
)

const text = (b: Uint8Array | null): string | null => b === null ? null : Buffer.from(b).toString('utf8')

describe('crdt/parts: format-1 key states in parts', () => {
  it('renderParts(legacyParts(s)) reads as render(s)', () => {
    check(formatOneStates, ({ state }) => {
      expectBytes(renderParts(legacyParts(state)), render(state), `render of ${text(render(state))}`)
    })
  })

  it('memberStates agrees with the tag rule: the same live members, each with the same newest live add', () => {
    check(formatOneStates, ({ state }) => {
      const reset = state.reg
      const perMember = memberStates(state.adds, state.removed)
      // the tag rule: a tag is live unless removed; the newest live tag of each member
      const newestLive = new Map<string, Version>()
      for (const [id, add] of state.adds) {
        if (state.removed.has(id) || !after(add.tag, reset)) continue
        const c = canonicalJson(add.member)
        newestLive.set(c, maxVersion(newestLive.get(c) ?? null, add.tag) as Version)
      }
      expect([...newestLive.keys()].sort()).to.deep.equal(members(state.adds, state.removed).map(canonicalJson).sort())
      const live = new Map<string, Version>()
      for (const [c, m] of perMember) {
        const v = liveAdd(m, reset)
        if (v !== null) live.set(c, v)
      }
      expect([...live.keys()].sort()).to.deep.equal([...newestLive.keys()].sort())
      for (const [c, v] of live) {
        const want = newestLive.get(c) as Version
        expect(tagId(v), `the newest live add of ${c}`).to.equal(tagId(want))
      }
    })
  })

  it('a set emptied by its own adder reads as [] in parts too (the removed tag still counts)', () => {
    const a = new Uint8Array(32).fill(0xaa)
    const at = (wall: number): Stamp => ({ wall, counter: 0 })
    const put = slotState(buildEntryV1({ type: 'put', key: KEY, value: Buffer.from('"older value"') }, EMPTY, () => EMPTY, a, at(1)), a)
    const add = slotState(buildEntryV1({ type: 'sadd', key: KEY, member: 'm' }, put, () => put, a, at(2)), a)
    const rem = slotState(buildEntryV1({ type: 'srem', key: KEY, member: 'm' }, add, () => add, a, at(3)), a)
    expect(text(render(rem))).to.equal('[]')
    expect(text(renderParts(legacyParts(rem)))).to.equal('[]')
  })
})
