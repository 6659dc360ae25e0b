/**
 * Databases written by the previous release (log format 1, the view in its old layout): the
 * fixture test/fixtures/format1 (scripts/fixtures/format1.ts says how it was made). Each peer's
 * directory, copied (opening a database writes into it), opens with the current code, its view is
 * rebuilt from the logs and reads exactly as the release read it. Then the peers go on writing in
 * format 2 on the same keys, and converge with each other and with a fresh peer; the chaos
 * reference model computes the same views from the logs.
 */
import { expect } from 'chai'
import { ClassicLevel } from 'classic-level'
import { cp, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { MeshDB } from '../index.js'
import { FIELD, MEMBER, STATE, decodeEntry } from '../lib/entry.js'
import { VIEW_FORMAT } from '../lib/view.js'
import { logsOf, reference } from '../scripts/chaos/model.js'
import { cleanup, connect, dump, ownLength, sameDump, tempDir, until } from './helpers/peers.js'

type DB = MeshDB<string, any>
type Name = 'A' | 'B' | 'C'
const NAMES: Name[] = ['A', 'B', 'C']

interface Expected {
  key: string
  writers: Record<Name, { writerKey: string, length: number }>
  keys: Array<{ key: string, typeOf: string | undefined, value: unknown, raw: string }>
  absent: string[]
}

const FIXTURE = fileURLToPath(new URL('./fixtures/format1/', import.meta.url))

/** A copy of one peer's fixture directory in a fresh temporary directory. */
async function copyOf (name: Name): Promise<string> {
  const dir = await tempDir('format1-' + name)
  await cp(join(FIXTURE, name), dir, { recursive: true })
  return dir
}

/** Every peer has folded every other peer's log to its full length. */
async function synced (peers: DB[], writers: DB[] = peers): Promise<void> {
  await until(peers, async () => {
    for (const p of peers) await p.update()
    return peers.every((p) => writers.every((q) => p.writers().find((w) => w.key.equals(q.writerKey))?.folded === ownLength(q)))
  }, () => JSON.stringify(peers.map((p) => p.writers().map((w) => [w.key.toString('hex').slice(0, 6), w.length, w.folded]))))
}

/** The three peers of the fixture, each opened from `dirs` or else a fresh copy of its directory. */
async function openPeers (dirs: Partial<Record<Name, string>> = {}): Promise<Record<Name, DB>> {
  const peers = {} as Record<Name, DB>
  for (const n of NAMES) {
    peers[n] = new MeshDB<string, any>(dirs[n] ?? await copyOf(n), { valueEncoding: 'json' })
    await peers[n].open()
  }
  return peers
}

/** Waits until the peers' views are byte-identical, with one digest. */
async function converged (peers: DB[]): Promise<void> {
  await synced(peers)
  await until(peers, async () => {
    const d = await Promise.all(peers.map(dump))
    return d.every((x) => sameDump(x, d[0])) && peers.every((p) => p.hash().equals(peers[0].hash()))
  }, () => 'the views differ')
}

/**
 * Writes in format 2 on the fixture's keys. Round 1, peers not linked (concurrent): removes of
 * format-1 members, patches of format-1 documents, a put resetting a format-1 set, adds to
 * format-1 sets, a concurrent add and remove of a format-1 member. Then the peers are linked until
 * they converge; round 2 writes what saw round 1, and they converge again. Returns the links.
 */
async function formatTwoWrites ({ A, B, C }: Record<Name, DB>, afterRoundOne: () => Promise<void> = async () => {}): Promise<Array<() => void>> {
  const all = [A, B, C]
  await A.srem('set/colors', 'blue') // A's format-1 add
  await B.write([{ type: 'srem', key: 'set/big', member: 'm003' }, { type: 'sadd', key: 'set/big', member: 'm000' }]) // A's member; one C removed
  await C.patch('doc/profile', { name: 'Ada L.', active: undefined, extra: [1] })
  await A.patch('doc/tie', { winner: 'A2' })
  await B.put('set/ünïcödé', 'reset by B')
  await C.write([{ type: 'srem', key: 'set/members-of-every-kind', member: null }, { type: 'sadd', key: 'set/members-of-every-kind', member: 'c2' }])
  await A.sadd('set/emptied', 'again')
  await B.patch('mixed/doc-then-set', { f: 'newer' })
  await C.sadd('doc/reset', 'm')
  await A.del('plain/string')
  await A.put('plain/number', 43)
  await A.srem('set/readd', 'x') // A's own format-1 re-add of x ...
  await B.sadd('set/readd', 'x') // ... and a concurrent add of it: the add wins
  await C.put('set/rebuilt', ['whole'])
  await B.sadd('set/reset-to-value', 'new')
  await afterRoundOne()

  const links = [connect(A, B), connect(A, C), connect(B, C)]
  await converged(all)
  // round 2, linked: writes that saw round 1
  await C.srem('set/readd', 'x') // removes B's format-2 add: nothing is left of x
  await A.sadd('set/rebuilt', 'after') // a set again, after C's put
  await B.patch('doc/del-then-patch', { after: undefined }) // the only field of a format-1 document, deleted
  await C.srem('set/colors', 'green') // C's format-1 add of green
  await converged(all)
  return links
}

/** The chaos reference model's view of a peer's logs, as (key, value) text pairs. */
async function modelView (db: DB): Promise<Array<[string, string]>> {
  const ref = await reference(logsOf(db))
  return ref.view.map(([k, v]) => [k.toString('utf8'), v.toString('utf8')])
}

async function viewText (db: DB): Promise<Array<[string, string]>> {
  return (await dump(db)).map(([k, v]) => [k.toString('utf8'), v.toString('utf8')])
}

/**
 * Whether the reference model reads format-2 entries (document fields and set members under
 * their own bee keys): asked of a database that holds one of each.
 */
async function modelReadsFormat2 (): Promise<boolean> {
  const db = new MeshDB<string, any>(await tempDir('probe'), { valueEncoding: 'json' })
  try {
    await db.write([{ type: 'sadd', key: 'set', member: 'x' }, { type: 'patch', key: 'doc', fields: { f: 1 } }])
    const view = new Map(await modelView(db))
    return view.get('set') === '["x"]' && view.get('doc') === '{"f":1}'
  } finally {
    await db.close()
  }
}

describe('format-1 databases (test/fixtures/format1)', function () {
  this.timeout(120_000)
  let dbs: DB[] = []
  afterEach(async () => { await cleanup(...dbs); dbs = [] })
  let expected: Expected
  before(async () => { expected = JSON.parse(await readFile(join(FIXTURE, 'expected.json'), 'utf8')) as Expected })

  it('hold a view in the old layout, which the current code rebuilds from the logs: every key reads as the release read it', async () => {
    // the copies hold a view in the old layout: no layout version, the release's checkpoints
    const dirs = { A: await copyOf('A'), B: await copyOf('B'), C: await copyOf('C') }
    for (const n of NAMES) {
      const view = new ClassicLevel<Buffer, Buffer>(join(dirs[n], 'view'), { keyEncoding: 'buffer', valueEncoding: 'buffer' })
      await view.open()
      const meta = view.sublevel<Buffer, Buffer>('m', { keyEncoding: 'buffer', valueEncoding: 'buffer' })
      expect(await meta.get(Buffer.from('format')), `${n}: an old view has no layout version`).to.equal(undefined)
      expect((await meta.get(Buffer.from('key')))?.toString('hex')).to.equal(expected.key)
      expect(await view.sublevel('c', { keyEncoding: 'buffer', valueEncoding: 'buffer' }).keys().all(), `${n}: checkpoints`).to.have.lengthOf(3)
      await view.close()
    }

    const peers = await openPeers(dirs)
    const all = NAMES.map((n) => peers[n])
    dbs.push(...all)
    for (const n of NAMES) {
      const db = peers[n]
      expect(db.key.toString('hex'), n).to.equal(expected.key)
      expect(db.writerKey.toString('hex'), n).to.equal(expected.writers[n].writerKey)
      expect(db.writable, n).to.equal(true)
      for (const m of NAMES) {
        const w = db.writers().find((x) => x.key.toString('hex') === expected.writers[m].writerKey)
        expect([w?.length, w?.folded], `${n} holds and folded ${m}'s log`).to.deep.equal([expected.writers[m].length, expected.writers[m].length])
      }
      // the view was rebuilt: it now has the current layout, and the logs were folded again
      expect((await db.engine.view.getMeta('format'))?.[0], `${n}: the view's layout`).to.equal(VIEW_FORMAT)
      expect(db.stats().diffEntries, `${n}: the logs were refolded`).to.be.above(0)
      for (const e of expected.keys) {
        expect(await db.get(e.key), `${n}: get ${e.key}`).to.deep.equal(e.value)
        expect(await db.typeOf(e.key), `${n}: typeOf ${e.key}`).to.equal(e.typeOf)
        expect((await db.get(e.key, { valueEncoding: 'utf8' })), `${n}: the bytes of ${e.key}`).to.equal(e.raw)
      }
      for (const k of expected.absent) {
        expect(await db.get(k), `${n}: ${k} is absent`).to.equal(undefined)
        expect(await db.typeOf(k), `${n}: ${k} is absent`).to.equal(undefined)
      }
      expect((await viewText(db)).map(([k]) => k), `${n}: the keys of the view`).to.deep.equal(expected.keys.map((e) => e.key))
    }
    expect(new Set(all.map((p) => p.hash().toString('hex'))).size, 'one view digest').to.equal(1)

    // reopened, the rebuilt view is kept: nothing is folded again
    await peers.A.close()
    const again = new MeshDB<string, any>(dirs.A, { valueEncoding: 'json' })
    dbs.push(again)
    await again.open()
    expect(again.stats().diffEntries, 'nothing refolded').to.equal(0)
    expect(await viewText(again)).to.deep.equal(await viewText(peers.B))
  })

  it('go on in format 2 on the same keys: the peers, and a fresh peer that replicates from them, converge to the expected values', async () => {
    const peers = await openPeers()
    const all = NAMES.map((n) => peers[n])
    dbs.push(...all)
    const { A, B, C } = peers
    const links = await formatTwoWrites(peers, async () => {
      // what they appended is the newest format: part entries and whole values, each with its
      // clock (version 3), no STATE
      for (const n of NAMES) {
        const own = peers[n].engine.own
        const types = new Set<number>()
        for (let seq = expected.writers[n].length; seq < own.core.length; seq++) {
          const node = await own.bee.getBySeq(seq)
          if (node === null) throw new Error(`${n}'s entry ${seq} is missing`)
          const e = decodeEntry(node.value)
          expect(node.value[0], `${n}'s entry ${seq}: its format version`).to.equal(3)
          expect(e.clock?.reading, `${n}'s entry ${seq}: its clock`).to.be.a('number')
          types.add(e.type)
        }
        expect(types.has(STATE), `${n} wrote no STATE entry`).to.equal(false)
        expect(types.has(FIELD) || types.has(MEMBER), `${n} wrote part entries`).to.equal(true)
      }
      // each peer reads its own writes at once
      expect(await A.get('set/colors'), 'on A at once').to.deep.equal(['green'])
      expect(await B.get('set/readd'), 'on B at once').to.deep.equal(['x', 'y'])
      expect(await A.get('set/readd'), 'on A at once').to.deep.equal(['y'])
    })

    const changed: Record<string, [string | undefined, unknown]> = {
      'set/colors': ['set', []],
      'set/big': ['set', null],
      'doc/profile': ['doc', null],
      'doc/tie': ['doc', { onlyA: 1, onlyB: 2, winner: 'A2' }],
      'set/ünïcödé': ['value', 'reset by B'],
      'set/members-of-every-kind': ['set', ['7', 'c2', [1, 2], true, { a: [1], k: 'v' }]],
      'set/emptied': ['set', ['again']],
      'mixed/doc-then-set': ['doc', { f: 'newer', more: "fields, older than B's tags", title: 'a document, for A' }],
      'doc/reset': ['set', ['m']],
      'plain/string': [undefined, undefined],
      'plain/number': ['value', 43],
      'set/readd': ['set', ['y']],
      'set/rebuilt': ['set', ['after']],
      'set/reset-to-value': ['set', ['new']],
      'doc/del-then-patch': ['doc', {}]
    }
    const before = new Map(expected.keys.map((e) => [e.key, e]))
    const profile: Record<string, unknown> = { ...before.get('doc/profile')?.value as Record<string, unknown>, name: 'Ada L.', extra: [1] }
    delete profile.active
    const big = (before.get('set/big')?.value as unknown[]).filter((m) => m !== 'm003')
    big.unshift('m000')
    for (const p of all) {
      for (const [k, [type, value]] of Object.entries(changed)) {
        const want = k === 'doc/profile' ? profile : k === 'set/big' ? big : value
        expect(await p.get(k), k).to.deep.equal(want)
        expect(await p.typeOf(k), k).to.equal(type)
      }
      // every key the format-2 writes left alone reads as it did
      for (const e of expected.keys) {
        if (e.key in changed) continue
        expect(await p.get(e.key), e.key).to.deep.equal(e.value)
        expect(await p.typeOf(e.key), e.key).to.equal(e.typeOf)
      }
      expect(await p.smembers('set/big', { lt: 'm005' })).to.deep.equal(['m000', 'm004'])
      expect(await p.sismember('set/big', 'm003')).to.equal(false)
    }

    // a fresh peer, by the database key, that replicates from them only
    const D = new MeshDB<string, any>(await tempDir('format1-D'), { key: Buffer.from(expected.key, 'hex'), valueEncoding: 'json' })
    dbs.push(D)
    await D.open()
    links.push(connect(D, A), connect(D, B), connect(D, C))
    await synced([D], all)
    await until([D], async () => sameDump(await dump(D), await dump(A)) && D.hash().equals(A.hash()), () => 'D differs from A')
    expect(D.writable).to.equal(false)
    for (const [k, [type]] of Object.entries(changed)) expect(await D.typeOf(k), k).to.equal(type)
    expect(await viewText(D)).to.deep.equal(await viewText(A))
    for (const cut of links) cut()
  })

  it('agree with the chaos reference model (scripts/chaos/model.ts) on the format-1 logs, and on the format-2 writes after them once the model reads format 2', async () => {
    const peers = await openPeers()
    const all = NAMES.map((n) => peers[n])
    dbs.push(...all)
    for (const p of all) expect(await modelView(p), 'the reference model, format 1').to.deep.equal(await viewText(p))
    const links = await formatTwoWrites(peers)
    for (const cut of links) cut()
    // the model's format-2 support is asked of the model itself, on a database that holds both part kinds
    if (await modelReadsFormat2()) {
      for (const p of all) expect(await modelView(p), 'the reference model, after format-2 writes').to.deep.equal(await viewText(p))
    }
  })
})
