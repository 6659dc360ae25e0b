/**
 * The IPC protocol between test/sync.test.ts (the parent) and test/fixtures/sync-peer.ts (one
 * peer per child process). Plain JSON over the IPC channel: keys, values and hashes travel as hex.
 *
 * The parent sends a {@link Request}; the child answers with a {@link Reply} carrying the same id.
 * The child also pushes {@link PeerEvent}s (db events) unprompted, so the parent can re-check its
 * conditions when something happens instead of sleeping.
 */

/** A write, as the child applies it to its MeshDB (string keys and values, utf8). */
export type WriteOp =
  | { type: 'put', key: string, value: string }
  | { type: 'del', key: string }
  | { type: 'patch', key: string, fields: Record<string, string | number | boolean | null> }
  | { type: 'sadd', key: string, member: string }

export type Command =
  /** Opens (or reopens) the database at `dir`; with `key`, an existing database by its key. */
  | { cmd: 'open', dir: string, key?: string }
  /**
   * Joins the swarm on a fresh DHT node of the test's testnet. With `own`, the child makes the
   * Hyperswarm itself and hands it to join() (so that 'drop' can reach its connections).
   */
  | { cmd: 'join', own?: boolean }
  | { cmd: 'leave' }
  /** Destroys every live connection of the child's own swarm; Hyperswarm reconnects by itself. */
  | { cmd: 'drop' }
  | { cmd: 'requestJoin' }
  /** Adds every peer that asks ('join-request') as a writer. */
  | { cmd: 'autoAdd' }
  | { cmd: 'addWriter', key: string }
  /** Applies the writes one after the other, each awaited. */
  | { cmd: 'write', ops: WriteOp[] }
  | { cmd: 'get', key: string }
  /** The view as it is now: no update() is called, the peer only reads. */
  | { cmd: 'dump' }
  /** Closes the database; the child then lets go of the IPC channel and must exit by itself. */
  | { cmd: 'close' }

export type Request = Command & { id: number }

export interface WriterReport { key: string, length: number, folded: number, member: boolean }

export interface Stats { folds: number, diffEntries: number, keysMerged: number, badEntries: number, clampedStamps: number }

export interface OpenResult { key: string, writerKey: string, writable: boolean, stats: Stats, hash: string }

export interface Dump {
  /** [key hex, value hex] in iteration order. */
  entries: Array<[string, string]>
  hash: string
  writable: boolean
  peers: number
  writers: WriterReport[]
  stats: Stats
}

export interface CloseReport {
  /** db.peers right after close(). */
  peers: number
  /** Whether the DHT node under the swarm was destroyed (Hyperswarm.destroy destroys it). */
  dhtDestroyed: boolean
  /** Whether a swarm was ever joined in this process. */
  joined: boolean
}

export type Reply =
  | { id: number, ok: true, result: unknown }
  | { id: number, ok: false, error: string }

export type PeerEvent =
  | { event: 'update' }
  | { event: 'peer-add' }
  | { event: 'peer-remove' }
  | { event: 'writer-add', key: string }
  | { event: 'join-request', key: string }

export type ChildMessage = Reply | PeerEvent
