/**
 * Regression (found by the multi-process chaos test: `npm run chaos -- --procs --seed 1359955530`,
 * a peer SIGKILLed while it was downloading the creator's log): a peer restarted while it holds
 * only a prefix of a remote log, shorter than the log's length it knows of.
 *
 * The fold stops only at lengths a writer signed (`Engine.signedAtMost`), and after a restart the
 * only signed length it knows of a remote log is the log's full length. Its data fold starts from
 * its checkpoint, but the membership read started from 0: it found no length it may read, the
 * creator's add-writer records were not read at all, every member but the creator dropped out
 * of its members, their entries out of its view, and the peer itself was no longer writable —
 * until the rest of the log arrived.
 */
import { expect } from 'chai'
import { MeshDB } from '../../index.js'
import { cleanup, connect, dump, holdBlocks, tempDir, until, ownLength } from '../helpers/peers.js'

describe('regression: a restart while holding a prefix of a remote log', function () {
  this.timeout(60_000)
  let dbs: MeshDB[] = []
  afterEach(async () => { await cleanup(...dbs); dbs = [] })

  it('keeps the members and the view it had: the membership read resumes where the fold stood', async () => {
    const a = new MeshDB(await tempDir('a'))
    await a.open()
    dbs.push(a)
    const dir = await tempDir('b')
    let b = new MeshDB(dir, { key: a.key })
    await b.open()
    dbs.push(b)
    await a.addWriter(b.writerKey)
    await a.put('x', 'a1')
    const cut = connect(a, b)
    await until([a, b], () => b.writable && b.writers().every((w) => w.folded === w.length) && b.writers().some((w) => w.key.equals(a.key) && w.length === ownLength(a)), () => JSON.stringify(b.writers()))
    cut()
    await b.put('y', 'b1')
    const before = await dump(b)
    expect(before.map(([k, v]) => [k.toString(), v.toString()])).to.deep.equal([['x', 'a1'], ['y', 'b1']])
    const folded = (b.writers().find((w) => w.key.equals(a.key)) as { folded: number }).folded
    await b.close()

    // a writes on; b learns the new length of a's log but downloads only one more block
    for (let i = 0; i < 6; i++) await a.put('z' + i, String(i))
    const held = await holdBlocks(a, dir, folded, folded + 1)
    expect(held.length).to.equal(ownLength(a))
    expect(held.contiguousLength).to.equal(folded + 1)

    b = new MeshDB(dir, { key: a.key })
    await b.open()
    dbs.push(b)
    expect(b.writable, 'still a member').to.equal(true)
    expect(b.writers().find((w) => w.key.equals(b.writerKey))?.member).to.equal(true)
    expect(await dump(b), 'the view it had').to.deep.equal(before)
  })
})
