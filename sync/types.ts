/**
 * The public types of sync/: what `join()` takes and what a join request carries. No Hyperswarm
 * import here, so the package's declarations need no types for it.
 */

/** A running Hyperswarm, as meshbee uses it (the `hyperswarm` package's instance). */
export interface HyperswarmLike {
  /** Joins a topic (the database's discovery key). */
  join: (topic: Uint8Array, opts?: { client?: boolean, server?: boolean }) => unknown
  /** Listens for connections. */
  on: (event: 'connection', listener: (...args: any[]) => void) => unknown
  /** Stops listening for connections. */
  off: (event: 'connection', listener: (...args: any[]) => void) => unknown
  /** Destroys the swarm (meshbee never destroys one it was given). */
  destroy: () => Promise<void>
}

/** A DHT node's address. */
export interface HostPort {
  /** Host name or IP address. */
  host: string
  /** UDP port. */
  port: number
}

/** Options for a Hyperswarm meshbee creates itself (passed to `new Hyperswarm(options)`). */
export interface HyperswarmOptions {
  /** DHT bootstrap nodes, for a private DHT (e.g. a local testnet): `host:port` or `{ host, port }`. */
  bootstrap?: Array<string | HostPort>
  /** A HyperDHT node to use instead of a new one (e.g. a testnet's `createNode()`). */
  dht?: unknown
  /** Any other option of `new Hyperswarm()`. */
  [option: string]: unknown
}

/** The options of `db.join()`. */
export interface SwarmOptions {
  /**
   * An existing Hyperswarm (it is shared, and left running when the database leaves), or options
   * for one meshbee creates (and destroys on leave).
   */
  swarm?: HyperswarmLike | HyperswarmOptions
}

/** A non-member peer's request to be added as a writer (the `'join-request'` event). */
export interface JoinRequest {
  /** The writer key the requester asks to be added with: pass it to `addWriter` to accept. */
  key: Buffer
  /**
   * The connection key (swarm identity) of the peer it came from, or null for an in-process
   * stream: the requester's own, or, when `relayed`, the key of the peer that relayed it.
   */
  remotePublicKey: Buffer | null
  /** Whether another peer relayed it (the requester is one hop further away). */
  relayed: boolean
}

/**
 * Counters of the join-request channel, since the database was opened (`Sync.stats`). A relayed
 * request is never relayed again, so `relayed` can only grow while direct requests arrive: at
 * most `direct` × (connections − 1).
 */
export interface JoinStats {
  /** Requests sent by the peer at the other end of a connection (its own, or an older peer's relay), within budget. */
  direct: number
  /** Requests another peer relayed to this one, within budget (never relayed on). */
  relayedIn: number
  /** Requests over a connection's budget: dropped unread. */
  dropped: number
  /** Relays sent: one per other connection, for a direct request whose key was not relayed within the interval. */
  relayed: number
  /** `'join-request'` events emitted. */
  events: number
  /** Requests from a non-member for a key already surfaced within the interval (or with the memory full): no event. */
  repeats: number
}
