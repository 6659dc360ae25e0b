/**
 * Compaction (issue #21). Opt-in: `npm run bench -- --only compact`; also on its own:
 *
 *   npx tsx scripts/bench/compact.ts [--quick] [--overwrites R] [--rounds N] [--puts N] [--baseline DIR] [--disk-only | --speed-only]
 *
 * --quick: R = 10, 3 speed rounds of 500 puts (a smoke run); otherwise R = 100, 5 rounds of 2,000.
 *
 * The workload: 3 writers each write the same K = 1,000 keys (values ~100 B of JSON) R = 100
 * times, one batch of 1,000 puts per writer a round, connected in process (a star through the
 * first writer) and folding live; then K/2 keys are deleted, split among the writers (each one
 * batch), and every peer syncs to the same db.hash(). Disk bytes, each database's directory walked
 * (apparent sizes, like `du -b`), split into the logs (the Corestore) and the view (LevelDB):
 *
 * - the compacted peer: writer a, as shipped, after every writer has called compact() (which
 *   first records how far it has folded every member), they have synced, and every writer has
 *   called compact() again; a third round shows what the second round's records add;
 * - the same writer a just before its first compact() call;
 * - the uncompacted peer: a fourth peer, not a writer, opened with `history: 'full'`, linked to
 *   writer a through the whole run (it holds the same three logs and folds live like a writer);
 * - the anchor: a fresh MeshDB holding the same K/2 live keys (the values writer a reads) written
 *   once, in one batch;
 * - autobase 7.28.1 on the same workload: 3 indexers, a Hyperbee view, deletes applied as
 *   Hyperbee deletes; its first writer's Corestore. It runs in a process that never imports
 *   meshbee (importing meshbee patches Hypercore).
 *
 * Every database is measured open (right after the sync) and at rest (closed). The at-rest figures
 * are the claim: target compacted ≤ 2× fresh. Where the bytes are: the logical bytes (key + value)
 * of each kind of row in the logs' RocksDB (blocks, Merkle tree nodes, bitfield, the rest) and in
 * each table of the view's LevelDB, read back after close; the files at rest by kind (write-ahead
 * logs, tables, info logs, the rest); then each directory again after a full compaction of its
 * RocksDB and of its LevelDB (what the stores' own compaction would give back).
 *
 * Speed, as shipped against `cutsEvery: 0` (no automatic stability records; the bookkeeping after
 * each fold still runs): awaited single puts into a fresh database; and a fresh peer's fold of 3
 * writers' logs of the same workload (K keys × R overwrites, then the deletes; the writers open at
 * once in one Corestore, a namespace each, so no replication is measured), built once per
 * setting, each fold in a fresh process. With --baseline DIR, the same trials also run the MeshDB
 * of another checkout (say `git archive` of the commit before compaction, with a node_modules
 * link): the anchor for "unchanged". The order rotates by round; lower medians. Target: unchanged
 * within noise.
 *
 * Each part runs in its own child process of this script (`--part <name> <params as JSON>`) and
 * loads the library when it starts: in a tree someone is editing, run it from a snapshot
 * (`git archive HEAD | tar -x -C DIR`, node_modules linked) so that every part runs one commit;
 * the report says so when the tree changed during the run. Markdown on stdout, progress on stderr.
 */
import { execFileSync, spawn } from 'node:child_process'
import { existsSync, rmSync } from 'node:fs'
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { ClassicLevel } from 'classic-level'
// types only: meshbee is loaded by meshbee's parts alone (importing it patches Hypercore)
import type { CompactResult, DbStats, MeshDBOptions } from '../../index.js'
import { Corestore, du, lowerMedian as median, machine, now, progress as log, randomKeys, removeTempDirs, tempDir, until, valueOf, versions, type Value } from './common.js'
import { baseChecker, link, linkBases, makeBase, meshConverged, meshState, ownLengths, type Base, type Mesh } from './peers.js'
import { namespaced } from './scale.js'
import { RESULT_TAG, type Result } from './types.js'

/* eslint-disable @typescript-eslint/no-explicit-any */

const THIS = fileURLToPath(import.meta.url)
const WRITERS = 3

/** The compaction settings the speed trials compare. */
type Setting = 'shipped' | 'cutsEvery0' | 'baseline'
const SETTING_OPTS: Record<Setting, MeshDBOptions<string, Value>> = { shipped: {}, cutsEvery0: { cutsEvery: 0 }, baseline: {} }
const SETTING_NAME: Record<Setting, string> = { shipped: 'as shipped', cutsEvery0: '`cutsEvery: 0`', baseline: 'baseline checkout' }
/** What a speed trial is told: its setting, and for 'baseline' the checkout whose MeshDB it runs. */
interface Speed { setting: Setting, baseline?: string }

/** MeshDB of this tree, or of the baseline checkout (its index.ts, run through tsx as this one is). */
async function meshDB (p: Speed): Promise<typeof import('../../index.js')['MeshDB']> {
  if (p.setting !== 'baseline') return (await import('../../index.js')).MeshDB
  return (await import(pathToFileURL(path.join(p.baseline as string, 'index.ts')).href) as typeof import('../../index.js')).MeshDB
}

interface Workload { keys: number, overwrites: number, deleted: number }

type DiskStats = Pick<DbStats, 'blocksCleared' | 'tombstonesCollected' | 'tombstones' | 'disk'>

// ---------------------------------------------------------------- the workload

const keysOf = (w: Workload): string[] => randomKeys('c', w.keys, 21)

function puts (keys: string[], writer: number, round: number): Array<{ type: 'put', key: string, value: Value }> {
  return keys.map((key, i) => ({ type: 'put' as const, key, value: valueOf(i, `w${writer}`, round) }))
}

/** The keys writer `writer` deletes: the first `deleted` keys, dealt out in turn. */
function deletes (keys: string[], w: Workload, writer: number): string[] {
  return keys.slice(0, w.deleted).filter((_, i) => i % WRITERS === writer)
}

