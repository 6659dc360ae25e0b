/**
 * Sync over Hyperswarm, peers in separate processes (test/fixtures/sync-peer.ts), on a local DHT
 * testnet created here: nothing leaves the machine. The parent drives the peers over IPC and reads
 * their views through 'dump' (hex key/value pairs and db.hash()). Peers never call db.update():
 * everything they see arrives through join() alone.
 *
 * Every wait is on a condition, re-checked on each event a child reports (see
 * test/helpers/sync-procs.ts). Each test has fresh temporary directories and its own testnet;
 * afterEach kills whatever child is still running.
 */
import { expect } from 'chai'
import createTestnet from 'hyperdht/testnet.js'
import Hyperswarm from 'hyperswarm'
import { MeshDB } from '../index.js'
import { cleanup, connect, tempDir, until } from './helpers/peers.js'
import { PeerProcess, Views, decode, killAll, puts, sameView, untilProcs } from './helpers/sync-procs.js'
import type { Dump, WriteOp } from './helpers/sync-protocol.js'

type Testnet = Awaited<ReturnType<typeof createTestnet>>

describe('sync over Hyperswarm, one process per peer', function () {
  this.timeout(40_000)
  let testnet: Testnet

  beforeEach(async () => {
    testnet = await createTestnet(3)
  })

  afterEach(async () => {
    await killAll()
    await testnet.destroy()
    await cleanup()
  })

  const spawn = (name: string): PeerProcess => new PeerProcess(name, testnet.bootstrap)

  /**
   * Joins one peer after the other. Each join resolves once its announce and first lookup are
   * flushed, so every later peer finds every earlier one. Peers that join at the same instant can
   * miss each other (both lookups before both announces) until Hyperswarm's next refresh, minutes
   * later: logs still flow through common peers, but a join request reaches only direct peers.
   */
  async function joinInTurn (peers: PeerProcess[], own = false): Promise<void> {
    for (const p of peers) await p.join(own)
  }

  async function allWritable (peers: PeerProcess[]): Promise<void> {
    const dumps: Dump[] = []
    await untilProcs(peers, async () => {
      dumps.splice(0, dumps.length, ...await Promise.all(peers.map(async (p) => await p.dump())))
      return dumps.every((d) => d.writable)
    }, () => 'not all writable: ' + dumps.map((d, i) => `${peers[i].name}=${String(d.writable)}`).join(' '))
  }

  /**
   * A creator and the others opened by its key, all joined; the others ask to join and the creator
   * adds each one on 'join-request'. Resolves once every peer is writable. With `askFirst` they ask
   * before they join (no peer yet: the request goes out when a connection's channel opens),
   * otherwise once joined (to the peers already connected, and to any met later).
   */
  async function mesh (names: string[], askFirst = false): Promise<PeerProcess[]> {
    const peers = names.map(spawn)
    const [first, ...rest] = peers
    await first.open(await tempDir(first.name))
    await first.autoAdd()
    await Promise.all(rest.map(async (p) => await p.open(await tempDir(p.name), first.key)))
    if (askFirst) for (const p of rest) expect(await p.requestJoin(), 'peers asked before joining').to.equal(0)
    await joinInTurn(peers)
    if (!askFirst) await Promise.all(rest.map(async (p) => await p.requestJoin()))
    await allWritable(peers)
    return peers
  }

  async function converge (peers: PeerProcess[], timeout = 20_000): Promise<Dump[]> {
    const views = new Views(peers)
    await untilProcs(peers, async () => await views.agree(), () => 'views differ: ' + views.describe(), timeout)
    return views.last
  }

  /** Closes a peer and expects a clean end: no connections, swarm (and its DHT node) destroyed, exit 0 by itself. */
  async function closeClean (p: PeerProcess): Promise<void> {
    const { report, code } = await p.close()
    expect(report.peers, `${p.name} peers after close`).to.equal(0)
    if (report.joined) expect(report.dhtDestroyed, `${p.name} swarm destroyed`).to.equal(true)
    expect(code, `${p.name} exit code; stderr:\n${p.stderr}`).to.equal(0)
  }

  it('three processes write concurrently and converge to byte-identical views', async () => {
    const peers = await mesh(['a', 'b', 'c'], true)
    const ops = (name: string): WriteOp[] => {
      const out: WriteOp[] = []
      for (let i = 0; i < 20; i++) {
        out.push({ type: 'put', key: `own/${name}/${String(i).padStart(2, '0')}`, value: `${name}${i}` })
        if (i < 10) out.push({ type: 'put', key: `shared/${i}`, value: `${name}${i}` })
        if (i % 5 === 0) out.push({ type: 'patch', key: 'doc', fields: { [name]: i, last: name } })
        if (i % 4 === 0) out.push({ type: 'sadd', key: 'set', member: `${name}${i}` })
      }
      return out
    }
    await Promise.all(peers.map(async (p) => await p.write(ops(p.name))))
    const dumps = await converge(peers)
    for (const d of dumps) expect(sameView(d, dumps[0])).to.equal(true)

    const view = decode(dumps[0])
    expect(view.size).to.equal(3 * 20 + 10 + 2)
    for (const name of ['a', 'b', 'c']) {
      for (let i = 0; i < 20; i++) expect(view.get(`own/${name}/${String(i).padStart(2, '0')}`)).to.equal(`${name}${i}`)
    }
    for (let i = 0; i < 10; i++) expect(view.get(`shared/${i}`)).to.be.oneOf([`a${i}`, `b${i}`, `c${i}`])
    const doc = JSON.parse(view.get('doc') as string) as Record<string, unknown>
    expect(doc).to.include({ a: 15, b: 15, c: 15 })
    expect(doc.last).to.be.oneOf(['a', 'b', 'c'])
    const set = JSON.parse(view.get('set') as string) as string[]
    expect(set).to.have.members(['a', 'b', 'c'].flatMap((n) => [0, 4, 8, 12, 16].map((i) => `${n}${i}`)))
  })

  it('live: a write on A is readable on B and C with nothing but join()', async () => {
    const [a, b, c] = await mesh(['a', 'b', 'c'])
    for (let round = 0; round < 3; round++) {
      const key = `live/${round}`
      await a.write([{ type: 'put', key, value: `v${round}` }])
      await untilProcs([b, c], async () => (await b.get(key)) === `v${round}` && (await c.get(key)) === `v${round}`,
        () => `${key} not visible on b and c`)
    }
    // and the other way round, from a peer that became a member by asking
    await c.write([{ type: 'put', key: 'live/c', value: 'from c' }])
    await untilProcs([a, b], async () => (await a.get('live/c')) === 'from c' && (await b.get('live/c')) === 'from c',
      () => 'live/c not visible on a and b')
    // a steady stream, each write visible on b before the next: every single append is folded
    // (more than 64 of them, past the engine's pruning of the signed lengths it has seen)
    for (let i = 0; i < 100; i++) {
      const key = `stream/${String(i).padStart(3, '0')}`
      await a.write([{ type: 'put', key, value: String(i) }])
      await untilProcs([b], async () => (await b.get(key)) === String(i), () => `${key} never visible on b`, 10_000)
    }
  })

  it('A and C, never online together, converge through a seeder S', async () => {
    const a = spawn('a')
    const c = spawn('c')
    const s = spawn('s')
    const dirA = await tempDir('a')
    await a.open(dirA)
    await Promise.all([c.open(await tempDir('c'), a.key), s.open(await tempDir('s'), a.key)])
    await a.addWriter(c.writerKey) // c is offline: it learns it is a member from the logs later

    await a.write(puts('from-a/', 10))
    await joinInTurn([a, s])
    // s holds all of a's log (the data, and the add-writer entry that leads it to c's log)
    await untilProcs([a, s], async () => {
      const [da, ds] = await Promise.all([a.dump(), s.dump()])
      return sameView(da, ds) && ds.writers.some((w) => w.key === c.writerKey)
    }, () => 's never caught up with a')
    await closeClean(a)

    await c.join()
    await untilProcs([c], async () => {
      const d = await c.dump()
      return d.writable && decode(d).get('from-a/009') === 'from-a/9'
    }, () => 'c never saw a\'s writes through s')
    await c.write(puts('from-c/', 10))
    await untilProcs([c, s], async () => sameView(await c.dump(), await s.dump()), () => 's never caught up with c')
    await closeClean(c)

    // a comes back (a new process on the same directory) while c is gone
    const a2 = spawn('a2')
    const reopened = await a2.open(dirA)
    expect(reopened.stats.diffEntries, 'refolded on reopen').to.equal(0)
    await a2.join()
    const [da] = await converge([a2, s])
    const view = decode(da)
    expect(view.size).to.equal(20)
    expect(view.get('from-c/009')).to.equal('from-c/9')
    expect(view.get('from-a/000')).to.equal('from-a/0')
    // it read only c's 10 new keys: nothing it had was folded again
    expect(da.stats.diffEntries).to.equal(10)
  })

  it('a peer added while offline and a peer that only knows the key catch up', async () => {
    const [a, b] = await mesh(['a', 'b'])
    await a.write(puts('early/', 5))
    const d = spawn('d') // will be added while offline
    const e = spawn('e') // only knows the key, never a member
    await Promise.all([d.open(await tempDir('d'), a.key), e.open(await tempDir('e'), a.key)])
    await a.addWriter(d.writerKey)
    await Promise.all([a.write(puts('late/a/', 5)), b.write(puts('late/b/', 5))])
    await converge([a, b])

    await joinInTurn([d, e])
    const dumps = await converge([a, b, d, e])
    expect(dumps[2].writable, 'd is a member').to.equal(true)
    expect(dumps[3].writable, 'e is not a member').to.equal(false)
    expect(decode(dumps[3]).size).to.equal(15)

    await d.write([{ type: 'put', key: 'from-d', value: 'hello' }])
    const after = await converge([a, b, d, e])
    expect(decode(after[3]).get('from-d')).to.equal('hello')
  })

  it('a partition (leave) heals on join again with no write lost', async () => {
    const [a, b, c] = await mesh(['a', 'b', 'c'])
    await a.write(puts('base/', 5))
    await converge([a, b, c])

    expect(await b.leave()).to.equal(0)
    const conflict = (name: string): WriteOp[] => [
      { type: 'put', key: 'conflict', value: name },
      { type: 'patch', key: 'doc', fields: { [name]: true } },
      { type: 'sadd', key: 'set', member: name }
    ]
    await Promise.all([
      a.write([...puts('part/a/', 10), ...conflict('a')]),
      b.write([...puts('part/b/', 10), ...conflict('b')]),
      c.write([...puts('part/c/', 10), ...conflict('c')])
    ])
    // the two sides converge apart
    const [da, dc] = await converge([a, c])
    expect(decode(da).has('part/b/000')).to.equal(false)
    expect(decode(dc).get('part/a/009')).to.equal('part/a/9')
    const db = decode(await b.dump())
    expect(db.has('part/a/000') || db.has('part/c/000')).to.equal(false)

    await b.join()
    const dumps = await converge([a, b, c])
    const view = decode(dumps[0])
    expect(view.size).to.equal(5 + 30 + 3)
    for (const n of ['a', 'b', 'c']) for (let i = 0; i < 10; i++) expect(view.get(`part/${n}/${String(i).padStart(3, '0')}`)).to.equal(`part/${n}/${i}`)
    expect(view.get('conflict')).to.be.oneOf(['a', 'b', 'c'])
    expect(JSON.parse(view.get('doc') as string)).to.deep.equal({ a: true, b: true, c: true })
    expect(JSON.parse(view.get('set') as string)).to.deep.equal(['a', 'b', 'c'])
  })

  it('destroyed connections heal by themselves with no write lost', async () => {
    const peers = ['a', 'b', 'c'].map(spawn)
    const [a, b, c] = peers
    await a.open(await tempDir('a'))
    await a.autoAdd()
    await Promise.all([b.open(await tempDir('b'), a.key), c.open(await tempDir('c'), a.key)])
    await a.addWriter(b.writerKey)
    await a.addWriter(c.writerKey)
    await joinInTurn(peers, true)
    await allWritable(peers)

    // cut b off while all three write; the swarms reconnect by themselves
    const writes = Promise.all([a.write(puts('x/a/', 30)), b.write(puts('x/b/', 30)), c.write(puts('x/c/', 30))])
    expect(await b.drop()).to.be.greaterThan(0)
    await writes
    const dumps = await converge(peers)
    expect(decode(dumps[0]).size).to.equal(90)
  })

  it('a restarted peer resumes from its checkpoints without folding again', async () => {
    const [a, b] = await mesh(['a', 'b'])
    await Promise.all([a.write(puts('a/', 30)), b.write(puts('b/', 30))])
    const [before] = await converge([a, b])
    await closeClean(b)
    await a.write(puts('while-b-was-down/', 7))

    const b2 = spawn('b2')
    const opened = await b2.open(b.dir)
    expect(opened.stats.diffEntries, 'diff entries read on reopen').to.equal(0)
    const reopened = await b2.dump()
    expect(sameView(reopened, before), 'the view reads at once as it was').to.equal(true)
    expect(reopened.writable).to.equal(true)

    await b2.join()
    const dumps = await converge([a, b2])
    expect(decode(dumps[1]).size).to.equal(67)
    // exactly the 7 keys written while it was down were read from a's log
    expect(dumps[1].stats.diffEntries).to.equal(7)
  })

  it('close() leaves cleanly: no peers, swarm destroyed, the process exits by itself', async () => {
    const [a, b] = await mesh(['a', 'b'])
    // an in-process peer too, to check the swarm's DHT node directly
    const dht = testnet.createNode()
    const local = new MeshDB(await tempDir('local'), { key: a.key })
    await local.open()
    await local.join({ swarm: { dht } })
    await until([local], () => local.peers >= 2, () => `local has ${local.peers} peers`)
    await local.close()
    expect(local.peers).to.equal(0)
    expect(dht.destroyed).to.equal(true)

    await closeClean(b)
    await untilProcs([a], async () => (await a.dump()).peers === 0, () => 'a still counts a peer')
    await closeClean(a)
  })

  it('leave() with a caller\'s swarm: peer-remove for each of its connections; the swarm and replicate() streams stay', async () => {
    const a = new MeshDB(await tempDir('la'))
    await a.open()
    const b = new MeshDB(await tempDir('lb'), { key: a.key })
    await b.open()
    const c = new MeshDB(await tempDir('lc'), { key: a.key })
    await c.open()
    const swarms = [new Hyperswarm({ dht: testnet.createNode() }), new Hyperswarm({ dht: testnet.createNode() })]
    const removed: unknown[] = []
    a.on('peer-remove', (k: unknown) => { removed.push(k) })
    await a.join({ swarm: swarms[0] })
    await b.join({ swarm: swarms[1] })
    const cut = connect(a, c) // an in-process stream beside the swarm
    await until([a, b], () => a.peers === 2 && b.peers === 1, () => `a has ${a.peers} peers, b ${b.peers}`)

    await a.leave()
    expect(removed, 'the swarm connection, at once').to.have.length(1)
    expect(Buffer.isBuffer(removed[0])).to.equal(true)
    expect(a.peers, 'the replicate() stream stays').to.equal(1)
    expect((swarms[0] as unknown as { destroyed: boolean }).destroyed, 'a caller\'s swarm keeps running').to.equal(false)
    cut()
    await until([a], () => a.peers === 0, () => `a has ${a.peers} peers`)
    expect(removed).to.have.length(2)
    for (const db of [a, b, c]) await db.close()
    for (const sw of swarms) await sw.destroy()
  })
})
