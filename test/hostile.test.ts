/**
 * Hostile logs (DESIGN.md invariant 6): a member's log may hold anything. The member here (c)
 * appends straight to its own Hyperbee and Hypercore, around the engine: undecodable, truncated
 * and oversize entries, wrong versions and types, forged membership entries, malformed msgpack,
 * and raw blocks that are no Hyperbee block at all. Every peer must reach the same view (and
 * hash), count the same skips, never throw out of a fold, and keep the valid writes around them —
 * whatever order the logs replicate in.
 */
import { expect } from 'chai'
import { encode as pack } from '@msgpack/msgpack'
import { MeshDB } from '../index.js'
import {
  ADD_WRITER, DEL, FIELD, FIELD_NS, MAX_KEY_BYTES, MAX_NAME_BYTES, MAX_VALUE_BYTES, MEMBER, MEMBER_NS, PUT, REMOVE_WRITER, STATE, partBeeKey,
  dataKey, encodeEntry, membershipKey, type Entry
} from '../lib/entry.js'
import { wellFormed } from '../lib/blocks.js'
import { cleanup, connect, createPeers, dump, sameDump, tempDir, until, ownLength } from './helpers/peers.js'

type DB = MeshDB<string, string>

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
const st = (wall: number, counter = 0): { wall: number, counter: number } => ({ wall, counter })
const put = (wall: number, value: string | Buffer): Buffer => encodeEntry({ type: PUT, stamp: st(wall), value: Buffer.from(value) })
const dk = (key: string): Buffer => dataKey(Buffer.from(key))

/** Appends one raw Hyperbee entry to a peer's own log, around the engine. */
async function raw (db: DB, key: Buffer, value: Buffer): Promise<void> {
  await db.engine.own.bee.put(key, value)
}

/** Whether a group of linked peers has nothing left to exchange or fold. */
async function settled (group: DB[]): Promise<boolean> {
  for (const p of group) await p.update()
  const lengths = new Map<string, number>()
  for (const p of group) {
    for (const w of p.writers()) {
      if (!w.member) continue
      const id = hex(w.key)
      const core = p.engine.writers.get(id)?.core
      if (core === undefined || core.contiguousLength !== w.length || w.folded !== w.cut) return false
      if ((lengths.get(id) ?? w.length) !== w.length) return false
      lengths.set(id, w.length)
    }
  }
  if (!group.every((p) => p.writers().filter((w) => w.member).length === lengths.size)) return false
  const d = await Promise.all(group.map(dump))
  return d.every((x) => sameDump(x, d[0])) && group.every((p) => p.hash().equals(group[0].hash()))
}

async function describeGroup (group: DB[]): Promise<string> {
  return JSON.stringify(await Promise.all(group.map(async (p) => ({
    view: (await dump(p)).map(([k, v]) => [k.toString().slice(0, 20), v.toString().slice(0, 20)]),
    stats: p.stats(),
    writers: p.writers().map((w) => ({ ...w, key: hex(w.key).slice(0, 8) }))
  }))))
}

/** Links the given pairs until the peers involved are settled, then cuts the links. */
async function phase (peers: DB[], pairs: Array<[number, number]>): Promise<void> {
  if (pairs.length === 0) return
  const cuts = pairs.map(([x, y]) => connect(peers[x], peers[y]))
  const group = [...new Set(pairs.flat())].map((i) => peers[i])
  try {
    await until(group, async () => await settled(group), async () => await describeGroup(group))
  } finally {
    for (const cut of cuts) cut()
  }
}

const ALL: Array<[number, number]> = [[0, 1], [1, 2], [0, 2]]

/**
 * Replication orders: `early` runs after c's valid writes and before anything hostile (so some
 * peers fold the valid prefix first, others get everything at once), `late` after it.
 */