/** Every round's batches, writer by writer; progress on stderr. */
async function writeAll (writers: Mesh[], w: Workload, who: string): Promise<void> {
  const keys = keysOf(w)
  const t = now()
  const every = Math.max(1, Math.round(w.overwrites / 10))
  for (let r = 0; r < w.overwrites; r++) {
    for (const [i, db] of writers.entries()) await db.batch(puts(keys, i, r))
    if ((r + 1) % every === 0) log(`${who}: round ${r + 1}/${w.overwrites} written (${((now() - t) / 1000).toFixed(0)} s)`)
  }
}

async function deleteAll (writers: Mesh[], w: Workload): Promise<void> {
  const keys = keysOf(w)
  for (const [i, db] of writers.entries()) await db.batch(deletes(keys, w, i).map((key) => ({ type: 'del' as const, key })))
}

/**
 * Until every peer shows the same db.hash() and has folded every writer's log to the length its
 * owner has now (lengths are read at every check: automatic stability records append on a timer).
 */
async function synced (peers: Mesh[], writers: Mesh[], what: string): Promise<void> {
  await until(() => meshConverged(peers, ownLengths(writers)), { wakeOn: peers, pollMs: 50, timeoutMs: 3_600_000, what: () => `${what}: ${meshState(peers)}` })
}

async function countKeys (db: Mesh): Promise<number> {
  let n = 0
  for await (const _ of db.keys()) n++
  return n
}

// ---------------------------------------------------------------- bytes

interface Bytes { logs: number, view: number }
const total = (b: Bytes): number => b.logs + b.view

async function bytesOf (dir: string): Promise<Bytes> {
  return { logs: await du(path.join(dir, 'cores')), view: await du(path.join(dir, 'view')) }
}

/** The view's tables by sublevel prefix (lib/view.ts). */
const VIEW_TABLE: Record<string, string> = { v: 'values', s: 'slots', u: 'parts', i: 'items', q: 'changes', k: 'seqs', x: 'index', y: 'indexed', c: 'checkpoints', m: 'meta', j: 'graves', h: 'graveq', g: 'deaths' }

/**
 * The bytes of a store's directory by kind of file: write-ahead logs (`NNNNNN.log`), tables
 * (RocksDB `.sst` and `.blob`, LevelDB `.ldb`), info logs (`LOG*`), and the rest (MANIFEST,
 * OPTIONS, CURRENT, lock and id files).
 */
async function filesOf (dir: string, store: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {}
  let names: string[] = []
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      if (e.isDirectory()) await walk(path.join(d, e.name))
      else names.push(path.join(d, e.name))
    }
  }
  try { await walk(dir) } catch { names = [] }
  for (const f of names) {
    const b = path.basename(f)
    const kind = /^\d+\.log$/.test(b) ? 'write-ahead log' : /\.(sst|ldb|blob)$/.test(b) ? 'tables' : b.startsWith('LOG') ? 'info logs' : 'manifest, options, other'
    const key = `${store} files: ${kind}`
    out[key] = (out[key] ?? 0) + (await stat(f)).size
  }
  return out
}

interface Anatomy { rows: Record<string, { bytes: number, count: number }>, compacted: Bytes, compactMs: { logs: number, view: number } }

const RKIND: Record<number, string> = { 0: 'store head', 1: 'core index', 2: 'core index', 3: 'core metadata', 5: 'groups', 6: 'groups' }
const DKIND: Record<number, string> = { 0: 'core metadata', 1: 'core metadata', 2: 'core metadata', 3: 'blocks', 4: 'tree nodes', 5: 'bitfield', 6: 'core metadata', 7: 'core metadata', 8: 'core metadata' }

/** Decodes an index-encoder UINT (what hypercore-storage's keys start with). */
function uint (buf: Buffer, at: number): [number, number] {
  const b = buf[at] as number
  if (b < 0xfc) return [b, at + 1]
  const n = b === 0xfc ? 2 : b === 0xfd ? 4 : 8
  let v = 0
  for (let i = 0; i < n; i++) v = v * 256 + (buf[at + 1 + i] as number)
  return [v, at + 1 + n]
}

/**
 * The logical bytes (key + value, and the row count) of each kind of row in a closed database's
 * stores: the logs' RocksDB by hypercore-storage's key layout (lib/keys.js), the view's LevelDB by
 * table (abstract-level's `!name!` prefixes). Then both stores fully compacted, and the directory
 * measured again.
 */
async function anatomy (cores: string, viewDir: string | null): Promise<Anatomy> {
  const rows: Record<string, { bytes: number, count: number }> = {}
  const add = (kind: string, bytes: number): void => {
    const r = rows[kind] ?? (rows[kind] = { bytes: 0, count: 0 })
    r.bytes += bytes
    r.count++
  }
  const store = new Corestore(cores)
  await store.ready()
  for await (const { key, value } of store.storage.db.iterator({})) {
    const k = key as Buffer
    const [top, at] = uint(k, 0)
    let kind = RKIND[top] ?? `logs: other (${top})`
    if (top === 4) {
      const [, at2] = uint(k, at)
      kind = DKIND[uint(k, at2)[0]] ?? 'core metadata'
    }
    add(`logs: ${kind}`, k.byteLength + (value as Buffer).byteLength)
  }
  let t = now()
  await store.storage.compact()
  const logsMs = now() - t
  await store.close()
  if (viewDir === null) return { rows, compacted: { logs: await du(cores), view: 0 }, compactMs: { logs: logsMs, view: 0 } }
  const view = new ClassicLevel<Buffer, Buffer>(viewDir, { keyEncoding: 'buffer', valueEncoding: 'buffer' })
  await view.open()
  for await (const [key, value] of view.iterator()) {
    const end = key[0] === 0x21 ? key.indexOf(0x21, 1) : -1
    const table = end > 0 ? key.subarray(1, end).toString() : 'other'
    add(`view: ${VIEW_TABLE[table] ?? table}`, key.byteLength + value.byteLength)
  }
  t = now()
  await view.compactRange(Buffer.alloc(0), Buffer.alloc(64, 0xff))
  const viewMs = now() - t
  await view.close()
  return { rows, compacted: { logs: await du(cores), view: await du(viewDir) }, compactMs: { logs: logsMs, view: viewMs } }
}

