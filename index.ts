/**
 * meshbee — a leaderless multi-writer CRDT database on Hypercore, read through abstract-level.
 *
 * @example
 * import { MeshDB } from 'meshbee'
 * const a = new MeshDB('./a', { valueEncoding: 'json' })
 * await a.put('todo/1', { title: 'milk' })
 * const b = new MeshDB('./b', { key: a.key, valueEncoding: 'json' })
 * await b.open()
 * await a.addWriter(b.writerKey)
 * const s = a.replicate(true); s.pipe(b.replicate(false)).pipe(s)
 *
 * @packageDocumentation
 */
export { MeshDB } from './lib/meshdb.js'
export type { MeshDBOptions } from './lib/meshdb.js'
export type { EngineStats } from './lib/engine.js'
export { MeshError, MeshTypeError } from './lib/errors.js'
export type { ErrorCode } from './lib/errors.js'
export { HLC, compareStamps, compareVersions, stampToString, stampFromString } from './crdt/hlc.js'
export type { Stamp, Version } from './crdt/hlc.js'
