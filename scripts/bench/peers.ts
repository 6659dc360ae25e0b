/**
 * Multi-peer setups for meshbee and for autobase, built the same way: the first peer creates the
 * database, adds every other peer as a writer (autobase: as an indexer), they replicate in process
 * until all are writable, then the links are cut.
 */
// meshbee is loaded only by meshbee's trials: importing it patches Hypercore (lib/hypercore-patch.ts),
// and the anchors' trials (autobase) must run Hypercore as released.
import type { MeshDB } from '../../index.js'
import { Corestore, Hyperbee, pipe, require, tempDir, until, type Value } from './common.js'

/* eslint-disable @typescript-eslint/no-explicit-any */
const Autobase: any = require('autobase')

// ---------------------------------------------------------------- meshbee

export type Mesh = MeshDB<string, Value>

export function link (a: Mesh, b: Mesh): () => void {
  return pipe(a.replicate(true), b.replicate(false))
}

export async function meshPeers (n: number): Promise<Mesh[]> {
  const { MeshDB } = await import('../../index.js')
  const first = new MeshDB<string, Value>(await tempDir('mesh-0'), { valueEncoding: 'json' })
  await first.open()
  const peers = [first]
  for (let i = 1; i < n; i++) {
    const p = new MeshDB<string, Value>(await tempDir(`mesh-${i}`), { key: first.key, valueEncoding: 'json' })
    await p.open()
    await first.addWriter(p.writerKey)
    peers.push(p)
  }
  const links = peers.slice(1).map((p) => link(first, p))
  await until(async () => {
    for (const p of peers) await p.update()
    return peers.every((p) => p.writable)
  }, { wakeOn: peers, pollMs: 20, what: () => 'meshbee peers to become writable' })
  for (const cut of links) cut()
  return peers
}

/** Every writer's own log length, from the peer that owns it. */
export function ownLengths (peers: Mesh[]): Map<string, number> {
  const out = new Map<string, number>()
  for (const p of peers) {
    const own = p.writers().find((w) => w.local)
    if (own !== undefined) out.set(own.key.toString('hex'), own.length)
  }
  return out
}

/**
 * Whether `peers` hold identical views that reflect every writer's whole log: db.hash() equal
 * everywhere and, on every peer, each writer folded up to its true length.
 */
export function meshConverged (peers: Mesh[], lengths: Map<string, number>): boolean {
  const h = peers[0].hash()
  for (const p of peers) {
    if (!p.hash().equals(h)) return false
    const folded = new Map(p.writers().map((w) => [w.key.toString('hex'), w.folded]))
    for (const [k, len] of lengths) if (folded.get(k) !== len) return false
  }
  return true
}

/** The state behind meshConverged, for a timeout message. */
export function meshState (peers: Mesh[]): string {
  return peers.map((p, i) => `peer ${i} hash ${p.hash().toString('hex').slice(0, 8)} writers ` +
    p.writers().map((w) => `${w.key.toString('hex').slice(0, 6)} ${w.folded}/${w.length}${w.local ? '*' : ''}`).join(', ')).join('; ')
}

export async function closeMesh (peers: Mesh[]): Promise<void> {
  for (const p of peers) if (p.status !== 'closed') await p.close()
}

// ---------------------------------------------------------------- autobase

export interface Base {
  base: any
  store: any
  /** Nodes handed to apply() on this base (re-applies after a reorder count again). */
  applied: number
}

/**
 * An autobase peer with a Hyperbee view: its apply adds the writers named by `{ addWriter }` as
 * indexers, deletes `{ del }` and puts `{ key, value }`.
 */
export function makeBase (store: any, bootstrap: Buffer | null): Base {
  const b: Base = { base: null, store, applied: 0 }
  b.base = new Autobase(store, bootstrap, {
    valueEncoding: 'json',
    open: (s: any) => new Hyperbee(s.get('view'), { extension: false, keyEncoding: 'utf-8', valueEncoding: 'json' }),
    apply: async (nodes: Array<{ value: any }>, view: any, host: any) => {
      for (const { value } of nodes) {
        b.applied++
        if (value.addWriter !== undefined) await host.addWriter(Buffer.from(value.addWriter, 'hex'), { indexer: true })
        else if (value.del !== undefined) await view.del(value.del)
        else await view.put(value.key, value.value)
      }
    }
  })
  return b
}

export function linkBases (a: Base, b: Base): () => void {
  return pipe(a.base.replicate(true), b.base.replicate(false))
}

/** Autobase peers: the first creates the base and adds the others as indexers. */
export async function basePeers (n: number): Promise<Base[]> {
  const first = makeBase(new Corestore(await tempDir('ab-0')), null)
  await first.base.ready()
  const bases = [first]
  for (let i = 1; i < n; i++) {
    const b = makeBase(new Corestore(await tempDir(`ab-${i}`)), first.base.key)
    await b.base.ready()
    bases.push(b)
  }
  for (const b of bases.slice(1)) await first.base.append({ addWriter: b.base.local.key.toString('hex') })
  const links = bases.slice(1).map((b) => linkBases(first, b))
  await until(async () => {
    await Promise.all(bases.map(async (b) => await b.base.update()))
    return bases.every((b) => b.base.writable)
  }, { wakeOn: bases.map((b) => b.base), pollMs: 20, what: () => 'autobase peers to become writable' })
  for (const cut of links) cut()
  return bases
}

/** All entries of a base's view, as one string: cheap enough to compare views of a few thousand keys. */
export async function viewDump (b: Base): Promise<string> {
  const view = b.base.view
  const parts: string[] = []
  for await (const node of view.createReadStream()) parts.push(node.key, JSON.stringify(node.value))
  return parts.join('\n')
}

/**
 * A convergence check for autobase: every view at the same version, with `count` entries (if
 * given) and the same contents. Contents are read when the versions line up: at once for a new set
 * of versions, then at most every 50 ms (reading views costs time the bases could spend converging).
 */
export function baseChecker (bases: Base[], count?: number): () => Promise<boolean> {
  let last = -Infinity
  let lastSig = ''
  return async () => {
    const vs = bases.map((b) => b.base.view.version as number).join(',')
    if (!bases.every((b) => b.base.view.version === bases[0].base.view.version)) return false
    if (vs === lastSig && performance.now() - last < 50) return false
    last = performance.now()
    lastSig = vs
    const dumps = await Promise.all(bases.map(viewDump))
    if (bases.map((b) => b.base.view.version as number).join(',') !== vs) return false
    const entries = dumps[0] === '' ? 0 : dumps[0].split('\n').length / 2
    return (count === undefined || entries === count) && dumps.every((d) => d === dumps[0])
  }
}

export async function closeBases (bases: Base[]): Promise<void> {
  for (const b of bases) {
    await b.base.close().catch(() => {})
    await b.store.close().catch(() => {})
  }
}