/** A closed meshbee database's directory, read back (anatomy). */
const meshAnatomy = async (dir: string): Promise<Anatomy> => await anatomy(path.join(dir, 'cores'), path.join(dir, 'view'))

// ---------------------------------------------------------------- part: meshbee's disk

interface MeshbeeOut {
  metrics: Record<string, number>
  open: Record<string, Bytes & { reported: DbStats['disk'] }>
  rest: Record<string, Bytes>
  anatomy: Record<string, Anatomy>
  /** At rest, by kind of file (filesOf), logs and view. */
  files: Record<string, Record<string, number>>
  rounds: Array<CompactResult & { wallMs: number }>
  statsBefore: DiskStats
  statsAfter: DiskStats
  lengths: Record<string, number>
}

async function partMeshbee (w: Workload): Promise<MeshbeeOut> {
  const { MeshDB } = await import('../../index.js')
  const dirs: Record<string, string> = {}
  const open = async (name: string, opts: MeshDBOptions<string, Value>): Promise<Mesh> => {
    dirs[name] = await tempDir(`compact-${name}`)
    const db = new MeshDB<string, Value>(dirs[name] as string, { valueEncoding: 'json', ...opts })
    await db.open()
    return db
  }
  const a = await open('a', {})
  const b = await open('b', { key: a.key })
  const c = await open('c', { key: a.key })
  const d = await open('d', { key: a.key, history: 'full' as const })
  await a.addWriter(b.writerKey)
  await a.addWriter(c.writerKey)
  const writers = [a, b, c]
  const peers = [a, b, c, d]
  const links = [b, c, d].map((p) => link(a, p))
  await until(async () => {
    for (const p of peers) await p.update()
    return b.writable && c.writable
  }, { wakeOn: peers, pollMs: 20, what: () => 'b and c to become writable' })

  let t = now()
  await writeAll(writers, w, 'meshbee')
  await synced(peers, writers, 'the writes everywhere')
  const writeMs = now() - t
  t = now()
  await deleteAll(writers, w)
  await synced(peers, writers, 'the deletes everywhere')
  const deleteMs = now() - t
  for (const p of peers) {
    const n = await countKeys(p)
    if (n !== w.keys - w.deleted) throw new Error(`a peer holds ${n} keys, expected ${w.keys - w.deleted}`)
  }
  log(`meshbee: written and synced in ${(writeMs / 1000).toFixed(1)} s, deletes in ${(deleteMs / 1000).toFixed(1)} s`)

  const measureOpen = async (name: string, db: Mesh): Promise<Bytes & { reported: DbStats['disk'] }> => ({ ...await bytesOf(dirs[name] as string), reported: db.stats().disk })
  const diskStats = (db: Mesh): DiskStats => { const x = db.stats(); return { blocksCleared: x.blocksCleared, tombstonesCollected: x.tombstonesCollected, tombstones: x.tombstones, disk: x.disk } }
  const open_: MeshbeeOut['open'] = {}
  open_.aBefore = await measureOpen('a', a)
  open_.d = await measureOpen('d', d)
  const statsBefore = diskStats(a)

  const rounds: MeshbeeOut['rounds'] = []
  for (let round = 1; round <= 3; round++) {
    for (const [i, db] of writers.entries()) {
      let last = 0
      const t0 = now()
      const res = await db.compact({
        onProgress: (p) => {
          if (now() - last < 5000) return
          last = now()
          log(`meshbee: compact() round ${round}, writer ${'abc'[i] as string}: ${p.phase} ${p.done}/${p.total}`)
        }
      })
      if (i === 0) rounds.push({ ...res, wallMs: now() - t0 })
      log(`meshbee: compact() round ${round}, writer ${'abc'[i] as string}: ${res.ms.toFixed(0)} ms, ${res.blocksCleared} blocks cleared, ${res.tombstonesCollected} tombstones collected, held back by ${res.heldBackBy.length}`)
    }
    await synced(peers, writers, `compaction round ${round}'s records everywhere`)
  }
  for (const [name, db] of [['aAfter', a], ['bAfter', b], ['cAfter', c]] as const) open_[name] = await measureOpen(name[0] as string, db)
  const statsAfter = diskStats(a)

  const fresh = await open('fresh', {})
  const live: Array<{ type: 'put', key: string, value: Value }> = []
  for await (const [key, value] of a.iterator()) live.push({ type: 'put', key, value })
  await fresh.batch(live)
  if (await countKeys(fresh) !== w.keys - w.deleted) throw new Error('the fresh database does not hold the live keys')
  open_.fresh = await measureOpen('fresh', fresh)

  const lengths: Record<string, number> = {}
  for (const info of a.writers()) if (info.member) lengths[info.key.toString('hex').slice(0, 8)] = info.length
  for (const cut of links) cut()
  for (const p of [...peers, fresh]) await p.close()
  const rest: MeshbeeOut['rest'] = {}
  for (const name of ['a', 'b', 'c', 'd', 'fresh']) rest[name] = await bytesOf(dirs[name] as string)
  const anat: MeshbeeOut['anatomy'] = {}
  const files: MeshbeeOut['files'] = {}
  for (const name of ['fresh', 'd', 'a']) {
    const dir = dirs[name] as string
    files[name] = { ...await filesOf(path.join(dir, 'cores'), 'logs'), ...await filesOf(path.join(dir, 'view'), 'view') }
    anat[name] = await meshAnatomy(dir)
  }
  return { metrics: { writeMs, deleteMs }, open: open_, rest, anatomy: anat, files, rounds, statsBefore, statsAfter, lengths }
}

