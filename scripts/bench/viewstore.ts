/**
 * The runner's viewstore workload (opt-in: `npm run bench -- --only viewstore`; the runner runs it
 * as a child process; it also runs on its own): compare candidate stores for meshbee's
 * materialized view. The measurement behind ARCHITECTURE.md "The view store: chosen by
 * measurement".
 *
 *   npx tsx scripts/bench/viewstore.ts [N]        (default N = 100000)
 *   npx tsx scripts/bench/viewstore.ts 20000 --only classic-level,rocksdb-native
 *
 * Stores:
 *   classic-level   LevelDB through abstract-level 3 (the view's current API surface)
 *   rocksdb-native  Holepunch's RocksDB binding, used directly
 *   hyperbee        a local Hyperbee on a Corestore (the "raw Hyperbee" anchor)
 *
 * Workload per store (fresh temp dir each, removed afterwards):
 *   1. write N keys ('k' + 15-digit zero-padded index, 16 bytes) with 100-byte
 *      values, in atomic batches of 1,000
 *   2. N random point gets, one awaited after the other
 *   2b. N random point gets through each store's best API (classic-level
 *      getSync, rocksdb-native read batches of 1,000, hyperbee 1,000 gets in flight)
 *   3. one full forward iteration
 *   4. 1,000 range iterations of 100 keys from random start keys
 *   5. snapshot isolation: open an iterator on a snapshot, commit a concurrent
 *      batch (overwrites, deletes, inserts inside the iterated range) while the
 *      iterator is half-way, then check the iterator saw only the old state and
 *      the live store saw the new one
 *
 * Every store runs in its own child process so that peak RSS (getrusage maxrss)
 * is per store. The parent prints a markdown report to stdout; progress goes
 * to stderr.
 */
import { spawn } from 'node:child_process'
import { createRequire } from 'node:module'
import { promises as fsp } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { performance } from 'node:perf_hooks'
import { prng as mulberry32 } from '../prng.js'

// hypercore/hyperbee/corestore/rocksdb-native ship no type declarations; load
// everything native/untyped through require so it is `any` and tsc stays clean.
const require = createRequire(import.meta.url)

const STORES = ['classic-level', 'rocksdb-native', 'hyperbee'] as const
type StoreName = (typeof STORES)[number]

const BATCH = 1000
const RANGES = 1000
const RANGE_LEN = 100
const VALUE_LEN = 100
const KEY_DIGITS = 15
const ROCKS_SCAN_CAPACITY = 1024 // rocksdb-native iterator read-ahead (default is 8)
const RESULT_TAG = '@@BENCH_RESULT '

interface PhaseResult {
  ops: number
  ms: number
}

interface SnapshotResult {
  ok: boolean
  detail: string
}

interface StoreResult {
  store: StoreName
  n: number
  write: PhaseResult
  get: PhaseResult
  getBest: PhaseResult & { how: string }
  scan: PhaseResult
  ranges: PhaseResult & { keys: number }
  snapshot: SnapshotResult
  peakRssMB: number
  diskMB: number
}

interface Adapter {
  name: StoreName
  bestGetHow: string
  open(dir: string): Promise<void>
  /** atomic batch write of the given entries */
  writeBatch(entries: Array<[string, Buffer]>): Promise<void>
  get(key: string): Promise<Buffer | null>
  /** look up many keys through the store's fastest point-read API */
  getBest(keys: string[]): Promise<Array<Buffer | null>>
  /** full forward iteration, returns entry count; calls check on every entry */
  scanAll(check: (key: string, value: Buffer) => void): Promise<number>
  /** forward range of `limit` entries starting at gte, returns entry count */
  range(gte: string, limit: number): Promise<number>
  snapshotTest(n: number): Promise<SnapshotResult>
  close(): Promise<void>
}

// ---------------------------------------------------------------- data

function keyOf(i: number): string {
  return 'k' + String(i).padStart(KEY_DIGITS, '0')
}

function valueOf(i: number): Buffer {
  const b = Buffer.alloc(VALUE_LEN, i & 0xff)
  b.writeUInt32BE(i >>> 0, 0)
  return b
}

