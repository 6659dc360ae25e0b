/**
 * Crash consistency (DESIGN.md invariants 3 and 4): a child process writing and folding
 * (test/fixtures/crash-child.ts) is killed with SIGKILL at random moments, many times over, on the
 * same directory. After every kill, on a copy of the directory as the kill left it:
 *
 * 1. the view as it lay on disk at the kill equals a full re-fold of the logs cut at the
 *    checkpoint stored with it (view and checkpoints changed in one atomic batch);
 * 2. the reopened view (recovery) equals a full re-fold of the logs from an empty view, byte for
 *    byte (values, slots, checkpoints, meta and the secondary index: the one the child keeps
 *    incrementally, or rebuilt on open after a kill in its rebuild, equals one built from the
 *    re-fold; only the persisted HLC stamp and the change feed's local numbering are left out);
 * 3. the reopened view equals a sequential reference model of every acknowledged write, plus the
 *    one write in flight at the kill either wholly applied or wholly absent;
 * 4. the change feed issues no seq twice: `changes({ since })` from the seq the child had at its
 *    last acknowledgement names every key that differs from the acknowledged writes then.
 *
 * The child then restarts on the original directory (doing its own recovery, which may itself be
 * killed) and goes on writing. Kills land after k acknowledgements plus a random sliver of time,
 * so most land inside a write; some land inside open (the recovery fold); every fifth child kills
 * itself at one of two narrow points: right between a write's log append and its view commit, or
 * right after a write resolves, while its commit is still in the view's write-behind table and not
 * yet in LevelDB.
 *
 * Odd seeds write an encrypted database, even ones a plain one.
 *
 * The compaction runs do the same with a child that deletes often and calls `db.compact()` between
 * writes (test/helpers/compact-child.ts), its stability records every few ms, some runs compacting
 * on their own after folds too: as the only writer it may drop its tombstones and clear its log up
 * to its checkpoint. Besides random kills (after an acknowledgement, or a few ms into a
 * compaction), some children kill themselves inside a compaction, right after its first clearing
 * of log blocks, or right after it resolved. After every kill, checks 1 to 4 as above, where the
 * views compared leave out slots and parts (a view that dropped stable tombstones holds fewer of
 * them than a re-fold, which has not yet: what keys read as, the checkpoints, the digest and the
 * indexes are compared); and also:
 *
 * 5. the view as the kill left it has not been folded from a length below where compaction had
 *    cleared the log (its checkpoint is at or past the cleared horizon stored in the log): else a
 *    recovery fold would need blocks that are gone;
 * 6. the tombstone bookkeeping is sound, at the kill and after recovery (helpers/refold.ts
 *    `graveProblems`);
 * 7. compacting the recovered database again resolves and leaves every key as it read.
 *
 * A failure prints its seed; CRASH_SEED=<seed> replays the same ops and kill plan (the moment a
 * kill lands still varies with timing):
 *   CRASH_SEED=<seed> npx mocha --no-config -n import=tsx test/crash.test.ts
 * CRASH_KILLS=<n> changes the number of kills (default 8; the compaction runs: CRASH_COMPACT_KILLS,
 * default 6), CRASH_VERBOSE=1 prints a summary.
 */
