/**
 * Regression (found by the chaos test, seed 3: `npm run chaos -- --seed 3`): a peer that folds a
 * remote log while it holds only part of a batch.
 *
 * A Hyperbee batch appends all its nodes at once, but only the last node carries the B-tree
 * index; the nodes before it have an empty index. A remote peer downloads blocks one by one, so
 * its contiguous length can end inside a batch. The fold used to check the log out at exactly
 * that length: Hyperbee cannot read a tree whose root block has no index, the read threw, and the
 * malformed-block rule (`wellFormed` refused a node with an empty index) capped the whole log at
 * the batch's first block — on that peer only, until it restarted: its view lost the batch and
 * every later write of that writer, and differed from every other peer's.
 *
 * Here a peer is left holding exactly half a batch (no timing involved: it downloads a fixed
 * range with Corestore before MeshDB opens the directory).
 */
import { expect } from 'chai'
import { MeshDB } from '../../index.js'
import { wellFormed } from '../../lib/blocks.js'
import { cleanup, connect, dump, holdBlocks, sameDump, tempDir, until, ownLength } from '../helpers/peers.js'

describe('regression: a remote log held up to the middle of a batch', function () {
  this.timeout(60_000)
  let dbs: MeshDB[] = []
  afterEach(async () => { await cleanup(...dbs); dbs = [] })

  it('is folded only at a length the writer signed, then whole once the batch arrives; nothing is capped', async () => {
    const a = new MeshDB(await tempDir('a'))
    await a.open()
    dbs.push(a)
    await a.put('x', '1')
    await a.batch([{ type: 'put', key: 'k1', value: 'a' }, { type: 'put', key: 'k0', value: 'b' }, { type: 'put', key: 'k2', value: 'c' }])
    const log = a.engine.own.core
    expect(log.length).to.equal(5) // header, x, and the batch at 2, 3, 4

    // the nodes of a batch before its last carry no index, and are well-formed all the same
    for (let i = 0; i < log.length; i++) expect(wellFormed(await log.get(i) as Buffer, i), `block ${i}`).to.equal(true)

    // b downloads blocks 0..3 only: half of the batch
    // b downloads blocks 0..3 only: half of the batch
    const dir = await tempDir('b')
    expect((await holdBlocks(a, dir, 0, 4)).contiguousLength).to.equal(4)

    const b = new MeshDB(dir, { key: a.key })
    await b.open()
    dbs.push(b)
    expect(b.stats().badEntries, 'bad entries').to.equal(0)
    // b knows only length 5 as signed; a length inside the batch is never folded, and nothing is
    // capped: b waits for the rest of the batch
    expect(await b.iterator().all()).to.deep.equal([])
    const w = b.writers().find((x) => x.key.equals(a.key))
    expect(w?.folded, 'folded only at a signed length').to.equal(0)
    expect(w?.cut).to.equal(5)

    const cut = connect(a, b)
    await until([a, b], async () => sameDump(await dump(a), await dump(b)), async () => JSON.stringify(await b.iterator().all()))
    cut()
    expect(await b.iterator().all()).to.deep.equal([['k0', 'b'], ['k1', 'a'], ['k2', 'c'], ['x', '1']])
    expect(b.stats().badEntries).to.equal(0)
  })

  it('never reads a subtree as the whole tree when a batch ends with inner index nodes', async () => {
    // 50 keys, then one batch of 60 puts: inner nodes of that batch carry index nodes of subtrees
    // but not the root. A peer holding the log up to one of them once read a few keys as the view.
    const a = new MeshDB(await tempDir('a'))
    await a.open()
    dbs.push(a)
    await a.batch(Array.from({ length: 50 }, (_, i) => ({ type: 'put' as const, key: 'k' + String(i).padStart(2, '0'), value: 'v' + i })))
    const before = await a.iterator().all()
    await a.batch(Array.from({ length: 60 }, (_, i) => ({ type: 'put' as const, key: 'k' + String((i * 7) % 80).padStart(2, '0'), value: 'w' + i })))
    expect(ownLength(a)).to.equal(111)
    const full = await a.iterator().all()

    for (let middle = 52; middle < 111; middle += 4) {
      const dir = await tempDir('b')
      expect((await holdBlocks(a, dir, 0, middle)).contiguousLength).to.equal(middle)

      const b = new MeshDB(dir, { key: a.key })
      await b.open()
      // b holds part of the batch: its view is a state a signed length had (here it only knows
      // 111, so none yet), never a fragment of a tree
      const view = await b.iterator().all()
      expect(view.length === 0 || JSON.stringify(view) === JSON.stringify(before), `at ${middle}: ${view.length} keys`).to.equal(true)
      expect(b.stats().badEntries).to.equal(0)
      if (middle === 52) {
        const cut = connect(a, b)
        await until([a, b], async () => sameDump(await dump(a), await dump(b)))
        cut()
        expect(await b.iterator().all()).to.deep.equal(full)
      }
      await b.close()
    }
  })
})
