/**
 * meshbee: a leaderless, multi-writer, offline-first key-value database. Every device writes to
 * its own signed Hypercore log; a deterministic merge engine folds all members' logs into one
 * local view that speaks the abstract-level API. Peers replicate over Hyperswarm.
 *
 * @example
 * ```ts
 * import { MeshDB } from 'meshbee'
 *
 * const a = new MeshDB<string, { title: string }>('./a', { valueEncoding: 'json' })
 * await a.put('todo/1', { title: 'milk' })
 *
 * const b = new MeshDB<string, { title: string }>('./b', { key: a.key, valueEncoding: 'json' })
 * await b.open()
 * await a.addWriter(b.writerKey)
 *
 * const s = a.replicate(true)
 * s.pipe(b.replicate(false)).pipe(s)
 * ```
 *
 * @packageDocumentation
 */
export { MeshDB } from './lib/meshdb.js'
export type {
  ChangeIterator, ChangesOptions, CorestoreLike, Cuts, DelOperation, FeedChange, IndexDeclaration, IndexEntry, IndexKeyValue, KeyRange, QueryOptions, SearchResult, DiffChange, HostPort, HyperswarmLike, HyperswarmOptions, JoinRequest, KeyType, KeyVersion,
  InviteInfo, MembersRange, MeshDBOptions, PatchOperation, PutOperation, SetOperation, Stats, DbStats, DiskBytes, CompactProgress, CompactResult, SwarmOptions, VerifyResult, WatchChange, WatchOptions, WriteOperation, WriterInfo
} from './lib/types.js'
export { MeshError, MeshTypeError } from './lib/errors.js'
export type { ErrorCode } from './lib/errors.js'
export type { IndexInfo } from './lib/indexes.js'
export { ClockAheadError, HLC, compareStamps, compareVersions, stampToString, stampFromString } from './crdt/hlc.js'
/** The lead rule's bound (ms): how far a stamp may run past the newest stamp its writer had seen from another writer. */
export { MAX_LEAD } from './lib/entry.js'
export type { HLCOptions, ObserveResult, Stamp, Version } from './crdt/hlc.js'
export type { Json } from './crdt/json.js'