import { expect } from 'chai'
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { cp, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import Corestore from 'corestore'
import { MeshDB } from '../index.js'
import { dumpView as dumpViewAt, expectSameView, graveProblems, type ViewDump } from './helpers/refold.js'
import { CLEARED } from '../lib/compaction.js'
import { Model, indexesFor, int, normalizeView, prng, type ChildMessage, type Op } from './helpers/crash-ops.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const CHILD = fileURLToPath(new URL('./fixtures/crash-child.ts', import.meta.url))
const COMPACT_CHILD = fileURLToPath(new URL('./helpers/compact-child.ts', import.meta.url))
const KILLS = Number(process.env.CRASH_KILLS ?? 8)
const COMPACT_KILLS = Number(process.env.CRASH_COMPACT_KILLS ?? 6)

/** 'writes': the child writes (test/fixtures/crash-child.ts); 'compaction': it deletes and compacts too. */
type Mode = 'writes' | 'compaction'
/** Longest a child may take to reach its kill point before the test gives up on it. */
const RUN_LIMIT_MS = 30_000

interface RunResult {
  /** Ops the child issued, in order. */
  issued: Op[]
  /** How many of them it acknowledged (a prefix: the child writes one op at a time). */
  acked: number
  /** The change feed's seq at the last acknowledgement (-1 before the first). */
  seq: number
  ready: boolean
  plan: string
  /**
   * Whether the child killed itself inside its last write once the log had it and the view had not
   * (`log`), or right after its last write resolved, with its commit not yet in LevelDB (`table`);
   * in the compaction runs, inside a compaction right after its first clearing of blocks (`clear`)
   * or right after a compaction resolved (`compacted`).
   */
  selfKill: 'log' | 'table' | 'clear' | 'compacted' | null
  /** The compaction runs: compactions started and resolved, and blocks they cleared. */
  compactions: number
  compacted: number
  cleared: number
}

/** Starts the child on `dir` and SIGKILLs it according to a random plan; resolves after it is gone. */
function runChild (dir: string, seed: number, run: number, rng: () => number, encrypted: boolean, mode: Mode = 'writes'): Promise<RunResult> {
  // Some runs are killed inside open (and so inside a recovery fold, when the last kill left one).
  const duringOpen = run % 6 === 3 || rng() < 0.08
  const k = 1 + int(rng, 30)
  // Every fifth run kills itself in write k: alternately once its log append has landed and before
  // its view commit, and once it has resolved, before the view's LevelDB has its commit. In the
  // compaction runs: in compaction 1 + k / 10, once its first clearing has landed, or once it resolved.
  // (an encrypted database's compaction clears no log block: lib/compaction.ts reads its tree from
  // the blocks as stored, sealed; those runs kill themselves once a compaction resolved)
  const selfKill = duringOpen || run % 5 !== 2
    ? null
    : mode === 'compaction' ? (run % 10 === 2 && !encrypted ? 'clear' : 'compacted') : run % 10 === 2 ? 'log' : 'table'
  const kc = 1 + Math.floor(k / 10)
  // the compaction runs: half the other kills land a few ms into compaction kc instead of after an ack
  const inCompaction = mode === 'compaction' && !duringOpen && selfKill === null && rng() < 0.5

  // 0: at once; 1: after a spin of 0-3 ms (finer than timers, so the kill lands anywhere in the
  // next write); 2: after a 1-5 ms timer
  const how = rng() < 0.15 ? 0 : rng() < 0.8 ? 1 : 2
  const spin = rng() * 3
  const ms = 1 + int(rng, 5)
  const openDelay = int(rng, 80)
  const when = ['at once', `+${spin.toFixed(2)} ms spin`, `+${ms} ms`][how] as string
  const plan = duringOpen
    ? `${openDelay} ms after open started`
    : selfKill !== null
      ? {
          log: `by itself in write ${k}, with only the log written`,
          table: `by itself after write ${k}, its commit not yet in LevelDB`,
          clear: `by itself in compaction ${kc} (or the next that clears), once it cleared log blocks`,
          compacted: `by itself once compaction ${kc} resolved`
        }[selfKill]
      : inCompaction ? `in compaction ${kc}, ${when} after it started` : `after ack ${k}, ${when}`
  const args = ['--import', 'tsx', mode === 'compaction' ? COMPACT_CHILD : CHILD, dir, String(seed), String(run),
    ...(selfKill !== null ? [String(selfKill === 'clear' || selfKill === 'compacted' ? kc : k), selfKill] : [])]

  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, {
      cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, MESHBEE_CRASH_ENCRYPTED: encrypted ? '1' : '' }
    })
    const result: RunResult = { issued: [], acked: 0, seq: -1, ready: false, plan, selfKill, compactions: 0, compacted: 0, cleared: 0 }
    let stderr = ''
    let pending = ''
    let killed = false
    let failure: Error | null = null

    const kill = (): void => {
      if (killed) return
      killed = true
      child.kill('SIGKILL')
    }
    const spinThenKill = (): void => {
      const until = performance.now() + spin
      while (performance.now() < until) { /* jitter: where in the next write the kill lands */ }
      kill()
    }
    const fail = (msg: string): void => {
      failure ??= new Error(msg)
      kill()
    }
    const limit = setTimeout(() => fail(`run ${run}: the child did not reach its kill point (${plan}) in ${RUN_LIMIT_MS} ms`), RUN_LIMIT_MS)

    const onMessage = (m: ChildMessage): void => {
      if (m.t === 'open') {
        if (duringOpen) setTimeout(kill, openDelay)
      } else if (m.t === 'ready') {
        result.ready = true
      } else if (m.t === 'issue') {
        if (m.n !== result.issued.length) fail(`run ${run}: issue ${m.n} out of order`)
        result.issued.push(m.op)
      } else if (m.t === 'ack') {
        if (m.n !== result.acked || m.n >= result.issued.length) fail(`run ${run}: ack ${m.n} out of order`)
        result.acked++
        result.seq = m.seq ?? -1
        if (!duringOpen && selfKill === null && !inCompaction && result.acked === k) killSoon()
      } else if (m.t === 'compacting') {
        result.compactions = m.n
        if (inCompaction && m.n === kc) killSoon()
      } else if (m.t === 'compacted') {
        result.compacted = m.n
        result.cleared += m.cleared
      }
    }
    function killSoon (): void {
      if (how === 0) kill()
      else if (how === 1) spinThenKill()
      else setTimeout(kill, ms)
    }

    child.stdout.setEncoding('utf8')
    child.stdout.on('data', (chunk: string) => {
      pending += chunk
      let nl: number
      while ((nl = pending.indexOf('\n')) !== -1) {
        const line = pending.slice(0, nl)
        pending = pending.slice(nl + 1)
        if (line.startsWith('{')) onMessage(JSON.parse(line) as ChildMessage)
      }
    })
    child.stderr.setEncoding('utf8')
    child.stderr.on('data', (chunk: string) => { stderr += chunk })
    child.on('error', (err) => fail(`run ${run}: spawn failed: ${err.message}`))
    child.on('close', (code, signal) => {
      clearTimeout(limit)
      if (failure !== null) return reject(failure)
      if (signal !== 'SIGKILL') {
        return reject(new Error(`run ${run}: the child exited by itself (code ${String(code)}, signal ${String(signal)}) before the kill (${plan}):\n${stderr}`))
      }
      resolve(result)
    })
  })
}

