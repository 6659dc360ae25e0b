import { expect } from 'chai'
import { join } from 'node:path'
import type { Duplex } from 'node:stream'
import Corestore from 'corestore'
import { MeshDB } from '../index.js'
import { cleanup, connect, createPeers, pipe, tempDir, until, ownLength } from './helpers/peers.js'

/** Pipes a MeshDB and a bare Corestore together; returns the cut. */
function connectStore (db: MeshDB<any, any>, store: Corestore): () => void {
  return pipe(db.replicate(true), store.replicate(false) as Duplex)
}

const KEYS = 50
const ROUNDS = 40

/** `rounds` batches from `db`, each overwriting the same KEYS keys. */
async function overwrite (db: MeshDB<any, any>, rounds: number): Promise<void> {
  for (let r = 0; r < rounds; r++) {
    await db.batch(Array.from({ length: KEYS }, (_, i) => ({ type: 'put' as const, key: `k${i}`, value: `r${r}-${i}` })))
  }
}

function logOf (db: MeshDB<any, any>, writer: MeshDB<any, any>): { length: number, contiguousLength: number } {
  const w = db.engine.writers.get(writer.writerKey.toString('hex'))
  if (w === undefined) return { length: 0, contiguousLength: 0 }
  return { length: w.core.length, contiguousLength: w.core.contiguousLength }
}

async function sameView (a: MeshDB<any, any>, b: MeshDB<any, any>): Promise<boolean> {
  const folded = b.writers().find((w) => w.key.equals(a.writerKey))?.folded
  return folded === ownLength(a) && (await a.hash()).equals(await b.hash())
}

