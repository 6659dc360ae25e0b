/**
 * Membership (DESIGN.md "Membership", invariant 7): removal and its cut, transitive additions,
 * logs that no member added, the ban on re-adding a removed key, and concurrent mutual removals
 * settled by stamp order. Wall clocks are controlled wherever the order of stamps matters, so
 * every stamp is (wall, 0) and known in advance.
 */
import { expect } from 'chai'
import { MeshDB } from '../index.js'
import { ADD_WRITER, PUT, REMOVE_WRITER, dataKey, encodeEntry, membershipKey } from '../lib/entry.js'
import type { WriterInfo } from '../lib/types.js'
import { cleanup, connect, createPeers, dump, sameDump, tempDir, until, rejects, ownLength } from './helpers/peers.js'

type DB = MeshDB<string, string>

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

function info (db: DB, writer: Uint8Array): WriterInfo | undefined {
  return db.writers().find((w) => w.key.equals(writer))
}

/** Connects every pair; returns a function cutting all the links. */
function mesh (peers: DB[]): () => void {
  const cuts: Array<() => void> = []
  for (let i = 0; i < peers.length; i++) for (let j = i + 1; j < peers.length; j++) cuts.push(connect(peers[i], peers[j]))
  return () => { for (const c of cuts) c() }
}

async function sameViews (peers: DB[]): Promise<boolean> {
  const d = await Promise.all(peers.map(dump))
  return d.every((x) => sameDump(x, d[0])) && peers.every((p) => p.hash().equals(peers[0].hash()))
}

/** Every peer holds `writer`'s whole log (as long as `owner`'s copy) and has folded what it may. */
async function hasWholeLog (peers: DB[], owner: DB): Promise<boolean> {
  const len = ownLength(owner)
  for (const p of peers) {
    const w = info(p, owner.writerKey)
    if (w === undefined || w.length !== len || p.engine.writers.get(hex(owner.writerKey))?.core.contiguousLength !== len) return false
  }
  return true
}

async function describe3 (peers: DB[]): Promise<string> {
  return JSON.stringify(await Promise.all(peers.map(async (p) => ({
    view: (await dump(p)).map(([k, v]) => [k.toString(), v.toString()]),
    writers: p.writers().map((w) => ({ ...w, key: w.key.toString('hex').slice(0, 8) }))
  }))))
}