/**
 * Copies a database directory (or its cores folder) as a crash would leave it. Corestore's
 * CORESTORE device file pins the store to its inode (it refuses a copied store as "moved
 * unsafely"); it holds no data, so a copy goes without it and gets a fresh one.
 */
async function copyStore (from: string, to: string): Promise<void> {
  await cp(from, to, { recursive: true, filter: (src) => basename(src) !== 'CORESTORE' })
}

/** The view of the database at `dir`, read raw (test/helpers/refold.ts). */
async function dumpView (dir: string, opts: { indexes?: boolean, merge?: boolean } = {}): Promise<ViewDump> {
  return await dumpViewAt(join(dir, 'view'), opts)
}

/**
 * Opens a MeshDB at `dir`, reads every entry of its view as strings, closes it. `compact`: then
 * compacts it, and fails unless every key reads as before.
 */
async function openAndRead (dir: string, run: number, key?: Buffer, since = -1, compact = false): Promise<{ key: Buffer, writer: string, entries: Array<[string, string]>, changed: Set<string> | null, privacy: string | null }> {
  // (a recovery does not compact on its own: the checks compare what it recovered)
  const db = new MeshDB(dir, { indexes: indexesFor(run), cutsEvery: 0, ...(key === undefined ? {} : { key }) })
  await db.open()
  try {
    let changed: Set<string> | null = new Set<string>()
    try {
      if (since >= 0) for await (const c of db.changes({ since })) changed.add(c.key)
    } catch (err) {
      // a view that never reached LevelDB before the kill is a new one, and deletions dropped
      // with their tombstones are no longer listed: the feed says so
      const code = (err as { code?: string }).code
      if (code !== 'MESHBEE_FEED_RESET' && code !== 'MESHBEE_FEED_COMPACTED') throw err
      changed = null
    }
    const entries = await db.iterator().all()
    if (compact) {
      const hash = db.hash()
      await db.compact()
      expect(await db.iterator().all(), 'the recovered database compacted again').to.deep.equal(entries)
      expect(db.hash().equals(hash), 'the recovered database\'s digest, compacted again').to.equal(true)
    }
    return { key: db.key, writer: db.writerKey.toString('hex'), entries, changed, privacy: db.privacy }
  } finally {
    await db.close()
  }
}

