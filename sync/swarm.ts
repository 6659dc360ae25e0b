/**
 * Hyperswarm sync: peers meet on the database's discovery key and replicate every log through the
 * Corestore on each connection. A small protomux channel on the same connection carries join
 * requests: a peer that is not a member sends its writer key; members surface it as an event and
 * the app decides. Nothing is added by itself.
 *
 * Relays are bounded by construction. The channel has two messages: `request` (message 0, a
 * writer key sent by the requester itself) and `relay` (message 1, the same key sent on by a
 * peer that received it as a request). A peer relays a request once to its other connections,
 * and never relays a relay, so a request travels at most two hops (requester → seeder → member)
 * and no echo can come back to be relayed again, whatever any memory forgets. Each connection
 * has a budget of incoming messages (a token bucket): what exceeds it is dropped unread and
 * counted, so one connection's messages cost at most its budget in events, and its budget times
 * (connections − 1) in relays. A key is relayed at most once, and surfaced as an event at most
 * once, per interval per peer.
 *
 * Peers running the previous code know only message 0, and relay what it carries to everyone.
 * Protomux ignores a message type a channel does not know, so they drop our relays (members
 * behind such a peer are not reached through it: fail safe); and we send message 0 only with our
 * own key, so we never feed their relays. What they relay reaches us as a request and is relayed
 * once more, as a relay.
 *
 * Every peer keeps every reached log fully downloaded (the engine asks for all of it), so any
 * peer — member or not — serves the logs to others: a peer that opens the database by key and
 * joins is a seeder.
 */
import { EventEmitter } from 'node:events'
import c from 'compact-encoding'
import Hypercore from 'hypercore'
import type Hyperswarm from 'hyperswarm'
import Protomux, { type Channel, type Message } from 'protomux'
import type { Duplex } from 'node:stream'
import type { HyperswarmLike, JoinRequest, JoinStats, SwarmOptions } from './types.js'

export type { JoinRequest, JoinStats, SwarmOptions }

/**
 * What sync needs of the database it carries, given at construction: sync/ never imports lib/.
 */
export interface SyncHost {
  /** A replication stream of every log (corestore replication) over `conn`. */
  replicate: (conn: boolean | Duplex) => Duplex
  /** The topic peers meet on. */
  readonly discoveryKey: Buffer
  /** This peer's writer key, sent in its join requests. */
  readonly writerKey: Buffer
  /** Whether this peer is a member now (only members surface join requests). */
  readonly writable: boolean
  /** Whether a writer key (hex) is a member already. */
  isMember: (id: string) => boolean
  /** Where to log (a pino logger fits); nothing is logged without one. */
  readonly logger?: { warn: (fields: Record<string, unknown>, msg: string) => void }
}

interface Peer {
  conn: Duplex & { remotePublicKey?: Buffer }
  channel: Channel | null
  /** Message 0: a writer key sent by its owner (or relayed by a peer running the previous code). */
  request: Message | null
  /** Message 1: a writer key relayed by the peer at the other end; never relayed on. */
  relay: Message | null
  /** Incoming messages this connection may still send now (refilled at RATE a second, up to BURST)… */
  tokens: number
  /** …as of this time (performance.now()). */
  filled: number
  /** A connection of the swarm (rather than a `db.replicate()` stream): leave() drops it. */
  swarm: boolean
}

const PROTOCOL = 'meshbee/join/v1'
/** A key is relayed, and surfaced as a 'join-request', at most once per this many ms per peer… */
export const JOIN_INTERVAL = 60_000
/** …and this many keys are remembered for each (a full memory refuses new keys until some expire). */
export const JOIN_KEYS = 4096
/** The budget of each connection: this many incoming join messages at once… */
export const JOIN_BURST = 32
/** …refilled at this many a second. */
export const JOIN_RATE = 4
/** Dropped messages are logged at most once per this many ms. */
const LOG_EVERY = 10_000

/**
 * Keys seen within the last `every` ms, at most `max` of them. Time is monotonic (a wall clock
 * set back cannot keep keys fresh), and entries are kept in the order they were taken, so expired
 * ones are forgotten from the front: each costs O(1), however many arrive.
 */
class Recent {
  private readonly at = new Map<string, number>()
  constructor (private readonly every: number, private readonly max: number) {}

