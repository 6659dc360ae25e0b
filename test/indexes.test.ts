/**
 * Secondary indexes (lib/indexes.ts): kept in each view commit, so after any history a query
 * equals a brute-force filter of the peer's own full iteration; rebuilt when declared anew or
 * versioned, dropped when no longer declared; a map index a process cannot keep goes stale.
 */
import { expect } from 'chai'
import { MeshDB } from '../index.js'
import { encodeIndexKey, fieldKeys, type IndexKey } from '../lib/collate.js'
import type { Json } from '../crdt/json.js'
import { cleanup, createPeers, meshSync, rejects, tempDir } from './helpers/peers.js'
import { join } from 'node:path'
import { ViewStore } from '../lib/view.js'

type DB = MeshDB<string, any>

const byStatus = { version: 1, field: 'status' }
const byTag = { version: 1, map: (_k: string, v: any) => Array.isArray(v?.tags) ? v.tags : undefined }
const members = { version: 1, field: '' }

/** What a query must return: every (index key, key) a brute-force pass over the view gives, in index order. */
async function bruteForce (db: DB, keysOf: (key: string, value: Json) => IndexKey[]): Promise<Array<[IndexKey, string]>> {
  const out: Array<[IndexKey, string]> = []
  for await (const [k, v] of db.iterator()) for (const ik of new Set(keysOf(k, v))) out.push([ik, k])
  return out.sort((a, b) => Buffer.compare(encodeIndexKey(a[0]), encodeIndexKey(b[0])) || Buffer.compare(Buffer.from(a[1]), Buffer.from(b[1])))
}

async function query (db: DB, name: string, opts = {}): Promise<Array<[IndexKey, string]>> {
  const out: Array<[IndexKey, string]> = []
  for await (const e of db.query(name, opts)) {
    expect(e.value, `the value of ${e.key}`).to.deep.equal(await db.get(e.key))
    out.push([e.indexKey, e.key])
  }
  return out
}

