/**
 * Inspection: versions(), diff(), writers(), hash(), checkout() and cuts(), and the errors of API
 * misuse. Wall clocks are controlled where stamps are asserted, so each stamp is (wall, counter).
 */
import { expect } from 'chai'
import { createHash } from 'node:crypto'
import { MeshDB } from '../index.js'
import type { WriterInfo } from '../lib/types.js'
import { cleanup, connect, createPeers, dump, sameDump, tempDir, until, ownLength } from './helpers/peers.js'

type DB = MeshDB<string, any>
type Coded = Error & { code?: string }

/** The error of a call that must fail, whether it throws at once or rejects. */
async function failure (fn: () => unknown): Promise<Coded> {
  try {
    await fn()
  } catch (err) {
    return err as Coded
  }
  throw new Error('expected an error')
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

function info (db: DB, writer: Uint8Array): WriterInfo {
  const w = db.writers().find((x) => x.key.equals(writer))
  if (w === undefined) throw new Error('unknown writer ' + hex(writer))
  return w
}

async function all<T> (it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = []
  for await (const x of it) out.push(x)
  return out
}

/**
 * The view digest recomputed from scratch over a full iteration, written out here independently of
 * lib/digest.ts: the sum mod 2^256 of sha256(u32be(len(key)) ‖ key ‖ value) over raw entries.
 */
/**
 * The digest recomputed from the whole view: every values row (kind byte ‖ payload) and every item
 * of a document or set (marked 3), each hashed with its length-prefixed key (lib/digest.ts).
 */
async function fullHash (db: DB): Promise<Buffer> {
  let sum = 0n
  const term = (k: Buffer, v: Buffer): bigint => {
    const len = Buffer.alloc(4)
    len.writeUInt32BE(k.length)
    return BigInt('0x' + createHash('sha256').update(Buffer.concat([len, k, v])).digest('hex'))
  }
  const view = db.engine.view
  await view.settle()
  for await (const [k, v] of view.values.iterator()) sum += term(k, v)
  for await (const [k, v] of view.items.iterator()) sum += term(k, Buffer.concat([Buffer.from([3]), v]))
  sum %= 1n << 256n
  return Buffer.from(sum.toString(16).padStart(64, '0'), 'hex')
}

async function converged (peers: DB[]): Promise<boolean> {
  const d = await Promise.all(peers.map(dump))
  if (!d.every((x) => sameDump(x, d[0]))) return false
  for (const p of peers) {
    for (const q of peers) {
      for (const w of q.writers()) {
        if (w.local && info(p, w.key).folded !== w.length) return false
      }
    }
  }
  return true
}

function mesh (peers: DB[]): () => void {
  const cuts: Array<() => void> = []
  for (let i = 0; i < peers.length; i++) for (let j = i + 1; j < peers.length; j++) cuts.push(connect(peers[i], peers[j]))
  return () => { for (const c of cuts) c() }
}

async function sync (peers: DB[]): Promise<void> {
  const cut = mesh(peers)
  try {
    await until(peers, async () => await converged(peers), async () => JSON.stringify(await Promise.all(peers.map(async (p) => (await dump(p)).map(([k, v]) => k + '=' + v)))))
  } finally {
    cut()
  }
}

describe('inspection', function () {
  this.timeout(60_000)
  let dbs: DB[] = []
  afterEach(async () => { await cleanup(...dbs); dbs = [] })

  it('versions(key): every writer\'s latest entry, winner first, tombstones included, matching get', async () => {
    const clocks = [1000, 1000, 1000]
    const peers = dbs = await createPeers(3, (i) => ({ valueEncoding: 'json', wallClock: () => clocks[i] }))
    const [a, b, c] = peers
    clocks[0] = 2000
    await a.put('k', { by: 'a' })
    clocks[1] = 3000
    await b.put('k', { by: 'b' })
    clocks[2] = 4000
    await c.del('k')
    clocks[0] = 2500
    await a.patch('doc', { f: 'a' })
    clocks[1] = 3500
    await b.put('doc', { g: 'b' })
    await sync(peers)

    for (const p of peers) {
      const v = await p.versions('k')
      expect(v.map((x) => [hex(x.writer), x.type, x.stamp, x.value, x.key])).to.deep.equal([
        [hex(c.writerKey), 'del', { wall: 4000, counter: 0 }, undefined, 'k'],
        [hex(b.writerKey), 'put', { wall: 3000, counter: 0 }, { by: 'b' }, 'k'],
        [hex(a.writerKey), 'put', { wall: 2000, counter: 0 }, { by: 'a' }, 'k']
      ])
      expect(await p.get('k')).to.equal(undefined) // the tombstone wins
      const d = await p.versions('doc')
      expect(d.map((x) => [hex(x.writer), x.type, x.value])).to.deep.equal([
        [hex(b.writerKey), 'put', { g: 'b' }],
        [hex(a.writerKey), 'state', { f: 'a' }]
      ])
      expect(await p.get('doc')).to.deep.equal(d[0].value)
      expect(await p.versions('nothing')).to.deep.equal([])
    }

    clocks[1] = 5000
    await b.put('k', { by: 'b2' })
    await sync(peers)
    for (const p of peers) {
      const v = await p.versions('k')
      expect(v.map((x) => hex(x.writer))).to.deep.equal([b, c, a].map((x) => hex(x.writerKey)))
      expect(v[0].value).to.deep.equal({ by: 'b2' })
      expect(await p.get('k')).to.deep.equal(v[0].value)
    }
  })

  it('diff(writer, { from, to, since }): that writer\'s changes between two lengths, or since a time or stamp', async () => {
    let wall = 1000
    const a = new MeshDB<string, any>(await tempDir(), { valueEncoding: 'json', wallClock: () => wall })
    dbs = [a]
    await a.open()
    const len = (): number => ownLength(a)
    const L0 = len()
    await a.put('x', 1)
    await a.put('y', 1)
    const L1 = len()
    wall = 2000
    await a.put('x', 2) // (2000, 0)
    await a.del('y') // (2000, 1)
    await a.put('z', 1) // (2000, 2)
    const L2 = len()
    wall = 3000
    await a.put('w', 1)
    const L3 = len()
    const shape = (cs: Array<{ key: string, type: string, value: unknown, previous: unknown, stamp: unknown }>): unknown[] =>
      cs.map((c) => [c.key, c.type, c.value, c.previous, c.stamp])

    expect(shape(await all(a.diff(a.writerKey, { from: L1, to: L2 })))).to.deep.equal([
      ['x', 'put', 2, 1, { wall: 2000, counter: 0 }],
      ['y', 'del', undefined, 1, { wall: 2000, counter: 1 }],
      ['z', 'put', 1, undefined, { wall: 2000, counter: 2 }]
    ])
    expect(shape(await all(a.diff(a.writerKey, { from: L0, to: L1 })))).to.deep.equal([
      ['x', 'put', 1, undefined, { wall: 1000, counter: 0 }],
      ['y', 'put', 1, undefined, { wall: 1000, counter: 1 }]
    ])
    expect(shape(await all(a.diff(a.writerKey, { from: L2 })))).to.deep.equal([['w', 'put', 1, undefined, { wall: 3000, counter: 0 }]])
    expect((await all(a.diff(a.writerKey, { from: L3 })))).to.deep.equal([])
    // the whole log, as hex key too: y's latest entry is its tombstone
    expect(shape(await all(a.diff(hex(a.writerKey))))).to.deep.equal([
      ['w', 'put', 1, undefined, { wall: 3000, counter: 0 }],
      ['x', 'put', 2, undefined, { wall: 2000, counter: 0 }],
      ['y', 'del', undefined, undefined, { wall: 2000, counter: 1 }],
      ['z', 'put', 1, undefined, { wall: 2000, counter: 2 }]
    ])

    // since: a wall time in ms, or a stamp (down to its counter)
    expect((await all(a.diff(a.writerKey, { since: 2000 }))).map((c) => c.key)).to.deep.equal(['w', 'x', 'y', 'z'])
    expect((await all(a.diff(a.writerKey, { since: 1500 }))).map((c) => c.key)).to.deep.equal(['w', 'x', 'y', 'z'])
    expect((await all(a.diff(a.writerKey, { since: { wall: 2000, counter: 1 } }))).map((c) => c.key)).to.deep.equal(['w', 'y', 'z'])
    expect((await all(a.diff(a.writerKey, { since: 3000 }))).map((c) => c.key)).to.deep.equal(['w'])
    expect((await all(a.diff(a.writerKey, { since: 3001 })))).to.deep.equal([])
    expect((await all(a.diff(a.writerKey, { since: 0 }))).map((c) => c.key)).to.deep.equal(['w', 'x', 'y', 'z'])
    // since within a window
    expect((await all(a.diff(a.writerKey, { since: 2000, to: L2 }))).map((c) => c.key)).to.deep.equal(['x', 'y', 'z'])
  })

  it('diff of a remote writer, read on another peer, matches its own', async () => {
    const [a, b] = dbs = await createPeers(2, () => ({ valueEncoding: 'json' }))
    await b.put('p', 1)
    const from = ownLength(b)
    await b.put('p', 2)
    await b.put('q', 3)
    await sync([a, b])
    const mine = await all(b.diff(b.writerKey, { from }))
    const theirs = await all(a.diff(b.writerKey, { from }))
    expect(theirs).to.deep.equal(mine)
    expect(mine.map((c) => [c.key, c.value, c.previous])).to.deep.equal([['p', 2, 1], ['q', 3, undefined]])
  })

  it('writers(): lengths, cuts, folded, removed, and the clock skew of a peer running 10 minutes ahead', async () => {
    const AHEAD = 10 * 60_000
    const [a, b] = dbs = await createPeers(2, (i) => ({ valueEncoding: 'json', wallClock: i === 1 ? () => Date.now() + AHEAD : Date.now }))
    expect(a.stats().clampedStamps).to.equal(0)
    await b.put('k', 'from the future')
    await a.put('j', 1)
    await sync([a, b])

    const wb = info(a, b.writerKey)
    expect(wb).to.include({ length: ownLength(b), cut: ownLength(b), folded: ownLength(b), member: true, removed: false, local: false })
    expect(wb.maxSkew).to.be.within(AHEAD - 10_000, AHEAD + 1000)
    expect(a.stats().clampedStamps).to.equal(1)
    const wa = info(a, a.writerKey)
    expect(wa).to.include({ local: true, removed: false, maxSkew: 0, length: ownLength(a), folded: ownLength(a) })
    // a is behind b: b sees no skew and clamps nothing
    expect(info(b, a.writerKey).maxSkew).to.equal(0)
    expect(b.stats().clampedStamps).to.equal(0)

    // a's clock followed b's stamp only up to maxDrift (60 s) ahead of its wall clock
    await a.put('after', 1)
    const [mine] = (await a.versions('after'))
    expect(mine.stamp.wall).to.be.at.most(Date.now() + 60_000)
    expect(mine.stamp.wall).to.be.at.least(Date.now() + 50_000)

    await a.removeWriter(b.writerKey)
    expect(info(a, b.writerKey)).to.include({ removed: true, cut: wb.folded, folded: wb.folded })
    expect(a.cuts().get(hex(b.writerKey))).to.equal(wb.folded)
  })

  it('hash(): equal on converged peers, different after any single different write, incremental yet equal to a full recomputation', async () => {
    const clocks = [1000, 1000]
    const peers = dbs = await createPeers(2, (i) => ({ valueEncoding: 'json', wallClock: () => clocks[i] }))
    const [a, b] = peers
    expect(a.hash().equals(Buffer.alloc(32))).to.equal(true) // the empty view
    // Each write changes the view: peer i writes its own keys.
    const writes: Array<[string, (db: DB, i: number) => Promise<unknown>]> = [
      ['put', async (db, i) => await db.put(`k${i}`, { v: 1 })],
      ['overwrite', async (db, i) => await db.put(`k${i}`, { v: 2 })],
      ['put 2', async (db, i) => await db.put(`j${i}`, 'x')],
      ['del', async (db, i) => await db.del(`j${i}`)],
      ['patch', async (db, i) => await db.patch(`doc${i}`, { f: 1 })],
      ['patch again', async (db, i) => await db.patch(`doc${i}`, { g: 2, f: undefined })],
      ['sadd', async (db, i) => await db.sadd(`set${i}`, 'm')],
      ['sadd 2', async (db, i) => await db.sadd(`set${i}`, 'n')],
      ['srem', async (db, i) => await db.srem(`set${i}`, 'm')],
      ['batch', async (db, i) => await db.batch([{ type: 'put', key: 'b1', value: i }, { type: 'put', key: `b2${i}`, value: 2 }, { type: 'del', key: `k${i}` }])],
      ['same key, different value', async (db, i) => await db.put('shared', i)]
    ]
    let wall = 2000
    for (const [name, write] of writes) {
      for (const [i, writer] of [[0, a], [1, b]] as const) {
        wall += 10
        clocks[0] = clocks[1] = wall
        const before = writer.hash()
        await write(writer, i)
        const other = peers[1 - i]
        expect(writer.hash().equals(before), `${name} on ${i} changes its hash`).to.equal(false)
        expect(writer.hash().equals(other.hash()), `${name} on ${i}: hashes differ before sync`).to.equal(false)
        expect(writer.hash().equals(await fullHash(writer)), `${name} on ${i}: incremental hash = full`).to.equal(true)
        await sync(peers)
        expect(a.hash().equals(b.hash()), `${name} on ${i}: equal after sync`).to.equal(true)
        expect(a.hash().equals(await fullHash(a)), `${name} on ${i}: incremental hash = full`).to.equal(true)
      }
    }
    // Re-merging past a removal (cut moving back) keeps the digest exact as well: a removes b
    // while b, not knowing, writes on; b then learns of it and re-merges its keys at the cut.
    clocks[0] = wall + 50
    await a.removeWriter(b.writerKey)
    const cut = info(a, b.writerKey).cut
    clocks[1] = wall + 100
    await b.put('shared', 'late')
    await b.put('fresh', 1)
    expect(b.hash().equals(await fullHash(b))).to.equal(true)
    const link = connect(a, b)
    await until(peers, async () => {
      const w = info(b, b.writerKey)
      return w.removed && w.folded === cut && sameDump(await dump(a), await dump(b))
    })
    link()
    expect(await b.get('shared')).to.equal(1) // b's last write before its cut
    expect(await b.get('fresh')).to.equal(undefined)
    expect(b.hash().equals(await fullHash(b))).to.equal(true)
    expect(b.hash().equals(a.hash())).to.equal(true)

    // And it is persisted with the view: a reopened peer reports the same digest without a refold.
    const h = a.hash()
    await a.close()
    await a.open()
    expect(a.hash().equals(h)).to.equal(true)
    expect(a.hash().equals(await fullHash(a))).to.equal(true)
  })

  it('checkout(cuts): the view at earlier cuts, read-only; bad cuts fail with MESHBEE_INVALID_CUTS', async () => {
    const peers = dbs = await createPeers(2, () => ({ valueEncoding: 'json' }))
    const [a, b] = peers
    await a.put('x', 1)
    await b.put('y', 1)
    await b.sadd('s', 'm')
    await sync(peers)
    const old = a.cuts()
    const oldView = await dump(a)
    expect([...old.keys()].sort()).to.deep.equal([a, b].map((p) => hex(p.writerKey)).sort())

    await a.put('x', 2)
    const mid = a.cuts()
    await b.put('y', 2)
    await b.del('x')
    await b.put('z', 1)
    await b.srem('s', 'm')
    await sync(peers)
    expect(await a.iterator().all()).to.deep.equal([['s', []], ['y', 2], ['z', 1]])

    for (const cuts of [old, Object.fromEntries(old), [...old].map(([k, v]) => [Buffer.from(k, 'hex'), v] as const)]) {
      const co = a.checkout(cuts as never) as unknown as MeshDB<string, any>
      await co.open()
      expect(await co.iterator().all()).to.deep.equal([['s', ['m']], ['x', 1], ['y', 1]])
      expect(await co.get('x')).to.equal(1)
      expect(await co.get('z')).to.equal(undefined)
      expect(sameDump(await dump(co), oldView)).to.equal(true)
      expect((await failure(() => co.put('x', 3))).code).to.equal('LEVEL_READONLY')
      expect((await failure(() => co.del('x'))).code).to.equal('LEVEL_READONLY')
      expect((await failure(() => co.batch([{ type: 'put', key: 'q', value: 1 }]))).code).to.equal('LEVEL_READONLY')
      expect(await co.get('x')).to.equal(1)
      await co.close()
    }
    // a's x=2 without anything b wrote after the old cuts
    const co = a.checkout(mid) as unknown as MeshDB<string, any>
    expect(await co.iterator().all()).to.deep.equal([['s', ['m']], ['x', 2], ['y', 1]])
    await co.close()
    // the current cuts give the current view; a writer left out counts as empty
    const now = a.checkout(a.cuts()) as unknown as MeshDB<string, any>
    expect(sameDump(await dump(now), await dump(a))).to.equal(true)
    await now.close()
    const onlyA = a.checkout({ [hex(a.writerKey)]: ownLength(a) }) as unknown as MeshDB<string, any>
    expect(await onlyA.iterator().all()).to.deep.equal([['x', 2]])
    await onlyA.close()
    // the live view is untouched by all this
    expect(await a.iterator().all()).to.deep.equal([['s', []], ['y', 2], ['z', 1]])

    const w = hex(a.writerKey)
    const bad: unknown[] = [null, 42, 'cuts', { nothex: 1 }, { [w]: -1 }, { [w]: 1.5 }, { [w]: '3' }, [[w]], [[w, 1, 2]], new Map([[w, Number.NaN]]), new Map([[Buffer.alloc(5), 1]])]
    for (const cuts of bad) {
      expect((await failure(async () => { const c = a.checkout(cuts as never); await c.open(); await c.close() })).code, JSON.stringify(cuts)).to.equal('MESHBEE_INVALID_CUTS')
    }
  })

  it('API misuse fails with stable codes and leaves stored data unchanged; so does a closed database', async () => {
    const db = new MeshDB<string, any>(await tempDir(), { valueEncoding: 'json' })
    dbs = [db]
    await db.put('k', { a: 1 })
    await db.patch('doc', { f: 1 })
    await db.sadd('s', 'm')
    const view = await dump(db)
    const hash = db.hash()
    const length = ownLength(db)

    const misuse: Array<[string, () => unknown, string]> = [
      ['patch with a number', () => db.patch('doc', 5 as never), 'MESHBEE_INVALID_ARGUMENT'],
      ['patch with a string', () => db.patch('doc', 'f' as never), 'MESHBEE_INVALID_ARGUMENT'],
      ['patch with null', () => db.patch('doc', null as never), 'MESHBEE_INVALID_ARGUMENT'],
      ['patch with an array', () => db.patch('doc', [1] as never), 'MESHBEE_INVALID_ARGUMENT'],
      ['patch with a function field', () => db.patch('doc', { f: () => 1 } as never), 'MESHBEE_INVALID_ARGUMENT'],
      ['sadd with a function', () => db.sadd('s', (() => 1) as never), 'MESHBEE_INVALID_ARGUMENT'],
      ['sadd with undefined', () => db.sadd('s', undefined as never), 'MESHBEE_INVALID_ARGUMENT'],
      ['sadd with NaN', () => db.sadd('s', Number.NaN), 'MESHBEE_INVALID_ARGUMENT'],
      ['srem with a symbol', () => db.srem('s', Symbol('x') as never), 'MESHBEE_INVALID_ARGUMENT'],
      ['sadd with a null key', () => db.sadd(null as never, 'm'), 'MESHBEE_INVALID_ARGUMENT'],
      ['diff with a negative from', () => all(db.diff(db.writerKey, { from: -1 })), 'MESHBEE_INVALID_ARGUMENT'],
      ['diff with a fractional to', () => all(db.diff(db.writerKey, { to: 1.5 })), 'MESHBEE_INVALID_ARGUMENT'],
      ['diff with a bad since', () => all(db.diff(db.writerKey, { since: 'yesterday' as never })), 'MESHBEE_INVALID_ARGUMENT'],
      ['diff with a bad writer key', () => all(db.diff('nope')), 'MESHBEE_INVALID_ARGUMENT'],
      ['diff of an unknown writer', () => all(db.diff(Buffer.alloc(32, 1))), 'MESHBEE_INVALID_KEY'],
      ['versions with a null key', () => db.versions(null as never), 'MESHBEE_INVALID_ARGUMENT'],
      ['versions with an undefined key', () => db.versions(undefined as never), 'MESHBEE_INVALID_ARGUMENT'],
      ['smembers with a null key', () => db.smembers(null as never), 'MESHBEE_INVALID_ARGUMENT'],
      ['removeWriter of a non-member', () => db.removeWriter(Buffer.alloc(32, 1)), 'MESHBEE_INVALID_KEY'],
      ['addWriter with a short key', () => db.addWriter(Buffer.alloc(31)), 'MESHBEE_INVALID_ARGUMENT'],
      ['put with a null key', () => db.put(null as never, 1), 'LEVEL_INVALID_KEY'],
      ['put of an oversize key', () => db.put('x'.repeat(5000), 1), 'MESHBEE_TOO_LARGE']
    ]
    for (const [name, call, code] of misuse) {
      expect((await failure(call)).code, name).to.equal(code)
    }
    expect(sameDump(await dump(db), view)).to.equal(true)
    expect(db.hash().equals(hash)).to.equal(true)
    expect(ownLength(db)).to.equal(length)

    await db.close()
    const closed: Array<[string, () => unknown]> = [
      ['get', () => db.get('k')],
      ['put', () => db.put('k', 2)],
      ['del', () => db.del('k')],
      ['batch', () => db.batch([{ type: 'put', key: 'k', value: 2 }])],
      ['iterator', () => db.iterator().all()],
      ['patch', () => db.patch('doc', { f: 2 })],
      ['sadd', () => db.sadd('s', 'n')],
      ['srem', () => db.srem('s', 'm')],
      ['smembers', () => db.smembers('s')],
      ['versions', () => db.versions('k')],
      ['diff', () => all(db.diff(db.writerKey))],
      ['update', () => db.update()],
      ['addWriter', () => db.addWriter(Buffer.alloc(32, 2))],
      ['removeWriter', () => db.removeWriter(db.writerKey)],
      ['checkout', async () => { const c = db.checkout(new Map()); await c.open() }]
    ]
    for (const [name, call] of closed) {
      const err = await failure(call)
      expect(err.code ?? (err.cause as Coded | undefined)?.code, name).to.equal('LEVEL_DATABASE_NOT_OPEN')
    }
    expect(db.writers()).to.deep.equal([])

    await db.open()
    expect(sameDump(await dump(db), view)).to.equal(true)
    expect(db.hash().equals(hash)).to.equal(true)
    expect(ownLength(db)).to.equal(length)
  })
})