/** How far compaction cleared the log `writer` in the cores at `dir`/cores (closed): its stored horizon, 0 if none. */
async function clearedTo (dir: string, writer: string): Promise<number> {
  const store = new Corestore(join(dir, 'cores'))
  try {
    const core = store.get({ key: Buffer.from(writer, 'hex') })
    await core.ready()
    const raw = await core.getUserData(CLEARED) as Buffer | null
    await core.close()
    return raw === null || raw.byteLength !== 8 ? 0 : Number(raw.readBigUInt64BE(0))
  } finally {
    await store.close()
  }
}

function describeDiff (got: Map<string, string>, want: Map<string, string>): string {
  const lines: string[] = []
  for (const k of [...new Set([...got.keys(), ...want.keys()])].sort()) {
    const g = got.get(k)
    const w = want.get(k)
    if (g !== w) lines.push(`  ${k}: got ${String(g).slice(0, 120)}, expected ${String(w).slice(0, 120)}`)
  }
  return lines.join('\n')
}

describe('crash consistency (SIGKILL while writing and folding)', function () {
  this.timeout(240_000)

  let tmp = ''
  beforeEach(async () => { tmp = await mkdtemp(join(tmpdir(), 'meshbee-crash-')) })
  afterEach(async () => { await rm(tmp, { recursive: true, force: true }) })

  /** `kills` children, each killed, on one directory, checked after every kill (see the top of the file). */
  async function crashRuns (mode: Mode, kills: number): Promise<void> {
    const seed = process.env.CRASH_SEED !== undefined ? Number(process.env.CRASH_SEED) : Math.floor(Math.random() * 2 ** 32)
    const rng = prng(seed)
    // odd seeds write an encrypted database (every block sealed, membership clear, keys in the own log's store)
    const encrypted = seed % 2 === 1
    const dir = join(tmp, 'db')
    /** Every op the children issued, in order; `applied` is null while it is not known. */
    const ops: Array<{ op: Op, applied: boolean | null }> = []
    const stats = { kills: 0, selfKills: 0, logFirst: 0, tableFirst: 0, inFlight: 0, inFlightApplied: 0, tailRefolds: 0, duringOpen: 0, acked: 0, compactions: 0, compacted: 0, cleared: 0, killedCompacting: 0 }
    /** The compaction runs compare views without slots and parts (see the top of the file). */
    const merge = mode === 'writes'
    const log: string[] = []
    const started = Date.now()

    try {
      for (let run = 0; run < kills; run++) {
        const r = await runChild(dir, (seed + run * 0x9e3779b9) >>> 0, run, rng, encrypted, mode)
        stats.kills++
        stats.compactions += r.compactions
        stats.compacted += r.compacted
        stats.cleared += r.cleared
        if (r.compactions > r.compacted) stats.killedCompacting++
        if (!r.ready) stats.duringOpen++
        if (r.selfKill !== null) stats.selfKills++
        if (r.selfKill === 'log') stats.logFirst++
        if (r.selfKill === 'table') stats.tableFirst++
        stats.acked += r.acked
        r.issued.forEach((op, i) => ops.push({ op, applied: i < r.acked ? true : null }))
        if (r.issued.length > r.acked) stats.inFlight++
        log.push(`run ${run}: killed ${r.plan}; ${r.acked} acked, ${r.issued.length - r.acked} in flight` +
          (mode === 'compaction' ? `; ${r.compactions} compactions started, ${r.compacted} resolved, ${r.cleared} blocks cleared` : ''))

        if (!existsSync(dir)) {
          // Killed before it created anything: nothing to check yet.
          expect(r.issued, `run ${run}: ops issued without a directory`).to.deep.equal([])
          continue
        }
        // Everything below works on copies: the original is left as the kill left it for the next child.
        const a = join(tmp, `a${run}`)
        const a0 = join(tmp, `k${run}`)
        await copyStore(dir, a)
        await copyStore(dir, a0)
        // (an index rebuild cut short is redone on open: the view at the kill is compared without them)
        const atKill = await dumpView(a0, { indexes: false, merge })
        // (6) the tombstone bookkeeping, at the kill
        expect(atKill.hasKey ? await graveProblems(join(a0, 'view')) : [], `run ${run}: the tombstones of the view at the kill`).to.deep.equal([])
        // (5) the view at the kill was not folded from below where compaction cleared the log
        if (mode === 'compaction' && atKill.hasKey) {
          const writer = [...atKill.checkpoints.keys()][0]
          if (writer !== undefined) {
            const horizon = await clearedTo(a0, writer)
            const c0 = atKill.checkpoints.get(writer) ?? 0
            if (c0 < horizon) {
              throw new Error(`run ${run}: the view as the kill left it reflects the log to ${c0}, but compaction had cleared the log below ${horizon}: ` +
                'a recovery fold from there reads blocks that are gone (the view\'s commit that moved the checkpoint past the horizon was not in LevelDB before the blocks were cleared)')
            }
          }
        }
        const reopened = await openAndRead(a, run, undefined, r.seq)
        expect(reopened.privacy, `run ${run}: reopened as`).to.equal(encrypted ? 'encrypted' : 'plain')
        const recovered = await dumpView(a, { merge })
        expect(await graveProblems(join(a, 'view')), `run ${run}: the tombstones of the recovered view`).to.deep.equal([])

        // (2) the recovered view equals a full re-fold from an empty view.
        const b = join(tmp, `b${run}`)
        await copyStore(join(a, 'cores'), join(b, 'cores'))
        await openAndRead(b, run, reopened.key)
        const refold = await dumpView(b, { merge })
        expectSameView(recovered, refold, `run ${run}: recovered view vs full re-fold`)

        // (1) the view as the kill left it equals a re-fold of the logs at its own checkpoint.
        const len = recovered.checkpoints.get(reopened.writer) ?? 0
        const c0 = atKill.checkpoints.get(reopened.writer) ?? 0
        expect(c0, `run ${run}: checkpoint at kill beyond the log`).to.be.at.most(len)
        if (r.selfKill === 'log' || r.selfKill === 'table') {
          const acked = r.selfKill === 'log' ? r.issued.length - 1 : r.issued.length
          expect([r.acked, r.issued.length], `run ${run}: self-kill off its mark`).to.deep.equal([acked, r.issued.length])
          expect(c0, `run ${run}: killed (${r.selfKill}) before the view's LevelDB had the write, yet the view is not behind the log`).to.be.below(len)
        }
        if (!atKill.hasKey) {
          expect(atKill.raw, `run ${run}: a view without its database key`).to.deep.equal([])
        } else if (c0 === len) {
          expectSameView(atKill, await dumpView(b, { indexes: false, merge }), `run ${run}: view at kill vs full re-fold`)
        } else {
          stats.tailRefolds++
          const c = join(tmp, `c${run}`)
          await copyStore(join(a, 'cores'), join(c, 'cores'))
          const store = new Corestore(join(c, 'cores'))
          const core = store.get({ key: Buffer.from(reopened.writer, 'hex') })
          await core.ready()
          expect(core.writable).to.equal(true)
          await core.truncate(c0)
          await core.close()
          await store.close()
          await openAndRead(c, run, reopened.key)
          expectSameView(atKill, await dumpView(c, { indexes: false, merge }), `run ${run}: view at kill vs re-fold of the log cut at its checkpoint ${c0} (log ${len})`)
        }

        // (3) every acknowledged write is there; an op in flight is wholly there or wholly absent.
        const got = normalizeView(reopened.entries)
        const open = ops.map((o, i) => o.applied === null ? i : -1).filter((i) => i >= 0)
        let match = -1
        let firstModel: Map<string, string> | null = null
        for (let mask = 0; mask < 2 ** open.length && match < 0; mask++) {
          const model = new Model()
          ops.forEach((o, i) => {
            const bit = open.indexOf(i)
            if (o.applied === true || (bit >= 0 && (mask & (1 << bit)) !== 0)) model.apply(o.op)
          })
          const want = model.render()
          firstModel ??= want
          if (describeDiff(got, want) === '') match = mask
        }
        if (match < 0) {
          throw new Error(`run ${run}: the reopened view matches no sequence of the acknowledged writes ` +
            `(${open.length} op(s) in flight). Versus the acknowledged writes alone:\n${describeDiff(got, firstModel as Map<string, string>)}`)
        }
        // (4) the change feed reuses no seq across the kill: from the seq a reader could have read at
        // the last acknowledgement, it names every key that differs from the acknowledged writes then
        if (r.seq >= 0 && reopened.changed !== null) {
          const acked = firstModel as Map<string, string>
          for (const k of new Set([...got.keys(), ...acked.keys()])) {
            if (got.get(k) !== acked.get(k) && !reopened.changed.has(k)) throw new Error(`run ${run}: changes({ since: ${r.seq} }) after the kill does not name ${k}, which changed after that seq`)
          }
        }
        open.forEach((i, bit) => {
          const applied = (match & (1 << bit)) !== 0
          ;(ops[i] as { applied: boolean | null }).applied = applied
          if (applied) stats.inFlightApplied++
        })
        // (7) compacting the recovered database again works and changes nothing any key reads as
        if (mode === 'compaction') await openAndRead(a, run, reopened.key, -1, true)

        for (const d of ['a', 'b', 'c', 'k']) await rm(join(tmp, `${d}${run}`), { recursive: true, force: true })
      }
    } catch (err) {
      const e = err as Error
      e.message = `crash test failed, reproduce with CRASH_SEED=${seed}: ${e.message}\n${log.slice(-5).join('\n')}`
      throw e
    }

    expect(stats.kills).to.equal(kills)
    expect(stats.acked).to.be.greaterThan(0)
    expect(stats.tailRefolds).to.be.at.least(stats.logFirst + stats.tableFirst)
    if (mode === 'compaction') expect(stats.compacted, 'compactions that resolved').to.be.greaterThan(0)
    if (process.env.CRASH_VERBOSE !== undefined) {
      console.log(`      seed ${seed}${encrypted ? ' (encrypted)' : ''}: ${JSON.stringify(stats)} in ${Date.now() - started} ms`)
    }
  }

  it(`after each of ${KILLS} kills the view equals a full re-fold and holds every acknowledged write`, async () => {
    await crashRuns('writes', KILLS)
  })

  it(`after each of ${COMPACT_KILLS} kills among deletes and compactions (some inside compact()) nothing acknowledged is lost, the view equals a full re-fold, and compacting again works`, async () => {
    await crashRuns('compaction', COMPACT_KILLS)
  })

  it('a kill while a new store is first created (empty CORESTORE device file) does not lock the directory out', async () => {
    // Corestore opens its device file, then writes it: a kill in between leaves it empty (found by
    // the test above, killing a child 9 ms into its first open), and Corestore refused such a store forever.
    const dir = join(tmp, 'db')
    await mkdir(join(dir, 'cores'), { recursive: true })
    await writeFile(join(dir, 'cores', 'CORESTORE'), '')
    const db = new MeshDB(dir)
    await db.open()
    await db.put('a', '1')
    await db.close()
    const again = new MeshDB(dir)
    await again.open()
    expect(await again.get('a')).to.equal('1')
    await again.close()
  })
})