// ---------------------------------------------------------------- part: autobase's disk

interface AutobaseOut { metrics: Record<string, number>, open: Bytes[], rest: Bytes[], anatomy: Anatomy, files: Record<string, number> }

async function partAutobase (w: Workload): Promise<AutobaseOut> {
  const dirs: string[] = []
  for (let i = 0; i < WRITERS; i++) dirs.push(await tempDir(`compact-ab-${i}`))
  const first = makeBase(new Corestore(dirs[0]), null)
  await first.base.ready()
  const bases = [first]
  for (let i = 1; i < WRITERS; i++) {
    const b = makeBase(new Corestore(dirs[i]), first.base.key)
    await b.base.ready()
    bases.push(b)
  }
  for (const b of bases.slice(1)) await first.base.append({ addWriter: b.base.local.key.toString('hex') })
  const links = bases.slice(1).map((b) => linkBases(first, b))
  const wake = bases.map((b) => b.base)
  await until(async () => {
    await Promise.all(bases.map(async (b) => await b.base.update()))
    return bases.every((b) => b.base.writable)
  }, { wakeOn: wake, pollMs: 20, what: () => 'autobase peers to become writable' })

  const keys = keysOf(w)
  let t = now()
  const every = Math.max(1, Math.round(w.overwrites / 10))
  for (let r = 0; r < w.overwrites; r++) {
    for (const [i, b] of bases.entries()) await b.base.append(puts(keys, i, r).map(({ key, value }) => ({ key, value })))
    if ((r + 1) % every === 0) log(`autobase: round ${r + 1}/${w.overwrites} appended (${((now() - t) / 1000).toFixed(0)} s)`)
  }
  const check = baseChecker(bases, w.keys)
  await until(async () => {
    if (!await check()) return false
    // every key shows a last-round value (which writer's depends on autobase's order)
    for await (const node of first.base.view.createReadStream()) if (node.value.round !== w.overwrites - 1) return false
    return true
  }, { wakeOn: wake, pollMs: 50, timeoutMs: 3_600_000, what: () => 'autobase writers to converge' })
  const writeMs = now() - t
  t = now()
  for (const [i, b] of bases.entries()) await b.base.append(deletes(keys, w, i).map((key) => ({ del: key })))
  await until(baseChecker(bases, w.keys - w.deleted), { wakeOn: wake, pollMs: 50, timeoutMs: 3_600_000, what: () => 'autobase deletes everywhere' })
  const deleteMs = now() - t
  log(`autobase: written and converged in ${(writeMs / 1000).toFixed(1)} s, deletes in ${(deleteMs / 1000).toFixed(1)} s`)

  const open: Bytes[] = []
  for (const dir of dirs) open.push({ logs: await du(dir), view: 0 })
  const applied = bases.map((b) => b.applied)
  for (const cut of links) cut()
  for (const b of bases) {
    await b.base.close().catch(() => {})
    await b.store.close().catch(() => {})
  }
  const rest: Bytes[] = []
  for (const dir of dirs) rest.push({ logs: await du(dir), view: 0 })
  const files = await filesOf(dirs[0] as string, 'logs')
  return { metrics: { writeMs, deleteMs, applied0: applied[0] as number }, open, rest, files, anatomy: await anatomy(dirs[0] as string, null) }
}

// ---------------------------------------------------------------- parts: put and fold speed

async function partPut (p: Speed & { puts: number }): Promise<Result> {
  const MeshDB = await meshDB(p)
  const db: Mesh = new MeshDB<string, Value>(await tempDir('compact-put'), { valueEncoding: 'json', ...SETTING_OPTS[p.setting] })
  await db.open()
  const keys = randomKeys('p', p.puts + 100, 22)
  for (let i = 0; i < 100; i++) await db.put(keys[p.puts + i] as string, valueOf(i))
  const t = now()
  for (let i = 0; i < p.puts; i++) await db.put(keys[i] as string, valueOf(i))
  const ms = now() - t
  const length = db.writers().find((x) => x.local)?.length ?? 0
  await db.close()
  return { metrics: { opsPerSec: p.puts / ms * 1000, extraBlocks: length - p.puts - 100 } }
}

async function partFoldSetup (p: Workload & Speed): Promise<Result> {
  const MeshDB = await meshDB(p)
  const dir = await tempDir(`compact-fold-${p.setting}`)
  const store = new Corestore(path.join(dir, 'cores'))
  await store.ready()
  const open = async (i: number, key?: Buffer): Promise<Mesh> => {
    const db: Mesh = new MeshDB<string, Value>(namespaced(store, `w${i}`), { key, viewPath: path.join(dir, 'writers', `w${i}`), valueEncoding: 'json', ...SETTING_OPTS[p.setting] })
    await db.open()
    return db
  }
  const t = now()
  const a = await open(0)
  const writers = [a, await open(1, a.key), await open(2, a.key)]
  for (const w of writers.slice(1)) await a.addWriter(w.writerKey)
  await until(async () => {
    for (const w of writers) await w.update()
    return writers.every((w) => w.writable)
  }, { wakeOn: writers, pollMs: 20, what: () => 'the writers to become writable' })
  await writeAll(writers, p, `fold setup (${p.setting})`)
  await deleteAll(writers, p)
  await synced(writers, writers, 'the fold setup')
  const key = a.key.toString('hex')
  const entries = writers.reduce((n, w) => n + (w.writers().find((x) => x.local)?.length ?? 0), 0)
  for (const w of writers) await w.close()
  await store.close()
  await rm(path.join(dir, 'writers'), { recursive: true, force: true })
  return { metrics: { setupMs: now() - t, entries, logBytes: await du(path.join(dir, 'cores')) }, info: { dir, key } }
}

