/**
 * Documents and sets in parts (log format 2): a write costs what it changes, a member's state stays
 * bounded however often it is added and removed, sets read by range, documents and sets read alike
 * through every read path, and parts over the size limit are refused.
 */
import { expect } from 'chai'
import fc from 'fast-check'
import { MeshDB } from '../index.js'
import { canonicalJson, isJson, type Json } from '../crdt/json.js'
import { encodeState } from '../crdt/codec.js'
import { EMPTY } from '../crdt/keystate.js'
import { tagId, type Tag } from '../crdt/orset.js'
import { MEMBER, MEMBER_NS, STATE, dataKey, decodeEntry, encodeEntry, memberName, partBeeKey } from '../lib/entry.js'
import type { WriteOperation } from '../lib/types.js'
import { partKey } from '../lib/view.js'
import { params } from './crdt/arbitraries.js'
import { cleanup, connect, createPeers, ownLength, rejects, tempDir, until } from './helpers/peers.js'

type DB = MeshDB<string, any>

/** The blocks one write appends to a peer's own log, and their size in bytes (read back from the log). */
async function appended (db: DB, write: () => Promise<void>): Promise<{ blocks: number, bytes: number }> {
  const core = db.engine.own.core
  const byteLength = (): number => (core as unknown as { byteLength: number }).byteLength
  const start = core.length
  const startBytes = byteLength()
  await write()
  let bytes = 0
  for (let i = start; i < core.length; i++) bytes += (await core.get(i) as Buffer).byteLength
  expect(byteLength() - startBytes, "the core's byteLength grew by the blocks read").to.equal(bytes)
  return { blocks: core.length - start, bytes }
}

/** Every peer has folded every peer's log to its full length. */
async function synced (peers: DB[]): Promise<void> {
  const done = (): boolean => peers.every((p) => peers.every((q) => p.writers().find((w) => w.key.equals(q.writerKey))?.folded === ownLength(q)))
  await until(peers, async () => {
    for (const p of peers) await p.update()
    return done()
  }, () => JSON.stringify(peers.map((p) => p.writers().map((w) => [w.key.toString('hex').slice(0, 6), w.length, w.folded]))))
}

const member = (i: number): string => 'member-' + String(i).padStart(5, '0')
const field = (i: number): string => 'field-' + String(i).padStart(5, '0')

/** A set of `n` members, written with `db.write` a thousand at a time. */
async function buildSet (db: DB, n: number): Promise<void> {
  for (let start = 0; start < n; start += 1000) {
    const ops: Array<WriteOperation<string, any>> = []
    for (let i = start; i < Math.min(n, start + 1000); i++) ops.push({ type: 'sadd', key: 'set', member: member(i) })
    await db.write(ops)
  }
}

/** A document of `n` fields, written with `db.write`, `batch` fields at a time. */
async function buildDoc (db: DB, n: number, batch = 1000): Promise<void> {
  for (let start = 0; start < n; start += batch) {
    const fields: Record<string, Json> = {}
    for (let i = start; i < Math.min(n, start + batch); i++) fields[field(i)] = i
    await db.write([{ type: 'patch', key: 'doc', fields }])
  }
}

/**
 * The entry a format-1 writer holds after adding `n` members to a set: one STATE entry with all
 * of its tags, appended to its log as that writer appended it. (Writing it with `n` format-1 sadds
 * costs O(n²): each rebuilds the whole contribution.)
 */
async function buildFormatOneSet (db: DB, n: number): Promise<void> {
  const writer = db.writerKey
  const adds = new Map<string, { tag: Tag, member: Json }>()
  let stamp = db.engine.hlc.now()
  for (let i = 0; i < n; i++) {
    stamp = db.engine.hlc.now()
    const tag = { stamp, writer }
    adds.set(tagId(tag), { tag, member: member(i) })
  }
  const state = encodeState({ ...EMPTY, adds })
  await db.engine.own.bee.put(dataKey(Buffer.from('set')), encodeEntry({ type: STATE, stamp, state }))
  await db.update()
}