const NEW_VALUE = Buffer.alloc(VALUE_LEN, 0xee)


function checkValue(i: number, v: Buffer | null | undefined): void {
  if (!v || v.length !== VALUE_LEN || v.readUInt32BE(0) !== i >>> 0) {
    throw new Error(`bad value for ${keyOf(i)}: ${v ? v.toString('hex').slice(0, 16) : String(v)}`)
  }
}

function toStr(k: unknown): string {
  return typeof k === 'string' ? k : Buffer.from(k as Uint8Array).toString('utf8')
}

/**
 * The batch used by the snapshot test. Over the first m keys: every 10th key
 * (i % 10 === 9) is deleted, the rest are overwritten with NEW_VALUE, and
 * every even key gets a new neighbour key + '~' inserted right after it.
 */
function snapshotMutations(m: number): Array<{ type: 'put' | 'del'; key: string; value?: Buffer }> {
  const ops: Array<{ type: 'put' | 'del'; key: string; value?: Buffer }> = []
  for (let i = 0; i < m; i++) {
    if (i % 10 === 9) ops.push({ type: 'del', key: keyOf(i) })
    else ops.push({ type: 'put', key: keyOf(i), value: NEW_VALUE })
    if (i % 2 === 0) ops.push({ type: 'put', key: keyOf(i) + '~', value: NEW_VALUE })
  }
  return ops
}

/**
 * Generic snapshot-isolation driver. `it` yields [key, value] from an iterator
 * that was opened on a snapshot taken before `write` is started.
 */
async function driveSnapshotTest(
  m: number,
  it: AsyncIterator<[string, Buffer]>,
  write: () => Promise<void>,
  snapGet: (key: string) => Promise<Buffer | null>,
  liveGet: (key: string) => Promise<Buffer | null>,
  liveCount: () => Promise<number>
): Promise<SnapshotResult> {
  const seen: Array<[string, Buffer]> = []
  const first = await it.next()
  if (!first.done) seen.push(first.value)

  // Start the concurrent batch, keep reading while it is in flight.
  let writeDone = false
  const w = write().then(() => {
    writeDone = true
  })
  let readDuringWrite = 0
  while (seen.length < m / 2) {
    const r = await it.next()
    if (r.done) break
    seen.push(r.value)
    if (!writeDone) readDuringWrite++
  }
  await w // batch committed; the rest of the iteration happens after it
  for (;;) {
    const r = await it.next()
    if (r.done) break
    seen.push(r.value)
  }
  if (it.return) await it.return()

  const problems: string[] = []
  if (seen.length !== m) problems.push(`iterator saw ${seen.length} entries, expected ${m}`)
  for (let i = 0; i < Math.min(seen.length, m); i++) {
    const [k, v] = seen[i]
    if (k !== keyOf(i)) {
      problems.push(`entry ${i} is ${k}, expected ${keyOf(i)}`)
      break
    }
    if (!v || v.length !== VALUE_LEN || v.readUInt32BE(0) !== i) {
      problems.push(`entry ${i} has a post-snapshot value`)
      break
    }
  }
  // Point reads on the snapshot after the write.
  const sOld = await snapGet(keyOf(0))
  const sDel = await snapGet(keyOf(9))
  const sIns = await snapGet(keyOf(0) + '~')
  if (!sOld || sOld.readUInt32BE(0) !== 0) problems.push('snapshot get sees overwrite')
  if (!sDel) problems.push('snapshot get misses deleted key')
  if (sIns) problems.push('snapshot get sees inserted key')

  // Sanity: the write really landed in the live store (test is not vacuous).
  const lNew = await liveGet(keyOf(0))
  const lDel = await liveGet(keyOf(9))
  const lIns = await liveGet(keyOf(0) + '~')
  if (!lNew || !lNew.equals(NEW_VALUE) || lDel || !lIns) problems.push('concurrent write not visible in live store')
  const expectedLive = m - Math.floor(m / 10) + Math.ceil(m / 2)
  const live = await liveCount()
  if (live !== expectedLive) problems.push(`live range has ${live} entries, expected ${expectedLive}`)

  const ok = problems.length === 0
  const detail = ok
    ? `yes (${m} keys; ${readDuringWrite} read while batch in flight)`
    : `NO: ${problems.join('; ')}`
  return { ok, detail }
}

