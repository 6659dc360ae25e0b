/**
 * Folds under load: own writes queued behind a long fold run at its yield points (between its
 * commits, between slices of a long read or of a large commit's staging), not after the whole
 * fold; and a peer that connects while a writer keeps appending folds that writer's entries
 * before the writer stops. No timing: each test counts what happened between two events.
 *
 * The long folds are made without timing too: the remote logs are put into a closed peer's
 * Corestore (`holdBlocks`), and the fold that ends its next `open()` folds them all at once.
 */
import { expect } from 'chai'
import { MeshDB } from '../index.js'
import { FOLD_CHUNK } from '../lib/fold.js'
import { cleanup, connect, dump, holdBlocks, ownLength, sameDump, tempDir, until } from './helpers/peers.js'

type DB = MeshDB<any, any>

/** A database created at `dir` with `n` more writers, all writable; the links are cut. */
async function members (dir: string, n: number): Promise<{ p: DB, writers: DB[] }> {
  const p: DB = new MeshDB(dir)
  await p.open()
  const writers: DB[] = []
  for (let i = 0; i < n; i++) {
    const w: DB = new MeshDB(await tempDir(`w${i}`), { key: p.key })
    await w.open()
    await p.addWriter(w.writerKey)
    writers.push(w)
  }
  const cuts = writers.map((w) => connect(p, w))
  await until([p, ...writers], async () => {
    for (const w of writers) await w.update()
    return writers.every((w) => w.writable)
  }, () => 'writers never became writable')
  for (const cut of cuts) cut()
  return { p, writers }
}

/** `count` puts of distinct keys from `db`, in batches of 500. */
async function fill (db: DB, prefix: string, count: number): Promise<void> {
  for (let i = 0; i < count; i += 500) {
    await db.batch(Array.from({ length: Math.min(500, count - i) }, (_, j) => ({ type: 'put' as const, key: `${prefix}${String(i + j).padStart(5, '0')}`, value: `v${i + j}` })))
  }
}

/** How far `db` has folded `writer`'s log. */
function folded (db: DB, writer: DB): number {
  return db.engine.checkpoints.get(writer.writerKey.toString('hex')) ?? 0
}

/** A put of raw bytes straight to the engine: MeshDB defers its own methods until open resolves. */
async function rawPut (db: DB, key: string, value: string): Promise<void> {
  await db.engine.write([{ type: 'put', key: Buffer.from(key), value: Buffer.from(value) }])
}

/** A fresh peer holding every log of `logs` (whole), opened: it folds them all from nothing. */
async function freshFold (key: Buffer, logs: DB[]): Promise<DB> {
  const dir = await tempDir('fresh')
  for (const l of logs) await holdBlocks(l, dir, 0, ownLength(l))
  const q: DB = new MeshDB(dir, { key })
  await q.open()
  return q
}

