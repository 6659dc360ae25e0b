/**
 * Regression (multi-process chaos seed 600047, `npm run chaos -- --procs --seed 600047`): a
 * membership entry followed by a large append, on a peer that holds only part of that append.
 *
 * The remover appends its removal of the creator (one block), then a write of a few hundred keys
 * in one Hyperbee batch. A peer that downloads the log while the remover is gone holds the removal
 * and part of the batch, and knows only the length the batch was signed at, which it does not
 * hold: the fold stops only at signed lengths, so it never read the removal, while a peer that
 * had heard the shorter signed length counted it. Linked peers holding the same blocks disagreed
 * on the members for as long as nobody brought the rest of the batch.
 *
 * Reading up to the last block that looks like a batch end is no way out: a batch's inner nodes
 * may carry index nodes of subtrees, and a tree read at such a length reads a subtree as the whole
 * tree. A diff from there lost the removal, and a peer that read the log in such steps disagreed
 * with itself reopened. The membership entries are read block by block past the last signed
 * length instead (`Fold.readMembership`); peers are built by downloading fixed block ranges with
 * Corestore before MeshDB opens the directory, so no timing is involved but where said.
 */
import { expect } from 'chai'
import { MeshDB } from '../index.js'
import { innerBatchNode } from '../lib/blocks.js'
import type { WriterInfo } from '../lib/types.js'
import { cleanup, connect, holdBlocks, meshSync, ownLength, tempDir, untilEvents } from './helpers/peers.js'

type DB = MeshDB<string, string>

function info (db: DB, writer: Uint8Array): WriterInfo | undefined {
  return db.writers().find((w) => w.key.equals(writer))
}

/** The members as `db` sees them: [key, cut, removed], by key. */
function members (db: DB): string {
  return JSON.stringify(db.writers().filter((w) => w.member || w.removed).map((w) => [w.key.toString('hex'), w.cut, w.removed]).sort())
}

describe('membership: a removal followed by a large append, the append held in part', function () {
  this.timeout(120_000)
  let dbs: DB[] = []
  afterEach(async () => { await cleanup(...dbs); dbs = [] })

  /** Creator a adds r; r removes a, then writes 200 keys in one batch. */
  async function setup (): Promise<{ a: DB, r: DB, pseudoEnds: number[] }> {
    const a = new MeshDB<string, string>(await tempDir('a'), { wallClock: () => 1000 })
    await a.open()
    dbs.push(a)
    const r = new MeshDB<string, string>(await tempDir('r'), { key: a.key, wallClock: () => 2000 })
    await r.open()
    dbs.push(r)
    await a.addWriter(r.writerKey)
    await meshSync([a, r])
    await r.removeWriter(a.writerKey)
    expect(ownLength(r)).to.equal(2) // header, removal
    expect(info(r, a.writerKey)?.removed).to.equal(true)
    await r.batch(Array.from({ length: 200 }, (_, i) => ({ type: 'put' as const, key: 'k' + String((i * 37) % 200).padStart(3, '0'), value: 'v' + i })))
    expect(ownLength(r)).to.equal(202)
    // lengths inside the batch whose last block carries index nodes: they look like batch ends
    const pseudoEnds: number[] = []
    for (let i = 3; i < 201; i++) if (!innerBatchNode(await r.engine.own.core.get(i) as Buffer)) pseudoEnds.push(i + 1)
    expect(pseudoEnds.length, 'inner nodes of the batch carrying index nodes').to.be.greaterThan(3)
    return { a, r, pseudoEnds }
  }

  /** A directory holding a's whole log and blocks [0, end) of r's. */
  async function holding (a: DB, r: DB, end: number): Promise<string> {
    const dir = await tempDir('b')
    await holdBlocks(a, dir, 0, ownLength(a))
    expect((await holdBlocks(r, dir, 0, end)).contiguousLength).to.equal(end)
    return dir
  }

  it('a peer that holds the removal and part of the batch counts the removal, wherever the part ends', async () => {
    const { a, r, pseudoEnds } = await setup()
    const expected = members(r)
    const ends = [2, 3, 4, 100, 201, ...pseudoEnds.slice(0, 6), ...pseudoEnds.slice(-3)]
    for (const end of ends) {
      const b = new MeshDB<string, string>(await holding(a, r, end), { key: a.key })
      await b.open()
      // b knows only the length 202 as signed: none at or below what it holds
      expect(info(b, r.writerKey)?.length, `r's signed length at b (holding ${end})`).to.equal(202)
      expect(members(b), `members at b holding ${end} blocks of r's log`).to.equal(expected)
      expect(info(b, a.writerKey)?.cut).to.equal(info(r, a.writerKey)?.cut)
      expect(b.stats().badEntries).to.equal(0)
      await b.close()
    }
  })

  it('a live peer reads the removal as part of the batch downloads, and agrees with itself reopened', async () => {
    const { a, r, pseudoEnds } = await setup()
    const expected = members(r)
    // c holds r's log up to a length that looks like a batch end but is not one
    const c = new MeshDB<string, string>(await holding(a, r, pseudoEnds[0] as number), { key: a.key })
    await c.open()
    dbs.push(c)
    expect(members(c)).to.equal(expected)

    // b holds a's log only; it downloads what c holds of r's, and nothing else moves its fold
    const dir = await tempDir('b')
    await holdBlocks(a, dir, 0, ownLength(a))
    let b = new MeshDB<string, string>(dir, { key: a.key })
    await b.open()
    dbs.push(b)
    expect(info(b, a.writerKey)?.removed).to.equal(false)
    const cutC = connect(b, c)
    await untilEvents([b], ['writer-remove', 'update'], () => info(b, a.writerKey)?.removed === true,
      () => `b: ${members(b)}; expected ${expected}`)
    cutC()
    expect(members(b)).to.equal(expected)

    // then the whole log, from r
    const cutR = connect(b, r)
    await untilEvents([b], ['update', 'writer-remove'], async () => {
      const w = info(b, r.writerKey)
      return w !== undefined && w.folded === 202 && b.engine.writers.get(r.writerKey.toString('hex'))?.core.contiguousLength === 202
    }, () => JSON.stringify(b.writers()))
    cutR()
    expect(members(b)).to.equal(expected)
    expect(await b.get('k000')).to.equal(await r.get('k000'))

    await b.close()
    b = new MeshDB<string, string>(dir, { key: a.key })
    await b.open()
    dbs.push(b)
    expect(members(b), 'reopened').to.equal(expected)
  })
})
