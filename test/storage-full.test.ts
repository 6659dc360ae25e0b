/**
 * A full disk: every write that fails carries MESHBEE_STORAGE with the storage's error as its
 * cause, a write that rejects appended nothing, nothing acknowledged is lost, and writes work
 * again once the storage takes them, without reopening. ENOSPC is injected into the view's
 * LevelDB batches and into the RocksDB writes under the own log; where the system lets an
 * unprivileged process mount a small tmpfs in its own namespace (`unshare -rm`), a real full
 * filesystem too (test/fixtures/storage-full-child.ts); a machine that cannot fails those cases
 * with the reason (none is skipped).
 */
import { expect } from 'chai'
import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { MeshDB } from '../index.js'
import { DIRECT_OPS } from '../lib/view.js'
import { cleanup, connect, ownLength, rejects, tempDir, until } from './helpers/peers.js'
import { dumpView, expectSameView, refold } from './helpers/refold.js'

type DB = MeshDB<string, string>
type Coded = Omit<Error, 'cause'> & { code?: string, cause?: Error & { code?: string, cause?: Error & { code?: string } } }

/** The error a promise rejects with, with its code and causes. */
async function refusal (p: Promise<unknown>): Promise<Coded> {
  return await rejects(p) as Coded
}

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const CHILD = fileURLToPath(new URL('./fixtures/storage-full-child.ts', import.meta.url))