async function partFold (p: Speed & { dir: string, key: string, round: number, live: number }): Promise<Result> {
  const MeshDB = await meshDB(p)
  const store = new Corestore(path.join(p.dir, 'cores'))
  await store.ready()
  const viewPath = path.join(p.dir, `fold-${p.round}`)
  global.gc?.()
  const t = now()
  const db: Mesh = new MeshDB<string, Value>(namespaced(store, `fold-${p.round}`), { key: Buffer.from(p.key, 'hex'), viewPath, valueEncoding: 'json', ...SETTING_OPTS[p.setting] })
  await db.open() // the fold of everything runs in open()
  const ms = now() - t
  const members = db.writers().filter((x) => x.member)
  if (members.length !== WRITERS) throw new Error(`the fold reached ${members.length} members, expected ${WRITERS}`)
  for (const x of members) if (x.folded !== x.length) throw new Error(`writer ${x.key.toString('hex')} folded ${x.folded} of ${x.length}`)
  const n = await countKeys(db)
  if (n !== p.live) throw new Error(`the fold produced ${n} keys, expected ${p.live}`)
  await db.close()
  await store.close()
  await rm(viewPath, { recursive: true, force: true })
  return { metrics: { ms } }
}

// ---------------------------------------------------------------- the runner

/** The running part's process group (killed on a timeout or Ctrl-C). */
let current: number | null = null

/** Runs `--part name params` as a child process (its stderr passed through); resolves with its result. */
async function runPart<T> (name: string, params: object, timeoutMs: number, env: NodeJS.ProcessEnv): Promise<T> {
  return await new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...process.execArgv, '--expose-gc', THIS, '--part', name, JSON.stringify(params)], { env, stdio: ['ignore', 'pipe', 'inherit'], detached: true })
    current = child.pid ?? null
    let out = ''
    child.stdout.setEncoding('utf8').on('data', (d: string) => { out += d })
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      try { process.kill(-(child.pid as number), 'SIGKILL') } catch {}
    }, timeoutMs)
    child.on('close', (code) => {
      clearTimeout(timer)
      current = null
      const line = out.split('\n').find((l) => l.startsWith(RESULT_TAG))
      if (timedOut) reject(new Error(`${name}: over the ${timeoutMs / 1000} s limit`))
      else if (code !== 0 || line === undefined) reject(new Error(`${name}: exit ${code} (its stderr is above)`))
      else resolve(JSON.parse(line.slice(RESULT_TAG.length)) as T)
    })
  })
}

async function child (name: string, params: any): Promise<void> {
  try {
    let out: unknown
    switch (name) {
      case 'meshbee': out = await partMeshbee(params); break
      case 'autobase': out = await partAutobase(params); break
      case 'put': out = await partPut(params); break
      case 'fold-setup': out = await partFoldSetup(params); break
      case 'fold': out = await partFold(params); break
      // a closed database's directory, read back (for a look at any meshbee directory)
      case 'anatomy': out = await meshAnatomy(params.dir); break
      default: throw new Error(`unknown part ${name}`)
    }
    // a fold setup hands its directory to the folds: the runner removes it
    if (name !== 'fold-setup') await removeTempDirs()
    process.stdout.write(RESULT_TAG + JSON.stringify(out) + '\n')
    process.exit(0)
  } catch (err) {
    process.stderr.write(`part ${name} failed: ${(err as Error).stack ?? String(err)}\n`)
    await removeTempDirs().catch(() => {})
    process.exit(1)
  }
}

interface Args { quick: boolean, overwrites: number, rounds: number, puts: number, baseline: string | null, disk: boolean, speed: boolean, argv: string[] }

function parseArgs (argv: string[]): Args {
  const quick = argv.includes('--quick')
  const args: Args = { quick, overwrites: quick ? 10 : 100, rounds: quick ? 3 : 5, puts: quick ? 500 : 2000, baseline: null, disk: true, speed: true, argv }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (a === '--quick') continue
    if (a === '--disk-only') { args.speed = false; continue }
    if (a === '--speed-only') { args.disk = false; continue }
    const n = Number(argv[i + 1])
    if (a === '--overwrites' || a === '--rounds' || a === '--puts') {
      if (!Number.isSafeInteger(n) || n < 1) throw new Error(`${a} takes a whole number >= 1`)
      args[a.slice(2) as 'overwrites' | 'rounds' | 'puts'] = n
      i++
    } else if (a === '--baseline') {
      const dir = argv[++i]
      if (dir === undefined || !existsSync(path.join(dir, 'index.ts'))) throw new Error('--baseline takes a directory holding a meshbee checkout (its index.ts)')
      args.baseline = path.resolve(dir)
    } else if (a === '--help' || a === '-h') {
      process.stdout.write('npx tsx scripts/bench/compact.ts [--quick] [--overwrites R (100; 10 with --quick)] [--rounds N (5; 3)] [--puts N (2,000; 500)] [--baseline DIR (another meshbee checkout, e.g. the commit before compaction, with node_modules: its puts and folds beside)] [--disk-only | --speed-only]\n')
      process.exit(0)
    } else throw new Error(`unknown argument ${String(a)}`)
  }
  return args
}

/** The commit of a checkout (for the baseline's label). */
function versionAt (dir: string): string {
  try {
    return 'git ' + execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
  } catch {
    return path.basename(dir)
  }
}

const int = (x: number): string => Math.round(x).toLocaleString('en-US')
const mb = (x: number): string => x >= 1e6 ? `${(x / 1e6).toFixed(2)} MB` : `${(x / 1e3).toFixed(1)} kB`
const ratio = (x: number, y: number): string => `${(x / y).toFixed(2)}×`

