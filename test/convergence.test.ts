/**
 * Convergence: three peers write conflicting puts, deletes, patches and set operations to the same
 * keys while disconnected, then replicate in different orders and topologies. Every peer must end
 * with a byte-identical view, and each key must hold what the CRDT rules dictate — computed here
 * by a separate, deliberately naive model of those rules from the list of operations.
 *
 * The peers' wall clocks are controlled, so every operation's HLC stamp is known: (wall, 0), or
 * (wall, k) for the k-th op of a `write`.
 *
 * The second group does the same with large sets and documents (writes of 50–400 set adds and
 * removes, patches of as many fields, whole-value writes of the same keys among them) and with
 * mixed log formats: peers that write log format 1, as the release before format 2 did, until
 * they upgrade (one never does). Each view is also checked against the chaos test's model, which
 * computes it from the logs' entries (scripts/chaos/model.ts).
 */
import { expect } from 'chai'
import type { MeshDB } from '../index.js'
import { DATA_RANGE, FIELD, MEMBER, STATE, decodeEntry } from '../lib/entry.js'
import { logsOf, reference } from '../scripts/chaos/model.js'
import { KEYS, START, apply, canonical, expected, flatten, generate, generateLarge, type Op } from './helpers/model.js'
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

describe('convergence with mixed log formats and large sets and documents', function () {
  this.timeout(300_000)
  let peers: Array<MeshDB<string, any>> = []
  afterEach(async () => { await cleanup(...peers) })

  // upgrades: per peer, the index of its first op in format 2 (of 43: 40 small ops, 3 large ones)
  const CASES: Array<{ seed: number, topology: string, upgrades: number[] }> = [
    { seed: 101, topology: 'chain a-b then b-c', upgrades: [Infinity, 20, 0] },
    { seed: 102, topology: 'star through c', upgrades: [0, 30, Infinity] },
    { seed: 103, topology: 'all pairs at once', upgrades: [12, Infinity, 35] },
    { seed: 104, topology: 'ring c-a, a-b, b-c', upgrades: [25, 0, 8] }
  ]

  for (const { seed, topology, upgrades } of CASES) {
    it(`${topology}, seed ${seed}, format 1 until ops [${upgrades.join(' ')}]: byte-identical views, as both models say`, async () => {
      const clocks = [START - 1000, START - 1000, START - 1000]
      peers = await createPeers(3, (i) => ({ valueEncoding: 'json', wallClock: () => clocks[i] }))
      const writers = peers.map((p) => p.writerKey.toString('hex'))
      const ops: Op[] = generateLarge(seed, 40, 3, upgrades)
      expect(flatten(ops).length, 'large writes').to.be.greaterThan(400)
      for (const op of ops) {
        clocks[op.peer] = op.wall
        await apply(peers[op.peer], op)
      }
      const want = expected(ops, writers, KEYS)
      const matches = async (db: MeshDB<string, any>): Promise<boolean> => {
        const got = new Map(await db.iterator().all())
        if (got.size !== want.size) return false
        for (const [k, v] of want) if (canonical(got.get(k)) !== canonical(v)) return false
        return true
      }
      const describeState = async (): Promise<string> => JSON.stringify({
        seed, want: [...want], got: await Promise.all(peers.map(async (p) => await p.iterator().all()))
      }).slice(0, 4000)

      const phases = TOPOLOGIES[topology] as Array<Array<[number, number]>>
      for (let i = 0; i < phases.length; i++) {
        const links = phases[i].map(([x, y]) => connect(peers[x], peers[y]))
        const involved = [...new Set(phases[i].flat())].map((j) => peers[j])
        if (i < phases.length - 1) {
          await until(involved, async () => {
            const d = await Promise.all(involved.map(dump))
            return d.every((x) => sameDump(x, d[0]))
          }, describeState, 120_000)
          for (const cut of links) cut()
        } else {
          await until(peers, async () => (await Promise.all(peers.map(matches))).every(Boolean), describeState, 120_000)
          for (const cut of links) cut()
        }
      }
      const dumps = await Promise.all(peers.map(dump))
      expect(sameDump(dumps[0], dumps[1]) && sameDump(dumps[0], dumps[2]), 'byte-identical views').to.equal(true)
      expect(peers[1].hash().equals(peers[0].hash()) && peers[2].hash().equals(peers[0].hash()), 'equal digests').to.equal(true)
      expect(dumps[0].length).to.equal(want.size)
      for (const p of peers) expect(p.stats().badEntries, 'bad entries').to.equal(0)

      // the logs' model reads the same view from the entries themselves
      for (const p of peers) {
        const ref = await reference(logsOf(p))
        expect(ref.bad).to.equal(0)
        expect(sameDump(await dump(p), ref.view), `the view as the logs' model reads it: ${[...ref.why].join('; ').slice(0, 2000)}`).to.equal(true)
      }

      // the logs hold both formats where the case says so: STATE entries and FIELD/MEMBER entries
      const types = new Set<number>()
      for (const w of peers[0].engine.writers.values()) {
        for await (const node of w.bee.createReadStream(DATA_RANGE)) types.add(decodeEntry(node.value).type)
      }
      expect(types.has(STATE), 'format-1 entries').to.equal(upgrades.some((u) => u > 0))
      expect(types.has(FIELD) && types.has(MEMBER), 'format-2 entries').to.equal(true)
    })
  }
})