/** Resolves once `check` holds, re-checking every few milliseconds; fails after `timeout` ms. */
async function waitFor (check: () => boolean | Promise<boolean>, what: string, timeout = 20_000): Promise<void> {
  const deadline = Date.now() + timeout
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

/**
 * Makes the view's LevelDB refuse every batch, as classic-level does on a full disk, while
 * `failing` is set.
 */
function faultyView (db: DB): { failing: boolean, refused: number } {
  const level = db.engine.view.db as unknown as { batch: (...args: unknown[]) => unknown }
  const location = db.engine.view.location
  const original = level.batch
  const state = { failing: false, refused: 0 }
  level.batch = function (this: unknown, ...args: unknown[]) {
    if (!state.failing || !Array.isArray(args[0])) return original.apply(this, args)
    state.refused++
    return Promise.reject(Object.assign(new Error(`IO error: ${location}/000005.log: No space left on device`), { code: 'LEVEL_IO_ERROR' }))
  }
  return state
}

interface RocksBatch {
  _db: { _state: unknown } | null
  _flush: () => Promise<void>
  _onwrite: (err: Error | null) => void
  destroy: () => void
}

/** The prototype patches of `faultyLog`, undone after each test. */
const restores: Array<() => void> = []

/**
 * Makes the RocksDB under a database's Corestore (the own log's storage) fail every write batch
 * with ENOSPC, as RocksDB does when its write-ahead log cannot grow, while `failing` is set. The
 * batch goes through rocksdb-native's own completion path with the error its binding gives.
 */
function faultyLog (db: DB): { failing: boolean, refused: number } {
  const rocks = (db.engine.store as unknown as { storage: { db: { _state: unknown, write: () => RocksBatch } } }).storage.db
  const probe = rocks.write()
  const proto = Object.getPrototypeOf(probe) as RocksBatch
  probe.destroy()
  const base = Object.getPrototypeOf(proto) as RocksBatch
  const original = proto._flush
  const state = { failing: false, refused: 0 }
  proto._flush = async function (this: RocksBatch) {
    if (!state.failing || this._db?._state !== rocks._state) return await original.call(this)
    await base._flush.call(this)
    state.refused++
    const err = Object.assign(new Error('While appending to file: cores/db/000004.log: No space left on device'), { code: 'ENOSPC' })
    setImmediate(() => this._onwrite(err))
  }
  restores.push(() => { proto._flush = original })
  return state
}

/** Two members of one database, replicating; `a`'s directory is `dir`. */
async function twoPeers (): Promise<{ a: DB, b: DB, dir: string, cut: () => void }> {
  const dir = await tempDir('a')
  const a: DB = new MeshDB(dir)
  await a.open()
  const b: DB = new MeshDB(await tempDir('b'), { key: a.key })
  await b.open()
  await a.addWriter(b.writerKey)
  const cut = connect(a, b)
  await until([a, b], async () => { await b.update(); return b.writable }, () => 'b never became writable')
  return { a, b, dir, cut }
}

/** Every value in `acked` reads back from `db`. */
async function expectValues (db: DB, acked: Map<string, string>, what: string): Promise<void> {
  for (const [k, v] of acked) expect(await db.get(k), `${what}: ${k}`).to.equal(v)
}

function expectStorageError (err: Coded, cause: RegExp): void {
  expect(err.code, err.message).to.equal('MESHBEE_STORAGE')
  expect(err.cause, 'the storage error as the cause').to.be.instanceOf(Error)
  expect(`${err.cause?.message ?? ''} ${err.cause?.cause?.message ?? ''}`).to.match(cause)
  expect(err.message).to.match(/No space left on device/).and.match(/Free disk space/)
}

/** Closes `dir`'s database and checks its view, reopened raw, against a full re-fold of its logs. */
async function expectRefold (dir: string, key: Buffer): Promise<void> {
  expectSameView(await dumpView(join(dir, 'view')), await refold(join(dir, 'cores'), key), 'view vs full re-fold')
}

describe('storage full: MESHBEE_STORAGE, nothing acknowledged lost, writes again without reopening', function () {
  this.timeout(120_000)

  const dbs: DB[] = []
  afterEach(async () => {
    for (const restore of restores.splice(0)) restore()
    await cleanup(...dbs.splice(0))
  })

  it("the view's LevelDB refusing batches: acknowledged commits stay readable, later writes and folds are refused until a retry lands them", async () => {
    const { a, b, dir, cut } = await twoPeers()
    dbs.push(a, b)
    const view = a.engine.view
    const acked = new Map<string, string>([['before', '1']])
    await a.put('before', '1')
    const fault = faultyView(a)
    fault.failing = true

    // a commit of DIRECT_OPS writes or more goes to LevelDB at once; refused, it waits in the
    // write-behind table with the others, readable, and the write is acknowledged: its entries
    // are in the log
    const big = Array.from({ length: DIRECT_OPS + 44 }, (_, i) => ({ type: 'put' as const, key: `big${i}`, value: String(i) }))
    await a.batch(big)
    for (const op of big) acked.set(op.key, op.value)
    expect(fault.refused).to.be.greaterThan(0)
    expect(view.refused).to.equal(true)
    await expectValues(a, acked, 'readable from the table')

    // refused before the append: nothing reaches the log
    const length = ownLength(a)
    const refusals = [
      await refusal(a.put('refused', 'x')),
      await refusal(a.write([{ type: 'sadd', key: 'set', member: 1 }])),
      await refusal(a.del('before'))
    ]
    for (const err of refusals) {
      expectStorageError(err, /No space left on device/)
      expect(err.cause).to.have.property('code', 'LEVEL_IO_ERROR')
    }
    expect(ownLength(a)).to.equal(length)
    expect(await a.get('refused')).to.equal(undefined)
    await expectValues(a, acked, 'after the refusals')

    // a remote write arrives meanwhile: the fold that would show it is refused as well
    await b.put('remote', 'r')
    acked.set('remote', 'r')
    const remote = a.engine.writers.get(b.writerKey.toString('hex'))
    await waitFor(() => remote !== undefined && remote.core.length === ownLength(b), "b's entry never reached a")
    expectStorageError(await refusal(a.update()), /No space left on device/)
    expect(await a.get('remote')).to.equal(undefined)

    // LevelDB takes writes again: the next write retries the table at once, and once it lands
    // the fold that was refused runs again
    fault.failing = false
    await a.put('after', '3')
    acked.set('after', '3')
    expect(view.refused).to.equal(false)
    await until([a], async () => await a.get('remote') === 'r', () => 'the refused fold never ran again')
    await expectValues(a, acked, 'after LevelDB took writes again')

    // refused again, recovered by the retry timer alone (backing off), with no write asking
    fault.failing = true
    await a.put('acked-late', '4')
    acked.set('acked-late', '4')
    await waitFor(() => view.refused, 'the view never saw LevelDB refuse')
    const refusedSoFar = fault.refused
    await waitFor(() => fault.refused >= refusedSoFar + 2, 'the view never retried on its own')
    fault.failing = false
    await waitFor(() => !view.refused, 'the retry timer never landed the table')
    await view.settle()
    await a.put('last', '5')
    acked.set('last', '5')
    await expectValues(a, acked, 'after the timer retried')
    expect((await a.verify()).ok).to.equal(true)

    // everything acknowledged survives a reopen, and the view is what a full re-fold makes
    cut()
    const key = a.key
    await a.close()
    const again: DB = new MeshDB(dir)
    dbs.push(again)
    await again.open()
    await expectValues(again, acked, 'reopened')
    expect(await again.get('refused')).to.equal(undefined)
    expect((await again.verify()).ok).to.equal(true)
    await again.close()
    await expectRefold(dir, key)
  })

  it('the own log refusing appends (ENOSPC under Hypercore): every write rejects with MESHBEE_STORAGE and appends nothing; writes work again once it takes them', async () => {
    const dir = await tempDir()
    const db: DB = new MeshDB(dir)
    dbs.push(db)
    await db.open()
    const fault = faultyLog(db)
    const own = db.engine.own
    const acked = new Map<string, string>()

    // a fresh log: the first write also appends Hyperbee's header, whose failure used to leave
    // the log locked (every later write then waited for ever)
    fault.failing = true
    for (const k of ['first', 'second']) {
      const err = await refusal(db.put(k, 'v'))
      expectStorageError(err, /No space left on device/)
      expect(err.cause?.message).to.equal('Batch was not applied')
      expect(err.cause?.cause).to.have.property('code', 'ENOSPC')
    }
    expect(own.core.length).to.equal(0)
    fault.failing = false
    await db.put('a', '1')
    await db.sadd('set', 1)
    await db.patch('doc', { x: 1 })
    acked.set('a', '1')

    // every kind of write, refused by the log: nothing appended, the view as it was
    fault.failing = true
    const length = own.core.length
    const refusals: Array<() => Promise<unknown>> = [
      async () => await db.put('refused', 'x'),
      async () => await db.del('a'),
      async () => await db.batch([{ type: 'put', key: 'refused', value: 'x' }, { type: 'del', key: 'a' }]),
      async () => await db.write([{ type: 'put', key: 'refused', value: 'x' }, { type: 'srem', key: 'set', member: 1 }]),
      async () => await db.patch('doc', { x: 2 }),
      async () => await db.sadd('set', 2),
      async () => await db.srem('set', 1),
      async () => await db.addWriter(Buffer.alloc(32, 7))
    ]
    for (const write of refusals) {
      expectStorageError(await refusal(write()), /No space left on device/)
      expect(own.core.length).to.equal(length)
      expect(db.engine.checkpoints.get(own.id)).to.equal(length)
    }
    expect(fault.refused).to.be.at.least(refusals.length)
    await expectValues(db, acked, 'after the refusals')
    expect(await db.get('refused')).to.equal(undefined)
    expect(await db.smembers('set')).to.deep.equal([1])
    expect(await db.get('doc', { valueEncoding: 'json' })).to.deep.equal({ x: 1 })
    expect(db.writers()).to.have.length(1)

    // the log takes appends again: so do writes, without reopening
    fault.failing = false
    await db.put('b', '2')
    await db.sadd('set', 3)
    await db.batch(Array.from({ length: DIRECT_OPS }, (_, i) => ({ type: 'put' as const, key: `many${i}`, value: String(i) })))
    acked.set('b', '2')
    for (let i = 0; i < DIRECT_OPS; i++) acked.set(`many${i}`, String(i))
    expect(await db.smembers('set')).to.deep.equal([1, 3])
    expect(db.engine.checkpoints.get(own.id)).to.equal(own.core.length)
    expect((await db.verify()).ok).to.equal(true)

    const key = db.key
    await db.close()
    const again: DB = new MeshDB(dir)
    dbs.push(again)
    await again.open()
    await expectValues(again, acked, 'reopened')
    expect(await again.get('refused')).to.equal(undefined)
    expect(await again.smembers('set')).to.deep.equal([1, 3])
    expect(await again.get('doc', { valueEncoding: 'json' })).to.deep.equal({ x: 1 })
    expect((await again.verify()).ok).to.equal(true)
    await again.close()
    await expectRefold(dir, key)
  })

  describe('a real full filesystem (a 16 MiB tmpfs in a mount namespace of its own)', function () {
    const reason = unshareUnavailable()

    interface ChildResult {
      acked: number
      errors: Array<{ code?: string, message: string, cause?: { code?: string, message: string }, appended: boolean }>
      afterFree: Array<{ ok: boolean, error?: string }>
      missingBeforeClose: number
      length: number
      viewCheckpoint: number
      missingAfterReopen: number
      writesAfterReopen: boolean
      verified: boolean
      refoldDiffers: string | null
    }

    async function runChild (mode: 'view' | 'all'): Promise<ChildResult> {
      const mnt = await mkdtemp(join(tmpdir(), 'meshbee-tmpfs-'))
      const home = await mkdtemp(join(tmpdir(), 'meshbee-home-'))
      try {
        const child = spawn('unshare', ['-rm', process.execPath, '--import', 'tsx', CHILD, mnt, home, mode], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
        let out = ''
        let err = ''
        child.stdout.setEncoding('utf8').on('data', (s: string) => { out += s })
        child.stderr.setEncoding('utf8').on('data', (s: string) => { err += s })
        const code = await new Promise<number | null>((resolve) => child.on('close', resolve))
        const lines = out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { t: string } & ChildResult)
        const result = lines.find((l) => l.t === 'result')
        if (result === undefined) throw new Error(`the child (${mode}) exited with ${String(code)} and no result:\n${err}`)
        return result
      } finally {
        await rm(mnt, { recursive: true, force: true })
        await rm(home, { recursive: true, force: true })
      }
    }

    function expectCommon (r: ChildResult, cause: RegExp): void {
      expect(r.errors.length, 'writes refused on the full filesystem').to.be.greaterThan(0)
      for (const e of r.errors) {
        expect(e.code, e.message).to.equal('MESHBEE_STORAGE')
        expect(e.cause?.message).to.match(cause)
        expect(e.appended, 'a write that rejects appends nothing').to.equal(false)
      }
      expect(r.missingBeforeClose).to.equal(0)
      expect(r.missingAfterReopen).to.equal(0)
      expect(r.writesAfterReopen).to.equal(true)
      expect(r.verified).to.equal(true)
      expect(r.refoldDiffers).to.equal(null)
    }

    it('the view on the full filesystem: refused writes carry the cause; once space is freed writes work again without reopening, and LevelDB keeps every commit', async function () {
      expect(reason, 'this machine must mount a tmpfs in a namespace of its own (unshare -rm)').to.equal(null)
      const r = await runChild('view')
      expectCommon(r, /No space left on device/)
      for (const e of r.errors) expect(e.cause?.code).to.equal('LEVEL_IO_ERROR')
      expect(r.afterFree.every((w) => w.ok), JSON.stringify(r.afterFree)).to.equal(true)
      // the refused batch left a torn record in LevelDB's log; LevelDB, reopened, drops every
      // record after one, so the view switches to a new log file before writing on
      expect(r.viewCheckpoint).to.equal(r.length)
    })

    it('the whole database on the full filesystem: every refused write carries MESHBEE_STORAGE with the cause, and nothing acknowledged is lost across a reopen', async function () {
      expect(reason, 'this machine must mount a tmpfs in a namespace of its own (unshare -rm)').to.equal(null)
      const r = await runChild('all')
      expectCommon(r, /No space left on device/)
      // RocksDB (rocksdb-native 3.18) stays stopped after a failed write until it is reopened:
      // writes after freeing space may still be refused, each with MESHBEE_STORAGE
      for (const w of r.afterFree) if (!w.ok) expect(w.error).to.match(/^MESHBEE_STORAGE /)
    })
  })
})

/** Why a tmpfs cannot be mounted in a namespace of our own here, or null if it can. */
function unshareUnavailable (): string | null {
  if (process.platform !== 'linux') return 'not Linux'
  const mnt = mkdtempSync(join(tmpdir(), 'meshbee-probe-'))
  try {
    const probe = spawnSync('unshare', ['-rm', 'sh', '-c', 'mount -t tmpfs -o size=1m tmpfs "$1"', 'sh', mnt], { encoding: 'utf8' })
    if (probe.error !== undefined) return probe.error.message
    return probe.status === 0 ? null : `unshare -rm / mount: ${probe.stderr.trim()}`
  } finally {
    rmSync(mnt, { recursive: true, force: true })
  }
}
