/**
 * Join requests from a hostile peer. A join request is relayed at most one hop (a relay is never
 * relayed again), each connection has a budget of incoming join messages, and a key is surfaced
 * and relayed at most once per interval per peer (sync/swarm.ts). Here: a peer floods three
 * members on a local testnet with fake keys and leaves; and, in process, the hop limit and a peer
 * that speaks only the previous wire format.
 *
 * Every wait is on a condition with a deadline; "quiet" is a condition too (no counter moved for
 * a while), never a fixed sleep.
 */
import { expect } from 'chai'
import c from 'compact-encoding'
import Hypercore from 'hypercore'
import createTestnet from 'hyperdht/testnet.js'
import Hyperswarm from 'hyperswarm'
import { randomBytes } from 'node:crypto'
import type { Duplex } from 'node:stream'
import type Protomux from 'protomux'
import type { Message } from 'protomux'
import { pipe } from '../scripts/link.js'
import { MeshDB } from '../index.js'
import { JOIN_BURST, JOIN_RATE, Sync, type JoinRequest, type JoinStats, type SyncHost } from '../sync/swarm.js'
import { cleanup, tempDir, untilEvents } from './helpers/peers.js'

type Testnet = Awaited<ReturnType<typeof createTestnet>>

/** A member whose join-channel counters the test can read (the sync layer is internal). */
class Member extends MeshDB {
  get joinStats (): JoinStats {
    const sync = this.currentSync
    if (sync === null) throw new Error('not opened')
    return sync.stats
  }
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
const total = (s: JoinStats): number => s.direct + s.relayedIn + s.dropped + s.relayed + s.events + s.repeats

/** No events: {@link untilEvents} then re-checks on its own, every 250 ms. */
const NO_EVENTS = { on: () => {}, off: () => {} }

/** Resolves once `check` holds; rejects after `timeout` ms. */
async function until (check: () => boolean, describe: () => string, timeout = 5000): Promise<void> {
  await untilEvents([NO_EVENTS], [], check, describe, timeout)
}

/**
 * Resolves once `read()` has not changed for `quietFor` ms (re-read every 250 ms); rejects after
 * `timeout` ms with what it last read.
 */
async function quiet (read: () => string, quietFor = 1500, timeout = 8000): Promise<void> {
  let last = read()
  let since = Date.now()
  await until(() => {
    const now = read()
    if (now !== last) {
      last = now
      since = Date.now()
    }
    return Date.now() - since >= quietFor
  }, () => `still moving: ${last}`, timeout)
}

/** A Hypercore protocol stream (Protomux over Noise) with no cores: a bare join channel's carrier. */
const protocolStream = (conn: boolean | Duplex): Duplex =>
  (Hypercore as unknown as { createProtocolStream: (c: boolean | Duplex) => Duplex }).createProtocolStream(conn)

/** A peer speaking the join protocol by hand: only message 0 (as the previous code did). */
function rawChannel (stream: Duplex, discoveryKey: Buffer, received: Buffer[] = [], onopen: (m: Message) => void = () => {}): Message {
  const mux = Hypercore.getProtocolMuxer(stream) as Protomux
  const channel = mux.createChannel({ protocol: 'meshbee/join/v1', id: discoveryKey, onopen: () => { onopen(message) } })
  if (channel === null) throw new Error('no channel')
  const message = channel.addMessage({ encoding: c.fixed32, onmessage: (k: Buffer) => { received.push(Buffer.from(k)) } })
  channel.open()
  return message
}

describe('join requests from a hostile peer', function () {
  this.timeout(30_000)

  describe('on a testnet: a flood of fake keys, then the attacker leaves', () => {
    let testnet: Testnet
    let dbs: MeshDB[] = []
    let attacker: Hyperswarm | null = null

    beforeEach(async () => {
      testnet = await createTestnet(3)
    })

    afterEach(async () => {
      await attacker?.destroy()
      attacker = null
      await cleanup(...dbs)
      dbs = []
      await testnet.destroy()
    })

    it('members relay each request at most one hop, drop what exceeds a connection\'s budget, go quiet at once, and still add a genuine newcomer', async () => {
      const FLOOD = 20_000
      const a = new Member(await tempDir('a'))
      await a.open()
      const b = new Member(await tempDir('b'), { key: a.key })
      const c3 = new Member(await tempDir('c'), { key: a.key })
      await b.open()
      await c3.open()
      await a.addWriter(b.writerKey)
      await a.addWriter(c3.writerKey)
      const members = [a, b, c3]
      dbs = [...members]
      const events = members.map(() => new Map<string, number>())
      members.forEach((m, i) => m.on('join-request', (r: JoinRequest) => {
        events[i].set(hex(r.key), (events[i].get(hex(r.key)) ?? 0) + 1)
      }))
      for (const m of members) await m.join({ swarm: { dht: testnet.createNode() } })
      await untilEvents(members, ['update', 'peer-add', 'writer-add'], () => members.every((m) => m.writable && m.peers === 2),
        () => members.map((m) => `writable ${String(m.writable)} peers ${m.peers}`).join('; '))
      for (const m of members) expect(total(m.joinStats), 'nothing on the join channel yet').to.equal(0)

      // the attacker: a bare protocol stream on each connection, FLOOD distinct fake keys on each
      const swarm = attacker = new Hyperswarm({ dht: testnet.createNode() })
      let flooded = 0
      let started = 0
      swarm.on('connection', (conn: Duplex) => {
        conn.on('error', () => {})
        rawChannel(protocolStream(conn), a.discoveryKey, [], (m) => {
          if (started === 0) started = Date.now()
          for (let i = 0; i < FLOOD; i++) m.send(randomBytes(32))
          flooded++
        })
      })
      swarm.join(a.discoveryKey, { client: true, server: true })
      // every member heard the whole flood, then the attacker leaves
      await untilEvents(members, ['peer-add'], () => flooded === 3 && members.every((m) => m.joinStats.direct + m.joinStats.dropped >= FLOOD),
        () => `flooded ${flooded}; ` + members.map((m) => JSON.stringify(m.joinStats)).join(' '))
      await swarm.destroy()
      attacker = null
      const elapsed = (Date.now() - started) / 1000
      await untilEvents(members, ['peer-remove'], () => members.every((m) => m.peers === 2), () => members.map((m) => `peers ${m.peers}`).join(' '))

      // back to baseline: no counter of any member moves any more, within seconds of the leave
      const left = Date.now()
      const snapshot = (): string => JSON.stringify(members.map((m) => [m.joinStats, [...events[members.indexOf(m)].values()].reduce((x, y) => x + y, 0)]))
      await quiet(snapshot)
      const settled = Date.now() - left
      expect(settled, 'ms until quiet (quiet for 1.5 s included)').to.be.below(5000)

      const budget = JOIN_BURST + JOIN_RATE * elapsed + 1
      for (const [i, m] of members.entries()) {
        const s = m.joinStats
        const name = 'abc'[i]
        // the attacker's connection got its budget, no more; the rest was dropped unread
        expect(s.direct, `${name} direct`).to.be.at.most(budget)
        expect(s.direct + s.dropped, `${name} direct + dropped`).to.be.at.least(FLOOD)
        // relayed once to each of the two other members, never more; relays are never relayed on
        expect(s.relayed, `${name} relayed`).to.be.at.most(2 * s.direct)
        expect(s.relayedIn, `${name} relays received`).to.be.at.most(2 * budget)
        // one event per distinct key (the fakes are all distinct), and the app saw exactly those
        const seen = [...events[i].values()]
        expect(seen.every((n) => n === 1), `${name}: a key surfaced twice`).to.equal(true)
        expect(s.events, `${name} events`).to.equal(seen.length)
        expect(s.events, `${name} events`).to.be.at.most(s.direct + s.relayedIn)
      }

      // a genuine newcomer still gets in: a member adds it when its request arrives
      const n = new Member(await tempDir('n'), { key: a.key })
      await n.open()
      dbs.push(n)
      const want = hex(n.writerKey)
      a.on('join-request', (r: JoinRequest) => { if (hex(r.key) === want) void a.addWriter(r.key) })
      await n.join({ swarm: { dht: testnet.createNode() } })
      n.requestJoin()
      await untilEvents([...members, n], ['update', 'writer-add', 'peer-add'], () => n.writable,
        () => `newcomer not writable; peers ${n.peers}; ` + members.map((m) => JSON.stringify(m.joinStats)).join(' '))
      expect(events[0].get(want), 'a surfaced the newcomer once').to.equal(1)
      for (const [i] of members.entries()) expect(events[i].get(want) ?? 0, `${'abc'[i]} surfaced the newcomer at most once`).to.be.at.most(1)
    })
  })

  describe('in process', () => {
    const discoveryKey = randomBytes(32)
    const cuts: Array<() => void> = []

    afterEach(() => {
      for (const cut of cuts.splice(0)) cut()
    })

    interface Node { sync: Sync, key: Buffer, events: JoinRequest[], warnings: Array<Record<string, unknown>>, members: Set<string> }

    /** A Sync over a bare protocol stream (no logs): a member, or a non-member (a seeder or a newcomer). */
    function node (member: boolean): Node {
      const key = randomBytes(32)
      const members = new Set<string>()
      const warnings: Array<Record<string, unknown>> = []
      const host: SyncHost = {
        replicate: (conn) => protocolStream(conn),
        discoveryKey,
        writerKey: key,
        get writable () { return member },
        isMember: (id) => members.has(id),
        logger: { warn: (fields) => { warnings.push(fields) } }
      }
      const sync = new Sync(host)
      const events: JoinRequest[] = []
      sync.on('join-request', (r: JoinRequest) => { events.push(r) })
      if (member) members.add(hex(key))
      return { sync, key, events, warnings, members }
    }

    function link (x: Node, y: Node): void {
      cuts.push(pipe(x.sync.add(true), y.sync.add(false)))
    }

    it('a request reaches members one hop from a seeder the newcomer meets, and goes no further', async () => {
      const newcomer = node(false)
      const seeder = node(false)
      const m1 = node(true)
      const m2 = node(true)
      const far = node(true)
      // newcomer — seeder — {m1, m2}; m1 — m2; m2 — far (two hops from the seeder)
      link(seeder, m1)
      link(seeder, m2)
      link(m1, m2)
      link(m2, far)
      await until(() => seeder.sync.channels === 2 && m2.sync.channels === 3, () => `seeder ${seeder.sync.channels}, m2 ${m2.sync.channels} channels`)
      // asked before its channel is open: sent as it opens
      expect(newcomer.sync.requestJoin()).to.equal(0)
      link(newcomer, seeder)
      await until(() => m1.events.length === 1 && m2.events.length === 1, () => `m1 ${m1.events.length}, m2 ${m2.events.length}`)
      for (const m of [m1, m2]) {
        expect(hex(m.events[0].key)).to.equal(hex(newcomer.key))
        expect(m.events[0].relayed).to.equal(true)
      }
      // the seeder relayed once to each other connection; m1 and m2 relayed nothing (it was a relay)
      await quiet(() => JSON.stringify([seeder, m1, m2, far].map((x) => x.sync.stats)), 300, 3000)
      expect(seeder.sync.stats).to.include({ direct: 1, relayed: 2, events: 0 })
      for (const m of [m1, m2]) expect(m.sync.stats).to.include({ relayedIn: 1, relayed: 0, events: 1, direct: 0 })
      expect(far.sync.stats.relayedIn + far.sync.stats.direct, 'two hops from the seeder: not reached').to.equal(0)

      // asked again: the newcomer's direct request is not relayed again within the interval,
      // and the members surface it no more
      expect(newcomer.sync.requestJoin()).to.equal(1)
      await until(() => seeder.sync.stats.direct === 2, () => JSON.stringify(seeder.sync.stats))
      await quiet(() => JSON.stringify([seeder, m1, m2].map((x) => x.sync.stats)), 300, 3000)
      expect(seeder.sync.stats.relayed).to.equal(2)
      expect(m1.events.length + m2.events.length).to.equal(2)
    })

    it('one connection\'s flood costs its budget, is logged once, and never surfaces a key twice', async () => {
      const m = node(true)
      const other = node(true)
      link(m, other)
      await until(() => m.sync.channels === 1, () => 'm and other never opened their channels')
      const stream = protocolStream(false)
      cuts.push(pipe(m.sync.add(true), stream))
      const keys = Array.from({ length: 10 }, () => randomBytes(32))
      let sent = false
      rawChannel(stream, discoveryKey, [], (msg) => {
        for (let i = 0; i < 1000; i++) msg.send(keys[i % keys.length])
        sent = true
      })
      await until(() => sent && m.sync.stats.direct + m.sync.stats.dropped === 1000, () => JSON.stringify(m.sync.stats))
      const s = m.sync.stats
      expect(s.direct).to.be.within(JOIN_BURST, JOIN_BURST + 2)
      expect(s.events, 'each of the 10 keys once').to.equal(10)
      expect(s.repeats).to.equal(s.direct - 10)
      expect(s.relayed, 'each key relayed once to the other member').to.equal(10)
      expect(m.warnings, 'one log line for the whole flood').to.have.length(1)
      expect(m.warnings[0].dropped).to.equal(1)
      await until(() => other.sync.stats.relayedIn === 10, () => JSON.stringify(other.sync.stats))
      expect(other.sync.stats).to.include({ events: 10, relayed: 0, dropped: 0 })
    })

    it('a peer on the previous wire format: our relays do not reach it (ignored, the connection stays), its relays are relayed once', async () => {
      const newcomer = node(false)
      const seeder = node(false)
      const member = node(true)
      link(seeder, member)
      // the old peer knows only message 0, and would relay what it receives there to everyone
      const old = protocolStream(false)
      cuts.push(pipe(seeder.sync.add(true), old))
      const oldGot: Buffer[] = []
      let oldChannel: Message | null = null
      rawChannel(old, discoveryKey, oldGot, (msg) => { oldChannel = msg })
      await until(() => oldChannel !== null && seeder.sync.channels === 2, () => `seeder has ${seeder.sync.channels} channels open`)
      const fromOld = oldChannel as unknown as Message

      // what an old peer relays looks like a request: relayed once, as a relay
      const stranger = randomBytes(32)
      fromOld.send(stranger)
      await until(() => member.events.length === 1, () => JSON.stringify(member.sync.stats))
      expect(hex(member.events[0].key)).to.equal(hex(stranger))
      expect(member.events[0].relayed).to.equal(true)
      expect(seeder.sync.stats).to.include({ direct: 1, relayed: 1 })
      // sent again (its relays repeat): not relayed again within the interval
      fromOld.send(stranger)
      await until(() => seeder.sync.stats.direct === 2, () => JSON.stringify(seeder.sync.stats))
      expect(seeder.sync.stats.relayed).to.equal(1)

      // a newcomer's request: relayed to the member and to the old peer, which ignores message 1
      newcomer.sync.requestJoin()
      link(newcomer, seeder)
      await until(() => member.events.length === 2, () => JSON.stringify(seeder.sync.stats))
      expect(seeder.sync.stats.relayed, 'to the member and to the old peer').to.equal(3)
      await quiet(() => JSON.stringify([seeder.sync.stats, member.sync.stats, oldGot.length]), 300, 3000)
      expect(oldGot, 'nothing reached the old peer as a request it would relay').to.deep.equal([])
      expect(old.destroyed, 'the old peer\'s connection stays').to.equal(false)
      fromOld.send(randomBytes(32))
      await until(() => seeder.sync.stats.direct === 4, () => JSON.stringify(seeder.sync.stats))
      expect(member.events).to.have.length(3)
    })
  })
})