describe('folds under load', function () {
  this.timeout(120_000)
  let dbs: DB[] = []
  afterEach(async () => { await cleanup(...dbs); dbs = [] })

  it('an own write queued behind a fold of several writers runs between its commits, not after all of them', async () => {
    const dir = await tempDir('p')
    const { p, writers } = await members(dir, 4)
    dbs.push(p, ...writers)
    // each writer's diff is more than a fold chunk: the fold commits once per writer
    for (const [i, w] of writers.entries()) await fill(w, `w${i}-`, FOLD_CHUNK + 76)
    await p.close()
    for (const w of writers) await holdBlocks(w, dir, 0, ownLength(w))

    const p2: DB = new MeshDB(dir)
    dbs.push(p2)
    let foldedWhenIssued = -1
    let foldedWhenDone = -1
    let write: Promise<void> | null = null
    const foldedCount = (): number => writers.filter((w) => folded(p2, w) === ownLength(w)).length
    // the first commit of the fold that ends open(): the write is issued while three are to come
    p2.once('update', () => {
      foldedWhenIssued = foldedCount()
      write = rawPut(p2, 'mine', 'x').then(() => { foldedWhenDone = foldedCount() })
    })
    await p2.open()
    expect(write, 'the fold committed').to.not.equal(null)
    await write
    expect(foldedWhenIssued).to.equal(1)
    // it ran at the fold's next yield point: before the next writer's commit (all four without)
    expect(foldedWhenDone, 'writers folded when the own write resolved').to.equal(1)
    expect(foldedCount()).to.equal(4)
    expect(await p2.get('mine')).to.equal('x')
    expect(await p2.get(`w3-${String(FOLD_CHUNK + 75).padStart(5, '0')}`)).to.equal(`v${FOLD_CHUNK + 75}`)

    // the view is the one a fresh peer folds from the same logs
    const q = await freshFold(p2.key, [p2, ...writers])
    dbs.push(q)
    expect(sameDump(await dump(p2), await dump(q)), 'same view as a fresh fold').to.equal(true)
    expect(p2.hash().equals(q.hash()), 'same digest').to.equal(true)
  })

  it('own writes run while one long diff is read and staged; one to a staged key waits for the commit; the digest stays exact', async () => {
    const dir = await tempDir('p')
    const { p, writers: [w] } = await members(dir, 1)
    dbs.push(p, w)
    await fill(w, 'k', 3000) // one diff of 3,000 keys: read in slices, staged in slices, one commit
    await p.close()
    await holdBlocks(w, dir, 0, ownLength(w))

    const p2: DB = new MeshDB(dir)
    dbs.push(p2)
    let before = 0 // own writes that resolved before w's entries were committed
    let loop: Promise<void> | null = null
    // 'writer-add' comes from the membership read, before the data steps: from then on, write
    // one at a time until w is folded; every other write is to a key w also wrote
    p2.once('writer-add', () => {
      loop = (async () => {
        for (let i = 0; folded(p2, w) === 0; i++) {
          await rawPut(p2, i % 2 === 0 ? `mine${i}` : `k${String((i * 7) % 3000).padStart(5, '0')}`, `own${i}`)
          if (folded(p2, w) === 0) before++
        }
      })()
    })
    await p2.open()
    expect(loop, 'the fold reached the data steps').to.not.equal(null)
    await loop
    // a write resolves at each yield point: before the step, after every 64 blocks read, and
    // between staging slices (writes to other keys only); without yields, none would
    expect(before, 'own writes done before the long commit').to.be.at.least(10)
    expect(ownLength(w)).to.equal(folded(p2, w))

    const q = await freshFold(p2.key, [p2, w])
    dbs.push(q)
    expect(sameDump(await dump(p2), await dump(q)), 'same view as a fresh fold').to.equal(true)
    expect(p2.hash().equals(q.hash()), 'same digest').to.equal(true)
    expect((await p2.verify()).ok, 'verify').to.equal(true)
  })

  it('a peer that connects while a writer keeps appending folds its entries before the writer stops', async () => {
    const a: DB = new MeshDB(await tempDir('a'))
    await a.open()
    dbs.push(a)
    await fill(a, 'a', 2000)
    const r: DB = new MeshDB(await tempDir('r'), { key: a.key })
    await r.open()
    dbs.push(r)

    const core = r.engine.writers.get(a.writerKey.toString('hex'))?.core
    expect(core, 'r opened a log').to.not.equal(undefined)
    let downloaded = 0
    core?.on('download', () => { downloaded++ })
    const cut = connect(a, r)
    // The burst: a stays AHEAD blocks ahead of what r has downloaded, so it outruns the download
    // however fast either runs, and stops at LIMIT puts. r may fold only at a length a signed
    // that it holds whole, the first one it heard being 2,001: downloading the log from its start
    // gets there after ~2,000 blocks. In Hypercore's default random order, with AHEAD blocks
    // missing at any time, a prefix of 2,000 blocks stays incomplete until about
    // AHEAD × ln 2,000 ≈ 23,000 blocks have arrived (r folded nothing in 20,000 puts).
    const AHEAD = 3000
    const LIMIT = 12_000
    let puts = 2000
    while (folded(r, a) === 0 && puts < LIMIT) {
      if (ownLength(a) - downloaded < AHEAD) {
        await fill(a, `b${puts}-`, 1000)
        puts += 1000
        continue
      }
      await new Promise<void>((resolve) => {
        const done = (): void => { core?.off('download', done); r.off('update', done); resolve() }
        core?.on('download', done)
        r.on('update', done)
      })
    }
    expect(folded(r, a), `r folded nothing while a wrote ${puts} puts (${downloaded} blocks downloaded)`).to.be.above(0)
    expect(puts, 'the burst was still going').to.be.below(LIMIT)
    await until([r], () => folded(r, a) === ownLength(a), () => `r folded ${folded(r, a)} of ${ownLength(a)}`, 60_000)
    expect(sameDump(await dump(a), await dump(r))).to.equal(true)
    cut()
  })
})