  /** Whether `id` was taken within the interval or cannot be taken now (the memory is full of fresher keys). */
  has (id: string, now: number): boolean {
    this.expire(now)
    return this.at.has(id) || this.at.size >= this.max
  }

  /** Remembers `id` as taken now (after `has` said it is not). */
  take (id: string, now: number): void {
    this.at.set(id, now)
  }

  private expire (now: number): void {
    for (const [id, t] of this.at) {
      if (now - t < this.every) return
      this.at.delete(id)
    }
  }
}

export class Sync extends EventEmitter {
  swarm: Hyperswarm | null = null
  private owned = false
  private discovery: { destroy: () => Promise<void>, flushed: () => Promise<void> } | null = null
  private readonly peers = new Set<Peer>()
  private asking = false
  /** How many times leave() was called: a join that began before the last one makes no swarm. */
  private leaves = 0
  /** Keys relayed within the interval. */
  private readonly relayed = new Recent(JOIN_INTERVAL, JOIN_KEYS)
  /** Keys surfaced as 'join-request' within the interval. */
  private readonly surfaced = new Recent(JOIN_INTERVAL, JOIN_KEYS)
  /** Counters of the join channel. */
  readonly stats: JoinStats = { direct: 0, relayedIn: 0, dropped: 0, relayed: 0, events: 0, repeats: 0 }
  /** When dropped messages were last logged, and how many were dropped since. */
  private loggedAt = -Infinity
  private droppedSinceLog = 0
  private readonly onconnection = (conn: Duplex & { remotePublicKey?: Buffer }): void => { this.add(conn) }

  constructor (private readonly host: SyncHost) {
    super()
  }

  get connections (): number {
    return this.peers.size
  }

  /** How many connections have the join channel open (the others may not carry requests yet, or ever). */
  get channels (): number {
    let n = 0
    for (const p of this.peers) if (p.channel?.opened === true) n++
    return n
  }

  /** `adopt`: the swarm given was made for this database (MeshDB.pair): destroyed on leave, as one made here. */
  async join (opts: SwarmOptions = {}, adopt = false): Promise<void> {
    const leaves = this.leaves
    // loaded on the first join (~200 ms): a database that never goes online does not pay for it
    const { default: Hyperswarm } = await import('hyperswarm')
    // a leave() (or close) while the module loaded wins: no swarm is made after it
    if (this.swarm !== null || this.leaves !== leaves) return
    const given = opts.swarm
    // an app's swarm is recognised by its shape: its hyperswarm may be another copy than meshbee's
    const shared = given !== undefined && typeof (given as HyperswarmLike).join === 'function' && typeof (given as HyperswarmLike).on === 'function'
    this.owned = !shared || adopt
    this.swarm = shared ? given as unknown as Hyperswarm : new Hyperswarm((given ?? {}) as Record<string, unknown>)
    this.swarm.on('connection', this.onconnection)
    // connections the swarm already holds (pairing's, on a swarm given for it) replicate too:
    // Hyperswarm keeps one connection a peer, so none would come again
    for (const conn of (this.swarm as unknown as { connections?: Iterable<Duplex & { remotePublicKey?: Buffer }> }).connections ?? []) this.add(conn)
    this.discovery = this.swarm.join(this.host.discoveryKey, { client: true, server: true })
    await this.discovery.flushed()
  }

  async leave (): Promise<void> {
    this.leaves++
    const swarm = this.swarm
    if (swarm === null) return
    this.swarm = null
    swarm.off('connection', this.onconnection)
    if (this.discovery !== null) await this.discovery.destroy()
    this.discovery = null
    // The swarm's connections end here: each one's 'peer-remove' is emitted now (their 'close'
    // comes later, or never on a caller's swarm that keeps them). db.replicate() streams stay.
    const dropped = [...this.peers].filter((p) => p.swarm)
    for (const p of dropped) {
      this.peers.delete(p)
      this.emit('peer-remove', p.conn.remotePublicKey ?? null)
    }
    if (this.owned) await swarm.destroy()
    else for (const p of dropped) p.conn.destroy()
  }

