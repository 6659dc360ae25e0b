/**
 * Full-text indexes (lib/text.ts, lib/indexes.ts): after any history, a peer's search returns
 * exactly the keys a brute-force token match over its own view finds, scored as BM25 computed
 * from that view; a rebuilt index answers the same.
 */
import { expect } from 'chai'
import { MeshDB } from '../index.js'
import { bm25, fieldsText, termsOf, tokenize } from '../lib/text.js'
import { cleanup, createPeers, meshSync, rejects } from './helpers/peers.js'

type DB = MeshDB<string, any>

const FIELDS = ['title', 'body']
const notes = { version: 1, text: FIELDS }

/** The results a search must give, computed from the peer's view alone. */
async function bruteForce (db: DB, query: string): Promise<Array<[string, number]>> {
  const docs = new Map<string, { tf: Map<string, number>, length: number }>()
  for await (const [k, v] of db.iterator()) {
    const t = termsOf(fieldsText(v, FIELDS))
    if (t.length > 0) docs.set(k, t)
  }
  const corpus = { n: docs.size, total: [...docs.values()].reduce((s, d) => s + d.length, 0) }
  const df = (term: string): number => [...docs.values()].filter((d) => d.tf.has(term)).length
  const terms = tokenize(query)
  if (terms.length === 0) return []
  const out: Array<[string, number]> = []
  for (const [k, d] of docs) {
    let score = 0
    let all = true
    for (const [i, q] of terms.entries()) {
      const matching = [...d.tf].filter(([t]) => i === terms.length - 1 ? t.startsWith(q) : t === q)
      if (matching.length === 0) { all = false; break }
      score += Math.max(...matching.map(([t, tf]) => bm25(tf, df(t), d.length, corpus)))
    }
    if (all) out.push([k, score])
  }
  return out.sort((a, b) => b[1] - a[1] || Buffer.compare(Buffer.from(a[0]), Buffer.from(b[0])))
}

async function search (db: DB, name: string, query: string, limit = Infinity): Promise<Array<[string, number]>> {
  const out: Array<[string, number]> = []
  for await (const r of db.search(name, query, { limit })) {
    expect(r.value).to.deep.equal(await db.get(r.key))
    out.push([r.key, r.score])
  }
  return out
}

function expectSameResults (got: Array<[string, number]>, want: Array<[string, number]>, what: string): void {
  expect(got.map(([k]) => k), what).to.deep.equal(want.map(([k]) => k))
  got.forEach(([, s], i) => expect(s, `${what}: score of ${got[i][0]}`).to.be.closeTo(want[i][1], 1e-9))
}

const QUERIES = ['milk', 'milk eg', 'EGGS', 'crème', 'creme fr', 'the', 'a', 'zzz', '', 'bread and', '12']

describe('full-text search', function () {
  this.timeout(60_000)
  let dbs: DB[] = []
  afterEach(async () => { await cleanup(...dbs); dbs = [] })

  it('after partitioned writes, patches, deletes and a removal, every peer\'s search equals a brute-force token match, ranked by BM25 from its own view', async () => {
    const [a, b, c] = dbs = await createPeers(3, () => ({ valueEncoding: 'json', indexes: { notes } }))
    await a.put('n1', { title: 'Buy milk', body: 'and eggs and the Crème fraîche' })
    await a.patch('n2', { title: 'Milk run', body: 'milk, milk; MILK!' })
    await b.put('n1', { title: 'Bread', body: ['and', 'butter', 'and eggs'] })
    await b.patch('n2', { body: 'eggnog recipe' })
    await c.put('n3', { title: 'Eggplant', body: 'and 12 eggs' })
    await c.put('n4', 'not a document')
    await c.sadd('n5', 'milk')
    await meshSync([a, b, c])
    await a.del('n3')
    await c.put('n6', { title: 'the end', body: 'late milk' })
    await meshSync([a, b])
    await a.removeWriter(c.writerKey)
    await meshSync([a, b, c])

    for (const db of [a, b, c]) {
      for (const q of QUERIES) expectSameResults(await search(db, 'notes', q), await bruteForce(db, q), `${JSON.stringify(q)}`)
    }
    expect((await search(a, 'notes', 'milk eg')).map(([k]) => k)).to.deep.equal(['n2'])
    expect(await search(a, 'notes', 'and', 1)).to.have.lengthOf(1)

    // rebuilt from the view (a new version): the same answers
    await a.defineIndex('notes', { version: 2, text: FIELDS })
    for (const q of QUERIES) expectSameResults(await search(a, 'notes', q), await bruteForce(a, q), `rebuilt, ${JSON.stringify(q)}`)
  })

  it('a text function; errors: not a text index, unknown, bad arguments', async () => {
    const [a] = dbs = await createPeers(1, () => ({
      valueEncoding: 'json',
      indexes: { byFn: { version: 1, text: (k: string, v: any) => `${k} ${typeof v === 'string' ? v : ''}` }, byTitle: { version: 1, field: 'title' } }
    }))
    await a.put('alpha', 'first note')
    await a.put('beta', { title: 'x' })
    expect((await search(a, 'byFn', 'alp')).map(([k]) => k)).to.deep.equal(['alpha'])
    expect((await search(a, 'byFn', 'beta')).map(([k]) => k)).to.deep.equal(['beta'])
    expect((await rejects(search(a, 'byTitle', 'x'))).code).to.equal('MESHBEE_INVALID_ARGUMENT')
    expect((await rejects(search(a, 'nope', 'x'))).code).to.equal('MESHBEE_INDEX_NOT_FOUND')
    expect((await rejects((async () => { for await (const _ of a.query('byFn')) break })())).code).to.equal('MESHBEE_INVALID_ARGUMENT')
    expect((await rejects(search(a, 'byFn', 1 as never))).code).to.equal('MESHBEE_INVALID_ARGUMENT')
    expect(() => new MeshDB('x', { indexes: { t: { version: 1, text: [] } as never } })).to.throw().with.property('code', 'MESHBEE_INVALID_ARGUMENT')
  })
})