async function main (): Promise<void> {
  const args = parseArgs(process.argv.slice(2))
  const w: Workload = { keys: 1000, overwrites: args.overwrites, deleted: 500 }
  const live = w.keys - w.deleted
  const command = `npx tsx scripts/bench/compact.ts${args.argv.length > 0 ? ' ' + args.argv.join(' ') : ''}`
  const runDir = await mkdtemp(path.join(os.tmpdir(), 'meshbee-bench-compact-'))
  const env = { ...process.env, BENCH_TMP: runDir }
  const removeRunDir = (): void => { rmSync(runDir, { recursive: true, force: true }) }
  process.on('SIGINT', () => {
    if (current !== null) try { process.kill(-current, 'SIGKILL') } catch {}
    removeRunDir()
    process.exit(130)
  })
  // the commit measured is the one at the start: every part loads the library when it starts
  const startVersions = versions()
  const t0 = now()
  const loads = [os.loadavg()[0] as number]
  const limit = 3 * 3_600_000
  const failures: string[] = []
  const attempt = async <T>(what: string, f: () => Promise<T>): Promise<T | null> => {
    try {
      return await f()
    } catch (err) {
      failures.push(`${what}: ${(err as Error).message}`)
      log(`${what} failed: ${(err as Error).message}`)
      return null
    } finally {
      loads.push(os.loadavg()[0] as number)
    }
  }

  log(`compact: meshbee, ${WRITERS} writers × ${w.keys} keys × ${w.overwrites} overwrites, ${w.deleted} deleted`)
  const mesh = args.disk ? await attempt('meshbee', async () => await runPart<MeshbeeOut>('meshbee', w, limit, env)) : null
  if (args.disk) log('compact: autobase, the same workload')
  const ab = args.disk ? await attempt('autobase', async () => await runPart<AutobaseOut>('autobase', w, limit, env)) : null

  const SETTINGS: Setting[] = !args.speed ? [] : ['cutsEvery0', 'shipped', ...(args.baseline !== null ? ['baseline' as const] : [])]
  const speed = (setting: Setting): Speed => ({ setting, ...(setting === 'baseline' ? { baseline: args.baseline as string } : {}) })
  const setups: Partial<Record<Setting, Result>> = {}
  for (const s of SETTINGS) {
    log(`compact: fold setup, ${s}`)
    const r = await attempt(`fold setup (${s})`, async () => await runPart<Result>('fold-setup', { ...w, ...speed(s) }, limit, env))
    if (r !== null) setups[s] = r
  }
  const putRate: Record<Setting, number[]> = { shipped: [], cutsEvery0: [], baseline: [] }
  const foldMs: Record<Setting, number[]> = { shipped: [], cutsEvery0: [], baseline: [] }
  const extraBlocks: Record<Setting, number[]> = { shipped: [], cutsEvery0: [], baseline: [] }
  for (let round = 0; round < (args.speed ? args.rounds : 0); round++) {
    // the order rotates by round
    const order = SETTINGS.map((_, i) => SETTINGS[(i + round) % SETTINGS.length] as Setting)
    for (const s of order) {
      const r = await attempt(`put (${s})`, async () => await runPart<Result>('put', { ...speed(s), puts: args.puts }, 600_000, env))
      if (r !== null) {
        putRate[s].push(r.metrics.opsPerSec as number)
        extraBlocks[s].push(r.metrics.extraBlocks as number)
      }
    }
    for (const s of order) {
      const setup = setups[s]
      if (setup?.info === undefined) continue
      const r = await attempt(`fold (${s})`, async () => await runPart<Result>('fold', { ...speed(s), dir: setup.info?.dir, key: setup.info?.key, round, live }, 1_800_000, env))
      if (r !== null) foldMs[s].push(r.metrics.ms as number)
    }
    log(`compact: speed round ${round + 1}/${args.rounds}: puts ${SETTINGS.map((s) => `${s} ${int(putRate[s].at(-1) ?? NaN)}/s`).join(', ')}; folds ${SETTINGS.map((s) => `${s} ${int(foldMs[s].at(-1) ?? NaN)} ms`).join(', ')}`)
  }
  removeRunDir()
  const minutes = (now() - t0) / 60_000
  loads.push(os.loadavg()[0] as number)

  // ---------------------------------------------------------------- the report
  const out: string[] = []
  const put = (s = ''): void => { out.push(s) }
  put('### Compaction')
  put()
  const endVersions = versions()
  put(`Command: \`${command}\`. Machine: ${machine()}. ${startVersions}. ${minutes.toFixed(1)} min; load average ${Math.min(...loads).toFixed(1)}–${Math.max(...loads).toFixed(1)}.`)
  if (endVersions !== startVersions) {
    put()
    put(`**The tree changed during the run**: at its end, ${endVersions}. Parts that started after the change ran other code than the commit above.`)
  }
  put()
  put(`Workload: ${WRITERS} writers × ${int(w.keys)} keys × ${int(w.overwrites)} overwrites (batches of ${int(w.keys)} puts, values ~100 B of JSON; ${int(WRITERS * w.keys * w.overwrites)} entries), then ${int(w.deleted)} keys deleted (split among the writers): ${int(live)} live keys. Bytes are apparent file sizes (like \`du -b\`), logs (the Corestore) + view (LevelDB).`)
  put()
  if (!args.disk) put('Disk: not run (--speed-only).')
  else if (mesh !== null) {
    const rest = mesh.rest
    const fresh = total(rest.fresh as Bytes)
    const row = (what: string, b: Bytes, open: Bytes | undefined, vs: string, vsUncompacted: string): void =>
      put(`| ${what} | ${mb(total(b))} | ${mb(b.logs)} / ${mb(b.view)} | ${open !== undefined ? `${mb(total(open))} (${mb(open.logs)} / ${mb(open.view)})` : '—'} | ${vs} | ${vsUncompacted} |`)
    const d = total(rest.d as Bytes)
    put('| database (at rest: closed) | bytes | logs / view | open, right after the sync (logs / view) | / fresh (anchor) | / uncompacted |')
    put('|---|---:|---|---|---|---|')
    row(`anchor: a fresh MeshDB, the ${int(live)} live keys written once`, rest.fresh as Bytes, mesh.open.fresh, '1.00×', ratio(fresh, d))
    row('uncompacted: a fourth peer, not a writer, `history: \'full\'`', rest.d as Bytes, mesh.open.d, ratio(d, fresh), '1.00×')
    row('writer a just before its first `compact()` (measured open only)', mesh.open.aBefore as Bytes, mesh.open.aBefore, ratio(total(mesh.open.aBefore as Bytes), total(mesh.open.fresh as Bytes)) + ' (open / open)', ratio(total(mesh.open.aBefore as Bytes), total(mesh.open.d as Bytes)) + ' (open / open)')
    row('**compacted: writer a after compact(), sync, compact()** (and a third round)', rest.a as Bytes, mesh.open.aAfter, `**${ratio(total(rest.a as Bytes), fresh)}** (target ≤ 2×: ${total(rest.a as Bytes) <= 2 * fresh ? 'met' : '**not met**'})`, ratio(total(rest.a as Bytes), d))
    row('writer b, compacted', rest.b as Bytes, mesh.open.bAfter, ratio(total(rest.b as Bytes), fresh), ratio(total(rest.b as Bytes), d))
    row('writer c, compacted', rest.c as Bytes, mesh.open.cAfter, ratio(total(rest.c as Bytes), fresh), ratio(total(rest.c as Bytes), d))
    if (ab !== null) row('autobase 7.28.1, writer 0 (its Corestore: writer cores, system core, view)', ab.rest[0] as Bytes, ab.open[0], ratio(total(ab.rest[0] as Bytes), fresh), ratio(total(ab.rest[0] as Bytes), d))
    put()
    if (ab !== null) put(`Autobase's three writers at rest: ${ab.rest.map((b) => mb(total(b))).join(', ')}; writes converged in ${(ab.metrics.writeMs as number / 1000).toFixed(1)} s, deletes in ${(ab.metrics.deleteMs as number / 1000).toFixed(1)} s; writer 0 applied ${int(ab.metrics.applied0 as number)} nodes. meshbee's writes synced in ${(mesh.metrics.writeMs as number / 1000).toFixed(1)} s, deletes in ${(mesh.metrics.deleteMs as number / 1000).toFixed(1)} s.`)
    else put(`Autobase: failed (${failures.filter((f) => f.startsWith('autobase')).join('; ')}).`)
    put()
    const reported = (x: { reported: DbStats['disk'] } | undefined): string => x !== undefined ? `${x.reported.logs === null ? '—' : mb(x.reported.logs)} / ${mb(x.reported.view)}` : '—'
    put(`\`stats().disk\` (logs / view), open: writer a before ${reported(mesh.open.aBefore)}, after ${reported(mesh.open.aAfter)}; uncompacted peer ${reported(mesh.open.d)}; fresh ${reported(mesh.open.fresh)}. Writer a's stats before its first compact(): ${JSON.stringify({ blocksCleared: mesh.statsBefore.blocksCleared, tombstonesCollected: mesh.statsBefore.tombstonesCollected, tombstones: mesh.statsBefore.tombstones })}; after: ${JSON.stringify({ blocksCleared: mesh.statsAfter.blocksCleared, tombstonesCollected: mesh.statsAfter.tombstonesCollected, tombstones: mesh.statsAfter.tombstones })}. Member log lengths at the end: ${Object.entries(mesh.lengths).map(([k, n]) => `${k} ${int(n)}`).join(', ')}.`)
    put()
    put('| writer a\'s `compact()` | ms (its own) | wall ms | blocks cleared | tombstones collected | tombstones left | held back by | logs before → after (its own figures) | view before → after |')
    put('|---|---:|---:|---:|---:|---:|---|---|---|')
    for (const [i, r] of mesh.rounds.entries()) {
      const logs = r.bytesBefore.logs === null || r.bytesAfter.logs === null ? '—' : `${mb(r.bytesBefore.logs)} → ${mb(r.bytesAfter.logs)}`
      put(`| round ${i + 1}${i === 0 ? ' (records; the others have not yet)' : i === 1 ? ' (every member\'s record held)' : ' (the previous round\'s records held)'} | ${int(r.ms)} | ${int(r.wallMs)} | ${int(r.blocksCleared)} | ${int(r.tombstonesCollected)} | ${int(r.tombstones)} | ${r.heldBackBy.length === 0 ? '—' : r.heldBackBy.map((k) => k.slice(0, 8)).join(', ')} | ${logs} | ${mb(r.bytesBefore.view)} → ${mb(r.bytesAfter.view)} |`)
    }
    put()
    const cols: Array<{ label: string, anat: Anatomy, rest: Bytes, files: Record<string, number> }> = [
      { label: 'fresh (anchor)', anat: mesh.anatomy.fresh as Anatomy, rest: rest.fresh as Bytes, files: mesh.files.fresh ?? {} },
      { label: 'uncompacted', anat: mesh.anatomy.d as Anatomy, rest: rest.d as Bytes, files: mesh.files.d ?? {} },
      { label: 'compacted (a)', anat: mesh.anatomy.a as Anatomy, rest: rest.a as Bytes, files: mesh.files.a ?? {} },
      ...(ab !== null ? [{ label: 'autobase writer 0', anat: ab.anatomy, rest: ab.rest[0] as Bytes, files: ab.files }] : [])
    ]
    const kinds = [...new Set(cols.flatMap((x) => Object.keys(x.anat.rows)))].sort()
    put('Where the bytes are, read back from the closed stores: logical bytes (key + value) and rows of each kind, then each directory after a full compaction of its RocksDB (`storage.compact()`) and its LevelDB (`compactRange`).')
    put()
    put(`| kind | ${cols.map((x) => x.label).join(' | ')} |`)
    put(`|---|${cols.map(() => '---:').join('|')}|`)
    for (const k of kinds) put(`| ${k} | ${cols.map((x) => { const r = x.anat.rows[k]; return r === undefined ? '—' : `${mb(r.bytes)} (${int(r.count)})` }).join(' | ')} |`)
    put(`| **logical total** | ${cols.map((x) => mb(Object.values(x.anat.rows).reduce((n, r) => n + r.bytes, 0))).join(' | ')} |`)
    put(`| on disk at rest (logs / view) | ${cols.map((x) => `${mb(total(x.rest))} (${mb(x.rest.logs)} / ${mb(x.rest.view)})`).join(' | ')} |`)
    const fileKinds = [...new Set(cols.flatMap((x) => Object.keys(x.files)))].sort()
    for (const k of fileKinds) put(`| at rest, ${k} | ${cols.map((x) => x.files[k] === undefined ? '—' : mb(x.files[k] as number)).join(' | ')} |`)
    put(`| on disk after the stores' full compactions (logs / view) | ${cols.map((x) => `${mb(total(x.anat.compacted))} (${mb(x.anat.compacted.logs)} / ${mb(x.anat.compacted.view)})`).join(' | ')} |`)
    put(`| the full compactions took (logs / view) | ${cols.map((x) => `${int(x.anat.compactMs.logs)} / ${int(x.anat.compactMs.view)} ms`).join(' | ')} |`)
    const fc = total((mesh.anatomy.fresh as Anatomy).compacted)
    put()
    const ac = total((mesh.anatomy.a as Anatomy).compacted)
    const dc = total((mesh.anatomy.d as Anatomy).compacted)
    put(`After the stores' own full compactions, compacted / fresh: ${ratio(ac, fc)}; uncompacted / fresh ${ratio(dc, fc)}; compacted / uncompacted ${ratio(ac, dc)}${ab !== null ? `; autobase / fresh ${ratio(total(ab.anatomy.compacted), fc)}` : ''}.`)
  } else {
    put(`meshbee's disk part failed: ${failures.filter((f) => f.startsWith('meshbee')).join('; ')}.`)
  }
  put()
  if (!args.speed) put('Speed: not run (--disk-only).')
  else {
    const hasBase = args.baseline !== null
    put(`Speed, as shipped against \`cutsEvery: 0\` (no automatic stability records; the tombstone bookkeeping after each fold still runs)${hasBase ? ` and against a baseline checkout (\`--baseline\`, ${versionAt(args.baseline as string)})` : ''}; every trial in its own process, ${args.rounds} rounds, the order rotating, lower medians:`)
    put()
    put(`| measure | \`cutsEvery: 0\` (anchor) | as shipped | shipped / anchor |${hasBase ? ' baseline | shipped / baseline |' : ''} target |`)
    put(`|---|---:|---:|---|${hasBase ? '---:|---|' : ''}---|`)
    const med = (xs: number[]): number => xs.length > 0 ? median(xs) : NaN
    const vsBase = (xs: Record<Setting, number[]>, unit: string): string => hasBase ? ` ${int(med(xs.baseline))} | ${(med(xs.shipped) / med(xs.baseline)).toFixed(2)}×${unit} |` : ''
    put(`| awaited put, one at a time (ops/s; ${int(args.puts)} puts into a fresh database) | ${int(med(putRate.cutsEvery0))} | ${int(med(putRate.shipped))} | ${(med(putRate.shipped) / med(putRate.cutsEvery0)).toFixed(2)}× |${vsBase(putRate, '')} unchanged within noise |`)
    put(`| a fresh peer's fold of the ${WRITERS} writers' logs (ms; the workload above, in one Corestore) | ${int(med(foldMs.cutsEvery0))} | ${int(med(foldMs.shipped))} | ${(med(foldMs.shipped) / med(foldMs.cutsEvery0)).toFixed(2)}× the time |${vsBase(foldMs, ' the time')} unchanged within noise |`)
    put()
    const byRound = (xs: Record<Setting, number[]>, a: Setting, b: Setting): string => xs[a].map((x, i) => (x / (xs[b][i] as number)).toFixed(2)).join(', ')
    put(`Round by round, shipped / \`cutsEvery: 0\`: puts ${byRound(putRate, 'shipped', 'cutsEvery0')}; folds ${byRound(foldMs, 'shipped', 'cutsEvery0')} (the time)${hasBase ? `; shipped / baseline: puts ${byRound(putRate, 'shipped', 'baseline')}; folds ${byRound(foldMs, 'shipped', 'baseline')} (the time)` : ''}.`)
    put()
    put(`Rounds (${SETTINGS.map((s) => SETTING_NAME[s]).join(' / ')}): puts ${SETTINGS.map((s) => putRate[s].map(int).join(', ')).join(' / ')} ops/s; folds ${SETTINGS.map((s) => foldMs[s].map(int).join(', ')).join(' / ')} ms. Blocks a put trial's log held beyond its puts: ${SETTINGS.map((s) => extraBlocks[s].join(', ')).join(' / ')}. Fold logs: ${SETTINGS.map((s) => setups[s] !== undefined ? `${int(setups[s]?.metrics.entries as number)} entries, ${mb(setups[s]?.metrics.logBytes as number)}, built in ${((setups[s]?.metrics.setupMs as number) / 1000).toFixed(0)} s` : 'failed').join(' / ')}.`)
  }
  if (failures.length > 0) {
    put()
    put(`Failures: ${failures.join('; ')}.`)
  }
  process.stdout.write(out.join('\n') + '\n')
}

if (process.argv[2] === '--part') {
  await child(process.argv[3] as string, JSON.parse(process.argv[4] as string))
} else {
  main().catch((err: unknown) => {
    process.stderr.write(`compact bench failed: ${(err as Error).stack ?? String(err)}\n`)
    process.exit(1)
  })
}