  /**
   * Replicates every log over a connection (a swarm connection, or `true`/`false` for an
   * in-process stream as in `db.replicate`), with the join channel beside the logs.
   */
  add (conn: boolean | (Duplex & { remotePublicKey?: Buffer })): Duplex {
    const stream = this.host.replicate(conn) as Duplex & { remotePublicKey?: Buffer }
    stream.on('error', () => {})
    const peer: Peer = {
      conn: typeof conn === 'boolean' ? stream : conn,
      channel: null,
      request: null,
      relay: null,
      tokens: JOIN_BURST,
      filled: performance.now(),
      swarm: typeof conn !== 'boolean'
    }
    conn = peer.conn
    this.attach(peer, Hypercore.getProtocolMuxer(stream))
    this.peers.add(peer)
    const key = conn.remotePublicKey ?? null
    this.emit('peer-add', key)
    conn.once('close', () => {
      if (this.peers.delete(peer)) this.emit('peer-remove', key)
    })
    return stream
  }

  private attach (peer: Peer, mux: Protomux): void {
    const channel = mux.createChannel({
      protocol: PROTOCOL,
      id: this.host.discoveryKey,
      // protomux sets `opened` only after onopen returns, so send here without that check.
      onopen: () => { if (this.asking && peer.request !== null) peer.request.send(this.host.writerKey) }
    })
    if (channel === null) return
    peer.channel = channel
    peer.request = channel.addMessage({ encoding: c.fixed32, onmessage: (key: Buffer) => { this.receive(peer, key, false) } })
    peer.relay = channel.addMessage({ encoding: c.fixed32, onmessage: (key: Buffer) => { this.receive(peer, key, true) } })
    channel.open()
  }

  /**
   * One join message from `peer`: within the connection's budget, surfaced (a member, once per key
   * per interval) and, if it came from the requester's side rather than as a relay, relayed once
   * per key per interval to every other connection, member or not, so a newcomer that meets only
   * a seeder still reaches the members connected to it.
   */
  private receive (peer: Peer, key: Buffer, relayed: boolean): void {
    const now = performance.now()
    if (!this.spend(peer, now)) {
      this.stats.dropped++
      this.droppedSinceLog++
      if (now - this.loggedAt >= LOG_EVERY) {
        this.host.logger?.warn({ dropped: this.droppedSinceLog, total: this.stats.dropped, peer: peer.conn.remotePublicKey?.toString('hex') ?? null },
          'join requests over a connection\'s budget dropped')
        this.loggedAt = now
        this.droppedSinceLog = 0
      }
      return
    }
    if (relayed) this.stats.relayedIn++
    else this.stats.direct++
    const id = key.toString('hex')
    if (this.host.isMember(id) || Buffer.compare(key, this.host.writerKey) === 0) return
    if (this.host.writable) {
      if (this.surfaced.has(id, now)) this.stats.repeats++
      else {
        this.surfaced.take(id, now)
        this.stats.events++
        const request: JoinRequest = { key: Buffer.from(key), remotePublicKey: peer.conn.remotePublicKey ?? null, relayed }
        this.emit('join-request', request)
      }
    }
    // A relay is never relayed again: that alone ends every echo.
    if (relayed || this.relayed.has(id, now)) return
    let sent = 0
    for (const other of this.peers) {
      if (other !== peer && other.channel?.opened === true && other.relay !== null) {
        other.relay.send(key)
        sent++
      }
    }
    // remembered only once it went somewhere: a peer met later still gets the next one
    if (sent > 0) this.relayed.take(id, now)
    this.stats.relayed += sent
  }

  /** Takes one message from the budget of `peer`'s connection: false if it is spent. */
  private spend (peer: Peer, now: number): boolean {
    peer.tokens = Math.min(JOIN_BURST, peer.tokens + (now - peer.filled) * JOIN_RATE / 1000)
    peer.filled = now
    if (peer.tokens < 1) return false
    peer.tokens--
    return true
  }

  private send (peer: Peer): void {
    if (peer.channel?.opened === true && peer.request !== null) peer.request.send(this.host.writerKey)
  }

  /** Asks every connected peer, and every peer met later, to add this peer; until it is a member. */
  requestJoin (): number {
    this.asking = !this.host.writable
    if (!this.asking) return 0
    let asked = 0
    for (const p of this.peers) {
      if (p.channel?.opened === true) {
        this.send(p)
        asked++
      }
    }
    return asked
  }

  /** Stops asking once this peer has become a member. */
  membershipChanged (): void {
    if (this.host.writable) this.asking = false
  }
}