async function* mapIter<T>(src: AsyncIterable<T>, f: (x: T) => [string, Buffer]): AsyncGenerator<[string, Buffer]> {
  for await (const x of src) yield f(x)
}

// ---------------------------------------------------------------- adapters

function classicLevelAdapter(): Adapter {
  const { ClassicLevel } = require('classic-level')
  let db: any
  return {
    name: 'classic-level',
    bestGetHow: 'db.getSync()',
    async open(dir) {
      db = new ClassicLevel(dir, { keyEncoding: 'utf8', valueEncoding: 'buffer' })
      await db.open()
      if (!db.supports.explicitSnapshots || !db.supports.getSync) throw new Error('classic-level lacks explicit snapshots/getSync')
    },
    async writeBatch(entries) {
      await db.batch(entries.map(([key, value]) => ({ type: 'put', key, value })))
    },
    async get(key) {
      return (await db.get(key)) ?? null
    },
    async getBest(keys) {
      return keys.map((k) => db.getSync(k) ?? null)
    },
    async scanAll(check) {
      let n = 0
      for await (const [k, v] of db.iterator()) {
        check(k, v)
        n++
      }
      return n
    },
    async range(gte, limit) {
      let n = 0
      for await (const _ of db.iterator({ gte, limit })) n++
      return n
    },
    async snapshotTest(m) {
      const range = { gte: keyOf(0), lt: keyOf(m) }
      const snapshot = db.snapshot()
      const iterator = db.iterator({ ...range, snapshot })
      try {
        return await driveSnapshotTest(
          m,
          mapIter<[string, Buffer]>(iterator, (e) => e)[Symbol.asyncIterator](),
          () => db.batch(snapshotMutations(m)),
          async (k) => (await db.get(k, { snapshot })) ?? null,
          async (k) => (await db.get(k)) ?? null,
          async () => (await db.keys(range).all()).length
        )
      } finally {
        await iterator.close()
        await snapshot.close()
      }
    },
    async close() {
      await db.close()
    }
  }
}

function rocksdbNativeAdapter(): Adapter {
  const RocksDB = require('rocksdb-native')
  let db: any
  return {
    name: 'rocksdb-native',
    bestGetHow: `db.read() batches of ${BATCH}`,
    async open(dir) {
      db = new RocksDB(dir)
      await db.ready()
    },
    async writeBatch(entries) {
      const w = db.write({ capacity: entries.length })
      for (const [k, v] of entries) w.tryPut(k, v)
      await w.flush()
      w.destroy()
    },
    async get(key) {
      return db.get(key)
    },
    async getBest(keys) {
      const out: Array<Buffer | null> = []
      for (let off = 0; off < keys.length; off += BATCH) {
        const chunk = keys.slice(off, off + BATCH)
        const r = db.read({ capacity: chunk.length })
        const ps = chunk.map((k) => r.get(k))
        r.tryFlush()
        out.push(...(await Promise.all(ps)))
        r.destroy()
      }
      return out
    },
    async scanAll(check) {
      let n = 0
      for await (const { key, value } of db.iterator({}, { capacity: ROCKS_SCAN_CAPACITY })) {
        check(toStr(key), value)
        n++
      }
      return n
    },
    async range(gte, limit) {
      let n = 0
      for await (const _ of db.iterator({ gte }, { limit, capacity: limit })) n++
      return n
    },
    async snapshotTest(m) {
      const range = { gte: keyOf(0), lt: keyOf(m) }
      const snap = db.snapshot()
      const iterator = snap.iterator(range, { capacity: 64 })
      try {
        return await driveSnapshotTest(
          m,
          mapIter<any>(iterator, (e) => [toStr(e.key), e.value])[Symbol.asyncIterator](),
          async () => {
            const w = db.write({ capacity: m * 2 })
            for (const op of snapshotMutations(m)) {
              if (op.type === 'put') w.tryPut(op.key, op.value)
              else w.tryDelete(op.key)
            }
            await w.flush()
            w.destroy()
          },
          (k) => snap.get(k),
          (k) => db.get(k),
          async () => {
            let n = 0
            for await (const _ of db.iterator(range, { values: false, capacity: ROCKS_SCAN_CAPACITY })) n++
            return n
          }
        )
      } finally {
        if (!iterator.destroyed) iterator.destroy()
        await snap.close()
      }
    },
    async close() {
      await db.close()
    }
  }
}

