/**
 * Convergence: three peers write conflicting puts, deletes, patches and set operations to the same
 * keys while disconnected, then replicate in different orders and topologies. Every peer must end
 * with a byte-identical view, and each key must hold what the CRDT rules dictate — computed here
 * by a separate, deliberately naive model of those rules from the list of operations.
 *
 * The peers' wall clocks are controlled, so every operation's HLC stamp is known: (wall, 0).
 */
import { expect } from 'chai'
import type { MeshDB } from '../index.js'
import { START, apply, canonical, expected, generate } from './helpers/model.js'
import { cleanup, connect, createPeers, dump, sameDump, until } from './helpers/peers.js'

const TOPOLOGIES: Record<string, Array<Array<[number, number]>>> = {
  'chain a-b then b-c': [[[0, 1]], [[1, 2]], [[0, 1]]],
  'star through c': [[[2, 0]], [[2, 1]], [[2, 0]]],
  'all pairs at once': [[[0, 1], [1, 2], [0, 2]]],
  'ring c-a, a-b, b-c': [[[2, 0], [0, 1], [1, 2]]]
}

describe('convergence of three disconnected peers', function () {
  this.timeout(120_000)
  let peers: Array<MeshDB<string, any>> = []
  afterEach(async () => { await cleanup(...peers) })

  const seeds = [1, 2, 3, 4]
  for (const [name, phases] of Object.entries(TOPOLOGIES)) {
    for (const seed of seeds) {
      it(`${name}, seed ${seed}: byte-identical views holding what the CRDT rules dictate`, async () => {
        const clocks = [START - 1000, START - 1000, START - 1000]
        peers = await createPeers(3, (i) => ({ valueEncoding: 'json', wallClock: () => clocks[i] }))
        const writers = peers.map((p) => p.writerKey.toString('hex'))
        const ops = generate(seed * 7919 + name.length, 40)
        for (const op of ops) {
          clocks[op.peer] = op.wall
          await apply(peers[op.peer], op)
        }
        const want = expected(ops, writers)
        const matches = async (db: MeshDB<string, any>): Promise<boolean> => {
          const got = new Map(await db.iterator().all())
          if (got.size !== want.size) return false
          for (const [k, v] of want) if (canonical(got.get(k)) !== canonical(v)) return false
          return true
        }
        const describeState = async (): Promise<string> => JSON.stringify({
          seed, want: [...want], got: await Promise.all(peers.map(async (p) => await p.iterator().all()))
        })

        // Heal the partition phase by phase; the last phase stays connected until all agree.
        for (let i = 0; i < phases.length; i++) {
          const links = phases[i].map(([x, y]) => connect(peers[x], peers[y]))
          const involved = [...new Set(phases[i].flat())].map((j) => peers[j])
          if (i < phases.length - 1) {
            // wait until the peers of this phase agree with each other, then cut
            await until(involved, async () => {
              const d = await Promise.all(involved.map(dump))
              return d.every((x) => sameDump(x, d[0]))
            }, describeState)
            for (const cut of links) cut()
          } else {
            await until(peers, async () => (await Promise.all(peers.map(matches))).every(Boolean), describeState)
            for (const cut of links) cut()
          }
        }
        const dumps = await Promise.all(peers.map(dump))
        expect(sameDump(dumps[0], dumps[1]) && sameDump(dumps[0], dumps[2]), 'byte-identical views').to.equal(true)
        expect(dumps[0].length).to.equal(want.size)
      })
    }
  }
})
