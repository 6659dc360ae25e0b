import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Duplex } from 'node:stream'
import { connect, pipe } from '../../scripts/link.js'
import Corestore from 'corestore'
import { MeshDB, type MeshDBOptions } from '../../index.js'

const dirs: string[] = []

/** A fresh temporary directory, removed by {@link cleanup}. */
export async function tempDir (name = 'db'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `meshbee-${name}-`))
  dirs.push(dir)
  return dir
}

export async function cleanup (...dbs: Array<MeshDB<any, any>>): Promise<void> {
  for (const db of dbs) if (db.status !== 'closed') await db.close()
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true })
}

/**
 * Resolves once `check` holds, re-checking it after each of the named `events` of any of `sources`
 * (and once at the start), and at least every 250 ms for conditions no event announces. Rejects
 * with `describe()` after `timeout` ms: a condition, never a fixed sleep.
 */
export async function untilEvents (sources: EventEmitterLike[], events: string[], check: () => Promise<boolean> | boolean, describe: () => Promise<string> | string = () => 'condition not met', timeout = 20_000): Promise<void> {
  let wake: () => void = () => {}
  const onEvent = (): void => wake()
  for (const s of sources) for (const e of events) s.on(e, onEvent)
  const deadline = Date.now() + timeout
  try {
    while (true) {
      const woke = new Promise<void>((resolve) => { wake = resolve })
      if (await check()) return
      if (Date.now() > deadline) throw new Error('timed out: ' + await describe())
      let timer: NodeJS.Timeout | undefined
      await Promise.race([woke, new Promise<void>((resolve) => { timer = setTimeout(resolve, Math.max(1, Math.min(250, deadline - Date.now()))) })])
      clearTimeout(timer)
    }
  } finally {
    for (const s of sources) for (const e of events) s.off(e, onEvent)
  }
}

interface EventEmitterLike {
  on: (event: string, fn: () => void) => unknown
  off: (event: string, fn: () => void) => unknown
}

/** {@link untilEvents} woken by the peers' 'update' events. */
export async function until (dbs: Array<MeshDB<any, any>>, check: () => Promise<boolean> | boolean, describe: () => Promise<string> | string = () => 'condition not met', timeout = 20_000): Promise<void> {
  await untilEvents(dbs, ['update'], check, describe, timeout)
}

/** Every entry of a peer's view, as raw bytes, in iteration order. */
export async function dump (db: MeshDB<any, any>): Promise<Array<[Buffer, Buffer]>> {
  return await db.iterator({ keyEncoding: 'buffer', valueEncoding: 'buffer' }).all() as Array<[Buffer, Buffer]>
}

export function sameDump (a: Array<[Buffer, Buffer]>, b: Array<[Buffer, Buffer]>): boolean {
  return a.length === b.length && a.every(([k, v], i) => k.equals(b[i][0]) && v.equals(b[i][1]))
}

/**
 * A database created by the first peer, with every other peer added as a writer and replicated
 * until all of them are writable. Peers are named by their index: a, b, c…
 */
export async function createPeers (n: number, opts: (i: number) => MeshDBOptions<any, any> = () => ({})): Promise<Array<MeshDB<any, any>>> {
  const first = new MeshDB<any, any>(await tempDir('a'), opts(0))
  await first.open()
  const peers = [first]
  for (let i = 1; i < n; i++) {
    const p = new MeshDB<any, any>(await tempDir(String.fromCharCode(97 + i)), { ...opts(i), key: first.key })
    await p.open()
    await first.addWriter(p.writerKey)
    peers.push(p)
  }
  const links = peers.slice(1).map((p) => connect(first, p))
  await until(peers, async () => {
    for (const p of peers) await p.update()
    return peers.every((p) => p.writable)
  }, () => 'peers never became writable')
  for (const cut of links) cut()
  return peers
}

/** The error a promise rejects with; fails if it resolves. */
export async function rejects (p: Promise<unknown>): Promise<Error & { code?: string }> {
  try {
    await p
  } catch (err) {
    return err as Error & { code?: string }
  }
  throw new Error('expected a rejection')
}

/**
 * Downloads blocks [start, end) of `from`'s own log into the Corestore of directory `dir`
 * (no MeshDB open there), after learning the log's current length: leaves a peer holding exactly
 * a chosen part of a log, with no timing involved. Returns the length and contiguous length held.
 */
export async function holdBlocks (from: MeshDB<any, any>, dir: string, start: number, end: number): Promise<{ length: number, contiguousLength: number }> {
  const store = new Corestore(join(dir, 'cores'))
  const core = store.get({ key: from.engine.own.key })
  await core.ready()
  const cut = pipe(from.replicate(true), store.replicate(false) as Duplex)
  await core.update({ wait: true })
  await core.download({ start, end }).done()
  cut()
  const held = { length: core.length, contiguousLength: core.contiguousLength }
  await store.close()
  return held
}

/**
 * Links every pair of `peers` until each holds the own log of every one of `writers` (all of
 * `peers` unless said: a peer that is no member, an archive, takes part otherwise) at its full
 * length and has folded it to its cut (all of it, for a writer not removed), then cuts the links.
 */
export async function meshSync (peers: Array<MeshDB<any, any>>, opts: { writers?: Array<MeshDB<any, any>>, timeout?: number } = {}): Promise<void> {
  const writers = opts.writers ?? peers
  const cuts: Array<() => void> = []
  for (let i = 0; i < peers.length; i++) for (let j = i + 1; j < peers.length; j++) cuts.push(connect(peers[i], peers[j]))
  try {
    await until(peers, async () => {
      for (const p of peers) await p.update()
      return peers.every((p) => writers.every((q) => {
        const w = p.writers().find((x) => x.key.equals(q.writerKey))
        return w !== undefined && w.length === ownLength(q) && w.folded === w.cut
      }))
    }, () => JSON.stringify(peers.map((p) => p.writers().map((w) => [w.key.toString('hex').slice(0, 6), w.length, w.folded]))), opts.timeout)
  } finally {
    for (const cut of cuts) cut()
  }
}

/** The length of a database's own writer log, through the public API. */
export function ownLength (db: MeshDB<any, any>): number {
  return db.writers().find((w) => w.local)?.length ?? 0
}

export { connect, pipe }