describe('catch-up after offline', function () {
  this.timeout(60_000)
  afterEach(async () => { await cleanup() })

  it('fetches only the blocks its diffs read, folds, then downloads the rest and seeds it', async () => {
    const [a, b] = await createPeers(2)
    await overwrite(a, ROUNDS) // b is away: 2,000 entries over 50 keys
    const behind = ownLength(a)
    const before = b.stats()

    const cut = connect(a, b)
    await until([b], async () => await sameView(a, b), () => `b folded ${JSON.stringify(b.writers())}`)
    const after = b.stats()
    expect(after.sparseFetches - before.sparseFetches).to.be.at.least(1)
    // the last batch: its 50 entries, the last of which holds the whole tree (a block or two may
    // have arrived before the fetch began), out of 2,000 blocks
    expect(after.sparseBlocks - before.sparseBlocks).to.be.within(KEYS - 10, KEYS)
    expect(after.diffEntries - before.diffEntries).to.equal(KEYS)
    expect(await b.get('k7')).to.equal(`r${ROUNDS - 1}-7`)

    // then the whole log, for seeding
    await until([b], () => logOf(b, a).contiguousLength === behind, () => `b holds ${JSON.stringify(logOf(b, a))} of ${behind}`)
    cut()

    // c never meets a: it gets a's whole log, and the same view, from b alone
    const c = new MeshDB<any, any>(await tempDir('c'), { key: a.key })
    await c.open()
    const cut2 = connect(b, c)
    await until([c], async () => await sameView(a, c), () => `c folded ${JSON.stringify(c.writers())}`)
    await until([c], () => logOf(c, a).contiguousLength === behind, () => `c holds ${JSON.stringify(logOf(c, a))} of ${behind}`)
    expect(await c.get('k7')).to.equal(`r${ROUNDS - 1}-7`)
    cut2()
    await cleanup(a, b, c)
  })

  it('downloads a log whole instead when its diff needs most of the missing blocks (few overwrites)', async () => {
    const [a, b] = await createPeers(2)
    // 600 distinct keys: a diff reads every block, so fetching them one by one gains nothing
    for (let r = 0; r < 10; r++) {
      await a.batch(Array.from({ length: 60 }, (_, i) => ({ type: 'put' as const, key: `d${r}-${i}`, value: `v${r}-${i}` })))
    }
    // b has folded a's log before (its checkpoint is past 0): it walks the tree, then gives up
    const cut = connect(a, b)
    await until([b], async () => await sameView(a, b), () => `b folded ${JSON.stringify(b.writers())}`)
    expect(b.stats().sparseFetches).to.equal(0)
    expect(b.stats().sparseSkipped).to.be.at.least(1)
    expect(logOf(b, a).contiguousLength).to.equal(ownLength(a))
    cut()
    // c has never seen a's log: the tree's size, estimated from its last block, decides at once
    const c = new MeshDB<any, any>(await tempDir('c'), { key: a.key })
    await c.open()
    const cut2 = connect(a, c)
    await until([c], async () => await sameView(a, c), () => `c folded ${JSON.stringify(c.writers())}`)
    expect(c.stats().sparseFetches).to.equal(0)
    expect(c.stats().sparseSkipped).to.be.at.least(1)
    expect(await c.get('d9-59')).to.equal('v9-59')
    cut2()
    await cleanup(a, b, c)
  })

  it('reads a long run of new keys block by block, to the same view the tree diff folds', async () => {
    const [a, b, c] = await createPeers(3)
    // c reads every step with the tree diff; b may read runs of new keys block by block
    c.engine.testHooks.runScan = () => false
    let scanned = 0
    b.engine.testHooks.runScan = (yes) => { if (yes) scanned++; return yes }
    // a, offline: 150 new keys, deletes of 20 of them, and 10 keys put and deleted again
    for (let i = 0; i < 150; i++) await a.put(`n${i}`, `v${i}`)
    for (let i = 0; i < 20; i++) await a.del(`n${i * 7}`)
    for (let i = 0; i < 10; i++) {
      await a.put(`t${i}`, 'x')
      await a.del(`t${i}`)
    }
    const cuts = [connect(a, b), connect(a, c)]
    await until([b, c], async () => await sameView(a, b) && await sameView(a, c), () => `b ${JSON.stringify(b.writers())}, c ${JSON.stringify(c.writers())}`)
    expect(scanned, 'b read the run block by block').to.be.at.least(1)
    expect(await b.get('n1')).to.equal('v1')
    expect(await b.get('n7')).to.equal(undefined)
    expect(await b.get('t3')).to.equal(undefined)
    expect((await b.hash()).equals(await c.hash())).to.equal(true)
    for (const cut of cuts) cut()
    await cleanup(a, b, c)
  })

  it("downloads writers' logs with Hypercore's request window, not the wider one Hyperbee sets", async () => {
    // Hyperbee widens its core's window to 256-512 requests on open; a whole-log download then
    // asks for each block with a proof up to the root (BENCHMARKS.md, convergence history). The engine sets
    // Hypercore's default back through an internal of Hypercore's replicator: this fails if that
    // call stops reaching it.
    const [a, b] = await createPeers(2)
    const log = b.engine.writers.get(a.writerKey.toString('hex'))
    const range = (log?.core as unknown as { replicator?: { inflightRange?: number[] } } | undefined)?.replicator?.inflightRange
    expect(range).to.deep.equal([16, 512])
    await cleanup(a, b)
  })

  it('folds the same view from the whole log when sparse catch-up is off', async () => {
    const [a, b] = await createPeers(2, (i) => i === 1 ? { sparseAfter: Infinity } : {})
    await overwrite(a, 10)
    const cut = connect(a, b)
    await until([b], async () => await sameView(a, b), () => `b folded ${JSON.stringify(b.writers())}`)
    expect(b.stats().sparseFetches).to.equal(0)
    expect(logOf(b, a).contiguousLength).to.equal(ownLength(a))
    cut()
    await cleanup(a, b)
  })

  it('converges when the link drops during a sparse fetch and comes back', async () => {
    const [a, b] = await createPeers(2)
    await overwrite(a, ROUNDS)
    // b starts fetching from a, and the link drops before anything else
    let cut = connect(a, b)
    await until([b], () => b.engine.catchUps.get(a.writerKey.toString('hex'))?.fetching === true || b.stats().sparseFetches > 0, () => 'no sparse fetch started')
    cut()
    cut = connect(a, b)
    await until([b], async () => await sameView(a, b), () => `b folded ${JSON.stringify(b.writers())}`)
    await until([b], () => logOf(b, a).contiguousLength === ownLength(a), () => `b holds ${JSON.stringify(logOf(b, a))}`)
    expect(await b.get('k0')).to.equal(`r${ROUNDS - 1}-0`)
    cut()
    await cleanup(a, b)
  })

  it('after a sparse catch-up, later appends are fetched and folded even while the history is missing', async () => {
    const a = new MeshDB<any, any>(await tempDir('a'))
    await a.open()
    await overwrite(a, ROUNDS)
    const len = ownLength(a)
    // a relay that holds only the header and the last batch of a's log: what a sparse catch-up needs
    const relay = new Corestore(join(await tempDir('relay'), 'cores'))
    const core = relay.get({ key: a.writerKey })
    await core.ready()
    let cut = connectStore(a, relay)
    await core.update({ wait: true })
    await core.download({ start: 0, end: 1 }).done()
    await core.download({ start: len - KEYS, end: len }).done()
    cut()

    const b = new MeshDB<any, any>(await tempDir('b'), { key: a.key })
    await b.open()
    const toRelay = connectStore(b, relay)
    await until([b], async () => b.writers().find((w) => w.key.equals(a.writerKey))?.folded === len, () => JSON.stringify(b.writers()))
    expect(await b.get('k3')).to.equal(`r${ROUNDS - 1}-3`)
    expect(logOf(b, a).contiguousLength, 'the history is nowhere to be had').to.be.below(len)

    // a writes a little more (far fewer blocks than sparseAfter); the relay gets just that
    await a.put('k3', 'later')
    cut = connectStore(a, relay)
    await core.update({ wait: true })
    await core.download({ start: len, end: core.length }).done()
    cut()
    await until([b], async () => (await b.get('k3')) === 'later', () => `b: ${JSON.stringify(b.writers())}, k3 = ${String(b.getSync('k3'))}`)
    // its changes read back through diff(), from the blocks the catch-up fetched
    const changes = []
    for await (const c of b.diff(a.writerKey, { from: len })) changes.push(c)
    expect(changes.map((c) => [c.key.toString(), c.value?.toString()])).to.have.length(1)
    toRelay()
    await relay.close()
    await cleanup(a, b)
  })

  it('refuses a bad sparseAfter with MESHBEE_INVALID_ARGUMENT', async () => {
    for (const bad of [-1, NaN, '10', 1.5]) {
      // the constructor checks its options before anything touches the directory
      expect(() => new MeshDB('/nonexistent/meshbee', { sparseAfter: bad as number })).to.throw().with.property('code', 'MESHBEE_INVALID_ARGUMENT')
    }
  })
})