describe('secondary indexes', function () {
  this.timeout(60_000)
  let dbs: DB[] = []
  afterEach(async () => { await cleanup(...dbs); dbs = [] })

  it('after partitioned writes, patches, deletes, set changes and a removal, every peer\'s queries equal a brute-force filter of its view', async () => {
    const [a, b, c] = dbs = await createPeers(3, (i) => ({ valueEncoding: 'json', ...(i === 0 ? { indexes: { byStatus, byTag, members } } : {}) }))
    await c.defineIndex('byStatus', byStatus)
    await c.defineIndex('byTag', byTag)
    await c.defineIndex('members', members)
    await a.put('t1', { status: 'open', tags: ['x', 'y'] })
    await a.patch('t2', { status: 'open', n: 1 })
    await b.put('t1', { status: 'done', tags: ['y'] })
    await b.patch('t2', { status: 'done' })
    await b.put('t3', { status: 3, tags: [1, 'x', null, { deep: 1 }] })
    await c.sadd('s1', 'open')
    await c.sadd('s1', 7)
    await c.put('t4', 'not a document')
    await c.patch('t5', { other: true })
    await meshSync([a, b, c])
    await a.del('t3')
    await b.srem('s1', 7)
    await c.put('t6', { status: 'open', tags: 'not an array' })
    await c.put('t7', { status: 'late' })
    await meshSync([a, b])
    await a.removeWriter(c.writerKey)
    await meshSync([a, b, c])
    // b declares its indexes last: built from its view as it is
    await b.defineIndex('byStatus', byStatus)
    await b.defineIndex('byTag', byTag)
    await b.defineIndex('members', members)

    for (const db of [a, b, c]) {
      expect(await query(db, 'byStatus')).to.deep.equal(await bruteForce(db, (_k, v) => fieldKeys(v, ['status'])))
      expect(await query(db, 'byTag')).to.deep.equal(await bruteForce(db, (_k, v: any) => (Array.isArray(v?.tags) ? v.tags : []).filter((t: unknown) => t === null || ['string', 'number', 'boolean'].includes(typeof t))))
      expect(await query(db, 'members')).to.deep.equal(await bruteForce(db, (_k, v) => fieldKeys(v, [])))
      expect(await query(db, 'byStatus', { gte: 'open', lte: 'open' })).to.deep.equal((await bruteForce(db, (_k, v) => fieldKeys(v, ['status']))).filter(([s]) => s === 'open'))
      expect(await query(db, 'byStatus', { gt: 'done', reverse: true, limit: 1 })).to.deep.equal((await bruteForce(db, (_k, v) => fieldKeys(v, ['status']))).filter(([s]) => typeof s === 'string' && s > 'done').reverse().slice(0, 1))
    }
    // the three peers' views are the same, and so are their indexes
    expect(await query(b, 'byStatus')).to.deep.equal(await query(a, 'byStatus'))
    expect(await query(c, 'members')).to.deep.equal(await query(a, 'members'))
    expect((await query(a, 'members')).map(([m, k]) => [m, k])).to.deep.include(['open', 's1'])
  })

  it('a new version rebuilds with progress; a dropped index is gone; a map index a process without it writes under goes stale until declared again; bad keys are skipped and counted', async () => {
    const dir = await tempDir()
    let db: DB = new MeshDB(dir, { valueEncoding: 'json', indexes: { byStatus, byTag } })
    dbs = [db]
    for (let i = 0; i < 600; i++) await db.put('k' + String(i).padStart(3, '0'), { status: i % 3 === 0 ? 'open' : 'done', tags: i % 100 === 0 ? [{ bad: true }] : ['t' + (i % 7)] })
    expect(db.stats().indexErrors, 'the map returned objects for 6 keys: skipped, counted').to.equal(6)
    expect((await query(db, 'byStatus', { gte: 'open', lte: 'open' })).length).to.equal(200)
    const progress: Array<{ name: string, done: number }> = []
    db.on('index-progress', (p) => progress.push(p))
    expect(await db.defineIndex('byStatus', { version: 2, field: 'tags' })).to.equal(true)
    expect(progress.at(-1)).to.deep.equal({ name: 'byStatus', done: 600 })
    expect((await query(db, 'byStatus', { gte: 't0', lte: 't0' })).length, 'i % 7 = 0, but for k000 (an object)').to.equal(85)
    expect(await db.defineIndex('byStatus', { version: 2, field: 'tags' }), 'the same declaration: not rebuilt').to.equal(false)
    expect(await db.dropIndex('byStatus')).to.equal(true)
    expect((await rejects(query(db, 'byStatus'))).code).to.equal('MESHBEE_INDEX_NOT_FOUND')
    await db.close()

    // opened without the map function: a write makes the map index stale
    db = new MeshDB(dir, { valueEncoding: 'json' })
    dbs.push(db)
    await db.open()
    expect(db.indexes().map((i) => [i.name, i.live, i.stale])).to.deep.equal([['byTag', false, false]])
    expect((await query(db, 'byTag', { gte: 't1', lte: 't1' })).length, 'not written under yet: still current (i % 7 = 1, but for k400)').to.equal(85)
    await db.put('k999', { tags: ['t1'] })
    expect((await rejects(query(db, 'byTag'))).code).to.equal('MESHBEE_INDEX_STALE')
    await db.close()
    db = new MeshDB(dir, { valueEncoding: 'json', indexes: { byTag } })
    dbs.push(db)
    await db.open()
    expect((await query(db, 'byTag', { gte: 't1', lte: 't1' })).length, 'rebuilt, with k999').to.equal(86)

    // a map that throws anything (null too) skips the key, and writes go on
    const before = db.stats().indexErrors
    await db.defineIndex('thrower', { version: 1, map: (_k: string, v: any) => { if (v?.boom === true) throw null; return 1 } } as never)
    await db.put('boom', { boom: true })
    await db.put('fine', { boom: false })
    expect(db.stats().indexErrors).to.equal(before + 1)
    expect((await query(db, 'thrower')).map(([, k]) => k)).to.include('fine')

    // a build cut short (its declaration left stale) is done again when the database opens
    await db.close()
    const vs = new ViewStore(join(dir, 'view'))
    await vs.open()
    const decl = JSON.parse(((await vs.getMeta('indexes')) as Buffer).toString())
    decl.byTag.stale = true
    decl.fieldOne = { version: 1, kind: 'field', field: 'status', stale: true }
    await vs.write([vs.putMeta('indexes', Buffer.from(JSON.stringify(decl)))])
    await vs.close()
    db = new MeshDB(dir, { valueEncoding: 'json' })
    dbs.push(db)
    await db.open()
    expect((await query(db, 'fieldOne', { gte: 'open', lte: 'open' })).length, 'rebuilt on open').to.equal(200)
    expect((await rejects(query(db, 'byTag'))).code, 'code it cannot run stays stale').to.equal('MESHBEE_INDEX_STALE')
    await db.close()
    db = new MeshDB(dir, { valueEncoding: 'json', indexes: { byTag, fieldOne: { version: 1, field: 'status' } } })
    dbs.push(db)
    await db.open()

    for (const bad of [{ version: -1, field: 'a' }, { version: 1 }, { version: 1, field: 'a', map: () => 1 }, { version: 1, map: 'x' }]) {
      expect(() => new MeshDB(dir, { indexes: { x: bad as never } })).to.throw().with.property('code', 'MESHBEE_INVALID_ARGUMENT')
    }
    expect((await rejects(db.defineIndex('', byStatus))).code).to.equal('MESHBEE_INVALID_ARGUMENT')
    expect((await rejects(query(db, 'byTag', { gte: { a: 1 } as never }))).code).to.equal('MESHBEE_INVALID_ARGUMENT')
  })
})
