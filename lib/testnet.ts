/**
 * A local DHT for trying meshbee without the public network: two databases in one process, or
 * several processes on one machine (`meshbee testnet` runs one). Import it from `meshbee/testnet`.
 *
 * @example
 * ```ts
 * import { MeshDB } from 'meshbee'
 * import { startTestnet } from 'meshbee/testnet'
 *
 * const testnet = await startTestnet()
 * await db.join({ swarm: testnet.swarmOptions() })   // in this process
 * // in another process on this machine: { bootstrap: testnet.bootstrap } with a HyperDHT node
 * // created with firewalled: false (or `meshbee join --bootstrap host:port`)
 * ```
 *
 * @packageDocumentation
 */
import createTestnet from 'hyperdht/testnet.js'
import type { HostPort, HyperswarmOptions } from '../sync/types.js'

/** A running local DHT. */
export interface Testnet {
  /** Its bootstrap nodes on loopback: what other processes pass as `bootstrap`. */
  readonly bootstrap: readonly HostPort[]
  /**
   * Options for a database's `join({ swarm })` in this process: a Hyperswarm on a new DHT node of
   * this testnet (a swarm given only `bootstrap` would connect one way and never replicate here).
   */
  swarmOptions: () => HyperswarmOptions
  /** Stops every node of the testnet. Leave (or close) the databases on it first. */
  destroy: () => Promise<void>
}

/**
 * Starts a local DHT of `size` nodes (default 3) on 127.0.0.1; its first node listens on
 * `opts.port` (default: any free port).
 *
 * @throws TypeError for a size below 1 or a port that is not one
 */
export async function startTestnet (size = 3, opts: { port?: number } = {}): Promise<Testnet> {
  if (!Number.isSafeInteger(size) || size < 1) throw new TypeError('size must be a whole number of nodes, at least 1')
  if (opts.port !== undefined && !(Number.isInteger(opts.port) && opts.port >= 0 && opts.port <= 65535)) throw new TypeError('port must be 0-65535')
  const net = await createTestnet(size, { host: '127.0.0.1', port: opts.port })
  return {
    bootstrap: net.bootstrap.map(({ host, port }) => ({ host, port })),
    swarmOptions: () => ({ dht: net.createNode() }),
    destroy: async () => { await net.destroy() }
  }
}
