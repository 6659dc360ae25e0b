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
  /** The requester's connection key (its swarm identity), or null for an in-process stream. */
  remotePublicKey: Buffer | null
}
