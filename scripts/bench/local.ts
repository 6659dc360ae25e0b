/**
 * Local workloads on one fresh store: `put` one at a time (awaited), `batch` puts of 1,000, `get` of
 * random existing keys (awaited, one at a time; then the same keys through getSync where the store
 * has it) and one full iteration of everything written.
 * Keys are 16 bytes in a seeded random order; values ~100-byte JSON, JSON-encoded by every store.
 *
 *   meshbee        new MeshDB(dir, { valueEncoding: 'json' })
 *   hyperbee       a Hyperbee on a Corestore: the ceiling for a signed log append
 *   classic-level  LevelDB through abstract-level: the ceiling for the view
 */
import { ClassicLevel } from 'classic-level'
// loaded only by meshbee's trial: importing meshbee patches Hypercore (lib/hypercore-patch.ts)
import type { MeshDB } from '../../index.js'
import { Corestore, Hyperbee, mulberry32, now, profStart, profStop, randomKeys, tempDir, valueOf, type Value } from './common.js'
import type { LocalParams, Result } from './types.js'

interface Store {
  put: (key: string, value: Value) => Promise<void>
  batch: (entries: Array<[string, Value]>) => Promise<void>
  get: (key: string) => Promise<Value | undefined>
  /** A synchronous get, where the store has one (abstract-level getSync). */
  getSync?: (key: string) => Value | undefined
  /** Iterates everything in key order, returns the count (values decoded). */
  scan: () => Promise<number>
  close: () => Promise<void>
}

/** A Store over any abstract-level database with JSON values (meshbee and classic-level alike). */
async function abstractLevelStore (db: MeshDB<string, Value> | ClassicLevel<string, Value>): Promise<Store> {
  await db.open()
  return {
    put: async (k, v) => { await db.put(k, v) },
    batch: async (entries) => { await db.batch(entries.map(([key, value]) => ({ type: 'put' as const, key, value }))) },
    get: async (k) => await db.get(k),
    getSync: (k) => db.getSync(k),
    scan: async () => {
      let n = 0
      for await (const [, v] of db.iterator()) if (v !== undefined) n++
      return n
    },
    close: async () => { await db.close() }
  }
}

async function openMeshbee (dir: string): Promise<Store> {
  const { MeshDB } = await import('../../index.js')
  return await abstractLevelStore(new MeshDB<string, Value>(dir, { valueEncoding: 'json' }))
}

async function openHyperbee (dir: string): Promise<Store> {
  const store = new Corestore(dir)
  const bee = new Hyperbee(store.get({ name: 'bench' }), { keyEncoding: 'utf-8', valueEncoding: 'json' })
  await bee.ready()
  return {
    put: async (k, v) => { await bee.put(k, v) },
    batch: async (entries) => {
      const b = bee.batch()
      for (const [k, v] of entries) await b.put(k, v)
      await b.flush()
    },
    get: async (k) => (await bee.get(k))?.value,
    scan: async () => {
      let n = 0
      for await (const node of bee.createReadStream()) if (node.value !== undefined) n++
      return n
    },
    close: async () => {
      await bee.close()
      await store.close()
    }
  }
}

async function openLevel (dir: string): Promise<Store> {
  return await abstractLevelStore(new ClassicLevel<string, Value>(dir, { valueEncoding: 'json' }))
}

export async function runLocal (system: 'meshbee' | 'hyperbee' | 'classic-level', p: LocalParams): Promise<Result> {
  const dir = await tempDir(`local-${system}`)
  const open = system === 'meshbee' ? openMeshbee : system === 'hyperbee' ? openHyperbee : openLevel
  const s = await open(dir)
  const putKeys = randomKeys('a', p.puts, 1)
  const batchKeys = randomKeys('b', p.batched, 2)

  await profStart()
  let t = now()
  for (let i = 0; i < putKeys.length; i++) await s.put(putKeys[i], valueOf(i))
  const putMs = now() - t
  await profStop(`local-put-${system}`)

  await profStart()
  t = now()
  for (let off = 0; off < batchKeys.length; off += p.batch) {
    const entries: Array<[string, Value]> = []
    for (let i = off; i < Math.min(batchKeys.length, off + p.batch); i++) entries.push([batchKeys[i], valueOf(i)])
    await s.batch(entries)
  }
  const batchMs = now() - t
  await profStop(`local-batch-${system}`)

  // Random existing keys from both sets; every value is checked.
  const rnd = mulberry32(3)
  const all = p.puts + p.batched
  const picks = Array.from({ length: p.gets }, () => Math.floor(rnd() * all))
  await profStart()
  t = now()
  for (const i of picks) {
    const [key, id] = i < p.puts ? [putKeys[i], i] : [batchKeys[i - p.puts], i - p.puts]
    const v = await s.get(key)
    if (v?.id !== id) throw new Error(`${system}: get ${key} returned ${JSON.stringify(v)}`)
  }
  const getMs = now() - t
  await profStop(`local-get-${system}`)

  // The same gets through getSync, where there is one (meshbee's awaited get is itself a
  // synchronous LevelDB read underneath; classic-level's awaited get goes through the thread pool).
  let getSyncMs = NaN
  if (s.getSync !== undefined) {
    t = now()
    for (const i of picks) {
      const [key, id] = i < p.puts ? [putKeys[i], i] : [batchKeys[i - p.puts], i - p.puts]
      if (s.getSync(key)?.id !== id) throw new Error(`${system}: getSync ${key} is wrong`)
    }
    getSyncMs = now() - t
  }

  await profStart()
  t = now()
  const seen = await s.scan()
  const scanMs = now() - t
  await profStop(`local-scan-${system}`)
  if (seen !== all) throw new Error(`${system}: iteration saw ${seen} entries, expected ${all}`)

  await s.close()
  return {
    metrics: {
      put: p.puts / putMs * 1000,
      batch: p.batched / batchMs * 1000,
      get: p.gets / getMs * 1000,
      ...(Number.isNaN(getSyncMs) ? {} : { getSync: p.gets / getSyncMs * 1000 }),
      scan: all / scanMs * 1000
    }
  }
}