function hyperbeeAdapter(): Adapter {
  const Corestore = require('corestore')
  const Hyperbee = require('hyperbee')
  let store: any
  let bee: any
  return {
    name: 'hyperbee',
    bestGetHow: `${BATCH} concurrent bee.get()`,
    async open(dir) {
      store = new Corestore(dir)
      await store.ready()
      const core = store.get({ name: 'view' })
      bee = new Hyperbee(core, { keyEncoding: 'utf-8', valueEncoding: 'binary' })
      await bee.ready()
    },
    async writeBatch(entries) {
      const b = bee.batch()
      for (const [k, v] of entries) await b.put(k, v)
      await b.flush()
    },
    async get(key) {
      const node = await bee.get(key)
      return node ? node.value : null
    },
    async getBest(keys) {
      const out: Array<Buffer | null> = []
      for (let off = 0; off < keys.length; off += BATCH) {
        const nodes = await Promise.all(keys.slice(off, off + BATCH).map((k) => bee.get(k)))
        for (const node of nodes) out.push(node ? node.value : null)
      }
      return out
    },
    async scanAll(check) {
      let n = 0
      for await (const { key, value } of bee.createReadStream()) {
        check(key, value)
        n++
      }
      return n
    },
    async range(gte, limit) {
      let n = 0
      for await (const _ of bee.createReadStream({ gte }, { limit })) n++
      return n
    },
    async snapshotTest(m) {
      const range = { gte: keyOf(0), lt: keyOf(m) }
      const snap = bee.snapshot()
      await snap.ready()
      const stream = snap.createReadStream(range)
      try {
        return await driveSnapshotTest(
          m,
          mapIter<any>(stream, (e) => [e.key, e.value])[Symbol.asyncIterator](),
          async () => {
            const b = bee.batch()
            for (const op of snapshotMutations(m)) {
              if (op.type === 'put') await b.put(op.key, op.value)
              else await b.del(op.key)
            }
            await b.flush()
          },
          async (k) => {
            const node = await snap.get(k)
            return node ? node.value : null
          },
          async (k) => {
            const node = await bee.get(k)
            return node ? node.value : null
          },
          async () => {
            let n = 0
            for await (const _ of bee.createReadStream(range)) n++
            return n
          }
        )
      } finally {
        if (!stream.destroyed) stream.destroy()
        await snap.close()
      }
    },
    async close() {
      await bee.close()
      await store.close()
    }
  }
}

function makeAdapter(name: StoreName): Adapter {
  switch (name) {
    case 'classic-level':
      return classicLevelAdapter()
    case 'rocksdb-native':
      return rocksdbNativeAdapter()
    case 'hyperbee':
      return hyperbeeAdapter()
  }
}

// ---------------------------------------------------------------- child: run one store

async function dirSize(p: string): Promise<number> {
  let total = 0
  for (const ent of await fsp.readdir(p, { withFileTypes: true })) {
    const full = path.join(p, ent.name)
    if (ent.isDirectory()) total += await dirSize(full)
    else if (ent.isFile()) total += (await fsp.stat(full)).size
  }
  return total
}

function log(msg: string): void {
  process.stderr.write(msg + '\n')
}

async function timed(label: string, ops: number, fn: () => Promise<void>): Promise<PhaseResult> {
  const t0 = performance.now()
  await fn()
  const ms = performance.now() - t0
  log(`  ${label}: ${ops} ops in ${ms.toFixed(0)} ms`)
  return { ops, ms }
}