describe('documents and sets in parts', function () {
  this.timeout(120_000)
  let dbs: DB[] = []
  afterEach(async () => { await cleanup(...dbs); dbs = [] })

  it('one sadd to a set of 10,000 members, or one patch of one field of a 10,000-field document, appends under 1 KiB (format 1 appended the whole set or document)', async () => {
    const N = 10_000
    const db = new MeshDB<string, any>(await tempDir('f2'), { valueEncoding: 'json' })
    dbs.push(db)
    await db.open()
    await buildSet(db, N)
    await buildDoc(db, N)
    expect(await db.sismember('set', member(N - 1))).to.equal(true)
    expect(Object.keys(await db.get('doc'))).to.have.lengthOf(N)

    const sadd = await appended(db, async () => { await db.sadd('set', 'one more') })
    expect(sadd.blocks, 'one entry').to.equal(1)
    expect(sadd.bytes, 'bytes appended by one sadd').to.be.below(1024)
    const srem = await appended(db, async () => { await db.srem('set', member(7)) })
    expect(srem.bytes, 'bytes appended by one srem').to.be.below(1024)
    const patch = await appended(db, async () => { await db.patch('doc', { [field(5000)]: 'changed' }) })
    expect(patch.blocks, 'one entry').to.equal(1)
    expect(patch.bytes, 'bytes appended by one patch').to.be.below(1024)
    expect(await db.smembers('set')).to.have.lengthOf(N)
    expect((await db.get('doc'))[field(5000)]).to.equal('changed')

    // the same writes in log format 1: each appends the writer's whole contribution to the key
    const old = new MeshDB<string, any>(await tempDir('f1'), { valueEncoding: 'json' })
    dbs.push(old)
    await old.open()
    old.engine.testHooks.format = 1
    await buildFormatOneSet(old, N)
    await buildDoc(old, N, N) // in one write: each format-1 write of the document costs all of it
    expect(await old.smembers('set')).to.have.lengthOf(N)
    expect(Object.keys(await old.get('doc'))).to.have.lengthOf(N)
    const saddV1 = await appended(old, async () => { await old.sadd('set', 'one more') })
    expect(saddV1.bytes, 'format 1: one sadd').to.be.above(100 * 1024)
    const patchV1 = await appended(old, async () => { await old.patch('doc', { [field(5000)]: 'changed' }) })
    expect(patchV1.bytes, 'format 1: one patch').to.be.above(100 * 1024)
    await old.srem('set', member(7))
    expect(await old.get('set'), 'the same set either way').to.deep.equal(await db.get('set'))
    expect(await old.get('doc'), 'the same document either way').to.deep.equal(await db.get('doc'))
  })

  it('2,000 add/remove cycles of one member by 3 writers leave its stored state as small after 2,000 cycles as after 100', async () => {
    const peers = dbs = await createPeers(3, () => ({ valueEncoding: 'json' }))
    const links = [connect(peers[0], peers[1]), connect(peers[0], peers[2]), connect(peers[1], peers[2])]
    const KEY = Buffer.from('s')
    const M = 'm'
    const part = partKey(KEY, MEMBER_NS, memberName(M))
    const beeKey = partBeeKey(MEMBER_NS, KEY, memberName(M))
    // The largest member entry three writers can write: the writer's own add and a removal per adder,
    // every stamp as long as it can be. It does not depend on how many cycles there were.
    const far = { wall: 2 ** 52, counter: 0xffffffff }
    const everyone = new Map(peers.map((p) => [p.writerKey.toString('hex'), far]))
    const bound = encodeEntry({ type: MEMBER, stamp: far, state: { adds: new Map([[peers[0].writerKey.toString('hex'), far]]), removed: everyone } }).byteLength
    expect(bound).to.be.below(250)

    /** The member's stored state on every peer: its part row in the view, and each writer's latest entry. */
    const measure = async (): Promise<{ row: number[], slots: number[], latest: number[] }> => {
      await synced(peers)
      const rows = peers.map((p) => p.engine.view.getPartSync(part))
      const latest: number[] = []
      for (const p of peers) {
        const node = await p.engine.own.bee.get(beeKey)
        if (node === null) throw new Error('every writer wrote the member')
        const e = decodeEntry(node.value)
        if (e.type !== MEMBER) throw new Error('not a member entry')
        expect(e.state.adds.size, 'its own add at most').to.be.at.most(1)
        expect(e.state.removed.size, 'a removal per adder at most').to.be.at.most(3)
        latest.push(node.value.byteLength)
      }
      for (const row of rows) {
        expect(row.map((s) => Buffer.from(s.writer).toString('hex')).sort()).to.deep.equal(peers.map((p) => p.writerKey.toString('hex')).sort())
      }
      return { row: rows.map((r) => r.reduce((sum, s) => sum + s.entry.byteLength, 0)), slots: rows.map((r) => r.length), latest }
    }

    let cycles = 0
    let early: Awaited<ReturnType<typeof measure>> | null = null
    for (let round = 0; cycles < 2000; round++) {
      // each writer in turn: ten add/remove cycles in one write, sometimes ending with the member added
      for (const [i, p] of peers.entries()) {
        const ops: Array<WriteOperation<string, any>> = []
        for (let k = 0; k < 10; k++) ops.push({ type: 'sadd', key: 's', member: M }, { type: 'srem', key: 's', member: M })
        if ((round + i) % 3 === 0) ops.push({ type: 'sadd', key: 's', member: M })
        await p.write(ops)
        cycles += 10
      }
      if (round % 4 === 3) await synced(peers)
      if (early === null && cycles >= 100) early = await measure()
    }
    const late = await measure()
    for (const m of [early as NonNullable<typeof early>, late]) {
      expect(m.slots, 'one slot per writer').to.deep.equal([3, 3, 3])
      for (const bytes of m.latest) expect(bytes, "a writer's latest entry for the member").to.be.at.most(bound)
      for (const bytes of m.row) expect(bytes, 'the part row').to.be.at.most(3 * bound)
    }
    // whatever is left is the same on every peer
    const left = await Promise.all(peers.map(async (p) => await p.sismember('s', M)))
    expect(left.every((x) => x === left[0])).to.equal(true)
    expect(peers.every((p) => p.hash().equals(peers[0].hash()))).to.equal(true)
    for (const cut of links) cut()
  })

  it('smembers reads ranges (gt/gte/lt/lte/limit/reverse) of a set of mixed JSON members as filtering get does; sismember', async () => {
    const db = new MeshDB<string, any>(await tempDir(), { valueEncoding: 'json' })
    dbs.push(db)
    const members: Json[] = [
      null, true, false, 0, -1, 1.5, 7, 10, 2, 1e21, '', '7', 'a', 'ab', 'b', 'null', 'ü', '🐝', 'é', 'e\u0301',
      [], [1], [1, 2], ['a'], [null, [[]]], {}, { a: 1 }, { b: [true], a: 'x' }, { a: { c: null } }, { 'ü': 0 }
    ]
    await db.write(members.map((m) => ({ type: 'sadd' as const, key: 'set', member: m })))
    await db.put('value', ['not', 'a', 'set'])
    await db.patch('doc', { a: 1 })
    const all = await db.get('set') as Json[]
    expect(all).to.have.lengthOf(members.length)
    expect(await db.smembers('set'), 'smembers with no range is get').to.deep.equal(all)
    const bytes = (m: Json): Buffer => Buffer.from(canonicalJson(m))
    const sorted = [...members].sort((x, y) => Buffer.compare(bytes(x), bytes(y)))
    expect(all.map(canonicalJson), 'members in the order of their canonical JSON bytes').to.deep.equal(sorted.map(canonicalJson))

    const bound = fc.oneof(fc.constantFrom(...members), fc.jsonValue({ maxDepth: 2 }).filter((v) => isJson(v)) as fc.Arbitrary<Json>)
    const rangeArb = fc.record({
      gt: bound, gte: bound, lt: bound, lte: bound, limit: fc.oneof(fc.nat({ max: 40 }), fc.constant(Infinity)), reverse: fc.boolean()
    }, { requiredKeys: [] })
    await fc.assert(fc.asyncProperty(rangeArb, async (range) => {
      // what abstract-level does with a range: gte wins over gt and lte over lt, then the order, then the cap
      let want = all.filter((m) => {
        const b = bytes(m)
        if (range.gte !== undefined) { if (Buffer.compare(b, bytes(range.gte)) < 0) return false } else if (range.gt !== undefined && Buffer.compare(b, bytes(range.gt)) <= 0) return false
        if (range.lte !== undefined) { if (Buffer.compare(b, bytes(range.lte)) > 0) return false } else if (range.lt !== undefined && Buffer.compare(b, bytes(range.lt)) >= 0) return false
        return true
      })
      if (range.reverse === true) want = want.reverse()
      if (range.limit !== undefined) want = want.slice(0, range.limit)
      expect(await db.smembers('set', range), JSON.stringify(range)).to.deep.equal(want)
    }), { ...params(), numRuns: 300 })

    for (const m of members) expect(await db.sismember('set', m), canonicalJson(m)).to.equal(true)
    for (const m of ['c', 3, [2], { a: 2 }, 'e', '"a"', [true]] as Json[]) expect(await db.sismember('set', m), canonicalJson(m)).to.equal(false)
    await db.srem('set', 'ab')
    expect(await db.sismember('set', 'ab')).to.equal(false)
    expect(await db.smembers('set', { gt: 'a', lt: 'b' })).to.deep.equal([])

    // a key that holds no set
    for (const key of ['value', 'doc', 'missing']) {
      expect(await db.smembers(key), key).to.deep.equal([])
      expect(await db.smembers(key, { gte: null, limit: 3 }), key).to.deep.equal([])
      expect(await db.sismember(key, 'not'), key).to.equal(false)
      expect(await db.sismember(key, 'a'), key).to.equal(false)
    }

    // bad options
    const bad: unknown[] = [null, 'gt', 5, { limit: -1 }, { limit: 1.5 }, { limit: NaN }, { limit: '3' }, { gt: () => 1 }, { lte: new Date() }, { gte: Symbol('x') }, { lt: { __proto__: null, f: undefined } }]
    for (const opts of bad) expect((await rejects(db.smembers('set', opts as never))).code, String(JSON.stringify(opts))).to.equal('MESHBEE_INVALID_ARGUMENT')
    expect((await rejects(db.sismember('set', (() => 1) as never))).code).to.equal('MESHBEE_INVALID_ARGUMENT')
    expect((await rejects(db.sismember('set', undefined as never))).code).to.equal('MESHBEE_INVALID_ARGUMENT')
  })

  it('getSync refuses a document or set (MESHBEE_NOT_SYNC) that get reads; getMany, iterators, snapshots and sublevels render them as get does', async () => {
    const db = new MeshDB<string, any>(await tempDir(), { valueEncoding: 'json' })
    dbs.push(db)
    await db.put('a/value', { whole: true })
    await db.put('a/doc', { base: 1, gone: 2 })
    await db.patch('a/doc', { title: 'milk', gone: undefined })
    await db.write([{ type: 'sadd', key: 'a/set', member: 'x' }, { type: 'sadd', key: 'a/set', member: { y: 1 } }])
    await db.write([{ type: 'sadd', key: 'a/empty', member: 'z' }, { type: 'srem', key: 'a/empty', member: 'z' }])
    await db.put('a/string', 'plain')
    const expected: Array<[string, Json]> = [
      ['a/doc', { base: 1, title: 'milk' }],
      ['a/empty', []],
      ['a/set', ['x', { y: 1 }]],
      ['a/string', 'plain'],
      ['a/value', { whole: true }]
    ]
    for (const [k, v] of expected) expect(await db.get(k), k).to.deep.equal(v)
    expect(await db.typeOf('a/empty')).to.equal('set')

    for (const k of ['a/doc', 'a/set', 'a/empty']) {
      let err: (Error & { code?: string }) | null = null
      try { db.getSync(k) } catch (e) { err = e as Error & { code?: string } }
      expect(err?.code, k).to.equal('MESHBEE_NOT_SYNC')
    }
    expect(db.getSync('a/value')).to.deep.equal({ whole: true })
    expect(db.getSync('a/string')).to.equal('plain')
    expect(db.getSync('missing')).to.equal(undefined)

    const keys = expected.map(([k]) => k)
    expect(await db.getMany([...keys, 'missing'])).to.deep.equal([...expected.map(([, v]) => v), undefined])
    expect(await db.getMany(['a/value', 'a/string']), 'whole values only').to.deep.equal([{ whole: true }, 'plain'])
    expect(await db.iterator().all()).to.deep.equal(expected)
    expect(await db.iterator({ reverse: true, gte: 'a/doc', lt: 'a/string' }).all()).to.deep.equal(expected.slice(0, 3).reverse())
    expect(await db.iterator({ keys: false }).all()).to.deep.equal(expected.map(([, v]) => [undefined, v]))
    expect(await db.iterator({ values: false }).all()).to.deep.equal(expected.map(([k]) => [k, undefined]))
    expect(await db.values().all()).to.deep.equal(expected.map(([, v]) => v))
    expect(await db.keys().all()).to.deep.equal(keys)
    const it = db.iterator()
    expect(await it.nextv(2)).to.deep.equal(expected.slice(0, 2))
    it.seek('a/set')
    expect(await it.next()).to.deep.equal(expected[2])
    await it.close()
    const raw = await db.iterator({ valueEncoding: 'utf8' }).all()
    expect(raw.map(([, v]) => v)).to.deep.equal(expected.map(([, v]) => canonicalJson(v)))

    // a snapshot reads the documents and sets as they were when it was taken
    const snap = db.snapshot()
    try {
      await db.patch('a/doc', { title: 'eggs', more: 1 })
      await db.write([{ type: 'srem', key: 'a/set', member: 'x' }, { type: 'sadd', key: 'a/set', member: 'w' }, { type: 'sadd', key: 'a/empty', member: 'new' }])
      await db.put('a/value', 'replaced')
      await db.del('a/string')
      expect(await db.get('a/doc', { snapshot: snap })).to.deep.equal({ base: 1, title: 'milk' })
      expect(await db.get('a/set', { snapshot: snap })).to.deep.equal(['x', { y: 1 }])
      expect(await db.getMany(keys, { snapshot: snap })).to.deep.equal(expected.map(([, v]) => v))
      expect(await db.iterator({ snapshot: snap }).all()).to.deep.equal(expected)
      expect(await db.values({ snapshot: snap }).all()).to.deep.equal(expected.map(([, v]) => v))
      expect(db.getSync('a/value', { snapshot: snap })).to.deep.equal({ whole: true })
    } finally {
      await snap.close()
    }
    expect(await db.get('a/doc')).to.deep.equal({ base: 1, more: 1, title: 'eggs' })
    expect(await db.get('a/set')).to.deep.equal(['w', { y: 1 }])
    expect(await db.get('a/empty')).to.deep.equal(['new'])
    expect(await db.getMany(['a/doc', 'a/string', 'a/value'])).to.deep.equal([{ base: 1, more: 1, title: 'eggs' }, undefined, 'replaced'])

    // a sublevel: its keys are the database's, prefixed
    const sub = db.sublevel<string, any>('sub', { valueEncoding: 'json' })
    await db.patch('!sub!doc', { f: [1] })
    await db.write([{ type: 'sadd', key: '!sub!set', member: 2 }, { type: 'sadd', key: '!sub!set', member: 1 }])
    await sub.put('value', 'v')
    expect(await sub.get('doc')).to.deep.equal({ f: [1] })
    expect(await sub.get('set')).to.deep.equal([1, 2])
    expect(await sub.getMany(['doc', 'set', 'value'])).to.deep.equal([{ f: [1] }, [1, 2], 'v'])
    expect(await sub.iterator().all()).to.deep.equal([['doc', { f: [1] }], ['set', [1, 2]], ['value', 'v']])
    expect(await sub.values({ reverse: true }).all()).to.deep.equal(['v', [1, 2], { f: [1] }])
    expect(sub.getSync('value')).to.equal('v')
    let err: (Error & { code?: string }) | null = null
    try { sub.getSync('set') } catch (e) { err = e as Error & { code?: string } }
    expect(err?.code).to.equal('MESHBEE_NOT_SYNC')
    expect(await db.smembers('!sub!set')).to.deep.equal([1, 2])
  })

  it('refuses a set member or a field name over 4096 bytes with MESHBEE_TOO_LARGE, appending nothing', async () => {
    const db = new MeshDB<string, any>(await tempDir(), { valueEncoding: 'json' })
    dbs.push(db)
    // the largest member and field name that fit: 4096 bytes of canonical JSON or UTF-8
    await db.sadd('set', 'x'.repeat(4094))
    await db.sadd('set', { ['k'.repeat(4090)]: 1 })
    await db.patch('doc', { ['f'.repeat(4096)]: 1 })
    await db.patch('doc', { ['é'.repeat(2048)]: 2 })
    expect(await db.smembers('set')).to.have.lengthOf(2)
    expect(Object.keys(await db.get('doc'))).to.have.lengthOf(2)
    const length = ownLength(db)
    const before = await db.iterator().all()
    const tooLarge: Array<Array<WriteOperation<string, any>>> = [
      [{ type: 'sadd', key: 'set', member: 'x'.repeat(4095) }],
      [{ type: 'sadd', key: 'set', member: 'é'.repeat(2048) }],
      [{ type: 'sadd', key: 'set', member: { ['k'.repeat(4091)]: 1 } }],
      [{ type: 'sadd', key: 'set', member: ['"'.repeat(2047)] }], // 2047 quotes escape to 4094 bytes, in "[…]"
      [{ type: 'srem', key: 'set', member: 'x'.repeat(4095) }],
      [{ type: 'patch', key: 'doc', fields: { ['f'.repeat(4097)]: 1 } }],
      [{ type: 'patch', key: 'doc', fields: { ['é'.repeat(2048) + 'a']: 1 } }],
      [{ type: 'patch', key: 'doc', fields: { ok: 1, ['f'.repeat(4097)]: undefined } }],
      // a good write first in the same call: nothing is appended either
      [{ type: 'put', key: 'v', value: 1 }, { type: 'sadd', key: 'set', member: 'fine' }, { type: 'sadd', key: 'set', member: 'x'.repeat(5000) }],
      [{ type: 'sadd', key: 'new', member: 'fine' }, { type: 'patch', key: 'doc', fields: { ['f'.repeat(5000)]: 1 } }]
    ]
    for (const ops of tooLarge) {
      expect((await rejects(db.write(ops))).code, JSON.stringify(ops).slice(0, 80)).to.equal('MESHBEE_TOO_LARGE')
    }
    expect((await rejects(db.sadd('set', 'x'.repeat(4095)))).code).to.equal('MESHBEE_TOO_LARGE')
    expect((await rejects(db.srem('set', 'x'.repeat(4095)))).code).to.equal('MESHBEE_TOO_LARGE')
    expect((await rejects(db.patch('doc', { ['f'.repeat(4097)]: 1 }))).code).to.equal('MESHBEE_TOO_LARGE')
    expect(ownLength(db), 'nothing appended').to.equal(length)
    expect(await db.iterator().all(), 'nothing changed').to.deep.equal(before)

    // the largest parts are well-formed entries for every peer: one that replicates them reads the same
    const reader = new MeshDB<string, any>(await tempDir('reader'), { key: db.key, valueEncoding: 'json' })
    dbs.push(reader)
    await reader.open()
    const cut = connect(db, reader)
    await until([reader], async () => reader.writers().some((w) => w.key.equals(db.writerKey) && w.folded === length))
    cut()
    expect(await reader.iterator().all()).to.deep.equal(before)
    expect(reader.stats().badEntries, 'no entry skipped').to.equal(0)
  })
})
