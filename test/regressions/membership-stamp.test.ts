/**
 * Regression (found by the chaos counter of acknowledged membership entries the replay does not
 * count — `npm run chaos` reports them; e.g. seed 12): a new member whose clock runs a little
 * behind the member that added it.
 *
 * Membership is replayed in stamp order, and an entry counts only if its author is a member at
 * its stamp. The fold observed the stamps of data entries into the clock but not those of
 * membership entries: a peer added by a member whose clock ran 5 s ahead, and which had seen
 * nothing else from it, stamped its own addWriter 5 s before its own add. The call resolved, the
 * entry was in its log, and it never counted — on any peer, its own included — and could not be
 * retried (the entry for that writer key was already there).
 */
import { expect } from 'chai'
import { MeshDB } from '../../index.js'
import { cleanup, connect, tempDir, until } from '../helpers/peers.js'

describe('regression: membership entries of a member whose clock runs behind its adder', function () {
  this.timeout(60_000)
  let dbs: MeshDB[] = []
  afterEach(async () => { await cleanup(...dbs); dbs = [] })

  it('count: folding a membership entry observes its stamp, as folding a data entry does', async () => {
    const clocks = [1_000_000, 995_000, 1_000_000]
    const a = new MeshDB(await tempDir('a'), { wallClock: () => clocks[0] as number })
    await a.open()
    const b = new MeshDB(await tempDir('b'), { key: a.key, wallClock: () => clocks[1] as number })
    const c = new MeshDB(await tempDir('c'), { key: a.key, wallClock: () => clocks[2] as number })
    dbs = [a, b, c]
    await b.open()
    await c.open()
    await a.addWriter(b.writerKey) // stamped (1_000_000, 0); a writes nothing else
    const links = [connect(a, b), connect(b, c)]
    await until([a, b, c], () => b.writable, () => 'b never became writable')
    await b.addWriter(c.writerKey) // b's wall clock reads 995_000
    const member = (p: MeshDB): boolean => p.writers().some((w) => w.key.equals(c.writerKey) && w.member)
    await until([a, b, c], () => member(b))
      .catch(() => { throw new Error('b\'s own add of c does not count: ' + JSON.stringify(b.writers().map((w) => [w.key.toString('hex').slice(0, 6), w.member]))) })
    await until([a, b, c], () => c.writable && member(a), () => 'c never became a member everywhere')
    for (const cut of links) cut()
    expect(c.writable).to.equal(true)
  })
})