async function runStore(name: StoreName, n: number): Promise<StoreResult> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), `meshbee-bench-${name}-`))
  const a = makeAdapter(name)
  log(`[${name}] N=${n} dir=${dir}`)
  try {
    await a.open(dir)

    // identical random sequences for every store
    const rnd = mulberry32(0x6d657368)
    const getIdx = new Uint32Array(n)
    for (let i = 0; i < n; i++) getIdx[i] = Math.floor(rnd() * n)
    const rangeStart = new Uint32Array(RANGES)
    for (let i = 0; i < RANGES; i++) rangeStart[i] = Math.floor(rnd() * Math.max(1, n - RANGE_LEN))
    const getKeys = Array.from(getIdx, keyOf)

    const write = await timed('write', n, async () => {
      for (let off = 0; off < n; off += BATCH) {
        const entries: Array<[string, Buffer]> = []
        for (let i = off; i < Math.min(n, off + BATCH); i++) entries.push([keyOf(i), valueOf(i)])
        await a.writeBatch(entries)
      }
    })

    const get = await timed('get (awaited)', n, async () => {
      for (let i = 0; i < n; i++) checkValue(getIdx[i], await a.get(getKeys[i]))
    })

    const getBestPhase = await timed(`get (${a.bestGetHow})`, n, async () => {
      const vals = await a.getBest(getKeys)
      for (let i = 0; i < n; i++) checkValue(getIdx[i], vals[i])
    })

    const scan = await timed('full scan', n, async () => {
      let expect = 0
      const seen = await a.scanAll((k, v) => {
        if (k !== keyOf(expect)) throw new Error(`scan order: got ${k}, expected ${keyOf(expect)}`)
        checkValue(expect, v)
        expect++
      })
      if (seen !== n) throw new Error(`scan saw ${seen} entries, expected ${n}`)
    })

    let rangeKeys = 0
    const ranges = await timed(`ranges x${RANGES}`, RANGES, async () => {
      for (let i = 0; i < RANGES; i++) rangeKeys += await a.range(keyOf(rangeStart[i]), RANGE_LEN)
    })
    if (rangeKeys !== RANGES * Math.min(RANGE_LEN, n)) throw new Error(`ranges saw ${rangeKeys} keys`)

    const diskMB = (await dirSize(dir)) / 1e6

    let snapshot: SnapshotResult
    try {
      snapshot = await a.snapshotTest(Math.min(n, 5000))
    } catch (err) {
      snapshot = { ok: false, detail: `NO: ${(err as Error).message}` }
    }
    log(`  snapshot: ${snapshot.detail}`)

    await a.close()
    const peakRssMB = (process.resourceUsage().maxRSS * 1024) / 1e6
    return {
      store: name,
      n,
      write,
      get,
      getBest: { ...getBestPhase, how: a.bestGetHow },
      scan,
      ranges: { ...ranges, keys: rangeKeys },
      snapshot,
      peakRssMB,
      diskMB
    }
  } finally {
    await fsp.rm(dir, { recursive: true, force: true })
  }
}

// ---------------------------------------------------------------- parent: orchestrate + report

function runChild(name: StoreName, n: number): Promise<StoreResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...process.execArgv, process.argv[1], String(n), '--child', name], {
      stdio: ['ignore', 'pipe', 'inherit']
    })
    let out = ''
    child.stdout.setEncoding('utf8')
    child.stdout.on('data', (d: string) => (out += d))
    child.on('error', reject)
    child.on('close', (code) => {
      const line = out.split('\n').find((l) => l.startsWith(RESULT_TAG))
      if (code !== 0 || !line) return reject(new Error(`${name} child exited with ${code}`))
      resolve(JSON.parse(line.slice(RESULT_TAG.length)) as StoreResult)
    })
  })
}

function fmtOps(p: PhaseResult): string {
  const r = (p.ops * 1000) / p.ms
  return Math.round(r).toLocaleString('en-US')
}

