import { expect } from 'chai'
import { join } from 'node:path'
import Corestore from 'corestore'
import { MeshDB } from '../index.js'
import { PUT, dataKey, encodeEntry } from '../lib/entry.js'
import { cleanup, connect, createPeers, tempDir, until, rejects, ownLength } from './helpers/peers.js'

describe('MeshDB', function () {
  this.timeout(60_000)
  let dbs: Array<MeshDB<any, any>> = []
  afterEach(async () => { await cleanup(...dbs); dbs = [] })

  it('creates a database whose creator is the first writer, and reads its own writes', async () => {
    const db = new MeshDB<string, any>(await tempDir(), { valueEncoding: 'json' })
    dbs.push(db)
    await db.open()
    expect(db.key.equals(db.writerKey)).to.equal(true)
    expect(db.discoveryKey).to.have.length(32)
    expect(db.writable).to.equal(true)
    await db.put('a', { n: 1 })
    expect(await db.get('a')).to.deep.equal({ n: 1 })
    await db.batch([{ type: 'put', key: 'b', value: 2 }, { type: 'del', key: 'a' }])
    expect(await db.get('a')).to.equal(undefined)
    expect(await db.get('b')).to.equal(2)
  })

  it('iterators read ahead, yet a limit holds across seek: entries read ahead are not lost', async () => {
    const db = new MeshDB<string, string>(await tempDir())
    dbs.push(db)
    await db.batch(Array.from({ length: 100 }, (_, i) => ({ type: 'put' as const, key: `k${String(i).padStart(3, '0')}`, value: String(i) })))
    const it = db.iterator({ limit: 10 })
    expect(await it.next()).to.deep.equal(['k000', '0'])
    it.seek('k050')
    const rest = await it.all()
    expect(rest.map(([k]) => k)).to.deep.equal(Array.from({ length: 9 }, (_, i) => `k0${50 + i}`))
    const all = await db.iterator({ gte: 'k090' }).all()
    expect(all).to.have.length(10)
    let n = 0
    for await (const _ of db.iterator({ limit: 37 })) n++
    expect(n).to.equal(37)

    // without a limit the next chunk is asked for ahead: seeks and close while it is in flight
    const free = db.iterator()
    for (let i = 0; i < 20; i++) expect((await free.next())?.[0]).to.equal(`k${String(i).padStart(3, '0')}`)
    free.seek('k050')
    expect(await free.next()).to.deep.equal(['k050', '50'])
    free.seek('k001')
    expect(await free.nextv(3)).to.deep.equal([['k001', '1'], ['k002', '2'], ['k003', '3']])
    free.seek('k098')
    expect(await free.all()).to.deep.equal([['k098', '98'], ['k099', '99']])
    const closing = db.iterator()
    await closing.next()
    await closing.close()
  })

  it('reopens the same database from its directory, with the view at once and the clock restored', async () => {
    const dir = await tempDir()
    let wall = 10_000
    const a = new MeshDB<string, string>(dir, { wallClock: () => wall })
    await a.put('k', 'first')
    const key = a.key
    const writer = a.writerKey
    await a.close()

    wall = 5_000 // the wall clock went back across the restart
    const b = new MeshDB<string, string>(dir, { wallClock: () => wall })
    dbs.push(b)
    await b.open()
    expect(b.key.equals(key)).to.equal(true)
    expect(b.writerKey.equals(writer)).to.equal(true)
    expect(b.stats().diffEntries).to.equal(0) // nothing refolded
    expect(await b.get('k')).to.equal('first')
    await b.put('k', 'second') // must still win: its stamp is after the restored one
    expect(await b.get('k')).to.equal('second')
  })

  it('refuses a key that differs from the stored one, leaving the data intact', async () => {
    const dir = await tempDir()
    const a = new MeshDB<string, string>(dir)
    await a.put('k', 'v')
    await a.close()
    const other = new MeshDB<string, string>(dir, { key: Buffer.alloc(32, 7) })
    const err = await rejects(other.open())
    expect((err.cause as { code?: string } | undefined)?.code ?? err.code).to.equal('MESHBEE_KEY_MISMATCH')
    const again = new MeshDB<string, string>(dir)
    dbs.push(again)
    expect(await again.get('k')).to.equal('v')
  })

  it('rejects writes from a peer that is not a member, with MESHBEE_NOT_WRITABLE', async () => {
    const a = new MeshDB<string, string>(await tempDir('a'))
    await a.open()
    const b = new MeshDB<string, string>(await tempDir('b'), { key: a.key })
    dbs.push(a, b)
    await b.open()
    expect(b.writable).to.equal(false)
    for (const write of [b.put('x', '1'), b.del('x'), b.batch([{ type: 'put', key: 'x', value: '1' }]), b.patch('x', { f: 1 }), b.sadd('x', 1), b.addWriter(b.writerKey)]) {
      expect((await rejects(write)).code).to.equal('MESHBEE_NOT_WRITABLE')
    }
    expect(await b.iterator().all()).to.deep.equal([])
  })

  it('documents: patch merges fields, undefined deletes one, put replaces the whole', async () => {
    const db = new MeshDB<string, any>(await tempDir(), { valueEncoding: 'json' })
    dbs.push(db)
    await db.put('doc', { a: 1, b: 1 })
    await db.patch('doc', { b: 2, c: 3 })
    expect(await db.get('doc')).to.deep.equal({ a: 1, b: 2, c: 3 })
    await db.patch('doc', { a: undefined })
    expect(await db.get('doc')).to.deep.equal({ b: 2, c: 3 })
    await db.put('doc', { z: 0 })
    expect(await db.get('doc')).to.deep.equal({ z: 0 })
    expect((await rejects(db.patch('doc', 5 as never))).code).to.equal('MESHBEE_INVALID_ARGUMENT')
    expect((await rejects(db.patch('doc', { f: () => 1 } as never))).code).to.equal('MESHBEE_INVALID_ARGUMENT')
    expect(await db.get('doc')).to.deep.equal({ z: 0 })
  })

  it('sets: sadd, srem and smembers, read as sorted members', async () => {
    const db = new MeshDB<string, any>(await tempDir(), { valueEncoding: 'json' })
    dbs.push(db)
    await db.sadd('s', 'b')
    await db.sadd('s', 'a')
    await db.sadd('s', { x: 1 })
    await db.sadd('s', 'a')
    expect(await db.smembers('s')).to.deep.equal(['"a"', '"b"', '{"x":1}'].map((m) => JSON.parse(m)))
    await db.srem('s', 'a')
    expect(await db.smembers('s')).to.deep.equal(['b', { x: 1 }])
    expect(await db.get('s')).to.deep.equal(['b', { x: 1 }])
    expect(await db.smembers('missing')).to.deep.equal([])
  })

  it('write(): operations of every kind in one atomic append, applied in order; one bad operation writes nothing', async () => {
    const db = new MeshDB<string, any>(await tempDir(), { valueEncoding: 'json' })
    dbs.push(db)
    await db.sadd('s', 'old')
    const before = ownLength(db)
    await db.write([
      { type: 'put', key: 'v', value: { x: 1 } },
      { type: 'del', key: 's' },
      { type: 'sadd', key: 's', member: 'a' },
      { type: 'sadd', key: 's', member: 'b' },
      { type: 'patch', key: 'd', fields: { title: 'milk', done: false } },
      { type: 'srem', key: 's', member: 'b' }
    ])
    // one Hyperbee batch with the last entry of each whole value and part: v; s's del, member a and
    // member b (its add, then its removal); d's fields title and done
    expect(ownLength(db) - before).to.equal(6)
    expect(await db.get('v')).to.deep.equal({ x: 1 })
    expect(await db.smembers('s'), 'the del reset the set before the adds').to.deep.equal(['a'])
    expect([await db.typeOf('s'), await db.typeOf('d'), await db.typeOf('v')]).to.deep.equal(['set', 'doc', 'value'])
    expect(await db.get('d')).to.deep.equal({ done: false, title: 'milk' })
    const length = ownLength(db)
    const bad = [{ type: 'put', key: 'w', value: 1 }, { type: 'sadd', key: 's', member: () => 1 }]
    expect((await rejects(db.write(bad as never))).code).to.equal('MESHBEE_INVALID_ARGUMENT')
    expect((await rejects(db.write([{ type: 'merge', key: 'w' }] as never))).code).to.equal('MESHBEE_INVALID_ARGUMENT')
    expect(ownLength(db), 'nothing appended').to.equal(length)
    expect(await db.get('w')).to.equal(undefined)
    // a set of many members written at once: one entry per member (and the del), in one append
    await db.write([{ type: 'del', key: 'big' }, ...Array.from({ length: 1000 }, (_, i) => ({ type: 'sadd' as const, key: 'big', member: i }))])
    expect(ownLength(db) - length).to.equal(1001)
    expect(await db.smembers('big')).to.have.lengthOf(1000)
  })

  it('add-wins: a remove does not delete an add it had not seen', async () => {
    const [a, b] = dbs = await createPeers(2, () => ({ valueEncoding: 'json' }))
    await a.sadd('s', 'x')
    await b.sadd('s', 'x') // concurrent add under another tag
    await a.srem('s', 'x') // removes only a's tag
    const cut = connect(a, b)
    await until([a, b], async () => JSON.stringify(await a.smembers('s')) === '["x"]' && JSON.stringify(await b.smembers('s')) === '["x"]')
    await b.srem('s', 'x') // b has now seen both tags
    await until([a, b], async () => (await a.get('s')) === undefined || JSON.stringify(await a.get('s')) === '[]')
    expect(await a.smembers('s')).to.deep.equal([])
    cut()
  })

  it('emits update when a remote write is folded, and addWriter makes a peer writable', async () => {
    const [a, b] = dbs = await createPeers(2)
    expect(b.writable).to.equal(true)
    let updates = 0
    b.on('update', () => { updates++ })
    const cut = connect(a, b)
    await a.put('hello', 'world')
    await until([b], async () => (await b.get('hello')) === 'world')
    expect(updates).to.be.greaterThan(0)
    cut()
  })

  it('rejects oversize keys and values with MESHBEE_TOO_LARGE and changes nothing', async () => {
    const db = new MeshDB<string, Buffer>(await tempDir(), { valueEncoding: 'buffer' })
    dbs.push(db)
    await db.put('k', Buffer.from('ok'))
    const before = ownLength(db)
    expect((await rejects(db.put('k', Buffer.alloc(4 * 1024 * 1024 + 1)))).code).to.equal('MESHBEE_TOO_LARGE')
    expect((await rejects(db.put('x'.repeat(5000), Buffer.from('v')))).code).to.equal('MESHBEE_TOO_LARGE')
    expect(ownLength(db)).to.equal(before)
    expect((await db.get('k'))?.toString()).to.equal('ok')
  })

  it('rejects bad writer keys with a stable code', async () => {
    const db = new MeshDB<string, string>(await tempDir())
    dbs.push(db)
    await db.open()
    for (const bad of ['nope', Buffer.alloc(5), 42 as never]) {
      expect((await rejects(db.addWriter(bad))).code).to.equal('MESHBEE_INVALID_ARGUMENT')
    }
  })

  it('folds incrementally: a catch-up over 100,000 overwrites of 10 keys reads 10 keys, not 100,000 entries', async () => {
    // Both peers share one Corestore (as namespaces), so a's log is local to b without a network:
    // what is measured is the fold alone.
    const dir = await tempDir()
    const store = new Corestore(join(dir, 'cores'))
    const a = new MeshDB<string, string>(store.namespace('a'), { viewPath: join(dir, 'a') })
    await a.open()
    let b = new MeshDB<string, string>(store.namespace('b'), { key: a.key, viewPath: join(dir, 'b') })
    await b.open()
    expect(b.writerKey.equals(a.writerKey), 'each namespace has its own writer log').to.equal(false)
    expect(b.writable).to.equal(false)
    await a.addWriter(b.writerKey)
    await b.update()
    expect(b.writable).to.equal(true)
    await b.close() // b goes offline

    // 100,000 entries of history, appended 1,000 at a time (a's own writes would append only each
    // key's last entry of a batch, so the history is written to its log directly)
    for (let round = 0; round < 100; round++) {
      const batch = a.engine.own.bee.batch()
      for (let i = 0; i < 1000; i++) {
        const value = Buffer.from(`r${round}-${i}`)
        await batch.put(dataKey(Buffer.from('key' + (i % 10))), encodeEntry({ type: PUT, stamp: a.engine.hlc.now(), value }))
      }
      await batch.flush()
    }
    await a.update()
    expect(ownLength(a)).to.be.greaterThan(100_000)

    b = new MeshDB<string, string>(store.namespace('b'), { key: a.key, viewPath: join(dir, 'b') })
    dbs.push(a, b)
    await b.open() // the catch-up fold runs on open
    expect(await b.get('key9')).to.equal('r99-999')
    expect(b.stats().diffEntries).to.equal(10)
    expect(b.stats().keysMerged).to.equal(10)
    await cleanup(a, b)
    await store.close()
  })
})