const ORDERS: Record<string, { early: Array<Array<[number, number]>>, late: Array<Array<[number, number]>> }> = {
  'all at once at the end': { early: [], late: [ALL] },
  'b early from c; a late from b, then all': { early: [[[1, 2]]], late: [[[0, 1]], ALL] },
  'a and b early; chain c-a then a-b late': { early: [[[0, 2], [1, 2]]], late: [[[0, 2]], [[0, 1]], ALL] },
  'star through b': { early: [[[1, 2]]], late: [[[1, 2]], [[0, 1]], ALL] }
}

describe('hostile logs', function () {
  this.timeout(60_000)
  let dbs: DB[] = []
  afterEach(async () => { await cleanup(...dbs); dbs = [] })

  for (const [order, { early, late }] of Object.entries(ORDERS)) {
    it(`entry-level garbage is skipped alike by every peer, valid writes around it count (${order})`, async () => {
      const clocks = [1000, 1000, 1000]
      const peers = dbs = await createPeers(3, (i) => ({ wallClock: () => clocks[i] })) as DB[]
      const [a, b, c] = peers
      // A log no member added, holding data: a forged add naming it must not let it in.
      const z = new MeshDB<string, string>(await tempDir('z'), { key: a.key })
      await z.open()
      dbs.push(z)
      await raw(z, dk('z-data'), put(9000, 'from z'))

      clocks[0] = clocks[1] = clocks[2] = 2000
      await a.put('a', 'a')
      await b.put('shadow', 'b') // (2000, 0) by b
      clocks[2] = 2100
      await c.batch([{ type: 'put', key: 'before1', value: 'c1' }, { type: 'put', key: 'shadow', value: 'c' }, { type: 'del', key: 'nothing' }])
      await c.put('before2', 'c2')
      for (const pairs of early) await phase(peers, pairs)

      // The hostile part: each under its own key, so each is seen exactly once.
      const entry = (e: Entry): Buffer => encodeEntry(e)
      const wrongVersion = put(3000, 'v'); wrongVersion[0] = 2
      const unknownType = entry({ type: DEL, stamp: st(5) }); unknownType[1] = 7
      const bad: Array<[string, Buffer, Buffer]> = [
        ['truncated value', dk('t-truncated'), put(3000, 'a value').subarray(0, -2)],
        ['truncated header', dk('t-truncated2'), put(3000, 'x').subarray(0, 2)],
        ['empty', dk('t-empty'), Buffer.alloc(0)],
        ['trailing bytes', dk('t-trailing'), Buffer.concat([put(3000, 'v'), Buffer.from([0])])],
        ['wrong version', dk('t-version'), wrongVersion],
        ['unknown type', dk('t-type'), unknownType],
        ['oversize PUT', dk('t-big-put'), entry({ type: PUT, stamp: st(3000), value: Buffer.alloc(MAX_VALUE_BYTES + 1, 1) })],
        ['oversize STATE', dk('t-big-state'), entry({ type: STATE, stamp: st(3000), state: Buffer.alloc(MAX_VALUE_BYTES + 1, 1) })],
        ['oversize key', dataKey(Buffer.alloc(MAX_KEY_BYTES + 1, 0x6b)), put(3000, 'v')],
        ['STATE with malformed msgpack', dk('t-msgpack'), entry({ type: STATE, stamp: st(3000), state: Buffer.from([0xc1, 0xff]) })],
        ['STATE of the wrong shape', dk('t-shape'), entry({ type: STATE, stamp: st(3000), state: Buffer.from(pack({ not: 'a state' })) })],
        ['membership entry under a data key', dk('t-membership'), entry({ type: ADD_WRITER, stamp: st(1), writer: z.writerKey })],
        ['a valid key overwritten by garbage', dk('shadow'), Buffer.from('garbage')],
        ['forged add: ma+X naming z', membershipKey(ADD_WRITER, Buffer.alloc(32, 1)), entry({ type: ADD_WRITER, stamp: st(1), writer: z.writerKey })],
        ['forged removal: mr+X naming b', membershipKey(REMOVE_WRITER, Buffer.alloc(32, 2)), entry({ type: REMOVE_WRITER, stamp: st(1), writer: b.writerKey, length: 0 })],
        ['data entry under a membership key', membershipKey(ADD_WRITER, z.writerKey), put(1, 'v')],
        ['undecodable membership entry', membershipKey(REMOVE_WRITER, a.writerKey), Buffer.from([1, 11, 1])],
        // format 2: fields and members, each under its own key
        ['a field entry under a whole-value key', dk('t-field'), entry({ type: FIELD, stamp: st(3000), value: ['x'] })],
        ['a whole value under a field key', partBeeKey(FIELD_NS, Buffer.from('t-doc'), Buffer.from('f')), put(3000, 'v')],
        ['a member entry under a field key', partBeeKey(FIELD_NS, Buffer.from('t-doc'), Buffer.from('g')), entry({ type: MEMBER, stamp: st(3000), state: { adds: new Map([[hex(c.writerKey), st(3000)]]), removed: new Map() } })],
        ['an add in the name of another writer', partBeeKey(MEMBER_NS, Buffer.from('t-set'), Buffer.from('"m"')), entry({ type: MEMBER, stamp: st(3000), state: { adds: new Map([[hex(a.writerKey), st(3000)]]), removed: new Map() } })],
        ['a member state that is not normalized', partBeeKey(MEMBER_NS, Buffer.from('t-set'), Buffer.from('"n"')), entry({ type: MEMBER, stamp: st(3000), state: { adds: new Map([[hex(c.writerKey), st(3000)]]), removed: new Map([[hex(c.writerKey), st(3000)]]) } })],
        ['a member that is not canonical JSON', partBeeKey(MEMBER_NS, Buffer.from('t-set'), Buffer.from('{"b":1,"a":2}')), entry({ type: MEMBER, stamp: st(3000), state: { adds: new Map([[hex(c.writerKey), st(3000)]]), removed: new Map() } })],
        ['a member that is not JSON', partBeeKey(MEMBER_NS, Buffer.from('t-set'), Buffer.from('nope')), entry({ type: MEMBER, stamp: st(3000), state: { adds: new Map([[hex(c.writerKey), st(3000)]]), removed: new Map() } })],
        ['a field name that is not UTF-8', partBeeKey(FIELD_NS, Buffer.from('t-doc'), Buffer.from([0xff, 0xfe])), entry({ type: FIELD, stamp: st(3000), value: [1] })],
        ['an oversize field name', partBeeKey(FIELD_NS, Buffer.from('t-doc'), Buffer.alloc(MAX_NAME_BYTES + 1, 0x61)), entry({ type: FIELD, stamp: st(3000), value: [1] })],
        ['a part key whose length runs past its end', Buffer.from([FIELD_NS, 200, 0x61, 0x62]), entry({ type: FIELD, stamp: st(3000), value: [1] })]
      ]
      for (const [, key, value] of bad) await raw(c, key, value)
      expect(await c.update()).to.be.a('boolean') // the hostile peer folds its own log too
      clocks[2] = 4000
      await c.put('after', 'c3')
      for (const pairs of late) await phase(peers, pairs)
      const cuts = [connect(z, a), connect(z, b), connect(z, c)]
      await until(peers, async () => await settled(peers), async () => await describeGroup(peers))
      for (const cut of cuts) cut()

      const want = [['a', 'a'], ['after', 'c3'], ['before1', 'c1'], ['before2', 'c2'], ['shadow', 'b']]
      for (const p of peers) {
        expect(await p.update()).to.equal(false)
        expect((await dump(p)).map(([k, v]) => [k.toString(), v.toString()])).to.deep.equal(want)
        expect(p.hash().equals(a.hash())).to.equal(true)
        expect(p.stats().badEntries, `bad entries counted on ${p === a ? 'a' : p === b ? 'b' : 'c'}`).to.equal(bad.length)
        expect(p.writers().filter((w) => w.member).map((w) => hex(w.key)).sort()).to.deep.equal([a, b, c].map((x) => hex(x.writerKey)).sort())
        expect(p.writers().every((w) => !w.removed)).to.equal(true)
        expect((await p.versions('shadow')).map((v) => hex(v.writer))).to.deep.equal([hex(b.writerKey)])
      }
      expect(b.writable && c.writable).to.equal(true)
    })
  }

  for (const [order, { early, late }] of Object.entries(ORDERS)) {
    it(`a raw block that is no Hyperbee block caps the log there, alike on every peer (${order})`, async () => {
      const clocks = [1000, 1000, 1000]
      const peers = dbs = await createPeers(3, (i) => ({ wallClock: () => clocks[i] })) as DB[]
      const [a, b, c] = peers
      clocks[0] = clocks[1] = clocks[2] = 2000
      await a.put('a', 'a')
      await b.put('k', 'b')
      clocks[2] = 2100
      await c.put('before1', 'c1')
      await raw(c, dk('t-bad'), Buffer.from('garbage')) // one entry-level skip before the block
      for (const pairs of early) await phase(peers, pairs)
      clocks[2] = 2200
      // A batch right before the block: its inner blocks carry no tree nodes, which is fine.
      await c.batch([{ type: 'put', key: 'before2', value: 'c2' }, { type: 'put', key: 'k', value: 'c' }, { type: 'del', key: 'before1' }, { type: 'put', key: 'before3', value: 'c3' }])
      const poison = ownLength(c)
      const garbage = [Buffer.from('this is not a hyperbee node'), Buffer.alloc(64, 0xff), Buffer.alloc(0)]
      for (const g of garbage) expect(wellFormed(g, poison)).to.equal(false)
      await c.engine.own.core.append(garbage[0])
      await c.engine.own.core.append(garbage.slice(1))
      expect(await c.update()).to.be.a('boolean') // resolves: nothing throws out of the fold
      for (const pairs of late) await phase(peers, pairs)

      const want = [['a', 'a'], ['before2', 'c2'], ['before3', 'c3'], ['k', 'c']]
      for (const p of peers) {
        expect(await p.update()).to.equal(false)
        expect((await dump(p)).map(([k, v]) => [k.toString(), v.toString()])).to.deep.equal(want)
        expect(p.hash().equals(a.hash())).to.equal(true)
        const w = p.writers().find((x) => x.key.equals(c.writerKey))
        expect(w).to.include({ length: poison + 3, cut: poison, folded: poison, removed: false })
        expect(p.stats().badEntries, 'one bad entry, one malformed block').to.equal(2)
      }
      // the other members are untouched and keep writing
      clocks[0] = 3000
      await a.put('a', 'a2')
      await phase(peers, ALL)
      for (const p of peers) expect(await p.get('a')).to.equal('a2')
    })
  }

  it('honest batches are never taken for malformed blocks, however the blocks arrive', async () => {
    const peers = dbs = await createPeers(3) as DB[]
    const [a, b, c] = peers
    const links = [connect(a, b), connect(b, c), connect(a, c)]
    // Batches of puts and deletes, replicated while they are written: peers fold whatever part
    // of each batch has arrived.
    for (let round = 0; round < 20; round++) {
      const ops: Array<{ type: 'put', key: string, value: string } | { type: 'del', key: string }> = []
      for (let i = 0; i < 30; i++) ops.push(i % 4 === 3 ? { type: 'del', key: `k${(i * 7 + round) % 40}` } : { type: 'put', key: `k${(i * 13 + round) % 40}`, value: `${round}-${i}` })
      await peers[round % 3].batch(ops)
      if (round % 5 === 4) await Promise.all(peers.map(async (p) => await p.update()))
    }
    await until(peers, async () => await settled(peers), async () => await describeGroup(peers))
    for (const cut of links) cut()
    for (const p of peers) {
      expect(p.stats().badEntries).to.equal(0)
      for (const w of p.writers()) expect(w.cut, 'no log capped').to.equal(w.length)
    }
  })
})