function report(n: number, results: StoreResult[]): string {
  const cpus = os.cpus()
  const lines: string[] = []
  lines.push(`## meshbee view-store benchmark (N = ${n.toLocaleString('en-US')})`)
  lines.push('')
  lines.push(
    `Machine: ${cpus[0]?.model ?? 'unknown'}, ${cpus.length} cores, ${os.platform()} ${os.release()}, ` +
      `${(os.totalmem() / 2 ** 30).toFixed(1)} GiB RAM, node ${process.version}`
  )
  lines.push('')
  lines.push(
    '| store | write (keys/s, batches of 1k) | get awaited (ops/s) | get best API (ops/s) | full scan (keys/s) | range 100 (ranges/s) | snapshot isolation | peak RSS (MB) | disk (MB) |'
  )
  lines.push('|---|---:|---:|---:|---:|---:|---|---:|---:|')
  for (const r of results) {
    lines.push(
      `| ${r.store} | ${fmtOps(r.write)} | ${fmtOps(r.get)} | ${fmtOps(r.getBest)} | ${fmtOps(r.scan)} | ${fmtOps(r.ranges)} | ` +
        `${r.snapshot.detail} | ${r.peakRssMB.toFixed(0)} | ${r.diskMB.toFixed(1)} |`
    )
  }
  lines.push('')
  lines.push('Phase wall times (ms):')
  lines.push('')
  lines.push('| store | write | get awaited | get best | full scan | ranges |')
  lines.push('|---|---:|---:|---:|---:|---:|')
  for (const r of results) {
    lines.push(
      `| ${r.store} | ${r.write.ms.toFixed(0)} | ${r.get.ms.toFixed(0)} | ${r.getBest.ms.toFixed(0)} | ${r.scan.ms.toFixed(0)} | ${r.ranges.ms.toFixed(0)} |`
    )
  }
  lines.push('')
  lines.push('Notes:')
  lines.push(`- keys: 'k' + ${KEY_DIGITS}-digit index (16 B); values ${VALUE_LEN} B; same seeded random key order for every store; every read value is verified.`)
  lines.push(`- "get best API": ${results.map((r) => `${r.store} = ${r.getBest.how}`).join('; ')}.`)
  lines.push(`- rocksdb-native iterators use capacity ${ROCKS_SCAN_CAPACITY} for the full scan and ${RANGE_LEN} (= limit) for ranges (library default is 8).`)
  lines.push('- snapshot test: iterator opened on an explicit snapshot (classic-level db.snapshot(), rocksdb-native db.snapshot(), hyperbee bee.snapshot()), then a batch overwrites/deletes/inserts keys in the iterated range while the iterator is half-way; "yes" = iterator and snapshot gets saw only pre-batch state and the live store saw the batch.')
  lines.push('- each store runs in its own child process; peak RSS is that process\'s getrusage maxrss (includes the benchmark\'s own key arrays). Disk = temp dir size after the load phases.')
  return lines.join('\n')
}

async function main(): Promise<void> {
  const args = process.argv.slice(2)
  const nArg = args.find((a) => /^\d+$/.test(a))
  const n = nArg ? parseInt(nArg, 10) : 100_000
  if (!(n >= 1)) throw new Error('N must be a positive integer')

  const childIdx = args.indexOf('--child')
  if (childIdx !== -1) {
    const name = args[childIdx + 1] as StoreName
    if (!STORES.includes(name)) throw new Error(`unknown store ${name}`)
    const result = await runStore(name, n)
    process.stdout.write(RESULT_TAG + JSON.stringify(result) + '\n')
    return
  }

  const onlyIdx = args.indexOf('--only')
  const selected: StoreName[] =
    onlyIdx !== -1 ? (args[onlyIdx + 1].split(',') as StoreName[]).filter((s) => STORES.includes(s)) : [...STORES]

  const results: StoreResult[] = []
  for (const name of selected) results.push(await runChild(name, n))
  process.stdout.write(report(n, results) + '\n')
}

main().catch((err) => {
  process.stderr.write(`scripts/bench/viewstore.ts failed: ${(err as Error).stack ?? String(err)}\n`)
  process.exit(1)
})