describe('membership', function () {
  this.timeout(60_000)
  let dbs: DB[] = []
  afterEach(async () => { await cleanup(...dbs); dbs = [] })

  it('a removed writer\'s writes past its cut are ignored everywhere; its keys fall back to the right earlier winner', async () => {
    const clocks = [1000, 1000, 1000]
    const peers = dbs = await createPeers(3, (i) => ({ wallClock: () => clocks[i] })) as DB[]
    const [a, b, c] = peers

    // Before the removal: a and b write k (b wins), c wins `won` and writes `early`.
    clocks[0] = 2000
    await a.put('k', 'a-k')
    await a.put('won', 'a-won')
    clocks[2] = 2100
    await c.put('early', 'c-early')
    await c.put('won', 'c-won')
    clocks[1] = 2200
    await b.put('k', 'b-k')
    let cut = mesh(peers)
    await until(peers, async () => await sameViews(peers) && await hasWholeLog(peers, c), async () => await describe3(peers))
    cut()
    const before = ownLength(c)
    expect(await a.get('k')).to.equal('b-k')
    expect(await a.get('won')).to.equal('c-won')

    // c writes while connected to b only: b folds these writes, a never sees them before removing c.
    clocks[2] = 2500
    await c.put('k', 'c-k-late')
    await c.put('won', 'c-won-late')
    await c.put('fresh', 'c-fresh')
    let link = connect(b, c)
    await until([b], async () => (await b.get('fresh')) === 'c-fresh' && (await b.get('k')) === 'c-k-late')
    link()

    const removals: Array<[string, number]> = []
    b.on('writer-remove', (k: Buffer, len: number) => { removals.push([k.toString('hex'), len]) })
    clocks[0] = 3000
    await a.removeWriter(c.writerKey)
    expect(info(a, c.writerKey)).to.include({ removed: true, cut: before })
    expect(await a.get('k')).to.equal('b-k')

    // Concurrently with the removal (disconnected, a later stamp too): c keeps writing.
    clocks[2] = 4000
    expect(c.writable).to.equal(true)
    await c.put('k', 'c-k-after')
    await c.put('fresh2', 'c-fresh2')
    expect(await c.get('k')).to.equal('c-k-after')

    cut = mesh(peers)
    const settled = async (): Promise<boolean> => {
      if (!await hasWholeLog(peers, c) || !await sameViews(peers)) return false
      for (const p of peers) {
        const w = info(p, c.writerKey)
        if (w === undefined || !w.removed || w.cut !== before || w.folded !== before) return false
      }
      return true
    }
    await until(peers, settled, async () => await describe3(peers))
    cut()

    for (const p of peers) {
      expect(await p.get('k'), 'k falls back to b').to.equal('b-k')
      expect(await p.get('won'), 'won falls back to c\'s own write at its cut').to.equal('c-won')
      expect(await p.get('early'), 'writes before the cut still count').to.equal('c-early')
      expect(await p.get('fresh')).to.equal(undefined)
      expect(await p.get('fresh2')).to.equal(undefined)
      const w = info(p, c.writerKey) as WriterInfo
      expect(w).to.include({ removed: true, cut: before, member: true })
      expect(w.length).to.equal(ownLength(c))
      expect(info(p, a.writerKey)).to.include({ removed: false })
      expect(info(p, b.writerKey)).to.include({ removed: false })
      const v = await p.versions('k')
      expect(v.map((x) => hex(x.writer)), 'c holds no slot for k beyond its cut').to.not.include(hex(c.writerKey))
    }
    expect(removals).to.deep.equal([[hex(c.writerKey), before]])
    expect(c.writable).to.equal(false)
    expect((await rejects(c.put('k', 'nope'))).code).to.equal('MESHBEE_NOT_WRITABLE')

    // A removed writer that ignores the rules and appends to its log anyway changes nothing.
    const hash = a.hash()
    const view = await dump(a)
    await c.engine.own.bee.put(dataKey(Buffer.from('k')), encodeEntry({ type: PUT, stamp: { wall: 9000, counter: 0 }, value: Buffer.from('forged') }))
    await c.engine.own.bee.put(membershipKey(ADD_WRITER, Buffer.alloc(32, 9)), encodeEntry({ type: ADD_WRITER, stamp: { wall: 9001, counter: 0 }, writer: Buffer.alloc(32, 9) }))
    cut = mesh(peers)
    await until(peers, async () => await hasWholeLog(peers, c))
    cut()
    for (const p of peers) {
      await p.update()
      expect(sameDump(await dump(p), view)).to.equal(true)
      expect(p.hash().equals(hash)).to.equal(true)
      expect(p.writers().filter((w) => w.member).map((w) => hex(w.key))).to.not.include(hex(Buffer.alloc(32, 9)))
    }
  })

  it('a writer added by a writer the creator added is found and folded by a peer that knows only the database key', async () => {
    const [a, b] = dbs = await createPeers(2) as DB[]
    const c = new MeshDB<string, string>(await tempDir('c'), { key: a.key })
    await c.open()
    dbs.push(c)
    await b.addWriter(c.writerKey) // b, not the creator, adds c
    const bc = connect(b, c)
    await until([c], async () => { await c.update(); return c.writable })
    await c.put('from-c', 'hello')
    await b.put('from-b', 'hi')
    await a.put('from-a', 'hey')

    // d knows only the key and talks only to c; a's log reaches it through c.
    const d = new MeshDB<string, string>(await tempDir('d'), { key: a.key })
    await d.open()
    dbs.push(d)
    const ca = connect(c, a)
    const cd = connect(c, d)
    const want = [['from-a', 'hey'], ['from-b', 'hi'], ['from-c', 'hello']]
    await until([a, c, d], async () => {
      for (const p of [a, c, d]) if (JSON.stringify(await p.iterator().all()) !== JSON.stringify(want)) return false
      return true
    }, async () => await describe3([a, b, c, d]))
    bc(); ca(); cd()
    expect(d.writable).to.equal(false)
    const members = d.writers().filter((w) => w.member).map((w) => hex(w.key)).sort()
    expect(members).to.deep.equal([a, b, c].map((p) => hex(p.writerKey)).sort())
    expect(d.hash().equals(a.hash())).to.equal(true)
    expect(info(d, c.writerKey)).to.include({ removed: false, folded: ownLength(c) })
  })

  it('a log that no member added changes nothing, even when its entries are folded beside the members\'', async () => {
    const clocks = [1000, 1000]
    const [a, b] = dbs = await createPeers(2, (i) => ({ wallClock: () => clocks[i] })) as DB[]
    clocks[0] = clocks[1] = 2000
    await a.put('k', 'a')
    await b.put('j', 'b')
    const x = new MeshDB<string, string>(await tempDir('x'), { key: a.key, wallClock: () => 50_000 })
    await x.open()
    dbs.push(x)
    expect(x.writable).to.equal(false)
    for (const write of [x.put('k', 'x'), x.del('k'), x.patch('k', { f: 1 }), x.sadd('s', 1), x.addWriter(x.writerKey), x.removeWriter(a.writerKey)]) {
      expect((await rejects(write)).code).to.equal('MESHBEE_NOT_WRITABLE')
    }
    // x writes to its log anyway: data with late stamps, a self-add, an add of another stranger,
    // a removal of b with cut 0, all stamped before everything the members wrote.
    const stranger = Buffer.alloc(32, 7)
    const bee = x.engine.own.bee
    await bee.put(dataKey(Buffer.from('k')), encodeEntry({ type: PUT, stamp: { wall: 50_000, counter: 0 }, value: Buffer.from('x') }))
    await bee.put(dataKey(Buffer.from('only-x')), encodeEntry({ type: PUT, stamp: { wall: 50_000, counter: 1 }, value: Buffer.from('x') }))
    await bee.put(membershipKey(ADD_WRITER, x.writerKey), encodeEntry({ type: ADD_WRITER, stamp: { wall: 1, counter: 0 }, writer: x.writerKey }))
    await bee.put(membershipKey(ADD_WRITER, stranger), encodeEntry({ type: ADD_WRITER, stamp: { wall: 1, counter: 1 }, writer: stranger }))
    await bee.put(membershipKey(REMOVE_WRITER, b.writerKey), encodeEntry({ type: REMOVE_WRITER, stamp: { wall: 1, counter: 2 }, writer: b.writerKey, length: 0 }))

    let cut = connect(a, b)
    await until([a, b], async () => await sameViews([a, b]))
    cut()
    const view = await dump(a)
    const hash = a.hash()
    expect(view.map(([k]) => k.toString())).to.deep.equal(['j', 'k'])

    // Nothing points at x's log, so the members would never open it. Make them open it as if a
    // log had been announced to them, so its entries really reach their folds.
    for (const p of [a, b]) await (p.engine as unknown as { openWriter: (core: unknown) => Promise<unknown> }).openWriter(p.engine.store.get({ key: x.writerKey }))
    const peers = [a, b, x]
    cut = mesh(peers)
    await until(peers, async () => await hasWholeLog(peers, x) && await sameViews(peers), async () => await describe3(peers))
    cut()
    for (const p of peers) {
      await p.update()
      expect(sameDump(await dump(p), view), 'view unchanged').to.equal(true)
      expect(p.hash().equals(hash), 'hash unchanged').to.equal(true)
      expect(info(p, x.writerKey)).to.include({ member: false, cut: 0, folded: 0, removed: false })
      expect(info(p, b.writerKey)).to.include({ member: true, removed: false })
      // an add in a non-member log neither makes its target a member nor gets it opened
      expect(p.writers().map((w) => hex(w.key))).to.not.include(hex(stranger))
    }
    expect(b.writable).to.equal(true)
    expect(x.writable).to.equal(false)
    expect((await rejects(x.put('k', 'again'))).code).to.equal('MESHBEE_NOT_WRITABLE')
  })

  it('a join request is relayed: a newcomer that meets only a seeder reaches the members behind it', async () => {
    const a = new MeshDB<string, string>(await tempDir('a'))
    await a.open()
    const seeder = new MeshDB<string, string>(await tempDir('s'), { key: a.key })
    await seeder.open()
    const newcomer = new MeshDB<string, string>(await tempDir('n'), { key: a.key })
    await newcomer.open()
    dbs = [a, seeder, newcomer]
    const requests: string[] = []
    a.on('join-request', (r: { key: Buffer }) => { requests.push(hex(r.key)) })
    const seen: string[] = []
    seeder.on('join-request', (r: { key: Buffer }) => { seen.push(hex(r.key)) })
    const links = [connect(a, seeder), connect(seeder, newcomer)]
    newcomer.requestJoin()
    await until([a], () => requests.length > 0, () => 'the request never reached a')
    expect(requests[0]).to.equal(hex(newcomer.writerKey))
    expect(seen, 'a seeder that is not a member relays, it does not raise the event').to.deep.equal([])
    await a.addWriter(requests[0] as string)
    await until([newcomer], async () => {
      await newcomer.update()
      return newcomer.writable
    }, () => 'the newcomer never became writable')
    for (const cut of links) cut()
  })

  it('a removed key cannot be added again (MESHBEE_WRITER_REMOVED); writer-add and writer-remove fire', async () => {
    const [a, b] = dbs = await createPeers(2) as DB[]
    const c = new MeshDB<string, string>(await tempDir('c'), { key: a.key })
    await c.open()
    dbs.push(c)
    const events: Record<string, Array<[string, string, number?]>> = { a: [], b: [] }
    for (const [name, p] of [['a', a], ['b', b]] as const) {
      p.on('writer-add', (k: Buffer) => { events[name].push(['add', hex(k)]) })
      p.on('writer-remove', (k: Buffer, len: number) => { events[name].push(['remove', hex(k), len]) })
    }
    const cid = hex(c.writerKey)
    const links = [connect(a, b), connect(a, c)]
    await a.addWriter(c.writerKey)
    expect(events.a).to.deep.equal([['add', cid]])
    await until([b, c], async () => {
      await b.update()
      await c.update()
      return events.b.length > 0 && c.writable
    })
    expect(events.b).to.deep.equal([['add', cid]])
    await c.put('c', '1')
    await until([a, b], async () => (await a.get('c')) === '1' && (await b.get('c')) === '1')

    await a.removeWriter(c.writerKey)
    const len = (info(a, c.writerKey) as WriterInfo).cut
    expect(len).to.equal(ownLength(c))
    expect(events.a).to.deep.equal([['add', cid], ['remove', cid, len]])
    await until([b, c], async () => {
      await b.update()
      await c.update()
      return events.b.length > 1 && !c.writable
    })
    for (const cut of links) cut()
    expect(events.b).to.deep.equal([['add', cid], ['remove', cid, len]])

    const lengthBefore = ownLength(a)
    for (const p of [a, b]) {
      expect((await rejects(p.addWriter(c.writerKey))).code).to.equal('MESHBEE_WRITER_REMOVED')
      expect((await rejects(p.addWriter(cid))).code).to.equal('MESHBEE_WRITER_REMOVED')
      expect(info(p, c.writerKey)).to.include({ removed: true, cut: len })
    }
    expect(ownLength(a), 'a refused add appends nothing').to.equal(lengthBefore)
    expect(await a.get('c'), 'writes before the cut count').to.equal('1')
    expect((await rejects(c.put('c', '2'))).code).to.equal('MESHBEE_NOT_WRITABLE')
    // removing it again is a no-op, not a second event
    await a.removeWriter(c.writerKey)
    expect(events.a).to.have.length(2)
  })

  it('a member whose clock runs behind its own add beyond maxDrift is refused membership changes (MESHBEE_CLOCK_BEHIND) until it passes it', async () => {
    // a's clock runs 10 minutes ahead of b's; maxDrift is one minute
    const clocks = [1_000_000 + 600_000, 1_000_000]
    const [a, b] = dbs = await createPeers(2, (i) => ({ wallClock: () => clocks[i], maxDrift: 60_000 })) as DB[]
    const c = new MeshDB<string, string>(await tempDir('c'), { key: a.key })
    await c.open()
    dbs.push(c)
    expect(b.writable).to.equal(true)
    const length = ownLength(b)
    const err = await rejects(b.addWriter(c.writerKey))
    expect(err.code).to.equal('MESHBEE_CLOCK_BEHIND')
    expect((await rejects(b.removeWriter(a.writerKey))).code).to.equal('MESHBEE_CLOCK_BEHIND')
    expect(ownLength(b), 'a refused change appends nothing').to.equal(length)
    await b.put('x', 'data still counts') // data entries count by log position, not by stamp
    expect(await b.get('x')).to.equal('data still counts')

    clocks[1] += 600_001 // b's clock passes the stamp of its add
    await b.addWriter(c.writerKey)
    const link = connect(a, b)
    await until([a], async () => {
      await a.update()
      return info(a, c.writerKey)?.member === true && (await a.get('x')) === 'data still counts'
    }, () => `a sees ${JSON.stringify(a.writers())}`)
    link()
  })

  describe('concurrent mutual removals settle by stamp order', () => {
    for (const [name, wa, wb] of [['a first', 5000, 5001], ['b first', 5001, 5000], ['same wall: smaller key first', 5000, 5000]] as const) {
      it(`${name}: every peer agrees on who is removed, and on the view`, async () => {
        const clocks = [1000, 1000, 1000]
        const peers = dbs = await createPeers(3, (i) => ({ wallClock: () => clocks[i] })) as DB[]
        const [a, b, c] = peers
        clocks[0] = clocks[1] = clocks[2] = 2000
        await a.put('a', 'a0')
        await b.put('b', 'b0')
        await c.put('c', 'c0')
        let cut = mesh(peers)
        await until(peers, async () => await sameViews(peers) && await hasWholeLog(peers, a) && await hasWholeLog(peers, b), async () => await describe3(peers))
        cut()
        const lenA = ownLength(a)
        const lenB = ownLength(b)

        // Disconnected: a removes b while b removes a; each then writes once more.
        clocks[0] = wa
        clocks[1] = wb
        await a.removeWriter(b.writerKey)
        await b.removeWriter(a.writerKey)
        expect(a.writable && b.writable).to.equal(true)
        await a.put('a', 'a1')
        await b.put('b', 'b1')

        // Which removal replays first: the smaller (stamp, author key).
        const aFirst = wa !== wb ? wa < wb : Buffer.compare(a.writerKey, b.writerKey) < 0
        const [winner, loser] = aFirst ? [a, b] : [b, a]
        const loserCut = aFirst ? lenB : lenA

        cut = mesh(peers)
        await until(peers, async () => {
          if (!await hasWholeLog(peers, a) || !await hasWholeLog(peers, b) || !await sameViews(peers)) return false
          return peers.every((p) => info(p, loser.writerKey)?.removed === true && info(p, loser.writerKey)?.folded === loserCut)
        }, async () => await describe3(peers))
        cut()

        for (const p of peers) {
          expect(info(p, loser.writerKey)).to.include({ removed: true, cut: loserCut })
          expect(info(p, winner.writerKey)).to.include({ removed: false })
          expect(info(p, c.writerKey)).to.include({ removed: false })
          expect(await p.get('a')).to.equal(aFirst ? 'a1' : 'a0')
          expect(await p.get('b')).to.equal(aFirst ? 'b0' : 'b1')
          expect(await p.get('c')).to.equal('c0')
        }
        expect(winner.writable).to.equal(true)
        expect(loser.writable).to.equal(false)
        expect(c.writable).to.equal(true)
      })
    }
  })
})
