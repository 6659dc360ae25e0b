/**
 * Scale: many writers' logs folded by one fresh peer.
 *
 * setup (one child process): W writer logs in ONE Corestore, each writer in its own namespace
 * (`store.namespace('w<i>')`, see namespaced() below), so the logs are local to the folding peer and no replication is
 * measured (as in test/db.test.ts's incremental-fold test). Writer 0 creates the database and adds
 * writers 1..W-1. Each of those writes while it is the only open database in the store and is its
 * own creator: its log is an ordinary meshbee writer log (entries do not name the database), and
 * this way no writer folds the others' logs during setup (which would cost W²/2 folds). Every
 * writer writes `perWriter` puts of distinct random keys, in batches, through MeshDB.batch.
 *
 * fold (a fresh child process per round, for a clean peak RSS): a new peer in a new namespace of
 * the same Corestore opens the database by key; open() folds all W logs. Measured: the time of
 * open(), peak RSS (getrusage maxRSS), RSS before open, and disk bytes per op of the logs (the
 * Corestore) and of the resulting view (LevelDB).
 */
import { rm } from 'node:fs/promises'
import path from 'node:path'
// loaded only by meshbee's trials: importing meshbee patches Hypercore (lib/hypercore-patch.ts)
import type { MeshDB } from '../../index.js'
import { Corestore, du, now, peakRssMB, profStart, profStop, randomKeys, tempDir, valueOf, type Value } from './common.js'
import type { Result, ScaleFoldParams, ScaleSetupParams } from './types.js'

/**
 * `store.namespace(name)`, kept through the `session()` the Engine takes of its storage. Corestore
 * 7's session() starts from the default namespace unless told otherwise, so without this every
 * MeshDB on a namespace of one Corestore would get the same 'meshbee-writer' core (the Engine
 * takes `storage.session()`; see BENCHMARKS.md). Harmless once the Engine keeps the namespace.
 */
export function namespaced (store: any, name: string): any { // eslint-disable-line @typescript-eslint/no-explicit-any
  const ns = store.namespace(name)
  const session = ns.session.bind(ns)
  ns.session = (opts: object = {}) => session({ namespace: ns.ns, ...opts })
  return ns
}

export async function runScaleSetup (p: ScaleSetupParams): Promise<Result> {
  const { MeshDB } = await import('../../index.js')
  const dir = await tempDir(`scale-${p.writers}x${p.perWriter}`)
  const cores = path.join(dir, 'cores')
  const store = new Corestore(cores)
  await store.ready()
  const open = async (i: number, key?: Buffer): Promise<MeshDB<string, Value>> => {
    const db = new MeshDB<string, Value>(namespaced(store, `w${i}`), { key, viewPath: path.join(dir, 'writers', `w${i}`), valueEncoding: 'json' })
    await db.open()
    return db
  }
  const keys = randomKeys('s', p.writers * p.perWriter, 30 + p.writers)
  const write = async (db: MeshDB<string, Value>, i: number): Promise<void> => {
    for (let off = i * p.perWriter; off < (i + 1) * p.perWriter; off += p.batch) {
      const end = Math.min((i + 1) * p.perWriter, off + p.batch)
      const ops = []
      for (let j = off; j < end; j++) ops.push({ type: 'put' as const, key: keys[j], value: valueOf(j, `w${i}`) })
      await db.batch(ops)
    }
  }

  const t = now()
  const writerKeys: Buffer[] = []
  for (let i = 1; i < p.writers; i++) {
    const db = await open(i)
    writerKeys.push(db.writerKey)
    await db.close()
  }
  const creator = await open(0)
  for (const k of writerKeys) await creator.addWriter(k)
  await write(creator, 0)
  const key = creator.key.toString('hex')
  await creator.close()
  for (let i = 1; i < p.writers; i++) {
    const db = await open(i)
    await write(db, i)
    await db.close()
  }
  await store.close()
  await rm(path.join(dir, 'writers'), { recursive: true, force: true })
  return {
    metrics: { setupMs: now() - t, logBytes: await du(cores) },
    info: { dir, key }
  }
}

export async function runScaleFold (p: ScaleFoldParams): Promise<Result> {
  const { MeshDB } = await import('../../index.js') // before the RSS baseline, as a static import was
  const store = new Corestore(path.join(p.dir, 'cores'))
  await store.ready()
  const viewPath = path.join(p.dir, `fold-${p.round}`)
  global.gc?.()
  const rssBeforeMB = process.memoryUsage().rss / 1e6
  await profStart()
  const t = now()
  const db = new MeshDB<string, Value>(namespaced(store, `fold-${p.round}`), { key: Buffer.from(p.key, 'hex'), viewPath, valueEncoding: 'json' })
  await db.open() // the fold of everything runs in open()
  const ms = now() - t
  const peakMB = peakRssMB()
  await profStop(`scale-fold-${p.writers}`)

  const writers = db.writers().filter((w) => w.member)
  if (writers.length !== p.writers) throw new Error(`fold reached ${writers.length} members, expected ${p.writers}`)
  for (const w of writers) if (w.folded !== w.length) throw new Error(`writer ${w.key.toString('hex')} folded ${w.folded} of ${w.length}`)
  let count = 0
  for await (const _ of db.keys()) count++
  if (count !== p.ops) throw new Error(`the fold produced ${count} keys, expected ${p.ops}`)
  const stats = db.stats()
  await db.close()
  await store.close()
  const viewBytes = await du(viewPath)
  await rm(viewPath, { recursive: true, force: true })
  return {
    metrics: {
      ms,
      opsPerSec: p.ops / ms * 1000,
      peakMB,
      rssBeforeMB,
      viewBytesPerOp: viewBytes / p.ops,
      diffEntries: stats.diffEntries,
      folds: stats.folds
    }
  }
}
