import { expect } from 'chai'
import { MeshDB } from '../index.js'
import { cleanup, connect, createPeers, tempDir, until } from './helpers/peers.js'

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
  return folded === a.engine.own.core.length && (await a.hash()).equals(await b.hash())
}

describe('catch-up after offline', function () {
  this.timeout(60_000)
  afterEach(async () => { await cleanup() })

  it('fetches only the blocks its diffs read, folds, then downloads the rest and seeds it', async () => {
    const [a, b] = await createPeers(2)
    await overwrite(a, ROUNDS) // b is away: 2,000 entries over 50 keys
    const behind = a.engine.own.core.length
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

  it('folds the same view from the whole log when sparse catch-up is off', async () => {
    const [a, b] = await createPeers(2, (i) => i === 1 ? { sparseAfter: Infinity } : {})
    await overwrite(a, 10)
    const cut = connect(a, b)
    await until([b], async () => await sameView(a, b), () => `b folded ${JSON.stringify(b.writers())}`)
    expect(b.stats().sparseFetches).to.equal(0)
    expect(logOf(b, a).contiguousLength).to.equal(a.engine.own.core.length)
    cut()
    await cleanup(a, b)
  })

  it('converges when the link drops during a sparse fetch and comes back', async () => {
    const [a, b] = await createPeers(2)
    await overwrite(a, ROUNDS)
    // b starts fetching from a, and the link drops before anything else
    let cut = connect(a, b)
    await until([b], () => b.engine.writers.get(a.writerKey.toString('hex'))?.fetching === true || b.stats().sparseFetches > 0, () => 'no sparse fetch started')
    cut()
    cut = connect(a, b)
    await until([b], async () => await sameView(a, b), () => `b folded ${JSON.stringify(b.writers())}`)
    await until([b], () => logOf(b, a).contiguousLength === a.engine.own.core.length, () => `b holds ${JSON.stringify(logOf(b, a))}`)
    expect(await b.get('k0')).to.equal(`r${ROUNDS - 1}-0`)
    cut()
    await cleanup(a, b)
  })

  it('refuses a bad sparseAfter with MESHBEE_INVALID_ARGUMENT', async () => {
    for (const bad of [-1, NaN, '10', 1.5]) {
      // the constructor checks its options before anything touches the directory
      expect(() => new MeshDB('/nonexistent/meshbee', { sparseAfter: bad as number })).to.throw().with.property('code', 'MESHBEE_INVALID_ARGUMENT')
    }
  })
})

