/**
 * Regression (found by the chaos test with mixed log formats, seed 8: `npm run chaos -- --seed 8`):
 * a set emptied by its own adder in log format 1.
 *
 * A format-1 writer that adds a member and then removes it writes one STATE entry with no add and
 * the removed tag: its add is gone from its adds (a remove moves the writer's own tags from its
 * adds to its removed list). A removed tag is a tag: the key reads as an empty set `[]`, newer than
 * an older whole value or document field (the rule of format 1, kept by format 2 for format-1
 * entries). The view projects STATE entries onto per-member states (crdt/orset.ts
 * `memberStates`), which drops a removed tag whose add is nowhere: no member is left to carry its
 * version. The writer itself, which folded the add first, kept the version in the key's head and
 * read `[]`; a peer that folded the log in one go (or re-rendered the key) found no tag at all and
 * read the older register — two peers holding the same log disagreed.
 */
import { expect } from 'chai'
import { MeshDB } from '../../index.js'
import { cleanup, connect, dump, sameDump, tempDir, until, ownLength } from '../helpers/peers.js'

describe('regression: a format-1 set emptied by its own adder', function () {
  this.timeout(60_000)
  let dbs: Array<MeshDB<string, string>> = []
  afterEach(async () => { await cleanup(...dbs); dbs = [] })

  it('reads as [] on the writer, on a peer that folds the log in one go, and in a checkout', async () => {
    const a = new MeshDB<string, string>(await tempDir('a'))
    await a.open()
    dbs.push(a)
    a.engine.testHooks.format = 1
    await a.put('k', 'older value')
    await a.sadd('k', 'm')
    await a.srem('k', 'm')
    expect(await a.get('k')).to.equal('[]')
    expect(await a.typeOf('k')).to.equal('set')

    const b = new MeshDB<string, string>(await tempDir('b'), { key: a.key })
    await b.open()
    dbs.push(b)
    const cut = connect(a, b)
    const length = ownLength(a)
    await until([b], async () => {
      await b.update()
      return b.writers().some((w) => w.key.equals(a.key) && w.folded === length)
    }, () => JSON.stringify(b.writers()))
    cut()
    expect(await b.get('k'), 'the peer that folded the log in one go').to.equal('[]')
    expect(await b.typeOf('k')).to.equal('set')
    expect(sameDump(await dump(a), await dump(b)), 'the same view').to.equal(true)
    expect(b.hash().equals(a.hash()), 'the same digest').to.equal(true)

    const past = a.checkout(a.cuts())
    try {
      expect(await past.get('k'), 'a checkout').to.equal('[]')
    } finally {
      await past.close()
    }
  })
})
