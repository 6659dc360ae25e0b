/**
 * Hyperswarm sync: peers meet on the database's discovery key and replicate every log through the
 * Corestore on each connection. A small protomux channel on the same connection carries join
 * requests: a peer that is not a member sends its writer key; members surface it as an event and
 * the app decides, and every peer relays it (once a minute per key) to its other connections, so
 * it also reaches members behind a seeder. Nothing is added by itself.
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
import type { HyperswarmLike, JoinRequest, SwarmOptions } from './types.js'

export type { JoinRequest, SwarmOptions }

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
}

interface Peer {
  conn: Duplex & { remotePublicKey?: Buffer }
  channel: Channel | null
  request: Message | null
  /** A connection of the swarm (rather than a `db.replicate()` stream): leave() drops it. */
  swarm: boolean
}

const PROTOCOL = 'meshbee/join/v1'
/** A join request for one key is relayed at most once per this many ms… */
const RELAY_EVERY = 60_000
/** …and this many keys are remembered for that. */
const RELAY_KEYS = 1024

export class Sync extends EventEmitter {
  swarm: Hyperswarm | null = null
  private owned = false
  private discovery: { destroy: () => Promise<void>, flushed: () => Promise<void> } | null = null
  private readonly peers = new Set<Peer>()
  private asking = false
  /** How many times leave() was called: a join that began before the last one makes no swarm. */
  private leaves = 0
  private readonly relayed = new Map<string, number>()
  private readonly onconnection = (conn: Duplex & { remotePublicKey?: Buffer }): void => { this.add(conn) }

  constructor (private readonly host: SyncHost) {
    super()
  }

  get connections (): number {
    return this.peers.size
  }

  async join (opts: SwarmOptions = {}): Promise<void> {
    const leaves = this.leaves
    // loaded on the first join (~200 ms): a database that never goes online does not pay for it
    const { default: Hyperswarm } = await import('hyperswarm')
    // a leave() (or close) while the module loaded wins: no swarm is made after it
    if (this.swarm !== null || this.leaves !== leaves) return
    const given = opts.swarm
    // an app's swarm is recognised by its shape: its hyperswarm may be another copy than meshbee's
    const shared = given !== undefined && typeof (given as HyperswarmLike).join === 'function' && typeof (given as HyperswarmLike).on === 'function'
    this.owned = !shared
    this.swarm = shared ? given as unknown as Hyperswarm : new Hyperswarm((given ?? {}) as Record<string, unknown>)
    this.swarm.on('connection', this.onconnection)
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
    const peer: Peer = { conn: typeof conn === 'boolean' ? stream : conn, channel: null, request: null, swarm: typeof conn !== 'boolean' }
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
    peer.request = channel.addMessage({
      encoding: c.fixed32,
      onmessage: (key: Buffer) => {
        const id = key.toString('hex')
        if (this.host.isMember(id) || Buffer.compare(key, this.host.writerKey) === 0) return
        if (this.host.writable) {
          const request: JoinRequest = { key: Buffer.from(key), remotePublicKey: peer.conn.remotePublicKey ?? null }
          this.emit('join-request', request)
        }
        // Relayed once a while to every other connected peer, member or not, so a newcomer that
        // meets only a seeder still reaches the members behind it.
        if (this.relayOnce(id)) for (const other of this.peers) if (other !== peer) this.send(other, key)
      }
    })
    channel.open()
  }

  private send (peer: Peer, key: Uint8Array = this.host.writerKey): void {
    if (peer.channel?.opened === true && peer.request !== null) peer.request.send(key)
  }

  /**
   * Whether to relay a request for `id` now: at most once per RELAY_EVERY ms per key, and at most
   * RELAY_KEYS keys remembered (the oldest forgotten first), so relays cannot loop or be amplified
   * without bound by a peer that sends many keys.
   */
  private relayOnce (id: string): boolean {
    const now = Date.now()
    const last = this.relayed.get(id)
    if (last !== undefined && now - last < RELAY_EVERY) return false
    this.relayed.delete(id)
    this.relayed.set(id, now)
    if (this.relayed.size > RELAY_KEYS) this.relayed.delete(this.relayed.keys().next().value as string)
    return true
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
